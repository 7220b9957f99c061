/*
 * hdb_backup.c - online backup (index snapshots, then a RocksDB checkpoint, with trims pinned)
 * and restore into a new data dir. The order and why it is consistent: hdb_backup.h.
 */
#include "hdb_backup.h"

#include "hdb_arena.h"
#include "hdb_catalog_int.h"
#include "hdb_clock.h"
#include "hdb_config.h"
#include "hdb_err.h"
#include "hdb_file.h"
#include "hdb_index.h"
#include "hdb_log.h"
#include "hdb_mem.h"
#include "hdb_store.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MANIFEST "BACKUP"
#define MAGIC "hilbertdb-backup"
#define FORMAT 1

/* ---------------------------------------------------------------- helpers */

/* True when dir is an empty directory; false (errno set) otherwise. */
static bool dir_empty(const char *dir) {
    DIR *d = opendir(dir);
    if (d == NULL) return false;
    struct dirent *e;
    bool empty = true;
    while (empty && (e = readdir(d)) != NULL)
        empty = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
    closedir(d);
    return empty;
}

/* True when p is root or lies under it (both resolved). */
static bool path_under(const char *p, const char *root) {
    size_t n = strlen(root);
    if (n == 1 && root[0] == '/') return true;
    return strncmp(p, root, n) == 0 && (p[n] == '\0' || p[n] == '/');
}

/* The bytes of the regular files under path (recursively). */
static uint64_t tree_bytes(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return 0;
    if (S_ISREG(st.st_mode)) return (uint64_t)st.st_size;
    if (!S_ISDIR(st.st_mode)) return 0;
    uint64_t sum = 0;
    DIR *d = opendir(path);
    if (d == NULL) return 0;
    struct dirent *e;
    char sub[4096];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
        sum += tree_bytes(sub);
    }
    closedir(d);
    return sum;
}

/* Copies the tree from (directories and regular files) to `to`, which must not exist. */
static int copy_tree(const char *from, const char *to, uint64_t *bytes, char *err,
                     size_t errlen) {
    if (mkdir(to, 0755) != 0)
        return hdb_errf(err, errlen, HDB_EIO, "cannot create %s: %s", to, strerror(errno));
    DIR *d = opendir(from);
    if (d == NULL) return hdb_errf(err, errlen, HDB_EIO, "cannot read %s: %s", from, strerror(errno));
    int rc = HDB_OK;
    struct dirent *e;
    char a[4096], b[4096];
    while (rc == HDB_OK && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(a, sizeof a, "%s/%s", from, e->d_name);
        snprintf(b, sizeof b, "%s/%s", to, e->d_name);
        struct stat st;
        if (lstat(a, &st) != 0)
            rc = hdb_errf(err, errlen, HDB_EIO, "cannot stat %s: %s", a, strerror(errno));
        else if (S_ISDIR(st.st_mode))
            rc = copy_tree(a, b, bytes, err, errlen);
        else if (S_ISREG(st.st_mode))
            rc = hdb_file_copy(a, b, bytes, err, errlen);
    }
    closedir(d);
    if (rc == HDB_OK) rc = hdb_file_fsync(to, err, errlen);
    return rc;
}

/* Removes what a failed backup or restore made of dir: all of it, or only its contents when it
 * existed before (empty). */
static void undo_dir(const char *dir, bool existed) {
    char err[256];
    if (hdb_rmtree(dir, err, sizeof err) != HDB_OK)
        HDB_WARN("backup", "cannot remove %s: %s", dir, err);
    if (existed) mkdir(dir, 0755);
}

