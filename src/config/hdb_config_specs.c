/*
 * hdb_config_specs.c - the catalog objects declared in the config file (data_sources:,
 * indices:, model_spaces:), turned from YAML mappings into the protobuf-c spec messages that the
 * Catalog API takes.
 *
 * The mapping is driven by the messages' descriptors, as src/server/hdb_wire.c walks wire bytes.
 * A schema per message lists its YAML keys, in the order they are read and named in messages,
 * with what the descriptor cannot say: whether a key is required, the range of an integer, how
 * an enum is spelt, and the field where the YAML name differs (model -> model_path). Where a
 * value goes, its type, its count and its nested message come from the ProtobufCFieldDescriptor.
 * One shape needs code of its own: an index algorithm is written as its name plus a mapping of
 * parameters next to it (algorithm: faiss, faiss: {...}), not as the oneof it is in the proto.
 * hdb__config_check_specs (run by the unit tests) checks that schemas and descriptors agree, so
 * a field added to the API cannot be forgotten here unnoticed.
 *
 * The objects are only checked for shape here (required keys present, the right YAML types,
 * known enum names) and allocated from the config's arena. Their meaning (valid names, subsets,
 * duplicates, dimension limits) is checked by the catalog when it ensures them at start, with
 * the same code that serves CreateDataSource, CreateIndex and CreateModelSpace.
 */
#include "hdb_config_int.h"

#include "hdb_arena.h"
#include "hdb_err.h"
#include "hdb_types.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef hdb__config_loader loader;

#define MAX_RULES 16 /* keys of one schema */
#define PATH_LEN 300 /* key paths; longer ones are cut (they only appear in messages) */

/* ---- schemas ------------------------------------------------------------------------------- */

typedef struct spec_schema spec_schema;

/* How an enum field is spelt. */
typedef struct {
    /* Parses a name; returns 0, or -1 for an unknown one. NULL: the proto value names without
     * their common prefix, in any case (VECTOR_KIND_DENSE is "dense"). */
    int (*parse)(const char *s, int *out);
    const char *what;     /* "unknown <what> ..." */
    const char *expected; /* the parenthesis after the bad name */
    int shown;            /* at most this many bytes of a bad name are quoted */
    int dflt;             /* the value when the key is absent */
} enum_syntax;

/* Loads a field whose YAML shape differs from its message: v is the value of the key at path
 * key, in the mapping map at path path; dst points at the field. */
typedef int (*custom_loader)(const loader *L, const yaml_node_t *map, const yaml_node_t *v,
                             const char *path, const char *key, void *dst);

/* One YAML key of a message. */
typedef struct {
    const char *key;        /* the YAML key */
    const char *field;      /* the proto field; NULL: named like the key; "": none (a sibling's
                               custom loader reads the key) */
    bool required;          /* else the field keeps its proto default (or enum dflt) */
    uint32_t min, max;      /* integers, and the items of integer lists */
    const enum_syntax *en;  /* enums */
    const spec_schema *sub; /* messages, and the items of message lists */
    custom_loader custom;   /* replaces the generic loading of the field */
} spec_rule;

struct spec_schema {
    const ProtobufCMessageDescriptor *desc;
    const char *hint; /* follows "must be a mapping" when the value is not one */
    bool one_of;      /* the keys are the members of a oneof: exactly one must be given */
    size_t n_rules;
    const spec_rule *rules;
};

#define RULES(r) sizeof r / sizeof r[0], r

static int parse_attribute_type(const char *s, int *out) {
    hdb_attr_type t;
    if (hdb_attr_type_parse(s, &t) != 0) return -1;
    *out = (int)t; /* the numbers are equal to Hilbert__V1__AttributeType by design */
    return 0;
}

static int parse_metric(const char *s, int *out) {
    hdb_metric m;
    if (hdb_metric_parse(s, &m) != 0) return -1;
    *out = (int)m; /* the numbers are equal to Hilbert__V1__Metric by design */
    return 0;
}

static int load_algorithm_key(const loader *L, const yaml_node_t *map, const yaml_node_t *v,
                              const char *path, const char *key, void *dst);
