/*
 * hdb_server.c - the call threads and their completion queue, the model pool, the method table,
 * call lifecycle and shutdown.
 *
 * Threads: server.poll_threads call threads all poll one completion queue, on which every
 * method has request slots armed. The thread that takes an arriving call re-arms its slot and,
 * for a cheap method (HDB_LANE_CHEAP: Health, Get, catalog reads), handles the call itself, so
 * such a call costs no thread hand-off and never queues behind expensive work. Other calls go
 * to a pool (a FIFO and its handler threads): searches to the work pool (server.threads),
 * uploads and catalog changes to the write pool (server.write_threads), so that heavy searches
 * cannot hold writes up, and calls that run models to the model pool (models.rpc_threads), so
 * a slow model can only keep the model pool busy. A handler starts the call's final batch; its
 * completion comes back to any call thread, which releases the call. (A queue per thread would
 * let a call wait behind a slow one: gRPC hands arriving calls to the registered queues in
 * turn, busy or not.)
 *
 * Parking: a work-pool handler that would wait (a search whose min_seq is not applied yet)
 * returns HDB_EAGAIN with an hdb_park instead, and the call joins the parked list. The parker
 * thread asks each parked call's `ready` every PARK_TICK_NS (more rarely when thousands are
 * parked) and puts the ready, expired and cancelled ones back on the work pool (or finishes
 * them), so waiting holds no thread.
 *
 * Call lifecycle (one heap call_ctx per requested call, tag = the ctx):
 *   REQUESTED  the slot waits for a call. On arrival a call thread starts a batch that only
 *              receives the close (tag = &ctx->close; it completes when the call ends, with
 *              `cancelled` set when the client cancelled, its deadline passed or its connection
 *              dropped: that sets `gone`, which hdb_rpc.stop reports to long work), then handles
 *              the call or queues it, and the handler starts the final batch (send initial
 *              metadata, message, status).
 *   STREAM     (stream methods) a batch that sends the last response and receives the next
 *              request is out; its completion queues the message on the method's pool, whose
 *              handler answers it with the next such batch, or finishes the call.
 *   FINISHING  the final batch completed.
 * The ctx is freed when both batches have completed (`refs`). It passes from thread to thread
 * only through a lock or a gRPC completion, so its other fields need no lock of their own.
 * `inflight` counts calls between arrival and their release; shutdown waits for it to reach
 * zero before the completion queue is shut down (a batch started on a shut-down queue aborts
 * inside gRPC). `working` counts only the calls that were let in to do their work (not the ones
 * refused while draining): the drain waits for those, so that clients that keep calling during
 * a shutdown cannot hold it up for the whole grace.
 */
#include "hdb_server.h"

#include "hdb_arena.h"
#include "hdb_auth.h"
#include "hdb_clock.h"
#include "hdb_config.h"
#include "hdb_err.h"
#include "hdb_log.h"
#include "hdb_mem.h"
#include "hdb_metrics.h"
#include "hdb_rpc_admin.h"
#include "hdb_rpc_catalog.h"
#include "hdb_rpc_euclides.h"
#include "hdb_rpc_health.h"
#include "hdb_rpc_models.h"
#include "hdb_rpc_points.h"
#include "hdb_rpc_search.h"
#include "hdb_tls.h"
#include "hdb_wire.h"

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SLOTS_PER_METHOD 8 /* requests armed per method */
#define DRAIN_PAUSE_US 200000 /* after the last call of a shutdown, before gRPC closes connections */
#define IDLE_CLOSE_NS 500000000LL /* then how long clients get to close their connections */
#define ERRLEN 1024

#define PARK_TICK_NS 1000000LL /* how often parked calls are asked whether they can go on */
#define PARK_TICK_CALLS 256    /* ...each further this many parked calls add a tick to that */

/* The first int of every completion-queue tag says what it is. */
enum { CALL_UNARY = 1, CALL_UNKNOWN = 2, TAG_CLOSE = 3 };
enum { ST_REQUESTED = 1, ST_FINISHING = 2, ST_STREAM = 3 };

typedef struct call_ctx call_ctx;

typedef struct {
    int kind; /* TAG_CLOSE */
    call_ctx *c;
} close_tag;

struct call_ctx {
    int kind;
    int state;
    hdb_server *s;
    size_t method; /* index into server->methods for CALL_UNARY */
    grpc_call *call;
    gpr_timespec deadline;
    grpc_metadata_array md;
    grpc_byte_buffer *payload;
    grpc_call_details details; /* CALL_UNKNOWN only */
    grpc_byte_buffer *resp_bb;
    grpc_slice status_details;
    bool have_status_details;
    close_tag close;   /* the tag of the batch that receives the close */
    int cancelled;     /* ...its result */
    _Atomic bool gone; /* the client cancelled, or the deadline passed */
    _Atomic int refs;  /* batches not yet completed (final, close) */
    int64_t start_ns;
    bool working; /* counted in hdb_server.working */
    hdb_arena *arena;
    /* Set by the first attempt, kept for the next ones (parking): */
    ProtobufCMessage *req; /* decoded into arena */
    int64_t deadline_ns;   /* CLOCK_MONOTONIC; INT64_MAX: none */
    bool may_park;
    hdb_park park;  /* while parked */
    bool ready;     /* parker thread: its park.ready said yes */
    call_ctx *next; /* in the parked list */
    /* Stream methods: */
    bool md_sent;                  /* the initial metadata went out with the first batch */
    bool in_recv;                  /* waiting for the client's next message (streams_mu) */
    uint32_t nmsg;                 /* request messages handled */
    call_ctx *snext, *sprev;       /* in hdb_server.streams (streams_mu) */
};

