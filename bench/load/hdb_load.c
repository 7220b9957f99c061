/*
 * hdb_load.c - a closed-loop load generator for one unary gRPC method, written on gRPC core's C
 * API (libgrpc, no C++ and no Python), so that a server's own per-call cost can be read off
 * without a heavy client's cost on top of it.
 *
 *   hdb_load --target 127.0.0.1:50051 --method /grpc.health.v1.Health/Check \
 *            --requests health.req --concurrency 4 --calls 10000
 *
 * The requests file holds pre-serialized request messages, each a 4-byte little-endian length
 * then that many bytes (a zero length is an empty message, e.g. a HealthCheckRequest for the
 * overall health). From Python: f.write(struct.pack('<I', len(b)) + b) with
 * b = request.SerializeToString(); from a shell, printf '\0\0\0\0' > health.req.
 *
 * How it runs: one insecure channel, one completion queue polled by the main thread only, and
 * --concurrency slots, each with one call in flight at a time. A call is one batch of the six
 * client ops (send initial metadata, the message and the half-close; receive initial metadata,
 * the reply and the status); when its completion arrives the slot starts its next call. The
 * client first waits for the channel to be READY (up to --deadline-ms, at least 10 s), then
 * makes --warmup calls that are not measured, then --calls calls that are.
 *
 * What it measures: calls per second over the measured phase (from the first measured call's
 * start to the last one's completion) and, for every measured call, the latency from just
 * before grpc_call_start_batch to the moment the completion queue hands back the completion
 * (CLOCK_MONOTONIC): p50, p90, p99 and max, failed calls included. It also counts the calls
 * that ended with a status other than OK (the first one's code and details are printed) and
 * the mean reply size of the calls that succeeded.
 *
 * Output on stdout: one line for people, then one JSON line; diagnostics go to stderr.
 * Exit status: 0 when every measured call ended OK, 1 when any did not (or the target never
 * became ready), 2 for a bad command line or requests file.
 */
#include "hdb_err.h"

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/time.h>

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_CONCURRENCY 1000
#define MAX_CALLS 100000000LL
#define MAX_DEADLINE_MS 3600000LL
#define FIRST_ERROR_MAX 1024
#define CONNECT_WAIT_MS 10000LL /* least wait for the channel to be ready */

/* The command line, checked. */
typedef struct {
    const char *target;
    const char *method;
    const char *requests;
    const char *label;
    long long concurrency;
    long long calls;
    long long warmup;
    long long deadline_ms;
} options;

/* The requests file, one byte buffer per message, built once. */
typedef struct {
    grpc_byte_buffer **bufs;
    size_t count;
} request_set;

/* One in-flight call and what its batch fills in. */
typedef struct {
    grpc_call *call;
    grpc_byte_buffer *send; /* this call's copy of the request (the op empties it) */
    grpc_byte_buffer *recv;
    grpc_metadata_array initial_md;
    grpc_metadata_array trailing_md;
    grpc_status_code status;
    grpc_slice details;
    uint64_t start_ns;
} slot;

/* The state of a run: the gRPC objects, the slots, the current phase and the results. */
typedef struct {
    grpc_channel *channel;
    grpc_completion_queue *cq;
    void *method_handle; /* from grpc_channel_register_call */
    gpr_timespec deadline_span;
    const request_set *reqs;
    size_t next_req;
    slot *slots;
    size_t nslots;
    /* the current phase */
    uint64_t total, issued, completed;
    size_t in_flight;
    bool measured;
    bool aborted;
    /* results of the measured phase */
    double *latency_ms; /* one per measured call, in completion order */
    uint64_t errors;
    char first_error[FIRST_ERROR_MAX];
    uint64_t ok_calls;
    uint64_t reply_bytes;
} run_state;

