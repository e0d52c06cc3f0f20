//! Sums over `f32` slices, in 16 lanes so the compiler vectorises them.

/// The sum of `v`, in 16 lanes added up at the end.
pub(crate) fn sum(v: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 16];
    let (chunks, tail) = v.as_chunks::<16>();
    let tail: f32 = tail.iter().sum();
    for chunk in chunks {
        for (lane, value) in lanes.iter_mut().zip(chunk) {
            *lane += value;
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// The sum of `a[i] * b[i]`, in lanes as [`sum`].
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 16];
    let ((a_chunks, a_tail), (b_chunks, b_tail)) = (a.as_chunks::<16>(), b.as_chunks::<16>());
    let tail: f32 = (a_tail.iter()).zip(b_tail).map(|(x, y)| x * y).sum();
    for (ca, cb) in a_chunks.iter().zip(b_chunks) {
        for ((lane, x), y) in lanes.iter_mut().zip(ca).zip(cb) {
            *lane += x * y;
        }
    }
    lanes.iter().sum::<f32>() + tail
}