static int load_index_mapping(const loader *L, const yaml_node_t *map, const yaml_node_t *v,
                              const char *path, const char *key, void *dst);

static const enum_syntax attribute_type = {
    parse_attribute_type, "attribute type",
    "expected string, int64, float64, bool, bytes or timestamp", 60, 0};
static const enum_syntax vector_kind = {NULL, "vector kind", "expected dense or sparse", 60,
                                        HILBERT__V1__VECTOR_KIND__VECTOR_KIND_DENSE};
static const enum_syntax index_metric = {parse_metric, "metric",
                                         "expected l2, inner_product, cosine or jaccard", 60, 0};
static const enum_syntax space_metric = {parse_metric, "metric",
                                         "expected l2, inner_product or cosine", 60, 0};
static const enum_syntax resize_mode = {NULL, "resize mode", "stretch, fit or crop", 40,
                                        HILBERT__V1__RESIZE_MODE__RESIZE_MODE_STRETCH};

/* {name: id, type: int64} */
static const spec_rule attribute_rules[] = {
    {.key = "name", .required = true},
    {.key = "type", .required = true, .en = &attribute_type},
};
static const spec_schema attribute_schema = {&hilbert__v1__attribute_spec__descriptor,
                                             " {name: ..., type: ...}", false,
                                             RULES(attribute_rules)};

static const spec_rule data_source_rules[] = {
    {.key = "name", .required = true},
    {.key = "version", .required = true},
    {.key = "vector_kind", .en = &vector_kind},
    {.key = "dimension", .required = true, .min = 1, .max = UINT32_MAX},
    {.key = "permanent_attributes", .required = true, .sub = &attribute_schema},
    {.key = "id_attributes", .required = true},
};
static const spec_schema data_source_schema = {&hilbert__v1__data_source_spec__descriptor, "",
                                               false, RULES(data_source_rules)};

static const spec_rule data_source_ref_rules[] = {
    {.key = "name", .required = true},
    {.key = "version", .required = true},
};
static const spec_schema data_source_ref_schema = {&hilbert__v1__data_source_ref__descriptor,
                                                   " {name: ..., version: ...}", false,
                                                   RULES(data_source_ref_rules)};

/* faiss: {factory: "IVF256,Flat", nprobe: 8, train_size: 0} */
static const spec_rule faiss_rules[] = {
    {.key = "factory", .required = true},
    {.key = "nprobe", .min = 0, .max = 1000000},
    {.key = "train_size", .min = 0, .max = UINT32_MAX},
};
static const spec_schema faiss_schema = {&hilbert__v1__faiss_algorithm__descriptor, "", false,
                                         RULES(faiss_rules)};

/* hnsw: {m: 16, ef_construction: 200, ef_search: 64, storage: float32, oversample: 0} */
static const enum_syntax vector_storage = {NULL, "vector storage",
                                           "expected float32, float16 or int8", 40,
                                           HILBERT__V1__VECTOR_STORAGE__VECTOR_STORAGE_FLOAT32};
static const spec_rule hnsw_rules[] = {
    {.key = "m", .min = 0, .max = 1000000},
    {.key = "ef_construction", .min = 0, .max = 1000000},
    {.key = "ef_search", .min = 0, .max = 1000000},
    {.key = "storage", .en = &vector_storage},
    {.key = "oversample", .min = 0, .max = 100},
};
static const spec_schema hnsw_schema = {&hilbert__v1__hnsw_algorithm__descriptor, "", false,
                                        RULES(hnsw_rules)};

/* The members of IndexAlgorithm's oneof that take parameters, given as a mapping named like the
 * algorithm next to `algorithm:`. The other members (flat, sparse) take none. */
static const struct {
    const char *name;
    const spec_schema *params;
    const char *missing; /* the message when the mapping is absent; NULL: it is optional */
} algorithm_params[] = {
    {"faiss", &faiss_schema, "is required with algorithm faiss (factory: ...)"},
    {"hnsw", &hnsw_schema, NULL},
};
#define N_ALGORITHM_PARAMS (sizeof algorithm_params / sizeof algorithm_params[0])

