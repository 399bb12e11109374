/* NumPy's .npy files (format versions 1.0 to 3.0): the array file every Python user can write
 * (numpy.save) and read (numpy.load). tinyqat reads C-ordered little-endian int8, uint8, float32
 * and float64 arrays, and writes int8 and float32 ones.
 *
 * The layout: the magic "\x93NUMPY", a major and a minor version byte, the header's length (2
 * bytes little-endian in version 1, 4 in versions 2 and 3), the header (a Python dict literal:
 * 'descr', 'fortran_order', 'shape'; padded with spaces and a newline so the data starts 64-byte
 * aligned), then the data. */
#ifndef TQ_NPY_H
#define TQ_NPY_H

#include <stddef.h>
#include <stdint.h>

#include "../src/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { TQ_NPY_I8 = 0, TQ_NPY_U8 = 1, TQ_NPY_F32 = 2, TQ_NPY_F64 = 3 } tq_npy_type;

#define TQ_NPY_MAX_DIMS 8

typedef struct {
    tq_npy_type type;
    int ndim;                         /* 0: a scalar */
    int64_t shape[TQ_NPY_MAX_DIMS];
    size_t count;                     /* values: the product of the shape */
    void *data;                       /* count values of type, tq_malloc'd, owned */
} tq_npy;

/* Read path into a (initialized here; tq_npy_free it). TQ_E_FORMAT, naming the file, for a file
 * that is not .npy, is cut short, or holds what tinyqat does not read (another type, Fortran
 * order, big-endian); TQ_E_IO when it cannot be read. */
tq_status tq_npy_read(tq_npy *a, const char *path);
void tq_npy_free(tq_npy *a); /* NULL-safe */

/* Write count = prod(shape) values of type (TQ_NPY_I8 or TQ_NPY_F32) as a version 1.0 .npy,
 * atomically. */
tq_status tq_npy_write(const char *path, tq_npy_type type, const int64_t *shape, int ndim, const void *data);

#ifdef __cplusplus
}
#endif
#endif
