#define _POSIX_C_SOURCE 200809L /* fileno, fsync, getpid */
#include "src/fileio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
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

/* Temporaries PATH.tmp.PID that a killed writer left (its process is gone): removed, so a
 * SIGKILL in the middle of a save costs nothing lasting. Another live process's stays. */
static void remove_stale_temporaries(const char *path) {
    const char *slash = strrchr(path, '/');
    char dir[4096];
    const char *base = slash ? slash + 1 : path;
    if (slash) {
        if ((size_t)(slash - path) >= sizeof dir) return;
        memcpy(dir, path, (size_t)(slash - path));
        dir[slash - path] = '\0';
        if (!dir[0]) dir[0] = '/', dir[1] = '\0';
    } else {
        dir[0] = '.', dir[1] = '\0';
    }
    DIR *d = opendir(dir);
    if (!d) return;
    size_t bl = strlen(base);
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        const char *n = e->d_name;
        if (strncmp(n, base, bl) || strncmp(n + bl, ".tmp.", 5)) continue;
        char *end;
        long pid = strtol(n + bl + 5, &end, 10);
        if (*end || pid <= 0 || pid == (long)getpid()) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* alive, or not ours to judge */
        char full[4096 + 256];
        snprintf(full, sizeof full, "%s/%s", dir, n);
        unlink(full);
    }
    closedir(d);
}

tq_status tq_file_write_atomic(const char *path, const void *data, size_t len) {
    remove_stale_temporaries(path);
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
    if (len >= 4 && len < 12 && !memcmp(*data, magic, 4)) TQ_FAIL(TQ_E_FORMAT, "%s: a %s of %zu bytes: truncated (bad magic)", path, what, len);
    if (len < 12 || memcmp(*data, magic, 4) != 0) {
        /* another of tinyqat's files, or an IDX file: say which, and what reads it */
        const char *hint = len < 4 ? "" : !memcmp(*data, "TQI8", 4) ? ": it is an integer model (.tqm), which infer and export read"
                           : !memcmp(*data, "TQCK", 4) ? ": it is a float or quantized model (.tqf) or a checkpoint, which train, eval, ptq, qat and convert read"
                           : ((*data)[0] == 0 && (*data)[1] == 0 && (*data)[2] == 8) ? ": it looks like an IDX data file (--data reads a folder of them)"
                           : "";
        TQ_FAIL(TQ_E_FORMAT, "%s: not a tinyqat %s%s", path, what, *hint ? hint : " (bad magic)");
    }
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
#ifndef TQ_FUZZING /* a fuzzing build reads past the checksum, so the fuzzer reaches the field checks */
    if (want != got) TQ_FAIL(TQ_E_FORMAT, "%s: checksum mismatch (file says %08x, contents give %08x): corrupted", path, want, got);
#else
    (void)want, (void)got;
#endif
    return TQ_OK;
}
