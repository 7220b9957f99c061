/*
 * test_image.c - unit tests of hdb_image: PNG and JPEG decoding (every colour type, exact
 * pixels), every refusal path (unknown formats, truncation at every byte, damaged chunks,
 * huge declared sizes in tiny files, CMYK, too small, too many bytes), the spec checks, and the
 * numerics of hdb_image_to_input (normalisation, bilinear and area resizing, FIT padding, CROP
 * centring, gray <-> RGB, CHW layout).
 *
 * The test images are encoded in memory with libpng and libjpeg; no files are read.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "hdb_err.h"
#include "hdb_image.h"
#include "hdb_mem.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jpeglib.h>
#include <png.h>

#if defined(__SANITIZE_ADDRESS__)
#define HAVE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_ASAN 1
#endif
#endif

static const hdb_image_limits LIM = {
    .max_bytes = 1 << 20, .max_side = 4096, .max_pixels = 4u << 20, .min_side = 8};

/* ---- in-memory encoders ------------------------------------------------------------------- */

typedef struct {
    unsigned char *p;
    size_t n, cap;
} buf;

static void buf_put(buf *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}

static void png_write_buf(png_structp png, png_bytep d, size_t n) {
    buf_put(png_get_io_ptr(png), d, n);
}

static void png_flush_buf(png_structp png) {
    (void)png;
}

typedef struct {
    int ctype, depth, interlace, level; /* level: zlib level, -1 = default */
    const png_color *pal;
    int npal;
    const png_byte *trans; /* palette alpha */
    int ntrans;
} png_opts;

/* Encodes w x h rows of raw (packed as libpng expects, rowbytes each) into a PNG. */
static buf png_make(uint32_t w, uint32_t h, const png_opts *o, const unsigned char *raw,
                    size_t rowbytes) {
    buf b = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    assert_non_null(info);
    if (setjmp(png_jmpbuf(png))) fail_msg("libpng write failed");
    png_set_write_fn(png, &b, png_write_buf, png_flush_buf);
    png_set_IHDR(png, info, w, h, o->depth, o->ctype,
                 o->interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (o->pal) png_set_PLTE(png, info, o->pal, o->npal);
    if (o->trans) png_set_tRNS(png, info, o->trans, o->ntrans, NULL);
    if (o->level >= 0) png_set_compression_level(png, o->level);
    png_write_info(png, info);
    png_bytep *rows = malloc(h * sizeof *rows);
    for (uint32_t y = 0; y < h; y++)
        rows[y] = (png_bytep)raw + y * rowbytes;
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    return b;
}

/* Encodes interleaved 8-bit pixels (comps per pixel in in_cs) as a JPEG. cs forces the JPEG
 * colour space (JCS_UNKNOWN: libjpeg's default for in_cs). */
static buf jpeg_make(uint32_t w, uint32_t h, int comps, J_COLOR_SPACE in_cs, J_COLOR_SPACE cs,
                     const unsigned char *px, int quality, int progressive) {
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr jerr;
    unsigned char *out = NULL;
    unsigned long outlen = 0;
    c.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&c);
    jpeg_mem_dest(&c, &out, &outlen);
    c.image_width = w;
    c.image_height = h;
    c.input_components = comps;
    c.in_color_space = in_cs;
    jpeg_set_defaults(&c);
    if (cs != JCS_UNKNOWN) jpeg_set_colorspace(&c, cs);
    for (int i = 0; i < c.num_components; i++) /* 4:4:4, so colours survive exactly enough */
        c.comp_info[i].h_samp_factor = c.comp_info[i].v_samp_factor = 1;
    jpeg_set_quality(&c, quality, TRUE);
    if (progressive) jpeg_simple_progression(&c);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < h) {
        JSAMPROW row = (JSAMPROW)px + (size_t)c.next_scanline * w * comps;
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    buf b = {0};
    buf_put(&b, out, outlen);
    free(out);
    return b;
}

static uint32_t crc32_of(const unsigned char *p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
    }
    return c ^ 0xffffffffu;
}

static void put_be32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* Appends a chunk with a correct CRC. */
static void png_chunk(buf *b, const char *type, const unsigned char *data, uint32_t n) {
    unsigned char hdr[8];
    put_be32(hdr, n);
    memcpy(hdr + 4, type, 4);
    buf_put(b, hdr, 8);
    if (n) buf_put(b, data, n);
    unsigned char *crcd = malloc(4 + n);
    memcpy(crcd, type, 4);
    if (n) memcpy(crcd + 4, data, n);
    unsigned char crc[4];
    put_be32(crc, crc32_of(crcd, 4 + n));
    free(crcd);
    buf_put(b, crc, 4);
}

/* A PNG that is only a signature, an IHDR declaring w x h (8-bit RGB) and IEND. */
static buf png_header_only(uint32_t w, uint32_t h) {
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    buf b = {0};
    buf_put(&b, sig, 8);
    unsigned char ihdr[13] = {0};
    put_be32(ihdr, w);
    put_be32(ihdr + 4, h);
    ihdr[8] = 8; /* depth */
    ihdr[9] = 2; /* RGB */
    png_chunk(&b, "IHDR", ihdr, 13);
    png_chunk(&b, "IEND", NULL, 0);
    return b;
}

/* Finds the offset of the first chunk of the given type (at its length field), or 0. */
static size_t png_find_chunk(const buf *b, const char *type) {
    size_t off = 8;
    while (off + 12 <= b->n) {
        uint32_t n = (uint32_t)b->p[off] << 24 | (uint32_t)b->p[off + 1] << 16 |
                     (uint32_t)b->p[off + 2] << 8 | b->p[off + 3];
        if (memcmp(b->p + off + 4, type, 4) == 0) return off;
        off += 12 + n;
    }
    return 0;
}

static unsigned char *pattern(uint32_t w, uint32_t h, uint32_t c, uint32_t seed) {
    unsigned char *p = malloc((size_t)w * h * c);
    for (uint32_t y = 0; y < h; y++)
        for (uint32_t x = 0; x < w; x++)
            for (uint32_t k = 0; k < c; k++)
                p[((size_t)y * w + x) * c + k] = (unsigned char)(x * 7 + y * 13 + k * 61 + seed);
    return p;
}

static int decode(const buf *b, hdb_image *img, char *err) {
    return hdb_image_decode(b->p, b->n, &LIM, img, err, 256);
}

/* ---- PNG decoding ------------------------------------------------------------------------- */