static const char usage_text[] =
    "Usage: hdb_load --target HOST:PORT --method /pkg.Service/Method --requests FILE\n"
    "                [--concurrency N] [--calls N] [--warmup N] [--deadline-ms N] [--label TEXT]\n"
    "       hdb_load --help\n"
    "\n"
    "A closed-loop load generator for one unary gRPC method on gRPC core's C API: one\n"
    "plaintext channel, one completion queue polled by one thread, N calls in flight, each\n"
    "call one batch of the six client ops. It measures calls/s and per-call latency with\n"
    "next to no client cost, so that the server's own per-call overhead can be read off.\n"
    "\n"
    "Options (each also accepts the --option=value form):\n"
    "  --target HOST:PORT  server address, any gRPC target (e.g. unix:PATH); plaintext only\n"
    "  --method PATH       full method path, /package.Service/Method\n"
    "  --requests FILE     pre-serialized request messages, each a 4-byte little-endian\n"
    "                      length then that many bytes (0: an empty message); the calls\n"
    "                      send them in turn, cycling\n"
    "  --concurrency N     calls kept in flight, 1..1000 (default 1)\n"
    "  --calls N           calls measured, 1..100000000 (default 10000)\n"
    "  --warmup N          calls made first and not measured, 0..100000000 (default 200)\n"
    "  --deadline-ms N     deadline of each call, 1..3600000 ms (default 10000); before\n"
    "                      the first call the client waits this long, but at least 10 s,\n"
    "                      for the channel to be ready\n"
    "  --label TEXT        name put on the result lines (default: the method)\n"
    "  --help              print this help and exit\n"
    "\n"
    "Latency: from just before a call's batch starts to its completion (CLOCK_MONOTONIC),\n"
    "over every measured call, failed ones included; calls/s over the measured phase.\n"
    "Output (stdout): a line for people, then a JSON line with label, calls, concurrency,\n"
    "qps, p50_ms, p90_ms, p99_ms, max_ms, errors, first_error (\"CODE details\" or null)\n"
    "and reply_bytes_mean (over the calls that succeeded).\n"
    "Exit status: 0 when every measured call ended OK, 1 when any did not (or the target\n"
    "never became ready), 2 for a bad command line or requests file.\n";

/* Prints a command-line error naming the option and returns the exit code for it (2). */
static int usage_error(const char *option, const char *what) {
    fprintf(stderr, "hdb_load: %s: %s (hdb_load --help lists the options)\n", option, what);
    return 2;
}

/* Prints that VALUE is no integer in the range the option takes (RANGE, e.g. "1..1000") and
 * returns the exit code for it (2). */
static int bad_integer(const char *option, const char *range, const char *value) {
    fprintf(stderr,
            "hdb_load: %s: expected an integer %s, got '%s' (hdb_load --help lists the "
            "options)\n",
            option, range, value);
    return 2;
}

/* Parses a decimal integer in [lo, hi] into *out; false when it is not one. */
static bool parse_int(const char *s, long long lo, long long hi, long long *out) {
    if (s == NULL || *s == '\0') return false;
    errno = 0;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) return false;
    *out = v;
    return true;
}

/* Fills *o from argv. Returns -1 when the run should go on, otherwise the exit code: 0 after
 * --help, 2 for a bad or missing option (with a message on stderr). */
