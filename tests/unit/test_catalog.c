/*
 * test_catalog.c - unit tests of the catalog and the ingest path on real RocksDB files:
 * definitions are validated, stored and reloaded; indices are rebuilt from points on reopen;
 * drops release storage; orphaned column families are cleaned up; uploads are atomic (a
 * rejected batch writes nothing) and keep permanent attributes unchanged; owned pairs of a
 * source and an index are created, refused to plain drops, adopted and dropped as one; aliases
 * are stored, reloaded, updated all or nothing, resolved, and keep their targets from drops.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "hdb_applier.h"
#include "hdb_arena.h"
#include "hdb_catalog.h"
#include "hdb_commit.h"
#include "hdb_config.h"
#include "hdb_err.h"
#include "hdb_index.h"
#include "hdb_ingest.h"
#include "hdb_log.h"
#include "hdb_store.h"
#include "hdb_table.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

typedef struct {
    char dir[512];    /* data_dir: snapshots go to dir/indices */
    char dbpath[600]; /* dir/db */
    hdb_config cfg;
    hdb_store *store;
    hdb_catalog *cat;
    hdb_arena *arena;
} fixture;

static void open_all(fixture *f) {
    char err[512];
    hdb_store_options o = {.path = f->dbpath,
                           .sync = false,
                           .block_cache_bytes = 8 << 20,
                           .write_buffer_bytes = 4 << 20};
    assert_int_equal(hdb_store_open(&f->store, &o, err, sizeof err), HDB_OK);
    int rc = hdb_catalog_open(&f->cat, f->store, &f->cfg, err, sizeof err);
    if (rc != HDB_OK) fprintf(stderr, "catalog: %s\n", err);
    assert_int_equal(rc, HDB_OK);
}

static void close_all(fixture *f) {
    hdb_catalog_close(f->cat);
    hdb_store_close(f->store);
    f->cat = NULL;
    f->store = NULL;
}

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    const char *base = getenv("HDB_TEST_TMP") ? getenv("HDB_TEST_TMP") : "/tmp";
    mkdir(base, 0755);
    snprintf(f->dir, sizeof f->dir, "%s/test_catalog.XXXXXX", base);
    if (mkdtemp(f->dir) == NULL) return -1;
    snprintf(f->dbpath, sizeof f->dbpath, "%s/db", f->dir);
    hdb_config_init(&f->cfg);
    f->cfg.data_dir = f->dir;
    f->arena = hdb_arena_create(0);
    *state = f;
    open_all(f);
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    close_all(f);
    hdb_config_free(&f->cfg);
    hdb_arena_free(f->arena);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    int rc = system(cmd);
    (void)rc;
    free(f);
    return 0;
}

/* A source "items@1": dim 3, id (int64, id attribute), kind (string). */
static Hilbert__V1__DataSourceSpec *items_spec(hdb_arena *a) {
    Hilbert__V1__DataSourceSpec *s = hdb_arena_alloc(a, sizeof *s);
    hilbert__v1__data_source_spec__init(s);
    s->name = "items";
    s->version = "1";
    s->dimension = 3;
    Hilbert__V1__AttributeSpec **attrs = hdb_arena_alloc(a, 2 * sizeof *attrs);
    for (int i = 0; i < 2; i++) {
        attrs[i] = hdb_arena_alloc(a, sizeof **attrs);
        hilbert__v1__attribute_spec__init(attrs[i]);
    }
    attrs[0]->name = "kind";
    attrs[0]->type = HILBERT__V1__ATTRIBUTE_TYPE__ATTRIBUTE_TYPE_STRING;
    attrs[1]->name = "id";
    attrs[1]->type = HILBERT__V1__ATTRIBUTE_TYPE__ATTRIBUTE_TYPE_INT64;
    s->permanent_attributes = attrs;
    s->n_permanent_attributes = 2;
    char **ids = hdb_arena_alloc(a, sizeof *ids);
    ids[0] = "id";
    s->id_attributes = ids;
    s->n_id_attributes = 1;
    return s;
}

