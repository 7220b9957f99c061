/*
 * hdb_codec.c - protobuf-c <-> domain conversions with field-naming error messages.
 */
#include "hdb_codec.h"

#include "hdb_arena.h"
#include "hdb_err.h"

#include <stdio.h>
#include <string.h>

int hdb_codec_value_in(const Hilbert__V1__AttributeValue *in, uint32_t max_value_bytes,
                       const char *what, hdb_value *out, char *err, size_t errlen) {
    if (in == NULL)
        return hdb_errf(err, errlen, HDB_EINVAL, "%s: value is not set", what);
    switch (in->value_case) {
    case HILBERT__V1__ATTRIBUTE_VALUE__VALUE_STRING_VALUE: {
        size_t n = strlen(in->string_value);
        if (n > max_value_bytes)
            return hdb_errf(err, errlen, HDB_EINVAL,
                            "%s: string of %zu bytes exceeds limits.max_value_bytes (%u)", what, n,
                            max_value_bytes);
        out->type = HDB_ATTR_STRING;
        out->u.s.p = in->string_value;
        out->u.s.n = n;
        return HDB_OK;
    }
    case HILBERT__V1__ATTRIBUTE_VALUE__VALUE_BYTES_VALUE:
        if (in->bytes_value.len > max_value_bytes)
            return hdb_errf(err, errlen, HDB_EINVAL,
                            "%s: %zu bytes exceed limits.max_value_bytes (%u)", what,
                            in->bytes_value.len, max_value_bytes);
        out->type = HDB_ATTR_BYTES;
        out->u.s.p = (const char *)in->bytes_value.data;
        out->u.s.n = in->bytes_value.len;
        return HDB_OK;
    case HILBERT__V1__ATTRIBUTE_VALUE__VALUE_INT64_VALUE:
        out->type = HDB_ATTR_INT64;
        out->u.i = in->int64_value;
        return HDB_OK;
    case HILBERT__V1__ATTRIBUTE_VALUE__VALUE_TIMESTAMP_MICROS:
        out->type = HDB_ATTR_TIMESTAMP;
        out->u.i = in->timestamp_micros;
        return HDB_OK;
    case HILBERT__V1__ATTRIBUTE_VALUE__VALUE_FLOAT64_VALUE:
        out->type = HDB_ATTR_FLOAT64;
        out->u.f = in->float64_value;
        return HDB_OK;
    case HILBERT__V1__ATTRIBUTE_VALUE__VALUE_BOOL_VALUE:
        out->type = HDB_ATTR_BOOL;
        out->u.b = in->bool_value != 0;
        return HDB_OK;
    default:
        return hdb_errf(err, errlen, HDB_EINVAL, "%s: value is not set", what);
    }
}

/* Attribute names: 1..HDB_NAME_MAX bytes, no ASCII control characters. */
static int attr_name_check(const char *what, const char *name, char *err, size_t errlen) {
    size_t n = strlen(name);
    if (n == 0) return hdb_errf(err, errlen, HDB_EINVAL, "%s: attribute name is empty", what);
    if (n > HDB_NAME_MAX)
        return hdb_errf(err, errlen, HDB_EINVAL, "%s: attribute name longer than %d bytes", what,
                        HDB_NAME_MAX);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x20 || c == 0x7f)
            return hdb_errf(err, errlen, HDB_EINVAL,
                            "%s: attribute name has control character 0x%02x at offset %zu", what,
                            c, i);
    }
    return HDB_OK;
}

int hdb_codec_attrs_in(const hdb_kv *kv, size_t n, uint32_t max_attrs, uint32_t max_value_bytes,
                       const char *what, hdb_arena *arena, hdb_attr **out, uint32_t *nout,
                       char *err, size_t errlen) {
    if (n > max_attrs)
        return hdb_errf(err, errlen, HDB_ELIMIT, "%s: %zu attributes exceed limits.max_attributes "
                        "(%u)", what, n, max_attrs);
    hdb_attr *attrs = hdb_arena_alloc(arena, (n ? n : 1) * sizeof *attrs);
    for (size_t i = 0; i < n; i++) {
        char field[HDB_NAME_MAX + 96];
        const char *key = kv[i].key ? kv[i].key : "";
        int rc = attr_name_check(what, key, err, errlen);
        if (rc != HDB_OK) return rc;
        snprintf(field, sizeof field, "%s[\"%s\"]", what, key);
        rc = hdb_codec_value_in(kv[i].value, max_value_bytes, field, &attrs[i].value, err, errlen);
        if (rc != HDB_OK) return rc;
        attrs[i].name = key;
    }
    hdb_attrs_sort(attrs, n);
    for (size_t i = 1; i < n; i++)
        if (strcmp(attrs[i - 1].name, attrs[i].name) == 0)
            return hdb_errf(err, errlen, HDB_EINVAL, "%s[\"%s\"]: given twice", what,
                            attrs[i].name);
    *out = attrs;
    *nout = (uint32_t)n;
    return HDB_OK;
}

