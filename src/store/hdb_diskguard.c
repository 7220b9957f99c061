/*
 * hdb_diskguard.c - free-space checks, the ballast file and their monitor thread (see
 * hdb_diskguard.h).
 */
#include "hdb_diskguard.h"

#include "hdb_clock.h"
#include "hdb_err.h"
#include "hdb_log.h"
#include "hdb_mem.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

enum { STATE_UNKNOWN = 0, STATE_WRITABLE = 1, STATE_FULL = 2 };

struct hdb_diskguard {
    char *path;
    char *ballast;          /* NULL: none */
    uint64_t ballast_bytes;
    uint64_t min_free;
    int interval_ms;
    _Atomic int state;      /* for logging transitions only */
    pthread_mutex_t mu;     /* guards stop and ballast changes */
    pthread_cond_t cv;
    bool stop;
    bool started;
    pthread_t thread;
};

static double mib(uint64_t b) {
    return (double)b / (1024.0 * 1024.0);
}

/* Free and total bytes of the file system holding path. */
static int fs_space(const char *path, uint64_t *free_b, uint64_t *total_b) {
    struct statvfs v;
    if (statvfs(path, &v) != 0) return -1;
    *free_b = (uint64_t)v.f_bavail * (uint64_t)v.f_frsize;
    *total_b = (uint64_t)v.f_blocks * (uint64_t)v.f_frsize;
    return 0;
}

static bool ballast_present(const hdb_diskguard *g) {
    struct stat st;
    return g->ballast != NULL && stat(g->ballast, &st) == 0;
}

/* Removes the ballast; caller holds mu. */
static void ballast_release(hdb_diskguard *g, uint64_t free_b, const char *why) {
    if (!ballast_present(g)) return;
    if (unlink(g->ballast) != 0) {
        HDB_ERROR("disk", "cannot remove the ballast %s: %s", g->ballast, strerror(errno));
        return;
    }
    HDB_WARN("disk", "released the %.1f MiB ballast %s (%s: %.1f MiB free of the %.1f MiB "
                     "that storage.min_free_bytes keeps)",
             mib(g->ballast_bytes), g->ballast, why, mib(free_b), mib(g->min_free));
}

/* Writes the ballast file under a temporary name, then renames it; caller holds mu. */
static void ballast_create(hdb_diskguard *g) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", g->ballast);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        HDB_WARN("disk", "cannot create the ballast %s: %s", tmp, strerror(errno));
        return;
    }
    int e = posix_fallocate(fd, 0, (off_t)g->ballast_bytes);
    if (e == EOPNOTSUPP || e == EINVAL) {
        /* A file system without fallocate: write the bytes out. */
        static const char zeros[1 << 16];
        e = 0;
        for (uint64_t done = 0; done < g->ballast_bytes && e == 0;) {
            size_t n = g->ballast_bytes - done < sizeof zeros ? (size_t)(g->ballast_bytes - done)
                                                              : sizeof zeros;
            ssize_t w = write(fd, zeros, n);
            if (w < 0) e = errno;
            else done += (uint64_t)w;
        }
    }
    if (e == 0 && fsync(fd) != 0) e = errno;
    close(fd);
    if (e == 0 && rename(tmp, g->ballast) != 0) e = errno;
    if (e != 0) {
        unlink(tmp);
        HDB_WARN("disk", "cannot create the %.1f MiB ballast %s: %s", mib(g->ballast_bytes),
                 g->ballast, strerror(e));
        return;
    }
    HDB_INFO("disk", "keeping a %.1f MiB ballast at %s", mib(g->ballast_bytes), g->ballast);
}

/* One look at the disk: release or recreate the ballast as needed. */
static void tend(hdb_diskguard *g) {
    uint64_t free_b, total_b;
    if (fs_space(g->path, &free_b, &total_b) != 0) return;
    pthread_mutex_lock(&g->mu);
    bool have = ballast_present(g);
    if (have && free_b < g->min_free / 2)
        ballast_release(g, free_b, "the disk is nearly full");
    else if (!have && g->ballast && free_b >= g->min_free + g->ballast_bytes + (1u << 20))
        ballast_create(g);
    pthread_mutex_unlock(&g->mu);
}