/* A FIFO of calls and the handler threads that drain it (the model pool). */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    call_ctx **ring; /* grows as needed */
    size_t cap, head, len;
    bool stop;
    pthread_t *threads;
    int nthreads;
} pool;

/* The parked calls and the thread that watches them. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    call_ctx *head; /* the parked calls */
    bool flush;     /* draining: run every parked call a last time */
    bool stop;
    pthread_t thread;
    bool started;
} parker;

struct hdb_server {
    const hdb_config *cfg;
    hdb_catalog *catalog;
    hdb_space_registry *spaces;
    hdb_infer *infer;
    grpc_server *srv;
    grpc_completion_queue *cq;  /* the call threads' */
    grpc_completion_queue *ctl; /* shutdown notification */
    pthread_t *threads;         /* the call threads, all polling cq */
    int nthreads;
    pool work;
    pool write;
    pool model;
    parker parked;
    hdb_rpc_method *methods;
    void **handles;
    size_t nmethods;
    _Atomic bool draining; /* shutdown, first phase: new calls are refused, connections stay */
    _Atomic bool stopping; /* second phase: gRPC is shutting down; slots are not re-armed */
    _Atomic int inflight;
    _Atomic int working; /* the part of inflight let in to do work (see the top) */
    hdb_metrics *metrics; /* per-method counters (hdb_metrics.h) */
    hdb_auth *auth;       /* the API keys; NULL: none configured, every call is let in */
    hdb_tls *tls;         /* the certificates; NULL: plaintext */
    pthread_mutex_t streams_mu;
    call_ctx *streams; /* open streams, so that a drain can end those waiting for a message */
};

int hdb_server_status_from_rc(int rc) {
    switch (rc) {
    case HDB_OK: return GRPC_STATUS_OK;
    case HDB_EINVAL: return GRPC_STATUS_INVALID_ARGUMENT;
    case HDB_ENOTFOUND: return GRPC_STATUS_NOT_FOUND;
    case HDB_EEXIST: return GRPC_STATUS_ALREADY_EXISTS;
    case HDB_EPRECOND: return GRPC_STATUS_FAILED_PRECONDITION;
    case HDB_ELIMIT: return GRPC_STATUS_RESOURCE_EXHAUSTED;
    case HDB_ENOMEM: return GRPC_STATUS_RESOURCE_EXHAUSTED;
    case HDB_EFULL: return GRPC_STATUS_RESOURCE_EXHAUSTED;
    case HDB_ETIMEOUT: return GRPC_STATUS_DEADLINE_EXCEEDED;
    case HDB_EUNAVAIL: return GRPC_STATUS_UNAVAILABLE;
    case HDB_EUNIMPL: return GRPC_STATUS_UNIMPLEMENTED;
    case HDB_ECANCELLED: return GRPC_STATUS_CANCELLED;
    case HDB_EPERM: return GRPC_STATUS_PERMISSION_DENIED;
    case HDB_EUNAUTH: return GRPC_STATUS_UNAUTHENTICATED;
    case HDB_EIO: return GRPC_STATUS_INTERNAL;
    case HDB_ECORRUPT: return GRPC_STATUS_DATA_LOSS;
    default: return GRPC_STATUS_INTERNAL;
    }
}

bool hdb_rpc_expired(const hdb_rpc *rpc) {
    return rpc->deadline_ns != INT64_MAX && hdb_mono_ns() > rpc->deadline_ns;
}

hdb_metrics *hdb_server_metrics(hdb_server *s) {
    return s->metrics;
}

bool hdb_server_serving(const hdb_server *s) {
    return !atomic_load(&((hdb_server *)s)->draining);
}

/* ---------------------------------------------------------------- call slots */

static call_ctx *ctx_new(hdb_server *s, int kind, size_t method) {
    call_ctx *c = hdb_calloc(1, sizeof *c);
    c->kind = kind;
    c->state = ST_REQUESTED;
    c->s = s;
    c->method = method;
    c->close = (close_tag){.kind = TAG_CLOSE, .c = c};
    grpc_metadata_array_init(&c->md);
    if (kind == CALL_UNKNOWN) grpc_call_details_init(&c->details);
    return c;
}

static void ctx_free(call_ctx *c) {
    if (c->resp_bb) { /* a large reply counts towards the next malloc_trim (hdb_mem.h) */
        size_t len = grpc_byte_buffer_length(c->resp_bb);
        grpc_byte_buffer_destroy(c->resp_bb);
        if (len >= (1u << 20)) hdb_mem_released(len);
    }
    if (c->payload) grpc_byte_buffer_destroy(c->payload);
    if (c->have_status_details) grpc_slice_unref(c->status_details);
    grpc_metadata_array_destroy(&c->md);
    if (c->kind == CALL_UNKNOWN) grpc_call_details_destroy(&c->details);
    if (c->call) grpc_call_unref(c->call);
    hdb_arena_free(c->arena);
    hdb_free(c);
}

/* One of the call's batches is over; the last one releases the call. */
static void ctx_unref(call_ctx *c) {
    if (atomic_fetch_sub(&c->refs, 1) != 1) return;
    hdb_server *s = c->s;
    if (c->working) atomic_fetch_sub(&s->working, 1);
    ctx_free(c);
    atomic_fetch_sub(&s->inflight, 1);
}