static Hilbert__V1__IndexSpec *index_spec(hdb_arena *a, const char *name, char *split) {
    Hilbert__V1__IndexSpec *s = hdb_arena_alloc(a, sizeof *s);
    hilbert__v1__index_spec__init(s);
    s->name = (char *)name;
    s->version = "1";
    Hilbert__V1__DataSourceRef *ref = hdb_arena_alloc(a, sizeof *ref);
    hilbert__v1__data_source_ref__init(ref);
    ref->name = "items";
    ref->version = "1";
    s->data_source = ref;
    Hilbert__V1__IndexAlgorithm *alg = hdb_arena_alloc(a, sizeof *alg);
    hilbert__v1__index_algorithm__init(alg);
    Hilbert__V1__FlatAlgorithm *flat = hdb_arena_alloc(a, sizeof *flat);
    hilbert__v1__flat_algorithm__init(flat);
    alg->kind_case = HILBERT__V1__INDEX_ALGORITHM__KIND_FLAT;
    alg->flat = flat;
    s->algorithm = alg;
    s->metric = HILBERT__V1__METRIC__METRIC_L2;
    if (split) {
        char **sp = hdb_arena_alloc(a, sizeof *sp);
        sp[0] = split;
        s->split_attributes = sp;
        s->n_split_attributes = 1;
    }
    return s;
}

static hdb_point make_point(hdb_arena *a, int64_t id, const char *kind, float x, bool deleted) {
    hdb_attr *attrs = hdb_arena_alloc(a, 2 * sizeof *attrs);
    attrs[0] = (hdb_attr){"id", {.type = HDB_ATTR_INT64, .u.i = id}};
    attrs[1] = (hdb_attr){"kind", {.type = HDB_ATTR_STRING, .u.s = {kind, strlen(kind)}}};
    float *v = hdb_arena_alloc(a, 3 * sizeof *v);
    v[0] = x;
    v[1] = 0;
    v[2] = 0;
    return (hdb_point){.vec = deleted ? NULL : v,
                       .dim = deleted ? 0 : 3,
                       .attrs = attrs,
                       .nattrs = deleted ? 1 : 2,
                       .deleted = deleted};
}

/* Waits (up to 20 s) until the index has applied seq, and returns it. */
static hdb_index *ready(hdb_ixent *ix, uint64_t seq) {
    char err[512];
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t deadline = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + 20000000000LL;
    int rc = hdb_applier_wait(hdb_ixent_applier(ix), seq, deadline, err, sizeof err);
    if (rc != HDB_OK) fprintf(stderr, "wait: %s\n", err);
    assert_int_equal(rc, HDB_OK);
    hdb_index *index;
    assert_int_equal(hdb_applier_index(hdb_ixent_applier(ix), &index, err, sizeof err), HDB_OK);
    return index;
}

static void test_source_validation(void **state) {
    fixture *f = *state;
    char err[512];
    Hilbert__V1__DataSourceSpec *s = items_spec(f->arena);
    s->dimension = 0;
    assert_int_equal(hdb_catalog_create_source(f->cat, s, NULL, err, sizeof err), HDB_EINVAL);
    assert_non_null(strstr(err, "spec.dimension"));
    s->dimension = f->cfg.max_dimension + 1;
    assert_int_equal(hdb_catalog_create_source(f->cat, s, NULL, err, sizeof err), HDB_EINVAL);
    assert_non_null(strstr(err, "limits.max_dimension"));
    s->dimension = 3;
    s->id_attributes[0] = "nope";
    assert_int_equal(hdb_catalog_create_source(f->cat, s, NULL, err, sizeof err), HDB_EINVAL);
    assert_non_null(strstr(err, "spec.id_attributes[0]"));
    s->id_attributes[0] = "id";
    s->permanent_attributes[0]->name = "id";
    assert_int_equal(hdb_catalog_create_source(f->cat, s, NULL, err, sizeof err), HDB_EINVAL);
    assert_non_null(strstr(err, "declared twice"));
    s->permanent_attributes[0]->name = "kind";
    s->permanent_attributes[0]->type = 0;
    assert_int_equal(hdb_catalog_create_source(f->cat, s, NULL, err, sizeof err), HDB_EINVAL);
    assert_non_null(strstr(err, "spec.permanent_attributes[0].type"));
    s->permanent_attributes[0]->type = HILBERT__V1__ATTRIBUTE_TYPE__ATTRIBUTE_TYPE_FLOAT64;
    s->id_attributes[0] = "kind";
    assert_int_equal(hdb_catalog_create_source(f->cat, s, NULL, err, sizeof err), HDB_EINVAL);
    assert_non_null(strstr(err, "float64"));
    s->name = "bad name";
    assert_int_equal(hdb_catalog_create_source(f->cat, s, NULL, err, sizeof err), HDB_EINVAL);
    assert_non_null(strstr(err, "spec.name"));
    hdb_source **list;
    assert_int_equal(hdb_catalog_list_sources(f->cat, f->arena, &list), 0);
}

