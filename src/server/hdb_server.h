/*
 * hdb_server.h - the gRPC server of hilbertd on the gRPC core C API.
 *
 * cfg->threads call threads poll one completion queue and each handles the call it takes, so
 * no call waits behind another while a call thread is free. Calls that run models go to a
 * separate pool (cfg->model_rpc_threads), so a slow model can make only those wait, never the
 * searches and uploads. Unary methods are registered with their payload read up front; each
 * call gets an arena that holds the decoded request, scratch memory and the response, released
 * when the call completes. Calls to unknown methods get UNIMPLEMENTED. Handlers return hdb rc codes, which map to gRPC
 * statuses in exactly one function (hdb_server_status_from_rc).
 */
#ifndef HDB_SERVER_H
#define HDB_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hdb_arena hdb_arena;
typedef struct hdb_catalog hdb_catalog;
typedef struct hdb_config hdb_config;
typedef struct hdb_metrics hdb_metrics;
typedef struct hdb_server hdb_server;
typedef struct hdb_space_registry hdb_space_registry;

/* What a handler sees of its call. */
typedef struct hdb_infer hdb_infer;

typedef struct {
    hdb_catalog *catalog;
    hdb_space_registry *spaces; /* the model spaces (hdb_space.h) */
    const hdb_config *config;
    hdb_infer *infer;        /* the inference pool */
    hdb_arena *arena;        /* per call; everything in the response may live here */
    int64_t deadline_ns;     /* CLOCK_MONOTONIC nanoseconds; INT64_MAX when none */
    const hdb_server *server;
} hdb_rpc;

/* A unary handler: reads req (decoded into rpc->arena) and sets *resp to a message built in
 * the arena. Returns HDB_OK or an rc with a message in err that names the offending field. */
typedef int (*hdb_rpc_fn)(hdb_rpc *rpc, const ProtobufCMessage *req, ProtobufCMessage **resp,
                          char *err, size_t errlen);

typedef struct {
    const char *service; /* full service name, e.g. "hilbert.v1.Catalog" */
    const char *method;  /* e.g. "CreateDataSource" */
    const ProtobufCMessageDescriptor *input;
    hdb_rpc_fn fn;
    bool model; /* served by the model threads (calls that run models and may be slow) */
} hdb_rpc_method;

/* Maps an hdb rc to a grpc_status_code (as int, to keep grpc headers out of this header). */
int hdb_server_status_from_rc(int rc);

/* True once the deadline of the call has passed. */
bool hdb_rpc_expired(const hdb_rpc *rpc);

/* True while the server accepts calls (false once shutdown has begun). */
bool hdb_server_serving(const hdb_server *s);

/* Creates the server: binds cfg->listen, registers the methods, starts the cfg->threads call
 * threads and the cfg->model_rpc_threads model handlers. catalog, spaces, infer and cfg are
 * borrowed and must outlive the server. Returns HDB_EIO when the address cannot be bound.
 * *port receives the bound port (useful with port 0). */
int hdb_server_start(hdb_server **out, const hdb_config *cfg, hdb_catalog *catalog,
                     hdb_space_registry *spaces, hdb_infer *infer, int *port, char *err,
                     size_t errlen);

/* Stops accepting calls, lets calls in flight finish for up to cfg->shutdown_grace_ms, cancels
 * the rest, closes client connections left open (after a short wait once no call is left),
 * joins the threads and frees the server. NULL is allowed. */
void hdb_server_stop(hdb_server *s);

/* The server's per-method call counters (hdb_metrics.h), for the metrics endpoint. Valid until
 * hdb_server_stop. Any thread. */
hdb_metrics *hdb_server_metrics(hdb_server *s);

#ifdef __cplusplus
}
#endif

#endif /* HDB_SERVER_H */
