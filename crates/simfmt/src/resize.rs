//! When TFLite's RESIZE_BILINEAR / RESIZE_NEAREST_NEIGHBOR reproduce an IR [`Resize`].
//!
//! TFLite's reference kernels (tensorflow/lite/kernels/internal/reference/resize_*.h) compute,
//! for output index `x`, with `scale = (align_corners && out > 1) ? (in-1)/(out-1) : in/out`:
//!
//! * nearest: `v = (x + (half_pixel_centers ? 0.5 : 0)) * scale`, index
//!   `min(align_corners ? round_half_away(v) : floor(v), in-1)`, then `max(·, 0)` with
//!   half-pixel centers;
//! * bilinear: `v = half_pixel_centers ? (x + 0.5) * scale - 0.5 : x * scale`, interpolating
//!   between `max(floor(v), 0)` and `min(ceil(v), in-1)`, i.e. at `v` clamped to `[0, in-1]`.
//!
//! A builtin is used only if, for every output index of both axes, the nearest index is the
//! same as the IR's, or the bilinear source coordinate agrees to float precision. Otherwise the
//! resize is written as the custom `IPU_Resize`.

use ipukit_ir::ops::{CoordTransform, NearestMode, Resize, ResizeMode};

/// TFLite resize flags `(align_corners, half_pixel_centers)` that reproduce `r` on an input of
/// `in_hw`, if any.
pub(crate) fn builtin_flags(r: &Resize, in_hw: [usize; 2]) -> Option<(bool, bool)> {
    let flags = match r.coord {
        CoordTransform::Asymmetric => (false, false),
        CoordTransform::HalfPixel
        | CoordTransform::PytorchHalfPixel
        | CoordTransform::HalfPixelSymmetric => (false, true),
        CoordTransform::AlignCorners => (true, false),
    };
    for ((&inn, &out), &scale) in in_hw.iter().zip(&r.size).zip(&r.scales) {
        if inn == 0 || out == 0 || inn > 1 << 24 || out > 1 << 24 {
            return None;
        }
        for x in 0..out {
            let ir = r.source_coord(x, inn, out, scale);
            let ok = match r.mode {
                ResizeMode::Nearest(mode) => {
                    ir_nearest(ir, mode, inn) == Some(tfl_nearest(x, inn, out, flags))
                }
                ResizeMode::Cubic { .. } => false,
                ResizeMode::Linear => {
                    let t = tfl_linear_coord(x, inn, out, flags);
                    let clamp = |v: f32| v.max(0.0).min((inn - 1) as f32);
                    ir.is_finite() && (clamp(ir) - clamp(t)).abs() <= 1e-5 * (inn as f32).max(1.0)
                }
            };
            if !ok {
                return None;
            }
        }
    }
    Some(flags)
}

/// The IR resize a TFLite resize with these flags means; `None` for the combination TFLite
/// rejects (both flags set).
pub(crate) fn from_tflite(
    nearest: bool,
    align_corners: bool,
    half_pixel_centers: bool,
    in_hw: [usize; 2],
    out_hw: [usize; 2],
) -> Option<Resize> {
    let coord = match (align_corners, half_pixel_centers) {
        (false, false) => CoordTransform::Asymmetric,
        (false, true) => CoordTransform::HalfPixel,
        (true, false) => CoordTransform::AlignCorners,
        (true, true) => return None,
    };
    let mode = if nearest {
        ResizeMode::Nearest(if coord == CoordTransform::Asymmetric {
            NearestMode::Floor
        } else {
            NearestMode::RoundPreferCeil
        })
    } else {
        ResizeMode::Linear
    };
    Some(Resize {
        mode,
        coord,
        size: out_hw,
        scales: default_scales(in_hw, out_hw),
    })
}

/// `out / in` per axis, as TFLite implies.
pub(crate) fn default_scales(in_hw: [usize; 2], out_hw: [usize; 2]) -> [f32; 2] {
    [
        out_hw[0] as f32 / in_hw[0].max(1) as f32,
        out_hw[1] as f32 / in_hw[1].max(1) as f32,
    ]
}