/* Checks and resolves a backup path (see hdb_backup_create). */
static int check_path(const hdb_config *cfg, const char *path, char *out, size_t cap,
                      bool *existed, char *err, size_t errlen) {
    if (path == NULL || path[0] == '\0')
        return hdb_errf(err, errlen, HDB_EINVAL,
                        "path: required (a directory on the server's machine)");
    if (path[0] != '/')
        return hdb_errf(err, errlen, HDB_EINVAL, "path: must be an absolute path (got \"%.200s\")",
                        path);
    size_t n = strlen(path);
    if (n >= 2048) return hdb_errf(err, errlen, HDB_EINVAL, "path: longer than 2047 bytes");
    char parent[2048], real[PATH_MAX], root[PATH_MAX];
    memcpy(parent, path, n + 1);
    while (n > 1 && parent[n - 1] == '/') parent[--n] = '\0';
    char *slash = strrchr(parent, '/');
    const char *base = slash + 1;
    if (*base == '\0' || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
        return hdb_errf(err, errlen, HDB_EINVAL, "path: must name a new or empty directory (got \"%.200s\")",
                        path);
    char name[256];
    snprintf(name, sizeof name, "%s", base);
    if (slash == parent) parent[1] = '\0';
    else *slash = '\0';
    if (realpath(parent, real) == NULL)
        return hdb_errf(err, errlen, HDB_EINVAL, "path: the parent directory %.200s: %s", parent,
                        strerror(errno));
    size_t rl = strlen(real), nl = strlen(name);
    if (rl + nl + 2 > cap) return hdb_errf(err, errlen, HDB_EINVAL, "path: too long");
    memcpy(out, real, rl);
    if (rl > 1) out[rl++] = '/';
    memcpy(out + rl, name, nl + 1);
    if (cfg->backup_dir != NULL && cfg->backup_dir[0] != '\0') {
        if (realpath(cfg->backup_dir, root) == NULL)
            return hdb_errf(err, errlen, HDB_EPRECOND, "storage.backup_dir: %.200s: %s",
                            cfg->backup_dir, strerror(errno));
        if (!path_under(out, root) || strcmp(out, root) == 0)
            return hdb_errf(err, errlen, HDB_EPERM,
                            "path: %.200s is outside storage.backup_dir (%.200s)", out, root);
    }
    if (realpath(cfg->data_dir, root) != NULL && path_under(out, root))
        return hdb_errf(err, errlen, HDB_EINVAL, "path: %.200s is inside storage.data_dir (%.200s)",
                        out, root);
    struct stat st;
    *existed = lstat(out, &st) == 0;
    if (*existed && !S_ISDIR(st.st_mode))
        return hdb_errf(err, errlen, HDB_EEXIST, "path: %.200s exists and is not a directory", out);
    if (*existed && !dir_empty(out))
        return hdb_errf(err, errlen, HDB_EEXIST,
                        "path: %.200s exists and is not empty (a backup needs a new or empty "
                        "directory)",
                        out);
    return HDB_OK;
}

/* ---------------------------------------------------------------- backup */

static int write_manifest(const char *dir, const hdb_backup_result *r, hdb_ixent **ixs,
                          const uint64_t *snap_seqs, size_t nix, char *err, size_t errlen) {
    char tmp[4200], path[4200], line[1024];
    snprintf(tmp, sizeof tmp, "%s/%s.tmp", dir, MANIFEST);
    snprintf(path, sizeof path, "%s/%s", dir, MANIFEST);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    hdb_fwriter w;
    int rc = hdb_fwriter_open(&w, tmp, err, errlen);
    if (rc != HDB_OK) return rc;
    int m = snprintf(line, sizeof line, "%s %d\nversion %s\ntime_us %" PRId64 "\nsources %zu\n",
                     MAGIC, FORMAT, hdb_version_string(),
                     (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000, r->nsources);
    hdb_fwriter_put(&w, line, (size_t)m);
    for (size_t i = 0; i < r->nsources; i++) {
        m = snprintf(line, sizeof line, "source %" PRIu64 " %s\n", r->source_seqs[i],
                     r->source_labels[i]);
        hdb_fwriter_put(&w, line, (size_t)m);
    }
    m = snprintf(line, sizeof line, "indices %" PRIu32 "\n", r->indices);
    hdb_fwriter_put(&w, line, (size_t)m);
    for (size_t i = 0; i < nix; i++) {
        if (snap_seqs[i] == 0) continue;
        m = snprintf(line, sizeof line, "index %" PRIu64 " %" PRIu64 " %s\n", ixs[i]->id,
                     snap_seqs[i], ixs[i]->label);
        hdb_fwriter_put(&w, line, (size_t)m);
    }
    rc = hdb_fwriter_close(&w, err, errlen);
    if (rc == HDB_OK) rc = hdb_file_rename(tmp, path, err, errlen);
    return rc;
}

int hdb_backup_create(hdb_catalog *cat, const char *path, hdb_arena *arena,
                      hdb_backup_result *out, char *err, size_t errlen) {
    char dir[4096], sub[4200], msg[768];
    bool existed = false, made = false;
    hdb_source **srcs = NULL;
    hdb_ixent **ixs = NULL;
    size_t nsrc = 0, nix = 0, npinned = 0;
    uint64_t *snap_seqs = NULL, bytes = 0;
    int64_t t0 = hdb_mono_ns();
    memset(out, 0, sizeof *out);

    /* DDL stays out for the whole backup: the set of sources and indices is the one copied. */
    pthread_mutex_lock(&cat->ddl);
    int rc = check_path(cat->cfg, path, dir, sizeof dir, &existed, err, errlen);
    if (rc != HDB_OK) goto done;
    if (!existed && mkdir(dir, 0755) != 0) {
        rc = hdb_errf(err, errlen, HDB_EIO, "path: cannot create %s: %s", dir, strerror(errno));
        goto done;
    }
    made = true;
    /* The checkpoint flushes memtables, and copies what it cannot link: not on a full disk. */
    if ((rc = hdb_store_space_check(cat->store, 0, false, err, errlen)) != HDB_OK) goto done;
    nsrc = hdb_catalog_list_sources(cat, arena, &srcs);
    for (; npinned < nsrc; npinned++) hdb_table_trim_pin(srcs[npinned]->table);

    /* 1. The index snapshots, each as it is now. */
    nix = hdb_catalog_list_indices(cat, arena, &ixs);
    snap_seqs = hdb_arena_alloc(arena, (nix ? nix : 1) * sizeof *snap_seqs);
    snprintf(sub, sizeof sub, "%s/indices", dir);
    if (mkdir(sub, 0755) != 0) {
        rc = hdb_errf(err, errlen, HDB_EIO, "cannot create %s: %s", sub, strerror(errno));
        goto done;
    }
    for (size_t i = 0; i < nix; i++) {
        snprintf(sub, sizeof sub, "%s/indices/%" PRIu64, dir, ixs[i]->id);
        snap_seqs[i] = 0;
        if (mkdir(sub, 0755) != 0) {
            rc = hdb_errf(err, errlen, HDB_EIO, "cannot create %s: %s", sub, strerror(errno));
            goto done;
        }
        rc = hdb_index_snapshot_copy(ixs[i]->dir, sub, &snap_seqs[i], &bytes, msg, sizeof msg);
        if (rc == HDB_ENOTFOUND) {
            HDB_INFO("backup", "%s: no snapshot yet; a restore rebuilds it", ixs[i]->label);
            rmdir(sub);
            rc = HDB_OK;
            continue;
        }
        if (rc == HDB_OK) rc = hdb_file_fsync(sub, msg, sizeof msg);
        if (rc != HDB_OK) {
            rc = hdb_errf(err, errlen, rc, "index %s: %s", ixs[i]->label, msg);
            goto done;
        }
        out->indices++;
    }
    snprintf(sub, sizeof sub, "%s/indices", dir);
    if ((rc = hdb_file_fsync(sub, err, errlen)) != HDB_OK) goto done;

    /* 2. The database, later than every snapshot; its timelines still reach back to them. */
    out->nsources = nsrc;
    out->source_labels = hdb_arena_alloc(arena, (nsrc ? nsrc : 1) * sizeof *out->source_labels);
    out->source_seqs = hdb_arena_alloc(arena, (nsrc ? nsrc : 1) * sizeof *out->source_seqs);
    for (size_t i = 0; i < nsrc; i++) {
        out->source_labels[i] = srcs[i]->label;
        out->source_seqs[i] = hdb_table_last_seq(srcs[i]->table);
    }
    snprintf(sub, sizeof sub, "%s/db", dir);
    if ((rc = hdb_store_checkpoint(cat->store, sub, err, errlen)) != HDB_OK) goto done;
    for (; npinned > 0; npinned--) hdb_table_trim_unpin(srcs[npinned - 1]->table);

    /* 3. The manifest last: a directory without one is not a backup. */
    if ((rc = write_manifest(dir, out, ixs, snap_seqs, nix, err, errlen)) != HDB_OK) goto done;
    if ((rc = hdb_file_fsync(dir, err, errlen)) != HDB_OK) goto done;
    bytes += tree_bytes(sub); /* the checkpoint */
    snprintf(sub, sizeof sub, "%s/%s", dir, MANIFEST);
    bytes += tree_bytes(sub);
    out->bytes = bytes;
    out->path = hdb_arena_strndup(arena, dir, strlen(dir));
    HDB_INFO("backup", "backup in %s: %zu sources, %" PRIu32 " index snapshots, %" PRIu64
             " bytes, in %.1f ms", dir, nsrc, out->indices, bytes, (hdb_mono_ns() - t0) / 1e6);

done:
    for (; npinned > 0; npinned--) hdb_table_trim_unpin(srcs[npinned - 1]->table);
    if (rc != HDB_OK && made) undo_dir(dir, existed);
    pthread_mutex_unlock(&cat->ddl);
    for (size_t i = 0; i < nsrc; i++) hdb_source_unref(srcs[i]);
    for (size_t i = 0; i < nix; i++) hdb_ixent_unref(ixs[i]);
    if (rc != HDB_OK) memset(out, 0, sizeof *out);
    return rc;
}

/* ---------------------------------------------------------------- restore */

int hdb_backup_restore(const char *backup_dir, const char *data_dir, FILE *out, char *err,
                       size_t errlen) {
    char path[4200], to[4200];
    unsigned char *data = NULL;
    size_t len;
    bool existed = false, made = false;
    uint64_t bytes = 0;

    snprintf(path, sizeof path, "%s/%s", backup_dir, MANIFEST);
    int rc = hdb_file_read_checked(path, &data, &len, err, errlen);
    if (rc != HDB_OK) {
        struct stat st;
        bool none = stat(path, &st) != 0;
        char why[600];
        snprintf(why, sizeof why, "%s", err);
        rc = hdb_errf(err, errlen, HDB_EINVAL, "%s is not a hilbertd backup (%s)", backup_dir,
                      none ? "it has no BACKUP manifest" : why);
        goto done;
    }
    /* The payload is text; make it a string. */
    char *text = hdb_malloc(len + 1);
    memcpy(text, data, len);
    text[len] = '\0';
    hdb_free(data);
    data = (unsigned char *)text;
    int format = 0;
    char version[128] = "?";
    int64_t time_us = 0;
    size_t nsources = 0;
    uint32_t nindices = 0;
    if (sscanf(text, MAGIC " %d\nversion %127[^\n]\ntime_us %" SCNd64 "\nsources %zu", &format,
               version, &time_us, &nsources) != 4) {
        rc = hdb_errf(err, errlen, HDB_EINVAL, "%s is not a hilbertd backup (malformed %s)",
                      backup_dir, MANIFEST);
        goto done;
    }
    if (format != FORMAT) {
        rc = hdb_errf(err, errlen, HDB_EINVAL,
                      "%s: backup format %d, this hilbertd reads format %d", backup_dir, format,
                      FORMAT);
        goto done;
    }
    char *ix = strstr(text, "\nindices ");
    if (ix != NULL) sscanf(ix, "\nindices %" SCNu32, &nindices);
    snprintf(path, sizeof path, "%s/db/CURRENT", backup_dir);
    if (access(path, R_OK) != 0) {
        rc = hdb_errf(err, errlen, HDB_EINVAL, "%s is not a complete backup (no db/CURRENT)",
                      backup_dir);
        goto done;
    }

    struct stat st;
    existed = lstat(data_dir, &st) == 0;
    if (existed && (!S_ISDIR(st.st_mode) || !dir_empty(data_dir))) {
        rc = hdb_errf(err, errlen, HDB_EEXIST,
                      "%s is not empty: a restore needs a new or empty data dir", data_dir);
        goto done;
    }
    if ((rc = hdb_mkdir_p(data_dir, err, errlen)) != HDB_OK) goto done;
    made = true;
    snprintf(path, sizeof path, "%s/db", backup_dir);
    snprintf(to, sizeof to, "%s/db", data_dir);
    if ((rc = copy_tree(path, to, &bytes, err, errlen)) != HDB_OK) goto done;
    snprintf(path, sizeof path, "%s/indices", backup_dir);
    snprintf(to, sizeof to, "%s/indices", data_dir);
    if (access(path, F_OK) == 0 && (rc = copy_tree(path, to, &bytes, err, errlen)) != HDB_OK)
        goto done;
    if ((rc = hdb_file_fsync(data_dir, err, errlen)) != HDB_OK) goto done;

    if (out != NULL) {
        time_t secs = (time_t)(time_us / 1000000);
        struct tm tm;
        char when[64];
        gmtime_r(&secs, &tm);
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        fprintf(out,
                "restored %s into %s: %zu data sources, %" PRIu32
                " index snapshots, %" PRIu64 " bytes (backup written %s by %s)\n",
                backup_dir, data_dir, nsources, nindices, bytes, when, version);
        for (char *line = strstr(text, "\nsource "); line != NULL;
             line = strstr(line + 1, "\nsource ")) {
            uint64_t seq;
            char label[600];
            if (sscanf(line, "\nsource %" SCNu64 " %599[^\n]", &seq, label) == 2)
                fprintf(out, "  data source %s: seq %" PRIu64 "\n", label, seq);
        }
        for (char *line = strstr(text, "\nindex "); line != NULL;
             line = strstr(line + 1, "\nindex ")) {
            uint64_t id, seq;
            char label[600];
            if (sscanf(line, "\nindex %" SCNu64 " %" SCNu64 " %599[^\n]", &id, &seq, label) == 3)
                fprintf(out, "  index %s: snapshot at seq %" PRIu64 "\n", label, seq);
        }
        fflush(out);
    }

done:
    if (rc != HDB_OK && made) undo_dir(data_dir, existed);
    hdb_free(data);
    return rc;
}
