#define _POSIX_C_SOURCE 200809L
#include "plot/png_view.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "src/alloc.h"

#ifdef TQ_HAVE_PNG
#include <png.h>
#endif

tq_status tq_image_init(tq_image *im, int w, int h, uint32_t bg) {
    memset(im, 0, sizeof *im);
    if (w < 1 || h < 1 || w > 16384 || h > 16384) TQ_FAIL(TQ_E_ARG, "image: bad size %dx%d", w, h);
    im->rgb = tq_malloc((size_t)w * h * 3);
    if (!im->rgb) TQ_FAIL(TQ_E_NOMEM, "image: cannot allocate %dx%d", w, h);
    im->w = w;
    im->h = h;
    tq_image_rect(im, 0, 0, w - 1, h - 1, bg);
    return TQ_OK;
}

void tq_image_free(tq_image *im) {
    if (!im) return;
    tq_free(im->rgb);
    memset(im, 0, sizeof *im);
}

void tq_image_pixel(tq_image *im, int x, int y, uint32_t c) {
    if (x < 0 || y < 0 || x >= im->w || y >= im->h) return;
    uint8_t *p = im->rgb + ((size_t)y * im->w + x) * 3;
    p[0] = (uint8_t)(c >> 16), p[1] = (uint8_t)(c >> 8), p[2] = (uint8_t)c;
}

void tq_image_rect(tq_image *im, int x0, int y0, int x1, int y1, uint32_t c) {
    if (x0 > x1) { int t = x0; x0 = x1; x1 = t; }
    if (y0 > y1) { int t = y0; y0 = y1; y1 = t; }
    for (int y = y0 < 0 ? 0 : y0; y <= y1 && y < im->h; y++)
        for (int x = x0 < 0 ? 0 : x0; x <= x1 && x < im->w; x++) tq_image_pixel(im, x, y, c);
}

void tq_image_line(tq_image *im, int x0, int y0, int x1, int y1, uint32_t c) {
    int dx = abs(x1 - x0), sx = x0 < x1 ? 1 : -1, dy = -abs(y1 - y0), sy = y0 < y1 ? 1 : -1, err = dx + dy;
    for (int guard = 0; guard < 100000; guard++) {
        tq_image_pixel(im, x0, y0, c);
        if (x0 == x1 && y0 == y1) break;
        int e2 = 2 * err;
        if (e2 >= dy) err += dy, x0 += sx;
        if (e2 <= dx) err += dx, y0 += sy;
    }
}

/* 5x7 glyphs, one byte per row, bit 4 = leftmost column. */
static const struct {
    char c;
    uint8_t rows[7];
} FONT[] = {
    {'0', {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}}, {'1', {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E}},
    {'2', {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}}, {'3', {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E}},
    {'4', {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}}, {'5', {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E}},
    {'6', {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}}, {'7', {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}},
    {'8', {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}}, {'9', {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C}},
    {'A', {0x0E, 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11}}, {'B', {0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E}},
    {'C', {0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E}}, {'D', {0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C}},
    {'E', {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F}}, {'F', {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10}},
    {'G', {0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F}}, {'H', {0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11}},
    {'I', {0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E}}, {'J', {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C}},
    {'K', {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11}}, {'L', {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F}},
    {'M', {0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11}}, {'N', {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11}},
    {'O', {0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}}, {'P', {0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10}},
    {'Q', {0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D}}, {'R', {0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11}},
    {'S', {0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E}}, {'T', {0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04}},
    {'U', {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}}, {'V', {0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04}},
    {'W', {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A}}, {'X', {0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11}},
    {'Y', {0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04}}, {'Z', {0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F}},
    {' ', {0, 0, 0, 0, 0, 0, 0}},                        {'.', {0, 0, 0, 0, 0, 0x0C, 0x0C}},
    {',', {0, 0, 0, 0, 0x0C, 0x04, 0x08}},               {'-', {0, 0, 0, 0x1F, 0, 0, 0}},
    {'+', {0, 0x04, 0x04, 0x1F, 0x04, 0x04, 0}},         {':', {0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0}},
    {'%', {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03}},   {'(', {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02}},
    {')', {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08}},   {'/', {0, 0x01, 0x02, 0x04, 0x08, 0x10, 0}},
    {'=', {0, 0, 0x1F, 0, 0x1F, 0, 0}},                  {'_', {0, 0, 0, 0, 0, 0, 0x1F}},
    {'[', {0x0E, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0E}},   {']', {0x0E, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0E}},
    {'>', {0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08}},   {'<', {0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02}},
    {'^', {0x04, 0x0A, 0x11, 0, 0, 0, 0}},               {'*', {0, 0x04, 0x15, 0x0E, 0x15, 0x04, 0}},
    {'?', {0x0E, 0x11, 0x01, 0x02, 0x04, 0, 0x04}},
};