static void test_lifecycle_and_reopen(void **state) {
    fixture *f = *state;
    char err[512];
    hdb_source *src;
    assert_int_equal(hdb_catalog_create_source(f->cat, items_spec(f->arena), &src, err, sizeof err),
                     HDB_OK);
    assert_int_equal(hdb_catalog_create_source(f->cat, items_spec(f->arena), NULL, err, sizeof err),
                     HDB_EEXIST);
    hdb_point pts[4];
    for (int i = 0; i < 4; i++)
        pts[i] = make_point(f->arena, i, i % 2 ? "odd" : "even", (float)i, false);
    uint64_t first, last;
    assert_int_equal(hdb_ingest_upload(f->cat, src, &f->cfg, INT64_MAX, pts, 4, f->arena, &first,
                                       &last, err, sizeof err),
                     HDB_OK);
    assert_int_equal(first, 1);
    assert_int_equal(last, 4);
    /* An index created on a non-empty source is built from its points. */
    hdb_ixent *ix;
    assert_int_equal(hdb_catalog_create_index(f->cat, index_spec(f->arena, "by-kind", "kind"), &ix,
                                              err, sizeof err),
                     HDB_OK);
    hdb_index *index = ready(ix, 4);
    assert_int_equal(hdb_index_size(index), 4);
    assert_int_equal(hdb_index_nsplits(index), 2);
    assert_int_equal(hdb_index_applied(index), 4);
    hdb_ixent_unref(ix);
    assert_int_equal(hdb_catalog_drop_source(f->cat, "items", "1", err, sizeof err), HDB_EPRECOND);
    assert_non_null(strstr(err, "by-kind@1"));
    hdb_source_unref(src);

    close_all(f);
    open_all(f);
    assert_int_equal(hdb_catalog_get_source(f->cat, "items", "1", &src, err, sizeof err), HDB_OK);
    assert_int_equal(hdb_table_last_seq(hdb_source_table(src)), 4);
    assert_int_equal(hdb_table_count(hdb_source_table(src)), 4);
    assert_int_equal(hdb_catalog_get_index(f->cat, "by-kind", "1", &ix, err, sizeof err), HDB_OK);
    index = ready(ix, 4);
    assert_int_equal(hdb_index_size(index), 4);
    assert_int_equal(hdb_index_applied(index), 4);
    /* The index came back from the snapshot written when the catalog closed. */
    hdb_applier_status st;
    hdb_applier_status_get(hdb_ixent_applier(ix), &st);
    assert_int_equal(st.snapshot_seq, 4);
    hdb_ixent_unref(ix);
    /* Seqs continue after a reopen. */
    hdb_point more = make_point(f->arena, 10, "even", 10, false);
    assert_int_equal(hdb_ingest_upload(f->cat, src, &f->cfg, INT64_MAX, &more, 1, f->arena, &first,
                                       &last, err, sizeof err),
                     HDB_OK);
    assert_int_equal(first, 5);
    hdb_source_unref(src);

    assert_int_equal(hdb_catalog_drop_index(f->cat, "by-kind", "1", err, sizeof err), HDB_OK);
    assert_int_equal(hdb_catalog_drop_index(f->cat, "by-kind", "1", err, sizeof err),
                     HDB_ENOTFOUND);
    assert_int_equal(hdb_catalog_drop_source(f->cat, "items", "1", err, sizeof err), HDB_OK);
    assert_null(hdb_store_cf(f->store, "points.1"));
    close_all(f);
    open_all(f);
    assert_int_equal(hdb_catalog_get_source(f->cat, "items", "1", &src, err, sizeof err),
                     HDB_ENOTFOUND);
    hdb_ixent **ixs;
    assert_int_equal(hdb_catalog_list_indices(f->cat, f->arena, &ixs), 0);
}

