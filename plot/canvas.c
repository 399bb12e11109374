/* The canvas: a list of shapes, replayed through cairo for PNG or written out as SVG. Why not
 * cairo's own SVG surface: it writes text as glyph outlines (cairo 1.16), which no one can search,
 * copy or read aloud; the shapes tinyqat draws are few and plain, so writing them is short. */
#include "plot/canvas.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "src/alloc.h"
#include "src/fileio.h"

#ifdef TQ_HAVE_CAIRO
#include <cairo.h>
#include <fontconfig/fontconfig.h>
#include <stdlib.h>
#endif

#define FONT "DejaVu Sans"
#define PI 3.14159265358979323846

typedef enum { S_LINE, S_RECT, S_OUTLINE, S_CIRCLE, S_TEXT, S_GRAY, S_CLIP, S_UNCLIP } shape_kind;

typedef struct {
    shape_kind kind;
    uint32_t color;
    double x, y, w, h;   /* rectangles, clips, pictures (w, h in pixels drawn); a circle's radius is w */
    double width;        /* stroke width */
    int dashed;
    int n;               /* a line's points, x and y interleaved in pts */
    double *pts;         /* owned */
    char *text;          /* owned */
    double size, degrees;
    int anchor, bold;
    uint8_t *px;         /* owned: pw x ph gray bytes, already inverted when asked */
    int pw, ph;
} shape;

struct tq_canvas {
    int w, h, failed;
    shape *s;
    int n, cap;
#ifdef TQ_HAVE_CAIRO
    cairo_surface_t *msurf; /* a 1 x 1 surface to measure text on */
    cairo_t *mcr;
#endif
};

int tq_canvas_supported(void) {
#ifdef TQ_HAVE_CAIRO
    return 1;
#else
    return 0;
#endif
}

#ifdef TQ_HAVE_CAIRO
#endif

/* cairo keeps the fonts it loaded, and fontconfig its configuration, until the process ends.
 * Released only when the program says so: fontconfig is the process's, and an embedding
 * program may be using it. */
void tq_canvas_release_fonts(void) {
#ifdef TQ_HAVE_CAIRO
    cairo_debug_reset_static_data();
    FcFini();
#endif
}

tq_canvas *tq_canvas_new(int w, int h) {
    if (w < 1 || h < 1 || w > 16384 || h > 16384) return NULL;
    tq_canvas *c = tq_calloc(1, sizeof *c);
    if (!c) return NULL;
    c->w = w, c->h = h;
#ifdef TQ_HAVE_CAIRO
    c->msurf = cairo_image_surface_create(CAIRO_FORMAT_RGB24, 1, 1);
    c->mcr = cairo_create(c->msurf);
    if (cairo_status(c->mcr) != CAIRO_STATUS_SUCCESS) {
        tq_canvas_free(c);
        return NULL;
    }
#endif
    return c;
}

void tq_canvas_free(tq_canvas *c) {
    if (!c) return;
    for (int i = 0; i < c->n; i++) tq_free(c->s[i].pts), tq_free(c->s[i].text), tq_free(c->s[i].px);
    tq_free(c->s);
#ifdef TQ_HAVE_CAIRO
    if (c->mcr) cairo_destroy(c->mcr);
    if (c->msurf) cairo_surface_destroy(c->msurf);
#endif
    tq_free(c);
}

/* A new zeroed shape at the end of the list, or NULL (and the canvas marked) without memory. */
static shape *add(tq_canvas *c, shape_kind kind, uint32_t color) {
    if (c->failed) return NULL;
    if (c->n == c->cap) {
        int cap = c->cap ? 2 * c->cap : 64;
        shape *s = tq_realloc(c->s, (size_t)cap * sizeof *s);
        if (!s) {
            c->failed = 1;
            return NULL;
        }
        c->s = s, c->cap = cap;
    }
    shape *s = &c->s[c->n++];
    memset(s, 0, sizeof *s);
    s->kind = kind, s->color = color;
    return s;
}

void tq_canvas_clip(tq_canvas *c, double x, double y, double w, double h) {
    shape *s = add(c, S_CLIP, 0);
    if (s) s->x = x, s->y = y, s->w = w, s->h = h;
}

