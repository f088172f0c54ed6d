//! Spatial resize of NHWC tensors with ONNX Runtime's semantics.
//!
//! Each output coordinate maps to an input coordinate with [`Resize::source_coord`].
//! Nearest picks a pixel by the [`NearestMode`] and clamps it to the input; linear clamps the
//! coordinate to `[0, len − 1]` and blends the two neighbours (the upper one clamped too).

use crate::error::{check_len, invalid, Result};
use crate::par;
use crate::window::nhwc;
use ipukit_ir::ops::{NearestMode, Resize, ResizeMode};

/// Nearest input index for a source coordinate, clamped to `[0, len)`; the integer resize
/// uses the same rule.
pub(crate) fn nearest(x: f32, mode: NearestMode, len: usize) -> usize {
    let i = match mode {
        NearestMode::RoundPreferFloor => {
            if x == x.trunc() + 0.5 {
                x.floor()
            } else {
                x.round()
            }
        }
        NearestMode::RoundPreferCeil => x.round(),
        NearestMode::Floor => x.floor(),
        NearestMode::Ceil => x.ceil(),
    };
    (i.max(0.0) as usize).min(len.saturating_sub(1))
}

/// Linear taps along one axis: `(i0, i1, w0, w1)` for every output index.
fn linear_taps(
    r: &Resize,
    out_len: usize,
    in_len: usize,
    scale: f32,
) -> Vec<(usize, usize, f32, f32)> {
    (0..out_len)
        .map(|o| {
            let x = r.source_coord(o, in_len, out_len, scale);
            let x = x.max(0.0).min(in_len as f32 - 1.0);
            let i0 = (x as usize).min(in_len - 1);
            let i1 = (i0 + 1).min(in_len - 1);
            if i0 == i1 {
                (i0, i1, 0.5, 0.5)
            } else {
                let w1 = x - i0 as f32;
                (i0, i1, 1.0 - w1, w1)
            }
        })
        .collect()
}

/// Cubic taps along one axis: four input indices and weights for every output index, as ONNX
/// Runtime computes them (indices clamped to the edge, or dropped and the weights renormalised
/// with `exclude_outside`).
fn cubic_taps(
    r: &Resize,
    a: f32,
    exclude: bool,
    out_len: usize,
    in_len: usize,
    scale: f32,
) -> Vec<([usize; 4], [f32; 4])> {
    (0..out_len)
        .map(|o| {
            let x = r.source_coord(o, in_len, out_len, scale);
            let xi = x.floor();
            let s = x - xi;
            let mut w = [
                ((a * (s + 1.0) - 5.0 * a) * (s + 1.0) + 8.0 * a) * (s + 1.0) - 4.0 * a,
                ((a + 2.0) * s - (a + 3.0)) * s * s + 1.0,
                ((a + 2.0) * (1.0 - s) - (a + 3.0)) * (1.0 - s) * (1.0 - s) + 1.0,
                ((a * (2.0 - s) - 5.0 * a) * (2.0 - s) + 8.0 * a) * (2.0 - s) - 4.0 * a,
            ];
            let mut idx = [0usize; 4];
            let last = in_len as i64 - 1;
            for k in 0..4 {
                let i = xi as i64 + k as i64 - 1;
                if exclude && !(0..=last).contains(&i) {
                    w[k] = 0.0;
                }
                idx[k] = i.clamp(0, last) as usize;
            }
            if exclude {
                let sum: f32 = w.iter().sum();
                if sum != 0.0 {
                    w.iter_mut().for_each(|v| *v /= sum);
                }
            }
            (idx, w)
        })
        .collect()
}

