/* tinyqat quantize: the first lesson, no model needed. Quantize numbers given on the command line
 * (or a generated uniform tensor) and show q, the dequantized values and the errors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "src/alloc.h"
#include "src/quant.h"
#include "src/rng.h"

#define MAX_VALUES 64

int cmd_quantize(int argc, char **argv) {
    int bits = 8, naive = 0, uniform = 0, show = 10, qlo = 1, qhi = -1, json = 0;
    float lo_r = NAN, hi_r = NAN, lo_u = -1.0f, hi_u = 1.0f;
    const char *scheme = "affine";
    uint64_t seed = 0;
    cli_opt opts[] = {
        {"--bits", CLI_INT, &bits, "bits (2..8)", 2, 8},
        {"--scheme", CLI_STR, &scheme, "affine (int8 [-128, 127], any zero point) or symmetric (z = 0, [-qmax, qmax])", 0, 0},
        {"--min", CLI_FLOAT, &lo_r, "range minimum", -1e30, 1e30, NULL, "the smallest value"},
        {"--max", CLI_FLOAT, &hi_r, "range maximum", -1e30, 1e30, NULL, "the largest value"},
        {"--naive-zero-point", CLI_FLAG, &naive, "use the seed article's z = round(-min/s) (wrong for signed ranges)", 0, 0},
        {"--uniform", CLI_INT, &uniform, "quantize N values drawn uniformly from [--lo, --hi] instead", 0, 10000000},
        {"--lo", CLI_FLOAT, &lo_u, "--uniform's lower end", -1e30, 1e30},
        {"--hi", CLI_FLOAT, &hi_u, "--uniform's upper end", -1e30, 1e30},
        {"--seed", CLI_U64, &seed, "--uniform's seed", 0, 1.8e19},
        {"--qmin", CLI_INT, &qlo, "override the integer range's low end (with --qmax), e.g. the article's 0..5", -32768, 32767, NULL,
         "the scheme's"},
        {"--qmax", CLI_INT, &qhi, "override the integer range's high end", -32768, 32767, NULL, "the scheme's"},
        {"--show", CLI_INT, &show, "rows of the table to print for --uniform", 0, 1000},
        {"--json", CLI_FLAG, &json, "end with one JSON line of results", 0, 0},
    };
    static const cli_cmd cmd = {"quantize", "[NUMBERS...] [options]",
                                "Quantize numbers and show q = clamp(z + round(x/s)), x^ = (q - z) s and the errors.", 0,
                                MAX_VALUES};
    const char *pos[MAX_VALUES];
    int n_pos, rc = cli_parse(&cmd, opts, sizeof opts / sizeof opts[0], argc, argv, pos, &n_pos);
    if (rc) return rc == 1 ? 0 : 2;
    int symmetric = !strcmp(scheme, "symmetric");
    if (!symmetric && strcmp(scheme, "affine")) {
        fprintf(stderr, "tinyqat quantize: --scheme must be affine or symmetric, not '%s'\n", scheme);
        return 2;
    }
    if ((n_pos == 0) == (uniform == 0)) {
        fprintf(stderr, "tinyqat quantize: give numbers or --uniform N (see 'tinyqat quantize --help')\n");
        return 2;
    }
    if (uniform && !(hi_u > lo_u)) {
        fprintf(stderr, "tinyqat quantize: --hi must be above --lo\n");
        return 2;
    }
    size_t n = uniform ? (size_t)uniform : (size_t)n_pos;
    float *x = tq_malloc(n * sizeof(float));
    if (!x) return cli_fail("quantize");
    tq_rng r;
    tq_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) {
        if (uniform) {
            x[i] = tq_rng_uniform_in(&r, lo_u, hi_u);
            continue;
        }
        char *end;
        x[i] = strtof(pos[i], &end);
        if (end == pos[i] || *end || !isfinite(x[i])) {
            fprintf(stderr, "tinyqat quantize: '%s' is not a finite number\n", pos[i]);
            tq_free(x);
            return 2;
        }
    }
    float mn = x[0], mx = x[0];
    for (size_t i = 1; i < n; i++) mn = fminf(mn, x[i]), mx = fmaxf(mx, x[i]);
    if (!isnan(lo_r)) mn = lo_r;
    if (!isnan(hi_r)) mx = hi_r;
    tq_qparams p;
    int32_t qmin, qmax;
    tq_qrange(bits, symmetric, &qmin, &qmax);
    if (qlo <= qhi) {
        if (symmetric && qlo != -qhi) {
            fprintf(stderr, "tinyqat quantize: a symmetric range needs --qmin = -qmax\n");
            tq_free(x);
            return 2;
        }
        qmin = qlo, qmax = qhi;
    } else if (qlo != 1 || qhi != -1) {
        fprintf(stderr, "tinyqat quantize: --qmin must be below --qmax\n");
        tq_free(x);
        return 2;
    }
    tq_status st = symmetric ? tq_qparams_symmetric(mn, mx, qmax, &p) : tq_qparams_affine(mn, mx, qmin, qmax, &p);
    if (st != TQ_OK) {
        tq_free(x);
        return cli_fail("quantize");
    }
    const char *zrule = symmetric ? "z = 0" : "z = qmin - round(lo/s)";
    if (naive) {
        p.zero_point = tq_zero_point_naive(mn, p.scale, p.qmin, p.qmax);
        zrule = "z = round(-min/s), the seed's formula";
    }
    if (qlo <= qhi) printf("%s, range [%g, %g] -> integers [%d, %d] (%d levels)\n", scheme, (double)mn, (double)mx, p.qmin, p.qmax, p.qmax - p.qmin + 1);
    else printf("%d-bit %s, range [%g, %g] -> integers [%d, %d]\n", bits, scheme, (double)mn, (double)mx, p.qmin, p.qmax);
    printf("scale s = %.9g   zero point z = %d   (%s)\n\n", (double)p.scale, p.zero_point, zrule);
    size_t rows = uniform ? (size_t)show : n;
    cJSON *j = json ? cli_json_new() : NULL, *jq = j ? cJSON_AddArrayToObject(j, "q") : NULL,
          *jx = j ? cJSON_AddArrayToObject(j, "dequantized") : NULL;
    if (rows) printf("%14s %6s %14s %12s\n", "x", "q", "x^ = (q-z)s", "x^ - x");
    for (size_t i = 0; i < rows && i < n; i++) {
        int32_t q = tq_quantize_ref(x[i], p.scale, p.zero_point, p.qmin, p.qmax);
        float xh = tq_dequantize_ref(q, p.scale, p.zero_point);
        printf("%14.6g %6d %14.6g %12.4g\n", (double)x[i], q, (double)xh, (double)(xh - x[i]));
        cJSON_AddItemToArray(jq, cJSON_CreateNumber(q));
        cJSON_AddItemToArray(jx, cJSON_CreateNumber((double)xh));
    }
    double mse, maxe;
    tq_quant_error(x, n, &p, &mse, &maxe);
    printf("%s%zu values: MSE %.6g, largest |error| %.6g (s/2 = %.6g, s^2/12 = %.6g)\n", rows ? "\n" : "", n, mse, maxe, (double)p.scale / 2,
           (double)p.scale * p.scale / 12);
    if (j) {
        cJSON_AddNumberToObject(j, "scale", (double)p.scale);
        cJSON_AddNumberToObject(j, "zero_point", p.zero_point);
        cJSON_AddNumberToObject(j, "qmin", p.qmin);
        cJSON_AddNumberToObject(j, "qmax", p.qmax);
        cJSON_AddNumberToObject(j, "values", (double)n);
        cJSON_AddNumberToObject(j, "mse", mse);
        cJSON_AddNumberToObject(j, "max_abs_error", maxe);
        cli_json_print(j);
    }
    tq_free(x);
    return 0;
}