static void post_request(hdb_server *s, int kind, size_t method) {
    call_ctx *c = ctx_new(s, kind, method);
    grpc_call_error e;
    if (kind == CALL_UNARY)
        e = grpc_server_request_registered_call(s->srv, s->handles[method], &c->call, &c->deadline,
                                                &c->md,
                                                s->methods[method].stream ? NULL : &c->payload,
                                                s->cq, s->cq, c);
    else
        e = grpc_server_request_call(s->srv, &c->call, &c->details, &c->md, s->cq, s->cq, c);
    if (e != GRPC_CALL_OK) {
        /* Only happens once the server is shutting down. */
        HDB_DEBUG("server", "request slot not armed: error %d", (int)e);
        ctx_free(c);
    }
}

/* A call has arrived: from now on it is in flight, and its close is watched. */
static void arrived(call_ctx *c) {
    atomic_store(&c->refs, 1); /* the final batch */
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    op.data.recv_close_on_server.cancelled = &c->cancelled;
    atomic_fetch_add(&c->refs, 1);
    grpc_call_error e = grpc_call_start_batch(c->call, &op, 1, &c->close, NULL);
    if (e != GRPC_CALL_OK) {
        HDB_WARN("server", "cannot watch a call for cancellation: error %d", (int)e);
        atomic_fetch_sub(&c->refs, 1);
    }
}

static bool call_gone(const void *arg) {
    const call_ctx *c = arg;
    return atomic_load(&c->gone);
}

/* Takes a stream off hdb_server.streams (once; a call that never joined is left alone). */
static void stream_unlink(call_ctx *c) {
    hdb_server *s = c->s;
    pthread_mutex_lock(&s->streams_mu);
    if (c->sprev || s->streams == c) {
        if (c->sprev)
            c->sprev->snext = c->snext;
        else
            s->streams = c->snext;
        if (c->snext) c->snext->sprev = c->sprev;
        c->snext = c->sprev = NULL;
    }
    c->in_recv = false;
    pthread_mutex_unlock(&s->streams_mu);
}

/* Packs resp into c->resp_bb for sending. Returns false (with the message in buf) when it is
 * over server.max_send_message_bytes. */
static bool pack_response(call_ctx *c, const ProtobufCMessage *resp, char *buf, size_t buflen) {
    size_t size = protobuf_c_message_get_packed_size(resp);
    if (size > c->s->cfg->max_send_message_bytes) {
        snprintf(buf, buflen,
                 "response: %zu bytes exceed server.max_send_message_bytes (%zu); ask for "
                 "fewer results or raise the limit",
                 size, c->s->cfg->max_send_message_bytes);
        return false;
    }
    grpc_slice sl = grpc_slice_malloc(size);
    protobuf_c_message_pack(resp, GRPC_SLICE_START_PTR(sl));
    c->resp_bb = grpc_raw_byte_buffer_create(&sl, 1);
    grpc_slice_unref(sl);
    return true;
}

/* Sends the response (when code is OK) and the status, and moves the call to FINISHING. */
static void finish(call_ctx *c, int code, const ProtobufCMessage *resp, const char *msg) {
    hdb_server *s = c->s;
    char buf[256];
    if (code == GRPC_STATUS_OK && resp != NULL && !pack_response(c, resp, buf, sizeof buf)) {
        code = GRPC_STATUS_RESOURCE_EXHAUSTED;
        msg = buf;
    }
    c->status_details = grpc_slice_from_copied_string(msg ? msg : "");
    c->have_status_details = true;

    if (c->kind == CALL_UNARY)
        hdb_metrics_observe(s->metrics, c->method, code, hdb_mono_ns() - c->start_ns);
    if (s->methods[c->method].stream && c->kind == CALL_UNARY) stream_unlink(c);
    grpc_op ops[3];
    size_t n = 0;
    memset(ops, 0, sizeof ops);
    if (!c->md_sent) {
        ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
        ops[n].data.send_initial_metadata.count = 0;
        n++;
    }
    if (c->resp_bb) {
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n].data.send_message.send_message = c->resp_bb;
        n++;
    }
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = (grpc_status_code)code;
    ops[n].data.send_status_from_server.status_details = &c->status_details;
    ops[n].data.send_status_from_server.trailing_metadata_count = 0;
    n++;
    c->state = ST_FINISHING;
    grpc_call_error e = grpc_call_start_batch(c->call, ops, n, c, NULL);
    if (e != GRPC_CALL_OK) {
        HDB_ERROR("server", "cannot finish call: grpc_call_start_batch error %d", (int)e);
        ctx_unref(c);
    }
}

static void park(call_ctx *c);
static void stream_next(call_ctx *c);
static void handle_unary(call_ctx *c);
static void pool_push(pool *p, call_ctx *c);

/* Decodes the request into the call's arena (first attempt only). Returns false when the
 * call was finished with an error instead. */
static bool unpack(call_ctx *c, const char *prefix);

/* The checks before a call's first message: its deadline, and its API key. Returns false
 * when the call was finished with an error instead. */