fn tfl_scale(x_in: usize, out: usize, align: bool) -> f32 {
    if align && out > 1 {
        (x_in - 1) as f32 / (out - 1) as f32
    } else {
        x_in as f32 / out as f32
    }
}

fn tfl_nearest(x: usize, inn: usize, out: usize, (align, hp): (bool, bool)) -> usize {
    let scale = tfl_scale(inn, out, align);
    let offset = if hp { 0.5 } else { 0.0 };
    let v = (x as f32 + offset) * scale;
    // TfLiteRound rounds half away from zero; v >= 0 here.
    let idx = if align { v.round() } else { v.floor() } as i64;
    let idx = idx.min(inn as i64 - 1);
    let idx = if hp { idx.max(0) } else { idx };
    idx.max(0) as usize
}

fn tfl_linear_coord(x: usize, inn: usize, out: usize, (align, hp): (bool, bool)) -> f32 {
    let scale = tfl_scale(inn, out, align);
    if hp {
        (x as f32 + 0.5) * scale - 0.5
    } else {
        x as f32 * scale
    }
}

fn ir_nearest(src: f32, mode: NearestMode, inn: usize) -> Option<usize> {
    if !src.is_finite() {
        return None;
    }
    let v = match mode {
        NearestMode::RoundPreferFloor => (src - 0.5).ceil(),
        NearestMode::RoundPreferCeil => (src + 0.5).floor(),
        NearestMode::Floor => src.floor(),
        NearestMode::Ceil => src.ceil(),
    };
    Some(v.max(0.0).min((inn - 1) as f32) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resize(mode: ResizeMode, coord: CoordTransform, inn: usize, out: usize) -> Resize {
        Resize {
            mode,
            coord,
            size: [out, out],
            scales: [out as f32 / inn as f32; 2],
        }
    }

    #[test]
    fn common_resizes_are_builtin() {
        let lin = ResizeMode::Linear;
        for (inn, out) in [(4, 8), (7, 14), (5, 3), (13, 39), (1, 5), (6, 1)] {
            for c in [
                CoordTransform::HalfPixel,
                CoordTransform::AlignCorners,
                CoordTransform::Asymmetric,
            ] {
                assert!(
                    builtin_flags(&resize(lin, c, inn, out), [inn, inn]).is_some(),
                    "{c:?} {inn}->{out}"
                );
            }
        }
        // PyTorch nearest (asymmetric + floor) for integer factors, TF2 half-pixel nearest.
        for (inn, out) in [(4, 8), (5, 15), (10, 20), (8, 4)] {
            let r = resize(
                ResizeMode::Nearest(NearestMode::Floor),
                CoordTransform::Asymmetric,
                inn,
                out,
            );
            assert_eq!(builtin_flags(&r, [inn, inn]), Some((false, false)));
            let r = resize(
                ResizeMode::Nearest(NearestMode::RoundPreferCeil),
                CoordTransform::HalfPixel,
                inn,
                out,
            );
            assert_eq!(builtin_flags(&r, [inn, inn]), Some((false, true)));
        }
    }

    #[test]
    fn odd_resizes_are_not_builtin() {
        // ONNX default nearest (half_pixel + round_prefer_floor) is TFLite's half-pixel
        // nearest when upsampling by 2, but not when downsampling by 2 (ties go down).
        let r = resize(
            ResizeMode::Nearest(NearestMode::RoundPreferFloor),
            CoordTransform::HalfPixel,
            4,
            8,
        );
        assert_eq!(builtin_flags(&r, [4, 4]), Some((false, true)));
        let r = resize(
            ResizeMode::Nearest(NearestMode::RoundPreferFloor),
            CoordTransform::HalfPixel,
            8,
            4,
        );
        assert_eq!(builtin_flags(&r, [8, 8]), None);
        // Scales that are not out/in.
        let mut r = resize(ResizeMode::Linear, CoordTransform::HalfPixel, 5, 7);
        r.scales = [1.5, 1.5];
        assert_eq!(builtin_flags(&r, [5, 5]), None);
        // pytorch_half_pixel to length 1 is not half_pixel.
        let r = resize(ResizeMode::Linear, CoordTransform::PytorchHalfPixel, 6, 1);
        assert_eq!(builtin_flags(&r, [6, 6]), None);
    }
}