static void test_png_gray_rgb_rgba(void **state) {
    (void)state;
    const uint32_t w = 19, h = 11;
    char err[256];
    struct {
        int ctype;
        uint32_t in_c, out_c;
    } cases[] = {{PNG_COLOR_TYPE_GRAY, 1, 1},
                 {PNG_COLOR_TYPE_GRAY_ALPHA, 2, 1},
                 {PNG_COLOR_TYPE_RGB, 3, 3},
                 {PNG_COLOR_TYPE_RGB_ALPHA, 4, 3}};
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        for (int interlace = 0; interlace <= 1; interlace++) {
            unsigned char *raw = pattern(w, h, cases[t].in_c, (uint32_t)t);
            png_opts o = {.ctype = cases[t].ctype, .depth = 8, .interlace = interlace, .level = -1};
            buf b = png_make(w, h, &o, raw, (size_t)w * cases[t].in_c);
            hdb_image img;
            assert_int_equal(decode(&b, &img, err), HDB_OK);
            assert_int_equal(img.width, w);
            assert_int_equal(img.height, h);
            assert_int_equal(img.channels, cases[t].out_c);
            for (size_t p = 0; p < (size_t)w * h; p++)
                for (uint32_t k = 0; k < cases[t].out_c; k++)
                    assert_int_equal(img.pixels[p * cases[t].out_c + k],
                                     raw[p * cases[t].in_c + k]);
            hdb_image_free(&img);
            assert_null(img.pixels);
            free(raw);
            free(b.p);
        }
    }
}

static void test_png_palette_and_low_depth(void **state) {
    (void)state;
    char err[256];
    const uint32_t w = 13, h = 9;
    png_color pal[4] = {{10, 20, 30}, {200, 0, 100}, {0, 255, 0}, {255, 255, 255}};
    png_byte trans[2] = {0, 128}; /* tRNS: transparency is dropped, the colour is kept */
    /* 2-bit palette indices, packed 4 per byte. */
    size_t rowbytes = (w * 2 + 7) / 8;
    unsigned char *raw = calloc(h, rowbytes);
    for (uint32_t y = 0; y < h; y++)
        for (uint32_t x = 0; x < w; x++)
            raw[y * rowbytes + x / 4] |= (unsigned char)(((x + y) % 4) << (6 - 2 * (x % 4)));
    png_opts o = {.ctype = PNG_COLOR_TYPE_PALETTE,
                  .depth = 2,
                  .level = -1,
                  .pal = pal,
                  .npal = 4,
                  .trans = trans,
                  .ntrans = 2};
    buf b = png_make(w, h, &o, raw, rowbytes);
    hdb_image img;
    assert_int_equal(decode(&b, &img, err), HDB_OK);
    assert_int_equal(img.channels, 3);
    for (uint32_t y = 0; y < h; y++)
        for (uint32_t x = 0; x < w; x++) {
            const png_color *c = &pal[(x + y) % 4];
            const unsigned char *px = img.pixels + ((size_t)y * w + x) * 3;
            assert_int_equal(px[0], c->red);
            assert_int_equal(px[1], c->green);
            assert_int_equal(px[2], c->blue);
        }
    hdb_image_free(&img);
    free(b.p);
    free(raw);

    /* 1-bit gray: 0 -> 0, 1 -> 255. */
    rowbytes = (w + 7) / 8;
    raw = calloc(h, rowbytes);
    for (uint32_t y = 0; y < h; y++)
        for (uint32_t x = 0; x < w; x++)
            if ((x ^ y) & 1) raw[y * rowbytes + x / 8] |= (unsigned char)(0x80 >> (x % 8));
    png_opts g = {.ctype = PNG_COLOR_TYPE_GRAY, .depth = 1, .level = -1};
    b = png_make(w, h, &g, raw, rowbytes);
    assert_int_equal(decode(&b, &img, err), HDB_OK);
    assert_int_equal(img.channels, 1);
    for (uint32_t y = 0; y < h; y++)
        for (uint32_t x = 0; x < w; x++)
            assert_int_equal(img.pixels[(size_t)y * w + x], ((x ^ y) & 1) ? 255 : 0);
    hdb_image_free(&img);
    free(b.p);
    free(raw);
}

static void test_png_16bit(void **state) {
    (void)state;
    char err[256];
    const uint32_t w = 10, h = 8;
    for (int gray = 0; gray <= 1; gray++) {
        for (int alpha = 0; alpha <= 1; alpha++) {
            uint32_t c = (gray ? 1 : 3) + (uint32_t)alpha, oc = gray ? 1 : 3;
            unsigned char *raw = malloc((size_t)w * h * c * 2);
            unsigned char *want = pattern(w, h, c, 5);
            for (size_t i = 0; i < (size_t)w * h * c; i++) { /* v * 257 scales back to v exactly */
                unsigned v = want[i] * 257u;
                raw[2 * i] = (unsigned char)(v >> 8);
                raw[2 * i + 1] = (unsigned char)v;
            }
            int ctype = gray ? (alpha ? PNG_COLOR_TYPE_GRAY_ALPHA : PNG_COLOR_TYPE_GRAY)
                             : (alpha ? PNG_COLOR_TYPE_RGB_ALPHA : PNG_COLOR_TYPE_RGB);
            png_opts o = {.ctype = ctype, .depth = 16, .level = -1};
            buf b = png_make(w, h, &o, raw, (size_t)w * c * 2);
            hdb_image img;
            assert_int_equal(decode(&b, &img, err), HDB_OK);
            assert_int_equal(img.channels, oc);
            for (size_t p = 0; p < (size_t)w * h; p++)
                for (uint32_t k = 0; k < oc; k++)
                    assert_int_equal(img.pixels[p * oc + k], want[p * c + k]);
            hdb_image_free(&img);
            free(b.p);
            free(raw);
            free(want);
        }
    }
    /* An arbitrary 16-bit value rounds to the nearest 8-bit one. */
    unsigned char raw[8 * 8 * 2];
    for (int i = 0; i < 64; i++) {
        raw[2 * i] = 0x12;
        raw[2 * i + 1] = 0xf0; /* 0x12f0 = 4848 -> 4848 * 255 / 65535 = 18.86 -> 19 */
    }
    png_opts o = {.ctype = PNG_COLOR_TYPE_GRAY, .depth = 16, .level = -1};
    buf b = png_make(8, 8, &o, raw, 16);
    hdb_image img;
    assert_int_equal(decode(&b, &img, err), HDB_OK);
    assert_int_equal(img.pixels[0], 19);
    hdb_image_free(&img);
    free(b.p);
}

/* ---- JPEG decoding ------------------------------------------------------------------------ */