/* Column families that no definition references (a crash between steps) are dropped at open. */
static void test_orphans_dropped(void **state) {
    fixture *f = *state;
    char err[256];
    hdb_cf *cf;
    assert_int_equal(hdb_store_cf_create(f->store, "points.99", &cf, err, sizeof err), HDB_OK);
    close_all(f);
    open_all(f);
    assert_null(hdb_store_cf(f->store, "points.99"));
    assert_non_null(hdb_store_cf(f->store, "catalog"));
}

/* An owned pair: created and dropped as one, refused to plain drops, adopted after a reopen
 * when its definitions match, and removed again when its index cannot be created. */
static void test_owned_pair(void **state) {
    fixture *f = *state;
    char err[512];
    hdb_owned_spec os = {.source = items_spec(f->arena),
                         .index = index_spec(f->arena, "items", NULL),
                         .algorithm = "spec.index",
                         .owner_kind = "model space",
                         .owner_name = "items"};
    /* Validation names the algorithm as the owner asks. */
    Hilbert__V1__IndexSpec *noalg = index_spec(f->arena, "items", NULL);
    noalg->algorithm = NULL;
    hdb_owned_spec bad = os;
    bad.index = noalg;
    assert_int_equal(hdb_catalog_check_owned(f->cat, &bad, err, sizeof err), HDB_EINVAL);
    assert_string_equal(err, "spec.index: is required (flat, faiss, hnsw or sparse)");
    assert_int_equal(hdb_catalog_check_owned(f->cat, &os, err, sizeof err), HDB_OK);
    /* An index that cannot be created leaves no data source behind. */
    bad.index = index_spec(f->arena, "items", "nope");
    assert_int_equal(hdb_catalog_create_owned(f->cat, &bad, NULL, NULL, err, sizeof err),
                     HDB_EINVAL);
    assert_string_equal(err, "spec.split_attributes[0]: \"nope\" is not a permanent attribute "
                             "of data source items@1");
    hdb_source *src, *src2;
    hdb_ixent *ix, *ix2;
    assert_int_equal(hdb_catalog_get_source(f->cat, "items", "1", &src, err, sizeof err),
                     HDB_ENOTFOUND);

    assert_int_equal(hdb_catalog_create_owned(f->cat, &os, &src, &ix, err, sizeof err), HDB_OK);
    assert_ptr_equal(hdb_ixent_source(ix), src);
    assert_int_equal(hdb_catalog_drop_source(f->cat, "items", "1", err, sizeof err), HDB_EPRECOND);
    assert_string_equal(err, "data_source: items@1 belongs to model space items; drop the model "
                             "space");
    assert_int_equal(hdb_catalog_drop_index(f->cat, "items", "1", err, sizeof err), HDB_EPRECOND);
    assert_string_equal(err, "index: items@1 belongs to model space items; drop the model space");
    assert_int_equal(hdb_catalog_create_owned(f->cat, &os, &src2, &ix2, err, sizeof err),
                     HDB_EEXIST);
    hdb_ixent_unref(ix);
    hdb_source_unref(src);

    /* After a reopen the pair is plain until its owner claims it again. */
    close_all(f);
    open_all(f);
    hdb_owned_spec other = os;
    other.index = index_spec(f->arena, "items", "kind");
    assert_int_equal(hdb_catalog_create_owned(f->cat, &other, &src, &ix, err, sizeof err),
                     HDB_EEXIST);
    assert_string_equal(err, "index items@1 exists with another definition; drop it first");
    assert_int_equal(hdb_catalog_get_source(f->cat, "items", "1", &src2, err, sizeof err), HDB_OK);
    assert_int_equal(hdb_catalog_create_owned(f->cat, &os, &src, &ix, err, sizeof err), HDB_OK);
    assert_ptr_equal(src, src2);
    hdb_source_unref(src2);
    assert_int_equal(hdb_catalog_drop_index(f->cat, "items", "1", err, sizeof err), HDB_EPRECOND);

    assert_int_equal(hdb_catalog_drop_owned(f->cat, src, ix, err, sizeof err), HDB_OK);
    assert_true(hdb_source_dropped(src));
    hdb_ixent_unref(ix);
    hdb_source_unref(src);
    assert_int_equal(hdb_catalog_get_index(f->cat, "items", "1", &ix, err, sizeof err),
                     HDB_ENOTFOUND);
    assert_int_equal(hdb_catalog_get_source(f->cat, "items", "1", &src, err, sizeof err),
                     HDB_ENOTFOUND);
}