static void *monitor(void *arg) {
    hdb_diskguard *g = arg;
    pthread_mutex_lock(&g->mu);
    while (!g->stop) {
        pthread_mutex_unlock(&g->mu);
        tend(g);
        pthread_mutex_lock(&g->mu);
        if (g->stop) break;
        struct timespec ts = hdb_mono_timespec(hdb_mono_ns() + (int64_t)g->interval_ms * 1000000);
        pthread_cond_timedwait(&g->cv, &g->mu, &ts);
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

int hdb_diskguard_open(hdb_diskguard **out, const hdb_diskguard_options *o, char *err,
                       size_t errlen) {
    uint64_t free_b, total_b;
    if (fs_space(o->path, &free_b, &total_b) != 0)
        return hdb_errf(err, errlen, HDB_EIO, "storage: cannot read the free space of %s: %s",
                        o->path, strerror(errno));
    hdb_diskguard *g = hdb_calloc(1, sizeof *g);
    g->path = hdb_strdup(o->path);
    if (o->ballast_path && o->ballast_bytes > 0) {
        g->ballast = hdb_strdup(o->ballast_path);
        g->ballast_bytes = o->ballast_bytes;
    }
    g->min_free = o->min_free_bytes;
    /* On a small disk the configured reserve would take most of it, or all: keep a quarter of
     * the disk free instead (and a ballast of a thirty-second), and say so. */
    if (g->min_free > total_b / 2) {
        HDB_WARN("disk", "the disk holding %s has only %.1f MiB; keeping %.1f MiB free instead "
                         "of storage.min_free_bytes (%.1f MiB)",
                 g->path, mib(total_b), mib(total_b / 4), mib(g->min_free));
        g->min_free = total_b / 4;
    }
    if (g->ballast && g->ballast_bytes > total_b / 16) {
        HDB_WARN("disk", "the disk holding %s has only %.1f MiB; the ballast takes %.1f MiB "
                         "instead of storage.ballast_bytes (%.1f MiB)",
                 g->path, mib(total_b), mib(total_b / 32), mib(g->ballast_bytes));
        g->ballast_bytes = total_b / 32;
    }
    g->interval_ms = o->interval_ms > 0 ? o->interval_ms : 1000;
    pthread_mutex_init(&g->mu, NULL);
    hdb_mono_cond_init(&g->cv);
    if (free_b < g->min_free) {
        HDB_WARN("disk", "the disk holding %s has %.1f MiB free, less than the %.1f MiB that "
                         "storage.min_free_bytes keeps; writes are refused until space is freed",
                 g->path, mib(free_b), mib(g->min_free));
        pthread_mutex_lock(&g->mu);
        ballast_release(g, free_b, "so that the database has room to recover");
        pthread_mutex_unlock(&g->mu);
    }
    if (g->min_free > 0 || g->ballast) {
        int e = pthread_create(&g->thread, NULL, monitor, g);
        if (e != 0) {
            hdb_diskguard_close(g);
            return hdb_errf(err, errlen, HDB_EINTERNAL, "cannot start the disk monitor: %s",
                            strerror(e));
        }
        g->started = true;
    }
    *out = g;
    return HDB_OK;
}

void hdb_diskguard_close(hdb_diskguard *g) {
    if (g == NULL) return;
    if (g->started) {
        pthread_mutex_lock(&g->mu);
        g->stop = true;
        pthread_cond_broadcast(&g->cv);
        pthread_mutex_unlock(&g->mu);
        pthread_join(g->thread, NULL);
    }
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
    hdb_free(g->ballast);
    hdb_free(g->path);
    hdb_free(g);
}

int hdb_diskguard_check(hdb_diskguard *g, uint64_t bytes, hdb_write_kind kind, char *err,
                        size_t errlen) {
    if (g == NULL || g->min_free == 0) return HDB_OK;
    uint64_t free_b, total_b;
    if (fs_space(g->path, &free_b, &total_b) != 0) return HDB_OK; /* the write will tell */
    uint64_t keep = kind == HDB_WRITE_DATA   ? g->min_free
                    : kind == HDB_WRITE_META ? g->min_free / 2
                                             : (g->min_free < (1u << 20) ? g->min_free : 1u << 20);
    bool ok = free_b >= keep && free_b - keep >= bytes;
    /* Transitions are those of data writes: metadata may pass while data is refused. */
    int was = kind == HDB_WRITE_DATA ? atomic_exchange(&g->state, ok ? STATE_WRITABLE : STATE_FULL)
                                     : (ok ? STATE_WRITABLE : STATE_FULL);
    if (!ok && was != STATE_FULL)
        HDB_WARN("disk", "refusing writes: the disk holding %s has %.1f MiB free, "
                         "storage.min_free_bytes keeps %.1f MiB",
                 g->path, mib(free_b), mib(g->min_free));
    else if (ok && was == STATE_FULL)
        HDB_INFO("disk", "accepting writes again: %.1f MiB free on the disk holding %s",
                 mib(free_b), g->path);
    if (ok) return HDB_OK;
    return hdb_errf(err, errlen, HDB_EFULL,
                    "storage: the disk holding %s is full: %.1f MiB free, storage.min_free_bytes "
                    "keeps %.1f MiB for the database's flushes, compactions and recovery; writes "
                    "resume once space is freed there",
                    g->path, mib(free_b), mib(g->min_free));
}

void hdb_diskguard_state_get(hdb_diskguard *g, hdb_diskguard_state *st) {
    memset(st, 0, sizeof *st);
    st->min_free_bytes = g->min_free;
    st->writable = true;
    if (fs_space(g->path, &st->free_bytes, &st->total_bytes) != 0) return;
    st->writable = g->min_free == 0 || st->free_bytes >= g->min_free;
    st->ballast_present = ballast_present(g);
}

uint64_t hdb_diskguard_min_free(const hdb_diskguard *g) {
    return g->min_free;
}

const char *hdb_diskguard_path(const hdb_diskguard *g) {
    return g->path;
}