static const spec_rule index_rules[] = {
    {.key = "name", .required = true},
    {.key = "version", .required = true},
    {.key = "data_source", .required = true, .sub = &data_source_ref_schema},
    {.key = "algorithm", .required = true, .custom = load_algorithm_key},
    {.key = "metric", .required = true, .en = &index_metric},
    {.key = "split_attributes"},
    {.key = "indexed_attributes"},
    {.key = "faiss", .field = ""}, /* the parameters of `algorithm` (algorithm_params) */
    {.key = "hnsw", .field = ""},
};
static const spec_schema index_schema = {&hilbert__v1__index_spec__descriptor, "", false,
                                         RULES(index_rules)};

/* image: {width, height, channels, resize, mean, std} */
static const spec_rule image_rules[] = {
    {.key = "width", .required = true, .min = 1, .max = 4096},
    {.key = "height", .required = true, .min = 1, .max = 4096},
    {.key = "channels", .required = true, .min = 1, .max = 4096},
    {.key = "resize", .en = &resize_mode},
    {.key = "mean"},
    {.key = "std"},
};
static const spec_schema image_schema = {&hilbert__v1__image_input__descriptor, "", false,
                                         RULES(image_rules)};

/* tensor: {shape: [...]} */
static const spec_rule tensor_rules[] = {
    {.key = "shape", .required = true, .min = 1, .max = 1u << 30},
};
static const spec_schema tensor_schema = {&hilbert__v1__tensor_input__descriptor, " {shape: [...]}",
                                          false, RULES(tensor_rules)};

static const spec_rule model_input_rules[] = {
    {.key = "image", .sub = &image_schema},
    {.key = "tensor", .sub = &tensor_schema},
};
static const spec_schema model_input_schema = {&hilbert__v1__model_input__descriptor,
                                               " {image: ...} or {tensor: ...}", true,
                                               RULES(model_input_rules)};

static const spec_rule model_space_rules[] = {
    {.key = "name", .required = true},
    {.key = "model", .field = "model_path", .required = true},
    {.key = "input", .required = true, .sub = &model_input_schema},
    {.key = "output_dim", .required = true, .min = 1, .max = 65536},
    {.key = "metric", .required = true, .en = &space_metric},
    {.key = "index", .custom = load_index_mapping},
    {.key = "permanent_attributes", .sub = &attribute_schema},
    {.key = "split_attributes"},
    {.key = "model_sha256"},
    {.key = "output_index", .min = 0, .max = 255},
    {.key = "keep_inputs"},
    {.key = "reembed_from"},
    {.key = "indexed_attributes"},
};
static const spec_schema model_space_schema = {&hilbert__v1__model_space_spec__descriptor, "",
                                               false, RULES(model_space_rules)};

/* The top-level lists, and where they go in hdb_config. */
static const struct {
    const char *key;
    const spec_schema *schema;
    size_t items, count; /* offsetof(hdb_config, ...) */
} spec_lists[] = {
    {"data_sources", &data_source_schema, offsetof(hdb_config, data_sources),
     offsetof(hdb_config, n_data_sources)},
    {"indices", &index_schema, offsetof(hdb_config, indices), offsetof(hdb_config, n_indices)},
    {"model_spaces", &model_space_schema, offsetof(hdb_config, model_spaces),
     offsetof(hdb_config, n_model_spaces)},
};
#define N_SPEC_LISTS (sizeof spec_lists / sizeof spec_lists[0])

/* ---- the generic walk ---------------------------------------------------------------------- */

static const char *join(char *buf, const char *prefix, const char *name) {
    return hdb__config_join(buf, PATH_LEN, prefix, name, strlen(name));
}

/* Writes "a", "a or b", "a, b or c" into buf. */
static const char *or_list(char *buf, size_t n, const char *const *names, size_t count) {
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < count && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, "%s%s",
                                 i == 0           ? ""
                                 : i + 1 == count ? " or "
                                                  : ", ",
                                 names[i]);
    return buf;
}

/* The field a rule fills, or NULL for a key read by another rule's custom loader. */
static const ProtobufCFieldDescriptor *rule_field(const spec_schema *s, const spec_rule *r) {
    const char *name = r->field != NULL ? r->field : r->key;
    if (name[0] == '\0') return NULL;
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(s->desc, name);
    HDB_ASSERT(f != NULL); /* hdb__config_check_specs */
    return f;
}

