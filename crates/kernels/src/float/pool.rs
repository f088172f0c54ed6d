//! Max and average pooling over H and W of NHWC tensors (ONNX semantics).
//!
//! A window of output `(oy, ox)` has the input rows `oy·s − pad_top + i·d` for `i < KH`
//! (those inside the input; `d` is the dilation, 1 for a dense window) and likewise the
//! columns. Max pooling ignores padding. Average pooling divides by the number of input
//! elements in the window, or with `count_include_pad` by the window's size clipped to the
//! padded input (`[-pad_top, H + pad_bottom)`), as ONNX Runtime does for `ceil_mode` windows
//! that run past the padding.

use crate::error::{check_len, invalid, Result};
use crate::par;
use crate::shape::{window_taps, WindowTaps};
use crate::window::nhwc;
use ipukit_ir::ops::{Pool2d, PoolKind};

/// Pools `x` (NHWC) into `out` (NHWC of `attrs.out_hw`).
pub fn pool2d(attrs: &Pool2d, x: &[f32], x_shape: &[usize], out: &mut [f32]) -> Result<()> {
    const OP: &str = "Pool2d";
    let [n, h, w, c] = nhwc(OP, x_shape)?;
    if attrs.strides.contains(&0) || attrs.kernel.contains(&0) || attrs.dilations.contains(&0) {
        return Err(invalid(
            OP,
            "kernel, strides and dilations must be positive",
        ));
    }
    let [oh, ow] = attrs.out_hw(h, w).ok_or_else(|| {
        invalid(
            OP,
            format!("window {:?} does not fit input {x_shape:?}", attrs.kernel),
        )
    })?;
    check_len(OP, "input", x.len(), n * h * w * c)?;
    check_len(OP, "output", out.len(), n * oh * ow * c)?;
    let row = ow * c;
    if row == 0 {
        return Ok(());
    }
    let p = attrs.padding;
    let [kh, kw] = attrs.kernel;
    let [sh, sw] = attrs.strides;
    let [dh, dw] = attrs.dilations;
    let g = Geo { h, w, c };
    par::for_rows(out, row, 1 << 13, |r0, chunk| {
        for (r, dst) in chunk.chunks_exact_mut(row).enumerate() {
            let (b, oy) = ((r0 + r) / oh, (r0 + r) % oh);
            let ys = window_taps(oy, sh, kh, dh, p.top, p.bottom, h);
            for (ox, px) in dst.chunks_exact_mut(c).enumerate() {
                let xs = window_taps(ox, sw, kw, dw, p.left, p.right, w);
                if dh == 1 && dw == 1 {
                    // Dense window: plain ranges.
                    pool_pixel(attrs.kind, x, g, b, ys.dense(), xs.dense(), (ys, xs), px);
                } else {
                    let (rows, cols) = (ys.stepped(dh), xs.stepped(dw));
                    pool_pixel(attrs.kind, x, g, b, rows, cols, (ys, xs), px);
                }
            }
        }
    });
    Ok(())
}

/// Input geometry (H, W, C) of a pooling.
#[derive(Clone, Copy)]
struct Geo {
    h: usize,
    w: usize,
    c: usize,
}

