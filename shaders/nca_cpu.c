/* The x86-64 micro-architecture level of the running CPU, for core/nca/kernels.py to choose
 * among the prebuilt μNCA kernels (built for x86-64-v2, v3 and v4) one that this CPU can run.
 * Built for the baseline (no -march), so it runs everywhere it is loaded.
 *
 * Returns 4 (AVX-512 F/BW/CD/DQ/VL), 3 (AVX2, FMA, BMI2), 2 (SSE4.2, POPCNT), 1 (older), or 0 on
 * other architectures.  __builtin_cpu_supports also checks that the operating system saves the
 * wide registers (XCR0), so a level is only reported where its instructions can run. */
int nca_x86_64_level(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (!(__builtin_cpu_supports("sse4.2") && __builtin_cpu_supports("popcnt")))
        return 1;
    if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2")))
        return 2;
    if (!(__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512cd")
          && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")))
        return 3;
    return 4;
#else
    return 0;
#endif
}
