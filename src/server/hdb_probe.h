/*
 * hdb_probe.h - the client side of `hilbertd --health-probe ADDR`: one grpc.health.v1.Health/Check
 * of the whole server ("") over a plaintext channel, for container health checks (the runtime
 * image carries no other gRPC client).
 *
 * Thread-safety: hdb_probe_health initialises and shuts down gRPC itself (grpc_init and
 * grpc_shutdown are reference counted); it is meant to be the only work of the process.
 */
#ifndef HDB_PROBE_H
#define HDB_PROBE_H

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Sends one Health/Check with service "" to addr (a gRPC target: "host:port", "[ipv6]:port",
 * "unix:PATH") with a deadline of timeout_ms, without TLS and without waiting for the connection
 * to become ready (a closed port fails at once). Writes one line to out: "SERVING",
 * "NOT_SERVING", or the call's gRPC status and message (e.g. "UNAVAILABLE: failed to connect").
 * Returns 0 when the answer is SERVING, 1 otherwise. addr is only read. */
int hdb_probe_health(const char *addr, int timeout_ms, FILE *out);

#ifdef __cplusplus
}
#endif

#endif /* HDB_PROBE_H */