static int parse_options(int argc, char **argv, options *o) {
    *o = (options){.concurrency = 1, .calls = 10000, .warmup = 200, .deadline_ms = 10000};
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            fputs(usage_text, stdout);
            return 0;
        }
        if (strncmp(arg, "--", 2) != 0) return usage_error(arg, "unexpected argument");
        /* --name=value or --name value */
        char name[32];
        const char *value = NULL;
        const char *eq = strchr(arg, '=');
        size_t name_len = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
        if (name_len >= sizeof name) return usage_error(arg, "unknown option");
        memcpy(name, arg, name_len);
        name[name_len] = '\0';
        static const char *const known[] = {"--target", "--method",      "--requests",
                                            "--label",  "--concurrency", "--calls",
                                            "--warmup", "--deadline-ms"};
        bool is_known = false;
        for (size_t k = 0; k < sizeof known / sizeof known[0]; k++) {
            if (strcmp(name, known[k]) == 0) is_known = true;
        }
        if (!is_known) return usage_error(name, "unknown option");
        if (eq != NULL) {
            value = eq + 1;
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            return usage_error(name, "needs a value");
        }

        if (strcmp(name, "--target") == 0) {
            if (*value == '\0') return usage_error(name, "empty address");
            o->target = value;
        } else if (strcmp(name, "--method") == 0) {
            const char *slash = value[0] == '/' ? strchr(value + 1, '/') : NULL;
            if (slash == NULL || slash == value + 1 || slash[1] == '\0' ||
                strchr(slash + 1, '/') != NULL) {
                return usage_error(name, "expected a method path like /package.Service/Method");
            }
            o->method = value;
        } else if (strcmp(name, "--requests") == 0) {
            if (*value == '\0') return usage_error(name, "empty file name");
            o->requests = value;
        } else if (strcmp(name, "--label") == 0) {
            o->label = value;
        } else if (strcmp(name, "--concurrency") == 0) {
            if (!parse_int(value, 1, MAX_CONCURRENCY, &o->concurrency)) {
                return bad_integer(name, "1..1000", value);
            }
        } else if (strcmp(name, "--calls") == 0) {
            if (!parse_int(value, 1, MAX_CALLS, &o->calls)) {
                return bad_integer(name, "1..100000000", value);
            }
        } else if (strcmp(name, "--warmup") == 0) {
            if (!parse_int(value, 0, MAX_CALLS, &o->warmup)) {
                return bad_integer(name, "0..100000000", value);
            }
        } else { /* --deadline-ms */
            if (!parse_int(value, 1, MAX_DEADLINE_MS, &o->deadline_ms)) {
                return bad_integer(name, "1..3600000 (milliseconds)", value);
            }
        }
    }
    if (o->target == NULL) return usage_error("--target", "missing (the server's HOST:PORT)");
    if (o->method == NULL) return usage_error("--method", "missing (/package.Service/Method)");
    if (o->requests == NULL) return usage_error("--requests", "missing (the requests file)");
    if (o->label == NULL) o->label = o->method;
    return -1;
}

/* Destroys the byte buffers of *rs and the array holding them. */
static void requests_free(request_set *rs) {
    for (size_t i = 0; i < rs->count; i++)
        grpc_byte_buffer_destroy(rs->bufs[i]);
    free(rs->bufs);
    rs->bufs = NULL;
    rs->count = 0;
}

/* Reads the whole of PATH into a new buffer (*data, *len). False, with a message naming the
 * file on stderr, when it cannot be read. */
