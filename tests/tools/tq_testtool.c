/* Helpers the shell tests need, in C so the tests depend on nothing but the build:
 *
 *   tq_testtool json FILE          the last non-empty line of FILE parses as one JSON object
 *   tq_testtool nan-weight IN OUT  copy the float model IN with its first weight set to NaN
 *                                  (and the CRC fixed), so the loader's NaN check is what fails
 *   tq_testtool images PATH N H W [C]  an IDX file of N H x W (x C) images (value i is i*7 mod 256)
 *   tq_testtool labels PATH N K    an IDX file of N labels, i mod K
 *   tq_testtool tqm-set IN OUT L F V  copy the integer model IN (format 3) with field F (0 kind,
 *                                  1 in_h, 2 in_w, 3 in_c, 4 out_h, 5 out_w, 6 out_c, 7 k, 8 stride,
 *                                  9 pad, 10 relu, 11 w_bits, 12 w_bytes, 13 in_zp, 14 out_zp, ...)
 *                                  of layer L set to V
 * Exit 0 on success, 1 with a one-line message otherwise. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>
#include <zlib.h>

static unsigned char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    unsigned char *b = malloc(cap + 1);
    size_t r;
    while (b && (r = fread(b + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            unsigned char *nb = realloc(b, 2 * cap + 1);
            if (!nb) { free(b); b = NULL; break; }
            b = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (b) b[n] = 0;
    *len = n;
    return b;
}

static int check_json(const char *path) {
    size_t n;
    char *s = (char *)slurp(path, &n);
    if (!s) { fprintf(stderr, "tq_testtool: %s: cannot read\n", path); return 1; }
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ')) s[--n] = 0;
    char *line = strrchr(s, '\n');
    line = line ? line + 1 : s;
    cJSON *j = cJSON_Parse(line);
    int ok = j && cJSON_IsObject(j);
    if (!ok) fprintf(stderr, "tq_testtool: %s: last line is not a JSON object: %.200s\n", path, line);
    cJSON_Delete(j);
    free(s);
    return !ok;
}

/* b (n bytes, freed here) with its last 4 bytes set to the CRC32 of the rest, written to out */
static int save_with_crc(unsigned char *b, size_t n, const char *out) {
    uint32_t crc = (uint32_t)crc32(0L, b, (uInt)(n - 4));
    for (int i = 0; i < 4; i++) b[n - 4 + i] = (unsigned char)(crc >> (8 * i));
    FILE *f = fopen(out, "wb");
    int ok = f && fwrite(b, 1, n, f) == n;
    if (f && fclose(f) != 0) ok = 0;
    if (!ok) fprintf(stderr, "tq_testtool: %s: cannot write\n", out);
    free(b);
    return !ok;
}

static int nan_weight(const char *in, const char *out) {
    size_t n;
    unsigned char *b = slurp(in, &n);
    const char *key = "layers.0.weight";
    unsigned char *p = b && n > 8 ? memmem(b, n, key, strlen(key)) : NULL;
    if (!p || (size_t)(p - b) + strlen(key) + 12 > n - 4) { fprintf(stderr, "tq_testtool: %s: no %s tensor\n", in, key); free(b); return 1; }
    p += strlen(key) + 8; /* past the name, rows and cols */
    const uint32_t nan_bits = 0x7fc00000u;
    memcpy(p, &nan_bits, 4); /* the file is little-endian, like the machines the tests run on */
    return save_with_crc(b, n, out);
}

static uint32_t rd32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Walks the records as src/qmodel.h lays them out, written again here: 15 u32 and 2 f32, then for
 * linear (0), conv (1) and depthwise (2) layers 16 bytes per channel and the weights. */
static int tqm_set(const char *in, const char *out, int layer, int field, long value) {
    size_t n;
    unsigned char *b = slurp(in, &n);
    if (!b || n < 16 || rd32(b + 4) != 3) {
        fprintf(stderr, "tq_testtool: %s: not a format-3 integer model\n", in);
        free(b);
        return 1;
    }
    size_t off = 8 + 2 + (b[8] | (size_t)b[9] << 8) + 4;
    for (int l = 0; l < layer && off + 76 <= n; l++) {
        uint32_t kind = rd32(b + off), out_c = rd32(b + off + 24), w_bytes = rd32(b + off + 48);
        off += 76 + (kind <= 2 ? 16 * (size_t)out_c + w_bytes : 0);
    }
    if (field < 0 || field > 16 || off + 76 > n - 4) {
        fprintf(stderr, "tq_testtool: %s: no layer %d field %d\n", in, layer, field);
        free(b);
        return 1;
    }
    uint32_t v = (uint32_t)value;
    for (int i = 0; i < 4; i++) b[off + 4 * (size_t)field + (size_t)i] = (unsigned char)(v >> (8 * i));
    return save_with_crc(b, n, out);
}

static void be32(FILE *f, unsigned long v) {
    for (int b = 3; b >= 0; b--) fputc((int)((v >> (8 * b)) & 0xff), f);
}

static int write_idx(const char *path, int images, unsigned long n, unsigned long a, unsigned long b, unsigned long c) {
    FILE *f = fopen(path, "wb");
    if (!f) { fprintf(stderr, "tq_testtool: %s: cannot write\n", path); return 1; }
    be32(f, images ? (c > 1 ? 0x804 : 0x803) : 0x801);
    be32(f, n);
    if (images) {
        be32(f, a);
        be32(f, b);
        if (c > 1) be32(f, c);
        for (unsigned long i = 0; i < n * a * b * c; i++) fputc((int)((i * 7) % 256), f);
    } else {
        for (unsigned long i = 0; i < n; i++) fputc((int)(i % a), f);
    }
    return fclose(f) != 0;
}

int main(int argc, char **argv) {
    if ((argc == 6 || argc == 7) && !strcmp(argv[1], "images"))
        return write_idx(argv[2], 1, strtoul(argv[3], NULL, 10), strtoul(argv[4], NULL, 10), strtoul(argv[5], NULL, 10),
                         argc == 7 ? strtoul(argv[6], NULL, 10) : 1);
    if (argc == 5 && !strcmp(argv[1], "labels"))
        return write_idx(argv[2], 0, strtoul(argv[3], NULL, 10), strtoul(argv[4], NULL, 10), 0, 1);
    if (argc == 3 && !strcmp(argv[1], "json")) return check_json(argv[2]);
    if (argc == 4 && !strcmp(argv[1], "nan-weight")) return nan_weight(argv[2], argv[3]);
    if (argc == 7 && !strcmp(argv[1], "tqm-set"))
        return tqm_set(argv[2], argv[3], atoi(argv[4]), atoi(argv[5]), strtol(argv[6], NULL, 10));
    fprintf(stderr, "usage: tq_testtool json FILE | nan-weight IN OUT | images PATH N H W [C] | labels PATH N K | "
                    "tqm-set IN OUT LAYER FIELD VALUE\n");
    return 2;
}
