//! Builtin operator versions, following TFLite's tensorflow/lite/tools/versioning/op_version.cc
//! for the operators and features ipukit writes. The interpreter registers every builtin from
//! version 1 up to its newest version, so these values are what the TFLite converter would
//! record and what tools like Netron show.

use crate::tflite::BuiltinOperator as B;
use ipukit_ir::DType;

/// What the version of an operator depends on.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sig {
    /// Element type of the first data input.
    pub in0: Option<DType>,
    /// Element type of the second data input (weights for convolutions).
    pub in1: Option<DType>,
    /// Element type of the first output.
    pub out0: Option<DType>,
    /// Largest input rank.
    pub max_rank: usize,
    /// The two data inputs of a binary operator have different shapes.
    pub broadcast: bool,
    /// Operator-specific feature flags (dilation, keep_num_dims, no bias, half-pixel…).
    pub feature: bool,
    /// A second operator-specific flag.
    pub feature2: bool,
}

/// The version to record for a builtin operator (arms mirror op_version.cc, one per case).
#[allow(clippy::collapsible_match)]
pub(crate) fn builtin_version(op: B, s: &Sig) -> i32 {
    use DType::*;
    let i0 = s.in0;
    let is = |d: DType| i0 == Some(d);
    let int8_or_16 = |v8: i32, v16: i32, base: i32| {
        if is(I16) {
            v16
        } else if is(I8) {
            v8
        } else {
            base
        }
    };
    match op {
        B::Conv2d => {
            // feature: grouped convolution.
            if s.feature {
                6
            } else if is(I16) && s.in1 == Some(I16) {
                4
            } else if is(I8) && s.in1 == Some(I8) {
                3
            } else if is(F32) && s.in1 == Some(I8) {
                2
            } else {
                1
            }
        }
        B::DepthwiseConv2d => {
            // feature: dilation != 1.
            if is(I16) && s.in1 == Some(I16) {
                5
            } else if is(F32) && s.in1 == Some(I8) {
                4
            } else if is(I8) && s.in1 == Some(I8) {
                3
            } else if s.feature {
                2
            } else {
                1
            }
        }
        B::FullyConnected => {
            // feature: no bias; feature2: keep_num_dims.
            if is(I16) && s.in1 == Some(I16) {
                7
            } else if s.feature {
                6
            } else if s.feature2 {
                5
            } else if is(I8) && s.in1 == Some(I8) {
                4
            } else if is(F32) && s.in1 == Some(I8) {
                3
            } else {
                1
            }
        }
        B::TransposeConv => {
            // feature: fused activation; feature2: bias.
            if s.feature {
                4
            } else if s.feature2 {
                3
            } else if s.in1 == Some(I8) {
                2
            } else {
                1
            }
        }
        B::Gather => {
            if s.in1 == Some(I16) {
                6
            } else if is(I16) {
                4
            } else if is(Bool) {
                3
            } else if is(I8) {
                2
            } else {
                1
            }
        }
        B::Mul => {
            if is(I16) {
                4
            } else if is(I64) {
                5
            } else if is(I8) {
                2
            } else {
                1
            }
        }
        B::Add => {
            if is(I64) {
                4
            } else if is(I16) {
                3
            } else if is(I8) {
                2
            } else {
                1
            }
        }
        B::Sub => {
            if is(I16) {
                5
            } else if is(I64) {
                4
            } else if s.broadcast && s.max_rank > 4 {
                3
            } else if is(I8) {
                2
            } else {
                1
            }
        }
        B::Div => {
            if s.broadcast && s.max_rank > 4 {
                2
            } else {
                1
            }
        }
        B::MaxPool2d | B::AveragePool2d | B::Tanh | B::Logistic => int8_or_16(2, 3, 1),
        B::Transpose => {
            if s.max_rank > 5 {
                6
            } else if is(I16) {
                5
            } else if s.max_rank > 4 {
                4
            } else if is(Bool) {
                3
            } else if is(I8) {
                2
            } else {
                1
            }
        }
        B::Split => int8_or_16(2, 4, if is(I32) { 3 } else { 1 }),
        B::StridedSlice => {
            if s.max_rank > 4 {
                4
            } else if is(Bool) {
                3
            } else if is(I8) {
                2
            } else {
                1
            }
        }
        B::Abs => {
            if is(I32) {
                5
            } else if is(I16) {
                4
            } else if is(I8) || is(U8) {
                2
            } else {
                1
            }
        }
        B::Relu => {
            if is(I16) {
                3
            } else if is(I8) || is(U8) {
                2
            } else {
                1
            }
        }
        B::ResizeBilinear => {
            // feature: half_pixel_centers.
            if is(I16) {
                4
            } else if s.feature {
                3
            } else if is(I8) {
                2
            } else {
                1
            }
        }
        B::ResizeNearestNeighbor => {
            // feature: half_pixel_centers or align_corners.
            if is(I16) {
                4
            } else if s.feature {
                3
            } else if is(I8) {
                2
            } else {
                1
            }
        }
        B::Maximum | B::Minimum => {
            if is(I16) {
                4
            } else if s.broadcast && s.max_rank > 4 {
                3
            } else if is(I8) {
                2
            } else {
                1
            }
        }
        B::Tile => {
            if is(I8) {
                3
            } else {
                1
            }
        }
        B::Equal => int8_or_16(2, 4, 1),
        B::LeakyRelu => {
            if is(I16) {
                2
            } else {
                1
            }
        }
        B::BatchMatmul => int8_or_16(2, 3, 1),
        B::Pad | B::Padv2 => {
            if s.max_rank > 4 {
                4
            } else {
                int8_or_16(2, 3, 1)
            }
        }
        B::Concatenation => int8_or_16(2, 3, 1),
        B::Softmax | B::Mean | B::MirrorPad | B::ReduceMax | B::ReduceMin | B::Relu6 | B::Rsqrt => {
            int8_or_16(2, 3, 1)
        }
        B::ArgMax | B::ArgMin => {
            if is(Bool) {
                3
            } else if is(I8) {
                2
            } else {
                1
            }
        }
        B::Less => int8_or_16(2, 3, 1),
        B::SpaceToDepth | B::SplitV | B::Sum | B::LogSoftmax | B::Greater | B::DepthToSpace => {
            if is(I8) {
                2
            } else {
                1
            }
        }
        B::Exp | B::Log | B::ReduceProd => {
            if is(I8) || is(I16) {
                2
            } else {
                1
            }
        }
        B::BroadcastTo => {
            if is(I8) || is(I16) {
                3
            } else {
                2
            }
        }
        B::Cast => {
            let either = |d: DType| s.in0 == Some(d) || s.out0 == Some(d);
            if either(U16) {
                4
            } else if either(I8) {
                3
            } else {
                1
            }
        }
        _ => 1,
    }
}
