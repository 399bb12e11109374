/* The canvas and the plots: a picture written as PNG decodes (with libpng, not cairo) to the size
 * asked for, with ink exactly where something was drawn and gray edges where a slanted line was
 * anti-aliased; the same picture as SVG is well-formed XML whose text is text (escaped, found as
 * written); a plot maps data to pixels and puts its legend where the data is not. Without cairo,
 * saving fails with a message saying so. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "plot/plot.h"
#include "src/status.h"

#define FIGCHECK_NO_MAIN
#include "tools/figcheck.c"

/* A fresh temp path ending in `ext` (".png" or ".svg"). */
static void temp_path(char *buf, size_t cap, const char *ext) {
    char dir[] = "/tmp/tq_canvas_XXXXXX";
    assert_non_null(mkdtemp(dir));
    snprintf(buf, cap, "%s/picture%s", dir, ext);
}

static void remove_temp(const char *path) {
    unlink(path);
    char dir[256];
    snprintf(dir, sizeof dir, "%s", path);
    *strrchr(dir, '/') = 0;
    rmdir(dir);
}

/* The test picture: a filled black square, a slanted black line, a text, a digit. */
static tq_canvas *test_picture(void) {
    tq_canvas *c = tq_canvas_new(300, 160);
    assert_non_null(c);
    tq_canvas_rect(c, 10, 10, 40, 30, 0x000000);                    /* [10, 50) x [10, 40) */
    tq_canvas_segment(c, 60, 150, 160, 60, 0x000000, 2);             /* slanted: anti-aliased edges */
    tq_canvas_text(c, 180, 40, "a<b & c>\"d\" 8-bit", 16, 0x000000, TQ_ANCHOR_START, 0, 0);
    tq_canvas_text(c, 200, 140, "rotated", 14, 0x000000, TQ_ANCHOR_MIDDLE, 90, 0);
    uint8_t digit[28 * 28] = {0};
    for (int i = 0; i < 28; i++) digit[i * 28 + 14] = 255;           /* a stroke, drawn dark (inverted) */
    tq_canvas_gray(c, 250, 100, digit, 28, 28, 1, 1);
    return c;
}

static void png_has_ink_where_drawn(void **state) {
    (void)state;
    if (!tq_canvas_supported()) skip();
    tq_canvas *c = test_picture();
    char path[256];
    temp_path(path, sizeof path, ".png");
    assert_int_equal(tq_canvas_save(c, path), TQ_OK);
    png_facts f;
    int rc = figcheck_png(path, 0, 0, -1, -1, &f);
    if (rc == 77) {
        tq_canvas_free(c);
        remove_temp(path);
        skip(); /* no libpng to decode with */
    }
    assert_int_equal(rc, 0);
    assert_int_equal(f.w, 300);
    assert_int_equal(f.h, 160);
    assert_int_equal(figcheck_png(path, 10, 10, 49, 39, &f), 0);
    assert_int_equal(f.ink, 40 * 30);                                /* the square, every pixel */
    assert_int_equal(figcheck_png(path, 51, 10, 58, 40, &f), 0);
    assert_int_equal(f.ink, 0);                                      /* nothing beside it */
    assert_int_equal(figcheck_png(path, 60, 60, 160, 150, &f), 0);
    assert_true(f.ink > 150);                                        /* the line ... */
    assert_true(f.grays > 60);                                       /* ... with gray, smoothed edges */
    assert_int_equal(figcheck_png(path, 178, 20, 299, 45, &f), 0);
    assert_true(f.ink > 150);                                        /* the text */
    assert_int_equal(figcheck_png(path, 190, 70, 206, 145, &f), 0);
    assert_true(f.ink > 60);                                         /* the rotated text, upright column */
    assert_int_equal(figcheck_png(path, 264, 100, 264, 127, &f), 0);
    assert_int_equal(f.ink, 28);                                     /* the digit's stroke */
    assert_int_equal(figcheck_png(path, 255, 100, 260, 127, &f), 0);
    assert_int_equal(f.ink, 0);
    /* the format by the extension, in either case; another extension refused, naming the file */
    char upper[256];
    snprintf(upper, sizeof upper, "%.*sPNG", (int)(strlen(path) - 3), path);
    assert_int_equal(tq_canvas_save(c, upper), TQ_OK);
    assert_int_equal(figcheck_png(upper, 0, 0, -1, -1, &f), 0);
    unlink(upper);
    assert_int_equal(tq_canvas_save(c, "/tmp/tq_canvas_picture.jpg"), TQ_E_ARG);
    assert_non_null(strstr(tq_last_error(), "tq_canvas_picture.jpg"));
    assert_int_equal(access("/tmp/tq_canvas_picture.jpg", F_OK), -1);
    /* a folder that does not exist: an error naming it */
    assert_int_equal(tq_canvas_save(c, "/nonexistent/dir/x.png"), TQ_E_IO);
    assert_non_null(strstr(tq_last_error(), "/nonexistent/dir/x.png"));
    tq_canvas_free(c);
    remove_temp(path);
}

