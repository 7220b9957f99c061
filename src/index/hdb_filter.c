/*
 * hdb_filter.c - checking and evaluating attribute filters (see hdb_filter.h).
 */
#include "hdb_filter.h"

#include "hdb_err.h"

#include <stdio.h>
#include <string.h>

/* ---------------------------------------------------------------- check */

typedef struct {
    const hdb_filter_attr *perm;
    size_t nperm;
    size_t conditions, values;
    char *err;
    size_t errlen;
} check_ctx;

static bool eq_type_ok(hdb_attr_type t) {
    return t == HDB_ATTR_STRING || t == HDB_ATTR_INT64 || t == HDB_ATTR_BOOL ||
           t == HDB_ATTR_BYTES || t == HDB_ATTR_TIMESTAMP;
}

static bool numeric(hdb_attr_type t) {
    return t == HDB_ATTR_INT64 || t == HDB_ATTR_FLOAT64;
}

static const hdb_filter_attr *perm_find(const check_ctx *c, const char *name) {
    for (size_t i = 0; i < c->nperm; i++)
        if (strcmp(c->perm[i].name, name) == 0) return &c->perm[i];
    return NULL;
}

/* A value of type t tested against permanent attribute pa (NULL: a payload attribute). */
static int check_against(const check_ctx *c, const char *path, const hdb_filter_attr *pa,
                         hdb_attr_type t, bool range) {
    if (pa == NULL || pa->type == t || (range && numeric(pa->type) && numeric(t))) return HDB_OK;
    return hdb_errf(c->err, c->errlen, HDB_EINVAL,
                    "%s: attribute \"%s\" is a permanent attribute of type %s, the value is %s",
                    path, pa->name, hdb_attr_type_name(pa->type), hdb_attr_type_name(t));
}

static int check_condition(check_ctx *c, const hdb_filter *f, const char *path) {
    if (++c->conditions > HDB_FILTER_MAX_CONDITIONS)
        return hdb_errf(c->err, c->errlen, HDB_EINVAL, "%s: the filter has more than %d conditions",
                        path, HDB_FILTER_MAX_CONDITIONS);
    if (f->name == NULL || f->name[0] == '\0')
        return hdb_errf(c->err, c->errlen, HDB_EINVAL, "%s.attribute: is required", path);
    const hdb_filter_attr *pa = perm_find(c, f->name);
    char sub[512];
    switch (f->op) {
    case HDB_FILTER_EQUALS:
    case HDB_FILTER_ONE_OF: {
        bool eq = f->op == HDB_FILTER_EQUALS;
        if (!eq && f->nvalues == 0)
            return hdb_errf(c->err, c->errlen, HDB_EINVAL, "%s.one_of.values: needs at least one "
                            "value", path);
        c->values += f->nvalues;
        if (c->values > HDB_FILTER_MAX_VALUES)
            return hdb_errf(c->err, c->errlen, HDB_EINVAL,
                            "%s.one_of.values: the filter lists more than %d values", path,
                            HDB_FILTER_MAX_VALUES);
        for (size_t i = 0; i < f->nvalues; i++) {
            if (eq)
                hdb_pathf(sub, sizeof sub, "%s.equals", path);
            else
                hdb_pathf(sub, sizeof sub, "%s.one_of.values[%zu]", path, i);
            hdb_attr_type t = f->values[i].type;
            if (!eq_type_ok(t))
                return hdb_errf(c->err, c->errlen, HDB_EINVAL,
                                "%s: a %s value cannot be tested for equality; use a range", sub,
                                hdb_attr_type_name(t));
            int rc = check_against(c, sub, pa, t, false);
            if (rc != HDB_OK) return rc;
        }
        return HDB_OK;
    }
    case HDB_FILTER_RANGE: {
        hdb_pathf(sub, sizeof sub, "%s.range", path);
        if (!f->has_lo && !f->has_hi)
            return hdb_errf(c->err, c->errlen, HDB_EINVAL, "%s: needs gt, gte, lt or lte", sub);
        const hdb_value *ends[2] = {f->has_lo ? &f->lo : NULL, f->has_hi ? &f->hi : NULL};
        for (int e = 0; e < 2; e++) {
            if (ends[e] == NULL) continue;
            hdb_attr_type t = ends[e]->type;
            if (!numeric(t) && t != HDB_ATTR_TIMESTAMP)
                return hdb_errf(c->err, c->errlen, HDB_EINVAL,
                                "%s: a range takes int64, float64 or timestamp bounds, not %s",
                                sub, hdb_attr_type_name(t));
            int rc = check_against(c, sub, pa, t, true);
            if (rc != HDB_OK) return rc;
        }
        if (ends[0] && ends[1] &&
            (ends[0]->type == HDB_ATTR_TIMESTAMP) != (ends[1]->type == HDB_ATTR_TIMESTAMP))
            return hdb_errf(c->err, c->errlen, HDB_EINVAL,
                            "%s: the bounds are %s and %s; both must be timestamps or numbers",
                            sub, hdb_attr_type_name(ends[0]->type),
                            hdb_attr_type_name(ends[1]->type));
        if (ends[0] && ends[0]->type == HDB_ATTR_FLOAT64 && ends[0]->u.f != ends[0]->u.f)
            return hdb_errf(c->err, c->errlen, HDB_EINVAL, "%s: a bound is NaN", sub);
        if (ends[1] && ends[1]->type == HDB_ATTR_FLOAT64 && ends[1]->u.f != ends[1]->u.f)
            return hdb_errf(c->err, c->errlen, HDB_EINVAL, "%s: a bound is NaN", sub);
        return HDB_OK;
    }
    case HDB_FILTER_EXISTS: return HDB_OK;
    default: break;
    }
    return hdb_errf(c->err, c->errlen, HDB_EINVAL, "%s: a test is required", path);
}

