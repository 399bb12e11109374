#define _POSIX_C_SOURCE 200809L
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "src/status.h"
#include "layers/model.h"

static void print_default(const cli_opt *o) {
    if (o->shown) {
        printf(" [%s]", o->shown);
        return;
    }
    switch (o->type) {
    case CLI_INT: printf(" [%d]", *(int *)o->dst); break;
    case CLI_U64: printf(" [%llu]", (unsigned long long)*(uint64_t *)o->dst); break;
    case CLI_FLOAT: printf(" [%g]", (double)*(float *)o->dst); break;
    case CLI_STR: printf(" [%s]", *(const char **)o->dst ? *(const char **)o->dst : "none"); break;
    case CLI_FLAG: break;
    }
}

static void usage(const cli_cmd *cmd, const cli_opt *opts, int n_opts) {
    printf("usage: tinyqat %s %s\n%s\n\noptions (default in brackets):\n", cmd->name, cmd->args, cmd->summary);
    for (int i = 0; i < n_opts; i++) {
        const char *meta = opts[i].type == CLI_FLAG ? "" : opts[i].type == CLI_STR ? " S" : " N";
        char left[40];
        snprintf(left, sizeof left, "%s%s", opts[i].name, meta);
        printf("  %-22s %s", left, opts[i].help);
        print_default(&opts[i]);
        printf("\n");
    }
    printf("  %-22s %s\n", "--help", "show this help");
}

/* val is one of the comma-separated choices */
static int is_choice(const char *choices, const char *val) {
    size_t n = strlen(val);
    for (const char *p = choices; p && *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == n && !strncmp(p, val, n)) return 1;
        p = comma ? comma + 1 : NULL;
    }
    return 0;
}

/* Levenshtein distance, for names up to 63 characters (longer: far) */
static int distance(const char *a, const char *b) {
    size_t n = strlen(a), m = strlen(b);
    if (n > 63 || m > 63) return 99;
    int d[64][64];
    for (size_t i = 0; i <= n; i++) d[i][0] = (int)i;
    for (size_t j = 0; j <= m; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= n; i++)
        for (size_t j = 1; j <= m; j++) {
            int sub = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]), del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
            d[i][j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
    return d[n][m];
}

const char *cli_closest(const char *typed, const char *const *names, int n) {
    const char *best = NULL;
    int bd = 3;
    for (int i = 0; i < n; i++) {
        int d = distance(typed, names[i]);
        if (d < bd && 2 * d < (int)strlen(typed)) bd = d, best = names[i];
    }
    return best;
}

static int bad(const cli_cmd *cmd, const char *fmt, const char *a, const char *b) {
    fprintf(stderr, "tinyqat %s: ", cmd->name);
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, " (see 'tinyqat %s --help')\n", cmd->name);
    return 2;
}

int cli_parse(const cli_cmd *cmd, cli_opt *opts, int n_opts, int argc, char **argv, const char **pos, int *n_pos) {
    *n_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(cmd, opts, n_opts);
            return 1;
        }
        if (a[0] != '-' || a[1] == '\0' || (a[1] != '-' && !(a[1] >= 'a' && a[1] <= 'z'))) {
            if (*n_pos >= cmd->n_pos_max) return bad(cmd, "unexpected argument '%s'%s", a, "");
            pos[(*n_pos)++] = a;
            continue;
        }
        /* --name=value or --name value */
        char name[64];
        const char *val = strchr(a, '=');
        size_t nlen = val ? (size_t)(val - a) : strlen(a);
        if (nlen >= sizeof name) return bad(cmd, "unknown option '%s'%s", a, "");
        memcpy(name, a, nlen);
        name[nlen] = '\0';
        cli_opt *o = NULL;
        for (int k = 0; k < n_opts; k++)
            if (!strcmp(opts[k].name, name)) o = &opts[k];
        if (!o) {
            const char *names[64], *near;
            int k = 0;
            for (; k < n_opts && k < 63; k++) names[k] = opts[k].name;
            names[k++] = "--help";
            char hint[96] = "";
            if ((near = cli_closest(name, names, k)) != NULL) snprintf(hint, sizeof hint, "; did you mean %s?", near);
            return bad(cmd, "unknown option '%s'%s", name, hint);
        }
        if (o->type == CLI_FLAG) {
            if (val) return bad(cmd, "option %s takes no value%s", name, "");
            *(int *)o->dst = 1;
            continue;
        }
        if (val) val++;
        else if (i + 1 < argc) val = argv[++i];
        else return bad(cmd, "option %s needs a value%s", name, "");
        if (o->type == CLI_STR) {
            if (!*val) return bad(cmd, "option %s: empty value%s", name, "");
            if (o->choices && !is_choice(o->choices, val)) {
                char msg[256];
                snprintf(msg, sizeof msg, "'%s' is not one of %s", val, o->choices);
                return bad(cmd, "option %s: %s", name, msg);
            }
            *(const char **)o->dst = val;
            continue;
        }
        char *end;
        errno = 0;
        double v = o->type == CLI_U64 ? (double)strtoull(val, &end, 10) : strtod(val, &end);
        if (end == val || *end || errno || !isfinite(v) || (o->type == CLI_U64 && val[0] == '-'))
            return bad(cmd, "option %s: '%s' is not a number", name, val);
        if ((o->type == CLI_INT || o->type == CLI_U64) && v != floor(v))
            return bad(cmd, "option %s: '%s' is not a whole number", name, val);
        if (v < o->lo || v > o->hi) {
            char range[96];
            snprintf(range, sizeof range, "'%s' is out of range [%g, %g]", val, o->lo, o->hi);
            return bad(cmd, "option %s: %s", name, range);
        }
        if (o->type == CLI_INT) *(int *)o->dst = (int)v;
        else if (o->type == CLI_U64) *(uint64_t *)o->dst = strtoull(val, NULL, 10);
        else *(float *)o->dst = (float)v;
    }
    if (*n_pos < cmd->n_pos_min) return bad(cmd, "missing argument: %s%s", cmd->args, "");
    return 0;
}

