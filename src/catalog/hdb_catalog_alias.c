/*
 * hdb_catalog_alias.c - aliases: second names for indices and model spaces (hdb_catalog.h).
 *
 * The aliases live in one sorted array under the registry lock. An update builds the new array
 * aside (checking its actions against it as it goes), stores the difference to the old one in
 * one write of the definitions (hdb_defs_apply), and only then swaps the arrays under the
 * write lock: a lookup sees the aliases before the update or after it, never a part of it.
 * Each stored alias is a packed Alias message under "i/name" (index) or "m/name" (model space).
 */
#include "hdb_catalog_int.h"

#include "hdb_arena.h"
#include "hdb_defs.h"
#include "hdb_err.h"
#include "hdb_log.h"
#include "hdb_mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- the array */

static int alias_cmp(hdb_alias_kind ak, const char *an, hdb_alias_kind bk, const char *bn) {
    if (ak != bk) return ak < bk ? -1 : 1;
    return strcmp(an, bn);
}

static int alias_qsort_cmp(const void *a, const void *b) {
    const hdb__alias *x = a, *y = b;
    return alias_cmp(x->kind, x->name, y->kind, y->name);
}

static void alias_set(hdb__alias *al, hdb_alias_kind kind, const char *name, const char *tname,
                      const char *tversion) {
    al->kind = kind;
    al->name = hdb_strdup(name);
    al->tname = hdb_strdup(tname);
    al->tversion = tversion ? hdb_strdup(tversion) : NULL;
    al->target = tversion ? hdb__make_label(tname, tversion) : hdb_strdup(tname);
}

static void alias_clear(hdb__alias *al) {
    hdb_free(al->name);
    hdb_free(al->target);
    hdb_free(al->tname);
    hdb_free(al->tversion);
}

static void array_free(hdb__alias *a, size_t n) {
    for (size_t i = 0; i < n; i++) alias_clear(&a[i]);
    hdb_free(a);
}

