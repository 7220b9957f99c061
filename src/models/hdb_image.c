/*
 * hdb_image.c - decoding of client PNG and JPEG images (libpng, libjpeg-turbo) and their
 * conversion into a model's CHW float32 input tensor.
 *
 * Hostile input. The format is chosen by magic bytes only. The byte size is checked first; the
 * declared width and height are checked right after the header is parsed (the PNG IHDR is also
 * peeked at from the raw bytes, before libpng runs), and only then is the pixel buffer
 * allocated. Every error, and every libjpeg warning that means damaged data, fails the whole
 * decode: a truncated file never yields a partially grey or black image. Neither library may
 * print to stderr or abort.
 *
 * setjmp discipline. Both libraries report fatal errors through a callback that must not
 * return, so each decoder has a tiny function (png_guarded, jpeg_guarded) that calls setjmp and
 * then the real work. The guarded function has no automatic variables besides its parameters,
 * which it never modifies, and on the longjmp path it only returns a constant. All state that
 * changes while the libraries run (buffers, the error message, the result code) lives in a
 * "job" struct owned by the caller, reached through a pointer, so C11 7.13.2.1p3 (indeterminate
 * non-volatile locals after longjmp) does not apply to anything we read afterwards. The caller
 * then destroys the library objects and frees the buffers outside the guarded region.
 *
 * Resize. Separable: each axis gets its own 1-D kernel table (source index and weights per
 * destination pixel), computed in double and stored as float; rows are filtered horizontally
 * into a float scratch buffer, then vertically. Pixel centres are aligned (source coordinate =
 * (d + 0.5) * scale - 0.5, as in OpenCV and Pillow). On an axis whose scale factor
 * (source / destination) is at most 2 the kernel is bilinear (2 taps, clamped to the edges);
 * above 2 it is an exact area average (box filter with fractional coverage of the first and
 * last source pixel), so shrinking a large photo does not alias. The choice is made per axis
 * and depends only on the sizes, so the result is deterministic. Channel conversion (gray to
 * RGB, RGB to BT.601 luma) is linear and is applied after resizing the source channels, which
 * is the same thing up to float rounding and needs less memory.
 */
#include "hdb_image.h"

#include "hdb_err.h"
#include "hdb_mem.h"

#include <math.h>
#include <setjmp.h>
#include <stdio.h> /* jpeglib.h needs FILE */
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>
#include <png.h>

#define SPEC_MAX_SIDE 4096u      /* largest model input side hdb_image_spec_check accepts */
#define PNG_CHUNK_MAX (4u << 20) /* largest ancillary chunk libpng may allocate */
#define JPEG_MAX_SCANS 256       /* progressive scans; real encoders use about 10 */
#define MSG_MAX 200              /* library messages kept for the error text */

static const unsigned char PNG_MAGIC[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
static const unsigned char JPEG_MAGIC[3] = {0xff, 0xd8, 0xff};

/* ---- limits ------------------------------------------------------------------------------- */

/* Checks declared dimensions against lim before anything of that size is allocated. */
static int check_dims(uint64_t w, uint64_t h, const hdb_image_limits *lim, char *err,
                      size_t errlen) {
    if (w > lim->max_side || h > lim->max_side)
        return hdb_errf(err, errlen, HDB_ELIMIT,
                        "image: %llux%llu exceeds the limit of %u pixels per side",
                        (unsigned long long)w, (unsigned long long)h, lim->max_side);
    if (w * h > lim->max_pixels)
        return hdb_errf(err, errlen, HDB_ELIMIT,
                        "image: %llux%llu has %llu pixels, above the limit of %llu",
                        (unsigned long long)w, (unsigned long long)h, (unsigned long long)(w * h),
                        (unsigned long long)lim->max_pixels);
    if (w < lim->min_side || h < lim->min_side || w == 0 || h == 0)
        return hdb_errf(err, errlen, HDB_EINVAL,
                        "image: %llux%llu is smaller than the minimum of %ux%u",
                        (unsigned long long)w, (unsigned long long)h, lim->min_side, lim->min_side);
    return HDB_OK;
}

/* ---- PNG ---------------------------------------------------------------------------------- */

typedef struct {
    const unsigned char *data;
    size_t len, pos;
    const hdb_image_limits *lim;
    int rc;            /* set before a non-error early return from png_work */
    char msg[MSG_MAX]; /* libpng's error message, or ours */
    unsigned char *pixels;
    png_bytep *rows;
    uint32_t w, h, c;
} png_job;

/* libpng error callback: keep the message and jump back into png_guarded. */
static void png_on_error(png_structp png, png_const_charp msg) {
    png_job *job = png_get_error_ptr(png);
    snprintf(job->msg, sizeof job->msg, "%s", msg ? msg : "unknown error");
    png_longjmp(png, 1);
}

/* Warnings are dropped: the ones that matter are turned into errors (png_set_benign_errors). */
static void png_on_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;
}

