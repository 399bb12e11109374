#define _POSIX_C_SOURCE 200809L
#include "data/dataset.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "src/alloc.h"
#include "src/fileio.h"

#define TQ_IDX_MAX_BYTES ((uint64_t)1 << 31)

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* gzread in chunks (its length argument is an unsigned int). Returns bytes read, or -1 on a
 * read or decompression error. */
static int64_t gz_read_all(gzFile f, uint8_t *dst, uint64_t n) {
    uint64_t got = 0;
    while (got < n) {
        uint64_t want = n - got > (1u << 30) ? (1u << 30) : n - got;
        int r = gzread(f, dst + got, (unsigned)want);
        if (r < 0) return -1;
        if (r == 0) break;
        got += (uint64_t)r;
    }
    return (int64_t)got;
}

static tq_status gz_fail(gzFile f, const char *path, const char *what) {
    int code;
    const char *msg = gzerror(f, &code);
    tq_status st = tq_error_set_(TQ_E_FORMAT, __FILE__, __LINE__, "%s: %s (%s)", path, what,
                                 code == Z_ERRNO ? strerror(errno) : msg);
    gzclose(f);
    return st;
}

tq_status tq_idx_read_u8(const char *path, int min_dims, int max_dims, uint32_t *dims, int *ndims, uint8_t **data) {
    *data = NULL;
    *ndims = 0;
    if (min_dims < 1 || max_dims > 4 || min_dims > max_dims) TQ_FAIL(TQ_E_ARG, "%s: bad IDX dimension range %d..%d", path, min_dims, max_dims);
    gzFile f = gzopen(path, "rb"); /* reads gzip or, transparently, raw bytes */
    if (!f) TQ_FAIL(TQ_E_IO, "%s: cannot open: %s", path, strerror(errno ? errno : ENOENT));
    unsigned char hdr[4 + 4 * 4];
    int64_t got = gz_read_all(f, hdr, 4);
    if (got < 0) return gz_fail(f, path, "cannot read the header");
    if (got < 4) {
        gzclose(f);
        TQ_FAIL(TQ_E_FORMAT, "%s: truncated: %lld bytes, an IDX header needs at least 8", path, (long long)got);
    }
    uint32_t magic = be32(hdr);
    int nd = (int)(magic & 0xff);
    if ((magic & 0xffffff00u) != 0x800u || nd < min_dims || nd > max_dims) {
        gzclose(f);
        if (min_dims == max_dims)
            TQ_FAIL(TQ_E_FORMAT, "%s: bad IDX magic 0x%08x (want 0x%08x: unsigned bytes, %d dimension%s)", path, magic,
                    0x800u | (unsigned)min_dims, min_dims, min_dims > 1 ? "s" : "");
        TQ_FAIL(TQ_E_FORMAT, "%s: bad IDX magic 0x%08x (want unsigned bytes, 0x08, in %d to %d dimensions)", path, magic,
                min_dims, max_dims);
    }
    size_t hlen = 4 + 4 * (size_t)nd;
    got = gz_read_all(f, hdr + 4, hlen - 4);
    if (got < 0) return gz_fail(f, path, "cannot read the header");
    if ((size_t)got < hlen - 4) {
        gzclose(f);
        TQ_FAIL(TQ_E_FORMAT, "%s: truncated inside the header (%lld of %zu bytes)", path, (long long)got + 4, hlen);
    }
    uint64_t total = 1;
    for (int i = 0; i < nd; i++) {
        dims[i] = be32(hdr + 4 + 4 * i);
        if (dims[i] == 0) {
            gzclose(f);
            TQ_FAIL(TQ_E_FORMAT, "%s: dimension %d is 0", path, i);
        }
        total *= dims[i]; /* at most (2^32)^1 before the check below stops it: no overflow */
        if (total > TQ_IDX_MAX_BYTES) {
            gzclose(f);
            TQ_FAIL(TQ_E_FORMAT, "%s: header claims more than 2 GiB of data (dimension %d is %u): absurd size", path,
                    i, dims[i]);
        }
    }
    /* Grow the buffer as the data really arrives, so a header claiming 2 GiB in a 20-byte file
     * costs nothing (and the claim is checked against what the file holds). */
    uint8_t *buf = NULL;
    uint64_t cap = 0;
    got = 0;
    while ((uint64_t)got < total) {
        uint64_t want = cap ? (cap * 2 < total ? cap * 2 : total) : (total < (1u << 20) ? total : (1u << 20));
        uint8_t *nb = tq_realloc(buf, (size_t)want);
        if (!nb) {
            tq_free(buf);
            gzclose(f);
            TQ_FAIL(TQ_E_NOMEM, "%s: cannot allocate %llu bytes", path, (unsigned long long)want);
        }
        buf = nb;
        int64_t r = gz_read_all(f, buf + cap, want - cap);
        if (r < 0) {
            tq_free(buf);
            return gz_fail(f, path, "corrupted data");
        }
        got = (int64_t)cap + r;
        cap = want;
        if ((uint64_t)got < cap) break; /* the stream ended early */
    }
    if ((uint64_t)got < total) {
        tq_free(buf);
        gzclose(f);
        TQ_FAIL(TQ_E_FORMAT, "%s: truncated: header says %llu data bytes, file holds %lld", path,
                (unsigned long long)total, (long long)got);
    }
    unsigned char extra;
    int more = gzread(f, &extra, 1);
    if (more != 0) {
        tq_free(buf);
        if (more < 0) return gz_fail(f, path, "corrupted data after the last item");
        gzclose(f);
        TQ_FAIL(TQ_E_FORMAT, "%s: unexpected bytes after the %llu the header announces", path,
                (unsigned long long)total);
    }
    if (gzclose(f) != Z_OK) {
        tq_free(buf);
        TQ_FAIL(TQ_E_FORMAT, "%s: gzip stream is corrupted (bad checksum or length)", path);
    }
    *ndims = nd;
    *data = buf;
    return TQ_OK;
}