int hdb_codec_vector_in(const Hilbert__V1__Vector *v, const char *what, size_t index,
                        hdb_point *out, char *err, size_t errlen) {
    if (v && v->kind_case == HILBERT__V1__VECTOR__KIND_DENSE && v->dense) {
        out->vec = v->dense->values;
        out->dim = (uint32_t)(v->dense->n_values > UINT32_MAX ? UINT32_MAX : v->dense->n_values);
        return HDB_OK;
    }
    if (v && v->kind_case == HILBERT__V1__VECTOR__KIND_SPARSE && v->sparse) {
        const Hilbert__V1__SparseVector *sv = v->sparse;
        if (sv->n_indices != sv->n_values)
            return hdb_errf(err, errlen, HDB_EINVAL,
                            "%s[%zu].vector.sparse: %zu indices but %zu values", what, index,
                            sv->n_indices, sv->n_values);
        if (sv->n_indices > UINT32_MAX)
            return hdb_errf(err, errlen, HDB_EINVAL, "%s[%zu].vector.sparse: too many entries",
                            what, index);
        out->sparse = true;
        out->sp = (hdb_sparse_vec){sv->indices, sv->values, (uint32_t)sv->n_indices};
        return HDB_OK;
    }
    return hdb_errf(err, errlen, HDB_EINVAL, "%s[%zu].vector: no vector is set", what, index);
}

int hdb_codec_point_in(const Hilbert__V1__DataPoint *in, uint32_t max_attrs,
                       uint32_t max_value_bytes, size_t index, hdb_arena *arena, hdb_point *out,
                       char *err, size_t errlen) {
    char what[64];
    memset(out, 0, sizeof *out);
    if (in == NULL) return hdb_errf(err, errlen, HDB_EINVAL, "points[%zu]: is empty", index);
    out->deleted = in->is_deleted != 0;
    if (!out->deleted) {
        const Hilbert__V1__Vector *v = in->vector;
        if (v == NULL || v->kind_case == HILBERT__V1__VECTOR__KIND__NOT_SET)
            return hdb_errf(err, errlen, HDB_EINVAL,
                            "points[%zu].vector: is required unless is_deleted is set", index);
        int rc = hdb_codec_vector_in(v, "points", index, out, err, errlen);
        if (rc != HDB_OK) return rc;
    }
    hdb_kv *kv;
    HDB_KV_VIEW(arena, in->attributes, in->n_attributes, kv);
    snprintf(what, sizeof what, "points[%zu].attributes", index);
    return hdb_codec_attrs_in(kv, in->n_attributes, max_attrs, max_value_bytes, what, arena,
                              &out->attrs, &out->nattrs, err, errlen);
}

Hilbert__V1__AttributeValue *hdb_codec_value_out(const hdb_value *v, hdb_arena *arena) {
    Hilbert__V1__AttributeValue *m = hdb_arena_alloc(arena, sizeof *m);
    hilbert__v1__attribute_value__init(m);
    switch (v->type) {
    case HDB_ATTR_STRING:
        /* Stored strings are not NUL-terminated; protobuf-c needs a C string. */
        m->value_case = HILBERT__V1__ATTRIBUTE_VALUE__VALUE_STRING_VALUE;
        m->string_value = hdb_arena_strndup(arena, v->u.s.p, v->u.s.n);
        break;
    case HDB_ATTR_BYTES:
        m->value_case = HILBERT__V1__ATTRIBUTE_VALUE__VALUE_BYTES_VALUE;
        m->bytes_value.data = (uint8_t *)v->u.s.p;
        m->bytes_value.len = v->u.s.n;
        break;
    case HDB_ATTR_INT64:
        m->value_case = HILBERT__V1__ATTRIBUTE_VALUE__VALUE_INT64_VALUE;
        m->int64_value = v->u.i;
        break;
    case HDB_ATTR_TIMESTAMP:
        m->value_case = HILBERT__V1__ATTRIBUTE_VALUE__VALUE_TIMESTAMP_MICROS;
        m->timestamp_micros = v->u.i;
        break;
    case HDB_ATTR_FLOAT64:
        m->value_case = HILBERT__V1__ATTRIBUTE_VALUE__VALUE_FLOAT64_VALUE;
        m->float64_value = v->u.f;
        break;
    case HDB_ATTR_BOOL:
        m->value_case = HILBERT__V1__ATTRIBUTE_VALUE__VALUE_BOOL_VALUE;
        m->bool_value = v->u.b;
        break;
    }
    return m;
}

