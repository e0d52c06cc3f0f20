//! A 2-D product of `f32` matrices written straight into memory of its own: the training
//! kernels' matrix product (see [`crate::compute::kernels`]).
//!
//! flex's own product allocates its output zero-filled and then copies it once more (its
//! `FlexTensor::empty` realigns every new buffer): two passes over the output that the product
//! overwrites anyway, 13% of a `best` training step (`perf`). Here gemm writes into a fresh
//! vector, and the views read their storage in place, transposed or not.

/// An `f32` matrix as gemm reads it: its storage, the first element's offset, its shape and
/// its strides (in elements, of either sign).
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    /// The storage the elements are in.
    pub data: &'a [f32],
    /// Offset of element (0, 0) in `data`.
    pub start: usize,
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub columns: usize,
    /// Distance in `data` from one row to the next.
    pub row_stride: isize,
    /// Distance in `data` from one column to the next.
    pub column_stride: isize,
}

impl View<'_> {
    /// The transpose: the same elements, rows and columns swapped.
    pub fn t(self) -> Self {
        Self {
            rows: self.columns,
            columns: self.rows,
            row_stride: self.column_stride,
            column_stride: self.row_stride,
            ..self
        }
    }

    /// Whether every element lies inside `data` (what makes handing the view to gemm sound).
    fn fits(&self) -> bool {
        if self.rows == 0 || self.columns == 0 {
            return true;
        }
        let reach = |n: usize, stride: isize| (n as isize - 1).checked_mul(stride);
        let (Some(down), Some(across)) = (
            reach(self.rows, self.row_stride),
            reach(self.columns, self.column_stride),
        ) else {
            return false;
        };
        let start = self.start as isize;
        let low = start + down.min(0) + across.min(0);
        let high = start + down.max(0) + across.max(0);
        low >= 0 && (high as usize) < self.data.len()
    }
}

/// Products with fewer multiply-adds than this stay on the calling thread (flex's threshold).
const PARALLEL_THRESHOLD: usize = 192 * 192 * 192;

/// `a b`, `[a.rows, b.columns]` in row-major order, in a new vector; large products use the
/// calling thread's rayon pool. Panics when the inner dimensions differ or a view reaches
/// outside its storage.
#[allow(unsafe_code)]
pub fn product(a: View, b: View) -> Vec<f32> {
    assert_eq!(a.columns, b.rows, "inner dimensions of a product");
    assert!(a.fits() && b.fits(), "a view reaches outside its storage");
    let (m, k, n) = (a.rows, a.columns, b.columns);
    if m == 0 || n == 0 || k == 0 {
        return vec![0.0; m * n];
    }
    let parallelism = if rayon::current_num_threads() > 1
        && m.saturating_mul(n).saturating_mul(k) >= PARALLEL_THRESHOLD
    {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    let mut out = Vec::<f32>::with_capacity(m * n);
    // SAFETY: both views lie inside their storage (checked above), so every element gemm reads
    // is in bounds; `out` has room for the m x n result at row stride n, which gemm writes in
    // full without reading it (`read_dst` false) before the length is set.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.data.as_ptr().add(a.start),
            a.column_stride,
            a.row_stride,
            b.data.as_ptr().add(b.start),
            b.column_stride,
            b.row_stride,
            0.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
        out.set_len(m * n);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: View, b: View) -> Vec<f32> {
        let at = |v: &View, i: usize, j: usize| {
            v.data[(v.start as isize + i as isize * v.row_stride + j as isize * v.column_stride)
                as usize]
        };
        let mut out = vec![0.0; a.rows * b.columns];
        for i in 0..a.rows {
            for j in 0..b.columns {
                out[i * b.columns + j] = (0..a.columns).map(|p| at(&a, i, p) * at(&b, p, j)).sum();
            }
        }
        out
    }

    /// Row-major, transposed and offset views, small and past the threshold, against the
    /// definition.
    #[test]
    fn products_match_the_definition() {
        let data: Vec<f32> = (0..400_000)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
            .collect();
        for (m, k, n) in [(3, 4, 5), (1, 7, 1), (256, 49, 128), (130, 300, 70)] {
            let a = View {
                data: &data,
                start: 3,
                rows: m,
                columns: k,
                row_stride: k as isize,
                column_stride: 1,
            };
            // b stored transposed ([n, k], row-major), read as [k, n].
            let b = View {
                data: &data,
                start: 11,
                rows: n,
                columns: k,
                row_stride: k as isize,
                column_stride: 1,
            }
            .t();
            let (fast, slow) = (product(a, b), naive(a, b));
            let worst = fast
                .iter()
                .zip(&slow)
                .map(|(x, y)| (x - y).abs() / (1.0 + y.abs()))
                .fold(0.0, f32::max);
            assert!(worst < 1e-4, "({m}, {k}, {n}): {worst}");
        }
    }

    #[test]
    #[should_panic(expected = "outside its storage")]
    fn a_view_past_its_storage_panics() {
        let data = vec![1.0f32; 10];
        let a = View {
            data: &data,
            start: 0,
            rows: 3,
            columns: 4,
            row_stride: 4,
            column_stride: 1,
        };
        product(a, a.t());
    }
}
