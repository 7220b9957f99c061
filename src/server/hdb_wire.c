/*
 * hdb_wire.c - a descriptor-driven walk over protobuf wire bytes that checks string fields.
 */
#include "hdb_wire.h"

#include "hdb_err.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define MAX_DEPTH 64 /* messages inside messages; a filter of 16 levels takes about 36 */

int hdb_utf8_valid(const uint8_t *s, size_t n, size_t *bad) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t len;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            len = 2;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4;
            cp = c & 0x07;
        } else {
            goto invalid;
        }
        if (n - i < len) goto invalid;
        for (size_t j = 1; j < len; j++) {
            if ((s[i + j] & 0xc0) != 0x80) goto invalid;
            cp = (cp << 6) | (s[i + j] & 0x3f);
        }
        /* Overlong forms, surrogates and values past U+10FFFF are invalid. */
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
            goto invalid;
        i += len;
    }
    return 1;
invalid:
    if (bad) *bad = i;
    return 0;
}

typedef struct {
    const uint8_t *p, *end;
} reader;

static int read_varint(reader *r, uint64_t *out) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64 && r->p < r->end; shift += 7) {
        uint8_t b = *r->p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return -1;
}

/* Skips a varint, fixed64 or fixed32 value: returns 1 when skipped, 0 for a length-delimited
 * field (left for the caller), -1 for a malformed or unsupported (group) encoding. */
static int skip_scalar(reader *r, int wire_type) {
    uint64_t v;
    switch (wire_type) {
    case 0: return read_varint(r, &v) == 0 ? 1 : -1;
    case 1:
        if (r->end - r->p < 8) return -1;
        r->p += 8;
        return 1;
    case 5:
        if (r->end - r->p < 4) return -1;
        r->p += 4;
        return 1;
    case 2: return 0;
    default: return -1;
    }
}

static const ProtobufCFieldDescriptor *field_of(const ProtobufCMessageDescriptor *d,
                                                uint32_t number) {
    for (unsigned i = 0; i < d->n_fields; i++)
        if (d->fields[i].id == number) return &d->fields[i];
    return NULL;
}

/* A map<string, V> entry: a generated message with exactly `key` (1, string) and `value` (2). */
static bool is_string_map_entry(const ProtobufCMessageDescriptor *d) {
    return d->n_fields == 2 && d->fields[0].id == 1 && d->fields[1].id == 2 &&
           d->fields[0].type == PROTOBUF_C_TYPE_STRING && strcmp(d->fields[0].name, "key") == 0 &&
           strcmp(d->fields[1].name, "value") == 0;
}

/* Finds the last occurrence of length-delimited field 1 in an entry body (the key). */
static bool entry_key(const uint8_t *data, size_t len, const uint8_t **key, size_t *klen) {
    reader r = {data, data + len};
    bool found = false;
    while (r.p < r.end) {
        uint64_t tag, n;
        if (read_varint(&r, &tag) != 0) return false;
        int ws = skip_scalar(&r, (int)(tag & 7));
        if (ws < 0) return false;
        if (ws > 0) continue;
        if (read_varint(&r, &n) != 0 || n > (uint64_t)(r.end - r.p)) return false;
        if ((tag >> 3) == 1) {
            *key = r.p;
            *klen = (size_t)n;
            found = true;
        }
        r.p += n;
    }
    return found;
}

/* path holds the field path so far (e.g. "points[2]"); plen is its length. Map entries are
 * named by their key when it is printable: attributes["color"].string_value. */
static int walk(const ProtobufCMessageDescriptor *d, const uint8_t *data, size_t len, int depth,
                bool in_map_value, char *path, size_t plen, size_t pcap, char *err,
                size_t errlen) {
    if (depth > MAX_DEPTH)
        return hdb_errf(err, errlen, HDB_EINVAL, "request: messages nested too deeply");
    /* Occurrence counters for repeated fields, so paths carry indices. */
    unsigned counts[64] = {0};
    reader r = {data, data + len};
    while (r.p < r.end) {
        uint64_t tag, n;
        if (read_varint(&r, &tag) != 0) goto malformed;
        uint32_t number = (uint32_t)(tag >> 3);
        int ws = skip_scalar(&r, (int)(tag & 7));
        if (ws < 0) goto malformed;
        if (ws > 0) continue;
        if (read_varint(&r, &n) != 0 || n > (uint64_t)(r.end - r.p)) goto malformed;
        const uint8_t *body = r.p;
        r.p += n;
        const ProtobufCFieldDescriptor *f = field_of(d, number);
        if (f == NULL || (f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE))
            continue; /* bytes, packed numbers, unknown fields */
        unsigned idx = 0;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            unsigned slot = (unsigned)(f - d->fields);
            idx = slot < 64 ? counts[slot]++ : 0;
        }
        const char *sep = plen && !(in_map_value && number == 2) ? "." : "";
        const char *name = in_map_value && number == 2 ? "" : f->name;
        const uint8_t *key = NULL;
        size_t klen = 0, bad;
        int w;
        if (f->type == PROTOBUF_C_TYPE_MESSAGE && is_string_map_entry(f->descriptor) &&
            entry_key(body, (size_t)n, &key, &klen) && klen <= 64 && !memchr(key, 0, klen) &&
            !memchr(key, '"', klen) && hdb_utf8_valid(key, klen, &bad))
            w = snprintf(path + plen, pcap - plen, "%s%s[\"%.*s\"]", sep, name, (int)klen, key);
        else if (f->label == PROTOBUF_C_LABEL_REPEATED)
            w = snprintf(path + plen, pcap - plen, "%s%s[%u]", sep, name, idx);
        else
            w = snprintf(path + plen, pcap - plen, "%s%s", *name ? sep : "", name);
        size_t nlen = w < 0 ? plen : (plen + (size_t)w < pcap ? plen + (size_t)w : pcap - 1);
        if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
            int rc = walk(f->descriptor, body, (size_t)n, depth + 1,
                          is_string_map_entry(f->descriptor), path, nlen, pcap, err, errlen);
            if (rc != HDB_OK) return rc;
        } else {
            const void *nul = memchr(body, 0, (size_t)n);
            if (nul)
                return hdb_errf(err, errlen, HDB_EINVAL,
                                "%s: contains a NUL character at byte %zu; use a bytes value for "
                                "binary data",
                                path, (size_t)((const uint8_t *)nul - body));
            if (!hdb_utf8_valid(body, (size_t)n, &bad))
                return hdb_errf(err, errlen, HDB_EINVAL, "%s: invalid UTF-8 at byte %zu", path,
                                bad);
        }
        path[plen] = '\0';
    }
    return HDB_OK;
malformed:
    return hdb_errf(err, errlen, HDB_EINVAL, "request: malformed protobuf encoding");
}

int hdb_wire_check_strings(const ProtobufCMessageDescriptor *desc, const uint8_t *data,
                           size_t len, char *err, size_t errlen) {
    char path[512];
    path[0] = '\0';
    return walk(desc, data, len, 0, false, path, 0, sizeof path, err, errlen);
}