static void test_jpeg_gray_rgb(void **state) {
    (void)state;
    char err[256];
    const uint32_t w = 40, h = 24;
    for (int progressive = 0; progressive <= 1; progressive++) {
        unsigned char *g = malloc(w * h);
        for (uint32_t y = 0; y < h; y++)
            for (uint32_t x = 0; x < w; x++)
                g[y * w + x] = (unsigned char)(x * 4 + y * 3);
        buf b = jpeg_make(w, h, 1, JCS_GRAYSCALE, JCS_UNKNOWN, g, 100, progressive);
        hdb_image img;
        assert_int_equal(decode(&b, &img, err), HDB_OK);
        assert_int_equal(img.width, w);
        assert_int_equal(img.height, h);
        assert_int_equal(img.channels, 1);
        for (size_t i = 0; i < (size_t)w * h; i++)
            assert_true(abs(img.pixels[i] - g[i]) <= 4);
        hdb_image_free(&img);
        free(b.p);
        free(g);

        unsigned char *rgb = malloc(w * h * 3);
        for (uint32_t y = 0; y < h; y++)
            for (uint32_t x = 0; x < w; x++) {
                rgb[(y * w + x) * 3] = (unsigned char)(x * 6);
                rgb[(y * w + x) * 3 + 1] = (unsigned char)(y * 10);
                rgb[(y * w + x) * 3 + 2] = 128;
            }
        b = jpeg_make(w, h, 3, JCS_RGB, JCS_UNKNOWN, rgb, 100, progressive);
        assert_int_equal(decode(&b, &img, err), HDB_OK);
        assert_int_equal(img.channels, 3);
        for (size_t i = 0; i < (size_t)w * h * 3; i++)
            assert_true(abs(img.pixels[i] - rgb[i]) <= 6);
        hdb_image_free(&img);
        free(b.p);
        free(rgb);
    }
}

static void test_jpeg_cmyk_refused(void **state) {
    (void)state;
    char err[256];
    unsigned char *px = pattern(16, 16, 4, 1);
    J_COLOR_SPACE spaces[] = {JCS_CMYK, JCS_YCCK};
    for (int i = 0; i < 2; i++) {
        buf b = jpeg_make(16, 16, 4, JCS_CMYK, spaces[i], px, 90, 0);
        hdb_image img;
        assert_int_equal(decode(&b, &img, err), HDB_EINVAL);
        assert_string_equal(err, "image: CMYK JPEG images are not supported");
        assert_null(img.pixels);
        free(b.p);
    }
    free(px);
}

/* A progressive JPEG with 1 + 2 * 63 * 3 = 379 scans (each AC coefficient of each component
 * in its own band, first pass and refinement): refused before it can cost 379 passes over a
 * large image. Real encoders write about 10 scans. */
static void test_jpeg_too_many_scans(void **state) {
    (void)state;
    char err[256];
    const uint32_t w = 16, h = 16;
    unsigned char *px = pattern(w, h, 3, 4);
    jpeg_scan_info scans[1 + 2 * 63 * 3];
    int n = 0;
    scans[n++] = (jpeg_scan_info){.comps_in_scan = 3, .component_index = {0, 1, 2}};
    for (int pass = 0; pass < 2; pass++)
        for (int c = 0; c < 3; c++)
            for (int k = 1; k <= 63; k++)
                scans[n++] = (jpeg_scan_info){.comps_in_scan = 1,
                                              .component_index = {c},
                                              .Ss = k,
                                              .Se = k,
                                              .Ah = pass,
                                              .Al = 1 - pass};
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr jerr;
    unsigned char *out = NULL;
    unsigned long outlen = 0;
    c.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&c);
    jpeg_mem_dest(&c, &out, &outlen);
    c.image_width = w;
    c.image_height = h;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    c.scan_info = scans;
    c.num_scans = n;
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < h) {
        JSAMPROW row = px + (size_t)c.next_scanline * w * 3;
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    hdb_image img;
    assert_int_equal(hdb_image_decode(out, outlen, &LIM, &img, err, sizeof err), HDB_EINVAL);
    assert_string_equal(err, "image: damaged JPEG (more than 256 progressive scans)");
    assert_null(img.pixels);
    free(out);
    free(px);
}

/* Two components (no colour space libjpeg can name): refused. */
static void test_jpeg_unknown_colour_space(void **state) {
    (void)state;
    char err[256];
    unsigned char *px = pattern(16, 16, 2, 1);
    buf b = jpeg_make(16, 16, 2, JCS_UNKNOWN, JCS_UNKNOWN, px, 90, 0);
    hdb_image img;
    assert_int_equal(decode(&b, &img, err), HDB_EINVAL);
    assert_string_equal(err, "image: unsupported JPEG colour space (2 components)");
    free(b.p);
    free(px);
}

/* ---- refusals ----------------------------------------------------------------------------- */

static void test_not_an_image(void **state) {
    (void)state;
    char err[256];
    hdb_image img;
    assert_int_equal(hdb_image_decode("", 0, &LIM, &img, err, sizeof err), HDB_EINVAL);
    assert_string_equal(err, "image: empty");
    assert_int_equal(hdb_image_decode(NULL, 0, &LIM, &img, err, sizeof err), HDB_EINVAL);
    assert_int_equal(hdb_image_decode(NULL, 5, &LIM, &img, err, sizeof err), HDB_EINVAL);
    const char *bad[] = {"GIF89a\x10\x00\x10\x00\x80\x00\x00",
                         "GIF87a",
                         "BM\x36\x00\x00\x00",
                         "\x89PNG",
                         "\xff\xd8",
                         "\x89PNG\r\n\x1a",
                         "RIFF\0\0\0\0WEBP",
                         "x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(hdb_image_decode(bad[i], strlen(bad[i]) + 1, &LIM, &img, err, sizeof err),
                         HDB_EINVAL);
        assert_string_equal(err, "image: not a PNG or JPEG file");
        assert_null(img.pixels);
    }
    unsigned char rnd[4096];
    srand(7);
    for (int t = 0; t < 200; t++) {
        for (size_t i = 0; i < sizeof rnd; i++)
            rnd[i] = (unsigned char)rand();
        size_t n = 1 + (size_t)rand() % sizeof rnd;
        assert_int_equal(hdb_image_decode(rnd, n, &LIM, &img, err, sizeof err), HDB_EINVAL);
    }
    /* Random bytes behind a valid magic. */
    for (int t = 0; t < 200; t++) {
        for (size_t i = 0; i < sizeof rnd; i++)
            rnd[i] = (unsigned char)rand();
        if (t & 1)
            memcpy(rnd, "\x89PNG\r\n\x1a\n", 8);
        else
            memcpy(rnd, "\xff\xd8\xff", 3);
        size_t n = 3 + (size_t)rand() % (sizeof rnd - 3);
        assert_int_equal(hdb_image_decode(rnd, n, &LIM, &img, err, sizeof err), HDB_EINVAL);
        assert_true(strncmp(err, "image: ", 7) == 0);
    }
    /* NULL err buffer is fine. */
    assert_int_equal(hdb_image_decode("x", 1, &LIM, &img, NULL, 0), HDB_EINVAL);
}