static void svg_is_xml_with_text(void **state) {
    (void)state;
    if (!tq_canvas_supported()) skip();
    tq_canvas *c = test_picture();
    char path[256];
    temp_path(path, sizeof path, ".svg");
    assert_int_equal(tq_canvas_save(c, path), TQ_OK);
    svg_facts f;
    if (figcheck_svg(path, &f)) fail_msg("%s", f.err);
    assert_int_equal(f.w, 300);
    assert_int_equal(f.h, 160);
    /* svg, background, square, line, two texts, the digit */
    assert_int_equal(f.elements, 7);
    assert_non_null(strstr(f.texts, "a<b & c>\"d\" 8-bit\n"));      /* escaped when written, found as written */
    assert_non_null(strstr(f.texts, "rotated\n"));
    tq_canvas_free(c);
    remove_temp(path);
    /* the checker itself refuses what is not well-formed */
    assert_int_equal(figcheck_svg_text("<svg width=\"1\" height=\"1\"><text>a</svg>", &f), -1);
    assert_int_equal(figcheck_svg_text("<svg width=\"1\" height=\"1\"><text>a & b</text></svg>", &f), -1);
    assert_int_equal(figcheck_svg_text("<svg width=1 height=\"1\"></svg>", &f), -1);
    assert_int_equal(figcheck_svg_text("<svg width=\"1\" height=\"1\"></svg><svg/>", &f), -1);
    assert_int_equal(figcheck_svg_text("<svg width=\"2\" height=\"1\"><g><text>x &amp; y</text></g></svg>", &f), 0);
    assert_string_equal(f.texts, "x & y\n");
}

static void without_cairo_saving_says_so(void **state) {
    (void)state;
    if (tq_canvas_supported()) skip();
    tq_canvas *c = tq_canvas_new(10, 10);
    assert_non_null(c);
    assert_int_equal(tq_canvas_save(c, "/tmp/never.png"), TQ_E_ARG);
    assert_non_null(strstr(tq_last_error(), "cairo"));
    tq_canvas_free(c);
}

static void plot_maps_data_and_avoids_it_with_the_legend(void **state) {
    (void)state;
    tq_canvas *c = tq_canvas_new(500, 300);
    assert_non_null(c);
    tq_plot p;
    tq_plot_init(&p, c, &(tq_plot_spec){.left = 0, .top = 0, .w = 500, .h = 300, .xmin = 0, .xmax = 10, .ymin = -1, .ymax = 1,
                                        .title = "t", .xlabel = "x", .ylabel = "y"});
    assert_true(p.x0 > 20 && p.x1 < 500 && p.y0 > 10 && p.y1 < 300);
    assert_true(tq_plot_px(&p, 0) == p.x0 && tq_plot_px(&p, 10) == p.x1);
    assert_true(tq_plot_py(&p, -1) == p.y1 && tq_plot_py(&p, 1) == p.y0);
    /* a reversed axis runs right to left */
    tq_plot r;
    tq_plot_init(&r, c, &(tq_plot_spec){.left = 0, .top = 0, .w = 500, .h = 300, .xmin = 8.5, .xmax = 1.5, .ymin = 0, .ymax = 1});
    assert_true(tq_plot_px(&r, 8) < tq_plot_px(&r, 2));
    /* data rising from the bottom left to the top right: the legend's first choice (top right) is
     * taken, the bottom right corner is free */
    double x[3] = {0, 6, 10}, y[3] = {-1, 0.2, 1};
    tq_plot_line(&p, x, y, 3, TQ_BLUE, 2, 0);
    tq_plot_legend(&p, "a curve", TQ_BLUE, TQ_KEY_LINE);
    tq_plot_finish(&p);
    double lx = p.legend_box[0], ly = p.legend_box[1], lw = p.legend_box[2], lh = p.legend_box[3];
    assert_true(lw > 40 && lh > 10);
    for (int i = 0; i <= 100; i++) { /* no point of the curve inside the legend */
        double t = i / 100.0, dx = t < 0.6 ? 10 * t : 6 + (t - 0.6) * 10, dy = t < 0.6 ? -1 + 2 * t : 0.2 + (t - 0.6) * 2;
        double px = tq_plot_px(&p, dx), py = tq_plot_py(&p, dy);
        if (px >= lx && px <= lx + lw && py >= ly && py <= ly + lh) fail_msg("the legend covers the curve at x = %.2f", dx);
    }
    assert_true(lx > (p.x0 + p.x1) / 2 && ly > (p.y0 + p.y1) / 2); /* the bottom right corner */
    tq_canvas_free(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(png_has_ink_where_drawn),
        cmocka_unit_test(svg_is_xml_with_text),
        cmocka_unit_test(without_cairo_saving_says_so),
        cmocka_unit_test(plot_maps_data_and_avoids_it_with_the_legend),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    tq_canvas_release_fonts(); /* so the leak checkers find nothing */
    return rc;
}
