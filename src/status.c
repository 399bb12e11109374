#include "src/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char tq_err_msg_[512];
static _Thread_local char tq_err_where_[96];

const char *tq_status_str(tq_status s) {
    switch (s) {
    case TQ_OK: return "ok";
    case TQ_E_ARG: return "bad argument";
    case TQ_E_NOMEM: return "out of memory";
    case TQ_E_IO: return "I/O error";
    case TQ_E_FORMAT: return "bad file format";
    case TQ_E_SHAPE: return "shape mismatch";
    case TQ_E_NUMERIC: return "numeric error";
    case TQ_E_INTERRUPTED: return "interrupted";
    }
    return "unknown status";
}

const char *tq_last_error(void) { return tq_err_msg_; }
const char *tq_last_error_where(void) { return tq_err_where_; }

void tq_error_clear(void) {
    tq_err_msg_[0] = '\0';
    tq_err_where_[0] = '\0';
}

/* Callers may pass tq_last_error() itself as an argument ("%s: %s", path, tq_last_error()) to add
 * context to an error. vsnprintf must not read the buffer it writes (undefined behaviour), so
 * the message is formatted into a local buffer first and copied in afterwards. */
tq_status tq_error_set_(tq_status code, const char *file, int line, const char *fmt, ...) {
    char msg[sizeof tq_err_msg_];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    memcpy(tq_err_msg_, msg, sizeof msg);
    snprintf(tq_err_where_, sizeof tq_err_where_, "%s:%d", file, line);
    return code;
}