static void test_max_bytes(void **state) {
    (void)state;
    char err[256];
    unsigned char *raw = pattern(16, 16, 3, 0);
    png_opts o = {.ctype = PNG_COLOR_TYPE_RGB, .depth = 8, .level = 0};
    buf b = png_make(16, 16, &o, raw, 48);
    hdb_image_limits lim = LIM;
    lim.max_bytes = b.n - 1;
    hdb_image img;
    assert_int_equal(hdb_image_decode(b.p, b.n, &lim, &img, err, sizeof err), HDB_ELIMIT);
    assert_non_null(strstr(err, "bytes exceeds the limit"));
    lim.max_bytes = b.n;
    assert_int_equal(hdb_image_decode(b.p, b.n, &lim, &img, err, sizeof err), HDB_OK);
    hdb_image_free(&img);
    free(b.p);
    free(raw);
}

/* Every prefix of a valid file is refused as damaged; nothing leaks (ASan) or crashes. */
static void test_truncated_everywhere(void **state) {
    (void)state;
    char err[256];
    unsigned char *raw = pattern(32, 20, 3, 3);
    png_opts o = {.ctype = PNG_COLOR_TYPE_RGB, .depth = 8, .level = -1};
    png_opts oi = {.ctype = PNG_COLOR_TYPE_RGB, .depth = 8, .level = -1, .interlace = 1};
    buf files[4];
    files[0] = png_make(32, 20, &o, raw, 96);
    files[1] = png_make(32, 20, &oi, raw, 96);
    files[2] = jpeg_make(32, 20, 3, JCS_RGB, JCS_UNKNOWN, raw, 85, 0);
    files[3] = jpeg_make(32, 20, 3, JCS_RGB, JCS_UNKNOWN, raw, 85, 1);
    for (int f = 0; f < 4; f++) {
        hdb_image img;
        assert_int_equal(decode(&files[f], &img, err), HDB_OK);
        hdb_image_free(&img);
        for (size_t cut = 0; cut < files[f].n; cut++) {
            int rc = hdb_image_decode(files[f].p, cut, &LIM, &img, err, sizeof err);
            if (rc != HDB_EINVAL)
                fail_msg("file %d cut at %zu/%zu: rc %d (%s)", f, cut, files[f].n, rc, err);
            assert_null(img.pixels);
            if (cut >= 8) {
                if (f < 2)
                    assert_non_null(strstr(err, "image: damaged or truncated PNG ("));
                else
                    assert_non_null(strstr(err, "image: damaged or truncated JPEG ("));
            }
        }
        free(files[f].p);
    }
    free(raw);
}

static void test_png_damaged_idat(void **state) {
    (void)state;
    char err[256];
    unsigned char *raw = pattern(16, 16, 3, 9);
    png_opts o = {.ctype = PNG_COLOR_TYPE_RGB, .depth = 8, .level = 0}; /* stored deflate */
    buf b = png_make(16, 16, &o, raw, 48);
    size_t idat = png_find_chunk(&b, "IDAT");
    assert_true(idat > 0);
    uint32_t n = (uint32_t)b.p[idat] << 24 | (uint32_t)b.p[idat + 1] << 16 |
                 (uint32_t)b.p[idat + 2] << 8 | b.p[idat + 3];
    hdb_image img;

    /* A wrong CRC on intact data: CRC error. */
    b.p[idat + 8 + n] ^= 0x01;
    assert_int_equal(decode(&b, &img, err), HDB_EINVAL);
    assert_string_equal(err, "image: damaged or truncated PNG (IDAT: CRC error)");
    assert_null(img.pixels);
    b.p[idat + 8 + n] ^= 0x01;

    /* A flipped data byte with the old CRC: zlib sees the damage first. */
    b.p[idat + 8 + n / 2] ^= 0x55;
    assert_int_equal(decode(&b, &img, err), HDB_EINVAL);
    assert_non_null(strstr(err, "image: damaged or truncated PNG ("));
    assert_null(img.pixels);

    /* The same byte with a recomputed CRC: the zlib Adler-32 check fails (libpng treats that
     * as a benign error by default; here it must be fatal, or the damaged pixels would pass). */
    put_be32(b.p + idat + 8 + n, crc32_of(b.p + idat + 4, 4 + n));
    assert_int_equal(decode(&b, &img, err), HDB_EINVAL);
    assert_string_equal(err, "image: damaged or truncated PNG (IDAT: incorrect data check)");
    assert_null(img.pixels);

    /* Undo the damage (CRC recomputed again): the file decodes; then break the IHDR CRC. */
    b.p[idat + 8 + n / 2] ^= 0x55;
    put_be32(b.p + idat + 8 + n, crc32_of(b.p + idat + 4, 4 + n));
    assert_int_equal(decode(&b, &img, err), HDB_OK); /* repaired */
    hdb_image_free(&img);
    b.p[8 + 8 + 13] ^= 1; /* IHDR CRC */
    assert_int_equal(decode(&b, &img, err), HDB_EINVAL);
    assert_string_equal(err, "image: damaged or truncated PNG (IHDR: CRC error)");
    free(b.p);
    free(raw);
}

static void test_too_small(void **state) {
    (void)state;
    char err[256];
    unsigned char px[8 * 8 * 3];
    memset(px, 77, sizeof px);
    png_opts o = {.ctype = PNG_COLOR_TYPE_RGB, .depth = 8, .level = -1};
    hdb_image img;

    buf b = png_make(1, 1, &o, px, 3);
    assert_int_equal(decode(&b, &img, err), HDB_EINVAL);
    assert_string_equal(err, "image: 1x1 is smaller than the minimum of 8x8");
    free(b.p);
    b = jpeg_make(1, 1, 3, JCS_RGB, JCS_UNKNOWN, px, 90, 0);
    assert_int_equal(decode(&b, &img, err), HDB_EINVAL);
    assert_string_equal(err, "image: 1x1 is smaller than the minimum of 8x8");
    free(b.p);
    b = png_make(8, 7, &o, px, 24);
    assert_int_equal(decode(&b, &img, err), HDB_EINVAL);
    assert_string_equal(err, "image: 8x7 is smaller than the minimum of 8x8");
    free(b.p);
    b = png_make(8, 8, &o, px, 24);
    assert_int_equal(decode(&b, &img, err), HDB_OK);
    hdb_image_free(&img);
    free(b.p);
}

static void fail_on_oom(size_t size) {
    fail_msg("tried to allocate %zu bytes", size);
    abort();
}

#ifndef HAVE_ASAN
static void child_oom(size_t size) {
    (void)size;
    _exit(20);
}
#endif

/* Runs fn in a child whose address space is capped near its current size (not under ASan,
 * whose shadow memory needs the room), so any large allocation makes it abort. */