/// Resizes `x` (NHWC) to `[N, size[0], size[1], C]`.
pub fn resize(attrs: &Resize, x: &[f32], x_shape: &[usize], out: &mut [f32]) -> Result<()> {
    const OP: &str = "Resize";
    let [n, h, w, c] = nhwc(OP, x_shape)?;
    let [oh, ow] = attrs.size;
    check_len(OP, "input", x.len(), n * h * w * c)?;
    check_len(OP, "output", out.len(), n * oh * ow * c)?;
    if out.is_empty() {
        return Ok(());
    }
    if h == 0 || w == 0 {
        return Err(invalid(
            OP,
            format!("cannot resize an empty input {x_shape:?}"),
        ));
    }
    let [sh, sw] = attrs.scales;
    let row = ow * c;
    match attrs.mode {
        ResizeMode::Nearest(mode) => {
            let ys: Vec<usize> = (0..oh)
                .map(|o| nearest(attrs.source_coord(o, h, oh, sh), mode, h))
                .collect();
            let xs: Vec<usize> = (0..ow)
                .map(|o| nearest(attrs.source_coord(o, w, ow, sw), mode, w))
                .collect();
            par::for_rows(out, row, par::MIN_PAR_ELEMS, |r0, chunk| {
                for (r, dst) in chunk.chunks_exact_mut(row).enumerate() {
                    let (b, oy) = ((r0 + r) / oh, (r0 + r) % oh);
                    let src_row = &x[(b * h + ys[oy]) * w * c..(b * h + ys[oy] + 1) * w * c];
                    for (px, &ix) in dst.chunks_exact_mut(c).zip(&xs) {
                        px.copy_from_slice(&src_row[ix * c..(ix + 1) * c]);
                    }
                }
            });
        }
        ResizeMode::Linear => {
            let ys = linear_taps(attrs, oh, h, sh);
            let xs = linear_taps(attrs, ow, w, sw);
            par::for_rows(out, row, 1 << 13, |r0, chunk| {
                for (r, dst) in chunk.chunks_exact_mut(row).enumerate() {
                    let (b, oy) = ((r0 + r) / oh, (r0 + r) % oh);
                    let (y0, y1, wy0, wy1) = ys[oy];
                    let row0 = &x[(b * h + y0) * w * c..(b * h + y0 + 1) * w * c];
                    let row1 = &x[(b * h + y1) * w * c..(b * h + y1 + 1) * w * c];
                    for (px, &(x0, x1, wx0, wx1)) in dst.chunks_exact_mut(c).zip(&xs) {
                        let (a, bb) = (&row0[x0 * c..(x0 + 1) * c], &row0[x1 * c..(x1 + 1) * c]);
                        let (cc, d) = (&row1[x0 * c..(x0 + 1) * c], &row1[x1 * c..(x1 + 1) * c]);
                        for i in 0..c {
                            px[i] =
                                wy0 * (wx0 * a[i] + wx1 * bb[i]) + wy1 * (wx0 * cc[i] + wx1 * d[i]);
                        }
                    }
                }
            });
        }
        ResizeMode::Cubic {
            coeff_a,
            exclude_outside,
        } => {
            let ys = cubic_taps(attrs, coeff_a, exclude_outside, oh, h, sh);
            let xs = cubic_taps(attrs, coeff_a, exclude_outside, ow, w, sw);
            par::for_rows(out, row, 1 << 12, |r0, chunk| {
                for (r, dst) in chunk.chunks_exact_mut(row).enumerate() {
                    let (b, oy) = ((r0 + r) / oh, (r0 + r) % oh);
                    let (yi, wy) = ys[oy];
                    for (px, (xi, wx)) in dst.chunks_exact_mut(c).zip(&xs) {
                        for (i, v) in px.iter_mut().enumerate() {
                            // Along x for each of the four rows, then along y, as ONNX Runtime.
                            let mut acc = 0.0;
                            for (&y, &wyk) in yi.iter().zip(&wy) {
                                let src = &x[(b * h + y) * w * c..(b * h + y + 1) * w * c];
                                let mut rowv = 0.0;
                                for (&xx, &wxk) in xi.iter().zip(wx) {
                                    rowv += wxk * src[xx * c + i];
                                }
                                acc += wyk * rowv;
                            }
                            *v = acc;
                        }
                    }
                }
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::float::testutil::{assert_close, data, with_threads};
    use ipukit_ir::ops::CoordTransform;
    use proptest::prelude::*;

    /// Expected outputs computed by ONNX Runtime (opset 17) for: "up" = [[1, 2], [3, 4]] with
    /// scales (1.5, 2.5); "down" = 1..=16 as 4×4 with sizes 3×3 (nearest) or 3×2 (linear);
    /// "size1" = the same 4×4 to 1×3.
    #[rustfmt::skip]
    const ORT_CASES: &[(ResizeMode, CoordTransform, &str, &[f32])] = &[
        (ResizeMode::Nearest(NearestMode::RoundPreferFloor), CoordTransform::HalfPixel, "up", &[1.0, 1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 3.0, 4.0, 4.0]),
        (ResizeMode::Nearest(NearestMode::RoundPreferFloor), CoordTransform::HalfPixel, "down", &[1.0, 2.0, 4.0, 5.0, 6.0, 8.0, 13.0, 14.0, 16.0]),
        (ResizeMode::Nearest(NearestMode::RoundPreferCeil), CoordTransform::HalfPixel, "up", &[1.0, 1.0, 2.0, 2.0, 2.0, 3.0, 3.0, 4.0, 4.0, 4.0, 3.0, 3.0, 4.0, 4.0, 4.0]),
        (ResizeMode::Nearest(NearestMode::RoundPreferCeil), CoordTransform::HalfPixel, "down", &[1.0, 3.0, 4.0, 9.0, 11.0, 12.0, 13.0, 15.0, 16.0]),
        (ResizeMode::Nearest(NearestMode::Floor), CoordTransform::HalfPixel, "up", &[1.0, 1.0, 1.0, 1.0, 2.0, 1.0, 1.0, 1.0, 1.0, 2.0, 3.0, 3.0, 3.0, 3.0, 4.0]),
        (ResizeMode::Nearest(NearestMode::Floor), CoordTransform::HalfPixel, "down", &[1.0, 2.0, 3.0, 5.0, 6.0, 7.0, 9.0, 10.0, 11.0]),
        (ResizeMode::Nearest(NearestMode::Ceil), CoordTransform::HalfPixel, "up", &[1.0, 2.0, 2.0, 2.0, 2.0, 3.0, 4.0, 4.0, 4.0, 4.0, 3.0, 4.0, 4.0, 4.0, 4.0]),
        (ResizeMode::Nearest(NearestMode::Ceil), CoordTransform::HalfPixel, "down", &[6.0, 7.0, 8.0, 10.0, 11.0, 12.0, 14.0, 15.0, 16.0]),
        (ResizeMode::Linear, CoordTransform::HalfPixel, "up", &[1.0, 1.1, 1.5, 1.9, 2.0, 2.0, 2.1, 2.5, 2.9, 3.0, 3.0, 3.1, 3.5, 3.9, 4.0]),
        (ResizeMode::Linear, CoordTransform::HalfPixel, "down", &[2.166667, 4.166667, 7.5, 9.5, 12.83333, 14.83333]),
        (ResizeMode::Linear, CoordTransform::HalfPixel, "size1", &[7.166667, 8.5, 9.833333]),
        (ResizeMode::Nearest(NearestMode::RoundPreferFloor), CoordTransform::PytorchHalfPixel, "up", &[1.0, 1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 3.0, 4.0, 4.0]),
        (ResizeMode::Nearest(NearestMode::RoundPreferFloor), CoordTransform::PytorchHalfPixel, "down", &[1.0, 2.0, 4.0, 5.0, 6.0, 8.0, 13.0, 14.0, 16.0]),
        (ResizeMode::Nearest(NearestMode::RoundPreferCeil), CoordTransform::PytorchHalfPixel, "up", &[1.0, 1.0, 2.0, 2.0, 2.0, 3.0, 3.0, 4.0, 4.0, 4.0, 3.0, 3.0, 4.0, 4.0, 4.0]),
        (ResizeMode::Nearest(NearestMode::RoundPreferCeil), CoordTransform::PytorchHalfPixel, "down", &[1.0, 3.0, 4.0, 9.0, 11.0, 12.0, 13.0, 15.0, 16.0]),
        (ResizeMode::Nearest(NearestMode::Floor), CoordTransform::PytorchHalfPixel, "up", &[1.0, 1.0, 1.0, 1.0, 2.0, 1.0, 1.0, 1.0, 1.0, 2.0, 3.0, 3.0, 3.0, 3.0, 4.0]),
        (ResizeMode::Nearest(NearestMode::Floor), CoordTransform::PytorchHalfPixel, "down", &[1.0, 2.0, 3.0, 5.0, 6.0, 7.0, 9.0, 10.0, 11.0]),
        (ResizeMode::Nearest(NearestMode::Ceil), CoordTransform::PytorchHalfPixel, "up", &[1.0, 2.0, 2.0, 2.0, 2.0, 3.0, 4.0, 4.0, 4.0, 4.0, 3.0, 4.0, 4.0, 4.0, 4.0]),
        (ResizeMode::Nearest(NearestMode::Ceil), CoordTransform::PytorchHalfPixel, "down", &[6.0, 7.0, 8.0, 10.0, 11.0, 12.0, 14.0, 15.0, 16.0]),
        (ResizeMode::Linear, CoordTransform::PytorchHalfPixel, "up", &[1.0, 1.1, 1.5, 1.9, 2.0, 2.0, 2.1, 2.5, 2.9, 3.0, 3.0, 3.1, 3.5, 3.9, 4.0]),
        (ResizeMode::Linear, CoordTransform::PytorchHalfPixel, "down", &[2.166667, 4.166667, 7.5, 9.5, 12.83333, 14.83333]),
        (ResizeMode::Linear, CoordTransform::PytorchHalfPixel, "size1", &[1.166667, 2.5, 3.833333]),
        (ResizeMode::Nearest(NearestMode::RoundPreferFloor), CoordTransform::AlignCorners, "up", &[1.0, 1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 3.0, 4.0, 4.0]),
        (ResizeMode::Nearest(NearestMode::RoundPreferFloor), CoordTransform::AlignCorners, "down", &[1.0, 2.0, 4.0, 5.0, 6.0, 8.0, 13.0, 14.0, 16.0]),
        (ResizeMode::Nearest(NearestMode::RoundPreferCeil), CoordTransform::AlignCorners, "up", &[1.0, 1.0, 2.0, 2.0, 2.0, 3.0, 3.0, 4.0, 4.0, 4.0, 3.0, 3.0, 4.0, 4.0, 4.0]),
        (ResizeMode::Nearest(NearestMode::RoundPreferCeil), CoordTransform::AlignCorners, "down", &[1.0, 3.0, 4.0, 9.0, 11.0, 12.0, 13.0, 15.0, 16.0]),
        (ResizeMode::Nearest(NearestMode::Floor), CoordTransform::AlignCorners, "up", &[1.0, 1.0, 1.0, 1.0, 2.0, 1.0, 1.0, 1.0, 1.0, 2.0, 3.0, 3.0, 3.0, 3.0, 4.0]),
        (ResizeMode::Nearest(NearestMode::Floor), CoordTransform::AlignCorners, "down", &[1.0, 2.0, 4.0, 5.0, 6.0, 8.0, 13.0, 14.0, 16.0]),
        (ResizeMode::Nearest(NearestMode::Ceil), CoordTransform::AlignCorners, "up", &[1.0, 2.0, 2.0, 2.0, 2.0, 3.0, 4.0, 4.0, 4.0, 4.0, 3.0, 4.0, 4.0, 4.0, 4.0]),
        (ResizeMode::Nearest(NearestMode::Ceil), CoordTransform::AlignCorners, "down", &[1.0, 3.0, 4.0, 9.0, 11.0, 12.0, 13.0, 15.0, 16.0]),
        (ResizeMode::Linear, CoordTransform::AlignCorners, "up", &[1.0, 1.25, 1.5, 1.75, 2.0, 2.0, 2.25, 2.5, 2.75, 3.0, 3.0, 3.25, 3.5, 3.75, 4.0]),
        (ResizeMode::Linear, CoordTransform::AlignCorners, "down", &[1.0, 4.0, 7.0, 10.0, 13.0, 16.0]),
        (ResizeMode::Linear, CoordTransform::AlignCorners, "size1", &[1.0, 2.5, 4.0]),
        (ResizeMode::Nearest(NearestMode::RoundPreferFloor), CoordTransform::Asymmetric, "up", &[1.0, 1.0, 2.0, 2.0, 2.0, 3.0, 3.0, 4.0, 4.0, 4.0, 3.0, 3.0, 4.0, 4.0, 4.0]),
        (ResizeMode::Nearest(NearestMode::RoundPreferFloor), CoordTransform::Asymmetric, "down", &[1.0, 2.0, 4.0, 5.0, 6.0, 8.0, 13.0, 14.0, 16.0]),
        (ResizeMode::Nearest(NearestMode::RoundPreferCeil), CoordTransform::Asymmetric, "up", &[1.0, 1.0, 2.0, 2.0, 2.0, 3.0, 3.0, 4.0, 4.0, 4.0, 3.0, 3.0, 4.0, 4.0, 4.0]),
        (ResizeMode::Nearest(NearestMode::RoundPreferCeil), CoordTransform::Asymmetric, "down", &[1.0, 2.0, 4.0, 5.0, 6.0, 8.0, 13.0, 14.0, 16.0]),
        (ResizeMode::Nearest(NearestMode::Floor), CoordTransform::Asymmetric, "up", &[1.0, 1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 3.0, 4.0, 4.0]),
        (ResizeMode::Nearest(NearestMode::Floor), CoordTransform::Asymmetric, "down", &[1.0, 2.0, 3.0, 5.0, 6.0, 7.0, 9.0, 10.0, 11.0]),
        (ResizeMode::Nearest(NearestMode::Ceil), CoordTransform::Asymmetric, "up", &[1.0, 2.0, 2.0, 2.0, 2.0, 3.0, 4.0, 4.0, 4.0, 4.0, 3.0, 4.0, 4.0, 4.0, 4.0]),
        (ResizeMode::Nearest(NearestMode::Ceil), CoordTransform::Asymmetric, "down", &[1.0, 3.0, 4.0, 9.0, 11.0, 12.0, 13.0, 15.0, 16.0]),
        (ResizeMode::Linear, CoordTransform::Asymmetric, "up", &[1.0, 1.4, 1.8, 2.0, 2.0, 2.333333, 2.733334, 3.133333, 3.333333, 3.333333, 3.0, 3.4, 3.8, 4.0, 4.0]),
        (ResizeMode::Linear, CoordTransform::Asymmetric, "down", &[1.0, 3.0, 6.333333, 8.333334, 11.66667, 13.66667]),
        (ResizeMode::Linear, CoordTransform::Asymmetric, "size1", &[1.0, 2.333333, 3.666667]),
    ];

    #[test]
    fn onnx_runtime_cases() {
        let up: Vec<f32> = vec![1.0, 2.0, 3.0, 4.0];
        let down: Vec<f32> = (1..=16).map(|v| v as f32).collect();
        for &(mode, coord, kind, want) in ORT_CASES {
            let (x, hw, size) = match (kind, mode) {
                ("up", _) => (&up, [2, 2], [3, 5]),
                ("down", ResizeMode::Linear) => (&down, [4, 4], [3, 2]),
                ("down", _) => (&down, [4, 4], [3, 3]),
                _ => (&down, [4, 4], [1, 3]),
            };
            let scales = if kind == "up" {
                [1.5, 2.5]
            } else {
                [size[0] as f32 / hw[0] as f32, size[1] as f32 / hw[1] as f32]
            };
            let r = Resize {
                mode,
                coord,
                size,
                scales,
            };
            let mut out = vec![0.0; size[0] * size[1]];
            resize(&r, x, &[1, hw[0], hw[1], 1], &mut out).unwrap();
            assert_close(&out, want, 1e-6)
                .unwrap_or_else(|e| panic!("{mode:?} {coord:?} {kind}: {e}"));
        }
    }

    /// Independent reference: per output element, straight from the definitions.
    fn naive(r: &Resize, x: &[f32], xs: [usize; 4]) -> Vec<f32> {
        let [n, h, w, c] = xs;
        let [oh, ow] = r.size;
        let mut out = Vec::new();
        let clampi = |v: f32, len: usize| (v.max(0.0) as usize).min(len - 1);
        for b in 0..n {
            for oy in 0..oh {
                for ox in 0..ow {
                    let sy = r.source_coord(oy, h, oh, r.scales[0]);
                    let sx = r.source_coord(ox, w, ow, r.scales[1]);
                    for ch in 0..c {
                        let at = |y: usize, xx: usize| x[((b * h + y) * w + xx) * c + ch];
                        let v = match r.mode {
                            ResizeMode::Nearest(m) => {
                                let pick = |s: f32| match m {
                                    NearestMode::Floor => s.floor(),
                                    NearestMode::Ceil => s.ceil(),
                                    NearestMode::RoundPreferCeil => {
                                        (s + 0.5).floor().max(s.round())
                                    }
                                    NearestMode::RoundPreferFloor => {
                                        if s.fract().abs() == 0.5 {
                                            s.floor()
                                        } else {
                                            s.round()
                                        }
                                    }
                                };
                                at(clampi(pick(sy), h), clampi(pick(sx), w))
                            }
                            ResizeMode::Linear => {
                                let cy = sy.clamp(0.0, (h - 1) as f32);
                                let cx = sx.clamp(0.0, (w - 1) as f32);
                                let (y0, x0) = (cy.floor() as usize, cx.floor() as usize);
                                let (y1, x1) = ((y0 + 1).min(h - 1), (x0 + 1).min(w - 1));
                                let (fy, fx) = (cy - y0 as f32, cx - x0 as f32);
                                let top = at(y0, x0) * (1.0 - fx) + at(y0, x1) * fx;
                                let bot = at(y1, x0) * (1.0 - fx) + at(y1, x1) * fx;
                                top * (1.0 - fy) + bot * fy
                            }
                            ResizeMode::Cubic {
                                coeff_a,
                                exclude_outside,
                            } => {
                                // Keys' cubic convolution, four taps per axis, edge-clamped taps.
                                let taps = |s: f32, len: usize| {
                                    let f = s.floor();
                                    let mut t = [(0usize, 0f32); 4];
                                    let mut sum = 0.0;
                                    for (k, tap) in t.iter_mut().enumerate() {
                                        let i = f as i64 - 1 + k as i64;
                                        let d = (s - i as f32).abs();
                                        let a = coeff_a;
                                        let mut wt = if d <= 1.0 {
                                            ((a + 2.0) * d - (a + 3.0)) * d * d + 1.0
                                        } else if d < 2.0 {
                                            ((a * d - 5.0 * a) * d + 8.0 * a) * d - 4.0 * a
                                        } else {
                                            0.0
                                        };
                                        if exclude_outside && (i < 0 || i >= len as i64) {
                                            wt = 0.0;
                                        }
                                        sum += wt;
                                        *tap = (i.clamp(0, len as i64 - 1) as usize, wt);
                                    }
                                    if exclude_outside && sum != 0.0 {
                                        t.iter_mut().for_each(|tap| tap.1 /= sum);
                                    }
                                    t
                                };
                                let (ty, tx) = (taps(sy, h), taps(sx, w));
                                ty.iter()
                                    .map(|&(y, wy)| {
                                        wy * tx.iter().map(|&(xx, wx)| wx * at(y, xx)).sum::<f32>()
                                    })
                                    .sum()
                            }
                        };
                        out.push(v);
                    }
                }
            }
        }
        out
    }

    proptest! {
        #[test]
        fn matches_naive(
            kind in 0usize..3, m in 0usize..4, ct in 0usize..4, exclude_outside in any::<bool>(),
            h in 1usize..7, w in 1usize..7, oh in 1usize..12, ow in 1usize..12, c in 1usize..5,
        ) {
            let mode = match kind {
                0 => ResizeMode::Linear,
                1 => ResizeMode::Cubic { coeff_a: -0.75, exclude_outside },
                _ => ResizeMode::Nearest([NearestMode::RoundPreferFloor, NearestMode::RoundPreferCeil, NearestMode::Floor, NearestMode::Ceil][m]),
            };
            let coord = [CoordTransform::HalfPixel, CoordTransform::PytorchHalfPixel, CoordTransform::AlignCorners, CoordTransform::Asymmetric][ct];
            let r = Resize { mode, coord, size: [oh, ow], scales: [oh as f32 / h as f32, ow as f32 / w as f32] };
            let xs = [2, h, w, c];
            let x = data(xs.iter().product(), 5);
            let want = naive(&r, &x, xs);
            let mut out = vec![f32::NAN; want.len()];
            with_threads(2, || resize(&r, &x, &xs, &mut out)).unwrap();
            assert_close(&out, &want, 1e-5).map_err(TestCaseError::fail)?;
        }
    }
}