Hilbert__V1__Vector *hdb_codec_point_vector_out(const hdb_point *p, hdb_arena *arena) {
    if (!p->sparse) return hdb_codec_vector_out(p->vec, p->dim, arena);
    Hilbert__V1__Vector *v = hdb_arena_alloc(arena, sizeof *v);
    hilbert__v1__vector__init(v);
    Hilbert__V1__SparseVector *sv = hdb_arena_alloc(arena, sizeof *sv);
    hilbert__v1__sparse_vector__init(sv);
    sv->n_indices = sv->n_values = p->sp.n;
    sv->indices = (uint32_t *)p->sp.idx;
    sv->values = (float *)p->sp.val;
    v->kind_case = HILBERT__V1__VECTOR__KIND_SPARSE;
    v->sparse = sv;
    return v;
}

Hilbert__V1__Vector *hdb_codec_vector_out(const float *vec, uint32_t dim, hdb_arena *arena) {
    Hilbert__V1__Vector *v = hdb_arena_alloc(arena, sizeof *v);
    hilbert__v1__vector__init(v);
    Hilbert__V1__DenseVector *d = hdb_arena_alloc(arena, sizeof *d);
    hilbert__v1__dense_vector__init(d);
    d->n_values = dim;
    d->values = (float *)vec;
    v->kind_case = HILBERT__V1__VECTOR__KIND_DENSE;
    v->dense = d;
    return v;
}

/* ---------------------------------------------------------------- filters */

static int filter_in(const Hilbert__V1__Filter *in, uint32_t max_value_bytes, const char *path,
                     int depth, hdb_arena *arena, hdb_filter *out, char *err, size_t errlen);

static int range_end_in(const Hilbert__V1__AttributeValue *lo_or_hi_excl,
                        const Hilbert__V1__AttributeValue *incl, const char *path,
                        const char *excl_name, const char *incl_name, uint32_t max_value_bytes,
                        bool *has, bool *inclusive, hdb_value *v, char *err, size_t errlen) {
    char sub[600];
    if (lo_or_hi_excl && incl)
        return hdb_errf(err, errlen, HDB_EINVAL, "%s: give %s or %s, not both", path, excl_name,
                        incl_name);
    const Hilbert__V1__AttributeValue *b = lo_or_hi_excl ? lo_or_hi_excl : incl;
    if (b == NULL) return HDB_OK;
    hdb_pathf(sub, sizeof sub, "%s.%s", path, lo_or_hi_excl ? excl_name : incl_name);
    *has = true;
    *inclusive = incl != NULL;
    return hdb_codec_value_in(b, max_value_bytes, sub, v, err, errlen);
}

static int condition_in(const Hilbert__V1__Condition *in, uint32_t max_value_bytes,
                        const char *path, hdb_arena *arena, hdb_filter *out, char *err,
                        size_t errlen) {
    char sub[600];
    out->name = in->attribute;
    switch (in->test_case) {
    case HILBERT__V1__CONDITION__TEST_EQUALS: {
        hdb_value *v = hdb_arena_alloc(arena, sizeof *v);
        hdb_pathf(sub, sizeof sub, "%s.equals", path);
        out->op = HDB_FILTER_EQUALS;
        out->values = v;
        out->nvalues = 1;
        return hdb_codec_value_in(in->equals, max_value_bytes, sub, v, err, errlen);
    }
    case HILBERT__V1__CONDITION__TEST_ONE_OF: {
        size_t n = in->one_of->n_values;
        if (n > HDB_FILTER_MAX_VALUES)
            return hdb_errf(err, errlen, HDB_EINVAL, "%s.one_of.values: %zu values exceed %d", path,
                            n, HDB_FILTER_MAX_VALUES);
        hdb_value *v = hdb_arena_alloc(arena, (n ? n : 1) * sizeof *v);
        out->op = HDB_FILTER_ONE_OF;
        out->values = v;
        out->nvalues = n;
        for (size_t i = 0; i < n; i++) {
            hdb_pathf(sub, sizeof sub, "%s.one_of.values[%zu]", path, i);
            int rc = hdb_codec_value_in(in->one_of->values[i], max_value_bytes, sub, &v[i], err,
                                        errlen);
            if (rc != HDB_OK) return rc;
        }
        return HDB_OK;
    }
    case HILBERT__V1__CONDITION__TEST_RANGE: {
        const Hilbert__V1__Range *r = in->range;
        hdb_pathf(sub, sizeof sub, "%s.range", path);
        out->op = HDB_FILTER_RANGE;
        int rc = range_end_in(r->gt, r->gte, sub, "gt", "gte", max_value_bytes, &out->has_lo,
                              &out->lo_incl, &out->lo, err, errlen);
        if (rc == HDB_OK)
            rc = range_end_in(r->lt, r->lte, sub, "lt", "lte", max_value_bytes, &out->has_hi,
                              &out->hi_incl, &out->hi, err, errlen);
        return rc;
    }
    case HILBERT__V1__CONDITION__TEST_EXISTS:
        out->op = HDB_FILTER_EXISTS;
        out->exists = in->exists;
        return HDB_OK;
    default:
        return hdb_errf(err, errlen, HDB_EINVAL,
                        "%s: one of equals, one_of, range or exists is required", path);
    }
}

