//! Safe wrapper around the `gemm` crate (run-time SIMD dispatch, optional rayon parallelism).

/// `c[m×n] (+)= a[m×k] · b[k×n]`: `a` rows start every `lda` elements, `b` rows every `ldb`,
/// `c` rows every `ldc`; all three have unit column stride. With `accumulate` the product is
/// added to `c`, otherwise `c` is overwritten. `parallel` lets `gemm` use the current rayon
/// pool.
///
/// # Panics
///
/// If a slice is too short for the given dimensions or a leading dimension is smaller than the
/// row length (these are internal invariants; the kernels check user-visible shapes first).
#[allow(clippy::too_many_arguments)]
pub(crate) fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
    parallel: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                c[r * ldc..r * ldc + n].fill(0.0);
            }
        }
        return;
    }
    assert!(
        lda >= k && ldb >= n && ldc >= n,
        "sgemm: leading dimensions"
    );
    assert!(a.len() >= (m - 1) * lda + k, "sgemm: lhs too short");
    assert!(b.len() >= (k - 1) * ldb + n, "sgemm: rhs too short");
    assert!(c.len() >= (m - 1) * ldc + n, "sgemm: dst too short");
    let threads = rayon::current_num_threads();
    let par = if parallel && threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the asserts above guarantee every element the three strided matrices address
    // lies inside its slice; `c` is exclusively borrowed and its rows (ldc >= n) do not
    // overlap, and `a`, `b` are shared borrows that cannot alias the `&mut c`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            ldc as isize,
            accumulate,
            a.as_ptr(),
            1,
            lda as isize,
            b.as_ptr(),
            1,
            ldb as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strided_product_matches_naive() {
        let (m, n, k) = (13, 9, 21);
        let (lda, ldb, ldc) = (k + 3, n + 2, n + 5);
        let a: Vec<f32> = (0..m * lda).map(|i| (i % 7) as f32 - 3.0).collect();
        let b: Vec<f32> = (0..k * ldb).map(|i| (i % 5) as f32 * 0.5).collect();
        let mut c = vec![1.0f32; m * ldc];
        sgemm(m, n, k, &a, lda, &b, ldb, &mut c, ldc, true, false);
        for i in 0..m {
            for j in 0..n {
                let mut want = 1.0;
                for p in 0..k {
                    want += a[i * lda + p] * b[p * ldb + j];
                }
                assert!((c[i * ldc + j] - want).abs() < 1e-4);
            }
            // Padding columns untouched.
            assert!(c[i * ldc + n..(i + 1) * ldc].iter().all(|&v| v == 1.0));
        }
    }
}
