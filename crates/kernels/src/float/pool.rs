//! Max and average pooling over H and W of NHWC tensors (ONNX semantics).
//!
//! A window of output `(oy, ox)` covers input rows `oy·s − pad_top … + KH` (clipped to the
//! input). Max pooling ignores padding. Average pooling divides by the number of input
//! elements in the window, or with `count_include_pad` by the window's size clipped to the
//! padded input (`[-pad_top, H + pad_bottom)`), as ONNX Runtime does for `ceil_mode` windows
//! that run past the padding.

use crate::error::{check_len, invalid, Result};
use crate::par;
use ipukit_ir::ops::{Pool2d, PoolKind};

/// One axis of a window: input range `[lo, hi)` and the padded-extent length.
#[derive(Clone, Copy)]
struct Span {
    lo: usize,
    hi: usize,
    padded: usize,
}

fn span(
    o: usize,
    stride: usize,
    k: usize,
    pad_before: usize,
    pad_after: usize,
    len: usize,
) -> Span {
    let start = (o * stride) as isize - pad_before as isize;
    let end = start + k as isize;
    let padded_end = end.min((len + pad_after) as isize);
    let lo = start.max(0) as usize;
    let hi = (end.min(len as isize).max(0) as usize).max(lo);
    Span {
        lo,
        hi,
        padded: (padded_end - start).max(0) as usize,
    }
}

/// Pools `x` (NHWC) into `out` (NHWC of `attrs.out_hw`).
pub fn pool2d(attrs: &Pool2d, x: &[f32], x_shape: &[usize], out: &mut [f32]) -> Result<()> {
    const OP: &str = "Pool2d";
    let &[n, h, w, c] = x_shape else {
        return Err(invalid(
            OP,
            format!("input must be 4-D NHWC, got {x_shape:?}"),
        ));
    };
    if attrs.strides.contains(&0) || attrs.kernel.contains(&0) {
        return Err(invalid(OP, "kernel and strides must be positive"));
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
    par::for_rows(out, row, 1 << 13, |r0, chunk| {
        for (r, dst) in chunk.chunks_exact_mut(row).enumerate() {
            let (b, oy) = ((r0 + r) / oh, (r0 + r) % oh);
            let ys = span(oy, sh, kh, p.top, p.bottom, h);
            for (ox, px) in dst.chunks_exact_mut(c).enumerate() {
                let xs = span(ox, sw, kw, p.left, p.right, w);
                match attrs.kind {
                    PoolKind::Max => {
                        px.fill(f32::MIN);
                        for y in ys.lo..ys.hi {
                            for xx in xs.lo..xs.hi {
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
                        for y in ys.lo..ys.hi {
                            for xx in xs.lo..xs.hi {
                                let s = &x[((b * h + y) * w + xx) * c..][..c];
                                for (d, &v) in px.iter_mut().zip(s) {
                                    *d += v;
                                }
                            }
                        }
                        let count = if count_include_pad {
                            ys.padded * xs.padded
                        } else {
                            (ys.hi - ys.lo) * (xs.hi - xs.lo)
                        };
                        let inv = if count > 0 { 1.0 / count as f32 } else { 0.0 };
                        px.iter_mut().for_each(|d| *d *= inv);
                    }
                }
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::float::testutil::{assert_close, data, with_threads};
    use ipukit_ir::ops::Padding2d;
    use proptest::prelude::*;

    /// ONNX Runtime's loop (pool_functors.h) transcribed on NCHW-free coordinates.
    fn naive(a: &Pool2d, x: &[f32], xs: [usize; 4]) -> Vec<f32> {
        let [n, h, w, c] = xs;
        let [oh, ow] = a.out_hw(h, w).unwrap();
        let p = a.padding;
        let mut out = vec![0.0; n * oh * ow * c];
        for b in 0..n {
            for oy in 0..oh {
                for ox in 0..ow {
                    let hs = (oy * a.strides[0]) as i64 - p.top as i64;
                    let ws = (ox * a.strides[1]) as i64 - p.left as i64;
                    let he = (hs + a.kernel[0] as i64).min((h + p.bottom) as i64);
                    let we = (ws + a.kernel[1] as i64).min((w + p.right) as i64);
                    let pool_size = (he - hs) * (we - ws);
                    let (hs2, ws2) = (hs.max(0), ws.max(0));
                    let (he2, we2) = (he.min(h as i64), we.min(w as i64));
                    for ch in 0..c {
                        let mut acc = match a.kind {
                            PoolKind::Max => f32::MIN,
                            _ => 0.0,
                        };
                        for y in hs2..he2 {
                            for xx in ws2..we2 {
                                let v = x[((b * h + y as usize) * w + xx as usize) * c + ch];
                                acc = match a.kind {
                                    PoolKind::Max => acc.max(v),
                                    _ => acc + v,
                                };
                            }
                        }
                        if let PoolKind::Average { count_include_pad } = a.kind {
                            let cnt = if count_include_pad {
                                pool_size
                            } else {
                                (he2 - hs2) * (we2 - ws2)
                            };
                            acc /= cnt as f32;
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
            pads in proptest::array::uniform4(0usize..3), ceil in any::<bool>(),
            h in 1usize..12, w in 1usize..12, c in 1usize..20,
        ) {
            let pads = [pads[0].min(kh - 1), pads[1].min(kw - 1), pads[2].min(kh - 1), pads[3].min(kw - 1)];
            let a = Pool2d {
                kind: match kind { 0 => PoolKind::Max, 1 => PoolKind::Average { count_include_pad: false }, _ => PoolKind::Average { count_include_pad: true } },
                kernel: [kh, kw],
                strides: [sh, sw],
                padding: Padding2d { top: pads[0], left: pads[1], bottom: pads[2], right: pads[3] },
                ceil_mode: ceil,
            };
            let xs = [2, h.max(kh), w.max(kw), c];
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
            padding: Padding2d {
                top: pad,
                left: pad,
                bottom: pad,
                right: pad,
            },
            ceil_mode: ceil,
        }
    }

    /// Expected values computed by ONNX Runtime on the same 1×1×4×4 input (0..16).
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
    }
}