static void test_upload_atomic(void **state) {
    fixture *f = *state;
    char err[512];
    hdb_source *src;
    assert_int_equal(hdb_catalog_create_source(f->cat, items_spec(f->arena), &src, err, sizeof err),
                     HDB_OK);
    hdb_ixent *ix;
    assert_int_equal(
        hdb_catalog_create_index(f->cat, index_spec(f->arena, "all", NULL), &ix, err, sizeof err),
        HDB_OK);
    uint64_t first, last;
    hdb_point p0 = make_point(f->arena, 1, "a", 1, false);
    assert_int_equal(hdb_ingest_upload(f->cat, src, &f->cfg, INT64_MAX, &p0, 1, f->arena, &first,
                                       &last, err, sizeof err),
                     HDB_OK);
    /* Point 1 of this batch changes a permanent attribute: the whole batch is refused. */
    hdb_point batch[3] = {make_point(f->arena, 2, "b", 2, false),
                          make_point(f->arena, 1, "CHANGED", 1, false),
                          make_point(f->arena, 3, "c", 3, false)};
    assert_int_equal(hdb_ingest_upload(f->cat, src, &f->cfg, INT64_MAX, batch, 3, f->arena, &first,
                                       &last, err, sizeof err),
                     HDB_EINVAL);
    assert_string_equal(err, "points[1].attributes[\"kind\"]: permanent attribute cannot change "
                             "(stored \"a\", got \"CHANGED\")");
    assert_int_equal(hdb_table_last_seq(hdb_source_table(src)), 1);
    assert_int_equal(hdb_table_count(hdb_source_table(src)), 1);
    assert_int_equal(hdb_index_size(ready(ix, 1)), 1);
    hdb_attr id2 = {"id", {.type = HDB_ATTR_INT64, .u.i = 2}};
    hdb_attr *ids[1] = {&id2};
    uint32_t nids[1] = {1};
    hdb_row res[1];
    assert_int_equal(hdb_ingest_get(src, &f->cfg, ids, nids, 1, f->arena, res, err, sizeof err),
                     HDB_OK);
    assert_false(res[0].found);

    /* Dimension and NaN checks name the point and the component. */
    hdb_point bad = make_point(f->arena, 5, "x", NAN, false);
    assert_int_equal(hdb_ingest_upload(f->cat, src, &f->cfg, INT64_MAX, &bad, 1, f->arena, &first,
                                       &last, err, sizeof err),
                     HDB_EINVAL);
    assert_string_equal(err, "points[0].vector: component 0 is NaN; vectors must be finite");
    bad.dim = 2;
    assert_int_equal(hdb_ingest_upload(f->cat, src, &f->cfg, INT64_MAX, &bad, 1, f->arena, &first,
                                       &last, err, sizeof err),
                     HDB_EINVAL);
    assert_non_null(strstr(err, "dimension 2"));

    /* Delete, then the tombstone of an absent point: both take a seq. */
    hdb_point del[2] = {make_point(f->arena, 1, "a", 0, true),
                        make_point(f->arena, 7, "a", 0, true)};
    assert_int_equal(hdb_ingest_upload(f->cat, src, &f->cfg, INT64_MAX, del, 2, f->arena, &first,
                                       &last, err, sizeof err),
                     HDB_OK);
    assert_int_equal(first, 2);
    assert_int_equal(last, 3);
    assert_int_equal(hdb_table_count(hdb_source_table(src)), 0);
    hdb_index *index = ready(ix, 3);
    assert_int_equal(hdb_index_size(index), 0);
    assert_int_equal(hdb_index_applied(index), 3);
    hdb_ixent_unref(ix);
    hdb_source_unref(src);
}

