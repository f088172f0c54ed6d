//! Quantized softmax (`QSoftmax`, `docs/fixed-point.md` §6): INT16 input of scale `s`, INT16
//! output of scale 1/32767.

use crate::error::{check_len, invalid, Result};
use ipukit_ir::ops::fixed::{QSoftmax, LUT_ENTRIES};
use rayon::prelude::*;

/// Softmax of `x` (shape `x_shape`) along `attrs.axis`:
///
/// ```text
/// d_i = x_i − max_j x_j;  u_i = d_i + 65536;  k = u_i >> 6;  r = u_i & 63
/// e_i = E[k] + rshift_round((E[k+1] − E[k]) · r, 6)     (e_i = E[1024] when k = 1024, r = 0)
/// S   = Σ e_i;            y_i = sat16(div_round(e_i · 32767, S))   (y_i = 0 when S ≤ 0)
/// ```
pub fn qsoftmax(attrs: &QSoftmax, x: &[i16], x_shape: &[usize], out: &mut [i16]) -> Result<()> {
    const OP: &str = "QSoftmax";
    if attrs.exp_table.len() != LUT_ENTRIES {
        return Err(invalid(
            OP,
            format!(
                "the table has {} entries, expected {LUT_ENTRIES}",
                attrs.exp_table.len()
            ),
        ));
    }
    let axis = attrs.axis;
    if axis >= x_shape.len() {
        return Err(invalid(OP, format!("axis {axis} is outside {x_shape:?}")));
    }
    check_len(OP, "input", x.len(), x_shape.iter().product())?;
    check_len(OP, "output", out.len(), x.len())?;
    let len = x_shape[axis];
    let inner: usize = x_shape[axis + 1..].iter().product();
    let block = len * inner;
    if block == 0 || x.is_empty() {
        return Ok(());
    }
    // E[1025] = E[1024] so that k = 1024 (d = 0, r = 0) needs no branch.
    let mut table: Vec<i64> = attrs.exp_table.iter().map(|&v| v as i64).collect();
    table.push(attrs.exp_table[LUT_ENTRIES - 1] as i64);
    let run = |(xb, ob): (&[i16], &mut [i16])| softmax_block(&table, xb, ob, len, inner);
    if x.len() >= 1 << 14 && x.len() / block > 1 {
        x.par_chunks(block)
            .zip(out.par_chunks_mut(block))
            .for_each(run);
    } else {
        x.chunks(block).zip(out.chunks_mut(block)).for_each(run);
    }
    Ok(())
}

/// `e` for `d = x − max ∈ [−65535, 0]`.
#[inline(always)]
pub(crate) fn exp_value(table: &[i64], d: i32) -> i64 {
    let u = (d + 65536) as usize;
    let (k, r) = (u >> 6, (u & 63) as i64);
    let (e0, e1) = (table[k], table[k + 1]);
    e0 + super::arith::rshift_round((e1 - e0) * r, 6)
}

/// One `[len, inner]` block, softmax along `len`.
fn softmax_block(table: &[i64], x: &[i16], out: &mut [i16], len: usize, inner: usize) {
    let mut mx = vec![i16::MIN; inner];
    for row in x.chunks_exact(inner) {
        for (m, &v) in mx.iter_mut().zip(row) {
            *m = (*m).max(v);
        }
    }
    let mut e = vec![0i64; len * inner];
    let mut sum = vec![0i64; inner];
    for (er, row) in e.chunks_exact_mut(inner).zip(x.chunks_exact(inner)) {
        for (((d, &v), &m), s) in er.iter_mut().zip(row).zip(&mx).zip(sum.iter_mut()) {
            *d = exp_value(table, v as i32 - m as i32);
            *s += *d;
        }
    }
    for (or, er) in out.chunks_exact_mut(inner).zip(e.chunks_exact(inner)) {
        for ((o, &ei), &s) in or.iter_mut().zip(er).zip(&sum) {
            *o = if s > 0 {
                // |e·32767| < 2^47 and 0 < S < 2^(31 + log2 len): 128-bit only for safety.
                let y = (2 * (ei as i128 * 32767) + s as i128).div_euclid(2 * s as i128);
                y.clamp(-32768, 32767) as i16
            } else {
                0
            };
        }
    }
}

