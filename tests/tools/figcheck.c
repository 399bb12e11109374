/* Checks of a written picture, independent of the code that drew it:
 *   PNG: decoded with libpng; size, ink (non-white pixels) in a box, and grays (pixels strictly
 *        between black and white on all channels alike: the edges anti-aliasing leaves);
 *   SVG: parsed as XML (well-formed: one root <svg> with width and height, tags nested and closed,
 *        attributes quoted, entities known), its elements counted and its <text> contents kept.
 *
 *   tq_figcheck FILE.png [X0 Y0 X1 Y1]   prints "WIDTH HEIGHT INK GRAYS"
 *   tq_figcheck FILE.svg                 prints "WIDTH HEIGHT ELEMENTS", then each text on a line
 *
 * test_canvas includes this file with FIGCHECK_NO_MAIN defined. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef TQ_HAVE_PNG
#include <png.h>
#endif

typedef struct {
    int w, h;
    long ink, grays;
} png_facts;

/* 0 on success; -1 unreadable; 77 without libpng. Box (x0, y0, x1, y1) inclusive, or all when x1 < 0. */
static int figcheck_png(const char *path, int x0, int y0, int x1, int y1, png_facts *f) {
#ifdef TQ_HAVE_PNG
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&img, path)) return -1;
    img.format = PNG_FORMAT_RGB;
    unsigned char *buf = malloc(PNG_IMAGE_SIZE(img));
    if (!buf || !png_image_finish_read(&img, NULL, buf, 0, NULL)) {
        free(buf);
        png_image_free(&img);
        return -1;
    }
    f->w = (int)img.width, f->h = (int)img.height, f->ink = 0, f->grays = 0;
    if (x1 < 0) x0 = 0, y0 = 0, x1 = f->w - 1, y1 = f->h - 1;
    for (int y = y0 < 0 ? 0 : y0; y <= y1 && y < f->h; y++)
        for (int x = x0 < 0 ? 0 : x0; x <= x1 && x < f->w; x++) {
            const unsigned char *p = buf + ((size_t)y * f->w + (size_t)x) * 3;
            f->ink += p[0] < 250 || p[1] < 250 || p[2] < 250;
            f->grays += p[0] == p[1] && p[1] == p[2] && p[0] > 20 && p[0] < 235;
        }
    free(buf);
    return 0;
#else
    (void)path, (void)x0, (void)y0, (void)x1, (void)y1, (void)f;
    return 77;
#endif
}

typedef struct {
    int w, h, elements;
    char texts[8192]; /* the <text> contents, entities decoded, each ended by '\n' */
    char err[160];
} svg_facts;

static int name_char(int c) { return isalnum(c) || c == '_' || c == ':' || c == '-' || c == '.'; }

/* Decode one entity at *s (just past '&') into out; 0 if unknown or malformed. */
static int entity(const char **s, char *out) {
    static const struct {
        const char *name;
        char c;
    } known[] = {{"amp;", '&'}, {"lt;", '<'}, {"gt;", '>'}, {"quot;", '"'}, {"apos;", '\''}};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (!strncmp(*s, known[i].name, strlen(known[i].name))) {
            *s += strlen(known[i].name);
            *out = known[i].c;
            return 1;
        }
    if (**s == '#') { /* a character reference: kept as '?' (the tests look for ASCII) */
        const char *p = *s + 1;
        int hex = *p == 'x';
        p += hex;
        const char *d = p;
        while (hex ? isxdigit((unsigned char)*p) : isdigit((unsigned char)*p)) p++;
        if (p == d || *p != ';') return 0;
        *s = p + 1;
        *out = '?';
        return 1;
    }
    return 0;
}

#define SVG_FAIL(...) return snprintf(f->err, sizeof f->err, __VA_ARGS__), -1