static void run_with_small_address_space(void (*fn)(void)) {
#ifdef HAVE_ASAN
    fn();
#else
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        long vm_kb = 0;
        FILE *f = fopen("/proc/self/status", "r");
        char line[256];
        while (f && fgets(line, sizeof line, f))
            if (sscanf(line, "VmSize: %ld kB", &vm_kb) == 1) break;
        if (f) fclose(f);
        struct rlimit rl = {.rlim_cur = (rlim_t)(vm_kb + 256 * 1024) * 1024,
                            .rlim_max = RLIM_INFINITY};
        if (vm_kb == 0 || setrlimit(RLIMIT_AS, &rl) != 0) _exit(3);
        hdb_mem_set_oom_hook(child_oom);
        void *probe = malloc((size_t)1 << 30); /* proves the cap works */
        if (probe != NULL) _exit(21);
        fn();
        _exit(0);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
#endif
}

static void huge_png_body(void) {
    char err[256];
    hdb_image img;
    hdb_image_limits big = LIM;
    big.max_side = 1000000;
    big.max_pixels = 8u << 20;
    buf b = png_header_only(100000, 100000); /* 30 GB of pixels in 45 bytes */
    if (hdb_image_decode(b.p, b.n, &LIM, &img, err, sizeof err) != HDB_ELIMIT) _exit(1);
    if (strcmp(err, "image: 100000x100000 exceeds the limit of 4096 pixels per side")) _exit(2);
    if (hdb_image_decode(b.p, b.n, &big, &img, err, sizeof err) != HDB_ELIMIT) _exit(4);
    if (!strstr(err, "above the limit of")) _exit(5);
    free(b.p);
    b = png_header_only(4096, 4096); /* each side fine, 16M pixels above max_pixels */
    if (hdb_image_decode(b.p, b.n, &LIM, &img, err, sizeof err) != HDB_ELIMIT) _exit(6);
    if (strcmp(err, "image: 4096x4096 has 16777216 pixels, above the limit of 4194304")) _exit(7);
    free(b.p);
}

static void huge_jpeg_body(void) {
    char err[256];
    hdb_image img;
    unsigned char px[16 * 16];
    memset(px, 9, sizeof px);
    buf b = jpeg_make(16, 16, 1, JCS_GRAYSCALE, JCS_UNKNOWN, px, 90, 0);
    size_t sof = 0;
    for (size_t i = 2; i + 9 < b.n; i++)
        if (b.p[i] == 0xff && b.p[i + 1] == 0xc0) {
            sof = i;
            break;
        }
    if (sof == 0) _exit(8);
    /* FFC0, length(2), precision(1), height(2), width(2) */
    b.p[sof + 5] = 65000 >> 8;
    b.p[sof + 6] = 65000 & 0xff;
    b.p[sof + 7] = 65000 >> 8;
    b.p[sof + 8] = 65000 & 0xff;
    if (hdb_image_decode(b.p, b.n, &LIM, &img, err, sizeof err) != HDB_ELIMIT) _exit(9);
    if (strcmp(err, "image: 65000x65000 exceeds the limit of 4096 pixels per side")) _exit(10);
    /* Above libjpeg's own maximum (65500): still a limit, not "damaged". */
    hdb_image_limits big = LIM;
    big.max_side = 1u << 20;
    big.max_pixels = UINT64_MAX;
    b.p[sof + 5] = b.p[sof + 6] = b.p[sof + 7] = b.p[sof + 8] = 0xff;
    if (hdb_image_decode(b.p, b.n, &big, &img, err, sizeof err) != HDB_ELIMIT) _exit(11);
    free(b.p);
}

static void test_huge_declared_size(void **state) {
    (void)state;
    hdb_mem_set_oom_hook(fail_on_oom);
    run_with_small_address_space(huge_png_body);
    run_with_small_address_space(huge_jpeg_body);
    /* Widths above 2^31 - 1 are invalid PNG, refused by libpng. */
    char err[256];
    hdb_image img;
    buf b = png_header_only(0x80000000u, 16);
    assert_int_equal(hdb_image_decode(b.p, b.n, &LIM, &img, err, sizeof err), HDB_EINVAL);
    free(b.p);
    b = png_header_only(0, 16);
    assert_int_equal(hdb_image_decode(b.p, b.n, &LIM, &img, err, sizeof err), HDB_EINVAL);
    free(b.p);
    hdb_mem_set_oom_hook(NULL);
}

/* Random byte mutations of valid files: any result but a crash, a leak or a partial image. */
static void test_mutations(void **state) {
    (void)state;
    char err[256];
    unsigned char *raw = pattern(24, 16, 3, 11);
    png_opts o = {.ctype = PNG_COLOR_TYPE_RGB, .depth = 8, .level = -1};
    buf files[3];
    files[0] = png_make(24, 16, &o, raw, 72);
    files[1] = jpeg_make(24, 16, 3, JCS_RGB, JCS_UNKNOWN, raw, 80, 0);
    files[2] = jpeg_make(24, 16, 3, JCS_RGB, JCS_UNKNOWN, raw, 80, 1);
    srand(12345);
    hdb_image_spec spec = {.width = 28,
                           .height = 28,
                           .channels = 1,
                           .resize = HDB_RESIZE_FIT,
                           .mean = {0.5f},
                           .std = {0.5f}};
    float out[28 * 28];
    for (int f = 0; f < 3; f++) {
        unsigned char *m = malloc(files[f].n);
        for (int t = 0; t < 1500; t++) {
            memcpy(m, files[f].p, files[f].n);
            int flips = 1 + rand() % 4;
            for (int k = 0; k < flips; k++) {
                size_t at = 3 + (size_t)rand() % (files[f].n - 3);
                m[at] = (unsigned char)rand();
            }
            int rc = hdb_image_to_tensor(m, files[f].n, &LIM, &spec, out, err, sizeof err);
            assert_true(rc == HDB_OK || rc == HDB_EINVAL || rc == HDB_ELIMIT);
            if (rc != HDB_OK) assert_true(strncmp(err, "image: ", 7) == 0);
        }
        free(m);
        free(files[f].p);
    }
    free(raw);
}

/* ---- spec --------------------------------------------------------------------------------- */

static hdb_image_spec good_spec(void) {
    hdb_image_spec s = {.width = 28,
                        .height = 28,
                        .channels = 3,
                        .resize = HDB_RESIZE_STRETCH,
                        .mean = {0.485f, 0.456f, 0.406f},
                        .std = {0.229f, 0.224f, 0.225f}};
    return s;
}