const char *cli_derived_out(const char *in, const char *suffix, char *buf, size_t cap) {
    size_t n = strlen(in);
    const char *slash = strrchr(in, '/'), *dot = strrchr(in, '.');
    if (dot && (!slash || dot > slash) && dot != in && dot[-1] != '/') n = (size_t)(dot - in);
    if (n >= 4 && (!strncmp(in + n - 4, "-qat", 4) || !strncmp(in + n - 4, "-ptq", 4))) n -= 4;
    snprintf(buf, cap, "%.*s%s", (int)n, in, suffix);
    return buf;
}

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double cli_peak_rss_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0; /* Linux reports KiB */
}

cJSON *cli_json_new(void) { return cJSON_CreateObject(); }

void cli_json_num(cJSON *o, const char *key, double v, int decimals) {
    double p = pow(10.0, decimals);
    if (isfinite(v)) cJSON_AddNumberToObject(o, key, round(v * p) / p);
    else cJSON_AddNullToObject(o, key); /* JSON has no NaN: null says "no value" */
}

void cli_json_str(cJSON *o, const char *key, const char *v) { cJSON_AddStringToObject(o, key, v ? v : ""); }

void cli_json_print(cJSON *o) {
    char *s = o ? cJSON_PrintUnformatted(o) : NULL;
    if (s) printf("%s\n", s);
    else fprintf(stderr, "tinyqat: out of memory while writing the JSON line\n");
    cJSON_free(s);
    cJSON_Delete(o);
}

int cli_fail(const char *what) {
    fprintf(stderr, "tinyqat: %s%s%s\n", what ? what : "", what ? ": " : "", tq_last_error());
    return 1;
}

void cli_progress_start(cli_progress *p) {
    p->enabled = isatty(STDERR_FILENO);
    p->t0 = p->last = cli_now();
}

void cli_progress_update(cli_progress *p, const char *label, long done, long total, const char *extra) {
    if (!p->enabled) return;
    double now = cli_now();
    if (done < total && now - p->last < 0.1) return; /* redraw at most 10 times a second */
    p->last = now;
    int width = 30, fill = total > 0 ? (int)(width * done / total) : width;
    char bar[64];
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
    bar[width] = '\0';
    fprintf(stderr, "\r%s [%s] %3d%% %s\033[K", label, bar, total > 0 ? (int)(100 * done / total) : 100,
            extra ? extra : "");
    fflush(stderr);
}

void cli_progress_end(cli_progress *p) {
    if (p->enabled) fprintf(stderr, "\r\033[K");
}

static volatile sig_atomic_t sigint_seen;
static struct sigaction sigint_old;

static void on_sigint(int sig) {
    (void)sig;
    sigint_seen = 1;
    signal(SIGINT, SIG_DFL);
}

volatile sig_atomic_t *cli_catch_sigint(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigint_seen = 0;
    sigaction(SIGINT, &sa, &sigint_old);
    return &sigint_seen;
}

