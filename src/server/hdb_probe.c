/*
 * hdb_probe.c - `hilbertd --health-probe ADDR`: a single grpc.health.v1.Health/Check through
 * gRPC core's client API (one call, one completion queue, one batch of ops), answered by the
 * exit code. See hdb_probe.h.
 */
#include "hdb_probe.h"

#include "grpc/health/v1/health.pb-c.h"
#include "hdb_err.h"

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

#include <string.h>

/* The answer's status, or -1 when the message does not decode. */
static int decode_status(grpc_byte_buffer *bb) {
    grpc_byte_buffer_reader reader;
    if (bb == NULL || !grpc_byte_buffer_reader_init(&reader, bb)) return -1;
    grpc_slice sl = grpc_byte_buffer_reader_readall(&reader);
    grpc_byte_buffer_reader_destroy(&reader);
    Grpc__Health__V1__HealthCheckResponse *r = grpc__health__v1__health_check_response__unpack(
        NULL, GRPC_SLICE_LENGTH(sl), GRPC_SLICE_START_PTR(sl));
    grpc_slice_unref(sl);
    if (r == NULL) return -1;
    int status = (int)r->status;
    grpc__health__v1__health_check_response__free_unpacked(r, NULL);
    return status;
}

int hdb_probe_health(const char *addr, int timeout_ms, FILE *out) {
    grpc_init();
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    grpc_channel *channel = grpc_channel_create(addr, creds, NULL);
    grpc_channel_credentials_release(creds);
    grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
    gpr_timespec deadline =
        gpr_time_add(gpr_now(GPR_CLOCK_REALTIME), gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
    grpc_slice method = grpc_slice_from_static_string("/grpc.health.v1.Health/Check");
    grpc_call *call = grpc_channel_create_call(channel, NULL, GRPC_PROPAGATE_DEFAULTS, cq, method,
                                               NULL, deadline, NULL);

    /* HealthCheckRequest{service: ""} packs to zero bytes. */
    grpc_slice req_slice = grpc_empty_slice();
    grpc_byte_buffer *req = grpc_raw_byte_buffer_create(&req_slice, 1);
    grpc_byte_buffer *resp = NULL;
    grpc_metadata_array initial_md, trailing_md;
    grpc_metadata_array_init(&initial_md);
    grpc_metadata_array_init(&trailing_md);
    grpc_status_code status = GRPC_STATUS_UNKNOWN;
    grpc_slice details = grpc_empty_slice();
    grpc_op ops[6];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = req;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &initial_md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &resp;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &trailing_md;
    ops[5].data.recv_status_on_client.status = &status;
    ops[5].data.recv_status_on_client.status_details = &details;

    int serving = -1;
    grpc_call_error ce = grpc_call_start_batch(call, ops, 6, (void *)1, NULL);
    if (ce == GRPC_CALL_OK) {
        grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_OP_COMPLETE && status == GRPC_STATUS_OK) serving = decode_status(resp);
        if (status != GRPC_STATUS_OK) {
            fprintf(out, "%s: %.*s\n", hdb_status_name((int)status),
                    (int)GRPC_SLICE_LENGTH(details), (const char *)GRPC_SLICE_START_PTR(details));
        } else if (serving == GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING) {
            fprintf(out, "SERVING\n");
        } else if (serving < 0) {
            fprintf(out, "INTERNAL: the answer is not a HealthCheckResponse\n");
        } else {
            fprintf(out, "%s\n",
                    serving == GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING
                        ? "NOT_SERVING"
                        : "UNKNOWN");
        }
    } else {
        fprintf(out, "INTERNAL: the call could not start (grpc_call_error %d)\n", (int)ce);
    }

    grpc_slice_unref(details);
    grpc_metadata_array_destroy(&initial_md);
    grpc_metadata_array_destroy(&trailing_md);
    grpc_byte_buffer_destroy(req);
    if (resp != NULL) grpc_byte_buffer_destroy(resp);
    grpc_call_unref(call);
    grpc_channel_destroy(channel);
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(cq);
    grpc_shutdown();
    return serving == GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING ? 0 : 1;
}
