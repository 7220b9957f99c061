/*
 * hdb_reembed.h - re-embedding: a background worker that fills one model space (the target)
 * from the kept inputs of another (the origin), through the target's model, and then follows
 * the origin until it is dropped.
 *
 * A model space created with reembed_from has one worker. It moves through these states, kept
 * in hdb_defs (kind HDB_DEF_REEMBED, label = the target's name) so that a restart goes on:
 *   COPYING    takes a snapshot of the origin's points at seq S, embeds every item's kept
 *              input ("hilbert.input") with the target's model and writes the items (with all
 *              their attributes) to the target, in batches; then deletes from the target every
 *              item that the snapshot does not hold (left by an earlier, interrupted copy).
 *              A restart in this state copies again from a new snapshot.
 *   FOLLOWING  reads the origin's timeline from S + 1 on and applies each change to the target
 *              in order (an add is embedded again; a remove, or an add without a kept input,
 *              deletes the item). The position is stored when it moved, at most every 5 s,
 *              and when the worker stops; the origin's timeline keeps every entry after it, and
 *              a replay of entries already applied leaves the same state.
 *   DONE       the origin was dropped (hdb_reembed_finish); nothing runs.
 *   FAILED     a permanent error (the target's model did not load, an origin entry that does
 *              not decode); nothing runs until the next start. Transient errors (a full disk,
 *              backpressure from a lagging index) are retried after a second; the status
 *              detail says why it waits.
 *
 * Writes of clients to the target itself stay ordered with the worker's: hdb_reembed_wait
 * makes a write wait until the worker has applied every origin change that was durable when the
 * write began, so that a switch of clients from the origin to the target (an alias) loses no
 * update.
 *
 * Thread-safety: every function may be called from any thread; a worker's own thread does the
 * work. hdb_reembed_start / stop / finish / free are called under the registry's DDL lock.
 */
#ifndef HDB_REEMBED_H
#define HDB_REEMBED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hdb_image.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hdb_catalog hdb_catalog;
typedef struct hdb_config hdb_config;
typedef struct hdb_defs hdb_defs;
typedef struct hdb_infer hdb_infer;
typedef struct hdb_model hdb_model;
typedef struct hdb_reembed hdb_reembed;
typedef struct hdb_source hdb_source;

/* The attribute that holds an item's kept input (bytes). */
#define HDB_INPUT_ATTR "hilbert.input"

typedef enum {
    HDB_REEMBED_COPYING = 1,
    HDB_REEMBED_FOLLOWING = 2,
    HDB_REEMBED_DONE = 3,
    HDB_REEMBED_FAILED = 4
} hdb_reembed_state;

/* What a worker works with. Every pointer is borrowed and must outlive the worker (the target
 * space owns target, model and image; the worker takes its own reference to origin_src). */
typedef struct {
    const char *target;          /* the re-embedding space's name */
    const char *origin;          /* the origin space's name */
    hdb_source *origin_src;      /* the origin's data source */
    hdb_source *target_src;      /* the target's data source */
    hdb_model *model;            /* the target's model; NULL: it did not load (FAILED) */
    const hdb_image_spec *image; /* the target's image input; NULL for tensor input */
    int64_t input_size;          /* floats per item of the target's model */
    uint32_t output_dim;
    hdb_catalog *cat;
    hdb_defs *defs;
    const hdb_config *cfg;
} hdb_reembed_spec;

typedef struct {
    hdb_reembed_state state;
    uint64_t copied;          /* items embedded and written, copy and follow */
    uint64_t total;           /* COPYING: items in the origin's snapshot */
    uint64_t skipped;         /* origin items without a usable kept input */
    uint64_t applied_seq;     /* origin changes up to this seq are in the target */
    uint64_t origin_last_seq; /* the origin's newest seq */
    char detail[512];         /* FAILED: why; else what it waits for, or "" */
} hdb_reembed_status;

/* Makes the worker of spec->target: with fresh (a space being created), COPYING from the
 * start, stored now over whatever was stored under that name; else with its stored state (none
 * stored: as fresh). spec->origin_src NULL means the origin no longer exists: the state is DONE
 * if it was stored so, else FAILED. Nothing runs until hdb_reembed_start. Errors: HDB_ECORRUPT
 * for a stored state that does not decode, the store's. */
int hdb_reembed_open(hdb_reembed **out, const hdb_reembed_spec *spec, bool fresh, char *err,
                     size_t errlen);

/* Starts the worker's thread (nothing for DONE and FAILED). infer must outlive it (stop
 * first). Calling it on a running worker does nothing. */
void hdb_reembed_start(hdb_reembed *r, hdb_infer *infer);

/* Stops the thread and waits for it; the position is stored. A stopped worker may be started
 * again. Waiting writes (hdb_reembed_wait) end with HDB_EUNAVAIL. */
void hdb_reembed_stop(hdb_reembed *r);

/* The origin is being dropped: HDB_EPRECOND (naming both spaces and the progress) while the
 * worker is COPYING, since the target would be left with part of the items. Otherwise stops
 * the worker for good: state DONE, stored. */
int hdb_reembed_finish(hdb_reembed *r, char *err, size_t errlen);

/* Frees a stopped worker. With forget (the target was dropped) its stored state is deleted
 * too. NULL is allowed. */
void hdb_reembed_free(hdb_reembed *r, bool forget);

/* The origin's name (borrowed from the worker). */
const char *hdb_reembed_origin(const hdb_reembed *r);

void hdb_reembed_status_get(hdb_reembed *r, hdb_reembed_status *st);

/* A client write to the target is about to be made: waits until the worker has applied every
 * change of the origin that is durable now, or deadline_ns (CLOCK_MONOTONIC) passes
 * (HDB_ETIMEOUT, with the progress in the message). HDB_OK at once for DONE and FAILED, and
 * HDB_EUNAVAIL when the worker stops meanwhile. Any thread; blocks the caller. */
int hdb_reembed_wait(hdb_reembed *r, int64_t deadline_ns, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif /* HDB_REEMBED_H */
