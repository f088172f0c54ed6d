//! Pooling on integers (`docs/fixed-point.md` §7): max pooling (no arithmetic) and
//! `QAvgPool2d`, NHWC.
//!
//! A window of output `(oy, ox)` has the input rows `oy·s − pad_top + i·d` for `i < KH` (`d`
//! the dilation, 1 for a dense window), those inside the input; its *padded extent* is its
//! rows in `[−pad_top, H + pad_bottom)` (ONNX: `ceil_mode` windows that run past the padding
//! count only their part inside it); likewise for the columns. Max pooling ignores padding
//! (a window with no input element gives the type's minimum). Average pooling sums
//! `x − z_in` over the input elements of the window (INT64, exact), counts the input
//! elements, or with `count_include_pad` the padded extent, and divides:
//! `y = sat_out(z_out + div_round(acc · m, cnt · 2ⁿ))`; a window that counts nothing gives
//! `sat_out(z_out)`.

use super::arith::{check_out, check_requant, sat_out, QInt};
use super::isa::{multiversion, Isa};
use crate::error::{check_len, invalid, Result};
use crate::par;
use crate::shape::{window_taps, WindowTaps};
use crate::window::nhwc;
use ipukit_ir::ops::fixed::{QAvgPool2d, Requant};
use ipukit_ir::ops::{Pool2d, PoolKind};

fn check_pool(op: &'static str, attrs: &Pool2d, x_shape: &[usize]) -> Result<[usize; 6]> {
    let [n, h, w, c] = nhwc(op, x_shape)?;
    if attrs.strides.contains(&0) || attrs.kernel.contains(&0) || attrs.dilations.contains(&0) {
        return Err(invalid(
            op,
            "kernel, strides and dilations must be positive",
        ));
    }
    let [oh, ow] = attrs.out_hw(h, w).ok_or_else(|| {
        invalid(
            op,
            format!("window {:?} does not fit input {x_shape:?}", attrs.kernel),
        )
    })?;
    Ok([n, h, w, c, oh, ow])
}

/// Max pooling of an integer tensor (`attrs.kind` must be [`PoolKind::Max`]).
pub fn max_pool2d<T: QInt>(
    attrs: &Pool2d,
    x: &[T],
    x_shape: &[usize],
    out: &mut [T],
) -> Result<()> {
    max_pool2d_isa(Isa::detect(), attrs, x, x_shape, out)
}

/// [`max_pool2d`] on a chosen instruction set (clamped to the CPU).
pub fn max_pool2d_isa<T: QInt>(
    isa: Isa,
    attrs: &Pool2d,
    x: &[T],
    x_shape: &[usize],
    out: &mut [T],
) -> Result<()> {
    const OP: &str = "MaxPool";
    if attrs.kind != PoolKind::Max {
        return Err(invalid(OP, "pool kind must be max"));
    }
    let [n, h, w, c, oh, ow] = check_pool(OP, attrs, x_shape)?;
    check_len(OP, "input", x.len(), n * h * w * c)?;
    check_len(OP, "output", out.len(), n * oh * ow * c)?;
    let row = ow * c;
    if row == 0 {
        return Ok(());
    }
    let g = Geo {
        h,
        w,
        c,
        oh,
        dil: attrs.dilations,
    };
    par::for_rows(out, row, 1 << 13, |r0, chunk| {
        for (r, dst) in chunk.chunks_exact_mut(row).enumerate() {
            max_row(isa, attrs, x, g, r0 + r, dst);
        }
    });
    Ok(())
}

#[derive(Clone, Copy, Debug)]
struct Geo {
    h: usize,
    w: usize,
    c: usize,
    oh: usize,
    /// Dilations (H, W).
    dil: [usize; 2],
}

