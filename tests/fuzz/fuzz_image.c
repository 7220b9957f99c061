/*
 * fuzz_image.c - libFuzzer target for the client image path: hdb_image_to_tensor (decode,
 * limits, channel conversion, resize, normalisation) on arbitrary bytes.
 *
 * Input layout: byte 0 selects the model spec, the rest is the file. Bit 0 picks 28x28 gray or
 * 32x32 RGB, bits 1-2 the resize mode (0 and 3 stretch, 1 fit, 2 crop). Besides the
 * sanitizers, the target checks the contract: a success yields only values in the normalised
 * range of 0..255, and every failure is HDB_EINVAL or HDB_ELIMIT with an "image: " message.
 * See README.md beside this file for building and running it.
 */
#include "hdb_err.h"
#include "hdb_image.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const hdb_image_limits lim = {
        .max_bytes = 1u << 20, .max_side = 4096, .max_pixels = 4u << 20, .min_side = 1};
    static const hdb_resize_mode modes[4] = {HDB_RESIZE_STRETCH, HDB_RESIZE_FIT, HDB_RESIZE_CROP,
                                             HDB_RESIZE_STRETCH};
    static float out[3 * 32 * 32];
    if (size < 1) return 0;
    hdb_image_spec spec = {.width = 28,
                           .height = 28,
                           .channels = 1,
                           .mean = {0.5f, 0.5f, 0.5f},
                           .std = {0.5f, 0.5f, 0.5f}};
    if (data[0] & 1) spec.width = spec.height = 32, spec.channels = 3;
    spec.resize = modes[(data[0] >> 1) & 3];

    char err[256];
    err[0] = '\0';
    size_t n = (size_t)spec.width * spec.height * spec.channels;
    memset(out, 0xff, n * sizeof *out); /* NaN: catches outputs that are never written */
    int rc = hdb_image_to_tensor(data + 1, size - 1, &lim, &spec, out, err, sizeof err);
    if (rc == HDB_OK) {
        /* (v / 255 - 0.5) / 0.5 lies in [-1, 1] for v in 0..255; resizing must not overshoot. */
        for (size_t i = 0; i < n; i++)
            if (!(out[i] >= -1.0001f && out[i] <= 1.0001f)) __builtin_trap();
    } else if ((rc != HDB_EINVAL && rc != HDB_ELIMIT) || strncmp(err, "image: ", 7) != 0) {
        __builtin_trap();
    }
    return 0;
}