static ProtobufCMessage *new_message(const loader *L, const ProtobufCMessageDescriptor *d) {
    ProtobufCMessage *m = hdb_arena_alloc(L->c->arena, d->sizeof_message);
    protobuf_c_message_init(d, m);
    return m;
}

/* The length of the common prefix of an enum's value names: that of its value 0, which must be
 * called <PREFIX>UNSPECIFIED (checked by hdb__config_check_specs). */
static size_t enum_prefix(const ProtobufCEnumDescriptor *e) {
    const ProtobufCEnumValue *zero = protobuf_c_enum_descriptor_get_value(e, 0);
    HDB_ASSERT(zero != NULL);
    return strlen(zero->name) - strlen("UNSPECIFIED");
}

/* Matches s against the value names of e without their prefix, in any case; never value 0. */
static int parse_enum_name(const ProtobufCEnumDescriptor *e, const char *s, int *out) {
    size_t prefix = enum_prefix(e);
    for (unsigned i = 0; i < e->n_values; i++) {
        if (e->values[i].value != 0 && strcasecmp(s, e->values[i].name + prefix) == 0) {
            *out = e->values[i].value;
            return 0;
        }
    }
    return -1;
}

static int load_message(const loader *L, const spec_schema *s, const yaml_node_t *n,
                        const char *path, ProtobufCMessage **out);

static int load_enum(const loader *L, const ProtobufCFieldDescriptor *f, const enum_syntax *en,
                     const yaml_node_t *v, const char *key, int *out) {
    char *s;
    int value;
    int rc = hdb__config_get_string(L, v, key, &s);
    if (rc != HDB_OK) return rc;
    if ((en->parse != NULL ? en->parse(s, &value) : parse_enum_name(f->descriptor, s, &value)) != 0)
        return hdb__config_fail(L, v, key, "unknown %s \"%.*s\" (%s)", en->what, en->shown, s,
                                en->expected);
    *out = value;
    return HDB_OK;
}

/* A float: an unquoted finite number, e.g. 0.2860 or 1e-3. */
static int load_float(const loader *L, const yaml_node_t *v, const char *key, float *out) {
    char *end = NULL;
    const char *txt = v->type == YAML_SCALAR_NODE ? hdb__config_scalar_text(v) : "";
    errno = 0;
    double d = v->type == YAML_SCALAR_NODE && !hdb__config_is_quoted(v) ? strtod(txt, &end) : 0;
    if (v->type != YAML_SCALAR_NODE || hdb__config_is_quoted(v) || end == txt || *end != '\0' ||
        errno != 0 || !isfinite(d))
        return hdb__config_fail(L, v, key, "must be a number");
    *out = (float)d;
    return HDB_OK;
}

/* A bool: unquoted true, false, yes or no (hdb__config_parse_bool). */
static int load_bool(const loader *L, const yaml_node_t *v, const char *key,
                     protobuf_c_boolean *out) {
    bool b;
    if (v->type != YAML_SCALAR_NODE || hdb__config_is_quoted(v) ||
        hdb__config_parse_bool(hdb__config_scalar_text(v), &b) != 0)
        return hdb__config_fail(L, v, key, "must be true or false");
    *out = b;
    return HDB_OK;
}

