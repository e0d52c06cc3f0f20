//! Data parallelism on the CPU backends: a batch split into equal shares, one per core, each
//! share on its own single-threaded pool so that the shares do not contend for threads (the
//! per-operation overhead that keeps one graph from filling two cores then overlaps).

use std::sync::OnceLock;

use burn::prelude::*;

/// Fewer items than this per share and the split costs more than it saves.
const MIN_SHARE: usize = 16;

/// One single-threaded pool per thread of rayon's pool (`RAYON_NUM_THREADS` caps the count),
/// subnormals flushed (see [`crate::compute::fpu`]).
fn pools() -> &'static [rayon::ThreadPool] {
    static POOLS: OnceLock<Vec<rayon::ThreadPool>> = OnceLock::new();
    POOLS.get_or_init(|| {
        (0..rayon::current_num_threads())
            .map_while(|_| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(1)
                    .thread_name(|i| format!("mixer-share-{i}"))
                    .start_handler(|_| crate::compute::fpu::flush_subnormals())
                    .build()
                    .ok()
            })
            .collect()
    })
}

/// Whether `device` is one of the CPU backends (flex, ndarray), without autodiff.
#[allow(deprecated)] // Device::ndarray: the backend stays a choice while Burn ships it.
pub fn is_cpu(device: &Device) -> bool {
    *device == Device::flex() || *device == Device::ndarray()
}

/// How many shares a batch of `items` on a CPU backend splits into (1: no split). Inside a
/// share, where rayon's pool has one thread, nothing splits again.
pub fn count(items: usize) -> usize {
    pools()
        .len()
        .min(rayon::current_num_threads())
        .min(items / MIN_SHARE)
        .max(1)
}

/// `work(start, end)` for each of `shares` equal ranges of `0..items`, side by side, each on
/// its own pool (pools are shared round-robin when there are more shares than pools); the
/// results in order.
pub fn run<T: Send>(
    items: usize,
    shares: usize,
    work: impl Fn(usize, usize) -> T + Sync,
) -> Vec<T> {
    let work = &work;
    std::thread::scope(|scope| {
        let pools = pools();
        let handles: Vec<_> = (0..shares)
            .map(|i| {
                let pool = &pools[i % pools.len()];
                let (start, end) = (i * items / shares, (i + 1) * items / shares);
                scope.spawn(move || pool.install(|| work(start, end)))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h.join() {
                Ok(value) => value,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}
