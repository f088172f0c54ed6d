//! Convolutions: Conv2d, DepthwiseConv2d, TransposeConv2d.
//!
//! Inputs are NHWC. Weights: Conv2d `[Cout, KH, KW, Cin/groups]` (OHWI), DepthwiseConv2d
//! `[1, KH, KW, Cout]` with `Cout = Cin * depth_multiplier`, TransposeConv2d
//! `[Cout, KH, KW, Cin/groups]`. The optional third input is a `[Cout]` bias.

use super::{check_rank, FusedActivation};
use crate::{error::invalid, DType, Result};

/// Explicit spatial padding, in elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Padding2d {
    /// Rows added above.
    pub top: usize,
    /// Columns added on the left.
    pub left: usize,
    /// Rows added below.
    pub bottom: usize,
    /// Columns added on the right.
    pub right: usize,
}

impl Padding2d {
    /// No padding.
    pub const ZERO: Padding2d = Padding2d {
        top: 0,
        left: 0,
        bottom: 0,
        right: 0,
    };

    /// True if every side is zero.
    pub fn is_zero(&self) -> bool {
        *self == Self::ZERO
    }
}

/// Output length of a sliding window along one axis; `None` if the window does not fit.
pub fn window_out_len(
    input: usize,
    pad_before: usize,
    pad_after: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
    ceil_mode: bool,
) -> Option<usize> {
    let span = dilation.checked_mul(kernel.checked_sub(1)?)? + 1;
    let padded = input + pad_before + pad_after;
    if padded < span || stride == 0 {
        return None;
    }
    let n = padded - span;
    let mut out = n / stride + 1;
    if ceil_mode && !n.is_multiple_of(stride) {
        // ONNX: the last window must start inside the input or the left padding.
        if (out) * stride < input + pad_before {
            out += 1;
        }
    }
    Some(out)
}

/// Common attributes of the forward convolutions.
#[derive(Debug, Clone, PartialEq)]
pub struct Conv2d {
    /// Stride along H and W.
    pub strides: [usize; 2],
    /// Dilation along H and W.
    pub dilations: [usize; 2],
    /// Explicit padding.
    pub padding: Padding2d,
    /// Number of groups (1 for an ordinary convolution).
    pub groups: usize,
    /// Activation applied to the output.
    pub activation: FusedActivation,
}

/// Depthwise convolution: each input channel convolved with its own `depth_multiplier` filters.
#[derive(Debug, Clone, PartialEq)]
pub struct DepthwiseConv2d {
    /// Stride along H and W.
    pub strides: [usize; 2],
    /// Dilation along H and W.
    pub dilations: [usize; 2],
    /// Explicit padding.
    pub padding: Padding2d,
    /// Output channels per input channel.
    pub depth_multiplier: usize,
    /// Activation applied to the output.
    pub activation: FusedActivation,
}

/// Transposed ("de-") convolution.
#[derive(Debug, Clone, PartialEq)]
pub struct TransposeConv2d {
    /// Stride along H and W.
    pub strides: [usize; 2],
    /// Dilation along H and W.
    pub dilations: [usize; 2],
    /// Padding removed from the full output.
    pub padding: Padding2d,
    /// Extra rows/columns added at the bottom/right of the output.
    pub output_padding: [usize; 2],
    /// Number of groups.
    pub groups: usize,
    /// Activation applied to the output.
    pub activation: FusedActivation,
}

fn check_bias(op: &str, inputs: &[(DType, &[usize])], cout: usize) -> Result<()> {
    if let Some((_, b)) = inputs.get(2) {
        if b.iter().product::<usize>() != cout {
            return Err(invalid(
                op,
                format!("bias has shape {b:?}, expected {cout} elements"),
            ));
        }
    }
    Ok(())
}

fn spatial_out(
    op: &str,
    x: &[usize],
    k: [usize; 2],
    strides: [usize; 2],
    dilations: [usize; 2],
    p: Padding2d,
) -> Result<[usize; 2]> {
    let h = window_out_len(x[1], p.top, p.bottom, k[0], strides[0], dilations[0], false);
    let w = window_out_len(x[2], p.left, p.right, k[1], strides[1], dilations[1], false);
    match (h, w) {
        (Some(h), Some(w)) => Ok([h, w]),
        _ => Err(invalid(
            op,
            format!(
                "kernel {k:?} (dilation {dilations:?}, stride {strides:?}) does not fit input {x:?} with padding {p:?}"
            ),
        )),
    }
}

