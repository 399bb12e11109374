/* Command-line plumbing shared by the tinyqat subcommands: an option table that parses,
 * range-checks and prints itself (with defaults) for --help, and small output helpers. */
#ifndef TQ_CLI_H
#define TQ_CLI_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>

#include <cJSON.h>

#include "data/dataset.h"
#include "pipeline/train.h"

typedef enum { CLI_INT, CLI_U64, CLI_FLOAT, CLI_STR, CLI_FLAG } cli_type;

typedef struct {
    const char *name;   /* "--epochs" */
    cli_type type;
    void *dst;          /* int*, uint64_t*, float*, const char**, int* (flag) */
    const char *help;
    double lo, hi;      /* accepted range for numbers (inclusive) */
    const char *choices; /* strings: the accepted values, comma-separated ("a,b"), or NULL for any */
    const char *shown;   /* what --help shows as the default when the variable holds a stand-in
                            ("the last epoch" for -2), or NULL to show the variable */
} cli_opt;

typedef struct {
    const char *name;     /* "train" */
    const char *args;     /* "[options]" or "MODEL [options]" */
    const char *summary;  /* one line */
    int n_pos_min, n_pos_max;
} cli_cmd;

/* Parse argv (argv[0] is the command name). Positional arguments go to pos[0..]. Returns 0 to
 * go on, 1 when --help was printed (exit 0), 2 on a usage error (a one-line message was
 * printed to stderr; exit 2). */
int cli_parse(const cli_cmd *cmd, cli_opt *opts, int n_opts, int argc, char **argv, const char **pos, int *n_pos);

/* The name among names[0..n) closest to `typed` (edit distance at most 2, and less than half its
 * length), for "did you mean"; NULL when none is that close. */
const char *cli_closest(const char *typed, const char *const *names, int n);

/* A progress bar on stderr when it is a terminal; silent otherwise. */
typedef struct {
    int enabled;
    double t0, last;
} cli_progress;
void cli_progress_start(cli_progress *p);
void cli_progress_update(cli_progress *p, const char *label, long done, long total, const char *extra);
void cli_progress_end(cli_progress *p);

/* Ctrl-C during a long run: cli_catch_sigint installs a handler that only sets the returned flag
 * (the training loop stops after its current step; a second Ctrl-C kills as usual);
 * cli_release_sigint restores the previous handler. */
volatile sig_atomic_t *cli_catch_sigint(void);
void cli_release_sigint(void);

/* --json: a command builds one cJSON object and prints it as its last stdout line (cJSON does
 * the escaping, so any path is valid JSON). cli_json_num rounds to `decimals` places first, so
 * 98.16f prints as 98.16, not 98.16000366. cli_json_print prints and deletes the object. */
cJSON *cli_json_new(void);
void cli_json_num(cJSON *o, const char *key, double v, int decimals);
void cli_json_str(cJSON *o, const char *key, const char *v);
void cli_json_print(cJSON *o);

/* --dataset NAME and --data DIR, the same in every command that reads images. */
#define CLI_DATA_OPTIONS(dataset, dir)                                                                                   \
    {"--dataset", CLI_STR, &(dataset), "mnist or fashion-mnist (where it lives: see the README's Data section)", 0, 0,  \
     "mnist,fashion-mnist", "mnist"},                                                                                    \
    {"--data", CLI_STR, &(dir), "a folder of IDX files, {train,t10k}-{images,labels}-idx*-ubyte[.gz] (overrides --dataset)", 0, 0}

/* Load the training and/or the test split (NULL: not wanted) of --dataset/--data; the test split
 * is checked against the training split when both are loaded. On failure prints one line (with
 * how to get the data) and returns the exit status, 2 for an unknown dataset name and 1 for
 * missing or bad files, with nothing left allocated; 0 on success. */
int cli_load_data(const char *dataset, const char *dir, tq_dataset *train, tq_dataset *test);

/* tq_train's callback for the program: a progress bar on a terminal and, unless quiet, a line per
 * epoch and checkpoint, each prefixed by label. */
typedef struct {
    const char *label;
    int quiet;
    cli_progress bar;
    int started;   /* the bar of the current epoch is drawn */
} cli_train_view;
int cli_train_callback(const tq_train_event *ev, void *user);

/* After tq_train: print the one-line message for an interruption (exit 130, the checkpoint to
 * resume from) or a failure (exit 1, the last good checkpoint), or save the model to `out`.
 * Returns the exit status. */
int cli_train_finish(tq_status st, const char *cmd, const tq_model *m, const char *out, const char *checkpoint);

/* --checkpoint-every without --checkpoint: OUT.ckpt (in buf). Sets cfg->checkpoint_path. */
void cli_checkpoint_path(tq_train_cfg *cfg, const char *out, const char *ckpt, char *buf, size_t cap);

/* An output name from an input model's: its extension and a trailing -qat or -ptq dropped, then
 * `suffix` added (convert s-qat.tqf -> s.tqm, ptq s.tqf -> s-ptq.tqf), beside the input. */
const char *cli_derived_out(const char *in, const char *suffix, char *buf, size_t cap);

double cli_now(void);          /* monotonic seconds */
double cli_peak_rss_mb(void);  /* this process's peak resident set size */
int cli_fail(const char *what); /* prints "tinyqat: <what>: <tq_last_error()>" and returns 1 */

#endif