/* "<dir>/<name>" if it exists, else "<dir>/<name>.gz" if that does; 0 when neither. */
static int find_file(const char *dir, const char *name, char *used, size_t cap) {
    const char *suffix[2] = {"", ".gz"};
    for (int i = 0; i < 2; i++) {
        snprintf(used, cap, "%s/%s%s", dir, name, suffix[i]);
        FILE *probe = fopen(used, "rb");
        if (probe) {
            fclose(probe);
            return 1;
        }
    }
    return 0;
}

tq_status tq_dataset_load_files(tq_dataset *ds, const char *images_path, const char *labels_path) {
    if (!ds || !images_path || !labels_path) TQ_FAIL(TQ_E_ARG, "dataset: the dataset and both paths are required");
    memset(ds, 0, sizeof *ds);
    uint32_t idim[4] = {0, 0, 0, 1}, ldim[1];
    int ind, lnd;
    uint8_t *images = NULL, *labels = NULL;
    TQ_TRY(tq_idx_read_u8(images_path, 3, 4, idim, &ind, &images));
    tq_status st = tq_idx_read_u8(labels_path, 1, 1, ldim, &lnd, &labels);
    if (st != TQ_OK) goto fail;
    if (idim[0] != ldim[0]) {
        st = tq_error_set_(TQ_E_FORMAT, __FILE__, __LINE__, "%s holds %u images but %s holds %u labels", images_path, idim[0],
                           labels_path, ldim[0]);
        goto fail;
    }
    if ((uint64_t)idim[1] * idim[2] * idim[3] > ((uint64_t)1 << 24)) {
        st = tq_error_set_(TQ_E_FORMAT, __FILE__, __LINE__, "%s: images of %ux%ux%u values: more than tinyqat takes (2^24)",
                           images_path, idim[1], idim[2], idim[3]);
        goto fail;
    }
    uint32_t k = 0;
    for (uint32_t i = 0; i < ldim[0]; i++) k = labels[i] >= k ? labels[i] + 1u : k;
    ds->n = idim[0];
    ds->h = idim[1];
    ds->w = idim[2];
    ds->c = idim[3];
    ds->classes = k;
    ds->images = images;
    ds->labels = labels;
    snprintf(ds->source, sizeof ds->source, "%s", labels_path);
    return TQ_OK;
fail:
    tq_free(images);
    tq_free(labels);
    return st;
}

