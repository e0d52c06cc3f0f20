//! Data parallelism on the CPU backends: a batch split into equal parts, one per core, each
//! part on its own single-threaded pool so that the parts do not contend for threads (the
//! per-operation overhead that keeps one graph from filling two cores then overlaps).
//!
//! ```
//! use fashion_mixer_model::BatchSplit;
//!
//! let split = BatchSplit::new(10, 3);
//! assert_eq!(split.run(|items| items.len()), vec![3, 3, 4]);
//! ```

use std::ops::Range;
use std::sync::OnceLock;

use burn::prelude::*;

/// Fewer items than this per part and the split costs more than it saves.
const MIN_PART: usize = 16;

/// One single-threaded pool per thread of the current rayon pool (`RAYON_NUM_THREADS` caps the
/// count), subnormals flushed on each (see [`crate::fpu`]).
fn pools() -> &'static [rayon::ThreadPool] {
    static POOLS: OnceLock<Vec<rayon::ThreadPool>> = OnceLock::new();
    POOLS.get_or_init(|| {
        (0..rayon::current_num_threads())
            .map_while(|_| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(1)
                    .thread_name(|i| format!("mixer-part-{i}"))
                    .start_handler(|_| crate::fpu::flush_subnormals())
                    .build()
                    .ok()
            })
            .collect()
    })
}

/// Whether `device` is one of the CPU backends (flex, ndarray), with autodiff or without.
#[allow(deprecated)] // Device::ndarray: the backend stays a choice while Burn ships it.
fn is_cpu(device: &Device) -> bool {
    // Devices compare by hardware, autodiff aside.
    *device == Device::flex() || *device == Device::ndarray()
}

/// A batch of `items` split into `parts` equal ranges, run side by side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSplit {
    items: usize,
    parts: usize,
}

impl BatchSplit {
    /// `items` in `parts` ranges (at least one); pools are shared round-robin when there are
    /// more parts than cores.
    pub fn new(items: usize, parts: usize) -> Self {
        Self {
            items,
            parts: parts.max(1),
        }
    }

    /// How a batch of `items` on `device` splits: on a CPU backend one part per thread of the
    /// current rayon pool, each of at least 16 items; elsewhere (and inside a part, where the
    /// pool has one thread) one part, the whole batch.
    pub fn over_cores(items: usize, device: &Device) -> Self {
        let parts = if is_cpu(device) {
            pools()
                .len()
                .min(rayon::current_num_threads())
                .min(items / MIN_PART)
        } else {
            1
        };
        Self::new(items, parts)
    }

    /// How many parts.
    pub fn parts(&self) -> usize {
        self.parts
    }

    /// Whether the batch stays whole (one part).
    pub fn is_whole(&self) -> bool {
        self.parts == 1
    }

    /// The items of part `i`.
    fn range(&self, i: usize) -> Range<usize> {
        i * self.items / self.parts..(i + 1) * self.items / self.parts
    }

    /// `work(range)` for each part's range of items, side by side, each on its own
    /// single-threaded pool; the results in order.
    pub fn run<T: Send>(&self, work: impl Fn(Range<usize>) -> T + Sync) -> Vec<T> {
        let work = &work;
        std::thread::scope(|scope| {
            let pools = pools();
            let handles: Vec<_> = (0..self.parts)
                .map(|i| {
                    let pool = &pools[i % pools.len()];
                    let range = self.range(i);
                    scope.spawn(move || pool.install(|| work(range)))
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
}
