//! Keeping freed memory for reuse. Every Candle operation allocates its output, and a
//! training step of a conv net allocates and frees tensors of several MB hundreds of
//! times. glibc serves blocks over 128 KiB with a fresh `mmap` and returns them on
//! `free`, so each such tensor costs page faults to zero its pages again: measured, that
//! was half of a convolution's forward and backward time (`cargo bench -p models --bench
//! conv`: 105 ms -> 52 ms at batch 128, 16x28x28, one thread). Raising the mmap threshold
//! to glibc's maximum (32 MiB) and never trimming the heap keeps those pages mapped.

/// Call once at start-up, before the first tensor. Has no effect outside glibc, and none
/// when `MALLOC_MMAP_THRESHOLD_` is set (the user's choice wins).
pub fn retain_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
        // SAFETY: mallopt only changes allocator parameters; called before any other
        // thread allocates, it races with nothing. A refused value leaves the default.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
            libc::mallopt(libc::M_TOP_PAD, 64 << 20);
        }
    }
}