void tq_canvas_unclip(tq_canvas *c) { add(c, S_UNCLIP, 0); }

void tq_canvas_line(tq_canvas *c, const double *x, const double *y, int n, uint32_t color, double width, int dashed) {
    if (n < 2) return;
    shape *s = add(c, S_LINE, color);
    if (!s) return;
    if (!(s->pts = tq_malloc(2 * (size_t)n * sizeof(double)))) {
        c->n--, c->failed = 1;
        return;
    }
    for (int i = 0; i < n; i++) s->pts[2 * i] = x[i], s->pts[2 * i + 1] = y[i];
    s->n = n, s->width = width, s->dashed = dashed;
}

void tq_canvas_segment(tq_canvas *c, double x0, double y0, double x1, double y1, uint32_t color, double width) {
    double x[2] = {x0, x1}, y[2] = {y0, y1};
    tq_canvas_line(c, x, y, 2, color, width, 0);
}

void tq_canvas_rect(tq_canvas *c, double x, double y, double w, double h, uint32_t fill) {
    shape *s = add(c, S_RECT, fill);
    if (s) s->x = x, s->y = y, s->w = w, s->h = h;
}

void tq_canvas_rect_outline(tq_canvas *c, double x, double y, double w, double h, uint32_t color, double width) {
    shape *s = add(c, S_OUTLINE, color);
    if (s) s->x = x, s->y = y, s->w = w, s->h = h, s->width = width;
}

void tq_canvas_circle(tq_canvas *c, double x, double y, double r, uint32_t fill) {
    shape *s = add(c, S_CIRCLE, fill);
    if (s) s->x = x, s->y = y, s->w = r;
}

void tq_canvas_text(tq_canvas *c, double x, double y, const char *str, double size, uint32_t color, tq_anchor anchor,
                    double degrees, int bold) {
    shape *s = add(c, S_TEXT, color);
    if (!s) return;
    size_t len = strlen(str);
    if (!(s->text = tq_malloc(len + 1))) {
        c->n--, c->failed = 1;
        return;
    }
    memcpy(s->text, str, len + 1);
    s->x = x, s->y = y, s->size = size, s->anchor = (int)anchor, s->degrees = degrees, s->bold = bold;
}