static int list_in(const Hilbert__V1__FilterList *in, uint32_t max_value_bytes, const char *path,
                   int depth, hdb_arena *arena, hdb_filter *out, char *err, size_t errlen) {
    char sub[600];
    size_t n = in->n_filters;
    if (n > HDB_FILTER_MAX_CONDITIONS)
        return hdb_errf(err, errlen, HDB_EINVAL, "%s.filters: %zu filters exceed %d", path, n,
                        HDB_FILTER_MAX_CONDITIONS);
    hdb_filter *kids = hdb_arena_calloc(arena, n ? n : 1, sizeof *kids);
    out->kids = kids;
    out->nkids = n;
    for (size_t i = 0; i < n; i++) {
        hdb_pathf(sub, sizeof sub, "%s.filters[%zu]", path, i);
        int rc = filter_in(in->filters[i], max_value_bytes, sub, depth + 1, arena, &kids[i], err,
                           errlen);
        if (rc != HDB_OK) return rc;
    }
    return HDB_OK;
}

static int filter_in(const Hilbert__V1__Filter *in, uint32_t max_value_bytes, const char *path,
                     int depth, hdb_arena *arena, hdb_filter *out, char *err, size_t errlen) {
    char sub[600];
    if (depth > HDB_FILTER_MAX_DEPTH)
        return hdb_errf(err, errlen, HDB_EINVAL, "%s: the filter nests deeper than %d levels", path,
                        HDB_FILTER_MAX_DEPTH);
    switch (in->kind_case) {
    case HILBERT__V1__FILTER__KIND_ALL:
    case HILBERT__V1__FILTER__KIND_ANY: {
        bool all = in->kind_case == HILBERT__V1__FILTER__KIND_ALL;
        out->op = all ? HDB_FILTER_ALL : HDB_FILTER_ANY;
        hdb_pathf(sub, sizeof sub, "%s.%s", path, all ? "all" : "any");
        return list_in(all ? in->all : in->any, max_value_bytes, sub, depth, arena, out, err,
                       errlen);
    }
    case HILBERT__V1__FILTER__KIND_NEGATE: {
        hdb_filter *kid = hdb_arena_calloc(arena, 1, sizeof *kid);
        out->op = HDB_FILTER_NOT;
        out->kids = kid;
        out->nkids = 1;
        hdb_pathf(sub, sizeof sub, "%s.negate", path);
        return filter_in(in->negate, max_value_bytes, sub, depth + 1, arena, kid, err, errlen);
    }
    case HILBERT__V1__FILTER__KIND_CONDITION:
        hdb_pathf(sub, sizeof sub, "%s.condition", path);
        return condition_in(in->condition, max_value_bytes, sub, arena, out, err, errlen);
    default:
        return hdb_errf(err, errlen, HDB_EINVAL,
                        "%s: one of all, any, negate or condition is required", path);
    }
}

int hdb_codec_filter_in(const Hilbert__V1__Filter *in, uint32_t max_value_bytes,
                        const char *what, hdb_arena *arena, hdb_filter **out, char *err,
                        size_t errlen) {
    *out = NULL;
    if (in == NULL) return HDB_OK;
    hdb_filter *f = hdb_arena_calloc(arena, 1, sizeof *f);
    int rc = filter_in(in, max_value_bytes, what, 1, arena, f, err, errlen);
    if (rc == HDB_OK) *out = f;
    return rc;
}
