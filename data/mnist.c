#include "data/mnist.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "src/alloc.h"

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

tq_status tq_idx_read_u8(const char *path, uint32_t expect_magic, uint32_t *dims, int max_dims, int *ndims,
                         uint8_t **data) {
    *data = NULL;
    *ndims = 0;
    int nd = (int)(expect_magic & 0xff);
    if ((expect_magic & 0xffffff00u) != 0x800u || nd < 1 || nd > max_dims)
        TQ_FAIL(TQ_E_ARG, "%s: bad expected IDX magic 0x%08x", path, expect_magic);
    gzFile f = gzopen(path, "rb"); /* reads gzip or, transparently, raw bytes */
    if (!f) TQ_FAIL(TQ_E_IO, "%s: cannot open: %s", path, strerror(errno ? errno : ENOENT));
    unsigned char hdr[4 + 4 * 4];
    size_t hlen = 4 + 4 * (size_t)nd;
    int64_t got = gz_read_all(f, hdr, 4);
    if (got < 0) return gz_fail(f, path, "cannot read the header");
    if (got < 4) {
        gzclose(f);
        TQ_FAIL(TQ_E_FORMAT, "%s: truncated: %lld bytes, an IDX header needs %zu", path, (long long)got, hlen);
    }
    uint32_t magic = be32(hdr);
    if (magic != expect_magic) {
        gzclose(f);
        TQ_FAIL(TQ_E_FORMAT, "%s: bad IDX magic 0x%08x (want 0x%08x: %s)", path, magic, expect_magic,
                nd == 3 ? "unsigned bytes, 3 dimensions" : "unsigned bytes, 1 dimension");
    }
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

/* Try "<dir>/<name>", then "<dir>/<name>.gz"; the first that exists is read. */
static tq_status read_either(const char *dir, const char *name, uint32_t magic, uint32_t *dims, uint8_t **data,
                             char *used, size_t used_cap) {
    int nd;
    snprintf(used, used_cap, "%s/%s", dir, name);
    FILE *probe = fopen(used, "rb");
    if (!probe) {
        snprintf(used, used_cap, "%s/%s.gz", dir, name);
        probe = fopen(used, "rb");
        if (!probe) TQ_FAIL(TQ_E_IO, "%s/%s: not found (nor %s.gz)", dir, name, name);
    }
    fclose(probe);
    return tq_idx_read_u8(used, magic, dims, 3, &nd, data);
}

tq_status tq_mnist_load(tq_mnist *ds, const char *dir, tq_mnist_split split) {
    memset(ds, 0, sizeof *ds);
    const char *pre = split == TQ_MNIST_TEST ? "t10k" : "train";
    char in[256], ln[256], ip[1024], lp[1024];
    snprintf(in, sizeof in, "%s-images-idx3-ubyte", pre);
    snprintf(ln, sizeof ln, "%s-labels-idx1-ubyte", pre);
    uint32_t idim[3], ldim[1];
    uint8_t *images = NULL, *labels = NULL;
    TQ_TRY(read_either(dir, in, 0x803, idim, &images, ip, sizeof ip));
    tq_status st = read_either(dir, ln, 0x801, ldim, &labels, lp, sizeof lp);
    if (st != TQ_OK) goto fail;
    if (idim[1] != 28 || idim[2] != 28) {
        st = tq_error_set_(TQ_E_FORMAT, __FILE__, __LINE__, "%s: images are %ux%u, MNIST's are 28x28", ip, idim[1], idim[2]);
        goto fail;
    }
    if (idim[0] != ldim[0]) {
        st = tq_error_set_(TQ_E_FORMAT, __FILE__, __LINE__, "%s holds %u images but %s holds %u labels", ip, idim[0], lp,
                           ldim[0]);
        goto fail;
    }
    for (uint32_t i = 0; i < ldim[0]; i++)
        if (labels[i] > 9) {
            st = tq_error_set_(TQ_E_FORMAT, __FILE__, __LINE__, "%s: label %u at index %u is not a digit 0-9", lp,
                               labels[i], i);
            goto fail;
        }
    ds->n = idim[0];
    ds->rows = idim[1];
    ds->cols = idim[2];
    ds->images = images;
    ds->labels = labels;
    return TQ_OK;
fail:
    tq_free(images);
    tq_free(labels);
    return st;
}

void tq_mnist_free(tq_mnist *ds) {
    if (!ds) return;
    tq_free(ds->images);
    tq_free(ds->labels);
    memset(ds, 0, sizeof *ds);
}

const char *tq_mnist_default_dir(const char *cli_dir) {
    if (cli_dir && *cli_dir) return cli_dir;
    const char *env = getenv("MNIST_DIR");
    if (env && *env) return env;
    return "data/mnist";
}