static bool admit(call_ctx *c) {
    hdb_server *s = c->s;
    const hdb_rpc_method *m = &s->methods[c->method];
    char err[ERRLEN];
    err[0] = '\0';
    gpr_timespec now = gpr_now(c->deadline.clock_type);
    if (gpr_time_cmp(now, c->deadline) > 0) {
        finish(c, GRPC_STATUS_DEADLINE_EXCEEDED, NULL, "deadline passed before the call started");
        return false;
    }
    /* The key is checked before the request is even decoded. */
    int rc = hdb_auth_check_call(s->auth, c->md.metadata, c->md.count, m->role, m->service,
                                 m->method, err, sizeof err);
    if (rc != HDB_OK) {
        HDB_DEBUG("rpc", "%s", err);
        finish(c, hdb_server_status_from_rc(rc), NULL, err);
        return false;
    }
    c->deadline_ns = INT64_MAX;
    if (c->deadline.tv_sec != INT64_MAX) {
        gpr_timespec left = gpr_time_sub(c->deadline, now);
        c->deadline_ns = hdb_mono_ns() + (int64_t)left.tv_sec * 1000000000 + left.tv_nsec;
    }
    return true;
}

static bool decode(call_ctx *c) {
    return admit(c) && unpack(c, "");
}

/* Decodes c->payload (then released) into c->req, in a new arena of the call. prefix goes
 * before error messages ("batches[3]." in a stream). Returns false when the call was finished
 * with an error instead. */
static bool unpack(call_ctx *c, const char *prefix) {
    hdb_server *s = c->s;
    const hdb_rpc_method *m = &s->methods[c->method];
    char err[ERRLEN];
    int rc;
    grpc_byte_buffer_reader reader;
    if (c->payload == NULL || !grpc_byte_buffer_reader_init(&reader, c->payload)) {
        finish(c, GRPC_STATUS_INVALID_ARGUMENT, NULL, "request: no message was sent");
        return false;
    }
    grpc_slice sl = grpc_byte_buffer_reader_readall(&reader);
    grpc_byte_buffer_reader_destroy(&reader);
    grpc_byte_buffer_destroy(c->payload);
    c->payload = NULL;
    hdb_arena_free(c->arena);
    c->arena = hdb_arena_create(GRPC_SLICE_LENGTH(sl) + 16384);
    /* protobuf-c neither validates UTF-8 nor keeps string lengths, and it unpacks nested
     * messages (filters) by recursion without a depth limit: check the raw bytes first. */
    rc = hdb_wire_check_strings(m->input, GRPC_SLICE_START_PTR(sl), GRPC_SLICE_LENGTH(sl), err,
                                sizeof err);
    ProtobufCMessage *req =
        rc != HDB_OK ? NULL
                     : protobuf_c_message_unpack(m->input, hdb_arena_protobuf(c->arena),
                                                 GRPC_SLICE_LENGTH(sl), GRPC_SLICE_START_PTR(sl));
    grpc_slice_unref(sl);
    if (rc == HDB_OK && req == NULL)
        rc = hdb_errf(err, sizeof err, HDB_EINVAL, "request: the bytes are not a valid %s message",
                      m->input->name);
    if (rc != HDB_OK) {
        if (*prefix) hdb_err_prefix(err, sizeof err, rc, "%s", prefix);
        finish(c, hdb_server_status_from_rc(rc), NULL, err);
        return false;
    }
    c->req = req;
    c->may_park = m->lane == HDB_LANE_WORK;
    return true;
}

/* Runs the handler on the decoded request: an attempt, which ends in a response or parks. */
static void run(call_ctx *c) {
    hdb_server *s = c->s;
    const hdb_rpc_method *m = &s->methods[c->method];
    char err[ERRLEN];
    err[0] = '\0';
    ProtobufCMessage *resp = NULL;
    bool may_park = c->may_park && !atomic_load(&s->draining);
    hdb_rpc rpc = {.catalog = s->catalog,
                   .spaces = s->spaces,
                   .config = s->cfg,
                   .infer = s->infer,
                   .arena = c->arena,
                   .deadline_ns = c->deadline_ns,
                   .stop = {.deadline_ns = c->deadline_ns, .cancelled = call_gone, .arg = c},
                   .server = s,
                   .may_park = may_park,
                   .first_ns = c->start_ns};
    int rc = m->fn(&rpc, c->req, &resp, err, sizeof err);
    if (rc == HDB_EAGAIN && may_park && rpc.park.ready != NULL) {
        c->park = rpc.park;
        park(c);
        return;
    }
    if (rc == HDB_EAGAIN) { /* a handler bug: it may not park here */
        HDB_ERROR("rpc", "%s/%s asked to park where it may not", m->service, m->method);
        rc = HDB_EINTERNAL;
        snprintf(err, sizeof err, "internal error: the call could not wait");
    }
    int code = hdb_server_status_from_rc(rc);
    if (rc == HDB_OK && hdb_rpc_expired(&rpc)) {
        /* The client has given up; still finish cleanly. */
        code = GRPC_STATUS_DEADLINE_EXCEEDED;
        snprintf(err, sizeof err, "deadline passed while the call ran");
    }
    if (code == GRPC_STATUS_INTERNAL || code == GRPC_STATUS_DATA_LOSS)
        HDB_ERROR("rpc", "%s/%s: %s", m->service, m->method, err);
    else
        HDB_DEBUG("rpc", "%s/%s -> %d %s (%.3f ms)", m->service, m->method, code, err,
                  (double)(hdb_mono_ns() - c->start_ns) / 1e6);
    if (m->stream) {
        uint32_t i = c->nmsg++;
        c->req = NULL;
        if (code != GRPC_STATUS_OK) {
            char msg[ERRLEN];
            snprintf(msg, sizeof msg, "batches[%u].%s", i, err);
            finish(c, code, NULL, msg);
        } else if (resp != NULL && !pack_response(c, resp, err, sizeof err)) {
            finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED, NULL, err);
        } else {
            stream_next(c);
        }
        return;
    }
    finish(c, code, code == GRPC_STATUS_OK ? resp : NULL, code == GRPC_STATUS_OK ? "" : err);
}

