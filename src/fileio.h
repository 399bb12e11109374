/* Whole-file read and atomic write, shared by every tinyqat file format.
 *
 * Atomic write: the bytes go to "<path>.tmp.<pid>", are flushed and fsync'ed, then renamed over
 * <path>. A crash, a full disk or Ctrl-C at any point leaves either the old file or the new
 * one, never half of one; on failure the temporary file is removed. */
#ifndef TQ_FILEIO_H
#define TQ_FILEIO_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

/* Read all of `path` (at most max_bytes) into a tq_malloc'd buffer the caller frees with tq_free. */
tq_status tq_file_read_all(const char *path, size_t max_bytes, unsigned char **data, size_t *len);

tq_status tq_file_write_atomic(const char *path, const void *data, size_t len);

/* A growable byte buffer for serializing little-endian formats. Errors are sticky (ok = 0). */
typedef struct {
    unsigned char *p;
    size_t len, cap;
    int ok;
} tq_buf;

void tq_buf_init(tq_buf *b);
void tq_buf_free(tq_buf *b);
void tq_buf_put(tq_buf *b, const void *src, size_t n);
void tq_buf_u8(tq_buf *b, uint8_t v);
void tq_buf_u16(tq_buf *b, uint16_t v);
void tq_buf_u32(tq_buf *b, uint32_t v);
void tq_buf_f32(tq_buf *b, float v);

/* tinyqat's binary files share one frame: 4 magic bytes, a u32 format version, the body, and a
 * u32 CRC32 (zlib) of everything before it. */

/* Start a framed buffer: magic and version. */
void tq_buf_frame_begin(tq_buf *b, const char magic[4], uint32_t version);
/* Append the CRC and write the file atomically; frees the buffer in every case. */
tq_status tq_buf_frame_save(tq_buf *b, const char *path);

typedef struct tq_reader tq_reader;
/* Read `path` (at most max_bytes), check the magic, the version (min..max; *version gets it when
 * not NULL) and the CRC, and set *r over the body (after the version, before the CRC). `what`
 * names the format in messages ("model file"). *data is the caller's to tq_free, also on error. */
tq_status tq_file_read_frame(const char *path, size_t max_bytes, const char magic[4], uint32_t min_version,
                             uint32_t max_version, const char *what, unsigned char **data, tq_reader *r, uint32_t *version);

/* A bounds-checked reader over a byte range. Reading past the end sets ok = 0 and yields 0. */
struct tq_reader {
    const unsigned char *p;
    size_t len, pos;
    int ok;
};

uint8_t tq_rd_u8(tq_reader *r);
uint16_t tq_rd_u16(tq_reader *r);
uint32_t tq_rd_u32(tq_reader *r);
float tq_rd_f32(tq_reader *r);
const unsigned char *tq_rd_bytes(tq_reader *r, size_t n); /* NULL when fewer than n remain */

#endif
