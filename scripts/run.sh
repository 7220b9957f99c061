#!/usr/bin/env bash
# Installs what is missing (hilbertd's build packages, and what the Python client and the
# README's example need), builds hilbertd, and runs it in the foreground on the default config
# (config/hilbertd.yaml: data in ./data, listening on 127.0.0.1:50051). Extra arguments go to
# hilbertd, e.g. `scripts/run.sh --listen 127.0.0.1:6000`. Stop it with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh run
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHDB_BUILD_TESTS=OFF >/dev/null
cmake --build build --target hilbertd python_stubs -j"$(nproc)"
exec build/hilbertd --config config/hilbertd.yaml "$@"
