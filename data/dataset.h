/* Image classification datasets in IDX files (LeCun's format, MNIST's and Fashion-MNIST's).
 *
 * IDX: a big-endian u32 magic 0x000008ND (0x08 = unsigned bytes, ND = number of dimensions), ND
 * big-endian u32 sizes, then the bytes, row-major. Images are N x H x W (idx3) or N x H x W x C
 * (idx4) uint8; labels are N uint8 (idx1) in 0..K-1. Files may be raw or gzip-compressed
 * (detected from the content, not the name).
 *
 * Everything a header claims is checked against what the file really holds: magic, number of
 * dimensions, sizes (no zero, no overflow, at most 2 GiB), exact length (truncated or trailing
 * bytes are errors), gzip integrity, equal image and label counts. Errors name the file. The
 * class count K is the largest training label + 1; a test set must have the training set's image
 * shape and labels below K (tq_dataset_check_pair). Images stay uint8 in memory. */
#ifndef TQ_DATASET_H
#define TQ_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "../src/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    uint32_t n;            /* images */
    uint32_t h, w, c;      /* each image is [h][w][c] (c = 1 for idx3 files) */
    uint32_t classes;      /* K: largest label + 1 (a test set takes its training set's K) */
    uint8_t *images;       /* [n][h][w][c], owned */
    uint8_t *labels;       /* [n], owned */
    char source[256];      /* the labels file, for messages */
} tq_dataset;

typedef enum { TQ_SPLIT_TRAIN = 0, TQ_SPLIT_TEST = 1 } tq_split;

/* Values per image: h * w * c (what an MLP's first layer takes). */
static inline size_t tq_dataset_pixels(const tq_dataset *ds) { return (size_t)ds->h * ds->w * ds->c; }

/* Read <dir>/{train,t10k}-images-idx3-ubyte (or -idx4-) and <dir>/{train,t10k}-labels-idx1-ubyte,
 * each raw or with a .gz suffix (the raw name is tried first). On error *ds is left empty. */
tq_status tq_dataset_load(tq_dataset *ds, const char *dir, tq_split split);
/* Read an images file and a labels file by path. */
tq_status tq_dataset_load_files(tq_dataset *ds, const char *images_path, const char *labels_path);
void tq_dataset_free(tq_dataset *ds); /* NULL-safe, idempotent */

/* A dataset from the caller's memory: n images of h x w x c bytes ([n][h][w][c]) and n labels,
 * copied (the caller keeps and frees its buffers). classes: the class count, at least the largest
 * label + 1, or 0 to take that; name (or NULL) names it in messages. The sizes are checked as a
 * file's are: none zero, at most 2^24 values an image, 2 GiB in all. */
tq_status tq_dataset_from_memory(tq_dataset *ds, const uint8_t *images, const uint8_t *labels, uint32_t n, uint32_t h, uint32_t w,
                                 uint32_t c, uint32_t classes, const char *name);
/* Write ds as two IDX files: the images as idx3 (c = 1) or idx4, the labels as idx1; each
 * atomically (a failure leaves an existing file as it was). tq_dataset_load_files reads them. */
tq_status tq_dataset_save_idx(const tq_dataset *ds, const char *images_path, const char *labels_path);

/* A test set against its training set: the same image shape, labels below the training set's K
 * (TQ_E_SHAPE / TQ_E_FORMAT with the file named). Sets test->classes to train->classes. */
tq_status tq_dataset_check_pair(const tq_dataset *train, tq_dataset *test);
/* Every label below `classes` (a model's outputs): TQ_E_SHAPE naming the file otherwise. */
tq_status tq_dataset_check_labels(const tq_dataset *ds, int classes);

/* Mean and standard deviation of the pixels as x = p/255, over every image and channel, rounded
 * to four decimals (docs/QUANTIZATION.md §6): the input normalization of a model trained on ds. */
void tq_dataset_norm(const tq_dataset *ds, float *mean, float *std);

/* Where a dataset's files are: dir_opt if given; else for "mnist" (or NULL) $MNIST_DIR, else
 * data/mnist; for "fashion-mnist" $FASHION_MNIST_DIR, else data/fashion-mnist if it exists, else
 * the folder Debian's dataset-fashion-mnist package installs. TQ_E_ARG for another name. */
tq_status tq_dataset_dir(const char *name, const char *dir_opt, char *out, size_t cap);
#define TQ_FASHION_MNIST_SYSTEM_DIR "/usr/share/datasets/fashion-mnist"

/* Read an IDX file of unsigned bytes with min_dims..max_dims dimensions (at most 4): fills
 * dims[0..*ndims) and returns the data in a tq_malloc'd buffer the caller frees. */
tq_status tq_idx_read_u8(const char *path, int min_dims, int max_dims, uint32_t *dims, int *ndims, uint8_t **data);

#ifdef __cplusplus
}
#endif
#endif