#[inline(always)]
fn max_row_body<T: QInt>(a: &Pool2d, x: &[T], g: Geo, row: usize, dst: &mut [T]) {
    let (b, oy) = (row / g.oh, row % g.oh);
    let p = a.padding;
    let [dh, dw] = g.dil;
    let ys = window_taps(oy, a.strides[0], a.kernel[0], dh, p.top, p.bottom, g.h);
    let c = g.c;
    let lowest = T::from_i32(T::MIN_I32);
    for (ox, px) in dst.chunks_exact_mut(c).enumerate() {
        let xs = window_taps(ox, a.strides[1], a.kernel[1], dw, p.left, p.right, g.w);
        px.fill(lowest);
        if dh == 1 && dw == 1 {
            max_window(x, g, b, ys.dense(), xs.dense(), px);
        } else {
            max_window(x, g, b, ys.stepped(dh), xs.stepped(dw), px);
        }
    }
}

/// `px[ch] = max(px[ch], x[b, y, x, ch])` over the window's rows and columns.
#[inline(always)]
fn max_window<T: QInt>(
    x: &[T],
    g: Geo,
    b: usize,
    rows: impl Iterator<Item = usize>,
    cols: impl Iterator<Item = usize> + Clone,
    px: &mut [T],
) {
    let c = g.c;
    for y in rows {
        for xx in cols.clone() {
            let s = &x[((b * g.h + y) * g.w + xx) * c..][..c];
            for (d, &v) in px.iter_mut().zip(s.iter()) {
                *d = if v > *d { v } else { *d };
            }
        }
    }
}

multiversion!(
    /// One output row of max pooling.
    fn max_row<T: QInt> = max_row_body(a: &Pool2d, x: &[T], g: Geo, row: usize, dst: &mut [T])
);

/// `div_round(acc · m, cnt · 2ⁿ)` for `cnt > 0`, exact, via
/// `floor(floor((2·acc·m + cnt·2ⁿ) / 2ⁿ⁺¹) / cnt)` (nested floors of positive divisors).
#[inline(always)]
pub(crate) fn mean_round(acc: i64, cnt: u64, m: Requant) -> i64 {
    let n = m.shift;
    // |2·acc·m| < 2^95 and cnt·2^n < 2^126 for the counts and shifts that occur (n ≤ 62).
    let num = 2 * acc as i128 * m.multiplier as i128 + ((cnt as i128) << n);
    let t = num >> (n + 1);
    match i64::try_from(t) {
        Ok(t) => t.div_euclid(cnt as i64),
        Err(_) => t
            .div_euclid(cnt as i128)
            .clamp(i64::MIN as i128, i64::MAX as i128) as i64,
    }
}

/// Quantized average pooling.
pub fn qavg_pool2d<X: QInt, O: QInt>(
    attrs: &QAvgPool2d,
    x: &[X],
    x_shape: &[usize],
    out: &mut [O],
) -> Result<()> {
    qavg_pool2d_isa(Isa::detect(), attrs, x, x_shape, out)
}

/// [`qavg_pool2d`] on a chosen instruction set (clamped to the CPU).
pub fn qavg_pool2d_isa<X: QInt, O: QInt>(
    isa: Isa,
    attrs: &QAvgPool2d,
    x: &[X],
    x_shape: &[usize],
    out: &mut [O],
) -> Result<()> {
    const OP: &str = "QAvgPool2d";
    let PoolKind::Average { count_include_pad } = attrs.pool.kind else {
        return Err(invalid(OP, "pool kind must be average"));
    };
    check_requant(OP, attrs.requant)?;
    check_out::<O>(OP, Some(attrs.out_dtype), &attrs.out)?;
    let [n, h, w, c, oh, ow] = check_pool(OP, &attrs.pool, x_shape)?;
    check_len(OP, "input", x.len(), n * h * w * c)?;
    check_len(OP, "output", out.len(), n * oh * ow * c)?;
    let row = ow * c;
    if row == 0 {
        return Ok(());
    }
    let g = Geo {
        h,
        w,
        c,
        oh,
        dil: attrs.pool.dilations,
    };
    par::for_rows(out, row, 1 << 12, |r0, chunk| {
        let mut acc = vec![0i64; c];
        for (r, dst) in chunk.chunks_exact_mut(row).enumerate() {
            let (b, oy) = ((r0 + r) / oh, (r0 + r) % oh);
            let p = attrs.pool.padding;
            let [dh, dw] = g.dil;
            let ys = window_taps(
                oy,
                attrs.pool.strides[0],
                attrs.pool.kernel[0],
                dh,
                p.top,
                p.bottom,
                h,
            );
            for (ox, px) in dst.chunks_exact_mut(c).enumerate() {
                let xs = window_taps(
                    ox,
                    attrs.pool.strides[1],
                    attrs.pool.kernel[1],
                    dw,
                    p.left,
                    p.right,
                    w,
                );
                let z = attrs.input_zero_point as i64;
                window_sum(isa, x, g, b, ys, xs, z, &mut acc);
                let cnt = if count_include_pad {
                    ys.padded * xs.padded
                } else {
                    ys.count * xs.count
                } as u64;
                for (o, &a) in px.iter_mut().zip(&acc) {
                    let r = if cnt == 0 {
                        0
                    } else {
                        mean_round(a, cnt, attrs.requant)
                    };
                    *o = O::from_i32(sat_out(r, &attrs.out));
                }
            }
        }
    });
    Ok(())
}

