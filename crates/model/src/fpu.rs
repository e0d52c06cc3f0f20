//! Subnormal floats flushed to zero on the threads that compute, and only there.
//!
//! A float below 1.2e-38 is "subnormal", and x86 CPUs take a slow microcode path (tens to
//! hundreds of times slower) for every operation on one. Training can fill tensors with them:
//! Adam's moment estimates of a weight whose gradient stays zero (a dead ReLU unit) shrink by a
//! constant factor every step until they are subnormal. Measured here: the optimizers sweep's
//! Adam lr 0.01 run slowed from 27 s to 340 s per epoch over 15 epochs.
//!
//! **The trade.** With flush-to-zero (FTZ) and denormals-are-zero (DAZ) set, such values become
//! 0: results lose what lies below 1.2e-38 (nothing a loss, an accuracy or a weight that matters
//! holds), and every step keeps the same speed. PyTorch makes the same trade behind
//! `torch.set_flush_denormal(True)`. The mode is a thread's (its SSE control register on x86-64,
//! its FPCR on aarch64), so it is set only on the threads this crate computes on: the pool of
//! [`flushed`] and the pools of [`BatchSplit`](crate::BatchSplit)'s parts (and the threads they
//! start, which inherit it). The caller's thread, rayon's global pool and every other thread of
//! the process keep the IEEE default.
//!
//! ```
//! use fashion_mixer_model::fpu;
//!
//! let tiny = std::hint::black_box(1e-38f32);
//! assert_eq!(fpu::flushed(|| tiny / 16.0), 0.0);
//! assert!(tiny / 16.0 > 0.0, "the calling thread keeps the default");
//! ```

use std::sync::OnceLock;

/// Sets flush-to-zero and denormals-are-zero for the calling thread.
#[allow(unsafe_code)]
pub(crate) fn flush_subnormals() {
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

/// The pool [`flushed`] runs on: as many threads as rayon's global pool would have
/// (`RAYON_NUM_THREADS`, else one per core), each flushing subnormals from its start.
fn pool() -> &'static rayon::ThreadPool {
    static POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .thread_name(|i| format!("mixer-compute-{i}"))
            .start_handler(|_| flush_subnormals())
            .build()
            .expect("the compute pool's threads start")
    })
}

/// `work`, run on a thread that flushes subnormals, with every parallel operation inside it
/// (Burn's CPU backends and gemm use the current rayon pool) on such threads too; the calling
/// thread waits. Training, evaluation, the benchmark and every prediction compute through it.
/// Called from inside `work`, it runs the inner work in place.
pub fn flushed<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    pool().install(work)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnormals_become_zero_once_flushed() {
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

    /// Only the pool's threads flush: the caller, and threads started outside it, keep the
    /// default.
    #[test]
    fn flushed_work_leaves_the_caller_as_it_was() {
        std::thread::spawn(|| {
            let tiny = std::hint::black_box(1e-38f32);
            assert_eq!(flushed(|| tiny / 16.0), 0.0);
            assert_eq!(flushed(|| flushed(|| tiny / 16.0)), 0.0, "nested");
            assert!((tiny / 16.0) > 0.0, "the caller keeps the default");
            let outside = std::thread::spawn(move || tiny / 16.0).join().unwrap();
            assert!(outside > 0.0, "a thread started outside keeps the default");
        })
        .join()
        .unwrap();
    }
}
