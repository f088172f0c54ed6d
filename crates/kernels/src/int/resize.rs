//! Resize on integers (`docs/fixed-point.md` §7), NHWC: nearest (a copy of the element the
//! float operator picks) and `QResize` bilinear with 11-bit weights.
//!
//! Bilinear, per axis: the source coordinate `c = Resize::source_coord(o, …)` (f32) is
//! clamped to `[0, len − 1]`; `i0 = floor(c)`, `i1 = min(i0 + 1, len − 1)`, and the fraction
//! `c − i0` (exact in f32) becomes `λ = round(frac · 2048)` (f32 rounding, half away from
//! zero). `i0` gets weight `2048 − λ` and `i1` weight `λ`. Then
//! `acc = Σ w_y · w_x · (x − z_in)` over the four neighbours (INT64) and
//! `y = sat_out(z_out + requant(acc, (m, n)))`.

use super::arith::{check_out, check_requant, requant, sat_out, QInt};
use crate::error::{check_len, invalid, Result};
use crate::float::resize::nearest;
use crate::par;
use crate::window::nhwc;
use ipukit_ir::ops::fixed::QResize;
use ipukit_ir::ops::{Resize, ResizeMode};

/// Nearest-neighbour resize of any element type (`attrs.mode` must be nearest): every output
/// element is the input element the float operator picks, unchanged.
pub fn resize_nearest<T: Copy + Send + Sync>(
    attrs: &Resize,
    x: &[T],
    x_shape: &[usize],
    out: &mut [T],
) -> Result<()> {
    const OP: &str = "Resize";
    let ResizeMode::Nearest(mode) = attrs.mode else {
        return Err(invalid(
            OP,
            "integer resize without arithmetic must be nearest",
        ));
    };
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
    let ys: Vec<usize> = (0..oh)
        .map(|o| nearest(attrs.source_coord(o, h, oh, sh), mode, h))
        .collect();
    let xs: Vec<usize> = (0..ow)
        .map(|o| nearest(attrs.source_coord(o, w, ow, sw), mode, w))
        .collect();
    let row = ow * c;
    par::for_rows(out, row, par::MIN_PAR_ELEMS, |r0, chunk| {
        for (r, dst) in chunk.chunks_exact_mut(row).enumerate() {
            let (b, oy) = ((r0 + r) / oh, (r0 + r) % oh);
            let src = &x[(b * h + ys[oy]) * w * c..(b * h + ys[oy] + 1) * w * c];
            for (px, &ix) in dst.chunks_exact_mut(c).zip(&xs) {
                px.copy_from_slice(&src[ix * c..(ix + 1) * c]);
            }
        }
    });
    Ok(())
}

/// Bilinear taps along one axis: `(i0, i1, 2048 − λ, λ)` for every output index.
pub(crate) fn linear_taps(
    r: &Resize,
    out_len: usize,
    in_len: usize,
    scale: f32,
) -> Vec<(usize, usize, i64, i64)> {
    (0..out_len)
        .map(|o| {
            let c = r.source_coord(o, in_len, out_len, scale);
            let c = c.max(0.0).min(in_len as f32 - 1.0);
            let i0 = (c as usize).min(in_len - 1);
            let i1 = (i0 + 1).min(in_len - 1);
            let lambda = ((c - i0 as f32) * 2048.0).round() as i64;
            (i0, i1, 2048 - lambda, lambda)
        })
        .collect()
}

