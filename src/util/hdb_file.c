/*
 * hdb_file.c - CRC-trailed files, durable renames, directory helpers.
 */
#include "hdb_file.h"

#include "hdb_crc.h"
#include "hdb_err.h"
#include "hdb_mem.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int hdb_fwriter_open(hdb_fwriter *w, const char *path, char *err, size_t errlen) {
    memset(w, 0, sizeof *w);
    snprintf(w->path, sizeof w->path, "%s", path);
    w->f = fopen(path, "wb");
    if (w->f == NULL)
        return hdb_errf(err, errlen, HDB_EIO, "cannot create %s: %s", path, strerror(errno));
    return HDB_OK;
}

void hdb_fwriter_put(hdb_fwriter *w, const void *p, size_t n) {
    if (w->failed || n == 0) return;
    if (fwrite(p, 1, n, w->f) != n) {
        w->failed = errno ? errno : EIO;
        return;
    }
    w->crc = hdb_crc32c(w->crc, p, n);
}

int hdb_fwriter_close(hdb_fwriter *w, char *err, size_t errlen) {
    unsigned char t[4];
    for (int i = 0; i < 4; i++) t[i] = (unsigned char)(w->crc >> (8 * i));
    if (!w->failed && fwrite(t, 1, 4, w->f) != 4) w->failed = errno ? errno : EIO;
    if (!w->failed && fflush(w->f) != 0) w->failed = errno ? errno : EIO;
    if (!w->failed && fsync(fileno(w->f)) != 0) w->failed = errno ? errno : EIO;
    if (fclose(w->f) != 0 && !w->failed) w->failed = errno ? errno : EIO;
    w->f = NULL;
    if (w->failed) {
        unlink(w->path);
        return hdb_errf(err, errlen, HDB_EIO, "cannot write %s: %s", w->path,
                        strerror(w->failed));
    }
    return HDB_OK;
}

void hdb_fwriter_abort(hdb_fwriter *w) {
    if (w->f) fclose(w->f);
    w->f = NULL;
    unlink(w->path);
}

int hdb_file_read_all(const char *path, unsigned char **data, size_t *len, char *err,
                      size_t errlen) {
    int rc = HDB_OK;
    unsigned char *buf = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return hdb_errf(err, errlen, HDB_EIO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = hdb_errf(err, errlen, HDB_EIO, "%s: not a regular file", path);
        goto out;
    }
    size_t n = (size_t)st.st_size, got = 0;
    buf = hdb_malloc(n + 1);
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            rc = hdb_errf(err, errlen, HDB_EIO, "cannot read %s: %s", path,
                          r < 0 ? strerror(errno) : "file shrank");
            goto out;
        }
        got += (size_t)r;
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    buf = NULL;
out:
    hdb_free(buf);
    close(fd);
    return rc;
}

int hdb_file_read_checked(const char *path, unsigned char **data, size_t *len, char *err,
                          size_t errlen) {
    unsigned char *buf;
    size_t n;
    int rc = hdb_file_read_all(path, &buf, &n, err, errlen);
    if (rc != HDB_OK) return rc;
    if (n < 4) {
        hdb_free(buf);
        return hdb_errf(err, errlen, HDB_ECORRUPT, "%s: too short (%zu bytes)", path, n);
    }
    uint32_t want = (uint32_t)buf[n - 4] | (uint32_t)buf[n - 3] << 8 | (uint32_t)buf[n - 2] << 16 |
                    (uint32_t)buf[n - 1] << 24;
    if (hdb_crc32c(0, buf, n - 4) != want) {
        hdb_free(buf);
        return hdb_errf(err, errlen, HDB_ECORRUPT, "%s: checksum mismatch", path);
    }
    *data = buf;
    *len = n - 4;
    return HDB_OK;
}

int hdb_file_fsync(const char *path, char *err, size_t errlen) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return hdb_errf(err, errlen, HDB_EIO, "cannot open %s: %s", path, strerror(errno));
    int rc = HDB_OK;
    if (fsync(fd) != 0)
        rc = hdb_errf(err, errlen, HDB_EIO, "cannot fsync %s: %s", path, strerror(errno));
    close(fd);
    return rc;
}