/* 0 when `doc` is a well-formed SVG document (as described above), else -1 and f->err. */
static int figcheck_svg_text(const char *doc, svg_facts *f) {
    memset(f, 0, sizeof *f);
    char stack[64][32];
    int depth = 0, in_text = 0, roots = 0;
    size_t tl = 0;
    const char *s = doc;
    if (!strncmp(s, "<?xml", 5)) {
        const char *e = strstr(s, "?>");
        if (!e) SVG_FAIL("the XML declaration is not closed");
        s = e + 2;
    }
    while (*s) {
        if (*s != '<') { /* character data */
            if (depth == 0 && !isspace((unsigned char)*s)) SVG_FAIL("text outside the root element");
            char ch = *s++;
            if (ch == '&' && !entity(&s, &ch)) SVG_FAIL("an unknown or malformed entity");
            if (in_text && tl + 2 < sizeof f->texts) f->texts[tl++] = ch;
            continue;
        }
        s++;
        if (!strncmp(s, "!--", 3)) {
            const char *e = strstr(s, "-->");
            if (!e) SVG_FAIL("a comment is not closed");
            s = e + 3;
            continue;
        }
        int closing = *s == '/';
        s += closing;
        const char *n0 = s;
        if (!(isalpha((unsigned char)*s) || *s == '_')) SVG_FAIL("a tag without a name");
        while (name_char((unsigned char)*s)) s++;
        size_t nl = (size_t)(s - n0);
        if (nl >= sizeof stack[0]) SVG_FAIL("a tag name too long");
        char name[32];
        memcpy(name, n0, nl);
        name[nl] = 0;
        if (closing) {
            while (isspace((unsigned char)*s)) s++;
            if (*s != '>') SVG_FAIL("</%s is not closed by '>'", name);
            s++;
            if (depth == 0 || strcmp(stack[depth - 1], name)) SVG_FAIL("</%s> closes %s", name, depth ? stack[depth - 1] : "nothing");
            depth--;
            if (!strcmp(name, "text")) {
                in_text = 0;
                if (tl + 1 < sizeof f->texts) f->texts[tl++] = '\n';
            }
            continue;
        }
        if (depth == 0 && (roots++ || strcmp(name, "svg"))) SVG_FAIL("the root element is <%s>, or there are two", name);
        f->elements++;
        /* attributes: name="value" (or 'value'), each value's entities checked */
        for (;;) {
            int sp = 0;
            while (isspace((unsigned char)*s)) s++, sp = 1;
            if (*s == '>' || (*s == '/' && s[1] == '>')) break;
            if (!sp) SVG_FAIL("<%s>: attributes must be separated by spaces", name);
            const char *a0 = s;
            while (name_char((unsigned char)*s)) s++;
            if (s == a0 || *s != '=') SVG_FAIL("<%s>: an attribute without a value", name);
            char q = *++s;
            if (q != '"' && q != '\'') SVG_FAIL("<%s>: an unquoted attribute value", name);
            const char *v0 = ++s;
            while (*s && *s != q) {
                if (*s == '<') SVG_FAIL("<%s>: '<' inside an attribute value", name);
                if (*s == '&') {
                    char ch;
                    s++;
                    if (!entity(&s, &ch)) SVG_FAIL("<%s>: an unknown entity in an attribute", name);
                } else {
                    s++;
                }
            }
            if (!*s) SVG_FAIL("<%s>: an attribute value is not closed", name);
            if (depth == 0 && (!strncmp(a0, "width=", 6) || !strncmp(a0, "height=", 7)))
                *(a0[0] == 'w' ? &f->w : &f->h) = atoi(v0);
            s++;
        }
        if (*s == '/') { /* empty element */
            s += 2;
            if (depth == 0) SVG_FAIL("the root element is empty");
            continue;
        }
        s++;
        if (depth == 64) SVG_FAIL("elements nested too deep");
        strcpy(stack[depth++], name);
        if (!strcmp(name, "text")) in_text = 1;
    }
    if (depth) SVG_FAIL("<%s> is not closed", stack[depth - 1]);
    if (!roots) SVG_FAIL("no <svg> element");
    if (f->w <= 0 || f->h <= 0) SVG_FAIL("<svg> has no width and height");
    f->texts[tl] = 0;
    return 0;
}

static int figcheck_svg(const char *path, svg_facts *f) {
    FILE *fp = fopen(path, "rb");
    memset(f, 0, sizeof *f);
    if (!fp) SVG_FAIL("cannot open");
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *doc = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (!doc || fread(doc, 1, (size_t)n, fp) != (size_t)n) {
        free(doc);
        fclose(fp);
        SVG_FAIL("cannot read");
    }
    fclose(fp);
    doc[n] = 0;
    int rc = strlen(doc) != (size_t)n ? (snprintf(f->err, sizeof f->err, "a NUL byte inside"), -1) : figcheck_svg_text(doc, f);
    free(doc);
    return rc;
}

#ifndef FIGCHECK_NO_MAIN
int main(int argc, char **argv) {
    if (argc != 2 && argc != 6) {
        fprintf(stderr, "usage: tq_figcheck FILE.png [X0 Y0 X1 Y1] | tq_figcheck FILE.svg\n");
        return 2;
    }
    size_t n = strlen(argv[1]);
    if (n >= 4 && !strcmp(argv[1] + n - 4, ".svg")) {
        static svg_facts f;
        if (figcheck_svg(argv[1], &f)) {
            fprintf(stderr, "tq_figcheck: %s: %s\n", argv[1], f.err);
            return 1;
        }
        printf("%d %d %d\n%s", f.w, f.h, f.elements, f.texts);
        return 0;
    }
    png_facts f;
    int rc = argc == 6 ? figcheck_png(argv[1], atoi(argv[2]), atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), &f)
                       : figcheck_png(argv[1], 0, 0, -1, -1, &f);
    if (rc == 77) fprintf(stderr, "tq_figcheck: built without libpng\n");
    if (rc == -1) fprintf(stderr, "tq_figcheck: %s: cannot decode\n", argv[1]);
    if (rc) return rc == 77 ? 77 : 1;
    printf("%d %d %ld %ld\n", f.w, f.h, f.ink, f.grays);
    return 0;
}
#endif
