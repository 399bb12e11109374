/* tinyqat export: an integer model as a self-contained C module (pipeline/export.h), a TFLite
 * flatbuffer (pipeline/tflite.h) or ONNX (pipeline/onnx.h); a float model as ONNX. */
#define _POSIX_C_SOURCE 200809L /* access */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "pipeline/export.h"
#include "pipeline/onnx.h"
#include "pipeline/tflite.h"

/* A file that can be written: its folder exists and is writable, and it is not a folder. */
static int writable_file(const char *path) {
    char parent[1024];
    struct stat sb;
    snprintf(parent, sizeof parent, "%s", path);
    char *slash = strrchr(parent, '/');
    if (slash) *slash = '\0';
    const char *pd = slash ? (parent[0] ? parent : "/") : ".";
    if (stat(pd, &sb) != 0 || !S_ISDIR(sb.st_mode) || access(pd, W_OK) != 0) {
        fprintf(stderr, "tinyqat export: %s: cannot write there (%s is not a writable folder)\n", path, pd);
        return 0;
    }
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        fprintf(stderr, "tinyqat export: %s: is a folder\n", path);
        return 0;
    }
    return 1;
}

/* 1 when path starts as a float model file (.tqf) does, 0 otherwise (the loaders say what is wrong) */
static int is_float_model(const char *path) {
    char magic[4] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t n = fread(magic, 1, 4, f);
    fclose(f);
    return n == 4 && !memcmp(magic, "TQCK", 4);
}

/* a float model: ONNX only */
static int export_float(const char *path, const char *onnx, int softmax, int json) {
    tq_model m;
    if (tq_model_load(&m, path) != TQ_OK) return cli_fail(NULL);
    int rc = 0;
    if (tq_export_onnx_float(&m, onnx, softmax) != TQ_OK) rc = cli_fail("export");
    else printf("exported %s (%s) to %s (ONNX, float)\n", path, m.spec, onnx);
    if (rc == 0 && json) {
        cJSON *j = cli_json_new();
        cli_json_str(j, "model", path);
        cli_json_str(j, "onnx", onnx);
        cli_json_print(j);
    }
    tq_model_free(&m);
    return rc;
}