tq_status tq_dataset_load(tq_dataset *ds, const char *dir, tq_split split) {
    if (!ds || !dir) TQ_FAIL(TQ_E_ARG, "dataset: the dataset and its folder are required");
    if (split != TQ_SPLIT_TRAIN && split != TQ_SPLIT_TEST) TQ_FAIL(TQ_E_ARG, "dataset: unknown split %d", (int)split);
    memset(ds, 0, sizeof *ds);
    const char *pre = split == TQ_SPLIT_TEST ? "t10k" : "train";
    char name[64], ip[1024], lp[1024];
    snprintf(name, sizeof name, "%s-images-idx3-ubyte", pre);
    if (!find_file(dir, name, ip, sizeof ip)) {
        snprintf(name, sizeof name, "%s-images-idx4-ubyte", pre);
        if (!find_file(dir, name, ip, sizeof ip))
            TQ_FAIL(TQ_E_IO, "%s/%s-images-idx3-ubyte: not found (nor .gz, nor idx4)", dir, pre);
    }
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte", pre);
    if (!find_file(dir, name, lp, sizeof lp)) TQ_FAIL(TQ_E_IO, "%s/%s: not found (nor %s.gz)", dir, name, name);
    return tq_dataset_load_files(ds, ip, lp);
}

tq_status tq_dataset_check_pair(const tq_dataset *train, tq_dataset *test) {
    if (test->h != train->h || test->w != train->w || test->c != train->c)
        TQ_FAIL(TQ_E_SHAPE, "test images are %ux%ux%u but training images are %ux%ux%u", test->h, test->w, test->c, train->h,
                train->w, train->c);
    if (train->classes < 2) TQ_FAIL(TQ_E_FORMAT, "%s: the training labels name only %u class(es)", train->source, train->classes);
    for (uint32_t i = 0; i < test->n; i++)
        if (test->labels[i] >= train->classes)
            TQ_FAIL(TQ_E_FORMAT, "%s: label %u at index %u, but the training labels are 0..%u", test->source, test->labels[i], i,
                    train->classes - 1);
    test->classes = train->classes;
    return TQ_OK;
}

tq_status tq_dataset_check_labels(const tq_dataset *ds, int classes) {
    for (uint32_t i = 0; i < ds->n; i++)
        if (ds->labels[i] >= (uint32_t)classes)
            TQ_FAIL(TQ_E_SHAPE, "%s: label %u at index %u, but the model has %d outputs (classes 0..%d)", ds->source, ds->labels[i], i,
                    classes, classes - 1);
    return TQ_OK;
}

void tq_dataset_norm(const tq_dataset *ds, float *mean, float *std) {
    /* A histogram of the 256 pixel values makes this exact and order-independent. */
    uint64_t hist[256] = {0};
    size_t total = (size_t)ds->n * tq_dataset_pixels(ds);
    for (size_t i = 0; i < total; i++) hist[ds->images[i]]++;
    double s = 0, s2 = 0, n = (double)total;
    for (int p = 0; p < 256; p++) {
        double x = p / 255.0;
        s += x * (double)hist[p];
        s2 += x * x * (double)hist[p];
    }
    double m = n > 0 ? s / n : 0, var = n > 0 ? s2 / n - m * m : 0;
    double sd = var > 0 ? sqrt(var) : 1;
    /* four decimals: a subset of the same data gives the same numbers (MNIST: 0.1307, 0.3081) */
    *mean = (float)(round(m * 1e4) / 1e4);
    *std = (float)(round(sd * 1e4) / 1e4);
    if (!(*std > 0)) *std = 1.0f;
}

