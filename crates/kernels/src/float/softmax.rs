//! Softmax and log-softmax along any axis, numerically stable (the maximum is subtracted).

use crate::error::{check_len, invalid, Result};
use crate::math::vecmath;
use crate::par;
use crate::shape::numel;
use crate::simd::dispatch;

#[inline(always)]
fn block<const FMA: bool>(x: &[f32], out: &mut [f32], len: usize, inner: usize, log: bool) {
    if inner == 1 {
        for (xs, ys) in x.chunks_exact(len).zip(out.chunks_exact_mut(len)) {
            let max = xs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0f32;
            for (y, &v) in ys.iter_mut().zip(xs) {
                let e = vecmath::exp(v - max);
                *y = e;
                sum += e;
            }
            if log {
                let ls = sum.ln();
                for (y, &v) in ys.iter_mut().zip(xs) {
                    *y = v - max - ls;
                }
            } else {
                let inv = 1.0 / sum;
                ys.iter_mut().for_each(|y| *y *= inv);
            }
        }
        return;
    }
    // Vectorised across the `inner` contiguous positions.
    let span = len * inner;
    let mut max = vec![f32::NEG_INFINITY; inner];
    let mut sum = vec![0.0f32; inner];
    for (xs, ys) in x.chunks_exact(span).zip(out.chunks_exact_mut(span)) {
        max.fill(f32::NEG_INFINITY);
        sum.fill(0.0);
        for r in xs.chunks_exact(inner) {
            for (m, &v) in max.iter_mut().zip(r) {
                *m = m.max(v);
            }
        }
        for (yr, xr) in ys.chunks_exact_mut(inner).zip(xs.chunks_exact(inner)) {
            for i in 0..inner {
                let e = vecmath::exp(xr[i] - max[i]);
                yr[i] = e;
                sum[i] += e;
            }
        }
        if log {
            for s in sum.iter_mut() {
                *s = s.ln();
            }
            for (yr, xr) in ys.chunks_exact_mut(inner).zip(xs.chunks_exact(inner)) {
                for i in 0..inner {
                    yr[i] = xr[i] - max[i] - sum[i];
                }
            }
        } else {
            for s in sum.iter_mut() {
                *s = 1.0 / *s;
            }
            for yr in ys.chunks_exact_mut(inner) {
                for (y, &s) in yr.iter_mut().zip(&sum) {
                    *y *= s;
                }
            }
        }
    }
}

dispatch!(fn block_best = block(x: &[f32], out: &mut [f32], len: usize, inner: usize, log: bool));

/// Softmax (or, with `log`, log-softmax) of `x` along `axis`.
pub fn softmax(
    x: &[f32],
    x_shape: &[usize],
    axis: usize,
    log: bool,
    out: &mut [f32],
) -> Result<()> {
    let op = if log { "LogSoftmax" } else { "Softmax" };
    if axis >= x_shape.len() {
        return Err(invalid(
            op,
            format!("axis {axis} out of range for {x_shape:?}"),
        ));
    }
    check_len(op, "input", x.len(), numel(x_shape))?;
    check_len(op, "output", out.len(), x.len())?;
    let len = x_shape[axis];
    let inner: usize = x_shape[axis + 1..].iter().product();
    let span = len * inner;
    if span == 0 {
        return Ok(());
    }
    par::for_rows(out, span, 1 << 14, |r0, chunk| {
        block_best(
            &x[r0 * span..r0 * span + chunk.len()],
            chunk,
            len,
            inner,
            log,
        );
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::float::testutil::{assert_close, data, with_threads};
    use proptest::prelude::*;

    fn naive(x: &[f32], shape: &[usize], axis: usize, log: bool) -> Vec<f32> {
        let len = shape[axis];
        let inner: usize = shape[axis + 1..].iter().product();
        let outer: usize = shape[..axis].iter().product();
        let mut out = vec![0.0; x.len()];
        for o in 0..outer {
            for i in 0..inner {
                let idx = |j: usize| (o * len + j) * inner + i;
                let sum: f64 = (0..len).map(|j| (x[idx(j)] as f64).exp()).sum();
                for j in 0..len {
                    let v = x[idx(j)] as f64;
                    out[idx(j)] = if log {
                        (v - sum.ln()) as f32
                    } else {
                        (v.exp() / sum) as f32
                    };
                }
            }
        }
        out
    }

    proptest! {
        #[test]
        fn matches_naive(shape in proptest::collection::vec(1usize..7, 1..5), axis in 0usize..4, log in any::<bool>(), scale in 0.1f32..30.0) {
            let axis = axis % shape.len();
            let x: Vec<f32> = data(shape.iter().product(), 3).iter().map(|v| v * scale).collect();
            let want = naive(&x, &shape, axis, log);
            let mut out = vec![f32::NAN; x.len()];
            with_threads(2, || softmax(&x, &shape, axis, log, &mut out)).unwrap();
            assert_close(&out, &want, 2e-6).map_err(TestCaseError::fail)?;
        }
    }

    #[test]
    fn stable_for_large_inputs() {
        let x = [1000.0f32, 1001.0, 1002.0];
        let mut out = [0.0; 3];
        softmax(&x, &[3], 0, false, &mut out).unwrap();
        let want = naive(&[0.0, 1.0, 2.0], &[3], 0, false);
        assert_close(&out, &want, 1e-6).unwrap();
        softmax(&x, &[1, 3], 1, true, &mut out).unwrap();
        assert_close(&out, &naive(&[0.0, 1.0, 2.0], &[3], 0, true), 1e-6).unwrap();
    }
}