/* One value of field f (the field itself, or one item of a repeated field) into dst. */
static int load_value(const loader *L, const ProtobufCFieldDescriptor *f, const spec_rule *r,
                      const yaml_node_t *v, const char *key, void *dst) {
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING:
        return hdb__config_get_string(L, v, key, (char **)dst);
    case PROTOBUF_C_TYPE_UINT32:
        return hdb__config_get_u32(L, v, key, r->min, r->max, (uint32_t *)dst);
    case PROTOBUF_C_TYPE_UINT64: { /* the ranges of the rules are 32-bit */
        uint32_t u;
        int rc = hdb__config_get_u32(L, v, key, r->min, r->max, &u);
        if (rc == HDB_OK) *(uint64_t *)dst = u;
        return rc;
    }
    case PROTOBUF_C_TYPE_FLOAT:
        return load_float(L, v, key, (float *)dst);
    case PROTOBUF_C_TYPE_BOOL:
        return load_bool(L, v, key, (protobuf_c_boolean *)dst);
    case PROTOBUF_C_TYPE_ENUM: /* protobuf-c makes every enum int-sized */
        return load_enum(L, f, r->en, v, key, (int *)dst);
    case PROTOBUF_C_TYPE_MESSAGE:
        return load_message(L, r->sub, v, key, (ProtobufCMessage **)dst);
    default:
        HDB_ASSERT(!"a field type without a YAML form"); /* hdb__config_check_specs */
        return HDB_EINVAL;
    }
}

static size_t item_size(const ProtobufCFieldDescriptor *f) {
    switch (f->type) {
    case PROTOBUF_C_TYPE_UINT32:
        return sizeof(uint32_t);
    case PROTOBUF_C_TYPE_UINT64:
        return sizeof(uint64_t);
    case PROTOBUF_C_TYPE_FLOAT:
        return sizeof(float);
    case PROTOBUF_C_TYPE_ENUM:
        return sizeof(int);
    default:
        return sizeof(void *); /* strings and messages */
    }
}

/* Field f of message m from the YAML value v: a list for a repeated field. Lists are stored as
 * protobuf-c's own unpacker stores them: an array and its count (quantifier_offset). */
static int load_field(const loader *L, const ProtobufCFieldDescriptor *f, const spec_rule *r,
                      const yaml_node_t *v, const char *key, ProtobufCMessage *m) {
    char *dst = (char *)m + f->offset;
    if (f->label != PROTOBUF_C_LABEL_REPEATED) return load_value(L, f, r, v, key, dst);

    yaml_node_item_t *items;
    size_t count, size = item_size(f);
    char item[PATH_LEN];
    int rc = hdb__config_get_list(L, v, key, &items, &count);
    if (rc != HDB_OK) return rc;
    char *arr = count ? hdb_arena_calloc(L->c->arena, count, size) : NULL;
    for (size_t i = 0; i < count; i++) {
        hdb__config_path(item, sizeof item, "%s[%zu]", key, i);
        rc = load_value(L, f, r, hdb__config_node(L, items[i]), item, arr + i * size);
        if (rc != HDB_OK) return rc;
    }
    *(void **)(void *)dst = arr;
    *(size_t *)(void *)((char *)m + f->quantifier_offset) = count;
    return HDB_OK;
}

/* A oneof written as a mapping with one key per member, e.g. {image: ...} or {tensor: ...}. */
static int check_one_of(const loader *L, const spec_schema *s, const yaml_node_t *n,
                        const char *path) {
    const char *names[MAX_RULES] = {NULL};
    char list[256];
    size_t given = 0;
    for (size_t i = 0; i < s->n_rules; i++) {
        names[i] = s->rules[i].key;
        given += hdb__config_lookup(L, n, s->rules[i].key) != NULL;
    }
    or_list(list, sizeof list, names, s->n_rules);
    if (given > 1) return hdb__config_fail(L, n, path, "give %s, not both", list);
    if (given == 0) return hdb__config_fail(L, n, path, "needs %s", list);
    return HDB_OK;
}

/* A message of schema s from the mapping n at path: the keys are checked (known, distinct),
 * then read in the schema's order. */
