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