/// Quantized bilinear resize (`attrs.resize.mode` must be linear).
pub fn qresize<X: QInt, O: QInt>(
    attrs: &QResize,
    x: &[X],
    x_shape: &[usize],
    out: &mut [O],
) -> Result<()> {
    const OP: &str = "QResize";
    if attrs.resize.mode != ResizeMode::Linear {
        return Err(invalid(
            OP,
            "quantized resize must be linear (nearest copies the input)",
        ));
    }
    check_requant(OP, attrs.requant)?;
    check_out::<O>(OP, Some(attrs.out_dtype), &attrs.out)?;
    let [n, h, w, c] = nhwc(OP, x_shape)?;
    let [oh, ow] = attrs.resize.size;
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
    let [sh, sw] = attrs.resize.scales;
    let ys = linear_taps(&attrs.resize, oh, h, sh);
    let xs = linear_taps(&attrs.resize, ow, w, sw);
    let z = attrs.input_zero_point as i64;
    let row = ow * c;
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
                    let v = |t: X| t.into() as i64 - z;
                    // |acc| ≤ 2^22 · 2^17: INT64.
                    let acc = wy0 * (wx0 * v(a[i]) + wx1 * v(bb[i]))
                        + wy1 * (wx0 * v(cc[i]) + wx1 * v(d[i]));
                    px[i] = O::from_i32(sat_out(requant(acc, attrs.requant), &attrs.out));
                }
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::int::testutil::{requant_def, Rng};
    use ipukit_ir::ops::fixed::{OutRange, Requant};
    use ipukit_ir::ops::CoordTransform;
    use ipukit_ir::ops::NearestMode;
    use ipukit_ir::DType;
    use proptest::prelude::*;

    const COORDS: [CoordTransform; 5] = [
        CoordTransform::HalfPixel,
        CoordTransform::PytorchHalfPixel,
        CoordTransform::AlignCorners,
        CoordTransform::Asymmetric,
        CoordTransform::HalfPixelSymmetric,
    ];
    const NEAREST: [NearestMode; 4] = [
        NearestMode::RoundPreferFloor,
        NearestMode::RoundPreferCeil,
        NearestMode::Floor,
        NearestMode::Ceil,
    ];

    prop_compose! {
        fn case()(n in 1usize..3, h in 1usize..7, w in 1usize..7, c in 1usize..5, oh in 1usize..13, ow in 1usize..13,
                  coord in 0usize..5, nm in 0usize..4, use_scales in any::<bool>(), seed in any::<u64>())
            -> ([usize; 4], Resize, u64) {
            let scales = if use_scales { [oh as f32 / h as f32, ow as f32 / w as f32] } else { [(oh as f32 + 0.5) / h as f32, (ow as f32 - 0.25).max(0.5) / w as f32] };
            ([n, h, w, c], Resize { mode: ResizeMode::Nearest(NEAREST[nm]), coord: COORDS[coord], size: [oh, ow], scales }, seed)
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        /// Nearest picks what the float kernel picks (integers are exact in f32).
        #[test]
        fn nearest_matches_float((xs, r, seed) in case()) {
            let mut rng = Rng::new(seed);
            let x: Vec<i16> = rng.vec(xs.iter().product());
            let xf: Vec<f32> = x.iter().map(|&v| v as f32).collect();
            let len = xs[0] * r.size[0] * r.size[1] * xs[3];
            let mut want = vec![0.0; len];
            crate::float::resize(&r, &xf, &xs, &mut want).unwrap();
            let mut got = vec![0i16; len];
            resize_nearest(&r, &x, &xs, &mut got).unwrap();
            let got: Vec<f32> = got.iter().map(|&v| v as f32).collect();
            prop_assert_eq!(got, want);
        }

        /// Bilinear: §7 transcribed with `source_coord`, in 128 bits.
        #[test]
        fn bilinear_matches_definition((xs, r, seed) in case()) {
            let mut rng = Rng::new(seed);
            let [n, h, w, c] = xs;
            let x: Vec<u8> = rng.vec(xs.iter().product());
            let q = QResize {
                resize: Resize { mode: ResizeMode::Linear, ..r },
                input_zero_point: rng.extreme(0, 255),
                requant: Requant { multiplier: rng.range(1 << 30, i32::MAX), shift: (52 + rng.range(-2, 2)) as u32 },
                out_dtype: DType::I16,
                out: OutRange::full(DType::I16, 0),
            };
            let [oh, ow] = q.resize.size;
            let tap = |o: usize, len_in: usize, len_out: usize, s: f32| {
                let c = q.resize.source_coord(o, len_in, len_out, s).clamp(0.0, len_in as f32 - 1.0);
                let i0 = c.floor() as usize;
                let lam = ((c - c.floor()) * 2048.0).round() as i128;
                [(i0, 2048 - lam), ((i0 + 1).min(len_in - 1), lam)]
            };
            let mut want = vec![];
            for b in 0..n {
                for oy in 0..oh {
                    for ox in 0..ow {
                        for ch in 0..c {
                            let mut acc = 0i128;
                            for (iy, wy) in tap(oy, h, oh, q.resize.scales[0]) {
                                for (ix, wx) in tap(ox, w, ow, q.resize.scales[1]) {
                                    acc += wy * wx * (x[((b * h + iy) * w + ix) * c + ch] as i128 - q.input_zero_point as i128);
                                }
                            }
                            want.push(requant_def(acc, q.requant, &q.out) as i16);
                        }
                    }
                }
            }
            let mut got = vec![0i16; want.len()];
            qresize(&q, &x, &xs, &mut got).unwrap();
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn hand_computed_example() {
        // [[0, 100]] upsampled ×2 along W with half-pixel: coords −0.25, 0.25, 0.75, 1.25 →
        // clamped 0, 0.25, 0.75, 1 → λ = 0, 512, 1536, 0 (at the edge i0 = i1 = 1).
        let q = QResize {
            resize: Resize {
                mode: ResizeMode::Linear,
                coord: CoordTransform::HalfPixel,
                size: [1, 4],
                scales: [1.0, 2.0],
            },
            input_zero_point: 0,
            requant: Requant {
                multiplier: 1 << 30,
                shift: 52,
            },
            out_dtype: DType::I16,
            out: OutRange::full(DType::I16, 0),
        };
        let mut o = [0i16; 4];
        qresize(&q, &[0i16, 100], &[1, 1, 2, 1], &mut o).unwrap();
        assert_eq!(o, [0, 25, 75, 100]);
        let bad = QResize {
            resize: Resize {
                mode: ResizeMode::Nearest(NearestMode::Floor),
                ..q.resize.clone()
            },
            ..q.clone()
        };
        assert!(qresize(&bad, &[0i16, 100], &[1, 1, 2, 1], &mut o).is_err());
        assert!(resize_nearest(&q.resize, &[0i16, 100], &[1, 1, 2, 1], &mut o).is_err());
    }
}