static void test_spec_check(void **state) {
    (void)state;
    char err[256];
    hdb_image_spec s = good_spec();
    assert_int_equal(hdb_image_spec_check(&s, err, sizeof err), HDB_OK);
    s.channels = 1;
    s.mean[1] = NAN; /* unused channel: not checked */
    s.std[2] = 0;
    assert_int_equal(hdb_image_spec_check(&s, err, sizeof err), HDB_OK);
    s.width = 4096;
    s.height = 1;
    assert_int_equal(hdb_image_spec_check(&s, err, sizeof err), HDB_OK);

    s = good_spec();
    s.width = 0;
    assert_int_equal(hdb_image_spec_check(&s, err, sizeof err), HDB_EINVAL);
    assert_string_equal(err, "spec.input.image.width: must be 1..4096 (got 0)");
    s = good_spec();
    s.height = 4097;
    assert_int_equal(hdb_image_spec_check(&s, err, sizeof err), HDB_EINVAL);
    assert_string_equal(err, "spec.input.image.height: must be 1..4096 (got 4097)");
    s = good_spec();
    s.channels = 2;
    assert_int_equal(hdb_image_spec_check(&s, err, sizeof err), HDB_EINVAL);
    assert_string_equal(err, "spec.input.image.channels: must be 1 or 3 (got 2)");
    s = good_spec();
    s.resize = (hdb_resize_mode)0;
    assert_int_equal(hdb_image_spec_check(&s, err, sizeof err), HDB_EINVAL);
    assert_true(strncmp(err, "spec.input.image.resize: unknown mode 0", 39) == 0);
    s = good_spec();
    s.mean[2] = INFINITY;
    assert_int_equal(hdb_image_spec_check(&s, err, sizeof err), HDB_EINVAL);
    assert_string_equal(err, "spec.input.image.mean[2]: must be finite");
    s = good_spec();
    s.std[1] = 0;
    assert_int_equal(hdb_image_spec_check(&s, err, sizeof err), HDB_EINVAL);
    assert_true(strncmp(err, "spec.input.image.std[1]: must be finite and > 0", 47) == 0);
    s = good_spec();
    s.std[0] = -1;
    assert_int_equal(hdb_image_spec_check(&s, err, sizeof err), HDB_EINVAL);
    s = good_spec();
    s.std[0] = NAN;
    assert_int_equal(hdb_image_spec_check(&s, err, sizeof err), HDB_EINVAL);
    assert_int_equal(hdb_image_spec_check(NULL, err, sizeof err), HDB_EINVAL);

    /* to_input and to_tensor check the spec before anything else. */
    s = good_spec();
    s.channels = 4;
    unsigned char px[64] = {0};
    hdb_image img = {.width = 8, .height = 8, .channels = 1, .pixels = px};
    float out[1];
    assert_int_equal(hdb_image_to_input(&img, &s, out, err, sizeof err), HDB_EINVAL);
    assert_true(strncmp(err, "spec.input.image.channels", 25) == 0);
    assert_int_equal(hdb_image_to_tensor("junk", 4, &LIM, &s, out, err, sizeof err), HDB_EINVAL);
    assert_true(strncmp(err, "spec.input.image.channels", 25) == 0);
}

/* ---- to_input numerics -------------------------------------------------------------------- */

static hdb_image make_img(uint32_t w, uint32_t h, uint32_t c, const unsigned char *px) {
    hdb_image img = {.width = w, .height = h, .channels = c};
    img.pixels = hdb_malloc((size_t)w * h * c);
    memcpy(img.pixels, px, (size_t)w * h * c);
    return img;
}

static hdb_image_spec plain_spec(uint32_t w, uint32_t h, uint32_t c, hdb_resize_mode m) {
    hdb_image_spec s = {
        .width = w, .height = h, .channels = c, .resize = m, .mean = {0, 0, 0}, .std = {1, 1, 1}};
    return s;
}

#define NEAR(a, b) assert_float_equal((a), (b), 1e-5)

static void test_constant_image(void **state) {
    (void)state;
    char err[256];
    const uint32_t w = 50, h = 30;
    unsigned char *px = malloc(w * h * 3);
    memset(px, 100, w * h * 3);
    hdb_image img = make_img(w, h, 3, px);
    hdb_resize_mode modes[] = {HDB_RESIZE_STRETCH, HDB_RESIZE_CROP};
    uint32_t sizes[][2] = {{7, 9}, {50, 30}, {200, 120}, {3, 3}, {1, 1}, {17, 5}};
    for (int m = 0; m < 2; m++)
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            hdb_image_spec spec = {.width = sizes[s][0],
                                   .height = sizes[s][1],
                                   .channels = 3,
                                   .resize = modes[m],
                                   .mean = {0.5f, 0.25f, 0.0f},
                                   .std = {0.25f, 0.5f, 2.0f}};
            size_t plane = (size_t)spec.width * spec.height;
            float *out = malloc(plane * 3 * sizeof *out);
            assert_int_equal(hdb_image_to_input(&img, &spec, out, err, sizeof err), HDB_OK);
            for (uint32_t c = 0; c < 3; c++) {
                float want = (100.0f / 255.0f - spec.mean[c]) / spec.std[c];
                for (size_t p = 0; p < plane; p++)
                    assert_float_equal(out[c * plane + p], want, 1e-4);
            }
            free(out);
        }
    hdb_image_free(&img);
    free(px);
}

