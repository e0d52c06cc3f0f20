//! Which slice of a batch each rank takes: equal ranges in rank order, or ranges sized by the
//! ranks' speeds ([`Speeds`]), so that a rank on a slower core or machine, or one slowed for a
//! while by other work, takes fewer items and the ranks reach each step's reduction together.
//!
//! Every rank computes every rank's slice alike from the same values, so the slices always
//! cover the batch once, in rank order.

use std::ops::Range;

use fashion_mixer_model::Backend;

/// How the ranks share each training batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slicing {
    /// Each rank's slice sized by its speed over the last steps.
    BySpeed,
    /// Equal slices: a run's arithmetic then does not depend on the ranks' speeds, and two
    /// ranks' weights are one process's over as many threads to the bit.
    Equal,
}

impl Slicing {
    /// The default on `backend`: by speed on the CPU backends; equal on wgpu, which compiles
    /// its kernels anew for each new slice size.
    pub fn default_for(backend: Backend) -> Self {
        match backend {
            Backend::Wgpu => Self::Equal,
            _ => Self::BySpeed,
        }
    }
}

/// The slice of `items` (a batch's, a split's) that `rank` of `size` takes: equal ranges in rank
/// order, as [`fashion_mixer_model::BatchSplit`] cuts a batch over the cores.
pub fn part(items: usize, rank: usize, size: usize) -> Range<usize> {
    rank * items / size..(rank + 1) * items / size
}

/// The ranks' training speeds (items a second, each smoothed over the steps): the same on every
/// rank, since every rank updates them from the same reduced values in the same order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Speeds {
    speeds: Vec<f64>,
}

impl Speeds {
    /// How much one step's speed moves the smoothed one: about the last three steps count.
    const WEIGHT: f64 = 0.3;

    /// Takes in one step's speeds, one per rank; a rank that computed nothing (0) keeps its
    /// speed.
    pub fn update(&mut self, step: &[f32]) {
        if self.speeds.len() != step.len() {
            self.speeds = vec![0.0; step.len()];
        }
        for (smoothed, &speed) in self.speeds.iter_mut().zip(step) {
            let speed = f64::from(speed);
            if speed > 0.0 && speed.is_finite() {
                *smoothed = if *smoothed > 0.0 {
                    Self::WEIGHT * speed + (1.0 - Self::WEIGHT) * *smoothed
                } else {
                    speed
                };
            }
        }
    }

    /// Each of `size` ranks' slice of `items`, in rank order and in proportion to their speeds;
    /// equal until every rank has a speed. Every rank gets at least one item where there are as
    /// many items as ranks.
    pub fn parts(&self, items: usize, size: usize) -> Vec<Range<usize>> {
        if self.speeds.len() != size || self.speeds.iter().any(|&s| s <= 0.0) {
            return (0..size).map(|rank| part(items, rank, size)).collect();
        }
        let total: f64 = self.speeds.iter().sum();
        let least = usize::from(items >= size);
        let (mut start, mut before) = (0, 0.0);
        let mut parts = Vec::with_capacity(size);
        for (rank, speed) in self.speeds.iter().enumerate() {
            before += speed;
            let end = if rank + 1 == size {
                items
            } else {
                let end = (items as f64 * before / total).round() as usize;
                // At least `least` for this rank and room for as many for each after it.
                end.max(start + least)
                    .min(items - least * (size - 1 - rank))
            };
            parts.push(start..end);
            start = end;
        }
        parts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The slices cover `items` once, in rank order.
    fn assert_cover(parts: &[Range<usize>], items: usize) {
        assert_eq!(parts.first().unwrap().start, 0);
        assert_eq!(parts.last().unwrap().end, items);
        for pair in parts.windows(2) {
            assert_eq!(pair[0].end, pair[1].start, "{parts:?}");
        }
    }

    #[test]
    fn parts_cover_the_items_in_rank_order() {
        for (items, size) in [(256, 2), (96, 3), (5, 4), (3, 8)] {
            let ranges: Vec<_> = (0..size).map(|r| part(items, r, size)).collect();
            assert_cover(&ranges, items);
            let (min, max) = ranges.iter().fold((usize::MAX, 0), |(lo, hi), r| {
                (lo.min(r.len()), hi.max(r.len()))
            });
            assert!(max - min <= 1, "{items} over {size}: {ranges:?}");
        }
    }

    #[test]
    fn slices_follow_speed_on_the_cpu_and_are_equal_on_wgpu_by_default() {
        assert_eq!(Slicing::default_for(Backend::Flex), Slicing::BySpeed);
        assert_eq!(Slicing::default_for(Backend::Ndarray), Slicing::BySpeed);
        assert_eq!(Slicing::default_for(Backend::Wgpu), Slicing::Equal);
    }

    #[test]
    fn slices_are_equal_until_every_rank_has_a_speed() {
        let mut speeds = Speeds::default();
        assert_eq!(speeds.parts(256, 2), vec![0..128, 128..256]);
        speeds.update(&[100.0, 0.0]);
        assert_eq!(speeds.parts(256, 2), vec![0..128, 128..256]);
        // Speeds of another number of ranks than the batch's are not used.
        speeds.update(&[100.0, 300.0]);
        assert_eq!(
            speeds.parts(256, 3),
            (0..3).map(|r| part(256, r, 3)).collect::<Vec<_>>()
        );
    }

    #[test]
    fn slices_follow_the_speeds() {
        let mut speeds = Speeds::default();
        speeds.update(&[100.0, 300.0]);
        assert_eq!(speeds.parts(256, 2), vec![0..64, 64..256]);
        // A step's speed moves the smoothed one by 0.3 of the difference: 100 -> 130.
        speeds.update(&[200.0, 300.0]);
        assert_eq!(speeds.parts(430, 2), vec![0..130, 130..430]);
        // A rank that computed nothing keeps its speed.
        speeds.update(&[0.0, 300.0]);
        assert_eq!(speeds.parts(430, 2), vec![0..130, 130..430]);
        for (items, size) in [(256, 3), (7, 3), (3, 3), (2, 3)] {
            let mut speeds = Speeds::default();
            speeds.update(
                &vec![1.0; size - 1]
                    .into_iter()
                    .chain([1e6])
                    .collect::<Vec<_>>(),
            );
            let parts = speeds.parts(items, size);
            assert_cover(&parts, items);
            let least = usize::from(items >= size);
            assert!(parts.iter().all(|p| p.len() >= least), "{items}: {parts:?}");
        }
    }
}
