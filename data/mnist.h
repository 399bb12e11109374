/* MNIST: the IDX file reader and the dataset.
 *
 * IDX (LeCun's format): a big-endian u32 magic 0x000008TT-ND (TT = 0x08 unsigned bytes, ND =
 * number of dimensions), ND big-endian u32 sizes, then the bytes, row-major. MNIST's images
 * are 0x00000803 [n][28][28], its labels 0x00000801 [n]. Files may be raw or gzip-compressed
 * (detected from the content, not the name).
 *
 * Everything a header claims is checked against what the file really holds: magic, number of
 * dimensions, sizes (no zero, no overflow, at most 2 GiB), exact length (truncated or trailing
 * bytes are errors), gzip integrity; for the dataset also 28x28 images, labels 0..9 and equal
 * counts. Errors name the file. Images stay uint8 in memory (47 MB for the training set). */
#ifndef TQ_MNIST_H
#define TQ_MNIST_H

#include <stdint.h>

#include "src/status.h"

typedef struct {
    uint32_t n, rows, cols;
    uint8_t *images;   /* n*rows*cols, row-major, owned */
    uint8_t *labels;   /* n, owned */
} tq_mnist;

typedef enum { TQ_MNIST_TRAIN = 0, TQ_MNIST_TEST = 1 } tq_mnist_split;

/* Read <dir>/{train,t10k}-{images-idx3,labels-idx1}-ubyte, raw or with a .gz suffix (the raw
 * name is tried first). On error *ds is left empty. */
tq_status tq_mnist_load(tq_mnist *ds, const char *dir, tq_mnist_split split);
void tq_mnist_free(tq_mnist *ds); /* NULL-safe, idempotent */

/* Read an IDX file of unsigned bytes: checks the magic against expect_magic (which also fixes
 * the number of dimensions, at most max_dims), fills dims[0..ndims), and returns the data in a
 * tq_malloc'd buffer the caller frees. */
tq_status tq_idx_read_u8(const char *path, uint32_t expect_magic, uint32_t *dims, int max_dims, int *ndims,
                         uint8_t **data);

/* Where data lives: cli_dir if given, else $MNIST_DIR if set and non-empty, else "data/mnist". */
const char *tq_mnist_default_dir(const char *cli_dir);

#endif