static bool read_file(const char *path, unsigned char **data, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "hdb_load: --requests %s: %s\n", path, strerror(errno));
        return false;
    }
    size_t cap = 65536, n = 0;
    unsigned char *buf = malloc(cap);
    if (buf == NULL) {
        fprintf(stderr, "hdb_load: --requests %s: out of memory\n", path);
        fclose(f);
        return false;
    }
    for (;;) {
        if (n == cap) {
            unsigned char *bigger = cap <= SIZE_MAX / 2 ? realloc(buf, cap * 2) : NULL;
            if (bigger == NULL) {
                fprintf(stderr, "hdb_load: --requests %s: out of memory\n", path);
                free(buf);
                fclose(f);
                return false;
            }
            buf = bigger;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    bool failed = ferror(f) != 0;
    int read_errno = errno;
    fclose(f);
    if (failed) {
        fprintf(stderr, "hdb_load: --requests %s: read error: %s\n", path, strerror(read_errno));
        free(buf);
        return false;
    }
    *data = buf;
    *len = n;
    return true;
}

/* Loads the requests file into *rs: one byte buffer per length-prefixed record. False, with a
 * message naming the file, when it is unreadable, empty or truncated. */
static bool requests_load(const char *path, request_set *rs) {
    rs->bufs = NULL;
    rs->count = 0;
    unsigned char *data = NULL;
    size_t len = 0;
    if (!read_file(path, &data, &len)) return false;

    /* First pass: check the framing and count the records. */
    size_t count = 0;
    for (size_t pos = 0; pos < len;) {
        if (len - pos < 4) {
            fprintf(stderr,
                    "hdb_load: --requests %s: truncated: %zu stray bytes at offset %zu "
                    "(a record is a 4-byte little-endian length then that many bytes)\n",
                    path, len - pos, pos);
            free(data);
            return false;
        }
        uint32_t n = (uint32_t)data[pos] | (uint32_t)data[pos + 1] << 8 |
                     (uint32_t)data[pos + 2] << 16 | (uint32_t)data[pos + 3] << 24;
        if (n > len - pos - 4) {
            fprintf(stderr,
                    "hdb_load: --requests %s: truncated: record %zu at offset %zu says %u bytes "
                    "but only %zu follow\n",
                    path, count + 1, pos, (unsigned)n, len - pos - 4);
            free(data);
            return false;
        }
        pos += 4 + (size_t)n;
        count++;
    }
    if (count == 0) {
        fprintf(stderr, "hdb_load: --requests %s: empty file, no request records\n", path);
        free(data);
        return false;
    }

    rs->bufs = calloc(count, sizeof *rs->bufs);
    if (rs->bufs == NULL) {
        fprintf(stderr, "hdb_load: --requests %s: out of memory\n", path);
        free(data);
        return false;
    }
    /* Second pass: one byte buffer per record. grpc_raw_byte_buffer_create takes its own ref
     * on each slice, so ours is dropped right after. */
    size_t pos = 0;
    for (size_t i = 0; i < count; i++) {
        uint32_t n = (uint32_t)data[pos] | (uint32_t)data[pos + 1] << 8 |
                     (uint32_t)data[pos + 2] << 16 | (uint32_t)data[pos + 3] << 24;
        pos += 4;
        grpc_byte_buffer *bb;
        if (n == 0) {
            bb = grpc_raw_byte_buffer_create(NULL, 0);
        } else {
            grpc_slice s = grpc_slice_from_copied_buffer((const char *)data + pos, n);
            bb = grpc_raw_byte_buffer_create(&s, 1);
            grpc_slice_unref(s);
        }
        if (bb == NULL) { /* gRPC aborts on allocation failure, but check anyway */
            fprintf(stderr, "hdb_load: --requests %s: out of memory\n", path);
            requests_free(rs);
            free(data);
            return false;
        }
        rs->bufs[i] = bb;
        rs->count = i + 1;
        pos += n;
    }
    free(data);
    return true;
}

/* CLOCK_MONOTONIC now, in nanoseconds. */
static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The name of a channel connectivity state. */
static const char *connectivity_name(grpc_connectivity_state s) {
    switch (s) {
    case GRPC_CHANNEL_IDLE:
        return "IDLE";
    case GRPC_CHANNEL_CONNECTING:
        return "CONNECTING";
    case GRPC_CHANNEL_READY:
        return "READY";
    case GRPC_CHANNEL_TRANSIENT_FAILURE:
        return "TRANSIENT_FAILURE";
    case GRPC_CHANNEL_SHUTDOWN:
        return "SHUTDOWN";
    }
    return "UNKNOWN";
}

/* Starts the next call in slot S: a fresh call on the registered method, this call's copy of
 * the next request, and one batch of the six client ops tagged with S. False (with a message
 * on stderr) when gRPC refuses; nothing is then in flight in S. */
static bool start_call(run_state *r, slot *s) {
    gpr_timespec deadline = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), r->deadline_span);
    s->call = grpc_channel_create_registered_call(r->channel, NULL, GRPC_PROPAGATE_DEFAULTS, r->cq,
                                                  r->method_handle, deadline, NULL);
    if (s->call == NULL) {
        fprintf(stderr, "hdb_load: grpc_channel_create_registered_call failed\n");
        return false;
    }
    /* The SEND_MESSAGE op takes the slices out of the byte buffer it is given (grpc_types.h:
     * "the contents of send_message are not guaranteed and likely empty" after the call). In
     * 1.51 the buffer is empty as soon as grpc_call_start_batch returns, and sending it again
     * silently sends an empty message, so one buffer cannot serve several calls. Each call
     * gets a copy; grpc_byte_buffer_copy only takes refs on the slices, no bytes are copied. */
    s->send = grpc_byte_buffer_copy(r->reqs->bufs[r->next_req]);
    if (s->send == NULL) {
        fprintf(stderr, "hdb_load: out of memory\n");
        grpc_call_unref(s->call);
        s->call = NULL;
        return false;
    }
    r->next_req = (r->next_req + 1) % r->reqs->count;
    s->recv = NULL;
    grpc_metadata_array_init(&s->initial_md);
    grpc_metadata_array_init(&s->trailing_md);
    s->status = GRPC_STATUS_UNKNOWN;
    s->details = grpc_empty_slice();

    grpc_op ops[6];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = s->send;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &s->initial_md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &s->recv;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &s->trailing_md;
    ops[5].data.recv_status_on_client.status = &s->status;
    ops[5].data.recv_status_on_client.status_details = &s->details;

    s->start_ns = now_ns();
    grpc_call_error ce = grpc_call_start_batch(s->call, ops, 6, s, NULL);
    if (ce != GRPC_CALL_OK) {
        fprintf(stderr, "hdb_load: grpc_call_start_batch failed (grpc_call_error %d)\n", (int)ce);
        grpc_metadata_array_destroy(&s->initial_md);
        grpc_metadata_array_destroy(&s->trailing_md);
        grpc_byte_buffer_destroy(s->send);
        s->send = NULL;
        grpc_call_unref(s->call);
        s->call = NULL;
        return false;
    }
    r->issued++;
    r->in_flight++;
    return true;
}