/* Hands a call (or a stream's next message) to its method's lane: a pool, or the calling
 * thread for cheap methods. */
static void dispatch(call_ctx *c) {
    hdb_server *s = c->s;
    switch (s->methods[c->method].lane) {
    case HDB_LANE_MODEL: pool_push(&s->model, c); break;
    case HDB_LANE_WORK: pool_push(&s->work, c); break;
    case HDB_LANE_WRITE: pool_push(&s->write, c); break;
    default: handle_unary(c); break;
    }
}

/* ---------------------------------------------------------------- streams */

/* Starts the batch that sends c->resp_bb (when set; the initial metadata the first time) and
 * receives the client's next message; or, once the server drains, ends the stream (the last
 * response goes out with the status). */
static void stream_next(call_ctx *c) {
    hdb_server *s = c->s;
    pthread_mutex_lock(&s->streams_mu);
    if (atomic_load(&s->draining)) {
        pthread_mutex_unlock(&s->streams_mu);
        finish(c, GRPC_STATUS_UNAVAILABLE, NULL,
               "hilbertd is shutting down; the batches answered before this status are written, "
               "the others are not");
        return;
    }
    grpc_op ops[3];
    size_t n = 0;
    memset(ops, 0, sizeof ops);
    if (!c->md_sent) {
        ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
        ops[n].data.send_initial_metadata.count = 0;
        n++;
        c->md_sent = true;
    }
    if (c->resp_bb) {
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n].data.send_message.send_message = c->resp_bb;
        n++;
    }
    ops[n].op = GRPC_OP_RECV_MESSAGE;
    ops[n].data.recv_message.recv_message = &c->payload;
    n++;
    c->state = ST_STREAM;
    c->in_recv = true;
    grpc_call_error e = grpc_call_start_batch(c->call, ops, n, c, NULL);
    if (e != GRPC_CALL_OK) c->in_recv = false;
    pthread_mutex_unlock(&s->streams_mu);
    if (e != GRPC_CALL_OK) {
        HDB_ERROR("server", "cannot go on with a stream: grpc_call_start_batch error %d", (int)e);
        stream_unlink(c);
        ctx_unref(c);
    }
}

/* Call thread: a stream batch completed. The client's half-close ends the stream with OK; a
 * message goes to the method's pool. */
static void stream_received(call_ctx *c, bool ok) {
    hdb_server *s = c->s;
    pthread_mutex_lock(&s->streams_mu);
    c->in_recv = false;
    pthread_mutex_unlock(&s->streams_mu);
    if (c->resp_bb) { /* sent */
        grpc_byte_buffer_destroy(c->resp_bb);
        c->resp_bb = NULL;
    }
    if (!ok) {
        finish(c, GRPC_STATUS_CANCELLED, NULL, "the stream was cancelled");
        return;
    }
    if (c->payload == NULL) {
        finish(c, GRPC_STATUS_OK, NULL, "");
        return;
    }
    dispatch(c);
}

/* A handler's turn on a stream: at its start, the admission checks and the wait for the first
 * message; then each message, run as a unary call. */
static void handle_stream(call_ctx *c) {
    hdb_server *s = c->s;
    if (!c->md_sent) {
        if (!admit(c)) return;
        pthread_mutex_lock(&s->streams_mu);
        c->snext = s->streams;
        if (s->streams) s->streams->sprev = c;
        s->streams = c;
        pthread_mutex_unlock(&s->streams_mu);
        stream_next(c);
        return;
    }
    char prefix[32];
    snprintf(prefix, sizeof prefix, "batches[%u].", c->nmsg);
    if (unpack(c, prefix)) run(c);
}

static void handle_unary(call_ctx *c) {
    if (c->s->methods[c->method].stream) {
        handle_stream(c);
        return;
    }
    if (c->req == NULL && !decode(c)) return;
    run(c);
}

static void handle_unknown(call_ctx *c) {
    char msg[512];
    snprintf(msg, sizeof msg, "method %.*s is not implemented by hilbertd",
             (int)GRPC_SLICE_LENGTH(c->details.method),
             (const char *)GRPC_SLICE_START_PTR(c->details.method));
    HDB_DEBUG("rpc", "%s", msg);
    finish(c, GRPC_STATUS_UNIMPLEMENTED, NULL, msg);
}

/* ---------------------------------------------------------------- the pools */

static void pool_push(pool *p, call_ctx *c) {
    pthread_mutex_lock(&p->mu);
    if (p->len == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64;
        call_ctx **ring = hdb_malloc(cap * sizeof *ring);
        for (size_t i = 0; i < p->len; i++) ring[i] = p->ring[(p->head + i) % p->cap];
        hdb_free(p->ring);
        p->ring = ring;
        p->cap = cap;
        p->head = 0;
    }
    p->ring[(p->head + p->len++) % p->cap] = c;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static void *handler_main(void *arg) {
    pool *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->len == 0 && !p->stop) pthread_cond_wait(&p->cv, &p->mu);
        if (p->len == 0) break; /* stopping, and nothing left */
        call_ctx *c = p->ring[p->head];
        p->head = (p->head + 1) % p->cap;
        p->len--;
        pthread_mutex_unlock(&p->mu);
        handle_unary(c);
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static void pool_start(pool *p, int threads) {
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->threads = hdb_calloc((size_t)threads, sizeof *p->threads);
    for (int i = 0; i < threads; i++)
        if (pthread_create(&p->threads[i], NULL, handler_main, p) == 0) p->nthreads++;
    HDB_ASSERT(p->nthreads > 0);
}

/* Lets the handlers finish what is queued, then joins them. */
static void pool_stop(pool *p) {
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nthreads; i++) pthread_join(p->threads[i], NULL);
    hdb_free(p->threads);
    hdb_free(p->ring);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
}