/* Reads from the in-memory file; running out of bytes is an error, never a short read. */
static void png_read_mem(png_structp png, png_bytep out, size_t n) {
    png_job *job = png_get_io_ptr(png);
    if (n > job->len - job->pos) png_error(png, "unexpected end of file");
    memcpy(out, job->data + job->pos, n);
    job->pos += n;
}

/* The decode proper; any libpng error longjmps out of it to png_guarded. */
static int png_work(png_structp png, png_infop info, png_job *job) {
    /* Ancillary chunks (gamma, colour profiles, text, tRNS ...) are not needed: discard them
     * unparsed. Only IHDR, PLTE, IDAT and IEND are interpreted. */
    static const png_byte trns[] = {'t', 'R', 'N', 'S', '\0'};
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, NULL, -1);
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, trns, 1);
    png_set_user_limits(png, job->lim->max_side, job->lim->max_side);
    png_set_chunk_malloc_max(png, PNG_CHUNK_MAX);
    png_set_benign_errors(png, 0); /* "incorrect data check", "extra data" etc. are errors */
    png_set_read_fn(png, job, png_read_mem);
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
    /* Fuzzing builds only (as libpng's own fuzzer does): mutated files would otherwise almost
     * all stop at a CRC or Adler-32 mismatch, and the fuzzer would never reach the pixels. */
    png_set_crc_action(png, PNG_CRC_QUIET_USE, PNG_CRC_QUIET_USE);
    png_set_option(png, PNG_IGNORE_ADLER32, PNG_OPTION_ON);
