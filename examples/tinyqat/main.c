/* tinyqat: the command-line program. One function per subcommand; each parses its own options
 * (cli.h prints them with their defaults under --help) and returns the exit status:
 * 0 success, 1 a failure with a one-line message, 2 a usage error. */
#define _POSIX_C_SOURCE 200809L /* fileno, dup */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "plot/canvas.h"
#include "tinyqat.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command COMMANDS[] = {
    {"quantize", cmd_quantize, "quantize a few numbers and show q, the dequantized values and the errors"},
    {"train", cmd_train, "train a float model (MNIST, Fashion-MNIST or any IDX dataset)"},
    {"eval", cmd_eval, "test accuracy, confusion matrix and errors per class of a model"},
    {"ptq", cmd_ptq, "post-training quantization of a float model (calibrated on training data)"},
    {"qat", cmd_qat, "quantization-aware training, fine-tuned from a float model or from scratch"},
    {"experiment", cmd_experiment, "FP32 vs PTQ vs QAT over seeds and bit widths, in one table"},
    {"convert", cmd_convert, "turn a PTQ/QAT model into an integer model file (.tqm)"},
    {"infer", cmd_infer, "integer-only inference on the test set: accuracy, images/s, agreement"},
    {"run", cmd_run, "run an integer model on inputs from a .npy file, its outputs to another"},
    {"export", cmd_export, "write a model as a C module for microcontrollers, TensorFlow Lite or ONNX"},
    {"import", cmd_import, "read a float ONNX model (from PyTorch) into a tinyqat model"},
    {"view", cmd_view, "draw test images, or the ones models get wrong, as a PNG"},
    {"bench", cmd_bench, "time one FP32 training epoch against its matrix products alone"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: tinyqat COMMAND [options]    (tinyqat COMMAND --help for its options)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        fprintf(f, "  %-12s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
    fprintf(f, "\nData: --dataset mnist (the default: $MNIST_DIR, else ./data/mnist, which data/fetch_data.sh fills) or\n"
               "--dataset fashion-mnist (Debian's dataset-fashion-mnist), or --data DIR for any folder of IDX files.\n");
}

/* With --json a failure is JSON too: the command's stderr is captured (and passed on when it
 * ends), and a failing command's last line of it becomes {"error": ..., "exit": N}, the last
 * line of stdout, where a script reads the results. */
static int run_json(int (*run)(int, char **), int argc, char **argv) {
    fflush(stderr);
    FILE *cap = tmpfile();
    int saved = cap ? dup(2) : -1;
    if (saved < 0 || dup2(fileno(cap), 2) < 0) { /* cannot capture: run as usual */
        if (cap) fclose(cap);
        if (saved >= 0) close(saved);
        return run(argc, argv);
    }
    int rc = run(argc, argv);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(cap);
    char line[4096], last[4096] = "";
    while (fgets(line, sizeof line, cap)) {
        fputs(line, stderr);
        if (line[0] != '\n') snprintf(last, sizeof last, "%s", line);
    }
    fclose(cap);
    if (rc != 0) {
        last[strcspn(last, "\n")] = '\0';
        cJSON *j = cli_json_new();
        cli_json_str(j, "error", last[0] ? last : "failed");
        cli_json_num(j, "exit", rc, 0);
        cli_json_print(j);
    }
    return rc;
}

int main(int argc, char **argv) {
    atexit(tq_canvas_release_fonts); /* the program owns the process's fontconfig: leak checkers find nothing */
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("tinyqat %s\n", tq_version());
        printf("pictures: %s\n", tq_canvas_supported() ? "PNG and SVG (cairo)" : "none (built without cairo)");
        return 0;
    }
    int json = 0;
    for (int i = 2; i < argc; i++) json |= !strcmp(argv[i], "--json");
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        if (!strcmp(argv[1], COMMANDS[i].name))
            return json ? run_json(COMMANDS[i].run, argc - 1, argv + 1) : COMMANDS[i].run(argc - 1, argv + 1);
    const char *names[sizeof COMMANDS / sizeof COMMANDS[0]];
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++) names[i] = COMMANDS[i].name;
    const char *near = cli_closest(argv[1], names, (int)(sizeof names / sizeof names[0]));
    if (near) fprintf(stderr, "tinyqat: unknown command '%s'; did you mean '%s'? (see 'tinyqat --help')\n", argv[1], near);
    else fprintf(stderr, "tinyqat: unknown command '%s' (see 'tinyqat --help')\n", argv[1]);
    return 2;
}