/* ---- aliases */

static Hilbert__V1__AliasAction *alias_act(hdb_arena *a, int action, const char *name,
                                           const char *ixname, const char *space) {
    Hilbert__V1__AliasAction *act = hdb_arena_alloc(a, sizeof *act);
    hilbert__v1__alias_action__init(act);
    Hilbert__V1__Alias *al = hdb_arena_alloc(a, sizeof *al);
    hilbert__v1__alias__init(al);
    al->name = (char *)name;
    if (ixname) {
        al->index = hdb_arena_alloc(a, sizeof *al->index);
        hilbert__v1__index_ref__init(al->index);
        al->index->name = (char *)ixname;
        al->index->version = "1";
    }
    if (space) al->model_space = (char *)space;
    act->action_case = action;
    if (action == HILBERT__V1__ALIAS_ACTION__ACTION_CREATE_ALIAS) act->create_alias = al;
    if (action == HILBERT__V1__ALIAS_ACTION__ACTION_SWITCH_ALIAS) act->switch_alias = al;
    if (action == HILBERT__V1__ALIAS_ACTION__ACTION_DELETE_ALIAS) {
        act->delete_alias = al;
        if (!ixname && !space) al->kind = HILBERT__V1__ALIAS_KIND__ALIAS_KIND_INDEX;
    }
    return act;
}

#define CREATE HILBERT__V1__ALIAS_ACTION__ACTION_CREATE_ALIAS
#define SWITCH HILBERT__V1__ALIAS_ACTION__ACTION_SWITCH_ALIAS
#define DELETE HILBERT__V1__ALIAS_ACTION__ACTION_DELETE_ALIAS

/* The label of the index that alias `name` resolves to now, or "" when it does not. */
static const char *resolved(fixture *f, const char *name) {
    hdb_ixent *ix;
    char err[256];
    if (hdb_catalog_get_index(f->cat, name, "", &ix, err, sizeof err) != HDB_OK) return "";
    const char *l = hdb_arena_strndup(f->arena, hdb_ixent_label(ix), strlen(hdb_ixent_label(ix)));
    hdb_ixent_unref(ix);
    return l;
}

static int update(fixture *f, char *err, size_t errlen, size_t n, ...) {
    Hilbert__V1__AliasAction **acts = hdb_arena_alloc(f->arena, (n ? n : 1) * sizeof *acts);
    va_list ap;
    va_start(ap, n);
    for (size_t i = 0; i < n; i++) acts[i] = va_arg(ap, Hilbert__V1__AliasAction *);
    va_end(ap);
    return hdb_catalog_update_aliases(f->cat, acts, n, NULL, err, errlen);
}

