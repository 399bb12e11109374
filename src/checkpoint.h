/* The float model file: named 2-D float tensors plus string metadata, versioned and checksummed.
 *
 * Layout (little-endian):
 *   "TQCK"  u32 version
 *   u32 n_meta    { u16 key_len, key bytes, u16 val_len, val bytes } * n_meta
 *   u32 n_tensors { u16 name_len, name bytes, u32 rows, u32 cols, f32 data[rows*cols] } * n_tensors
 *   u32 crc32 (zlib) of every byte before it
 * Nothing in it depends on time or the machine: the same model gives the same bytes.
 * The loader checks the CRC first, then every count and length against the bytes that are
 * really there, and refuses NaN/Inf values. Saving is atomic (src/fileio.h). */
#ifndef TQ_CHECKPOINT_H
#define TQ_CHECKPOINT_H

#include <stdint.h>

#include "status.h"

#define TQ_CKPT_VERSION 1
#define TQ_CKPT_MAX_META 32
#define TQ_CKPT_MAX_TENSORS 512 /* a MobileNet: 5 a stage, its observers, LSQ scales, optimizer state */
#define TQ_CKPT_MAX_ELEMS (1u << 26) /* per tensor: 256 MiB of floats is already absurd here */

typedef struct {
    char name[48];
    uint32_t rows, cols;
    float *data; /* borrowed (tq_ckpt_add) or owned (tq_ckpt_add_copy, and after a load) */
    int owned;   /* 1: tq_ckpt_free frees data */
} tq_ckpt_tensor;

typedef struct {
    int n_meta;
    char key[TQ_CKPT_MAX_META][32];
    char val[TQ_CKPT_MAX_META][512]; /* a model spec fits (TQ_SPEC_MAX) */
    int n_tensors;
    tq_ckpt_tensor t[TQ_CKPT_MAX_TENSORS];
} tq_ckpt;

void tq_ckpt_init(tq_ckpt *c);
tq_status tq_ckpt_set_meta(tq_ckpt *c, const char *key, const char *val);
/* Borrow `data` (rows*cols floats) until the save: for large arrays that outlive it (weights). */
tq_status tq_ckpt_add(tq_ckpt *c, const char *name, uint32_t rows, uint32_t cols, float *data);
/* Copy `data` into the checkpoint (freed by tq_ckpt_free): for small state built on the fly. */
tq_status tq_ckpt_add_copy(tq_ckpt *c, const char *name, uint32_t rows, uint32_t cols, const float *data);
tq_status tq_ckpt_save(const tq_ckpt *c, const char *path);
tq_status tq_ckpt_load(tq_ckpt *c, const char *path); /* c is initialized by the call */
void tq_ckpt_free(tq_ckpt *c); /* frees the owned tensors and empties c; call after a save too */

const char *tq_ckpt_meta(const tq_ckpt *c, const char *key);              /* NULL if absent */
const tq_ckpt_tensor *tq_ckpt_find(const tq_ckpt *c, const char *name);   /* NULL if absent */

#endif
