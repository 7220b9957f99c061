/*
 * hdb_rpc_health.c - grpc.health.v1.Health/Check. The server as a whole ("") and each of its
 * services report SERVING until shutdown begins, then NOT_SERVING; other names are NOT_FOUND,
 * as the health checking protocol prescribes. One more name, "hilbert.v1.Writes", tells whether
 * writes are accepted: NOT_SERVING also while the disk is full (reads and searches go on, so
 * the other names stay SERVING). Watch is not registered, so it gets UNIMPLEMENTED.
 */
#include "hdb_rpc_health.h"

#include "hdb_arena.h"
#include "hdb_catalog.h"
#include "hdb_err.h"
#include "grpc/health/v1/health.pb-c.h"

#include <string.h>

#define WRITES "hilbert.v1.Writes"

static const char *const services[] = {"",
                                       "hilbert.v1.Catalog",
                                       "hilbert.v1.Points",
                                       "hilbert.v1.Search",
                                       "hilbert.v1.ModelSpaces",
                                       "hilbert.v1.Admin",
                                       "euclidesproto.Similar",
                                       "grpc.health.v1.Health",
                                       WRITES};

static int check(hdb_rpc *rpc, const ProtobufCMessage *m, ProtobufCMessage **resp, char *err,
                 size_t errlen) {
    const Grpc__Health__V1__HealthCheckRequest *req = (const void *)m;
    const char *name = req->service ? req->service : "";
    bool known = false;
    for (size_t i = 0; i < sizeof services / sizeof services[0]; i++)
        known |= strcmp(services[i], name) == 0;
    if (!known) return hdb_errf(err, errlen, HDB_ENOTFOUND, "service: unknown service \"%s\"", name);
    Grpc__Health__V1__HealthCheckResponse *r = hdb_arena_alloc(rpc->arena, sizeof *r);
    grpc__health__v1__health_check_response__init(r);
    bool serving = hdb_server_serving(rpc->server);
    if (serving && strcmp(name, WRITES) == 0) serving = hdb_catalog_writable(rpc->catalog);
    r->status = serving ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
                        : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
    *resp = &r->base;
    return HDB_OK;
}

static const hdb_rpc_method methods[] = {
    /* Open: balancers and orchestrators probe it without a key. */
    {"grpc.health.v1.Health", "Check", &grpc__health__v1__health_check_request__descriptor, check,
     HDB_ROLE_OPEN},
};

const hdb_rpc_method *hdb_rpc_health_methods(size_t *n) {
    *n = sizeof methods / sizeof methods[0];
    return methods;
}
