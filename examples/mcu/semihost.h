/* ARM semihosting without a C library: BKPT 0xAB with the operation in r0, the argument in r1. */
#ifndef TQ_SEMIHOST_H
#define TQ_SEMIHOST_H

#include <stdint.h>

static inline int sh_call(int op, const void *arg) {
    register int r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

static inline void sh_write0(const char *s) { sh_call(0x04, s); } /* SYS_WRITE0 */

/* SYS_EXIT_EXTENDED: ADP_Stopped_ApplicationExit with a status; QEMU exits with it. */
__attribute__((noreturn)) static inline void sh_exit(int status) {
    uint32_t block[2] = {0x20026u, (uint32_t)status};
    sh_call(0x20, block);
    for (;;) {
    }
}

#endif