tq_status tq_dataset_from_memory(tq_dataset *ds, const uint8_t *images, const uint8_t *labels, uint32_t n, uint32_t h, uint32_t w,
                                 uint32_t c, uint32_t classes, const char *name) {
    if (!ds || !images || !labels) TQ_FAIL(TQ_E_ARG, "dataset: the dataset, the images and the labels are required");
    memset(ds, 0, sizeof *ds);
    const char *nm = name ? name : "dataset in memory";
    if (!n || !h || !w || !c) TQ_FAIL(TQ_E_ARG, "%s: %u images of %ux%ux%u: no size may be 0", nm, n, h, w, c);
    const uint64_t px = (uint64_t)h * w * c;
    if (px > ((uint64_t)1 << 24) || px * n > TQ_IDX_MAX_BYTES)
        TQ_FAIL(TQ_E_ARG, "%s: %u images of %ux%ux%u values: more than tinyqat takes", nm, n, h, w, c);
    uint32_t k = 0;
    for (uint32_t i = 0; i < n; i++) k = labels[i] >= k ? labels[i] + 1u : k;
    if (classes && classes < k) TQ_FAIL(TQ_E_ARG, "%s: label %u, but %u classes", nm, k - 1, classes);
    ds->images = tq_malloc((size_t)(px * n));
    ds->labels = tq_malloc(n);
    if (!ds->images || !ds->labels) {
        tq_dataset_free(ds);
        TQ_FAIL(TQ_E_NOMEM, "%s: out of memory for %u images", nm, n);
    }
    memcpy(ds->images, images, (size_t)(px * n));
    memcpy(ds->labels, labels, n);
    ds->n = n, ds->h = h, ds->w = w, ds->c = c, ds->classes = classes ? classes : k;
    snprintf(ds->source, sizeof ds->source, "%s", nm);
    return TQ_OK;
}

/* An IDX file: magic 0x0000 08 ND, ND big-endian sizes, the bytes. */
static tq_status write_idx(const char *path, const uint32_t *dims, int nd, const uint8_t *data, size_t len) {
    size_t head = 4 + 4 * (size_t)nd;
    uint8_t *buf = tq_malloc(head + len);
    if (!buf) TQ_FAIL(TQ_E_NOMEM, "%s: out of memory", path);
    buf[0] = 0, buf[1] = 0, buf[2] = 8, buf[3] = (uint8_t)nd;
    for (int d = 0; d < nd; d++)
        for (int b = 0; b < 4; b++) buf[4 + 4 * d + b] = (uint8_t)(dims[d] >> (24 - 8 * b));
    memcpy(buf + head, data, len);
    tq_status st = tq_file_write_atomic(path, buf, head + len);
    tq_free(buf);
    return st;
}

tq_status tq_dataset_save_idx(const tq_dataset *ds, const char *images_path, const char *labels_path) {
    if (!ds || !images_path || !labels_path || !ds->images || !ds->labels || !ds->n)
        TQ_FAIL(TQ_E_ARG, "dataset: a loaded dataset and both paths are required");
    const uint32_t idims[4] = {ds->n, ds->h, ds->w, ds->c}, ldims[1] = {ds->n};
    TQ_TRY(write_idx(images_path, idims, ds->c == 1 ? 3 : 4, ds->images, (size_t)ds->n * tq_dataset_pixels(ds)));
    return write_idx(labels_path, ldims, 1, ds->labels, ds->n);
}

void tq_dataset_free(tq_dataset *ds) {
    if (!ds) return;
    tq_free(ds->images);
    tq_free(ds->labels);
    memset(ds, 0, sizeof *ds);
}

tq_status tq_dataset_dir(const char *name, const char *dir_opt, char *out, size_t cap) {
    if (dir_opt && *dir_opt) {
        snprintf(out, cap, "%s", dir_opt);
        return TQ_OK;
    }
    if (!name || !*name || !strcmp(name, "mnist")) {
        const char *env = getenv("MNIST_DIR");
        snprintf(out, cap, "%s", env && *env ? env : "data/mnist");
        return TQ_OK;
    }
    if (!strcmp(name, "fashion-mnist")) {
        const char *env = getenv("FASHION_MNIST_DIR");
        struct stat st;
        if (env && *env) snprintf(out, cap, "%s", env);
        else if (stat("data/fashion-mnist", &st) == 0) snprintf(out, cap, "data/fashion-mnist");
        else snprintf(out, cap, "%s", TQ_FASHION_MNIST_SYSTEM_DIR);
        return TQ_OK;
    }
    TQ_FAIL(TQ_E_ARG, "unknown dataset '%s' (mnist or fashion-mnist, or give a folder of IDX files with --data)", name);
}
