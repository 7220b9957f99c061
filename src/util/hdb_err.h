/*
 * hdb_err.h - return codes and error detail buffers shared by every HilbertDB module.
 *
 * Functions return int: 0 (HDB_OK) on success, a small negative HDB_E* code on failure. The
 * human-readable detail goes into a caller-supplied buffer (char *err, size_t errlen; NULL
 * allowed), never into a global. The server maps codes to gRPC statuses in exactly one place
 * (hdb_server_status_from_rc in hdb_server.c).
 *
 * Thread-safety: no state; any thread.
 */
#ifndef HDB_ERR_H
#define HDB_ERR_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    HDB_OK = 0,
    HDB_EINVAL = -1,     /* bad input from a client or a config file */
    HDB_ENOMEM = -2,     /* allocation failed inside a library that reports it */
    HDB_ENOTFOUND = -3,  /* a named object does not exist */
    HDB_EEXIST = -4,     /* the object already exists */
    HDB_EPRECOND = -5,   /* the system is not in a state that allows the operation */
    HDB_ELIMIT = -6,     /* a configured limit was exceeded */
    HDB_ETIMEOUT = -7,   /* the deadline passed */
    HDB_EIO = -8,        /* storage or file system failure */
    HDB_ECORRUPT = -9,   /* stored data could not be decoded */
    HDB_EUNAVAIL = -10,  /* shutting down, or not ready yet */
    HDB_EUNIMPL = -11,   /* the operation is not implemented */
    HDB_EINTERNAL = -12, /* a bug or a failure inside a library */
    HDB_ECANCELLED = -13, /* the client went away */
    HDB_EFULL = -14,      /* the disk holding the data is (nearly) full; writes resume once
                           * space is freed */
    HDB_ETRIMMED = -15,   /* the timeline no longer holds the entries asked for */
    HDB_EPERM = -16,      /* the caller may not do this (role, confined path) */
    HDB_EUNAUTH = -17,    /* the caller did not prove who it is (no key, unknown key) */
    HDB_EAGAIN = -18      /* not yet: a handler asks to be parked and run again later
                           * (hdb_server.h); never reaches a client */
};

/* Returns a static, human-readable name for rc, e.g. "invalid argument". Never NULL. */
const char *hdb_strerror(int rc);

/* gRPC's name for status code `code`, one of its canonical codes 0..16 ("OK", "CANCELLED",
 * ..., "UNAUTHENTICATED"), or "UNKNOWN" for any other number. Static storage; any thread. */
const char *hdb_status_name(int code);

/* Formats a message into err (at most errlen bytes, always NUL-terminated when errlen > 0).
 * Does nothing when err is NULL or errlen is 0. Returns rc unchanged, so callers can write
 * `return hdb_errf(err, errlen, HDB_EINVAL, "k: must be > 0");`. */
int hdb_errf(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Formats a field path for messages into out (cap bytes, cut short when it does not fit),
 * e.g. hdb_pathf(sub, sizeof sub, "%s.filters[%zu]", path, i). */
void hdb_pathf(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Prepends "prefix" to the message already in err, e.g. turning "must be > 0" into
 * "points[3].vector: must be > 0". Keeps the result within errlen. Returns rc unchanged. */
int hdb_err_prefix(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#ifdef __cplusplus
}
#endif

#endif /* HDB_ERR_H */
