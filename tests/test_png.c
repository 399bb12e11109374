/* The canvas, the font and the PNG writer: a written picture decodes with libpng, has the size
 * asked for, and has ink exactly where something was drawn. Skipped (77) in a build without libpng. */
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
#include "plot/png_view.h"

#ifdef TQ_HAVE_PNG
#include <png.h>

/* Decode `path` as 8-bit RGB; returns the pixels (malloc) and the size. */
static uint8_t *decode(const char *path, int *w, int *h) {
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&img, path)) return NULL;
    img.format = PNG_FORMAT_RGB;
    uint8_t *buf = malloc(PNG_IMAGE_SIZE(img));
    if (!buf || !png_image_finish_read(&img, NULL, buf, 0, NULL)) {
        free(buf);
        return NULL;
    }
    *w = (int)img.width;
    *h = (int)img.height;
    return buf;
}

static long ink_in(const uint8_t *p, int w, int x0, int y0, int x1, int y1) {
    long n = 0;
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++) {
            const uint8_t *q = p + ((size_t)y * w + x) * 3;
            n += q[0] < 200 || q[1] < 200 || q[2] < 200;
        }
    return n;
}

static void canvas_round_trip(void **state) {
    (void)state;
    tq_image im;
    assert_int_equal(tq_image_init(&im, 200, 100, 0xFFFFFF), TQ_OK);
    tq_image_text(&im, 10, 10, "QAT 8", 0x000000, 2);           /* ink in [10..69] x [10..23] */
    tq_image_line(&im, 0, 80, 199, 80, 0xFF0000);                /* a red line along y = 80 */
    uint8_t digit[28 * 28] = {0};
    for (int i = 0; i < 28; i++) digit[i * 28 + 14] = 255;       /* a stroke in a 28x28 "digit" */
    tq_image_gray(&im, 150, 5, digit, 28, 28, 1, 1);
    char path[] = "/tmp/tq_png_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(tq_image_save_png(&im, path), TQ_OK);
    int w, h;
    uint8_t *p = decode(path, &w, &h);
    assert_non_null(p);
    assert_int_equal(w, 200);
    assert_int_equal(h, 100);
    assert_true(ink_in(p, w, 10, 10, 69, 23) > 40);              /* the text is there */
    assert_int_equal(ink_in(p, w, 80, 30, 140, 70), 0);          /* nothing was drawn here */
    const uint8_t *red = p + ((size_t)80 * w + 100) * 3;
    assert_true(red[0] == 255 && red[1] == 0 && red[2] == 0);
    assert_int_equal(ink_in(p, w, 150 + 14, 5, 150 + 14, 5 + 27), 28); /* the digit's stroke, inverted: dark */
    free(p);
    /* a folder that does not exist: an error naming it, no file */
    assert_int_equal(tq_image_save_png(&im, "/nonexistent/dir/x.png"), TQ_E_IO);
    assert_non_null(strstr(tq_last_error(), "/nonexistent/dir/x.png"));
    tq_image_free(&im);
    unlink(path);
}

static void plot_maps_data_to_pixels(void **state) {
    (void)state;
    tq_image im;
    assert_int_equal(tq_image_init(&im, 400, 300, 0xFFFFFF), TQ_OK);
    tq_plot p;
    tq_plot_init(&p, &im, 0, 0, 400, 300, 0, 10, -1, 1, "t", "x", "y");
    assert_int_equal(tq_plot_px(&p, 0), p.x0);
    assert_int_equal(tq_plot_px(&p, 10), p.x1);
    assert_int_equal(tq_plot_py(&p, -1), p.y1);
    assert_int_equal(tq_plot_py(&p, 1), p.y0);
    double x[2] = {0, 10}, y[2] = {0, 0};
    tq_plot_line(&p, x, y, 2, 0x0000FF, 1);
    int ym = tq_plot_py(&p, 0);
    const uint8_t *q = im.rgb + ((size_t)ym * im.w + (p.x0 + p.x1) / 2) * 3;
    assert_true(q[2] == 255 && q[0] == 0); /* the curve crosses the middle at y = 0 */
    tq_image_free(&im);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(canvas_round_trip),
        cmocka_unit_test(plot_maps_data_to_pixels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
#else
int main(void) {
    printf("built without libpng: nothing to test\n");
    return 77;
}
#endif
