"""HilbertDB Python client package.

For now it holds the dataset helpers used by the tests, benchmarks and examples; the typed client
API over the gRPC services lives in the modules next to this one as they are added.
"""