static void test_aliases(void **state) {
    fixture *f = *state;
    hdb_arena *a = f->arena;
    char err[512];
    assert_int_equal(hdb_catalog_create_source(f->cat, items_spec(a), NULL, err, sizeof err),
                     HDB_OK);
    assert_int_equal(hdb_catalog_create_index(f->cat, index_spec(a, "blue", NULL), NULL, err,
                                              sizeof err),
                     HDB_OK);
    assert_int_equal(hdb_catalog_create_index(f->cat, index_spec(a, "green", NULL), NULL, err,
                                              sizeof err),
                     HDB_OK);
    /* Before any alias: an empty version names an alias, and there is none. */
    hdb_ixent *ix;
    assert_int_equal(hdb_catalog_get_index(f->cat, "live", "", &ix, err, sizeof err),
                     HDB_ENOTFOUND);
    assert_non_null(strstr(err, "no index alias \"live\""));

    assert_int_equal(update(f, err, sizeof err, 2, alias_act(a, CREATE, "live", "blue", NULL),
                            alias_act(a, CREATE, "old", "green", NULL)),
                     HDB_OK);
    assert_string_equal(resolved(f, "live"), "blue@1");
    assert_string_equal(resolved(f, "old"), "green@1");

    /* All or nothing: a good switch followed by a bad action leaves everything as it was. */
    struct {
        Hilbert__V1__AliasAction *bad;
        int rc;
        const char *field;
    } bad[] = {
        {alias_act(a, CREATE, "x", "missing", NULL), HDB_ENOTFOUND, "actions[1].create_alias.index:"},
        {alias_act(a, CREATE, "", "blue", NULL), HDB_EINVAL, "actions[1].create_alias.name:"},
        {alias_act(a, CREATE, "old", "blue", NULL), HDB_EEXIST, "actions[1].create_alias.name:"},
        {alias_act(a, SWITCH, "nope", "blue", NULL), HDB_ENOTFOUND, "actions[1].switch_alias.name:"},
        {alias_act(a, DELETE, "nope", NULL, NULL), HDB_ENOTFOUND, "actions[1].delete_alias.name:"},
        {alias_act(a, CREATE, "y", NULL, NULL), HDB_EINVAL, "actions[1].create_alias.index:"},
        {alias_act(a, CREATE, "y", "blue", "rgb"), HDB_EINVAL, "actions[1].create_alias:"},
        {alias_act(a, CREATE, "y", NULL, "rgb"), HDB_ENOTFOUND,
         "actions[1].create_alias.model_space:"},
        {alias_act(a, 0, "y", NULL, NULL), HDB_EINVAL, "actions[1]:"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_int_equal(update(f, err, sizeof err, 2, alias_act(a, SWITCH, "live", "green", NULL),
                                bad[i].bad),
                         bad[i].rc);
        if (strncmp(err, bad[i].field, strlen(bad[i].field)) != 0)
            fail_msg("case %zu: %s does not start with %s", i, err, bad[i].field);
        assert_string_equal(resolved(f, "live"), "blue@1");
    }
    assert_int_equal(update(f, err, sizeof err, 0), HDB_EINVAL);
    assert_non_null(strstr(err, "actions:"));
    /* Actions see the earlier ones: delete then create again, create then switch. */
    assert_int_equal(update(f, err, sizeof err, 3, alias_act(a, DELETE, "old", NULL, NULL),
                            alias_act(a, CREATE, "old", "blue", NULL),
                            alias_act(a, SWITCH, "live", "green", NULL)),
                     HDB_OK);
    assert_string_equal(resolved(f, "live"), "green@1");
    assert_string_equal(resolved(f, "old"), "blue@1");

    /* A target of an alias cannot be dropped; the index itself keeps its plain name. */
    assert_int_equal(hdb_catalog_drop_index(f->cat, "green", "1", err, sizeof err), HDB_EPRECOND);
    assert_non_null(strstr(err, "index alias \"live\""));
    assert_int_equal(hdb_catalog_drop_index(f->cat, "live", "", err, sizeof err), HDB_EINVAL);
    assert_non_null(strstr(err, "index.version"));

    /* The aliases survive a reopen. */
    close_all(f);
    open_all(f);
    assert_string_equal(resolved(f, "live"), "green@1");
    assert_string_equal(resolved(f, "old"), "blue@1");
    Hilbert__V1__Alias **list;
    assert_int_equal(hdb_catalog_list_aliases(f->cat, a, &list), 2);
    assert_string_equal(list[0]->name, "live");
    assert_string_equal(list[0]->index->name, "green");
    assert_int_equal(list[0]->kind, HILBERT__V1__ALIAS_KIND__ALIAS_KIND_INDEX);
    assert_string_equal(list[1]->name, "old");

    /* Deleted aliases stay deleted after a reopen, and free their targets. */
    assert_int_equal(update(f, err, sizeof err, 2, alias_act(a, DELETE, "old", NULL, NULL),
                            alias_act(a, DELETE, "live", NULL, NULL)),
                     HDB_OK);
    assert_int_equal(hdb_catalog_drop_index(f->cat, "green", "1", err, sizeof err), HDB_OK);
    close_all(f);
    open_all(f);
    assert_int_equal(hdb_catalog_list_aliases(f->cat, a, &list), 0);
    assert_int_equal(hdb_catalog_get_index(f->cat, "live", "", &ix, err, sizeof err),
                     HDB_ENOTFOUND);
}

int main(void) {
    hdb_log_set_level(HDB_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_source_validation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lifecycle_and_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_orphans_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_owned_pair, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upload_atomic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_aliases, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