#endif

    png_read_info(png, info);
    png_uint_32 w = 0, h = 0;
    int depth = 0, ctype = 0;
    png_get_IHDR(png, info, &w, &h, &depth, &ctype, NULL, NULL, NULL);
    char lerr[MSG_MAX];
    job->rc = check_dims(w, h, job->lim, lerr, sizeof lerr);
    if (job->rc != HDB_OK) {
        snprintf(job->msg, sizeof job->msg, "%s", lerr);
        return job->rc;
    }

    if (ctype == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (ctype == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (depth == 16) png_set_scale_16(png);
    if (ctype & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);

    png_byte c = png_get_channels(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    if ((c != 1 && c != 3) || png_get_bit_depth(png, info) != 8 || rowbytes != (size_t)w * c)
        png_error(png, "unexpected pixel layout after conversion");

    job->w = w;
    job->h = h;
    job->c = c;
    job->pixels = hdb_malloc((size_t)w * h * c);
    job->rows = hdb_malloc((size_t)h * sizeof *job->rows);
    for (png_uint_32 y = 0; y < h; y++)
        job->rows[y] = job->pixels + (size_t)y * rowbytes;
    png_read_image(png, job->rows);
    png_read_end(png, NULL); /* up to IEND: a file cut anywhere is refused */
    return HDB_OK;
}

/* The setjmp frame. It modifies no automatic variable, and after a longjmp reads none. */
static int png_guarded(png_structp png, png_infop info, png_job *job) {
    if (setjmp(png_jmpbuf(png))) return HDB_EINVAL;
    return png_work(png, info, job);
}

static int decode_png(const unsigned char *data, size_t len, const hdb_image_limits *lim,
                      hdb_image *out, char *err, size_t errlen) {
    int rc = HDB_OK;
    png_structp png = NULL;
    png_infop info = NULL;
    png_job job;
    memset(&job, 0, sizeof job);
    job.data = data;
    job.len = len;
    job.lim = lim;

    /* The first chunk must be IHDR: look at its width and height before libpng allocates
     * anything (libpng would refuse sides above max_side too, but as a damaged file). */
    if (len >= 24 && memcmp(data + 12, "IHDR", 4) == 0) {
        uint32_t w = (uint32_t)data[16] << 24 | (uint32_t)data[17] << 16 | (uint32_t)data[18] << 8 |
                     data[19];
        uint32_t h = (uint32_t)data[20] << 24 | (uint32_t)data[21] << 16 | (uint32_t)data[22] << 8 |
                     data[23];
        if (w != 0 && h != 0 && w <= PNG_UINT_31_MAX && h <= PNG_UINT_31_MAX) {
            rc = check_dims(w, h, lim, err, errlen);
            if (rc == HDB_ELIMIT) return rc;
            rc = HDB_OK; /* too small: let libpng validate the header first */
        }
    }

    png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &job, png_on_error, png_on_warning);
    if (png == NULL) {
        rc = hdb_errf(err, errlen, HDB_ENOMEM, "image: cannot initialise libpng");
        goto done;
    }
    info = png_create_info_struct(png);
    if (info == NULL) {
        rc = hdb_errf(err, errlen, HDB_ENOMEM, "image: cannot initialise libpng");
        goto done;
    }
    rc = png_guarded(png, info, &job);
    if (rc == HDB_EINVAL && job.rc == HDB_OK)
        rc = hdb_errf(err, errlen, HDB_EINVAL, "image: damaged or truncated PNG (%s)", job.msg);
    else if (rc != HDB_OK)
        rc = hdb_errf(err, errlen, rc, "%s", job.msg);

done:
    png_destroy_read_struct(&png, &info, NULL); /* NULL-safe */
    hdb_free(job.rows);
    if (rc == HDB_OK) {
        out->width = job.w;
        out->height = job.h;
        out->channels = job.c;
        out->pixels = job.pixels;
    } else {
        hdb_free(job.pixels);
    }
    return rc;
}

/* ---- JPEG --------------------------------------------------------------------------------- */

typedef struct {
    struct jpeg_error_mgr pub; /* first: libjpeg hands us a pointer to it */
    jmp_buf jb;
    int rc;                         /* HDB_EINVAL, or HDB_ELIMIT for oversized images */
    char msg[JMSG_LENGTH_MAX + 64]; /* libjpeg's message plus our prefix */
} jpeg_err_mgr;

typedef struct {
    struct jpeg_decompress_struct cinfo;
    jpeg_err_mgr jerr;
    struct jpeg_progress_mgr progress;
    const unsigned char *data;
    size_t len;
    const hdb_image_limits *lim;
    unsigned char *pixels;
    uint32_t w, h, c;
} jpeg_job;

static _Noreturn void jpeg_fail(j_common_ptr cinfo, int rc) {
    jpeg_err_mgr *e = (jpeg_err_mgr *)cinfo->err;
    e->rc = rc;
    longjmp(e->jb, 1);
}

/* error_exit: format the message and jump back into jpeg_guarded (never exit()). */
static void jpeg_on_error(j_common_ptr cinfo) {
    jpeg_err_mgr *e = (jpeg_err_mgr *)cinfo->err;
    if (e->pub.msg_code == JERR_IMAGE_TOO_BIG) {
        snprintf(e->msg, sizeof e->msg, "image: JPEG sides exceed libjpeg's maximum of %ld pixels",
                 (long)JPEG_MAX_DIMENSION);
        jpeg_fail(cinfo, HDB_ELIMIT);
    }
    char buf[JMSG_LENGTH_MAX];
    cinfo->err->format_message(cinfo, buf);
    snprintf(e->msg, sizeof e->msg, "image: damaged or truncated JPEG (%s)", buf);
    jpeg_fail(cinfo, HDB_EINVAL);
}

/* emit_message: trace messages (level >= 0) are dropped. Warnings (level -1) mean damaged data
 * (premature end of file, which libjpeg papers over with a fake EOI, corrupt entropy data,
 * extraneous bytes) and fail the decode as TurboJPEG's stop-on-warning mode does, except for
 * the few that say nothing about the pixels. */
static void jpeg_on_message(j_common_ptr cinfo, int level) {
    if (level >= 0) return;
    int code = cinfo->err->msg_code;
    if (code == JWRN_JFIF_MAJOR || code == JWRN_ADOBE_XFORM || code == JWRN_BOGUS_ICC) return;
    jpeg_on_error(cinfo);
}

static void jpeg_on_output(j_common_ptr cinfo) {
    (void)cinfo;
}

/* Progressive files can hold thousands of tiny scans, each a pass over the whole image. */
static void jpeg_on_progress(j_common_ptr cinfo) {
    if (!cinfo->is_decompressor) return;
    j_decompress_ptr d = (j_decompress_ptr)cinfo;
    if (d->input_scan_number > JPEG_MAX_SCANS) {
        jpeg_err_mgr *e = (jpeg_err_mgr *)cinfo->err;
        snprintf(e->msg, sizeof e->msg, "image: damaged JPEG (more than %d progressive scans)",
                 JPEG_MAX_SCANS);
        jpeg_fail(cinfo, HDB_EINVAL);
    }
}

/* The decode proper; any libjpeg error longjmps out of it to jpeg_guarded. */
static int jpeg_work(jpeg_job *job) {
    j_decompress_ptr cinfo = &job->cinfo;
    jpeg_create_decompress(cinfo);
    job->progress.progress_monitor = jpeg_on_progress;
    cinfo->progress = &job->progress;
    jpeg_mem_src(cinfo, job->data, (unsigned long)job->len);
    /* Reads up to the first SOS; no pixel or coefficient memory yet. The memory source cannot
     * suspend, so anything but JPEG_HEADER_OK is a damaged file. */
    if (jpeg_read_header(cinfo, TRUE) != JPEG_HEADER_OK) ERREXIT(cinfo, JERR_NO_IMAGE);

    char lerr[MSG_MAX];
    int rc = check_dims(cinfo->image_width, cinfo->image_height, job->lim, lerr, sizeof lerr);
    if (rc != HDB_OK) {
        snprintf(job->jerr.msg, sizeof job->jerr.msg, "%s", lerr);
        job->jerr.rc = rc;
        return rc;
    }
    switch (cinfo->jpeg_color_space) {
    case JCS_GRAYSCALE:
        cinfo->out_color_space = JCS_GRAYSCALE;
        break;
    case JCS_YCbCr:
    case JCS_RGB:
        cinfo->out_color_space = JCS_RGB;
        break;
    case JCS_CMYK:
    case JCS_YCCK:
        snprintf(job->jerr.msg, sizeof job->jerr.msg, "image: CMYK JPEG images are not supported");
        job->jerr.rc = HDB_EINVAL;
        return HDB_EINVAL;
    default:
        snprintf(job->jerr.msg, sizeof job->jerr.msg,
                 "image: unsupported JPEG colour space (%d components)", cinfo->num_components);
        job->jerr.rc = HDB_EINVAL;
        return HDB_EINVAL;
    }
    cinfo->scale_num = cinfo->scale_denom = 1;
    jpeg_start_decompress(cinfo);
    uint32_t w = cinfo->output_width, h = cinfo->output_height;
    uint32_t c = (uint32_t)cinfo->output_components;
    if (w != cinfo->image_width || h != cinfo->image_height || (c != 1 && c != 3))
        ERREXIT(cinfo, JERR_CONVERSION_NOTIMPL);

    job->w = w;
    job->h = h;
    job->c = c;
    job->pixels = hdb_malloc((size_t)w * h * c);
    while (cinfo->output_scanline < h) {
        JSAMPROW row = job->pixels + (size_t)cinfo->output_scanline * w * c;
        if (jpeg_read_scanlines(cinfo, &row, 1) != 1) ERREXIT(cinfo, JERR_INPUT_EOF);
    }
    jpeg_finish_decompress(cinfo); /* up to EOI: a file cut anywhere is refused */
    return HDB_OK;
}

/* The setjmp frame. It modifies no automatic variable, and after a longjmp reads none. */
static int jpeg_guarded(jpeg_job *job) {
    if (setjmp(job->jerr.jb)) return HDB_EINVAL;
    return jpeg_work(job);
}

static int decode_jpeg(const unsigned char *data, size_t len, const hdb_image_limits *lim,
                       hdb_image *out, char *err, size_t errlen) {
    jpeg_job *job = hdb_calloc(1, sizeof *job); /* ~1 KiB of libjpeg state: keep it off the stack */
    job->data = data;
    job->len = len;
    job->lim = lim;
    job->cinfo.err = jpeg_std_error(&job->jerr.pub);
    job->jerr.pub.error_exit = jpeg_on_error;
    job->jerr.pub.emit_message = jpeg_on_message;
    job->jerr.pub.output_message = jpeg_on_output;
    job->jerr.rc = HDB_OK;

    int rc = jpeg_guarded(job);
    if (rc != HDB_OK)
        rc = hdb_errf(err, errlen, job->jerr.rc ? job->jerr.rc : rc, "%s", job->jerr.msg);
    /* Safe even when jpeg_create_decompress failed: cinfo.mem is still NULL (calloc). */
    jpeg_destroy_decompress(&job->cinfo);
    if (rc == HDB_OK) {
        out->width = job->w;
        out->height = job->h;
        out->channels = job->c;
        out->pixels = job->pixels;
    } else {
        hdb_free(job->pixels);
    }
    hdb_free(job);
    return rc;
}

/* ---- decode ------------------------------------------------------------------------------- */

int hdb_image_decode(const void *data, size_t len, const hdb_image_limits *lim, hdb_image *out,
                     char *err, size_t errlen) {
    if (out == NULL || lim == NULL || (data == NULL && len > 0))
        return hdb_errf(err, errlen, HDB_EINVAL, "image: missing argument");
    memset(out, 0, sizeof *out);
    if (len > lim->max_bytes)
        return hdb_errf(err, errlen, HDB_ELIMIT, "image: %zu bytes exceeds the limit of %zu", len,
                        lim->max_bytes);
    if (len == 0) return hdb_errf(err, errlen, HDB_EINVAL, "image: empty");
    const unsigned char *p = data;
    if (len >= sizeof PNG_MAGIC && memcmp(p, PNG_MAGIC, sizeof PNG_MAGIC) == 0)
        return decode_png(p, len, lim, out, err, errlen);
    if (len >= sizeof JPEG_MAGIC && memcmp(p, JPEG_MAGIC, sizeof JPEG_MAGIC) == 0)
        return decode_jpeg(p, len, lim, out, err, errlen);
    return hdb_errf(err, errlen, HDB_EINVAL, "image: not a PNG or JPEG file");
}

void hdb_image_free(hdb_image *img) {
    if (img == NULL) return;
    hdb_free(img->pixels);
    memset(img, 0, sizeof *img);
}

/* ---- spec --------------------------------------------------------------------------------- */

int hdb_image_spec_check(const hdb_image_spec *spec, char *err, size_t errlen) {
    if (spec == NULL) return hdb_errf(err, errlen, HDB_EINVAL, "spec.input.image: missing");
    if (spec->width < 1 || spec->width > SPEC_MAX_SIDE)
        return hdb_errf(err, errlen, HDB_EINVAL, "spec.input.image.width: must be 1..%u (got %u)",
                        SPEC_MAX_SIDE, spec->width);
    if (spec->height < 1 || spec->height > SPEC_MAX_SIDE)
        return hdb_errf(err, errlen, HDB_EINVAL, "spec.input.image.height: must be 1..%u (got %u)",
                        SPEC_MAX_SIDE, spec->height);
    if (spec->channels != 1 && spec->channels != 3)
        return hdb_errf(err, errlen, HDB_EINVAL,
                        "spec.input.image.channels: must be 1 or 3 (got %u)", spec->channels);
    if (spec->resize != HDB_RESIZE_STRETCH && spec->resize != HDB_RESIZE_FIT &&
        spec->resize != HDB_RESIZE_CROP)
        return hdb_errf(err, errlen, HDB_EINVAL,
                        "spec.input.image.resize: unknown mode %d (1 stretch, 2 fit, 3 crop)",
                        (int)spec->resize);
    for (uint32_t c = 0; c < spec->channels; c++) {
        if (!isfinite(spec->mean[c]))
            return hdb_errf(err, errlen, HDB_EINVAL, "spec.input.image.mean[%u]: must be finite",
                            c);
        if (!isfinite(spec->std[c]) || !(spec->std[c] > 0.0f))
            return hdb_errf(err, errlen, HDB_EINVAL,
                            "spec.input.image.std[%u]: must be finite and > 0 (got %g)", c,
                            (double)spec->std[c]);
    }
    return HDB_OK;
}

/* ---- resize ------------------------------------------------------------------------------- */

/* A 1-D resampling kernel: destination pixel i (0..dn) reads count[i] source pixels from
 * first[i] with weights w[i * taps ...]. */
typedef struct {
    uint32_t dn, taps;
    uint32_t *first, *count;
    float *w;
} kernel;

static void kernel_free(kernel *k) {
    hdb_free(k->first);
    hdb_free(k->count);
    hdb_free(k->w);
}

/* Maps destination pixels 0..dn onto the source interval [s0, s0 + sn) of an axis with n
 * pixels (0 <= s0, s0 + sn <= n, sn > 0). */
static void kernel_build(kernel *k, uint32_t n, double s0, double sn, uint32_t dn) {
    double f = sn / dn; /* source pixels per destination pixel */
    int area = f > 2.0;
    k->dn = dn;
    k->taps = area ? (uint32_t)ceil(f) + 2 : 2;
    k->first = hdb_malloc(dn * sizeof *k->first);
    k->count = hdb_malloc(dn * sizeof *k->count);
    k->w = hdb_calloc((size_t)dn * k->taps, sizeof *k->w);
    for (uint32_t i = 0; i < dn; i++) {
        float *w = k->w + (size_t)i * k->taps;
        if (!area) {
            double x = s0 + (i + 0.5) * f - 0.5;
            if (x < 0) x = 0;
            if (x > n - 1) x = n - 1;
            uint32_t j = (uint32_t)x;
            if (j > n - 1) j = n - 1;
            double t = x - j;
            k->first[i] = j;
            if (j + 1 < n && t > 0) {
                k->count[i] = 2;
                w[0] = (float)(1.0 - t);
                w[1] = (float)t;
            } else {
                k->count[i] = 1;
                w[0] = 1.0f;
            }
            continue;
        }
        double a = s0 + i * f, b = s0 + (i + 1) * f;
        if (a < 0) a = 0;
        if (b > n) b = n;
        uint32_t j0 = (uint32_t)a;
        uint32_t j1 = (uint32_t)ceil(b); /* exclusive */
        if (j0 > n - 1) j0 = n - 1;
        if (j1 > n) j1 = n;
        if (j1 <= j0) j1 = j0 + 1;
        if (j1 - j0 > k->taps) j1 = j0 + k->taps; /* cannot happen: taps >= ceil(f) + 2 */
        double sum = 0;
        for (uint32_t j = j0; j < j1; j++) {
            double lo = a > j ? a : j, hi = b < j + 1.0 ? b : j + 1.0;
            double cover = hi > lo ? hi - lo : 0;
            w[j - j0] = (float)cover;
            sum += cover;
        }
        if (sum <= 0) { /* degenerate interval: nearest pixel */
            w[0] = 1.0f;
            sum = 1.0;
        }
        for (uint32_t j = j0; j < j1; j++)
            w[j - j0] = (float)(w[j - j0] / sum);
        k->first[i] = j0;
        k->count[i] = j1 - j0;
    }
}

/* Resizes the c interleaved 8-bit channels of img into c planar float planes of W x H at dst
 * (zeroed by the caller), with the content placed at (ox, oy) with size cw x ch and taken from
 * the source window [sx0, sx0 + sxn) x [sy0, sy0 + syn). Values stay in 0..255. */
static void resize_planes(const hdb_image *img, float *dst, uint32_t W, uint32_t H, uint32_t ox,
                          uint32_t oy, uint32_t cw, uint32_t ch, double sx0, double sxn, double sy0,
                          double syn) {
    kernel kx, ky;
    kernel_build(&kx, img->width, sx0, sxn, cw);
    kernel_build(&ky, img->height, sy0, syn, ch);
    uint32_t c = img->channels, w = img->width;

    /* Source rows that the vertical kernel touches. */
    uint32_t r0 = ky.first[0], r1 = ky.first[0] + ky.count[0];
    for (uint32_t i = 1; i < ch; i++) {
        if (ky.first[i] < r0) r0 = ky.first[i];
        if (ky.first[i] + ky.count[i] > r1) r1 = ky.first[i] + ky.count[i];
    }
    /* Horizontal pass: rows r0..r1 -> tmp[(row - r0) * cw * c + x * c + channel]. */
    float *tmp = hdb_malloc((size_t)(r1 - r0) * cw * c * sizeof *tmp);
    for (uint32_t y = r0; y < r1; y++) {
        const unsigned char *src = img->pixels + (size_t)y * w * c;
        float *t = tmp + (size_t)(y - r0) * cw * c;
        for (uint32_t x = 0; x < cw; x++) {
            const float *kw = kx.w + (size_t)x * kx.taps;
            const unsigned char *s = src + (size_t)kx.first[x] * c;
            for (uint32_t k = 0; k < c; k++) {
                float acc = 0;
                for (uint32_t j = 0; j < kx.count[x]; j++)
                    acc += kw[j] * s[(size_t)j * c + k];
                t[(size_t)x * c + k] = acc;
            }
        }
    }
    /* Vertical pass into the planes. */
    size_t plane = (size_t)W * H;
    for (uint32_t y = 0; y < ch; y++) {
        const float *kw = ky.w + (size_t)y * ky.taps;
        const float *base = tmp + (size_t)(ky.first[y] - r0) * cw * c;
        for (uint32_t x = 0; x < cw; x++) {
            for (uint32_t k = 0; k < c; k++) {
                float acc = 0;
                for (uint32_t j = 0; j < ky.count[y]; j++)
                    acc += kw[j] * base[(size_t)j * cw * c + (size_t)x * c + k];
                dst[k * plane + (size_t)(oy + y) * W + ox + x] = acc;
            }
        }
    }
    hdb_free(tmp);
    kernel_free(&kx);
    kernel_free(&ky);
}

int hdb_image_to_input(const hdb_image *img, const hdb_image_spec *spec, float *out, char *err,
                       size_t errlen) {
    int rc = hdb_image_spec_check(spec, err, errlen);
    if (rc != HDB_OK) return rc;
    if (img == NULL || out == NULL || img->pixels == NULL || img->width == 0 || img->height == 0 ||
        (img->channels != 1 && img->channels != 3))
        return hdb_errf(err, errlen, HDB_EINVAL, "image: no decoded pixels");

    uint32_t W = spec->width, H = spec->height, w = img->width, h = img->height;
    uint64_t Ww = (uint64_t)W * h, Hw = (uint64_t)H * w; /* compare W/w with H/h exactly */
    uint32_t ox = 0, oy = 0, cw = W, ch = H;
    double sx0 = 0, sxn = w, sy0 = 0, syn = h;
    switch (spec->resize) {
    case HDB_RESIZE_STRETCH:
        break;
    case HDB_RESIZE_FIT:
        if (Ww <= Hw) { /* width limits: full width, height scaled by W / w */
            uint64_t v = ((uint64_t)h * W + w / 2) / w;
            ch = v < 1 ? 1 : v > H ? H : (uint32_t)v;
        } else {
            uint64_t v = ((uint64_t)w * H + h / 2) / h;
            cw = v < 1 ? 1 : v > W ? W : (uint32_t)v;
        }
        ox = (W - cw) / 2;
        oy = (H - ch) / 2;
        break;
    case HDB_RESIZE_CROP:
        if (Ww >= Hw) { /* scale by W / w; the source window is H * w / W rows high */
            syn = (double)H * w / W;
            if (syn > h) syn = h;
            sy0 = (h - syn) / 2;
        } else {
            sxn = (double)W * h / H;
            if (sxn > w) sxn = w;
            sx0 = (w - sxn) / 2;
        }
        break;
    }

    uint32_t c = img->channels, C = spec->channels;
    size_t plane = (size_t)W * H;
    float *res = hdb_calloc(plane * c, sizeof *res); /* zero: FIT's padding is black */
    resize_planes(img, res, W, H, ox, oy, cw, ch, sx0, sxn, sy0, syn);
    for (uint32_t k = 0; k < C; k++) {
        float mean = spec->mean[k], sd = spec->std[k];
        float *o = out + k * plane;
        for (size_t p = 0; p < plane; p++) {
            float v;
            if (c == C)
                v = res[k * plane + p];
            else if (c == 1)
                v = res[p]; /* gray -> RGB: replicate */
            else
                v = 0.299f * res[p] + 0.587f * res[plane + p] + 0.114f * res[2 * plane + p];
            o[p] = (v / 255.0f - mean) / sd;
        }
    }
    hdb_free(res);
    return HDB_OK;
}

int hdb_image_to_tensor(const void *data, size_t len, const hdb_image_limits *lim,
                        const hdb_image_spec *spec, float *out, char *err, size_t errlen) {
    int rc = hdb_image_spec_check(spec, err, errlen);
    if (rc != HDB_OK) return rc;
    hdb_image img;
    rc = hdb_image_decode(data, len, lim, &img, err, errlen);
    if (rc != HDB_OK) return rc;
    rc = hdb_image_to_input(&img, spec, out, err, errlen);
    hdb_image_free(&img);
    return rc;
}
