/* tq_pnginfo FILE.png [X0 Y0 X1 Y1]: decode a PNG with libpng and print "WIDTH HEIGHT INK", INK
 * being the number of non-white pixels (in the box, when given). The tests use it to check that
 * a picture decodes, has the expected size and is not blank where something must be drawn. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef TQ_HAVE_PNG
#include <png.h>
#endif

int main(int argc, char **argv) {
    if (argc != 2 && argc != 6) {
        fprintf(stderr, "usage: tq_pnginfo FILE.png [X0 Y0 X1 Y1]\n");
        return 2;
    }
#ifdef TQ_HAVE_PNG
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&img, argv[1])) {
        fprintf(stderr, "tq_pnginfo: %s: %s\n", argv[1], img.message);
        return 1;
    }
    img.format = PNG_FORMAT_RGB;
    unsigned char *buf = malloc(PNG_IMAGE_SIZE(img));
    if (!buf || !png_image_finish_read(&img, NULL, buf, 0, NULL)) {
        fprintf(stderr, "tq_pnginfo: %s: cannot decode\n", argv[1]);
        free(buf);
        return 1;
    }
    long x0 = 0, y0 = 0, x1 = (long)img.width - 1, y1 = (long)img.height - 1, ink = 0;
    if (argc == 6) x0 = atol(argv[2]), y0 = atol(argv[3]), x1 = atol(argv[4]), y1 = atol(argv[5]);
    for (long y = y0; y <= y1 && y < (long)img.height; y++)
        for (long x = x0; x <= x1 && x < (long)img.width; x++) {
            const unsigned char *p = buf + ((size_t)y * img.width + (size_t)x) * 3;
            ink += p[0] < 250 || p[1] < 250 || p[2] < 250;
        }
    printf("%u %u %ld\n", img.width, img.height, ink);
    free(buf);
    return 0;
#else
    (void)argv;
    fprintf(stderr, "tq_pnginfo: built without libpng\n");
    return 77;
#endif
}
