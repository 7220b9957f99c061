/*
 * hdb_image.h - decoding of client images (PNG, JPEG) and their conversion into a model's input
 * tensor: channel conversion, resize, scaling to [0, 1] and per-channel normalisation.
 *
 * Images come from clients, so the decoder treats every byte as hostile: the byte size, the
 * declared width and height and the pixel count are checked against limits before any pixel
 * buffer is allocated, every libpng/libjpeg error is caught (no longjmp escapes, no abort), and
 * a truncated or damaged file is an error, never a partial image. Anything that is not a PNG or
 * JPEG is refused. A libFuzzer target (tests/fuzz/fuzz_image.c) drives hdb_image_to_tensor.
 *
 * All functions are thread-safe and reentrant; they keep no global state.
 */
#ifndef HDB_IMAGE_H
#define HDB_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* How an image is fitted to the model's width x height. The numbers equal
 * hilbert.v1.ResizeMode. */
typedef enum {
    HDB_RESIZE_STRETCH = 1, /* scale each axis independently (aspect ratio not kept) */
    HDB_RESIZE_FIT = 2,     /* scale to fit inside, keep the aspect ratio, pad with zeros
                               (black, before normalisation) */
    HDB_RESIZE_CROP = 3     /* scale to cover, keep the aspect ratio, crop the centre */
} hdb_resize_mode;

/* Limits on what a client may send. */
typedef struct {
    size_t max_bytes;     /* encoded size */
    uint32_t max_side;    /* width and height, each */
    uint64_t max_pixels;  /* width x height */
    uint32_t min_side;    /* width and height, each (a 1x1 image carries no content) */
} hdb_image_limits;

/* A model's image input. */
typedef struct {
    uint32_t width, height; /* model input size */
    uint32_t channels;      /* 1 (grayscale) or 3 (RGB) */
    hdb_resize_mode resize;
    float mean[3], std[3];  /* per channel, applied to pixels scaled to [0, 1]; std > 0 */
} hdb_image_spec;

/* A decoded 8-bit image, row-major, interleaved channels (1 = gray, 3 = RGB). */
typedef struct {
    uint32_t width, height, channels;
    unsigned char *pixels; /* width * height * channels bytes; free with hdb_image_free */
} hdb_image;

/* Decodes a PNG or JPEG of len bytes into 8-bit gray (when the file is gray) or RGB (otherwise:
 * palette, alpha, 16-bit and YCbCr are converted; alpha and tRNS are dropped). The format is
 * chosen by magic bytes only. Returns HDB_OK, or HDB_EINVAL with a message that starts with
 * "image: " (unknown format, damaged or truncated file, unsupported colour space such as CMYK,
 * smaller than lim->min_side) or HDB_ELIMIT (len above lim->max_bytes, a side above
 * lim->max_side, more than lim->max_pixels pixels; checked from the header before the pixels
 * are allocated). Damage is judged strictly: a bad CRC or zlib checksum, data missing anywhere
 * before the PNG IEND or JPEG EOI, and libjpeg's corrupt-data warnings all fail the decode.
 * lim and out must not be NULL. On success the caller owns out->pixels and releases them with
 * hdb_image_free; on failure out is zeroed (so hdb_image_free on it is harmless). */
int hdb_image_decode(const void *data, size_t len, const hdb_image_limits *lim, hdb_image *out,
                     char *err, size_t errlen);

/* Releases the pixels of img (the struct itself belongs to the caller). NULL is allowed. */
void hdb_image_free(hdb_image *img);

/* Converts a decoded image into spec's input tensor, CHW float32: out must hold
 * spec->channels * spec->height * spec->width floats (caller-owned; every element is written).
 * Gray becomes RGB by repetition and RGB becomes gray by ITU-R BT.601 luma
 * (0.299 R + 0.587 G + 0.114 B); resizing is bilinear with aligned pixel centres (an exact area
 * average on an axis that shrinks by more than 2x) according to spec->resize; then
 * (pixel / 255 - mean[c]) / std[c]. The result is deterministic. HDB_EINVAL when the spec
 * fails hdb_image_spec_check (same message) or img holds no pixels. */
int hdb_image_to_input(const hdb_image *img, const hdb_image_spec *spec, float *out, char *err,
                       size_t errlen);

/* Decode and convert in one step: what AddImage, FindSimilarImage and Embed use. The spec is
 * checked first, so a bad spec is reported without decoding. Errors as above. */
int hdb_image_to_tensor(const void *data, size_t len, const hdb_image_limits *lim,
                        const hdb_image_spec *spec, float *out, char *err, size_t errlen);

/* Checks a spec: sizes 1..4096, channels 1 or 3, a known resize mode, finite mean, std > 0.
 * Messages name the field under "spec.input.image." */
int hdb_image_spec_check(const hdb_image_spec *spec, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif /* HDB_IMAGE_H */