int cmd_export(int argc, char **argv) {
    const char *cdir = NULL, *dataset = NULL, *data = NULL, *prefix = NULL, *tflite = NULL, *onnx = NULL;
    int n_test = 0, json = 0, softmax = 0, float_io = 0;
    cli_opt opts[] = {
        {"--c", CLI_STR, &cdir, "write the C module into this folder (created, with its parents)", 0, 0},
        {"--tflite", CLI_STR, &tflite, "write the model as a TensorFlow Lite flatbuffer (int8; weights of 2-4 bits as int8 values)", 0, 0},
        {"--onnx", CLI_STR, &onnx, "write the model as ONNX (opset 13): an integer model as QDQ (int8; weights of 2-4 bits as int8 "
         "values), a float .tqf as plain float", 0, 0},
        {"--softmax", CLI_FLAG, &softmax, "end the .tflite or .onnx with a softmax: probabilities out instead of logits "
         "(TFLite: int8 at 1/256, zero point -128)", 0, 0},
        {"--float-io", CLI_FLAG, &float_io, "give the .tflite a float input and output, as TFLite's converter does by default: a "
         "QUANTIZE first and a DEQUANTIZE last", 0, 0},
        {"--prefix", CLI_STR, &prefix, "start every name of the module with this instead of tq_ (kws_: kws_model_classify), so "
         "two models build into one firmware", 0, 0, NULL, "tq_"},
        {"--test-images", CLI_INT, &n_test, "also write N test images with the host's logits (tq_test_data.h)", 0, 1000000},
        CLI_DATA_OPTIONS(dataset, data),
        {"--json", CLI_FLAG, &json, "end with one JSON line of results", 0, 0},
    };
    static const cli_cmd cmd = {"export", "MODEL.tqm (--c DIR | --tflite FILE | --onnx FILE) [options], or MODEL.tqf --onnx FILE",
                                "Write an integer model as a freestanding C module for microcontrollers, as TensorFlow Lite or as "
                                "ONNX; a float model as ONNX.", 1, 1};
    const char *pos[1];
    int n_pos, rc = cli_parse(&cmd, opts, sizeof opts / sizeof opts[0], argc, argv, pos, &n_pos);
    if (rc) return rc == 1 ? 0 : 2;
    if (float_io && !tflite) {
        fprintf(stderr, "tinyqat export: --float-io is for --tflite\n");
        return 2;
    }
    if (!cdir && !tflite && !onnx) {
        fprintf(stderr, "tinyqat export: --c DIR, --tflite FILE or --onnx FILE is required (see 'tinyqat export --help')\n");
        return 2;
    }
    /* outputs that cannot be written are refused before any work, so nothing is half written */
    struct stat sb;
    if (cdir && stat(cdir, &sb) == 0 && !S_ISDIR(sb.st_mode)) {
        fprintf(stderr, "tinyqat export: %s: exists and is not a folder\n", cdir);
        return 1;
    }
    if ((tflite && !writable_file(tflite)) || (onnx && !writable_file(onnx))) return 1;
    if (is_float_model(pos[0])) {
        if (cdir || tflite) {
            fprintf(stderr, "tinyqat export: %s is a float model: --c and --tflite take an integer model (tinyqat ptq or qat, then "
                            "convert); --onnx takes either\n", pos[0]);
            return 2;
        }
        return export_float(pos[0], onnx, softmax, json);
    }
    tq_qmodel q;
    if (tq_qmodel_load(&q, pos[0]) != TQ_OK) return cli_fail(NULL);
    tq_dataset te;
    memset(&te, 0, sizeof te);
    if (n_test > 0 && (rc = cli_load_data(dataset, data, NULL, &te))) {
        tq_qmodel_free(&q);
        return rc;
    }
    if (tflite && tq_export_tflite(&q, tflite, (softmax ? TQ_TFLITE_SOFTMAX : 0) | (float_io ? TQ_TFLITE_FLOAT_IO : 0)) != TQ_OK)
        rc = cli_fail("export");
    else if (tflite) printf("exported %s (%s) to %s (TensorFlow Lite, int8)\n", pos[0], q.spec, tflite);
    if (rc == 0 && onnx && tq_export_onnx(&q, onnx, softmax) != TQ_OK) rc = cli_fail("export");
    else if (rc == 0 && onnx) printf("exported %s (%s) to %s (ONNX, QDQ int8)\n", pos[0], q.spec, onnx);
    if (rc == 0 && cdir && tq_export_c_prefixed(&q, cdir, pos[0], n_test > 0 ? &te : NULL, n_test, prefix) != TQ_OK) rc = cli_fail("export");
    else if (rc == 0 && cdir)
        printf("exported %s (%s) to %s/: tq_model.{h,c}, int8_infer.{h,c}%s\n", pos[0], q.spec, cdir, n_test ? ", tq_test_data.h" : "");
    if (rc == 0 && json) {
        cJSON *j = cli_json_new();
        cli_json_str(j, "model", pos[0]);
        if (cdir) cli_json_str(j, "dir", cdir);
        if (tflite) cli_json_str(j, "tflite", tflite);
        if (onnx) cli_json_str(j, "onnx", onnx);
        cli_json_num(j, "test_images", n_test && te.n < (uint32_t)n_test ? te.n : (uint32_t)n_test, 0);
        cli_json_num(j, "scratch_bytes", (double)tq_int8_net_predict_scratch_bytes(&q.net), 0);
        cli_json_print(j);
    }
    tq_dataset_free(&te);
    tq_qmodel_free(&q);
    return rc;
}
