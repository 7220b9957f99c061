/*
 * hdb_err.c - the table of return-code names and the error-buffer helpers.
 */
#include "hdb_err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *hdb_status_name(int code) {
    static const char *const names[] = {"OK",
                                        "CANCELLED",
                                        "UNKNOWN",
                                        "INVALID_ARGUMENT",
                                        "DEADLINE_EXCEEDED",
                                        "NOT_FOUND",
                                        "ALREADY_EXISTS",
                                        "PERMISSION_DENIED",
                                        "RESOURCE_EXHAUSTED",
                                        "FAILED_PRECONDITION",
                                        "ABORTED",
                                        "OUT_OF_RANGE",
                                        "UNIMPLEMENTED",
                                        "INTERNAL",
                                        "UNAVAILABLE",
                                        "DATA_LOSS",
                                        "UNAUTHENTICATED"};
    return code >= 0 && (size_t)code < sizeof names / sizeof names[0] ? names[code] : "UNKNOWN";
}

const char *hdb_strerror(int rc) {
    switch (rc) {
    case HDB_OK: return "ok";
    case HDB_EINVAL: return "invalid argument";
    case HDB_ENOMEM: return "out of memory";
    case HDB_ENOTFOUND: return "not found";
    case HDB_EEXIST: return "already exists";
    case HDB_EPRECOND: return "failed precondition";
    case HDB_ELIMIT: return "limit exceeded";
    case HDB_ETIMEOUT: return "deadline exceeded";
    case HDB_EIO: return "i/o error";
    case HDB_ECORRUPT: return "corrupt data";
    case HDB_EUNAVAIL: return "unavailable";
    case HDB_EUNIMPL: return "not implemented";
    case HDB_EINTERNAL: return "internal error";
    case HDB_ECANCELLED: return "cancelled";
    case HDB_EFULL: return "disk full";
    case HDB_EPERM: return "permission denied";
    case HDB_EUNAUTH: return "unauthenticated";
    case HDB_EAGAIN: return "try again";
    case HDB_ETRIMMED: return "trimmed";
    default: return "unknown error";
    }
}

int hdb_errf(char *err, size_t errlen, int rc, const char *fmt, ...) {
    if (err == NULL || errlen == 0) return rc;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return rc;
}

void hdb_pathf(char *out, size_t cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, cap, fmt, ap);
    va_end(ap);
}

int hdb_err_prefix(char *err, size_t errlen, int rc, const char *fmt, ...) {
    if (err == NULL || errlen == 0) return rc;
    char prefix[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    if (n < 0) return rc;
    size_t plen = strlen(prefix);
    size_t mlen = strnlen(err, errlen - 1);
    if (plen >= errlen - 1) {
        memcpy(err, prefix, errlen - 1);
        err[errlen - 1] = '\0';
        return rc;
    }
    /* Keep as much of the old message as fits after the prefix. */
    if (plen + mlen > errlen - 1) mlen = errlen - 1 - plen;
    memmove(err + plen, err, mlen);
    memcpy(err, prefix, plen);
    err[plen + mlen] = '\0';
    return rc;
}
