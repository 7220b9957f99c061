/*
 * hdb_file.h - durable file helpers for snapshots: a writer that appends a CRC-32C trailer, a
 * reader that verifies it, atomic replace (temp file, fsync, rename, fsync of the directory),
 * and directory creation and removal.
 *
 * Thread-safety: any thread; one hdb_fwriter belongs to one thread at a time.
 */
#ifndef HDB_FILE_H
#define HDB_FILE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Streams bytes to a file and keeps their CRC-32C. */
typedef struct {
    FILE *f;
    uint32_t crc;
    int failed; /* set once a write fails; checked at close */
    char path[4096];
} hdb_fwriter;

/* Creates (truncates) path for writing. */
int hdb_fwriter_open(hdb_fwriter *w, const char *path, char *err, size_t errlen);

/* Appends n bytes (no-op once a write has failed). */
void hdb_fwriter_put(hdb_fwriter *w, const void *p, size_t n);

/* Appends the 4-byte CRC-32C of everything written, flushes, fsyncs and closes. Returns HDB_OK or
 * HDB_EIO (the file is then removed). */
int hdb_fwriter_close(hdb_fwriter *w, char *err, size_t errlen);

/* Closes and removes a file being written (after an error elsewhere). */
void hdb_fwriter_abort(hdb_fwriter *w);

/* Reads a whole file written by hdb_fwriter and checks its CRC-32C trailer. On success *data
 * (hdb_malloc'ed, caller frees with hdb_free) holds the payload without the trailer, and *len
 * its length. HDB_EIO when the file cannot be read, HDB_ECORRUPT when the trailer is missing or
 * does not match. */
int hdb_file_read_checked(const char *path, unsigned char **data, size_t *len, char *err,
                          size_t errlen);

/* Reads a whole file into hdb_malloc'ed memory (plus a NUL after the end). */
int hdb_file_read_all(const char *path, unsigned char **data, size_t *len, char *err,
                      size_t errlen);

/* fsyncs a file or directory by path. */
int hdb_file_fsync(const char *path, char *err, size_t errlen);

/* Renames from -> to and fsyncs the directory of `to`, so the rename survives a crash. */
int hdb_file_rename(const char *from, const char *to, char *err, size_t errlen);

/* Creates a directory and its parents (mode 0755); existing ones are fine. */
int hdb_mkdir_p(const char *path, char *err, size_t errlen);

/* Removes a directory tree (or a file). A missing path is fine. */
int hdb_rmtree(const char *path, char *err, size_t errlen);

/* Copies the regular file from to `to` (created, mode 0644, fsynced; it must not exist) and
 * adds its size to *bytes when bytes is not NULL. HDB_ENOTFOUND when from does not exist,
 * HDB_EIO otherwise. */
int hdb_file_copy(const char *from, const char *to, uint64_t *bytes, char *err, size_t errlen);

/* As hdb_file_copy, but hard-links when both are on one file system (and the file system
 * allows it), which costs no space: for files that are never changed in place. */
int hdb_file_link_or_copy(const char *from, const char *to, uint64_t *bytes, char *err,
                          size_t errlen);

#ifdef __cplusplus
}
#endif

#endif /* HDB_FILE_H */
