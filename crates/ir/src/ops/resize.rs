//! Spatial resize of NHWC tensors (ONNX Resize/Upsample semantics).

use super::check_rank;
use crate::{DType, Result};

/// How an output coordinate maps back to an input coordinate (ONNX
/// `coordinate_transformation_mode`). `x_in` is computed from `x_out`, the scale `s` and the
/// input/output lengths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CoordTransform {
    /// `(x_out + 0.5) / s - 0.5`.
    HalfPixel,
    /// Like `HalfPixel`, but `0` when the output length is 1.
    PytorchHalfPixel,
    /// `x_out * (len_in - 1) / (len_out - 1)`.
    AlignCorners,
    /// `x_out / s`.
    Asymmetric,
    /// Half-pixel, with the input centre kept fixed when the output length was rounded:
    /// `c · (1 − len_out / (s · len_in)) + (x_out + 0.5) / s − 0.5` with `c = len_in / 2`.
    HalfPixelSymmetric,
}

/// How a fractional input coordinate picks a pixel in nearest mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NearestMode {
    /// Round, ties go down.
    RoundPreferFloor,
    /// Round, ties go up.
    RoundPreferCeil,
    /// Floor.
    Floor,
    /// Ceil.
    Ceil,
}

/// Interpolation mode.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ResizeMode {
    /// Nearest neighbour.
    Nearest(NearestMode),
    /// Bilinear.
    Linear,
    /// Bicubic (Keys' kernel with parameter `coeff_a`, ONNX's `cubic_coeff_a`).
    Cubic {
        /// The kernel parameter (-0.75 in ONNX, -0.5 in some libraries).
        coeff_a: f32,
        /// Give taps outside the input weight 0 (renormalising the rest) instead of clamping
        /// them to the edge.
        exclude_outside: bool,
    },
}

/// Resize of H and W of an NHWC tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Resize {
    /// Interpolation.
    pub mode: ResizeMode,
    /// Coordinate transformation.
    pub coord: CoordTransform,
    /// Output (H, W).
    pub size: [usize; 2],
    /// Scale factors (H, W) used by the coordinate transform; ONNX uses the given scales, not
    /// `out / in`, when the model specifies scales.
    pub scales: [f32; 2],
}

impl Resize {
    /// Maps an output coordinate to the input coordinate along one axis.
    pub fn source_coord(&self, x_out: usize, len_in: usize, len_out: usize, scale: f32) -> f32 {
        let x = x_out as f32;
        match self.coord {
            CoordTransform::HalfPixel => (x + 0.5) / scale - 0.5,
            CoordTransform::PytorchHalfPixel => {
                if len_out > 1 {
                    (x + 0.5) / scale - 0.5
                } else {
                    0.0
                }
            }
            CoordTransform::AlignCorners => {
                if len_out > 1 {
                    x * (len_in as f32 - 1.0) / (len_out as f32 - 1.0)
                } else {
                    0.0
                }
            }
            CoordTransform::Asymmetric => x / scale,
            CoordTransform::HalfPixelSymmetric => {
                let adjustment = len_out as f32 / (scale * len_in as f32);
                let offset = len_in as f32 / 2.0 * (1.0 - adjustment);
                offset + (x + 0.5) / scale - 0.5
            }
        }
    }

    pub(crate) fn infer(&self, inputs: &[(DType, &[usize])]) -> Result<Vec<(DType, Vec<usize>)>> {
        let (dt, x) = inputs[0];
        check_rank("Resize", "input", x, 4)?;
        Ok(vec![(dt, vec![x[0], self.size[0], self.size[1], x[3]])])
    }
}