static void test_checkerboard(void **state) {
    (void)state;
    char err[256];
    /* 2x2 -> 4x4 bilinear with aligned centres: source coordinates -0.25 (clamped to 0), 0.25,
     * 0.75, 1.25 (clamped to 1) on each axis; f(u, v) = 255 (u + v - 2uv). */
    const unsigned char cb[4] = {0, 255, 255, 0};
    hdb_image img = make_img(2, 2, 1, cb);
    hdb_image_spec s = plain_spec(4, 4, 1, HDB_RESIZE_STRETCH);
    float out[16];
    assert_int_equal(hdb_image_to_input(&img, &s, out, err, sizeof err), HDB_OK);
    const double t[4] = {0, 0.25, 0.75, 1};
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 4; x++) {
            double u = t[x], v = t[y];
            NEAR(out[y * 4 + x], (float)((u + v - 2 * u * v)));
        }
    /* 2x2 -> 1x1 (factor 2: bilinear at the centre) = the mean. */
    s = plain_spec(1, 1, 1, HDB_RESIZE_STRETCH);
    assert_int_equal(hdb_image_to_input(&img, &s, out, err, sizeof err), HDB_OK);
    NEAR(out[0], 0.5f);
    /* Same size: identity. */
    s = plain_spec(2, 2, 1, HDB_RESIZE_STRETCH);
    assert_int_equal(hdb_image_to_input(&img, &s, out, err, sizeof err), HDB_OK);
    for (int i = 0; i < 4; i++)
        NEAR(out[i], cb[i] / 255.0f);
    hdb_image_free(&img);

    /* 16x16 one-pixel checkerboard -> 4x4 (factor 4: area average) = exactly grey; plain
     * bilinear would alias to 0 or 1. */
    unsigned char big[256];
    for (int y = 0; y < 16; y++)
        for (int x = 0; x < 16; x++)
            big[y * 16 + x] = ((x ^ y) & 1) ? 255 : 0;
    img = make_img(16, 16, 1, big);
    s = plain_spec(4, 4, 1, HDB_RESIZE_STRETCH);
    assert_int_equal(hdb_image_to_input(&img, &s, out, err, sizeof err), HDB_OK);
    for (int i = 0; i < 16; i++)
        NEAR(out[i], 0.5f);
    /* 16x16 -> 3x3 (factor 5.33, fractional coverage): still close to grey, and the result is
     * the same on every run. */
    s = plain_spec(3, 3, 1, HDB_RESIZE_STRETCH);
    float a[9], b[9];
    assert_int_equal(hdb_image_to_input(&img, &s, a, err, sizeof err), HDB_OK);
    assert_int_equal(hdb_image_to_input(&img, &s, b, err, sizeof err), HDB_OK);
    assert_memory_equal(a, b, sizeof a);
    for (int i = 0; i < 9; i++)
        assert_float_equal(a[i], 0.5f, 0.05f);
    hdb_image_free(&img);

    /* Area averaging of a ramp: 8 -> 2 averages each half exactly. */
    unsigned char ramp[8] = {0, 10, 20, 30, 40, 50, 60, 70};
    img = make_img(8, 1, 1, ramp);
    s = plain_spec(2, 1, 1, HDB_RESIZE_STRETCH);
    assert_int_equal(hdb_image_to_input(&img, &s, out, err, sizeof err), HDB_OK);
    NEAR(out[0], 15.0f / 255.0f);
    NEAR(out[1], 55.0f / 255.0f);
    hdb_image_free(&img);
}

static void test_fit_padding(void **state) {
    (void)state;
    char err[256];
    unsigned char white[8 * 4 * 3];
    memset(white, 255, sizeof white);
    float out[3 * 18];

    /* Wide 8x4 into 4x4: content 4x2 in rows 1..2, rows 0 and 3 are black. */
    hdb_image img = make_img(8, 4, 3, white);
    hdb_image_spec s = plain_spec(4, 4, 3, HDB_RESIZE_FIT);
    assert_int_equal(hdb_image_to_input(&img, &s, out, err, sizeof err), HDB_OK);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < 4; y++)
            for (int x = 0; x < 4; x++)
                NEAR(out[c * 16 + y * 4 + x], (y == 1 || y == 2) ? 1.0f : 0.0f);
    /* Padding is black before normalisation: (0 - mean) / std. */
    s.mean[0] = 0.5f;
    s.std[0] = 0.5f;
    assert_int_equal(hdb_image_to_input(&img, &s, out, err, sizeof err), HDB_OK);
    NEAR(out[0], -1.0f);
    NEAR(out[1 * 4 + 1], 1.0f);
    hdb_image_free(&img);

    /* Tall 4x8 into 4x4: columns 1..2. */
    img = make_img(4, 8, 3, white);
    s = plain_spec(4, 4, 1, HDB_RESIZE_FIT);
    assert_int_equal(hdb_image_to_input(&img, &s, out, err, sizeof err), HDB_OK);
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 4; x++)
            NEAR(out[y * 4 + x], (x == 1 || x == 2) ? 1.0f : 0.0f);
    hdb_image_free(&img);

    /* Odd padding: 10x4 into 5x5 -> content 5x2 at rows 1..2, one row above, two below. */
    unsigned char w10[40];
    memset(w10, 255, sizeof w10);
    img = make_img(10, 4, 1, w10);
    s = plain_spec(5, 5, 1, HDB_RESIZE_FIT);
    assert_int_equal(hdb_image_to_input(&img, &s, out, err, sizeof err), HDB_OK);
    for (int y = 0; y < 5; y++)
        for (int x = 0; x < 5; x++)
            NEAR(out[y * 5 + x], (y == 1 || y == 2) ? 1.0f : 0.0f);
    hdb_image_free(&img);

    /* Same aspect ratio: no padding at all. */
    img = make_img(8, 4, 3, white);
    s = plain_spec(6, 3, 3, HDB_RESIZE_FIT);
    assert_int_equal(hdb_image_to_input(&img, &s, out, err, sizeof err), HDB_OK);
    for (int i = 0; i < 3 * 18; i++)
        NEAR(out[i], 1.0f);
    hdb_image_free(&img);
}

static void test_crop_centre(void **state) {
    (void)state;
    char err[256];
    float out[16];
    /* 8x4: columns 2..5 are 200, the rest 0. CROP to 4x4 keeps exactly the centre 4x4. */
    unsigned char px[32];
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 8; x++)
            px[y * 8 + x] = (x >= 2 && x <= 5) ? 200 : 0;
    hdb_image img = make_img(8, 4, 1, px);
    hdb_image_spec s = plain_spec(4, 4, 1, HDB_RESIZE_CROP);
    assert_int_equal(hdb_image_to_input(&img, &s, out, err, sizeof err), HDB_OK);
    for (int i = 0; i < 16; i++)
        NEAR(out[i], 200.0f / 255.0f);
    /* STRETCH on the same image sees the black borders. */
    s.resize = HDB_RESIZE_STRETCH;
    assert_int_equal(hdb_image_to_input(&img, &s, out, err, sizeof err), HDB_OK);
    NEAR(out[0], 0.0f);
    hdb_image_free(&img);

    /* Tall 4x8: rows 2..5 are kept; each row has its own value. */
    unsigned char tall[32];
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 4; x++)
            tall[y * 4 + x] = (unsigned char)(y * 30);
    img = make_img(4, 8, 1, tall);
    s = plain_spec(4, 4, 1, HDB_RESIZE_CROP);
    assert_int_equal(hdb_image_to_input(&img, &s, out, err, sizeof err), HDB_OK);
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 4; x++)
            NEAR(out[y * 4 + x], (float)((y + 2) * 30) / 255.0f);
    /* CROP downscaled by 2: 4x8 -> 2x2 keeps rows 2..5, i.e. bilinear at rows 2.5 and 4.5. */
    s = plain_spec(2, 2, 1, HDB_RESIZE_CROP);
    assert_int_equal(hdb_image_to_input(&img, &s, out, err, sizeof err), HDB_OK);
    NEAR(out[0], 75.0f / 255.0f);
    NEAR(out[2], 135.0f / 255.0f);
    hdb_image_free(&img);
}

/* Extreme aspect ratios and sizes in every mode: values stay within 0..255 and every output
 * element is written (the buffer starts as NaN). */