impl Conv2d {
    pub(crate) fn infer(&self, inputs: &[(DType, &[usize])]) -> Result<Vec<(DType, Vec<usize>)>> {
        const OP: &str = "Conv2d";
        let (dt, x) = inputs[0];
        let (_, w) = inputs[1];
        check_rank(OP, "input", x, 4)?;
        check_rank(OP, "weight", w, 4)?;
        if self.groups == 0 || x[3] % self.groups != 0 || w[0] % self.groups != 0 {
            return Err(invalid(
                OP,
                format!(
                    "{} groups do not divide input channels {} and output channels {}",
                    self.groups, x[3], w[0]
                ),
            ));
        }
        if w[3] * self.groups != x[3] {
            return Err(invalid(
                OP,
                format!(
                    "weight {w:?} expects {} input channels, input {x:?} has {}",
                    w[3] * self.groups,
                    x[3]
                ),
            ));
        }
        check_bias(OP, inputs, w[0])?;
        let [oh, ow] = spatial_out(
            OP,
            x,
            [w[1], w[2]],
            self.strides,
            self.dilations,
            self.padding,
        )?;
        Ok(vec![(dt, vec![x[0], oh, ow, w[0]])])
    }
}

impl DepthwiseConv2d {
    pub(crate) fn infer(&self, inputs: &[(DType, &[usize])]) -> Result<Vec<(DType, Vec<usize>)>> {
        const OP: &str = "DepthwiseConv2d";
        let (dt, x) = inputs[0];
        let (_, w) = inputs[1];
        check_rank(OP, "input", x, 4)?;
        check_rank(OP, "weight", w, 4)?;
        let cout = x[3] * self.depth_multiplier;
        if w[0] != 1 || w[3] != cout {
            return Err(invalid(
                OP,
                format!("weight {w:?} must be [1, KH, KW, {cout}]"),
            ));
        }
        check_bias(OP, inputs, cout)?;
        let [oh, ow] = spatial_out(
            OP,
            x,
            [w[1], w[2]],
            self.strides,
            self.dilations,
            self.padding,
        )?;
        Ok(vec![(dt, vec![x[0], oh, ow, cout])])
    }
}

impl TransposeConv2d {
    /// Output spatial size for an input of `h` × `w` and a `kh` × `kw` kernel.
    pub fn out_hw(&self, h: usize, w: usize, kh: usize, kw: usize) -> Option<[usize; 2]> {
        let full = |i: usize, s: usize, k: usize, d: usize, op: usize| -> usize {
            (i.max(1) - 1) * s + (k.max(1) - 1) * d + 1 + op
        };
        let fh = full(
            h,
            self.strides[0],
            kh,
            self.dilations[0],
            self.output_padding[0],
        );
        let fw = full(
            w,
            self.strides[1],
            kw,
            self.dilations[1],
            self.output_padding[1],
        );
        let p = self.padding;
        Some([
            fh.checked_sub(p.top + p.bottom).filter(|&v| v > 0)?,
            fw.checked_sub(p.left + p.right).filter(|&v| v > 0)?,
        ])
    }

    pub(crate) fn infer(&self, inputs: &[(DType, &[usize])]) -> Result<Vec<(DType, Vec<usize>)>> {
        const OP: &str = "TransposeConv2d";
        let (dt, x) = inputs[0];
        let (_, w) = inputs[1];
        check_rank(OP, "input", x, 4)?;
        check_rank(OP, "weight", w, 4)?;
        if self.groups == 0 || w[3] * self.groups != x[3] || w[0] % self.groups != 0 {
            return Err(invalid(
                OP,
                format!(
                    "weight {w:?} with {} groups does not match input {x:?}",
                    self.groups
                ),
            ));
        }
        check_bias(OP, inputs, w[0])?;
        let [oh, ow] = self.out_hw(x[1], x[2], w[1], w[2]).ok_or_else(|| {
            invalid(
                OP,
                format!("padding {:?} removes the whole output", self.padding),
            )
        })?;
        Ok(vec![(dt, vec![x[0], oh, ow, w[0]])])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_lengths_match_onnx_formulas() {
        // 320 -> 160 with k3 s2 p1.
        assert_eq!(window_out_len(320, 1, 1, 3, 2, 1, false), Some(160));
        // ceil mode: MaxPool k3 s2 on 112 with no pad -> 56 (ceil) vs 55 (floor).
        assert_eq!(window_out_len(112, 0, 0, 3, 2, 1, false), Some(55));
        assert_eq!(window_out_len(112, 0, 0, 3, 2, 1, true), Some(56));
        assert_eq!(window_out_len(2, 0, 0, 3, 1, 1, false), None);
    }

    #[test]
    fn transpose_conv_output_size() {
        let t = TransposeConv2d {
            strides: [2, 2],
            dilations: [1, 1],
            padding: Padding2d::ZERO,
            output_padding: [0, 0],
            groups: 1,
            activation: FusedActivation::None,
        };
        assert_eq!(t.out_hw(20, 30, 2, 2), Some([40, 60]));
    }
}