/* Keeps the first error as "CODE details", cut at a UTF-8 character boundary if too long. */
static void keep_first_error(run_state *r, grpc_status_code code, grpc_slice details) {
    if (r->first_error[0] != '\0') return;
    int n = snprintf(r->first_error, sizeof r->first_error, "%s %.*s",
                     hdb_status_name((int)code), (int)GRPC_SLICE_LENGTH(details),
                     (const char *)GRPC_SLICE_START_PTR(details));
    if (n >= (int)sizeof r->first_error) {
        size_t len = sizeof r->first_error - 1;
        /* drop a multi-byte character that snprintf cut in two */
        size_t cut = len;
        while (cut > 0 && ((unsigned char)r->first_error[cut - 1] & 0xC0) == 0x80)
            cut--;
        if (cut > 0 && ((unsigned char)r->first_error[cut - 1] & 0x80) != 0) {
            unsigned char lead = (unsigned char)r->first_error[cut - 1];
            size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
            if (len - (cut - 1) < need) r->first_error[cut - 1] = '\0';
        }
    }
}

/* Handles the completion of slot S's call: records its latency, status and reply size when
 * the phase is measured, frees what the batch returned and unrefs the call. */
static void finish_call(run_state *r, slot *s, bool batch_ok, uint64_t end_ns) {
    grpc_status_code status = s->status;
    if (!batch_ok && status == GRPC_STATUS_OK) status = GRPC_STATUS_UNKNOWN;
    if (r->measured) {
        r->latency_ms[r->completed] = (double)(end_ns - s->start_ns) / 1e6;
        if (status == GRPC_STATUS_OK) {
            r->ok_calls++;
            if (s->recv != NULL) r->reply_bytes += grpc_byte_buffer_length(s->recv);
        } else {
            r->errors++;
            keep_first_error(r, status, s->details);
        }
    }
    r->completed++;
    r->in_flight--;
    if (s->recv != NULL) grpc_byte_buffer_destroy(s->recv);
    s->recv = NULL;
    grpc_byte_buffer_destroy(s->send);
    s->send = NULL;
    grpc_slice_unref(s->details);
    grpc_metadata_array_destroy(&s->initial_md);
    grpc_metadata_array_destroy(&s->trailing_md);
    grpc_call_unref(s->call);
    s->call = NULL;
}

/* Runs one phase of TOTAL calls on up to r->nslots slots, polling the completion queue until
 * all have completed. Returns the phase's wall time in ns. On a gRPC refusal it stops starting
 * calls, lets those in flight finish and sets r->aborted. */