/* ---------------------------------------------------------------- parked calls */

/* Called by a work-pool handler's thread: the call waits in the parked list from now on. */
static void park(call_ctx *c) {
    parker *pk = &c->s->parked;
    pthread_mutex_lock(&pk->mu);
    c->next = pk->head;
    pk->head = c;
    pthread_cond_signal(&pk->cv);
    pthread_mutex_unlock(&pk->mu);
}

/* Takes a call out of the parked set: runs it again, or finishes a cancelled one. */
static void unpark(call_ctx *c, bool flush) {
    hdb_server *s = c->s;
    if (c->park.release) c->park.release(c->park.arg);
    bool gone = atomic_load(&c->gone);
    c->park = (hdb_park){0};
    if (gone) {
        finish(c, GRPC_STATUS_CANCELLED, NULL, "the call was cancelled while it waited");
        return;
    }
    /* Not ready: its wait is over (until_ns) or the server drains; the last attempt answers
     * with the handler's own timeout or unavailable error. */
    c->may_park = c->ready && !flush;
    pool_push(&s->work, c);
}

static void *parker_main(void *arg) {
    hdb_server *s = arg;
    parker *pk = &s->parked;
    pthread_mutex_lock(&pk->mu);
    for (;;) {
        while (pk->head == NULL && !pk->stop) pthread_cond_wait(&pk->cv, &pk->mu);
        if (pk->head == NULL) break; /* stopping, and nothing parked */
        /* Ask every parked call, without the lock (ready may take other locks). */
        call_ctx *list = pk->head;
        pk->head = NULL;
        bool flush = pk->flush || pk->stop;
        pthread_mutex_unlock(&pk->mu);
        int64_t now = hdb_mono_ns(), next = INT64_MAX;
        call_ctx *keep = NULL, *go = NULL;
        int64_t nkeep = 0;
        while (list) {
            call_ctx *c = list;
            list = c->next;
            bool gone = atomic_load(&c->gone);
            c->ready = !flush && !gone && c->park.ready(c->park.arg);
            if (c->ready || flush || gone || now >= c->park.until_ns) {
                c->next = go;
                go = c;
            } else {
                c->next = keep;
                keep = c;
                nkeep++;
                if (c->park.until_ns < next) next = c->park.until_ns;
            }
        }
        /* Asking costs about the same per call: with many parked, ask less often, so that
         * the parker's share of a core stays small. */
        int64_t tick = PARK_TICK_NS * (1 + nkeep / PARK_TICK_CALLS);
        if (now + tick < next) next = now + tick;
        while (go) {
            call_ctx *c = go;
            go = c->next;
            unpark(c, flush);
        }
        pthread_mutex_lock(&pk->mu);
        /* Put back the ones that still wait, next to any parked meanwhile. */
        while (keep) {
            call_ctx *c = keep;
            keep = c->next;
            c->next = pk->head;
            pk->head = c;
        }
        if (pk->head != NULL && !pk->flush && !pk->stop) {
            struct timespec ts = hdb_mono_timespec(next);
            pthread_cond_timedwait(&pk->cv, &pk->mu, &ts);
        }
    }
    pthread_mutex_unlock(&pk->mu);
    return NULL;
}

static void parker_start(hdb_server *s) {
    parker *pk = &s->parked;
    pthread_mutex_init(&pk->mu, NULL);
    hdb_mono_cond_init(&pk->cv);
    pk->started = pthread_create(&pk->thread, NULL, parker_main, s) == 0;
    HDB_ASSERT(pk->started);
}

/* Draining: every parked call runs a last time (or is finished) now, and later ones too. */
static void parker_flush(hdb_server *s) {
    parker *pk = &s->parked;
    pthread_mutex_lock(&pk->mu);
    pk->flush = true;
    pthread_cond_signal(&pk->cv);
    pthread_mutex_unlock(&pk->mu);
}

static void parker_stop(hdb_server *s) {
    parker *pk = &s->parked;
    pthread_mutex_lock(&pk->mu);
    pk->stop = true;
    pthread_cond_signal(&pk->cv);
    pthread_mutex_unlock(&pk->mu);
    pthread_join(pk->thread, NULL);
    pthread_cond_destroy(&pk->cv);
    pthread_mutex_destroy(&pk->mu);
}

/* ---------------------------------------------------------------- call threads */

/* Health checks are answered while draining (NOT_SERVING), so that balancers see the state. */
static bool is_health(const hdb_rpc_method *m) {
    return strcmp(m->service, "grpc.health.v1.Health") == 0;
}

static void *call_thread_main(void *arg) {
    hdb_server *s = arg;
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
        if (ev.type != GRPC_OP_COMPLETE) continue;
        if (*(const int *)ev.tag == TAG_CLOSE) {
            call_ctx *c = ((close_tag *)ev.tag)->c;
            if (c->cancelled) atomic_store(&c->gone, true);
            ctx_unref(c);
            continue;
        }
        call_ctx *c = ev.tag;
        if (c->state == ST_STREAM) {
            stream_received(c, ev.success);
            continue;
        }
        if (c->state == ST_REQUESTED) {
            if (!ev.success) { /* the server is shutting down */
                ctx_free(c);
                continue;
            }
            atomic_fetch_add(&s->inflight, 1);
            c->start_ns = hdb_mono_ns();
            arrived(c);
            if (!atomic_load(&s->stopping)) post_request(s, c->kind, c->method);
            if (c->kind == CALL_UNKNOWN) {
                handle_unknown(c);
            } else if (atomic_load(&s->draining) && !is_health(&s->methods[c->method])) {
                finish(c, GRPC_STATUS_UNAVAILABLE, NULL, "hilbertd is shutting down");
            } else {
                c->working = true;
                atomic_fetch_add(&s->working, 1);
                dispatch(c);
            }
        } else {
            ctx_unref(c);
        }
    }
    return NULL;
}