static int load_message(const loader *L, const spec_schema *s, const yaml_node_t *n,
                        const char *path, ProtobufCMessage **out) {
    const char *known[MAX_RULES];
    char key[PATH_LEN];
    int rc;
    if (n->type != YAML_MAPPING_NODE)
        return hdb__config_fail(L, n, path, "must be a mapping%s, not %s", s->hint,
                                hdb__config_kind_name(n));
    for (size_t i = 0; i < s->n_rules; i++)
        known[i] = s->rules[i].key;
    if ((rc = hdb__config_check_mapping(L, n, path, known, s->n_rules)) != HDB_OK) return rc;
    if (s->one_of && (rc = check_one_of(L, s, n, path)) != HDB_OK) return rc;

    ProtobufCMessage *m = new_message(L, s->desc);
    for (size_t i = 0; i < s->n_rules; i++) {
        const spec_rule *r = &s->rules[i];
        const ProtobufCFieldDescriptor *f = rule_field(s, r);
        yaml_node_t *v;
        if (f == NULL) continue;
        if (r->required) {
            if ((rc = hdb__config_require(L, n, path, r->key, &v)) != HDB_OK) return rc;
        } else if ((v = hdb__config_lookup(L, n, r->key)) == NULL) {
            if (r->en != NULL) *(int *)(void *)((char *)m + f->offset) = r->en->dflt;
            continue;
        }
        join(key, path, r->key);
        if (r->custom != NULL)
            rc = r->custom(L, n, v, path, key, (char *)m + f->offset);
        else
            rc = load_field(L, f, r, v, key, m);
        if (rc != HDB_OK) return rc;
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
            *(uint32_t *)(void *)((char *)m + f->quantifier_offset) = f->id;
    }
    *out = m;
    return HDB_OK;
}

/* ---- index algorithms ---------------------------------------------------------------------- */

/* The algorithm `name` (the scalar v) of the mapping map at path, with its parameter mapping
 * from map: algorithm: flat | faiss | hnsw | sparse, and faiss: {...} or hnsw: {...}. The names
 * are the members of IndexAlgorithm's oneof. */
static int load_algorithm(const loader *L, const yaml_node_t *map, const yaml_node_t *v,
                          const char *path, const char *name, Hilbert__V1__IndexAlgorithm **out) {
    const ProtobufCMessageDescriptor *d = &hilbert__v1__index_algorithm__descriptor;
    const ProtobufCFieldDescriptor *kind = NULL;
    const char *names[MAX_RULES];
    char key[PATH_LEN], list[256];
    size_t own = N_ALGORITHM_PARAMS;
    int rc;

    for (unsigned i = 0; i < d->n_fields; i++) {
        names[i] = d->fields[i].name;
        if (kind == NULL && strcasecmp(name, d->fields[i].name) == 0) kind = &d->fields[i];
    }
    if (kind == NULL)
        return hdb__config_fail(L, v, join(key, path, "algorithm"),
                                "unknown algorithm \"%.60s\" (expected %s)", name,
                                or_list(list, sizeof list, names, d->n_fields));
    for (size_t i = 0; i < N_ALGORITHM_PARAMS; i++)
        if (strcmp(algorithm_params[i].name, kind->name) == 0) own = i;
    /* Messages name an algorithm with parameters by its proto name, and one without as
     * written; the hand-written loader this replaced did so. */
    const char *shown = own < N_ALGORITHM_PARAMS ? kind->name : name;
    for (size_t i = 0; i < N_ALGORITHM_PARAMS; i++) {
        const yaml_node_t *p = hdb__config_lookup(L, map, algorithm_params[i].name);
        if (i != own && p != NULL)
            return hdb__config_fail(L, p, join(key, path, algorithm_params[i].name),
                                    "parameters of another algorithm (algorithm is %s)", shown);
    }

    Hilbert__V1__IndexAlgorithm *alg = (Hilbert__V1__IndexAlgorithm *)new_message(L, d);
    ProtobufCMessage **member = (ProtobufCMessage **)(void *)((char *)alg + kind->offset);
    const yaml_node_t *p = NULL;
    if (own < N_ALGORITHM_PARAMS) {
        join(key, path, kind->name);
        p = hdb__config_lookup(L, map, kind->name);
        if (p == NULL && algorithm_params[own].missing != NULL)
            return hdb__config_fail(L, map, key, "%s", algorithm_params[own].missing);
    }
    if (p != NULL) {
        if ((rc = load_message(L, algorithm_params[own].params, p, key, member)) != HDB_OK)
            return rc;
    } else {
        *member = new_message(L, kind->descriptor);
    }
    *(uint32_t *)(void *)((char *)alg + kind->quantifier_offset) = kind->id;
    *out = alg;
    return HDB_OK;
}