static int check_node(check_ctx *c, const hdb_filter *f, const char *path, int depth) {
    if (depth > HDB_FILTER_MAX_DEPTH)
        return hdb_errf(c->err, c->errlen, HDB_EINVAL, "%s: the filter nests deeper than %d levels",
                        path, HDB_FILTER_MAX_DEPTH);
    char sub[512];
    switch (f->op) {
    case HDB_FILTER_ALL:
    case HDB_FILTER_ANY: {
        const char *kind = f->op == HDB_FILTER_ALL ? "all" : "any";
        if (f->nkids == 0)
            return hdb_errf(c->err, c->errlen, HDB_EINVAL, "%s.%s.filters: needs at least one "
                            "filter", path, kind);
        for (size_t i = 0; i < f->nkids; i++) {
            hdb_pathf(sub, sizeof sub, "%s.%s.filters[%zu]", path, kind, i);
            int rc = check_node(c, &f->kids[i], sub, depth + 1);
            if (rc != HDB_OK) return rc;
        }
        return HDB_OK;
    }
    case HDB_FILTER_NOT:
        hdb_pathf(sub, sizeof sub, "%s.negate", path);
        return check_node(c, &f->kids[0], sub, depth + 1);
    case HDB_FILTER_EQUALS:
    case HDB_FILTER_ONE_OF:
    case HDB_FILTER_RANGE:
    case HDB_FILTER_EXISTS:
        hdb_pathf(sub, sizeof sub, "%s.condition", path);
        return check_condition(c, f, sub);
    }
    return hdb_errf(c->err, c->errlen, HDB_EINVAL, "%s: one of all, any, negate or condition is "
                    "required", path);
}

int hdb_filter_check(const hdb_filter *f, const char *path, const hdb_filter_attr *perm,
                     size_t nperm, char *err, size_t errlen) {
    check_ctx c = {.perm = perm, .nperm = nperm, .err = err, .errlen = errlen};
    return check_node(&c, f, path, 1);
}

/* ---------------------------------------------------------------- evaluation */

/* -1, 0, 1, or 2 when a and b do not compare (other kinds, NaN). */
static int range_cmp(const hdb_value *a, const hdb_value *b) {
    if (a->type == HDB_ATTR_TIMESTAMP || b->type == HDB_ATTR_TIMESTAMP) {
        if (a->type != b->type) return 2;
        return a->u.i == b->u.i ? 0 : (a->u.i < b->u.i ? -1 : 1);
    }
    if (!numeric(a->type) || !numeric(b->type)) return 2;
    if (a->type == HDB_ATTR_INT64 && b->type == HDB_ATTR_INT64)
        return a->u.i == b->u.i ? 0 : (a->u.i < b->u.i ? -1 : 1);
    double x = a->type == HDB_ATTR_INT64 ? (double)a->u.i : a->u.f;
    double y = b->type == HDB_ATTR_INT64 ? (double)b->u.i : b->u.f;
    if (x < y) return -1;
    if (x > y) return 1;
    return x == y ? 0 : 2;
}

static bool eval_condition(const hdb_filter *f, const hdb_attr *attrs, size_t nattrs) {
    const hdb_attr *a = hdb_attr_find(attrs, nattrs, f->name, true);
    if (f->op == HDB_FILTER_EXISTS) return (a != NULL) == f->exists;
    if (a == NULL) return false;
    const hdb_value *v = &a->value;
    switch (f->op) {
    case HDB_FILTER_EQUALS:
    case HDB_FILTER_ONE_OF:
        for (size_t i = 0; i < f->nvalues; i++)
            if (hdb_value_cmp(v, &f->values[i]) == 0) return true;
        return false;
    case HDB_FILTER_RANGE: {
        if (f->has_lo) {
            int c = range_cmp(v, &f->lo);
            if (c == 2 || c < 0 || (c == 0 && !f->lo_incl)) return false;
        }
        if (f->has_hi) {
            int c = range_cmp(v, &f->hi);
            if (c == 2 || c > 0 || (c == 0 && !f->hi_incl)) return false;
        }
        return true;
    }
    default: return false;
    }
}

bool hdb_filter_eval(const hdb_filter *f, const hdb_attr *attrs, size_t nattrs) {
    switch (f->op) {
    case HDB_FILTER_ALL:
        for (size_t i = 0; i < f->nkids; i++)
            if (!hdb_filter_eval(&f->kids[i], attrs, nattrs)) return false;
        return true;
    case HDB_FILTER_ANY:
        for (size_t i = 0; i < f->nkids; i++)
            if (hdb_filter_eval(&f->kids[i], attrs, nattrs)) return true;
        return false;
    case HDB_FILTER_NOT: return !hdb_filter_eval(&f->kids[0], attrs, nattrs);
    default: return eval_condition(f, attrs, nattrs);
    }
}

size_t hdb_filter_conditions(const hdb_filter *f) {
    if (f->op == HDB_FILTER_ALL || f->op == HDB_FILTER_ANY || f->op == HDB_FILTER_NOT) {
        size_t n = 0;
        for (size_t i = 0; i < f->nkids; i++) n += hdb_filter_conditions(&f->kids[i]);
        return n;
    }
    return 1;
}