/* ---------------------------------------------------------------- start / stop */

static void add_methods(hdb_server *s, const hdb_rpc_method *m, size_t n) {
    for (size_t i = 0; i < n; i++) HDB_ASSERT(m[i].role != HDB_ROLE_UNSET); /* see hdb_role */
    s->methods = hdb_realloc(s->methods, (s->nmethods + n) * sizeof *s->methods);
    memcpy(s->methods + s->nmethods, m, n * sizeof *m);
    s->nmethods += n;
}

/* Shuts down a queue that no thread polls, drains it and destroys it. */
static void drain_and_destroy(grpc_completion_queue *cq) {
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(cq);
}

static void server_free(hdb_server *s) {
    hdb_auth_free(s->auth);
    hdb_tls_free(s->tls); /* gRPC, which calls its fetcher, is gone by now */
    hdb_metrics_free(s->metrics);
    hdb_free(s->threads);
    hdb_free(s->handles);
    hdb_free(s->methods);
    pthread_mutex_destroy(&s->streams_mu);
    hdb_free(s);
}

int hdb_server_start(hdb_server **out, const hdb_config *cfg, hdb_catalog *catalog,
                     hdb_space_registry *spaces, hdb_infer *infer, int *port, char *err,
                     size_t errlen) {
    hdb_server *s = hdb_calloc(1, sizeof *s);
    pthread_mutex_init(&s->streams_mu, NULL);
    s->cfg = cfg;
    s->catalog = catalog;
    s->spaces = spaces;
    s->infer = infer;
    int rc;
    if ((rc = hdb_auth_create(&s->auth, cfg, err, errlen)) != HDB_OK ||
        (rc = hdb_tls_create(&s->tls, cfg, err, errlen)) != HDB_OK) {
        server_free(s);
        return rc;
    }
    size_t n;
    const hdb_rpc_method *m;
    m = hdb_rpc_catalog_methods(&n);
    add_methods(s, m, n);
    m = hdb_rpc_points_methods(&n);
    add_methods(s, m, n);
    m = hdb_rpc_search_methods(&n);
    add_methods(s, m, n);
    m = hdb_rpc_health_methods(&n);
    add_methods(s, m, n);
    m = hdb_rpc_models_methods(&n);
    add_methods(s, m, n);
    m = hdb_rpc_euclides_methods(&n);
    add_methods(s, m, n);
    m = hdb_rpc_admin_methods(&n);
    add_methods(s, m, n);
    {
        char **names = hdb_calloc(s->nmethods, sizeof *names);
        for (size_t i = 0; i < s->nmethods; i++) {
            names[i] = hdb_malloc(strlen(s->methods[i].service) + strlen(s->methods[i].method) + 2);
            sprintf(names[i], "%s/%s", s->methods[i].service, s->methods[i].method);
        }
        s->metrics = hdb_metrics_create((const char *const *)names, s->nmethods);
        for (size_t i = 0; i < s->nmethods; i++) hdb_free(names[i]);
        hdb_free(names);
    }

    grpc_arg args[3];
    memset(args, 0, sizeof args);
    args[0].type = GRPC_ARG_INTEGER;
    args[0].key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
    args[0].value.integer = cfg->max_receive_message_bytes > INT_MAX
                                ? INT_MAX
                                : (int)cfg->max_receive_message_bytes;
    args[1].type = GRPC_ARG_INTEGER;
    args[1].key = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
    args[1].value.integer =
        cfg->max_send_message_bytes > INT_MAX ? INT_MAX : (int)cfg->max_send_message_bytes;
    /* Without this, a second server on the same port would start silently (SO_REUSEPORT). */
    args[2].type = GRPC_ARG_INTEGER;
    args[2].key = GRPC_ARG_ALLOW_REUSEPORT;
    args[2].value.integer = 0;
    grpc_channel_args chargs = {.num_args = 3, .args = args};
    s->srv = grpc_server_create(&chargs, NULL);

    s->handles = hdb_calloc(s->nmethods, sizeof *s->handles);
    for (size_t i = 0; i < s->nmethods; i++) {
        char path[256];
        snprintf(path, sizeof path, "/%s/%s", s->methods[i].service, s->methods[i].method);
        s->handles[i] = grpc_server_register_method(
            s->srv, path, NULL,
            s->methods[i].stream ? GRPC_SRM_PAYLOAD_NONE : GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER,
            0);
        HDB_ASSERT(s->handles[i] != NULL);
    }
    s->cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(s->srv, s->cq, NULL);
    s->threads = hdb_calloc((size_t)cfg->poll_threads, sizeof *s->threads);
    s->ctl = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(s->srv, s->ctl, NULL);

    grpc_server_credentials *creds = s->tls ? hdb_tls_credentials(s->tls)
                                            : grpc_insecure_server_credentials_create();
    int bound = grpc_server_add_http2_port(s->srv, cfg->listen, creds);
    grpc_server_credentials_release(creds);
    if (bound == 0) {
        hdb_errf(err, errlen, HDB_EIO,
                 "server.listen: cannot listen on %s (address in use, or invalid)", cfg->listen);
        grpc_server_destroy(s->srv);
        drain_and_destroy(s->cq);
        drain_and_destroy(s->ctl);
        server_free(s);
        return HDB_EIO;
    }
    grpc_server_start(s->srv);
    /* Arm the slots before any thread polls: nothing can arrive unseen. */
    for (size_t i = 0; i < s->nmethods; i++)
        for (int j = 0; j < SLOTS_PER_METHOD; j++) post_request(s, CALL_UNARY, i);
    for (int j = 0; j < SLOTS_PER_METHOD; j++) post_request(s, CALL_UNKNOWN, 0);
    pool_start(&s->work, cfg->threads);
    pool_start(&s->write, cfg->write_threads);
    pool_start(&s->model, cfg->model_rpc_threads);
    parker_start(s);
    for (int i = 0; i < cfg->poll_threads; i++)
        if (pthread_create(&s->threads[s->nthreads], NULL, call_thread_main, s) == 0) s->nthreads++;
    HDB_ASSERT(s->nthreads > 0);
    if (s->nthreads < cfg->poll_threads)
        HDB_WARN("server", "started %d of %d call threads", s->nthreads, cfg->poll_threads);
    HDB_INFO("server", "%s; %zu API key(s) configured%s", s->tls ? "TLS on" : "no TLS",
             hdb_auth_count(s->auth), s->auth ? "" : ", so every call is let in");
    *port = bound;
    *out = s;
    return HDB_OK;
}

