/*
 * hdb_rpc_admin.c - hilbert.v1.Admin/Backup: validates nothing itself (hdb_backup_create names
 * the path field in its errors) and turns the backup's result into the response.
 */
#include "hdb_rpc_admin.h"

#include "hdb_arena.h"
#include "hdb_backup.h"
#include "hdb_err.h"
#include "hilbert/v1/admin.pb-c.h"

#include <string.h>

static int backup(hdb_rpc *rpc, const ProtobufCMessage *m, ProtobufCMessage **resp, char *err,
                  size_t errlen) {
    const Hilbert__V1__BackupRequest *req = (const void *)m;
    hdb_backup_result br;
    int rc = hdb_backup_create(rpc->catalog, req->path, rpc->arena, &br, err, errlen);
    if (rc != HDB_OK) return rc;
    Hilbert__V1__BackupResponse *r = hdb_arena_alloc(rpc->arena, sizeof *r);
    hilbert__v1__backup_response__init(r);
    r->path = (char *)br.path;
    r->bytes = br.bytes;
    r->indices = br.indices;
    r->n_source_seqs = br.nsources;
    r->source_seqs =
        hdb_arena_alloc(rpc->arena, (br.nsources ? br.nsources : 1) * sizeof *r->source_seqs);
    for (size_t i = 0; i < br.nsources; i++) {
        Hilbert__V1__BackupResponse__SourceSeqsEntry *e = hdb_arena_alloc(rpc->arena, sizeof *e);
        hilbert__v1__backup_response__source_seqs_entry__init(e);
        e->key = (char *)br.source_labels[i];
        e->value = br.source_seqs[i];
        r->source_seqs[i] = e;
    }
    *resp = &r->base;
    return HDB_OK;
}

static const hdb_rpc_method methods[] = {
    /* The write pool: a backup flushes and links files for a while, and must not hold up the
     * cheap calls. */
    {"hilbert.v1.Admin", "Backup", &hilbert__v1__backup_request__descriptor, backup,
     HDB_ROLE_ADMIN, HDB_LANE_WRITE},
};

const hdb_rpc_method *hdb_rpc_admin_methods(size_t *n) {
    *n = sizeof methods / sizeof methods[0];
    return methods;
}
