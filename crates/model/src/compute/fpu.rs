//! Subnormal floats flushed to zero on every thread that computes.
//!
//! A float below 1.2e-38 is "subnormal", and x86 CPUs take a slow microcode path (tens to
//! hundreds of times slower) for every operation on one. Training can fill tensors with them:
//! Adam's moment estimates of a weight whose gradient stays zero (a dead ReLU unit) shrink by a
//! constant factor every step until they are subnormal. Measured here: the optimizers sweep's
//! Adam lr 0.01 run slowed from 27 s to 340 s per epoch over 15 epochs. With FTZ and DAZ set
//! (as PyTorch's `set_flush_denormal(True)` does), such values become 0, which changes no result
//! that matters (they are below 1e-38) and keeps every step the same speed.

/// Sets flush-to-zero and denormals-are-zero for the calling thread.
#[allow(unsafe_code)]
pub fn flush_subnormals() {
    #[cfg(target_arch = "x86_64")]
    {
        let mut csr: u32 = 0;
        // SAFETY: stmxcsr/ldmxcsr read and write this thread's SSE control register only; bits
        // 15 (FTZ) and 6 (DAZ) change how subnormal floats are handled and nothing else.
        unsafe {
            std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack, preserves_flags));
            csr |= (1 << 15) | (1 << 6);
            std::arch::asm!("ldmxcsr [{}]", in(reg) &csr, options(nostack, preserves_flags));
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        let mut fpcr: u64;
        // SAFETY: reads and writes this thread's FPCR; bit 24 (FZ) flushes subnormals to zero.
        unsafe {
            std::arch::asm!("mrs {}, fpcr", out(reg) fpcr, options(nomem, nostack));
            fpcr |= 1 << 24;
            std::arch::asm!("msr fpcr, {}", in(reg) fpcr, options(nomem, nostack));
        }
    }
}

/// Flushes subnormals on this thread and on every thread of the global rayon pool (which
/// Burn's CPU backends and gemm compute on), creating that pool now if it does not exist yet
/// (`RAYON_NUM_THREADS` still sets its size); the pools of [`Model`](crate::Model)'s batch
/// shares flush them on their own. Training, evaluation and the benchmark call this, so that
/// a library caller computes in the same mode as `cargo xtask` (which calls it first thing).
pub fn install() {
    flush_subnormals();
    // Fails only when the pool exists already: then it was made by an earlier call (or by a
    // caller who chose its own pool).
    let _ = rayon::ThreadPoolBuilder::new()
        .start_handler(|_| flush_subnormals())
        .build_global();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnormals_become_zero_after_install() {
        // On a thread of its own, so the other tests keep the default mode.
        std::thread::spawn(|| {
            let tiny = std::hint::black_box(1e-38f32);
            assert!((tiny / 16.0) > 0.0, "subnormal results exist by default");
            flush_subnormals();
            let tiny = std::hint::black_box(1e-38f32);
            assert_eq!(tiny / 16.0, 0.0);
        })
        .join()
        .unwrap();
    }
}