/// One output pixel (all channels) from the input rows `rows` and columns `cols` of image `b`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn pool_pixel<R, C>(
    kind: PoolKind,
    x: &[f32],
    g: Geo,
    b: usize,
    rows: R,
    cols: C,
    (ys, xs): (WindowTaps, WindowTaps),
    px: &mut [f32],
) where
    R: Iterator<Item = usize>,
    C: Iterator<Item = usize> + Clone,
{
    let Geo { h, w, c } = g;
    match kind {
        PoolKind::Max => {
            px.fill(f32::MIN);
            for y in rows {
                for xx in cols.clone() {
                    let s = &x[((b * h + y) * w + xx) * c..][..c];
                    for (d, &v) in px.iter_mut().zip(s) {
                        // Select form (not f32::max) so the loop vectorises.
                        *d = if v > *d { v } else { *d };
                    }
                }
            }
        }
        PoolKind::Average { count_include_pad } => {
            px.fill(0.0);
            for y in rows {
                for xx in cols.clone() {
                    let s = &x[((b * h + y) * w + xx) * c..][..c];
                    for (d, &v) in px.iter_mut().zip(s) {
                        *d += v;
                    }
                }
            }
            let count = if count_include_pad {
                ys.padded * xs.padded
            } else {
                ys.count * xs.count
            };
            let inv = if count > 0 { 1.0 / count as f32 } else { 0.0 };
            px.iter_mut().for_each(|d| *d *= inv);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::float::testutil::{assert_close, data, with_threads};
    use ipukit_ir::ops::Padding2d;
    use proptest::prelude::*;

    /// ONNX Runtime's loop (pool_functors.h) transcribed on NCHW-free coordinates, with the
    /// window's taps enumerated one by one (`hs + i·dh`), so that dilation is covered too.
    fn naive(a: &Pool2d, x: &[f32], xs: [usize; 4]) -> Vec<f32> {
        let [n, h, w, c] = xs;
        let [oh, ow] = a.out_hw(h, w).unwrap();
        let p = a.padding;
        let [dh, dw] = a.dilations;
        let mut out = vec![0.0; n * oh * ow * c];
        for b in 0..n {
            for oy in 0..oh {
                for ox in 0..ow {
                    let hs = (oy * a.strides[0]) as i64 - p.top as i64;
                    let ws = (ox * a.strides[1]) as i64 - p.left as i64;
                    let ty: Vec<i64> = (0..a.kernel[0]).map(|i| hs + (i * dh) as i64).collect();
                    let tx: Vec<i64> = (0..a.kernel[1]).map(|i| ws + (i * dw) as i64).collect();
                    // Taps inside the padded input (ceil_mode windows may run past it).
                    let in_pad = |t: &[i64], len: usize, after: usize| {
                        t.iter().filter(|&&v| v < (len + after) as i64).count()
                    };
                    let pool_size = in_pad(&ty, h, p.bottom) * in_pad(&tx, w, p.right);
                    for ch in 0..c {
                        let mut acc = match a.kind {
                            PoolKind::Max => f32::MIN,
                            _ => 0.0,
                        };
                        let mut valid = 0;
                        for &y in ty.iter().filter(|&&y| y >= 0 && y < h as i64) {
                            for &xx in tx.iter().filter(|&&v| v >= 0 && v < w as i64) {
                                let v = x[((b * h + y as usize) * w + xx as usize) * c + ch];
                                valid += 1;
                                acc = match a.kind {
                                    PoolKind::Max => acc.max(v),
                                    _ => acc + v,
                                };
                            }
                        }
                        if let PoolKind::Average { count_include_pad } = a.kind {
                            let cnt = if count_include_pad { pool_size } else { valid };
                            acc = if cnt > 0 { acc / cnt as f32 } else { 0.0 };
                        }
                        out[((b * oh + oy) * ow + ox) * c + ch] = acc;
                    }
                }
            }
        }
        out
    }

    proptest! {
        #[test]
        fn matches_naive(
            kind in 0usize..3, kh in 1usize..5, kw in 1usize..5, sh in 1usize..4, sw in 1usize..4,
            dilated in any::<bool>(), dh in 1usize..4, dw in 1usize..4,
            pads in proptest::array::uniform4(0usize..3), ceil in any::<bool>(),
            h in 1usize..12, w in 1usize..12, c in 1usize..20,
        ) {
            // Half the cases dense (the fast path), half with dilations 1..4 per axis.
            let dilations = if dilated { [dh, dw] } else { [1, 1] };
            let span = [(kh - 1) * dilations[0] + 1, (kw - 1) * dilations[1] + 1];
            // ONNX requires pads smaller than the (dilated) window.
            let pads = [pads[0].min(span[0] - 1), pads[1].min(span[1] - 1), pads[2].min(span[0] - 1), pads[3].min(span[1] - 1)];
            let a = Pool2d {
                kind: match kind { 0 => PoolKind::Max, 1 => PoolKind::Average { count_include_pad: false }, _ => PoolKind::Average { count_include_pad: true } },
                kernel: [kh, kw],
                strides: [sh, sw],
                dilations,
                padding: Padding2d { top: pads[0], left: pads[1], bottom: pads[2], right: pads[3] },
                ceil_mode: ceil,
            };
            let xs = [2, h.max(span[0]), w.max(span[1]), c];
            let x = data(xs.iter().product(), 11);
            let want = naive(&a, &x, xs);
            let mut out = vec![f32::NAN; want.len()];
            with_threads(2, || pool2d(&a, &x, &xs, &mut out)).unwrap();
            assert_close(&out, &want, 1e-6).map_err(TestCaseError::fail)?;
        }
    }

    fn avg(k: usize, s: usize, pad: usize, include: bool, ceil: bool) -> Pool2d {
        Pool2d {
            kind: PoolKind::Average {
                count_include_pad: include,
            },
            kernel: [k, k],
            strides: [s, s],
            dilations: [1, 1],
            padding: Padding2d {
                top: pad,
                left: pad,
                bottom: pad,
                right: pad,
            },
            ceil_mode: ceil,
        }
    }

    /// Expected values computed by ONNX Runtime (1.31, opset 19) on the same 1×1×4×4 input
    /// (0..16).
    #[test]
    fn onnx_runtime_cases() {
        let x: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let run = |a: &Pool2d| {
            let [oh, ow] = a.out_hw(4, 4).unwrap();
            let mut out = vec![0.0; oh * ow];
            pool2d(a, &x, &[1, 4, 4, 1], &mut out).unwrap();
            out
        };
        let t = 1e-6;
        // count_include_pad = 1: corners divide by 9.
        assert_close(
            &run(&avg(3, 1, 1, true, false))[..4],
            &[10.0 / 9.0, 2.0, 24.0 / 9.0, 2.0],
            t,
        )
        .unwrap();
        // count_include_pad = 0: corners divide by 4.
        assert_close(
            &run(&avg(3, 1, 1, false, false))[..4],
            &[2.5, 3.0, 4.0, 4.5],
            t,
        )
        .unwrap();
        // ceil_mode: the last window covers only rows/cols 2..4.
        assert_close(&run(&avg(3, 2, 0, false, true)), &[5.0, 6.5, 11.0, 12.5], t).unwrap();
        // ceil_mode + count_include_pad: windows are clipped to the padded input.
        assert_close(
            &run(&avg(2, 2, 1, true, true)),
            &[0.0, 0.75, 0.75, 3.0, 7.5, 4.5, 3.0, 6.75, 3.75],
            t,
        )
        .unwrap();
        assert_close(
            &run(&avg(3, 2, 1, true, true)),
            &[
                10.0 / 9.0,
                24.0 / 9.0,
                10.0 / 6.0,
                51.0 / 9.0,
                10.0,
                5.5,
                25.0 / 6.0,
                7.0,
                3.75,
            ],
            t,
        )
        .unwrap();
        assert_close(
            &run(&avg(2, 2, 1, false, true)),
            &[0.0, 1.5, 3.0, 6.0, 7.5, 9.0, 12.0, 13.5, 15.0],
            t,
        )
        .unwrap();
        let max = |k: usize, s: usize, p: usize, ceil: bool| Pool2d {
            kind: PoolKind::Max,
            ..avg(k, s, p, false, ceil)
        };
        assert_eq!(run(&max(3, 2, 0, true)), vec![10.0, 11.0, 14.0, 15.0]);
        assert_eq!(
            run(&max(2, 2, 1, true)),
            vec![0.0, 2.0, 3.0, 8.0, 10.0, 11.0, 12.0, 14.0, 15.0]
        );
        assert_eq!(
            run(&max(5, 1, 2, false)),
            vec![
                10.0, 11.0, 11.0, 11.0, 14.0, 15.0, 15.0, 15.0, 14.0, 15.0, 15.0, 15.0, 14.0, 15.0,
                15.0, 15.0
            ]
        );
        // Dilation 2 (ONNX test_maxpool_2d_dilations / test_averagepool_2d_dilations shape).
        let dil = |a: Pool2d| Pool2d {
            dilations: [2, 2],
            ..a
        };
        assert_eq!(run(&dil(max(2, 1, 0, false))), vec![10.0, 11.0, 14.0, 15.0]);
        assert_eq!(
            run(&dil(avg(2, 1, 0, false, false))),
            vec![5.0, 6.0, 9.0, 10.0]
        );
        // Dilation 2 with padding and ceil_mode: the last window's second tap lies past the
        // padding, so with count_include_pad it counts one tap per axis.
        assert_eq!(
            run(&dil(max(2, 2, 1, true))),
            vec![5.0, 7.0, 7.0, 13.0, 15.0, 15.0, 13.0, 15.0, 15.0]
        );
        assert_close(
            &run(&dil(avg(2, 2, 1, true, true))),
            &[1.25, 3.0, 3.5, 4.5, 10.0, 11.0, 6.5, 14.0, 15.0],
            t,
        )
        .unwrap();
        assert_close(
            &run(&dil(avg(2, 2, 1, false, true))),
            &[5.0, 6.0, 7.0, 9.0, 10.0, 11.0, 13.0, 14.0, 15.0],
            t,
        )
        .unwrap();
        assert_close(
            &run(&dil(avg(2, 1, 1, true, false))),
            &[
                1.25, 2.5, 3.0, 1.5, 2.5, 5.0, 6.0, 3.0, 4.5, 9.0, 10.0, 5.0, 2.25, 4.5, 5.0, 2.5,
            ],
            t,
        )
        .unwrap();
    }
}
