/*
 * hdb_types.c - names, parsing, ordering and formatting of the domain types.
 */
#include "hdb_types.h"

#include "hdb_err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const type_names[] = {NULL,    "string", "int64",    "float64",
                                         "bool",  "bytes",  "timestamp"};

const char *hdb_attr_type_name(int type) {
    if (type < 1 || type > HDB_ATTR_TYPE_MAX) return "unknown";
    return type_names[type];
}

int hdb_attr_type_parse(const char *name, hdb_attr_type *out) {
    if (name == NULL) return -1;
    for (int t = 1; t <= HDB_ATTR_TYPE_MAX; t++) {
        if (strcasecmp(name, type_names[t]) == 0) {
            *out = (hdb_attr_type)t;
            return 0;
        }
    }
    return -1;
}

const char *hdb_metric_name(int metric) {
    switch (metric) {
    case HDB_METRIC_L2: return "l2";
    case HDB_METRIC_IP: return "inner_product";
    case HDB_METRIC_COSINE: return "cosine";
    case HDB_METRIC_JACCARD: return "jaccard";
    default: return "unknown";
    }
}

int hdb_metric_parse(const char *name, hdb_metric *out) {
    if (name == NULL) return -1;
    if (strcasecmp(name, "l2") == 0) {
        *out = HDB_METRIC_L2;
    } else if (strcasecmp(name, "inner_product") == 0 || strcasecmp(name, "ip") == 0) {
        *out = HDB_METRIC_IP;
    } else if (strcasecmp(name, "cosine") == 0) {
        *out = HDB_METRIC_COSINE;
    } else if (strcasecmp(name, "jaccard") == 0) {
        *out = HDB_METRIC_JACCARD;
    } else {
        return -1;
    }
    return 0;
}

/* Maps a double to an unsigned key whose order is IEEE-754 totalOrder. */
static uint64_t double_key(double d) {
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return (u >> 63) ? ~u : (u | (UINT64_C(1) << 63));
}

int hdb_value_cmp(const hdb_value *a, const hdb_value *b) {
    if (a->type != b->type) return a->type < b->type ? -1 : 1;
    switch (a->type) {
    case HDB_ATTR_STRING:
    case HDB_ATTR_BYTES: {
        size_t n = a->u.s.n < b->u.s.n ? a->u.s.n : b->u.s.n;
        int c = n ? memcmp(a->u.s.p, b->u.s.p, n) : 0;
        if (c != 0) return c < 0 ? -1 : 1;
        return a->u.s.n == b->u.s.n ? 0 : (a->u.s.n < b->u.s.n ? -1 : 1);
    }
    case HDB_ATTR_INT64:
    case HDB_ATTR_TIMESTAMP:
        return a->u.i == b->u.i ? 0 : (a->u.i < b->u.i ? -1 : 1);
    case HDB_ATTR_FLOAT64: {
        uint64_t x = double_key(a->u.f), y = double_key(b->u.f);
        return x == y ? 0 : (x < y ? -1 : 1);
    }
    case HDB_ATTR_BOOL:
        return a->u.b == b->u.b ? 0 : (a->u.b ? 1 : -1);
    }
    return 0;
}

char *hdb_value_format(const hdb_value *v, char *buf, size_t buflen) {
    if (buflen == 0) return buf;
    switch (v->type) {
    case HDB_ATTR_STRING: {
        size_t n = v->u.s.n;
        if (n + 3 > buflen) {
            int cut = buflen > 6 ? (int)(buflen - 6) : 0;
            snprintf(buf, buflen, "\"%.*s...\"", cut, v->u.s.p);
        } else {
            snprintf(buf, buflen, "\"%.*s\"", (int)n, v->u.s.p);
        }
        break;
    }
    case HDB_ATTR_BYTES: snprintf(buf, buflen, "<%zu bytes>", v->u.s.n); break;
    case HDB_ATTR_INT64: snprintf(buf, buflen, "%lld", (long long)v->u.i); break;
    case HDB_ATTR_TIMESTAMP: snprintf(buf, buflen, "@%lldus", (long long)v->u.i); break;
    case HDB_ATTR_FLOAT64: snprintf(buf, buflen, "%.17g", v->u.f); break;
    case HDB_ATTR_BOOL: snprintf(buf, buflen, "%s", v->u.b ? "true" : "false"); break;
    default: snprintf(buf, buflen, "?"); break;
    }
    return buf;
}

