/*
 * hdb_server.h - the gRPC server of hilbertd on the gRPC core C API.
 *
 * cfg->poll_threads call threads poll one completion queue; each answers the cheap calls it
 * takes itself (Health, Get, catalog reads), so those never queue behind expensive work, and
 * hands the others to a pool: searches to the work pool (cfg->threads), uploads and catalog
 * changes to the write pool (cfg->write_threads), calls that run models to the model pool
 * (cfg->model_rpc_threads), so heavy searches cannot hold up writes and a slow model can make
 * only its own calls wait. A call that must wait (a search's min_seq) is parked instead of
 * holding a thread (hdb_park below). The server watches each call for cancellation, so that
 * long work can stop once the client is gone (hdb_rpc.stop). Unary methods are registered with
 * their payload read up front; each call gets an arena that holds the decoded request, scratch
 * memory and the response, released when the call completes. Calls to unknown methods get
 * UNIMPLEMENTED. Handlers return hdb rc codes, which map to gRPC statuses in exactly one
 * function (hdb_server_status_from_rc).
 */
#ifndef HDB_SERVER_H
#define HDB_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "hdb_clock.h"
#include "hdb_config.h" /* hdb_role */

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hdb_arena hdb_arena;
typedef struct hdb_catalog hdb_catalog;
typedef struct hdb_config hdb_config;
typedef struct hdb_metrics hdb_metrics;
typedef struct hdb_server hdb_server;
typedef struct hdb_space_registry hdb_space_registry;

typedef struct hdb_infer hdb_infer;

/* Parking: how a call waits without holding a thread. A handler that finds it must wait for
 * something (a min_seq not applied yet) and is allowed to park (hdb_rpc.may_park) fills
 * rpc->park and returns HDB_EAGAIN, having built no response. The server then keeps the call
 * in its parked set, asks `ready` about every millisecond, and runs the handler again from the
 * start (same request, same arena) once ready says so, with may_park still true; at until_ns,
 * when the server starts shutting down, it runs it a last time with may_park false, so that
 * the handler answers with its own timeout or unavailable error. A cancelled call is finished
 * with CANCELLED without running again. `release` is called exactly once, before the call runs
 * again or is finished, on the parker thread. */
typedef struct {
    bool (*ready)(void *arg);   /* true once running again makes sense; must not block */
    void (*release)(void *arg); /* drops what arg holds; NULL: nothing */
    void *arg;                  /* the handler's, usually in the call's arena */
    int64_t until_ns;           /* CLOCK_MONOTONIC: run again (last time) at this instant */
} hdb_park;

/* What a handler sees of its call. */
typedef struct {
    hdb_catalog *catalog;
    hdb_space_registry *spaces; /* the model spaces (hdb_space.h) */
    const hdb_config *config;
    hdb_infer *infer;        /* the inference pool */
    hdb_arena *arena;        /* per call; everything in the response may live here */
    int64_t deadline_ns;     /* CLOCK_MONOTONIC nanoseconds; INT64_MAX when none */
    hdb_stop stop;           /* the deadline, and whether the client has cancelled: long work
                              * checks hdb_stop_now(&rpc->stop) between its steps */
    const hdb_server *server;
    bool may_park;           /* the handler may park the call instead of waiting (above) */
    int64_t first_ns;        /* when the call's first attempt began; waits count from it */
    hdb_park park;           /* filled by a handler that returns HDB_EAGAIN */
} hdb_rpc;

/* A unary handler: reads req (decoded into rpc->arena) and sets *resp to a message built in
 * the arena. Returns HDB_OK or an rc with a message in err that names the offending field. */
typedef int (*hdb_rpc_fn)(hdb_rpc *rpc, const ProtobufCMessage *req, ProtobufCMessage **resp,
                          char *err, size_t errlen);

/* Which threads serve a method (see hdb_server.c). */
typedef enum {
    HDB_LANE_CHEAP = 0, /* answered by the call thread that takes it: short, bounded work that
                         * never waits (Health, Get, catalog reads, status) */
    HDB_LANE_WORK,      /* the work pool (server.threads): searches; may park */
    HDB_LANE_WRITE,     /* the write pool (server.write_threads): uploads, catalog changes */
    HDB_LANE_MODEL      /* the model pool (models.rpc_threads): calls that run models */
} hdb_lane;

typedef struct {
    const char *service; /* full service name, e.g. "hilbert.v1.Catalog" */
    const char *method;  /* e.g. "CreateDataSource" */
    const ProtobufCMessageDescriptor *input;
    hdb_rpc_fn fn;
    hdb_role role; /* what the caller's API key must allow (checked when auth.keys is set) */
    hdb_lane lane;
    /* A bidirectional stream of unary calls: fn runs once per request message, in order, and
     * each response goes back as one stream message; the stream ends with OK at the client's
     * half-close, or with the first error (its message prefixed "batches[i]."). */
    bool stream;
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

/* Re-reads the TLS certificate files (SIGHUP): new handshakes use them once this returns
 * HDB_OK; on failure the old ones stay and err names the key and the file. Returns HDB_OK,
 * HDB_EIO or HDB_EINVAL, or HDB_EPRECOND when TLS is not configured. Main thread. */
int hdb_server_reload_tls(hdb_server *s, char *err, size_t errlen);

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
