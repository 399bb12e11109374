/* TQ_SIMD_CLONES: compile a hot elementwise loop twice, for AVX2 and for baseline x86-64, and
 * pick one at load time (GCC function multiversioning). The loops it marks are elementwise and
 * the build has -ffp-contract=off, so both clones round every operation the same way: the
 * results do not depend on the CPU. Elsewhere (other compilers, other architectures) it is
 * empty and the loop is built once (also with -DTQ_NO_SIMD_CLONES, to compare). */
#ifndef TQ_SIMD_H
#define TQ_SIMD_H

/* (not under the sanitizers: a clone's resolver runs before their runtime starts, and crashes TSan) */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__) && \
    !defined(__SANITIZE_THREAD__) && !defined(TQ_NO_SIMD_CLONES)
#define TQ_SIMD_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define TQ_SIMD_CLONES
#endif

#endif