/// Builds the exponential table for input scale `s`: `E[k] = round(2^15 · exp(s · (64k −
/// 65536)))` (the calibrator's job; here for tests and tools).
pub fn build_exp_table(s: f64) -> Vec<i32> {
    (0..LUT_ENTRIES)
        .map(|k| (32768.0 * (s * (64.0 * k as f64 - 65536.0)).exp()).round() as i32)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::int::testutil::Rng;
    use proptest::prelude::*;

    /// §6 literally.
    fn naive(table: &[i32], x: &[i16]) -> Vec<i16> {
        let m = *x.iter().max().unwrap() as i64;
        let e: Vec<i128> = x
            .iter()
            .map(|&v| {
                let u = v as i64 - m + 65536;
                let (k, r) = ((u >> 6) as usize, u & 63);
                let e0 = table[k] as i128;
                let e1 = if r == 0 { e0 } else { table[k + 1] as i128 };
                e0 + (((e1 - e0) * r as i128 + 32) >> 6)
            })
            .collect();
        let s: i128 = e.iter().sum();
        e.iter()
            .map(|&ei| {
                if s > 0 {
                    (2 * ei * 32767 + s).div_euclid(2 * s) as i16
                } else {
                    0
                }
            })
            .collect()
    }

    fn transpose_axis(x: &[i16], shape: &[usize], axis: usize) -> Vec<Vec<i16>> {
        let len = shape[axis];
        let inner: usize = shape[axis + 1..].iter().product();
        let outer: usize = shape[..axis].iter().product();
        let mut rows = vec![];
        for o in 0..outer {
            for i in 0..inner {
                rows.push((0..len).map(|l| x[(o * len + l) * inner + i]).collect());
            }
        }
        rows
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        fn matches_definition(seed in any::<u64>(), dims in proptest::collection::vec(1usize..6, 1..4), axis_pick in 0usize..3, random_table in any::<bool>()) {
            let mut rng = Rng::new(seed);
            let axis = axis_pick % dims.len();
            let x: Vec<i16> = rng.vec(dims.iter().product());
            let table = if random_table {
                (0..LUT_ENTRIES).map(|_| rng.extreme(0, i32::MAX >> 8)).collect()
            } else {
                build_exp_table(2f64.powi(-(rng.range(8, 14))))
            };
            let attrs = QSoftmax { axis, exp_table: table.clone() };
            let mut got = vec![0; x.len()];
            qsoftmax(&attrs, &x, &dims, &mut got).unwrap();
            let want_rows: Vec<Vec<i16>> = transpose_axis(&x, &dims, axis).iter().map(|r| naive(&table, r)).collect();
            let mut want = vec![0; x.len()];
            let len = dims[axis];
            let inner: usize = dims[axis + 1..].iter().product();
            for (ri, r) in want_rows.iter().enumerate() {
                let (o, i) = (ri / inner, ri % inner);
                for (l, &v) in r.iter().enumerate() {
                    want[(o * len + l) * inner + i] = v;
                }
            }
            prop_assert_eq!(got, want);
        }
    }

    /// The error bound (written in `docs/fixed-point.md` §6): with `ε = 1 + 2²⁴·s²`
    /// (table and interpolation rounding plus the interpolation error of `2¹⁵·exp(s·t)` over
    /// steps of 64), `|y_i − 32767·p_i| ≤ 32767·ε·(1 + N·p_i) / (2¹⁵ − N·ε) + 1/2`.
    #[test]
    fn error_bound_holds() {
        let mut rng = Rng::new(9);
        for &(s, n) in &[
            (2f64.powi(-12), 10usize),
            (2f64.powi(-10), 80),
            (2f64.powi(-9), 5),
            (1.0 / 4096.0 * 3.0, 1000),
        ] {
            let table = build_exp_table(s);
            let attrs = QSoftmax {
                axis: 1,
                exp_table: table,
            };
            let eps = 1.0 + 2f64.powi(24) * s * s;
            let mut worst_ratio = 0.0f64;
            for _ in 0..50 {
                let x: Vec<i16> = (0..n).map(|_| rng.extreme(-32768, 32767) as i16).collect();
                let mut y = vec![0; n];
                qsoftmax(&attrs, &x, &[1, n], &mut y).unwrap();
                let m = *x.iter().max().unwrap() as f64;
                let ex: Vec<f64> = x.iter().map(|&v| (s * (v as f64 - m)).exp()).collect();
                let total: f64 = ex.iter().sum();
                for i in 0..n {
                    let p = ex[i] / total;
                    let bound =
                        32767.0 * eps * (1.0 + n as f64 * p) / (32768.0 - n as f64 * eps) + 0.5;
                    let err = (y[i] as f64 - 32767.0 * p).abs();
                    assert!(err <= bound, "s {s} n {n}: err {err} > {bound}");
                    worst_ratio = worst_ratio.max(err / bound);
                }
            }
            assert!(worst_ratio > 0.0);
        }
    }

    #[test]
    fn hand_computed_example() {
        // Equal inputs: e = E[1024] = 32768 each; y = div_round(32768·32767, 2·32768) = 16383.5 → 16384.
        let attrs = QSoftmax {
            axis: 0,
            exp_table: build_exp_table(1.0 / 4096.0),
        };
        let mut y = [0i16; 2];
        qsoftmax(&attrs, &[7, 7], &[2], &mut y).unwrap();
        assert_eq!(y, [16384, 16384]);
        // Extreme spread: d = −65535 for the minimum: u = 1 → k = 0.
        qsoftmax(&attrs, &[-32768, 32767], &[2], &mut y).unwrap();
        assert_eq!(y, [0, 32767]);
        assert!(qsoftmax(
            &QSoftmax {
                axis: 0,
                exp_table: vec![0; 3]
            },
            &[0],
            &[1],
            &mut y[..1]
        )
        .is_err());
        assert!(qsoftmax(&attrs, &[0], &[1], &mut y).is_err());
    }
}
