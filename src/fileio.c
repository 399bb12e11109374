#define _POSIX_C_SOURCE 200809L /* fileno, fsync, getpid */
#include "src/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "src/alloc.h"

#include <zlib.h>

tq_status tq_file_read_all(const char *path, size_t max_bytes, unsigned char **data, size_t *len) {
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) TQ_FAIL(TQ_E_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        TQ_FAIL(TQ_E_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > max_bytes) {
        fclose(f);
        TQ_FAIL(TQ_E_FORMAT, "%s: %lld bytes, more than the %zu this format allows", path, (long long)st.st_size,
                max_bytes);
    }
    size_t n = (size_t)st.st_size;
    unsigned char *buf = tq_malloc(n ? n : 1);
    if (!buf) {
        fclose(f);
        TQ_FAIL(TQ_E_NOMEM, "%s: cannot allocate %zu bytes", path, n);
    }
    size_t got = fread(buf, 1, n, f);
    int err = ferror(f);
    fclose(f);
    if (got != n || err) {
        tq_free(buf);
        TQ_FAIL(TQ_E_IO, "%s: read %zu of %zu bytes", path, got, n);
    }
    *data = buf;
    *len = n;
    return TQ_OK;
}

tq_status tq_file_write_atomic(const char *path, const void *data, size_t len) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        TQ_FAIL(TQ_E_ARG, "%s: path too long", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) TQ_FAIL(TQ_E_IO, "%s: cannot create: %s", path, strerror(errno));
    const unsigned char *p = data;
    size_t left = len;
    while (left) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            TQ_FAIL(TQ_E_IO, "%s: write failed: %s", path, strerror(e));
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        int e = errno;
        unlink(tmp);
        TQ_FAIL(TQ_E_IO, "%s: cannot flush: %s", path, strerror(e));
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        TQ_FAIL(TQ_E_IO, "%s: cannot rename into place: %s", path, strerror(e));
    }
    return TQ_OK;
}

void tq_buf_init(tq_buf *b) {
    memset(b, 0, sizeof *b);
    b->ok = 1;
}

void tq_buf_free(tq_buf *b) {
    tq_free(b->p);
    memset(b, 0, sizeof *b);
}

void tq_buf_put(tq_buf *b, const void *src, size_t n) {
    if (!b->ok || n == 0) return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n) cap *= 2;
        unsigned char *p = tq_realloc(b->p, cap);
        if (!p) {
            b->ok = 0;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

/* Little-endian by construction, whatever the host's byte order. */
void tq_buf_u8(tq_buf *b, uint8_t v) { tq_buf_put(b, &v, 1); }
void tq_buf_u16(tq_buf *b, uint16_t v) {
    unsigned char s[2] = {(unsigned char)v, (unsigned char)(v >> 8)};
    tq_buf_put(b, s, 2);
}
void tq_buf_u32(tq_buf *b, uint32_t v) {
    unsigned char s[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16), (unsigned char)(v >> 24)};
    tq_buf_put(b, s, 4);
}
void tq_buf_f32(tq_buf *b, float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    tq_buf_u32(b, u);
}

const unsigned char *tq_rd_bytes(tq_reader *r, size_t n) {
    if (!r->ok || n > r->len - r->pos) {
        r->ok = 0;
        return NULL;
    }
    const unsigned char *p = r->p + r->pos;
    r->pos += n;
    return p;
}
uint8_t tq_rd_u8(tq_reader *r) {
    const unsigned char *p = tq_rd_bytes(r, 1);
    return p ? p[0] : 0;
}
uint16_t tq_rd_u16(tq_reader *r) {
    const unsigned char *p = tq_rd_bytes(r, 2);
    return p ? (uint16_t)(p[0] | p[1] << 8) : 0;
}
uint32_t tq_rd_u32(tq_reader *r) {
    const unsigned char *p = tq_rd_bytes(r, 4);
    return p ? (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24 : 0;
}
float tq_rd_f32(tq_reader *r) {
    uint32_t u = tq_rd_u32(r);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

void tq_buf_frame_begin(tq_buf *b, const char magic[4], uint32_t version) {
    tq_buf_init(b);
    tq_buf_put(b, magic, 4);
    tq_buf_u32(b, version);
}

tq_status tq_buf_frame_save(tq_buf *b, const char *path) {
    if (b->ok) tq_buf_u32(b, (uint32_t)crc32(0L, b->p, (uInt)b->len));
    tq_status st = b->ok ? tq_file_write_atomic(path, b->p, b->len)
                         : tq_error_set_(TQ_E_NOMEM, __FILE__, __LINE__, "%s: out of memory while serializing", path);
    tq_buf_free(b);
    return st;
}

tq_status tq_file_read_frame(const char *path, size_t max_bytes, const char magic[4], uint32_t min_version,
                             uint32_t max_version, const char *what, unsigned char **data, tq_reader *r, uint32_t *version) {
    size_t len;
    TQ_TRY(tq_file_read_all(path, max_bytes, data, &len));
    if (len < 12 || memcmp(*data, magic, 4) != 0) TQ_FAIL(TQ_E_FORMAT, "%s: not a tinyqat %s (bad magic)", path, what);
    *r = (tq_reader){*data, len - 4, 4, 1};
    uint32_t v = tq_rd_u32(r);
    if (v < min_version || v > max_version) {
        if (min_version == max_version)
            TQ_FAIL(TQ_E_FORMAT, "%s: %s format version %u, this tinyqat reads version %u", path, what, v, max_version);
        TQ_FAIL(TQ_E_FORMAT, "%s: %s format version %u, this tinyqat reads versions %u to %u", path, what, v, min_version,
                max_version);
    }
    if (version) *version = v;
    tq_reader tail = {*data, len, len - 4, 1};
    uint32_t want = tq_rd_u32(&tail), got = (uint32_t)crc32(0L, *data, (uInt)(len - 4));
    if (want != got) TQ_FAIL(TQ_E_FORMAT, "%s: checksum mismatch (file says %08x, contents give %08x): corrupted", path, want, got);
    return TQ_OK;
}