/* indices[i].algorithm: the algorithm's name; its parameters are keys of the index itself. */
static int load_algorithm_key(const loader *L, const yaml_node_t *map, const yaml_node_t *v,
                              const char *path, const char *key, void *dst) {
    char *name;
    int rc = hdb__config_get_string(L, v, key, &name);
    if (rc != HDB_OK) return rc;
    return load_algorithm(L, map, v, path, name, (Hilbert__V1__IndexAlgorithm **)dst);
}

/* model_spaces[i].index: {algorithm: NAME, faiss: {...}, hnsw: {...}}. */
static int load_index_mapping(const loader *L, const yaml_node_t *map, const yaml_node_t *v,
                              const char *path, const char *key, void *dst) {
    const char *known[1 + N_ALGORITHM_PARAMS] = {"algorithm"};
    char sub[PATH_LEN];
    yaml_node_t *w;
    char *name;
    int rc;
    (void)map;
    (void)path;
    if (v->type != YAML_MAPPING_NODE)
        return hdb__config_fail(L, v, key, "must be a mapping {algorithm: ...}, not %s",
                                hdb__config_kind_name(v));
    for (size_t i = 0; i < N_ALGORITHM_PARAMS; i++)
        known[1 + i] = algorithm_params[i].name;
    if ((rc = hdb__config_check_mapping(L, v, key, known, 1 + N_ALGORITHM_PARAMS)) != HDB_OK)
        return rc;
    if ((rc = hdb__config_require(L, v, key, "algorithm", &w)) != HDB_OK) return rc;
    if ((rc = hdb__config_get_string(L, w, join(sub, key, "algorithm"), &name)) != HDB_OK)
        return rc;
    return load_algorithm(L, v, w, key, name, (Hilbert__V1__IndexAlgorithm **)dst);
}

/* ---- the lists ----------------------------------------------------------------------------- */

int hdb__config_load_spec_list(const loader *L, const char *key, const yaml_node_t *n) {
    yaml_node_item_t *items;
    size_t count, x = 0;
    char path[64];
    while (strcmp(spec_lists[x].key, key) != 0) {
        x++;
        HDB_ASSERT(x < N_SPEC_LISTS);
    }
    int rc = hdb__config_get_list(L, n, key, &items, &count);
    if (rc != HDB_OK) return rc;
    ProtobufCMessage **arr = count ? hdb_arena_calloc(L->c->arena, count, sizeof *arr) : NULL;
    for (size_t i = 0; i < count; i++) {
        hdb__config_path(path, sizeof path, "%s[%zu]", key, i);
        rc = load_message(L, spec_lists[x].schema, hdb__config_node(L, items[i]), path, &arr[i]);
        if (rc != HDB_OK) return rc;
    }
    /* The typed arrays of hdb_config (Hilbert__V1__IndexSpec **indices, ...) hold messages
     * whose first member is their ProtobufCMessage base. */
    *(ProtobufCMessage ***)(void *)((char *)L->c + spec_lists[x].items) = arr;
    *(size_t *)(void *)((char *)L->c + spec_lists[x].count) = count;
    return HDB_OK;
}

/* ---- the schemas against the descriptors --------------------------------------------------- */

