#include "vigil_bench_kernels.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define VB_CLONES __attribute__((target_clones("avx512f", "arch=haswell", "default")))
#else
#define VB_CLONES
#endif

#define VB_BLOCK 64

VB_CLONES
void vb_dgemm(int n, const double *a, const double *b, double *c) {
    for (int ii = 0; ii < n; ii += VB_BLOCK)
        for (int kk = 0; kk < n; kk += VB_BLOCK)
            for (int jj = 0; jj < n; jj += VB_BLOCK) {
                int imax = ii + VB_BLOCK < n ? ii + VB_BLOCK : n;
                int kmax = kk + VB_BLOCK < n ? kk + VB_BLOCK : n;
                int jmax = jj + VB_BLOCK < n ? jj + VB_BLOCK : n;
                for (int i = ii; i < imax; i++)
                    for (int k = kk; k < kmax; k++) {
                        const double aik = a[(size_t)i * n + k];
                        const double *brow = b + (size_t)k * n;
                        double *crow = c + (size_t)i * n;
                        for (int j = jj; j < jmax; j++) crow[j] += aik * brow[j];
                    }
            }
}

VB_CLONES
uint64_t vb_hash(const uint64_t *data, size_t words, int rounds) {
    uint64_t h0 = 0x9e3779b97f4a7c15ULL, h1 = 0xbf58476d1ce4e5b9ULL, h2 = 0x94d049bb133111ebULL, h3 = 0x2545f4914f6cdd1dULL;
    for (int r = 0; r < rounds; r++) {
        size_t i = 0;
        for (; i + 4 <= words; i += 4) {
            h0 = (h0 ^ data[i]) * 0xff51afd7ed558ccdULL; h0 ^= h0 >> 29;
            h1 = (h1 ^ data[i + 1]) * 0xc4ceb9fe1a85ec53ULL; h1 ^= h1 >> 31;
            h2 = (h2 ^ data[i + 2]) * 0xff51afd7ed558ccdULL; h2 ^= h2 >> 29;
            h3 = (h3 ^ data[i + 3]) * 0xc4ceb9fe1a85ec53ULL; h3 ^= h3 >> 31;
        }
        for (; i < words; i++) { h0 = (h0 ^ data[i]) * 0xff51afd7ed558ccdULL; h0 ^= h0 >> 29; }
    }
    return h0 ^ h1 ^ h2 ^ h3;
}

VB_CLONES
void vb_stream_copy(double *c, const double *a, size_t n) {
    for (size_t j = 0; j < n; j++) c[j] = a[j];
}

VB_CLONES
void vb_stream_scale(double *b, const double *c, double scalar, size_t n) {
    for (size_t j = 0; j < n; j++) b[j] = scalar * c[j];
}

VB_CLONES
void vb_stream_add(double *c, const double *a, const double *b, size_t n) {
    for (size_t j = 0; j < n; j++) c[j] = a[j] + b[j];
}

VB_CLONES
void vb_stream_triad(double *a, const double *b, const double *c, double scalar, size_t n) {
    for (size_t j = 0; j < n; j++) a[j] = b[j] + scalar * c[j];
}

size_t vb_chase(const size_t *next, size_t start, size_t steps) {
    size_t at = start;
    for (size_t s = 0; s < steps; s++) at = next[at];
    return at;
}

int vb_vector_doubles(void) {
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return 8;
    if (__builtin_cpu_supports("avx2")) return 4;
    if (__builtin_cpu_supports("avx")) return 4;
    return 2;
#elif defined(__aarch64__)
    return 2; /* NEON: two doubles */
#else
    return 1;
#endif
}

int vb_has_fma(void) {
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("fma") ? 1 : 0;
#elif defined(__aarch64__)
    return 1;
#else
    return 0;
#endif
}
