/* tinyqat status codes and the last-error buffer.
 *
 * Every fallible public function returns a tq_status. TQ_OK is 0, errors are negative
 * (compare with the constants, never with a literal). The human-readable detail -- which
 * file, which field, which value -- is left in a thread-local buffer read by tq_last_error().
 * The library never calls exit() or abort() on bad input; only the programs in examples/
 * turn a status into an exit code.
 *
 *     tq_status st = tq_mnist_load(&ds, dir, TQ_SPLIT_TEST);
 *     if (st != TQ_OK) { fprintf(stderr, "tinyqat: %s\n", tq_last_error()); return 1; }
 */
#ifndef TQ_STATUS_H
#define TQ_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    TQ_OK = 0,
    TQ_E_ARG = -1,     /* a bad argument: NULL, out of range, absurd size */
    TQ_E_NOMEM = -2,   /* an allocation failed */
    TQ_E_IO = -3,      /* open/read/write/rename failed */
    TQ_E_FORMAT = -4,  /* a file is not what it claims: magic, version, size, CRC */
    TQ_E_SHAPE = -5,   /* tensor shapes do not fit together */
    TQ_E_NUMERIC = -6, /* NaN/Inf or a value outside what the math allows */
    TQ_E_INTERRUPTED = -7 /* the caller asked a long computation to stop (Ctrl-C) */
} tq_status;

/* "ok", "bad argument", ... ; never NULL. */
const char *tq_status_str(tq_status s);

/* The message of the most recent error set on this thread, e.g.
 * "data/mnist/t10k-labels-idx1-ubyte: bad IDX magic 0x00000804 (want 0x00000801)".
 * "" when none was set. The pointer stays valid until the next error on this thread. */
const char *tq_last_error(void);

/* Where in tinyqat's source the last error was raised ("data/mnist.c:88"), for bug reports. */
const char *tq_last_error_where(void);

/* Record an error (printf-style message) and return `code`. Use through TQ_FAIL. */
tq_status tq_error_set_(tq_status code, const char *file, int line, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

void tq_error_clear(void);

#define TQ_FAIL(code, ...) return tq_error_set_((code), __FILE__, __LINE__, __VA_ARGS__)
/* Propagate a non-OK status unchanged (the callee already wrote the message). */
#define TQ_TRY(expr) do { tq_status tq_try_s_ = (expr); if (tq_try_s_ != TQ_OK) return tq_try_s_; } while (0)

#ifdef __cplusplus
}
#endif
#endif
