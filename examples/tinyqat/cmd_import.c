/* tinyqat import: a float ONNX model (PyTorch's export) as a tinyqat float model
 * (pipeline/onnx_import.h), or an int8 .tflite as an integer model (pipeline/tflite_import.h). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "pipeline/onnx_import.h"
#include "pipeline/tflite_import.h"

/* 1 when path holds a TensorFlow Lite flatbuffer (its identifier TFL3 at byte 4) */
static int is_tflite(const char *path) {
    unsigned char h[8] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t n = fread(h, 1, 8, f);
    fclose(f);
    return n == 8 && !memcmp(h + 4, "TFL3", 4);
}

/* 1 when the ONNX file holds a QuantizeLinear node (a QDQ model): its bytes hold the name */
static int is_qdq(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    static const char key[] = "QuantizeLinear";
    char buf[65536];
    size_t n, keep = 0;
    int found = 0;
    while (!found && (n = fread(buf + keep, 1, sizeof buf - keep, f)) > 0) {
        n += keep;
        for (size_t i = 0; i + sizeof key - 1 <= n && !found; i++) found = !memcmp(buf + i, key, sizeof key - 1);
        keep = n < sizeof key ? n : sizeof key - 1; /* a name split across two reads */
        memmove(buf, buf + n - keep, keep);
    }
    fclose(f);
    return found;
}

/* the JSON line both kinds of import start with (the caller adds its own and prints it) */
static cJSON *import_json(const char *path, const char *spec, const char *out, int operators, int softmax_dropped) {
    cJSON *j = cli_json_new();
    cli_json_str(j, "model", path);
    cli_json_str(j, "spec", spec);
    cli_json_str(j, "out", out);
    cli_json_num(j, "operators", operators, 0);
    cli_json_num(j, "softmax_dropped", softmax_dropped, 0);
    return j;
}

/* an integer model from a .tflite (tflite) or a QDQ .onnx */
static int import_int8(const char *path, const char *out, int tflite, int json) {
    tq_qmodel q;
    tq_tflite_info info = {0};
    tq_onnx_info oinfo = {0};
    if ((tflite ? tq_import_tflite(&q, path, &info) : tq_import_onnx_int8(&q, path, &oinfo)) != TQ_OK) return cli_fail(NULL);
    if (!tflite) info.operators = oinfo.nodes;
    int rc = 0;
    if (tq_qmodel_save(&q, out) != TQ_OK) rc = cli_fail("import");
    else {
        printf("imported %s (%d operators) as the integer model %s: %d layers, input at scale %g and zero point %d%s%s; saved %s\n", path,
               info.operators, q.spec, q.n_layers, (double)q.layer[0].in_scale, q.layer[0].in_zp,
               oinfo.softmax_dropped ? "; its final softmax left out (logits out)"
               : info.softmax      ? "; its softmax computed in int8 (probabilities out, in steps of 1/256)"
                                   : "",
               info.float_in || info.float_out ? "; its float interface (QUANTIZE in, DEQUANTIZE out) left out: int8 in and out" : "",
               out);
        if (json) {
            cJSON *j = import_json(path, q.spec, out, info.operators, oinfo.softmax_dropped);
            cli_json_num(j, "layers", q.n_layers, 0);
            cli_json_num(j, "softmax", info.softmax, 0);
            cli_json_num(j, "float_in", info.float_in, 0);
            cli_json_num(j, "float_out", info.float_out, 0);
            cli_json_print(j);
        }
    }
    tq_qmodel_free(&q);
    return rc;
}

int cmd_import(int argc, char **argv) {
    const char *out = NULL;
    float mean = NAN, sd = NAN;
    int json = 0, pixels = 0;
    cli_opt opts[] = {
        {"--out", CLI_STR, &out, "the model to write: .tqf from a float ONNX, .tqm from .tflite or QDQ ONNX", 0, 0, NULL,
         "MODEL.tqf or MODEL.tqm beside the input"},
        {"--mean", CLI_FLOAT, &mean, "the model expects x = (p/255 - mean) / std for a pixel p: the mean (default: what the "
         "graph's own leading Sub says, else 0)", -1e6, 1e6},
        {"--std", CLI_FLOAT, &sd, "... and the std (default: the graph's own leading Div, else 1)", 1e-12, 1e6},
        {"--pixels", CLI_FLAG, &pixels, "the model expects raw pixels 0..255 (the same as --std 0.00392157)", 0, 0},
        {"--json", CLI_FLAG, &json, "end with one JSON line of results", 0, 0},
    };
    static const cli_cmd cmd = {"import", "MODEL.onnx [--out MODEL.tqf] | MODEL.tflite or QDQ MODEL.onnx [--out MODEL.tqm] [options]",
                                "Read a float ONNX model (a chain of Conv, BatchNormalization, Relu, pools, Flatten and Gemm, as "
                                "PyTorch exports it) into a tinyqat float model: then train, ptq, qat, convert and export it. Or an "
                                "int8 .tflite (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, pools, MEAN, ADD, CONCATENATION, SOFTMAX; a float "
                                "interface's QUANTIZE and DEQUANTIZE left out) or a QDQ .onnx "
                                "(as export --onnx writes one) into an integer model: then run, export or infer it.", 1, 1};
    const char *pos[1];
    int n_pos, rc = cli_parse(&cmd, opts, sizeof opts / sizeof opts[0], argc, argv, pos, &n_pos);
    if (rc) return rc == 1 ? 0 : 2;
    if (pixels && !isnan(sd)) {
        fprintf(stderr, "tinyqat import: --pixels and --std both set the input's scale: give one\n");
        return 2;
    }
    if (pixels) sd = 1.0f / 255.0f;
    char derived[1024];
    const int tflite = is_tflite(pos[0]);
    if (tflite || is_qdq(pos[0])) {
        if (!isnan(mean) || !isnan(sd)) {
            fprintf(stderr, "tinyqat import: %s is a quantized model: its input quantization is in the file (no --mean, --std or "
                            "--pixels)\n", pos[0]);
            return 2;
        }
        return import_int8(pos[0], out ? out : cli_derived_out(pos[0], ".tqm", derived, sizeof derived), tflite, json);
    }
    if (!out) out = cli_derived_out(pos[0], ".tqf", derived, sizeof derived);
    tq_model m;
    tq_onnx_info info;
    if (tq_import_onnx(&m, pos[0], mean, sd, &info) != TQ_OK) return cli_fail(NULL);
    if (tq_model_save(&m, out) != TQ_OK) rc = cli_fail("import");
    else {
        printf("imported %s (%d operators) as %s: %zu parameters, input x = (p/255 - %g) / %g%s; saved %s\n", pos[0], info.nodes, m.spec,
               m.n_params, (double)m.in_mean, (double)m.in_std, info.softmax_dropped ? "; its final softmax left out (logits out)" : "",
               out);
        if (json) {
            cJSON *j = import_json(pos[0], m.spec, out, info.nodes, info.softmax_dropped);
            cli_json_num(j, "parameters", (double)m.n_params, 0);
            cli_json_num(j, "in_mean", m.in_mean, 6);
            cli_json_num(j, "in_std", m.in_std, 6);
            cli_json_print(j);
        }
    }
    tq_model_free(&m);
    return rc;
}