int hdb_file_rename(const char *from, const char *to, char *err, size_t errlen) {
    if (rename(from, to) != 0)
        return hdb_errf(err, errlen, HDB_EIO, "cannot rename %s to %s: %s", from, to,
                        strerror(errno));
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", to);
    char *slash = strrchr(dir, '/');
    if (slash == NULL) snprintf(dir, sizeof dir, ".");
    else if (slash == dir) dir[1] = '\0';
    else *slash = '\0';
    return hdb_file_fsync(dir, err, errlen);
}

int hdb_mkdir_p(const char *path, char *err, size_t errlen) {
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf)
        return hdb_errf(err, errlen, HDB_EINVAL, "invalid directory path length");
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char c = buf[i];
            buf[i] = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return hdb_errf(err, errlen, HDB_EIO, "cannot create directory %s: %s", buf,
                                strerror(errno));
            buf[i] = c;
        }
    }
    return HDB_OK;
}

int hdb_rmtree(const char *path, char *err, size_t errlen) {
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT) return HDB_OK;
        return hdb_errf(err, errlen, HDB_EIO, "cannot stat %s: %s", path, strerror(errno));
    }
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (d == NULL)
            return hdb_errf(err, errlen, HDB_EIO, "cannot open %s: %s", path, strerror(errno));
        struct dirent *e;
        int rc = HDB_OK;
        while (rc == HDB_OK && (e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
            char child[4096];
            snprintf(child, sizeof child, "%s/%s", path, e->d_name);
            rc = hdb_rmtree(child, err, errlen);
        }
        closedir(d);
        if (rc != HDB_OK) return rc;
        if (rmdir(path) != 0)
            return hdb_errf(err, errlen, HDB_EIO, "cannot remove %s: %s", path, strerror(errno));
        return HDB_OK;
    }
    if (unlink(path) != 0)
        return hdb_errf(err, errlen, HDB_EIO, "cannot remove %s: %s", path, strerror(errno));
    return HDB_OK;
}

int hdb_file_copy(const char *from, const char *to, uint64_t *bytes, char *err, size_t errlen) {
    int in = open(from, O_RDONLY | O_CLOEXEC), out = -1, rc = HDB_OK;
    if (in < 0)
        return hdb_errf(err, errlen, errno == ENOENT ? HDB_ENOTFOUND : HDB_EIO,
                        "cannot open %s: %s", from, strerror(errno));
    out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (out < 0) {
        rc = hdb_errf(err, errlen, HDB_EIO, "cannot create %s: %s", to, strerror(errno));
        goto done;
    }
    char buf[1 << 16];
    uint64_t total = 0;
    for (;;) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            rc = hdb_errf(err, errlen, HDB_EIO, "cannot read %s: %s", from, strerror(errno));
            goto done;
        }
        if (n == 0) break;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) {
                rc = hdb_errf(err, errlen, HDB_EIO, "cannot write %s: %s", to, strerror(errno));
                goto done;
            }
            off += w;
        }
        total += (uint64_t)n;
    }
    if (fsync(out) != 0)
        rc = hdb_errf(err, errlen, HDB_EIO, "cannot fsync %s: %s", to, strerror(errno));
    if (rc == HDB_OK && bytes != NULL) *bytes += total;
done:
    close(in);
    if (out >= 0) {
        close(out);
        if (rc != HDB_OK) unlink(to);
    }
    return rc;
}

int hdb_file_link_or_copy(const char *from, const char *to, uint64_t *bytes, char *err,
                          size_t errlen) {
    if (link(from, to) == 0) {
        struct stat st;
        if (bytes != NULL && stat(to, &st) == 0) *bytes += (uint64_t)st.st_size;
        return HDB_OK;
    }
    if (errno == ENOENT)
        return hdb_errf(err, errlen, HDB_ENOTFOUND, "cannot link %s: %s", from, strerror(errno));
    if (errno != EXDEV && errno != EPERM && errno != EMLINK && errno != ENOTSUP)
        return hdb_errf(err, errlen, HDB_EIO, "cannot link %s to %s: %s", from, to,
                        strerror(errno));
    return hdb_file_copy(from, to, bytes, err, errlen);
}
