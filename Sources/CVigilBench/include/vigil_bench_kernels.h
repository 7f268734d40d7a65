#ifndef VIGIL_BENCH_KERNELS_H
#define VIGIL_BENCH_KERNELS_H
/* The hot loops of `vigil bench`, in C so they run at full speed in every build (the target is compiled
 * with -O3) and may use wider vector units where the CPU has them (target_clones picks at load time). */
#include <stddef.h>
#include <stdint.h>

/* c += a × b for n×n row-major matrices, blocked for the caches: 2·n³ floating-point operations. */
void vb_dgemm(int n, const double *a, const double *b, double *c);

/* An integer workload: a multiply-xorshift hash over `words` 64-bit words, `rounds` times. */
uint64_t vb_hash(const uint64_t *data, size_t words, int rounds);

/* STREAM's four kernels (McCalpin): bytes moved per element are 16, 16, 24 and 24. */
void vb_stream_copy(double *c, const double *a, size_t n);
void vb_stream_scale(double *b, const double *c, double scalar, size_t n);
void vb_stream_add(double *c, const double *a, const double *b, size_t n);
void vb_stream_triad(double *a, const double *b, const double *c, double scalar, size_t n);

/* Follows `steps` links of a random cycle through `next`: one dependent load each. Returns where it ended. */
size_t vb_chase(const size_t *next, size_t start, size_t steps);

/* The widest double-precision vector the CPU runs (2 SSE2, 4 AVX2, 8 AVX-512F) and whether it has FMA. */
int vb_vector_doubles(void);
int vb_has_fma(void);
#endif