int hdb_server_reload_tls(hdb_server *s, char *err, size_t errlen) {
    if (s->tls == NULL) return hdb_errf(err, errlen, HDB_EPRECOND, "TLS is not configured");
    return hdb_tls_reload(s->tls, err, errlen);
}

void hdb_server_stop(hdb_server *s) {
    if (s == NULL) return;
    static int shutdown_tag;
    int64_t deadline = hdb_mono_ns() + (int64_t)s->cfg->shutdown_grace_ms * 1000000;
    /* First the calls in flight finish while their connections stay open, and new calls get
     * UNAVAILABLE. Then a pause lets the last responses leave: once gRPC shuts down, it closes a
     * connection as soon as its last call is done, and closing a socket that still holds
     * unread bytes resets the connection, which can cut off a response not yet delivered. */
    atomic_store(&s->draining, true);
    /* Streams waiting for their client's next message would hold the drain for the whole
     * grace: they end now (one that is handling a message ends after answering it). */
    pthread_mutex_lock(&s->streams_mu);
    for (call_ctx *c = s->streams; c; c = c->snext)
        if (c->in_recv)
            grpc_call_cancel_with_status(c->call, GRPC_STATUS_UNAVAILABLE,
                                         "hilbertd is shutting down; the batches answered "
                                         "before this status are written, the others are not",
                                         NULL);
    pthread_mutex_unlock(&s->streams_mu);
    parker_flush(s);
    while (atomic_load(&s->working) > 0 && hdb_mono_ns() < deadline) usleep(1000);
    if (atomic_load(&s->working) == 0) usleep(DRAIN_PAUSE_US);
    /* Then gRPC stops: GOAWAY to every client, listeners closed; the notification comes once
     * every connection is gone. With no call left, only connections hold it up, and a client
     * that keeps an idle channel open may not close it for seconds: after IDLE_CLOSE_NS such
     * connections are closed, which loses nothing, instead of holding the stop for the whole
     * grace. */
    atomic_store(&s->stopping, true);
    grpc_server_shutdown_and_notify(s->srv, s->ctl, &shutdown_tag);
    int64_t now = hdb_mono_ns(), until = deadline;
    if (atomic_load(&s->working) == 0 && now + IDLE_CLOSE_NS < deadline)
        until = now + IDLE_CLOSE_NS;
    gpr_timespec wait = gpr_time_add(
        gpr_now(GPR_CLOCK_MONOTONIC),
        gpr_time_from_nanos(until > now ? until - now : 0, GPR_TIMESPAN));
    grpc_event ev = grpc_completion_queue_next(s->ctl, wait, NULL);
    if (ev.type == GRPC_QUEUE_TIMEOUT) {
        int running = atomic_load(&s->working);
        if (running > 0)
            HDB_WARN("server", "%d call(s) still running after %d ms; cancelling them", running,
                     s->cfg->shutdown_grace_ms);
        else
            HDB_INFO("server", "no call left; closing the client connections still open");
        grpc_server_cancel_all_calls(s->srv);
        ev = grpc_completion_queue_next(s->ctl, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    }
    HDB_ASSERT(ev.type == GRPC_OP_COMPLETE && ev.tag == &shutdown_tag);
    /* Handlers finish the calls that are queued or running; then they can go. */
    while (atomic_load(&s->inflight) > 0) usleep(1000);
    parker_stop(s);
    pool_stop(&s->work);
    pool_stop(&s->write);
    pool_stop(&s->model);
    grpc_server_destroy(s->srv);
    /* The call threads drain the queue and exit on GRPC_QUEUE_SHUTDOWN. */
    grpc_completion_queue_shutdown(s->cq);
    for (int i = 0; i < s->nthreads; i++) pthread_join(s->threads[i], NULL);
    grpc_completion_queue_destroy(s->cq);
    drain_and_destroy(s->ctl);
    server_free(s);
}