static uint64_t run_phase(run_state *r, uint64_t total, bool measured) {
    r->total = total;
    r->issued = 0;
    r->completed = 0;
    r->in_flight = 0;
    r->measured = measured;
    uint64_t t0 = now_ns();
    for (size_t i = 0; i < r->nslots && r->issued < total && !r->aborted; i++) {
        if (!start_call(r, &r->slots[i])) r->aborted = true;
    }
    uint64_t t_end = t0;
    while (r->in_flight > 0) {
        grpc_event ev =
            grpc_completion_queue_next(r->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
        uint64_t t = now_ns();
        if (ev.type != GRPC_OP_COMPLETE) { /* cannot happen before the queue is shut down */
            fprintf(stderr, "hdb_load: unexpected completion queue event %d\n", (int)ev.type);
            r->aborted = true;
            break;
        }
        slot *s = ev.tag;
        finish_call(r, s, ev.success != 0, t);
        t_end = t;
        if (r->issued < total && !r->aborted && !start_call(r, s)) r->aborted = true;
    }
    return t_end - t0;
}

/* Asks the channel to connect and waits, up to DEADLINE, until it is READY. False (with a
 * message) when it is not ready by then. */
static bool wait_ready(grpc_channel *ch, grpc_completion_queue *cq, gpr_timespec deadline,
                       const char *target) {
    grpc_connectivity_state st = grpc_channel_check_connectivity_state(ch, 1);
    int tag = 0;
    while (st != GRPC_CHANNEL_READY) {
        if (st == GRPC_CHANNEL_SHUTDOWN) break;
        grpc_channel_watch_connectivity_state(ch, st, deadline, cq, &tag);
        grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
        if (ev.type != GRPC_OP_COMPLETE || ev.success == 0) break; /* deadline passed */
        st = grpc_channel_check_connectivity_state(ch, 1);
    }
    if (st == GRPC_CHANNEL_READY) return true;
    fprintf(stderr, "hdb_load: %s did not become ready in time (channel state %s)\n", target,
            connectivity_name(grpc_channel_check_connectivity_state(ch, 0)));
    return false;
}

/* qsort comparator for doubles, ascending. */
static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The nearest-rank P-th percentile (0 < P <= 100) of the N sorted values in V. */
static double percentile(const double *v, uint64_t n, double p) {
    double rank = p / 100.0 * (double)n;
    uint64_t k = (uint64_t)rank;
    if ((double)k < rank) k++; /* ceil */
    if (k < 1) k = 1;
    if (k > n) k = n;
    return v[k - 1];
}

/* Writes S to F as a JSON string literal. */
static void json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        switch (*p) {
        case '"':
            fputs("\\\"", f);
            break;
        case '\\':
            fputs("\\\\", f);
            break;
        case '\n':
            fputs("\\n", f);
            break;
        case '\r':
            fputs("\\r", f);
            break;
        case '\t':
            fputs("\\t", f);
            break;
        default:
            if (*p < 0x20) {
                fprintf(f, "\\u%04x", *p);
            } else {
                fputc(*p, f);
            }
        }
    }
    fputc('"', f);
}