/* Checks schema s, and the schemas of its nested messages, against s->desc. */
static int check_schema(const spec_schema *s, char *err, size_t errlen) {
    const ProtobufCMessageDescriptor *d = s->desc;
    if (s->n_rules > MAX_RULES)
        return hdb_errf(err, errlen, HDB_EINTERNAL, "%s: more than %d keys", d->name, MAX_RULES);
    for (unsigned j = 0; j < d->n_fields; j++) {
        const ProtobufCFieldDescriptor *f = &d->fields[j];
        size_t uses = 0;
        for (size_t i = 0; i < s->n_rules; i++) {
            const char *name = s->rules[i].field ? s->rules[i].field : s->rules[i].key;
            uses += strcmp(name, f->name) == 0;
        }
        if (uses != 1)
            return hdb_errf(err, errlen, HDB_EINTERNAL, "%s.%s: read by %zu keys of the config",
                            d->name, f->name, uses);
        if (s->one_of != ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) != 0))
            return hdb_errf(err, errlen, HDB_EINTERNAL, "%s.%s: one_of does not match the proto",
                            d->name, f->name);
    }
    for (size_t i = 0; i < s->n_rules; i++) {
        const spec_rule *r = &s->rules[i];
        const char *name = r->field ? r->field : r->key;
        if (name[0] == '\0') continue;
        const ProtobufCFieldDescriptor *f =
            protobuf_c_message_descriptor_get_field_by_name(d, name);
        const char *bad = NULL;
        if (f == NULL) {
            bad = "no such field";
        } else if (r->custom != NULL) {
            bad = f->type == PROTOBUF_C_TYPE_MESSAGE && f->label != PROTOBUF_C_LABEL_REPEATED
                      ? NULL
                      : "custom loaders fill a single message";
        } else if (f->type == PROTOBUF_C_TYPE_UINT32 || f->type == PROTOBUF_C_TYPE_UINT64) {
            bad = r->max == 0 || r->min > r->max ? "no range" : NULL;
        } else if (f->type == PROTOBUF_C_TYPE_ENUM) {
            const ProtobufCEnumValue *zero = protobuf_c_enum_descriptor_get_value(f->descriptor, 0);
            size_t len = zero ? strlen(zero->name) : 0;
            if (r->en == NULL)
                bad = "an enum without a syntax";
            else if (r->en->parse == NULL &&
                     (zero == NULL || len < 11 || strcmp(zero->name + len - 11, "UNSPECIFIED")))
                bad = "names from the enum, whose value 0 is not *_UNSPECIFIED";
        } else if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
            if (r->sub == NULL || r->sub->desc != f->descriptor)
                bad = "a message without its schema";
            else if (check_schema(r->sub, err, errlen) != HDB_OK)
                return HDB_EINTERNAL;
        } else if (f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_FLOAT &&
                   f->type != PROTOBUF_C_TYPE_BOOL) {
            bad = "a field type without a YAML form";
        }
        if (bad != NULL)
            return hdb_errf(err, errlen, HDB_EINTERNAL, "%s: key %s: %s", d->name, r->key, bad);
    }
    return HDB_OK;
}

int hdb__config_check_specs(char *err, size_t errlen) {
    const ProtobufCMessageDescriptor *d = &hilbert__v1__index_algorithm__descriptor;
    int rc;
    for (size_t i = 0; i < N_SPEC_LISTS; i++)
        if ((rc = check_schema(spec_lists[i].schema, err, errlen)) != HDB_OK) return rc;
    if (d->n_fields > MAX_RULES)
        return hdb_errf(err, errlen, HDB_EINTERNAL, "%s: too many algorithms", d->name);
    for (unsigned j = 0; j < d->n_fields; j++) {
        const ProtobufCMessageDescriptor *m = d->fields[j].descriptor;
        bool listed = false;
        for (size_t i = 0; i < N_ALGORITHM_PARAMS; i++)
            listed |= strcmp(algorithm_params[i].name, d->fields[j].name) == 0;
        if (m->n_fields > 0 && !listed)
            return hdb_errf(err, errlen, HDB_EINTERNAL, "%s: %s has parameters but no schema",
                            d->name, d->fields[j].name);
    }
    for (size_t i = 0; i < N_ALGORITHM_PARAMS; i++) {
        const char *name = algorithm_params[i].name;
        const ProtobufCFieldDescriptor *f =
            protobuf_c_message_descriptor_get_field_by_name(d, name);
        bool in_index = false;
        if (f == NULL || f->descriptor != algorithm_params[i].params->desc)
            return hdb_errf(err, errlen, HDB_EINTERNAL, "%s: no member %s with these parameters",
                            d->name, name);
        for (size_t k = 0; k < sizeof index_rules / sizeof index_rules[0]; k++)
            in_index |= strcmp(index_rules[k].key, name) == 0 && index_rules[k].field != NULL &&
                        index_rules[k].field[0] == '\0';
        if (!in_index) return hdb_errf(err, errlen, HDB_EINTERNAL, "index_rules: no key %s", name);
        if ((rc = check_schema(algorithm_params[i].params, err, errlen)) != HDB_OK) return rc;
    }
    return HDB_OK;
}