void cli_release_sigint(void) { sigaction(SIGINT, &sigint_old, NULL); }

/* --checkpoint-every without --checkpoint: OUT.ckpt. Sets cfg->checkpoint_path. */
void cli_checkpoint_path(tq_train_cfg *cfg, const char *out, const char *ckpt, char *buf, size_t cap) {
    if (cfg->checkpoint_every <= 0) return;
    if (!ckpt) {
        snprintf(buf, cap, "%s.ckpt", out);
        ckpt = buf;
    }
    cfg->checkpoint_path = ckpt;
}

int cli_load_data(const char *dataset, const char *dir_opt, tq_dataset *train, tq_dataset *test) {
    char dir[1024];
    if (train) memset(train, 0, sizeof *train);
    if (test) memset(test, 0, sizeof *test);
    if (tq_dataset_dir(dataset, dir_opt, dir, sizeof dir) != TQ_OK) { /* an unknown name: a usage error */
        fprintf(stderr, "tinyqat: %s\n", tq_last_error());
        return 2;
    }
    tq_status st = train ? tq_dataset_load(train, dir, TQ_SPLIT_TRAIN) : TQ_OK;
    if (st == TQ_OK && test) st = tq_dataset_load(test, dir, TQ_SPLIT_TEST);
    if (st == TQ_OK && train && test) st = tq_dataset_check_pair(train, test);
    if (st == TQ_OK && train && train->classes < 2) {
        fprintf(stderr, "tinyqat: %s: the labels name only %u class(es)\n", train->source, train->classes);
        st = TQ_E_FORMAT;
    } else if (st == TQ_E_IO) { /* the files are not there: say how to get them */
        int fashion = dataset && !strcmp(dataset, "fashion-mnist") && !(dir_opt && *dir_opt);
        fprintf(stderr, "tinyqat: %s (%s)\n", tq_last_error(),
                fashion ? "install Debian's dataset-fashion-mnist, or run data/fetch_data.sh fashion-mnist"
                        : "fetch MNIST with data/fetch_data.sh, or point --data or MNIST_DIR at it");
    } else if (st != TQ_OK) {
        fprintf(stderr, "tinyqat: %s\n", tq_last_error());
    }
    if (st != TQ_OK) {
        tq_dataset_free(train);
        tq_dataset_free(test);
        return 1;
    }
    return 0;
}

int cli_train_callback(const tq_train_event *ev, void *user) {
    cli_train_view *v = user;
    char extra[96];
    switch (ev->kind) {
    case TQ_EVENT_STEP:
        if (!v->started) cli_progress_start(&v->bar);
        v->started = 1;
        snprintf(extra, sizeof extra, "epoch %d/%d loss %.4f %.0f samples/s", ev->epoch, ev->epochs, ev->loss,
                 (double)ev->samples_done / (ev->seconds + 1e-9));
        cli_progress_update(&v->bar, v->label, ev->samples_done, ev->samples, extra);
        break;
    case TQ_EVENT_EPOCH:
        if (v->started) cli_progress_end(&v->bar);
        v->started = 0;
        if (!v->quiet)
            printf("%s epoch %d/%d  loss %.4f  test accuracy %.2f%%  %.2f s\n", v->label, ev->epoch, ev->epochs, ev->loss,
                   (double)ev->test_acc, ev->seconds);
        break;
    case TQ_EVENT_CHECKPOINT:
        if (!v->quiet) printf("%s: checkpoint after epoch %d -> %s\n", v->label, ev->epoch, ev->path);
        break;
    case TQ_EVENT_RESUMED:
        if (!v->quiet) printf("%s: resuming after epoch %d of %d\n", v->label, ev->epoch, ev->epochs);
        break;
    }
    return 0;
}

int cli_train_finish(tq_status st, const char *cmd, const tq_model *m, const char *out, const char *checkpoint) {
    if (st == TQ_E_INTERRUPTED) {
        fprintf(stderr, "tinyqat %s: %s; nothing saved to %s%s%s\n", cmd, tq_last_error(), out,
                checkpoint ? "; resume from the last checkpoint with --resume " : "", checkpoint ? checkpoint : "");
        return 130;
    }
    if (st != TQ_OK) {
        fprintf(stderr, "tinyqat: %s: %s%s%s\n", cmd, tq_last_error(), checkpoint ? "; the last good checkpoint (if any) is " : "",
                checkpoint ? checkpoint : "");
        return 1;
    }
    if (tq_model_save(m, out) != TQ_OK) return cli_fail("save");
    return 0;
}