/// `acc[ch] = Σ (x − z)` over the input rows `ys` and columns `xs` of image `b`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn window_sum_body<X: QInt>(
    x: &[X],
    g: Geo,
    b: usize,
    ys: WindowTaps,
    xs: WindowTaps,
    z: i64,
    acc: &mut [i64],
) {
    acc.fill(0);
    let [dh, dw] = g.dil;
    if dh == 1 && dw == 1 {
        sum_window(x, g, b, ys.dense(), xs.dense(), acc);
    } else {
        sum_window(x, g, b, ys.stepped(dh), xs.stepped(dw), acc);
    }
    let count = (ys.count * xs.count) as i64;
    for d in acc.iter_mut() {
        *d -= count * z;
    }
}

/// `acc[ch] += x[b, y, x, ch]` over the window's rows and columns.
#[inline(always)]
fn sum_window<X: QInt>(
    x: &[X],
    g: Geo,
    b: usize,
    rows: impl Iterator<Item = usize>,
    cols: impl Iterator<Item = usize> + Clone,
    acc: &mut [i64],
) {
    let c = g.c;
    for y in rows {
        for xx in cols.clone() {
            let s = &x[((b * g.h + y) * g.w + xx) * c..][..c];
            for (d, &v) in acc.iter_mut().zip(s) {
                *d += v.into() as i64;
            }
        }
    }
}