double tq_canvas_text_width(const tq_canvas *c, const char *s, double size, int bold) {
#ifdef TQ_HAVE_CAIRO
    cairo_select_font_face(c->mcr, FONT, CAIRO_FONT_SLANT_NORMAL, bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(c->mcr, size);
    cairo_text_extents_t e;
    cairo_text_extents(c->mcr, s, &e);
    return e.x_advance;
#else
    (void)c;
    return 0.6 * size * (double)strlen(s) * (bold ? 1.1 : 1.0); /* DejaVu Sans averages about 0.6 em */
#endif
}

void tq_canvas_gray(tq_canvas *c, double x, double y, const uint8_t *px, int w, int h, int scale, int invert) {
    if (w < 1 || h < 1) return;
    shape *s = add(c, S_GRAY, 0);
    if (!s) return;
    if (!(s->px = tq_malloc((size_t)w * (size_t)h))) {
        c->n--, c->failed = 1;
        return;
    }
    for (size_t i = 0; i < (size_t)w * (size_t)h; i++) s->px[i] = invert ? (uint8_t)(255 - px[i]) : px[i];
    s->x = x, s->y = y, s->pw = w, s->ph = h, s->w = (double)w * scale, s->h = (double)h * scale;
}

#ifdef TQ_HAVE_CAIRO
static void set_color(cairo_t *cr, uint32_t c) {
    cairo_set_source_rgb(cr, ((c >> 16) & 255) / 255.0, ((c >> 8) & 255) / 255.0, (c & 255) / 255.0);
}

static cairo_status_t to_buf(void *closure, const unsigned char *data, unsigned int len) {
    tq_buf *b = closure;
    tq_buf_put(b, data, len);
    return b->ok ? CAIRO_STATUS_SUCCESS : CAIRO_STATUS_WRITE_ERROR;
}

/* A gray picture as a cairo surface of its own size, or NULL. */
static cairo_surface_t *gray_surface(const shape *s) {
    cairo_surface_t *img = cairo_image_surface_create(CAIRO_FORMAT_RGB24, s->pw, s->ph);
    if (cairo_surface_status(img) != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(img);
        return NULL;
    }
    cairo_surface_flush(img);
    unsigned char *d = cairo_image_surface_get_data(img);
    int stride = cairo_image_surface_get_stride(img);
    for (int r = 0; r < s->ph; r++)
        for (int q = 0; q < s->pw; q++) {
            uint32_t v = s->px[(size_t)r * s->pw + q];
            uint32_t rgb = v << 16 | v << 8 | v;
            memcpy(d + (size_t)r * stride + 4 * (size_t)q, &rgb, 4);
        }
    cairo_surface_mark_dirty(img);
    return img;
}

/* The shapes through cairo onto cr. 0 when a picture could not be made. */
static int render(const tq_canvas *c, cairo_t *cr) {
    set_color(cr, 0xFFFFFFu);
    cairo_paint(cr);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    int clipped = 0;
    for (int i = 0; i < c->n; i++) {
        const shape *s = &c->s[i];
        switch (s->kind) {
        case S_CLIP:
            if (clipped) cairo_restore(cr);
            cairo_save(cr);
            cairo_rectangle(cr, s->x, s->y, s->w, s->h);
            cairo_clip(cr);
            clipped = 1;
            break;
        case S_UNCLIP:
            if (clipped) cairo_restore(cr);
            clipped = 0;
            break;
        case S_LINE: {
            static const double dash[2] = {6, 4};
            cairo_move_to(cr, s->pts[0], s->pts[1]);
            for (int k = 1; k < s->n; k++) cairo_line_to(cr, s->pts[2 * k], s->pts[2 * k + 1]);
            cairo_set_line_width(cr, s->width);
            cairo_set_dash(cr, dash, s->dashed ? 2 : 0, 0);
            set_color(cr, s->color);
            cairo_stroke(cr);
            cairo_set_dash(cr, dash, 0, 0);
            break;
        }
        case S_RECT:
            cairo_rectangle(cr, s->x, s->y, s->w, s->h);
            set_color(cr, s->color);
            cairo_fill(cr);
            break;
        case S_OUTLINE:
            cairo_rectangle(cr, s->x, s->y, s->w, s->h);
            cairo_set_line_width(cr, s->width);
            set_color(cr, s->color);
            cairo_stroke(cr);
            break;
        case S_CIRCLE:
            cairo_new_sub_path(cr);
            cairo_arc(cr, s->x, s->y, s->w, 0, 2 * PI);
            set_color(cr, s->color);
            cairo_fill(cr);
            break;
        case S_TEXT: {
            cairo_select_font_face(cr, FONT, CAIRO_FONT_SLANT_NORMAL, s->bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
            cairo_set_font_size(cr, s->size);
            cairo_text_extents_t e;
            cairo_text_extents(cr, s->text, &e);
            cairo_save(cr);
            cairo_translate(cr, s->x, s->y);
            cairo_rotate(cr, -s->degrees * PI / 180);
            cairo_move_to(cr, -e.x_advance * s->anchor / 2, 0);
            set_color(cr, s->color);
            cairo_show_text(cr, s->text);
            cairo_new_path(cr);
            cairo_restore(cr);
            break;
        }
        case S_GRAY: {
            cairo_surface_t *img = gray_surface(s);
            if (!img) return 0;
            cairo_save(cr);
            cairo_translate(cr, s->x, s->y);
            cairo_scale(cr, s->w / s->pw, s->h / s->ph);
            cairo_set_source_surface(cr, img, 0, 0);
            cairo_pattern_set_filter(cairo_get_source(cr), CAIRO_FILTER_NEAREST);
            cairo_rectangle(cr, 0, 0, s->pw, s->ph);
            cairo_fill(cr);
            cairo_restore(cr);
            cairo_surface_destroy(img);
            break;
        }
        }
    }
    if (clipped) cairo_restore(cr);
    return 1;
}

static tq_status save_png(const tq_canvas *c, const char *path) {
    cairo_surface_t *surf = cairo_image_surface_create(CAIRO_FORMAT_RGB24, c->w, c->h);
    cairo_t *cr = cairo_create(surf);
    int ok = cairo_status(cr) == CAIRO_STATUS_SUCCESS && render(c, cr) && cairo_status(cr) == CAIRO_STATUS_SUCCESS;
    cairo_destroy(cr);
    tq_buf b;
    tq_buf_init(&b);
    if (ok) {
        cairo_surface_flush(surf);
        ok = cairo_surface_write_to_png_stream(surf, to_buf, &b) == CAIRO_STATUS_SUCCESS && b.ok;
    }
    cairo_surface_destroy(surf);
    if (!ok) {
        tq_buf_free(&b);
        TQ_FAIL(TQ_E_NOMEM, "%s: cannot render the picture (out of memory)", path);
    }
    tq_status st = tq_file_write_atomic(path, b.p, b.len);
    tq_buf_free(&b);
    return st;
}

/* ---- SVG ---- */

static void put(tq_buf *b, const char *s) { tq_buf_put(b, s, strlen(s)); }

static void putf(tq_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(tq_buf *b, const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0) tq_buf_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* A coordinate with at most two decimals and no trailing zeros (what a PNG pixel can show). */
static const char *num(char *buf, double v) {
    snprintf(buf, 32, "%.2f", v);
    char *e = buf + strlen(buf) - 1;
    while (*e == '0') *e-- = 0;
    if (*e == '.') *e = 0;
    if (!strcmp(buf, "-0")) strcpy(buf, "0");
    return buf;
}

static void put_escaped(tq_buf *b, const char *s) {
    for (; *s; s++)
        switch (*s) {
        case '&': put(b, "&amp;"); break;
        case '<': put(b, "&lt;"); break;
        case '>': put(b, "&gt;"); break;
        case '"': put(b, "&quot;"); break;
        default: tq_buf_put(b, s, 1);
        }
}

static void put_base64(tq_buf *b, const unsigned char *d, size_t n) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16 | (i + 1 < n ? (uint32_t)d[i + 1] << 8 : 0) | (i + 2 < n ? d[i + 2] : 0);
        char q[4] = {tab[v >> 18 & 63], tab[v >> 12 & 63], i + 1 < n ? tab[v >> 6 & 63] : '=', i + 2 < n ? tab[v & 63] : '='};
        tq_buf_put(b, q, 4);
    }
}

static tq_status save_svg(const tq_canvas *c, const char *path) {
    tq_buf b;
    tq_buf_init(&b);
    char n1[32], n2[32], n3[32], n4[32];
    putf(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
             "<svg xmlns=\"http://www.w3.org/2000/svg\" xmlns:xlink=\"http://www.w3.org/1999/xlink\" "
             "width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"DejaVu Sans, Verdana, sans-serif\">\n"
             "<rect width=\"100%%\" height=\"100%%\" fill=\"#ffffff\"/>\n",
         c->w, c->h, c->w, c->h);
    int clipped = 0, clips = 0, ok = 1;
    for (int i = 0; i < c->n && ok; i++) {
        const shape *s = &c->s[i];
        switch (s->kind) {
        case S_CLIP:
            if (clipped) put(&b, "</g>\n");
            putf(&b, "<clipPath id=\"clip%d\"><rect x=\"%s\" y=\"%s\" width=\"%s\" height=\"%s\"/></clipPath>\n<g clip-path=\"url(#clip%d)\">\n",
                 clips, num(n1, s->x), num(n2, s->y), num(n3, s->w), num(n4, s->h), clips);
            clips++, clipped = 1;
            break;
        case S_UNCLIP:
            if (clipped) put(&b, "</g>\n");
            clipped = 0;
            break;
        case S_LINE:
            put(&b, "<polyline points=\"");
            for (int k = 0; k < s->n; k++) putf(&b, "%s%s,%s", k ? " " : "", num(n1, s->pts[2 * k]), num(n2, s->pts[2 * k + 1]));
            putf(&b, "\" fill=\"none\" stroke=\"#%06x\" stroke-width=\"%s\" stroke-linejoin=\"round\"%s/>\n", (unsigned)s->color,
                 num(n1, s->width), s->dashed ? " stroke-dasharray=\"6 4\"" : "");
            break;
        case S_RECT:
            putf(&b, "<rect x=\"%s\" y=\"%s\" width=\"%s\" height=\"%s\" fill=\"#%06x\"/>\n", num(n1, s->x), num(n2, s->y),
                 num(n3, s->w), num(n4, s->h), (unsigned)s->color);
            break;
        case S_OUTLINE:
            putf(&b, "<rect x=\"%s\" y=\"%s\" width=\"%s\" height=\"%s\" fill=\"none\" stroke=\"#%06x\"", num(n1, s->x),
                 num(n2, s->y), num(n3, s->w), num(n4, s->h), (unsigned)s->color);
            putf(&b, " stroke-width=\"%s\"/>\n", num(n1, s->width));
            break;
        case S_CIRCLE:
            putf(&b, "<circle cx=\"%s\" cy=\"%s\" r=\"%s\" fill=\"#%06x\"/>\n", num(n1, s->x), num(n2, s->y), num(n3, s->w),
                 (unsigned)s->color);
            break;
        case S_TEXT: {
            static const char *anchors[3] = {"start", "middle", "end"};
            putf(&b, "<text x=\"%s\" y=\"%s\" font-size=\"%s\" fill=\"#%06x\" text-anchor=\"%s\"%s", num(n1, s->x), num(n2, s->y),
                 num(n3, s->size), (unsigned)s->color, anchors[s->anchor], s->bold ? " font-weight=\"bold\"" : "");
            if (s->degrees != 0) putf(&b, " transform=\"rotate(%s %s %s)\"", num(n1, -s->degrees), num(n2, s->x), num(n3, s->y));
            put(&b, ">");
            put_escaped(&b, s->text);
            put(&b, "</text>\n");
            break;
        }
        case S_GRAY: {
            /* the picture as an embedded PNG, its pixels kept square when scaled up */
            cairo_surface_t *img = gray_surface(s);
            tq_buf png;
            tq_buf_init(&png);
            ok = img && cairo_surface_write_to_png_stream(img, to_buf, &png) == CAIRO_STATUS_SUCCESS && png.ok;
            if (img) cairo_surface_destroy(img);
            if (ok) {
                putf(&b, "<image x=\"%s\" y=\"%s\" width=\"%s\" height=\"%s\" preserveAspectRatio=\"none\" "
                         "style=\"image-rendering:pixelated\" xlink:href=\"data:image/png;base64,",
                     num(n1, s->x), num(n2, s->y), num(n3, s->w), num(n4, s->h));
                put_base64(&b, png.p, png.len);
                put(&b, "\"/>\n");
            }
            tq_buf_free(&png);
            break;
        }
        }
    }
    if (clipped) put(&b, "</g>\n");
    put(&b, "</svg>\n");
    if (!ok || !b.ok) {
        tq_buf_free(&b);
        TQ_FAIL(TQ_E_NOMEM, "%s: cannot write the picture (out of memory)", path);
    }
    tq_status st = tq_file_write_atomic(path, b.p, b.len);
    tq_buf_free(&b);
    return st;
}
#endif

/* path ends in ext (lower case), in any case */
static int ends_with(const char *path, const char *ext) {
    size_t n = strlen(path), e = strlen(ext);
    if (n < e) return 0;
    for (size_t i = 0; i < e; i++)
        if ((path[n - e + i] | 0x20) != ext[i]) return 0;
    return 1;
}

tq_canvas_format tq_canvas_format_of(const char *path) {
    return ends_with(path, ".svg") ? TQ_CANVAS_SVG : ends_with(path, ".png") ? TQ_CANVAS_PNG : TQ_CANVAS_UNKNOWN;
}

tq_status tq_canvas_save(const tq_canvas *c, const char *path) {
#ifdef TQ_HAVE_CAIRO
    if (c->failed) TQ_FAIL(TQ_E_NOMEM, "%s: out of memory while drawing", path);
    switch (tq_canvas_format_of(path)) {
    case TQ_CANVAS_SVG: return save_svg(c, path);
    case TQ_CANVAS_PNG: return save_png(c, path);
    default: TQ_FAIL(TQ_E_ARG, "%s: pictures are written as .png or .svg: name the file so", path);
    }
#else
    (void)c;
    TQ_FAIL(TQ_E_ARG, "%s: this tinyqat was built without cairo and cannot draw: install libcairo2-dev and rebuild", path);
#endif
}