static void test_extreme_shapes(void **state) {
    (void)state;
    char err[256];
    uint32_t shapes[][2] = {{4096, 1}, {1, 4096}, {3000, 7}, {1, 1}, {2, 3}, {1023, 1025}};
    uint32_t specs[][2] = {{28, 28}, {32, 32}, {1, 1}, {4096, 1}, {1, 4096}, {300, 5}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        uint32_t w = shapes[i][0], h = shapes[i][1];
        unsigned char *px = pattern(w, h, 3, (uint32_t)i);
        hdb_image img = make_img(w, h, 3, px);
        for (size_t j = 0; j < sizeof specs / sizeof specs[0]; j++)
            for (int m = HDB_RESIZE_STRETCH; m <= HDB_RESIZE_CROP; m++) {
                hdb_image_spec s = plain_spec(specs[j][0], specs[j][1], 3, (hdb_resize_mode)m);
                size_t n = (size_t)s.width * s.height * 3;
                float *out = malloc(n * sizeof *out);
                for (size_t k = 0; k < n; k++)
                    out[k] = NAN;
                assert_int_equal(hdb_image_to_input(&img, &s, out, err, sizeof err), HDB_OK);
                for (size_t k = 0; k < n; k++)
                    if (!(out[k] >= -1e-5f && out[k] <= 1.0f + 1e-5f))
                        fail_msg("%ux%u -> %ux%u mode %d: out[%zu] = %g", w, h, s.width, s.height,
                                 m, k, (double)out[k]);
                free(out);
            }
        hdb_image_free(&img);
        free(px);
    }
}

static void test_channels_and_layout(void **state) {
    (void)state;
    char err[256];
    /* Gray -> RGB: every plane is the gray value, normalised per channel. */
    unsigned char g[6] = {0, 51, 102, 153, 204, 255};
    hdb_image img = make_img(3, 2, 1, g);
    hdb_image_spec s = {.width = 3,
                        .height = 2,
                        .channels = 3,
                        .resize = HDB_RESIZE_STRETCH,
                        .mean = {0.1f, 0.2f, 0.3f},
                        .std = {0.5f, 0.25f, 2.0f}};
    float out[18];
    assert_int_equal(hdb_image_to_input(&img, &s, out, err, sizeof err), HDB_OK);
    for (int c = 0; c < 3; c++)
        for (int p = 0; p < 6; p++)
            NEAR(out[c * 6 + p], (g[p] / 255.0f - s.mean[c]) / s.std[c]);
    hdb_image_free(&img);

    /* RGB -> gray: BT.601 luma. */
    unsigned char rgb[3 * 6];
    for (int p = 0; p < 6; p++) {
        rgb[p * 3] = 200;
        rgb[p * 3 + 1] = 100;
        rgb[p * 3 + 2] = (unsigned char)(p * 50);
    }
    img = make_img(3, 2, 3, rgb);
    s = plain_spec(3, 2, 1, HDB_RESIZE_STRETCH);
    assert_int_equal(hdb_image_to_input(&img, &s, out, err, sizeof err), HDB_OK);
    for (int p = 0; p < 6; p++)
        NEAR(out[p], (0.299f * 200 + 0.587f * 100 + 0.114f * (float)(p * 50)) / 255.0f);
    hdb_image_free(&img);

    /* CHW: out[c][y][x] = pixel (x, y) channel c, for distinct values everywhere. */
    unsigned char px[4 * 3 * 3];
    for (int i = 0; i < 36; i++)
        px[i] = (unsigned char)(i * 7);
    img = make_img(4, 3, 3, px);
    s = plain_spec(4, 3, 3, HDB_RESIZE_STRETCH);
    float chw[36];
    assert_int_equal(hdb_image_to_input(&img, &s, chw, err, sizeof err), HDB_OK);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < 3; y++)
            for (int x = 0; x < 4; x++)
                NEAR(chw[c * 12 + y * 4 + x], px[(y * 4 + x) * 3 + c] / 255.0f);
    hdb_image_free(&img);

    /* Bad images. */
    hdb_image none = {0};
    assert_int_equal(hdb_image_to_input(&none, &s, chw, err, sizeof err), HDB_EINVAL);
    assert_int_equal(hdb_image_to_input(NULL, &s, chw, err, sizeof err), HDB_EINVAL);
    hdb_image_free(NULL);
}

static void test_to_tensor(void **state) {
    (void)state;
    char err[256];
    unsigned char *raw = pattern(64, 48, 3, 2);
    png_opts o = {.ctype = PNG_COLOR_TYPE_RGB, .depth = 8, .level = -1};
    buf b = png_make(64, 48, &o, raw, 192);
    hdb_image_spec s = good_spec();
    float *a = malloc(3 * 28 * 28 * sizeof *a), *c = malloc(3 * 28 * 28 * sizeof *c);
    assert_int_equal(hdb_image_to_tensor(b.p, b.n, &LIM, &s, a, err, sizeof err), HDB_OK);
    hdb_image img;
    assert_int_equal(decode(&b, &img, err), HDB_OK);
    assert_int_equal(hdb_image_to_input(&img, &s, c, err, sizeof err), HDB_OK);
    assert_memory_equal(a, c, 3 * 28 * 28 * sizeof *a);
    hdb_image_free(&img);
    /* Decode errors come through unchanged. */
    assert_int_equal(hdb_image_to_tensor(b.p, b.n - 5, &LIM, &s, a, err, sizeof err), HDB_EINVAL);
    assert_true(strncmp(err, "image: damaged or truncated PNG", 31) == 0);
    free(a);
    free(c);
    free(b.p);
    free(raw);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_png_gray_rgb_rgba),
        cmocka_unit_test(test_png_palette_and_low_depth),
        cmocka_unit_test(test_png_16bit),
        cmocka_unit_test(test_jpeg_gray_rgb),
        cmocka_unit_test(test_jpeg_cmyk_refused),
        cmocka_unit_test(test_jpeg_too_many_scans),
        cmocka_unit_test(test_jpeg_unknown_colour_space),
        cmocka_unit_test(test_not_an_image),
        cmocka_unit_test(test_max_bytes),
        cmocka_unit_test(test_truncated_everywhere),
        cmocka_unit_test(test_png_damaged_idat),
        cmocka_unit_test(test_too_small),
        cmocka_unit_test(test_huge_declared_size),
        cmocka_unit_test(test_mutations),
        cmocka_unit_test(test_spec_check),
        cmocka_unit_test(test_constant_image),
        cmocka_unit_test(test_checkerboard),
        cmocka_unit_test(test_fit_padding),
        cmocka_unit_test(test_crop_centre),
        cmocka_unit_test(test_extreme_shapes),
        cmocka_unit_test(test_channels_and_layout),
        cmocka_unit_test(test_to_tensor),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