static const uint8_t *glyph(char c) {
    if (c >= 'a' && c <= 'z') c = (char)(c - 'a' + 'A');
    for (size_t i = 0; i < sizeof FONT / sizeof FONT[0]; i++)
        if (FONT[i].c == c) return FONT[i].rows;
    return glyph('?');
}

int tq_image_text_width(const char *s, int scale) { return (int)strlen(s) * 6 * scale - (*s ? scale : 0); }

void tq_image_text(tq_image *im, int x, int y, const char *s, uint32_t color, int scale) {
    for (; *s; s++, x += 6 * scale) {
        const uint8_t *g = glyph(*s);
        for (int r = 0; r < 7; r++)
            for (int c = 0; c < 5; c++)
                if (g[r] & (0x10 >> c)) tq_image_rect(im, x + c * scale, y + r * scale, x + c * scale + scale - 1, y + r * scale + scale - 1, color);
    }
}

void tq_image_gray(tq_image *im, int x, int y, const uint8_t *px, int w, int h, int scale, int invert) {
    for (int r = 0; r < h; r++)
        for (int c = 0; c < w; c++) {
            uint32_t v = px[r * w + c];
            if (invert) v = 255 - v;
            tq_image_rect(im, x + c * scale, y + r * scale, x + c * scale + scale - 1, y + r * scale + scale - 1, v << 16 | v << 8 | v);
        }
}

#ifdef TQ_HAVE_PNG
int tq_png_supported(void) { return 1; }

tq_status tq_image_save_png(const tq_image *im, const char *path) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp) TQ_FAIL(TQ_E_ARG, "%s: path too long", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) TQ_FAIL(TQ_E_IO, "%s: cannot create: %s", path, strerror(errno));
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    /* volatile: the status survives libpng's longjmp */
    volatile tq_status st = TQ_OK;
    if (!png || !info) st = tq_error_set_(TQ_E_NOMEM, __FILE__, __LINE__, "%s: libpng could not start", path);
    else if (setjmp(png_jmpbuf(png))) st = tq_error_set_(TQ_E_IO, __FILE__, __LINE__, "%s: libpng failed while writing", path);
    else {
        png_init_io(png, f);
        png_set_IHDR(png, info, (png_uint_32)im->w, (png_uint_32)im->h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                     PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
        png_write_info(png, info);
        for (int y = 0; y < im->h; y++) png_write_row(png, im->rgb + (size_t)y * im->w * 3);
        png_write_end(png, NULL);
    }
    png_destroy_write_struct(&png, &info);
    if (fclose(f) != 0 && st == TQ_OK) st = tq_error_set_(TQ_E_IO, __FILE__, __LINE__, "%s: cannot write: %s", path, strerror(errno));
    if (st == TQ_OK && rename(tmp, path) != 0)
        st = tq_error_set_(TQ_E_IO, __FILE__, __LINE__, "%s: cannot rename into place: %s", path, strerror(errno));
    if (st != TQ_OK) unlink(tmp);
    return st;
}
#else
int tq_png_supported(void) { return 0; }

tq_status tq_image_save_png(const tq_image *im, const char *path) {
    (void)im;
    TQ_FAIL(TQ_E_ARG, "%s: this tinyqat was built without libpng (install libpng-dev and rebuild); no picture written", path);
}
#endif