multiversion!(
    /// Window sums of one output pixel.
    fn window_sum<X: QInt> = window_sum_body(x: &[X], g: Geo, b: usize, ys: WindowTaps, xs: WindowTaps, z: i64, acc: &mut [i64])
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::int::testutil::{with_threads, Rng};
    use ipukit_ir::ops::fixed::OutRange;
    use ipukit_ir::ops::Padding2d;
    use ipukit_ir::DType;
    use proptest::prelude::*;

    /// ONNX Runtime's pooling loop (as in the float tests, taps enumerated one by one so that
    /// dilation is covered) with §7's integer arithmetic.
    fn naive<X: QInt>(a: &Pool2d, q: Option<&QAvgPool2d>, x: &[X], xs: [usize; 4]) -> Vec<i32> {
        let [n, h, w, c] = xs;
        let [oh, ow] = a.out_hw(h, w).unwrap();
        let p = a.padding;
        let mut out = vec![0; n * oh * ow * c];
        for b in 0..n {
            for oy in 0..oh {
                for ox in 0..ow {
                    let hs = (oy * a.strides[0]) as i64 - p.top as i64;
                    let ws = (ox * a.strides[1]) as i64 - p.left as i64;
                    let ty: Vec<i64> = (0..a.kernel[0])
                        .map(|i| hs + (i * a.dilations[0]) as i64)
                        .collect();
                    let tx: Vec<i64> = (0..a.kernel[1])
                        .map(|i| ws + (i * a.dilations[1]) as i64)
                        .collect();
                    // Taps inside the padded input (ceil_mode windows may run past it).
                    let in_pad = |t: &[i64], len: usize, after: usize| {
                        t.iter().filter(|&&v| v < (len + after) as i64).count() as i64
                    };
                    let pool_size = in_pad(&ty, h, p.bottom) * in_pad(&tx, w, p.right);
                    let ry: Vec<i64> = ty.into_iter().filter(|&v| v >= 0 && v < h as i64).collect();
                    let rx: Vec<i64> = tx.into_iter().filter(|&v| v >= 0 && v < w as i64).collect();
                    for ch in 0..c {
                        let vals: Vec<i128> = ry
                            .iter()
                            .flat_map(|&y| rx.iter().map(move |&xx| (y, xx)))
                            .map(|(y, xx)| {
                                x[((b * h + y as usize) * w + xx as usize) * c + ch].into() as i128
                            })
                            .collect();
                        out[((b * oh + oy) * ow + ox) * c + ch] = match (a.kind, q) {
                            (PoolKind::Max, _) => {
                                vals.iter().copied().max().map_or(X::MIN_I32, |v| v as i32)
                            }
                            (PoolKind::Average { count_include_pad }, Some(q)) => {
                                let z = q.input_zero_point as i128;
                                let acc: i128 = vals.iter().map(|v| v - z).sum();
                                let cnt = if count_include_pad {
                                    pool_size as i128
                                } else {
                                    vals.len() as i128
                                };
                                let r = if cnt <= 0 {
                                    0
                                } else {
                                    let num = acc * q.requant.multiplier as i128;
                                    let den = cnt << q.requant.shift;
                                    (2 * num + den).div_euclid(2 * den)
                                };
                                (r + q.out.zero_point as i128)
                                    .clamp(q.out.min as i128, q.out.max as i128)
                                    as i32
                            }
                            _ => unreachable!(),
                        };
                    }
                }
            }
        }
        out
    }

    prop_compose! {
        fn pool_case()(kh in 1usize..5, kw in 1usize..5, sh in 1usize..4, sw in 1usize..4,
                       dilated in any::<bool>(), dh in 1usize..4, dw in 1usize..4,
                       pads in proptest::array::uniform4(0usize..3), ceil in any::<bool>(),
                       cip in any::<bool>(), n in 1usize..3, h in 1usize..9, w in 1usize..9, c in 1usize..20)
            -> (Pool2d, [usize; 4]) {
            // Half the cases dense, half with dilations 1..4 per axis.
            let dilations = if dilated { [dh, dw] } else { [1, 1] };
            let span = [(kh - 1) * dilations[0] + 1, (kw - 1) * dilations[1] + 1];
            // ONNX requires pads smaller than the (dilated) window.
            let padding = Padding2d { top: pads[0].min(span[0] - 1), left: pads[1].min(span[1] - 1), bottom: pads[2].min(span[0] - 1), right: pads[3].min(span[1] - 1) };
            let h = h.max(span[0]);
            let w = w.max(span[1]);
            (Pool2d { kind: PoolKind::Average { count_include_pad: cip }, kernel: [kh, kw], strides: [sh, sw], dilations, padding, ceil_mode: ceil }, [n, h, w, c])
        }
    }

    fn check<X: QInt, O: QInt>(
        pool: &Pool2d,
        xs: [usize; 4],
        seed: u64,
        threads: usize,
    ) -> std::result::Result<(), TestCaseError> {
        let mut rng = Rng::new(seed);
        let x: Vec<X> = rng.vec(xs.iter().product());
        let [oh, ow] = pool.out_hw(xs[1], xs[2]).unwrap();
        let len = xs[0] * oh * ow * xs[3];
        // Max.
        let mp = Pool2d {
            kind: PoolKind::Max,
            ..pool.clone()
        };
        let want = naive::<X>(&mp, None, &x, xs);
        for isa in Isa::supported() {
            let mut got = vec![X::default(); len];
            with_threads(threads, || max_pool2d_isa(isa, &mp, &x, &xs, &mut got)).unwrap();
            let got: Vec<i32> = got.iter().map(|&v| v.into()).collect();
            prop_assert_eq!(&got, &want, "max {}", isa);
        }
        // Average.
        let zout = if O::MIN_I32 == 0 {
            rng.extreme(0, O::MAX_I32)
        } else {
            0
        };
        let q = QAvgPool2d {
            pool: pool.clone(),
            input_zero_point: rng.extreme(X::MIN_I32, X::MAX_I32),
            requant: rng.requant(1),
            out_dtype: O::DTYPE,
            out: OutRange {
                zero_point: zout,
                min: O::MIN_I32,
                max: O::MAX_I32,
            },
        };
        let want = naive::<X>(pool, Some(&q), &x, xs);
        for isa in Isa::supported() {
            let mut got = vec![O::default(); len];
            with_threads(threads, || qavg_pool2d_isa(isa, &q, &x, &xs, &mut got)).unwrap();
            let got: Vec<i32> = got.iter().map(|&v| v.into()).collect();
            prop_assert_eq!(&got, &want, "avg {}", isa);
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        fn matches_definition((pool, xs) in pool_case(), seed in any::<u64>(), threads in 1usize..3) {
            check::<i16, i16>(&pool, xs, seed, threads)?;
            check::<u8, u8>(&pool, xs, seed, threads)?;
            check::<u8, i16>(&pool, xs, seed, threads)?;
        }
    }

    #[test]
    fn global_pool_and_large_windows() {
        let gp = Pool2d {
            kind: PoolKind::Average {
                count_include_pad: false,
            },
            kernel: [20, 20],
            strides: [1, 1],
            dilations: [1, 1],
            padding: Padding2d::ZERO,
            ceil_mode: false,
        };
        check::<i16, i16>(&gp, [2, 20, 20, 256], 3, 2).unwrap();
        let mp = Pool2d {
            kind: PoolKind::Average {
                count_include_pad: true,
            },
            kernel: [5, 5],
            strides: [1, 1],
            dilations: [1, 1],
            padding: Padding2d {
                top: 2,
                left: 2,
                bottom: 2,
                right: 2,
            },
            ceil_mode: false,
        };
        check::<i16, i16>(&mp, [1, 20, 20, 64], 4, 2).unwrap();
        // Dilated windows (spans 9 × 13) on enough channels for the SIMD paths.
        let dp = Pool2d {
            dilations: [2, 3],
            ..mp.clone()
        };
        check::<u8, i16>(&dp, [1, 20, 20, 64], 5, 2).unwrap();
    }

    #[test]
    fn hand_computed_examples() {
        // 2×2 average of [1, 2, 3, 5] (z = 0, ratio 1): 11/4 = 2.75 → 3; of [1, 2, 3, 4]: 2.5 → 3;
        // of [-1, -2, -3, -4]: −2.5 → −2.
        let q = QAvgPool2d {
            pool: Pool2d {
                kind: PoolKind::Average {
                    count_include_pad: false,
                },
                kernel: [2, 2],
                strides: [2, 2],
                dilations: [1, 1],
                padding: Padding2d::ZERO,
                ceil_mode: false,
            },
            input_zero_point: 0,
            requant: Requant::IDENTITY,
            out_dtype: DType::I16,
            out: OutRange::full(DType::I16, 0),
        };
        for (x, y) in [
            ([1i16, 2, 3, 5], 3i16),
            ([1, 2, 3, 4], 3),
            ([-1, -2, -3, -4], -2),
        ] {
            let mut o = [0i16];
            qavg_pool2d(&q, &x, &[1, 2, 2, 1], &mut o).unwrap();
            assert_eq!(o[0], y);
        }
        // Max ignores padding.
        let mp = Pool2d {
            kind: PoolKind::Max,
            kernel: [3, 3],
            strides: [1, 1],
            dilations: [1, 1],
            padding: Padding2d {
                top: 1,
                left: 1,
                bottom: 1,
                right: 1,
            },
            ceil_mode: false,
        };
        let mut o = [0i16];
        max_pool2d(&mp, &[-5i16], &[1, 1, 1, 1], &mut o).unwrap();
        assert_eq!(o, [-5]);
        assert!(max_pool2d(&q.pool, &[0i16; 4], &[1, 2, 2, 1], &mut o).is_err());
    }
}