const hdb_attr *hdb_attr_find(const hdb_attr *attrs, size_t n, const char *name, bool sorted) {
    if (!sorted) {
        for (size_t i = 0; i < n; i++)
            if (strcmp(attrs[i].name, name) == 0) return &attrs[i];
        return NULL;
    }
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(attrs[mid].name, name);
        if (c == 0) return &attrs[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static int attr_name_cmp(const void *a, const void *b) {
    return strcmp(((const hdb_attr *)a)->name, ((const hdb_attr *)b)->name);
}

void hdb_attrs_sort(hdb_attr *attrs, size_t n) {
    if (n > 1) qsort(attrs, n, sizeof *attrs, attr_name_cmp);
}

int hdb_name_check(const char *what, const char *s, char *err, size_t errlen) {
    if (s == NULL || s[0] == '\0') return hdb_errf(err, errlen, HDB_EINVAL, "%s: is required", what);
    size_t n = 0;
    for (const char *p = s; *p; p++, n++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '.' || c == '-';
        if (!ok)
            return hdb_errf(err, errlen, HDB_EINVAL,
                            "%s: character 0x%02x at offset %zu is not allowed (use [A-Za-z0-9_.-])",
                            what, (unsigned char)c, n);
        if (n >= HDB_NAME_MAX)
            return hdb_errf(err, errlen, HDB_EINVAL, "%s: longer than %d characters", what,
                            HDB_NAME_MAX);
    }
    return HDB_OK;
}

int hdb_all_finite(const float *a, size_t d, size_t *bad_index) {
    /* A float is NaN or +-Inf exactly when all exponent bits are set. Blocks of 64 are checked
     * branch-free (the compiler vectorises this), and only a bad block is searched. */
    const uint32_t exp = 0x7f800000u;
    size_t i = 0;
    while (i < d) {
        size_t end = d - i > 64 ? i + 64 : d;
        uint32_t bad = 0;
        for (size_t j = i; j < end; j++) {
            uint32_t u;
            memcpy(&u, a + j, sizeof u);
            bad |= (uint32_t)((u & exp) == exp);
        }
        if (bad) {
            for (size_t j = i; j < end; j++) {
                uint32_t u;
                memcpy(&u, a + j, sizeof u);
                if ((u & exp) == exp) {
                    if (bad_index) *bad_index = j;
                    return 0;
                }
            }
        }
        i = end;
    }
    return 1;
}


int hdb_sparse_check(const hdb_sparse_vec *v, uint32_t dim, char *err, size_t errlen) {
    for (uint32_t j = 0; j < v->n; j++) {
        if (v->idx[j] >= dim)
            return hdb_errf(err, errlen, HDB_EINVAL,
                            "vector.sparse.indices[%u]: %u is not below the dimension %u", j,
                            v->idx[j], dim);
        if (j > 0 && v->idx[j] <= v->idx[j - 1])
            return hdb_errf(err, errlen, HDB_EINVAL,
                            "vector.sparse.indices[%u]: %u %s; indices must be strictly "
                            "increasing",
                            j, v->idx[j],
                            v->idx[j] == v->idx[j - 1] ? "is repeated" : "is out of order");
    }
    size_t bad;
    if (!hdb_all_finite(v->val, v->n, &bad))
        return hdb_errf(err, errlen, HDB_EINVAL,
                        "vector.sparse.values[%zu]: is %s; values must be finite", bad,
                        v->val[bad] != v->val[bad] ? "NaN" : "infinite");
    return HDB_OK;
}