/* Prints the human line and the JSON line of the measured phase. */
static void report(const run_state *r, const options *o, uint64_t wall_ns) {
    uint64_t n = r->completed;
    qsort(r->latency_ms, n, sizeof r->latency_ms[0], cmp_double);
    double qps = wall_ns > 0 ? (double)n / ((double)wall_ns / 1e9) : 0.0;
    double p50 = percentile(r->latency_ms, n, 50), p90 = percentile(r->latency_ms, n, 90);
    double p99 = percentile(r->latency_ms, n, 99), max = r->latency_ms[n - 1];
    double reply_mean = r->ok_calls > 0 ? (double)r->reply_bytes / (double)r->ok_calls : 0.0;

    printf("%s: %llu calls, concurrency %lld: %.1f calls/s, p50 %.3f ms, p90 %.3f ms, "
           "p99 %.3f ms, max %.3f ms, errors %llu",
           o->label, (unsigned long long)n, o->concurrency, qps, p50, p90, p99, max,
           (unsigned long long)r->errors);
    if (r->errors > 0) printf(" (first: %s)", r->first_error);
    printf(", reply %.1f B mean\n", reply_mean);

    fputs("{\"label\":", stdout);
    json_string(stdout, o->label);
    printf(",\"calls\":%llu,\"concurrency\":%lld,\"qps\":%.1f,\"p50_ms\":%.4f,\"p90_ms\":%.4f,"
           "\"p99_ms\":%.4f,\"max_ms\":%.4f,\"errors\":%llu,\"first_error\":",
           (unsigned long long)n, o->concurrency, qps, p50, p90, p99, max,
           (unsigned long long)r->errors);
    if (r->errors > 0) {
        json_string(stdout, r->first_error);
    } else {
        fputs("null", stdout);
    }
    printf(",\"reply_bytes_mean\":%.1f}\n", reply_mean);
    fflush(stdout);
}

/* Connects, runs the warmup and the measured phase, reports, and destroys the completion queue
 * and the channel. Returns the exit code. */
static int run(const options *o, const request_set *reqs) {
    run_state r;
    memset(&r, 0, sizeof r);
    r.reqs = reqs;
    r.nslots = (size_t)o->concurrency;
    r.deadline_span = gpr_time_from_millis(o->deadline_ms, GPR_TIMESPAN);
    r.slots = calloc(r.nslots, sizeof *r.slots);
    r.latency_ms = malloc((size_t)o->calls * sizeof *r.latency_ms);
    if (r.slots == NULL || r.latency_ms == NULL) {
        fprintf(stderr, "hdb_load: out of memory for %lld calls\n", o->calls);
        free(r.slots);
        free(r.latency_ms);
        return 1;
    }

    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    r.channel = grpc_channel_create(o->target, creds, NULL);
    grpc_channel_credentials_release(creds);
    r.cq = grpc_completion_queue_create_for_next(NULL);
    /* A registered method spares the per-call interning of the path (what C++ stubs do). The
     * method string must outlive the channel: it is argv's. */
    r.method_handle = grpc_channel_register_call(r.channel, o->method, NULL, NULL);

    int rc = 1;
    /* The connect wait gets at least CONNECT_WAIT_MS, so that a tiny --deadline-ms (to make
     * the calls time out) does not stop the run before it starts. */
    long long wait_ms = o->deadline_ms > CONNECT_WAIT_MS ? o->deadline_ms : CONNECT_WAIT_MS;
    gpr_timespec ready_by =
        gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(wait_ms, GPR_TIMESPAN));
    if (wait_ready(r.channel, r.cq, ready_by, o->target)) {
        if (o->warmup > 0) run_phase(&r, (uint64_t)o->warmup, false);
        uint64_t wall = 0;
        if (!r.aborted) wall = run_phase(&r, (uint64_t)o->calls, true);
        if (r.aborted) {
            fprintf(stderr, "hdb_load: run aborted after %llu measured calls\n",
                    (unsigned long long)(r.measured ? r.completed : 0));
        } else {
            report(&r, o, wall);
            rc = r.errors == 0 ? 0 : 1;
        }
    }

    grpc_completion_queue_shutdown(r.cq);
    while (grpc_completion_queue_next(r.cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(r.cq);
    grpc_channel_destroy(r.channel);
    free(r.slots);
    free(r.latency_ms);
    return rc;
}

/* Parses the command line, loads the requests and runs. The byte buffers are made and destroyed
 * between grpc_init and grpc_shutdown (destroying one enters gRPC's exec context). */
int main(int argc, char **argv) {
    options o;
    int rc = parse_options(argc, argv, &o);
    if (rc >= 0) return rc;
    grpc_init();
    request_set reqs;
    if (requests_load(o.requests, &reqs)) {
        rc = run(&o, &reqs);
        requests_free(&reqs);
    } else {
        rc = 2;
    }
    grpc_shutdown();
    return rc;
}
