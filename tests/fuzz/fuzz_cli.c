/* Command-line parsing: the input, split at NUL bytes, becomes argv for an option table with every
 * kind of option (as the commands have), and the first argument is also tried as a model spec (raw, and through the resolver). */
#include "tests/fuzz/fuzz_common.h"

#include <string.h>

#include "examples/tinyqat/cli.h"
#include "layers/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 4096) return 0;
    char buf[4097];
    memcpy(buf, data, size);
    buf[size] = '\0';
    char *argv[64];
    int argc = 0;
    argv[argc++] = "fuzz";
    for (size_t i = 0; i < size && argc < 63;) {
        argv[argc++] = buf + i;
        i += strlen(buf + i) + 1;
    }
    argv[argc] = NULL;
    int epochs = 5, flag = 0;
    float lr = 1e-3f;
    uint64_t seed = 0;
    const char *str = "x";
    cli_opt opts[] = {
        {"--epochs", CLI_INT, &epochs, "epochs", 1, 1000},
        {"--lr", CLI_FLOAT, &lr, "lr", 1e-7, 10},
        {"--seed", CLI_U64, &seed, "seed", 0, 1.8e19},
        {"--model", CLI_STR, &str, "spec", 0, 0},
        {"--json", CLI_FLAG, &flag, "json", 0, 0},
    };
    static const cli_cmd cmd = {"fuzz", "[A] [B]", "fuzzing", 0, 2};
    const char *pos[2];
    int n_pos;
    FILE *devnull = freopen("/dev/null", "w", stdout);
    (void)devnull;
    (void)cli_parse(&cmd, opts, 5, argc, argv, pos, &n_pos);
    tq_model m;
    const char *spec = argc > 1 ? argv[1] : "";
    if (tq_model_init(&m, spec) == TQ_OK) tq_model_free(&m);
    /* the spec resolver (presets, in/out) with a known and an unknown data size */
    char resolved[TQ_SPEC_MAX];
    (void)tq_model_spec_check(spec);
    const int mnist[3] = {28, 28, 1};
    if (tq_model_spec_resolve(spec, mnist, 10, resolved, sizeof resolved) == TQ_OK && tq_model_init(&m, resolved) == TQ_OK)
        tq_model_free(&m);
    (void)tq_model_spec_resolve(spec, NULL, 0, resolved, sizeof resolved);
    return 0;
}