const hdb__alias *hdb__alias_find(hdb_catalog *cat, hdb_alias_kind kind, const char *name) {
    size_t lo = 0, hi = cat->naliases;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = alias_cmp(cat->aliases[mid].kind, cat->aliases[mid].name, kind, name);
        if (c == 0) return &cat->aliases[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

void hdb__aliases_free(hdb_catalog *cat) {
    array_free(cat->aliases, cat->naliases);
    cat->aliases = NULL;
    cat->naliases = 0;
}

/* ---------------------------------------------------------------- storage */

static const char *kind_word(hdb_alias_kind kind) {
    return kind == HDB_ALIAS_INDEX ? "index alias" : "model-space alias";
}

/* The definition label: "i/name" or "m/name". */
static void def_label(hdb_alias_kind kind, const char *name, char *buf, size_t len) {
    snprintf(buf, len, "%c/%s", kind == HDB_ALIAS_INDEX ? 'i' : 'm', name);
}

/* The API message of al, in arena memory (strings borrowed from al unless copy). */
static Hilbert__V1__Alias *alias_msg(const hdb__alias *al, hdb_arena *a, bool copy) {
    Hilbert__V1__Alias *m = hdb_arena_alloc(a, sizeof *m);
    hilbert__v1__alias__init(m);
#define S(x) (copy ? hdb_arena_strndup(a, (x), strlen(x)) : (char *)(x))
    m->name = S(al->name);
    m->kind = (Hilbert__V1__AliasKind)al->kind;
    if (al->kind == HDB_ALIAS_INDEX) {
        m->index = hdb_arena_alloc(a, sizeof *m->index);
        hilbert__v1__index_ref__init(m->index);
        m->index->name = S(al->tname);
        m->index->version = S(al->tversion);
    } else {
        m->model_space = S(al->tname);
    }
#undef S
    return m;
}

static int load_one(void *arg, const char *label, uint64_t id, const unsigned char *v,
                    size_t vlen, char *err, size_t errlen) {
    hdb_catalog *cat = arg;
    (void)id;
    hdb_arena *a = hdb_arena_create(0);
    int rc = HDB_OK;
    Hilbert__V1__Alias *m = hilbert__v1__alias__unpack(hdb_arena_protobuf(a), vlen, v);
    bool index = m && m->kind == HILBERT__V1__ALIAS_KIND__ALIAS_KIND_INDEX && m->index;
    bool space = m && m->kind == HILBERT__V1__ALIAS_KIND__ALIAS_KIND_MODEL_SPACE &&
                 m->model_space;
    if (!index && !space) {
        rc = hdb_errf(err, errlen, HDB_ECORRUPT, "alias catalog entry %s cannot be decoded",
                      label);
        goto out;
    }
    cat->aliases = hdb_realloc(cat->aliases, (cat->naliases + 1) * sizeof *cat->aliases);
    hdb__alias *al = &cat->aliases[cat->naliases++];
    alias_set(al, index ? HDB_ALIAS_INDEX : HDB_ALIAS_SPACE, m->name,
              index ? m->index->name : m->model_space, index ? m->index->version : NULL);
    if (index && hdb__find_index(cat, al->tname, al->tversion) == NULL)
        HDB_WARN("catalog", "index alias %s points to index %s, which does not exist; switch or "
                            "delete the alias",
                 al->name, al->target);
out:
    hdb_arena_free(a);
    return rc;
}

int hdb__aliases_load(hdb_catalog *cat, char *err, size_t errlen) {
    int rc = hdb_defs_foreach(cat->defs, HDB_DEF_ALIAS, load_one, cat, err, errlen);
    if (rc == HDB_OK && cat->naliases > 1)
        qsort(cat->aliases, cat->naliases, sizeof *cat->aliases, alias_qsort_cmp);
    return rc;
}

/* ---------------------------------------------------------------- updates */

/* The aliases being built by an update: entries in arena memory, unsorted. */
typedef struct {
    hdb_alias_kind kind;
    const char *name, *tname, *tversion; /* tversion NULL for a model space */
    bool live;                           /* false once deleted */
} work_alias;

typedef struct {
    work_alias *a;
    size_t n, cap;
} work_set;

static work_alias *work_find(work_set *w, hdb_alias_kind kind, const char *name) {
    for (size_t i = 0; i < w->n; i++)
        if (w->a[i].live && w->a[i].kind == kind && strcmp(w->a[i].name, name) == 0)
            return &w->a[i];
    return NULL;
}

static void work_add(work_set *w, hdb_arena *arena, work_alias al) {
    if (w->n == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 16;
        work_alias *na = hdb_arena_alloc(arena, cap * sizeof *na);
        if (w->n) memcpy(na, w->a, w->n * sizeof *na);
        w->a = na;
        w->cap = cap;
    }
    al.live = true;
    w->a[w->n++] = al;
}

/* One action, checked against (and applied to) w. */
static int apply_action(hdb_catalog *cat, const Hilbert__V1__AliasAction *act, size_t i,
                        const hdb_alias_spaces *spaces, work_set *w, hdb_arena *arena,
                        char *err, size_t errlen) {
    const char *what;
    const Hilbert__V1__Alias *al;
    switch (act ? act->action_case : HILBERT__V1__ALIAS_ACTION__ACTION__NOT_SET) {
    case HILBERT__V1__ALIAS_ACTION__ACTION_CREATE_ALIAS:
        what = "create_alias", al = act->create_alias;
        break;
    case HILBERT__V1__ALIAS_ACTION__ACTION_SWITCH_ALIAS:
        what = "switch_alias", al = act->switch_alias;
        break;
    case HILBERT__V1__ALIAS_ACTION__ACTION_DELETE_ALIAS:
        what = "delete_alias", al = act->delete_alias;
        break;
    default:
        return hdb_errf(err, errlen, HDB_EINVAL,
                        "actions[%zu]: one of create_alias, switch_alias or delete_alias is "
                        "required",
                        i);
    }
    bool del = act->action_case == HILBERT__V1__ALIAS_ACTION__ACTION_DELETE_ALIAS;
    bool create = act->action_case == HILBERT__V1__ALIAS_ACTION__ACTION_CREATE_ALIAS;
    char field[96];
    snprintf(field, sizeof field, "actions[%zu].%s.name", i, what);
    int rc = hdb_name_check(field, al->name, err, errlen);
    if (rc != HDB_OK) return rc;

    /* The kind: given, or that of the target. */
    bool has_index = al->index != NULL;
    bool has_space = al->model_space != NULL && al->model_space[0] != '\0';
    if ((int)al->kind < 0 || (int)al->kind > HDB_ALIAS_SPACE)
        return hdb_errf(err, errlen, HDB_EINVAL,
                        "actions[%zu].%s.kind: unknown value %d (INDEX or MODEL_SPACE)", i, what,
                        (int)al->kind);
    if (!del && has_index && has_space)
        return hdb_errf(err, errlen, HDB_EINVAL,
                        "actions[%zu].%s: give one target, index or model_space, not both", i,
                        what);
    if (!del && !has_index && !has_space)
        return hdb_errf(err, errlen, HDB_EINVAL,
                        "actions[%zu].%s.index: a target is required (index or model_space)", i,
                        what);
    hdb_alias_kind kind = (hdb_alias_kind)al->kind;
    if (kind == 0 && del && !has_index && !has_space)
        return hdb_errf(err, errlen, HDB_EINVAL,
                        "actions[%zu].delete_alias.kind: is required (INDEX or MODEL_SPACE)", i);
    hdb_alias_kind target_kind = has_index ? HDB_ALIAS_INDEX : HDB_ALIAS_SPACE;
    if (kind == 0) kind = target_kind;
    if (!del && kind != target_kind)
        return hdb_errf(err, errlen, HDB_EINVAL,
                        "actions[%zu].%s.kind: is %s, but the target is %s", i, what,
                        kind == HDB_ALIAS_INDEX ? "INDEX" : "MODEL_SPACE",
                        has_index ? "an index" : "a model space");

    work_alias *cur = work_find(w, kind, al->name);
    if (del) {
        if (cur == NULL)
            return hdb_errf(err, errlen, HDB_ENOTFOUND,
                            "actions[%zu].delete_alias.name: %s \"%s\" does not exist", i,
                            kind_word(kind), al->name);
        cur->live = false;
        return HDB_OK;
    }
    if (create && cur != NULL)
        return hdb_errf(err, errlen, HDB_EEXIST,
                        "actions[%zu].create_alias.name: %s \"%s\" already exists", i,
                        kind_word(kind), al->name);
    if (!create && cur == NULL)
        return hdb_errf(err, errlen, HDB_ENOTFOUND,
                        "actions[%zu].switch_alias.name: %s \"%s\" does not exist", i,
                        kind_word(kind), al->name);

    /* The target must exist (the DDL lock, or the caller's lock for spaces, keeps it so). */
    work_alias next = {.kind = kind, .name = al->name};
    if (kind == HDB_ALIAS_INDEX) {
        snprintf(field, sizeof field, "actions[%zu].%s.index", i, what);
        if ((rc = hdb__ref_check(field, al->index->name, al->index->version, err, errlen)))
            return rc;
        pthread_rwlock_rdlock(&cat->lock);
        bool exists = hdb__find_index(cat, al->index->name, al->index->version) != NULL;
        pthread_rwlock_unlock(&cat->lock);
        if (!exists)
            return hdb_errf(err, errlen, HDB_ENOTFOUND,
                            "actions[%zu].%s.index: index %s@%s does not exist", i, what,
                            al->index->name, al->index->version);
        next.tname = al->index->name;
        next.tversion = al->index->version;
    } else {
        snprintf(field, sizeof field, "actions[%zu].%s.model_space", i, what);
        if ((rc = hdb_name_check(field, al->model_space, err, errlen)) != HDB_OK) return rc;
        if (spaces == NULL || !spaces->exists(spaces->arg, al->model_space))
            return hdb_errf(err, errlen, HDB_ENOTFOUND,
                            "actions[%zu].%s.model_space: model space \"%s\" does not exist", i,
                            what, al->model_space);
        if (create && spaces->exists(spaces->arg, al->name))
            return hdb_errf(err, errlen, HDB_EEXIST,
                            "actions[%zu].create_alias.name: \"%s\" is the name of a model "
                            "space; a model-space alias needs a name of its own",
                            i, al->name);
        next.tname = al->model_space;
    }
    if (cur) cur->live = false;
    work_add(w, arena, next);
    return HDB_OK;
}

/* True when old (the current array) holds exactly the alias w. */
static bool unchanged(hdb_catalog *cat, const work_alias *w) {
    const hdb__alias *al = hdb__alias_find(cat, w->kind, w->name);
    if (al == NULL || strcmp(al->tname, w->tname) != 0) return false;
    if ((al->tversion == NULL) != (w->tversion == NULL)) return false;
    return al->tversion == NULL || strcmp(al->tversion, w->tversion) == 0;
}

int hdb_catalog_update_aliases(hdb_catalog *cat, Hilbert__V1__AliasAction *const *actions,
                               size_t n, const hdb_alias_spaces *spaces, char *err,
                               size_t errlen) {
    if (n == 0) return hdb_errf(err, errlen, HDB_EINVAL, "actions: at least one is required");
    int rc = HDB_OK;
    hdb_arena *arena = hdb_arena_create(0);
    pthread_mutex_lock(&cat->ddl);
    /* Only DDL changes the array, and we hold it: reading it without the lock is safe here. */
    work_set w = {0};
    for (size_t i = 0; i < cat->naliases; i++) {
        const hdb__alias *al = &cat->aliases[i];
        work_add(&w, arena,
                 (work_alias){.kind = al->kind, .name = al->name, .tname = al->tname,
                              .tversion = al->tversion});
    }
    for (size_t i = 0; i < n && rc == HDB_OK; i++)
        rc = apply_action(cat, actions[i], i, spaces, &w, arena, err, errlen);
    if (rc != HDB_OK) goto out;

    /* The difference, in one write: puts of new or repointed aliases, deletes of the gone. */
    size_t nlive = 0;
    for (size_t i = 0; i < w.n; i++) nlive += w.a[i].live;
    hdb_def_op *ops = hdb_arena_alloc(arena, (w.n + cat->naliases + 1) * sizeof *ops);
    size_t nops = 0;
    for (size_t i = 0; i < cat->naliases; i++) {
        const hdb__alias *al = &cat->aliases[i];
        if (work_find(&w, al->kind, al->name)) continue;
        char *label = hdb_arena_alloc(arena, HDB_NAME_MAX + 4);
        def_label(al->kind, al->name, label, HDB_NAME_MAX + 4);
        ops[nops++] = (hdb_def_op){.kind = HDB_DEF_ALIAS, .label = label};
    }
    hdb__alias *next = hdb_calloc(nlive ? nlive : 1, sizeof *next);
    size_t nnext = 0;
    for (size_t i = 0; i < w.n; i++) {
        const work_alias *wa = &w.a[i];
        if (!wa->live) continue;
        alias_set(&next[nnext], wa->kind, wa->name, wa->tname, wa->tversion);
        if (!unchanged(cat, wa)) {
            Hilbert__V1__Alias *m = alias_msg(&next[nnext], arena, false);
            size_t len = protobuf_c_message_get_packed_size(&m->base);
            unsigned char *buf = hdb_arena_alloc(arena, len ? len : 1);
            protobuf_c_message_pack(&m->base, buf);
            char *label = hdb_arena_alloc(arena, HDB_NAME_MAX + 4);
            def_label(wa->kind, wa->name, label, HDB_NAME_MAX + 4);
            ops[nops++] = (hdb_def_op){.kind = HDB_DEF_ALIAS, .label = label, .spec = buf,
                                       .len = len};
        }
        nnext++;
    }
    if (nops > 0 && (rc = hdb_defs_apply(cat->defs, ops, nops, err, errlen)) != HDB_OK) {
        array_free(next, nnext);
        hdb_err_prefix(err, errlen, rc, "aliases: ");
        goto out;
    }
    qsort(next, nnext, sizeof *next, alias_qsort_cmp);
    pthread_rwlock_wrlock(&cat->lock);
    hdb__alias *old = cat->aliases;
    size_t nold = cat->naliases;
    cat->aliases = next;
    cat->naliases = nnext;
    pthread_rwlock_unlock(&cat->lock);
    array_free(old, nold);
    HDB_INFO("catalog", "aliases updated: %zu actions, %zu aliases", n, nnext);
out:
    pthread_mutex_unlock(&cat->ddl);
    hdb_arena_free(arena);
    return rc;
}

/* ---------------------------------------------------------------- lookups */

size_t hdb_catalog_list_aliases(hdb_catalog *cat, hdb_arena *arena, Hilbert__V1__Alias ***out) {
    pthread_rwlock_rdlock(&cat->lock);
    size_t n = cat->naliases;
    Hilbert__V1__Alias **list = hdb_arena_alloc(arena, (n ? n : 1) * sizeof *list);
    for (size_t i = 0; i < n; i++) list[i] = alias_msg(&cat->aliases[i], arena, true);
    pthread_rwlock_unlock(&cat->lock);
    *out = list;
    return n;
}

bool hdb_catalog_space_alias(hdb_catalog *cat, const char *name, char *buf) {
    pthread_rwlock_rdlock(&cat->lock);
    const hdb__alias *al = name ? hdb__alias_find(cat, HDB_ALIAS_SPACE, name) : NULL;
    if (al) snprintf(buf, HDB_NAME_MAX + 1, "%s", al->target);
    pthread_rwlock_unlock(&cat->lock);
    return al != NULL;
}

bool hdb_catalog_alias_pointing(hdb_catalog *cat, hdb_alias_kind kind, const char *target,
                                char *buf) {
    bool found = false;
    pthread_rwlock_rdlock(&cat->lock);
    for (size_t i = 0; i < cat->naliases && !found; i++) {
        const hdb__alias *al = &cat->aliases[i];
        if (al->kind == kind && strcmp(al->target, target) == 0) {
            snprintf(buf, HDB_NAME_MAX + 1, "%s", al->name);
            found = true;
        }
    }
    pthread_rwlock_unlock(&cat->lock);
    return found;
}
