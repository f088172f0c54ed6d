//! Operators: a closed enum with typed attributes, grouped by family.
//!
//! Each family file defines the attribute structs and their shape inference. Adding an operator
//! means one variant here, one struct in its family file, and one arm in each backend.

mod array;
mod conv;
mod elementwise;
pub mod fixed;
mod linear;
mod pool;
mod reduce;
mod resize;

pub use array::{
    Concat, DepthToSpace, DepthToSpaceMode, Expand, Gather, Pad, PadMode, Reshape, Slice,
    SliceAxis, SpaceToDepth, Split, Tile, Transpose,
};
pub use conv::{window_out_len, Conv2d, DepthwiseConv2d, Padding2d, TransposeConv2d};
pub use elementwise::{broadcast_shapes, BinaryOp, UnaryOp};
pub use fixed::{
    Dequantize, ImageInput, InputNormalize, OutRange, QAvgPool2d, QBinary, QBinaryKind, QConv2d,
    QDepthwiseConv2d, QFullyConnected, QLayer, QLut, QMatMul, QReduce, QRescale, QResize, QSoftmax,
    QTransposeConv2d, Quantize, Requant,
};
pub use linear::{FullyConnected, MatMul};
pub use pool::{MaxPool2dWithIndices, Pool2d, PoolKind, StorageOrder};
pub use reduce::{ArgReduce, ArgReduceKind, Reduce, ReduceOp, Softmax};
pub use resize::{CoordTransform, NearestMode, Resize, ResizeMode};

use crate::{error::invalid, DType, Result};

/// Activation fused into the output of a convolution or fully-connected layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum FusedActivation {
    /// Identity.
    #[default]
    None,
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)`.
    Relu6,
    /// `min(max(x, -1), 1)`.
    ReluN1To1,
}

impl FusedActivation {
    /// Applies the activation to one value.
    #[inline]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            FusedActivation::None => x,
            FusedActivation::Relu => x.max(0.0),
            FusedActivation::Relu6 => x.clamp(0.0, 6.0),
            FusedActivation::ReluN1To1 => x.clamp(-1.0, 1.0),
        }
    }

    /// The activation's clamp range, `(lo, hi)`.
    pub fn range(self) -> (f32, f32) {
        match self {
            FusedActivation::None => (f32::NEG_INFINITY, f32::INFINITY),
            FusedActivation::Relu => (0.0, f32::INFINITY),
            FusedActivation::Relu6 => (0.0, 6.0),
            FusedActivation::ReluN1To1 => (-1.0, 1.0),
        }
    }

    /// The fused form of a `Clip(lo, hi)`, if there is one.
    pub fn from_clip(lo: f32, hi: f32) -> Option<FusedActivation> {
        match (lo, hi) {
            (lo, hi) if lo == 0.0 && hi == f32::INFINITY => Some(FusedActivation::Relu),
            (lo, hi) if lo == 0.0 && hi == 6.0 => Some(FusedActivation::Relu6),
            (lo, hi) if lo == -1.0 && hi == 1.0 => Some(FusedActivation::ReluN1To1),
            _ => None,
        }
    }
}

/// An operator with its attributes.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// 2-D convolution (inputs: x, weight OHWI, optional bias).
    Conv2d(Conv2d),
    /// Depthwise 2-D convolution (inputs: x, weight 1HWC, optional bias).
    DepthwiseConv2d(DepthwiseConv2d),
    /// Transposed 2-D convolution (inputs: x, weight OHWI, optional bias).
    TransposeConv2d(TransposeConv2d),
    /// `y = x · Wᵀ + b` over the last axis (inputs: x, weight `[N, K]`, optional bias `[N]`).
    FullyConnected(FullyConnected),
    /// Batched matrix product with numpy broadcasting (inputs: a, b).
    MatMul(MatMul),
    /// Element-wise binary operation with numpy broadcasting.
    Binary(BinaryOp),
    /// Element-wise unary operation.
    Unary(UnaryOp),
    /// `cond ? a : b` with broadcasting (inputs: cond, a, b).
    Where,
    /// Element type conversion.
    Cast(DType),
    /// Softmax along one axis.
    Softmax(Softmax),
    /// Log-softmax along one axis.
    LogSoftmax(Softmax),
    /// Max or average pooling over H and W.
    Pool2d(Pool2d),
    /// Max pooling that also outputs the NCHW index of every maximum (INT64).
    MaxPool2dWithIndices(MaxPool2dWithIndices),
    /// Reduction over a set of axes.
    Reduce(Reduce),
    /// Index of the maximum or minimum along one axis (output I64).
    ArgReduce(ArgReduce),
    /// Concatenation along one axis.
    Concat(Concat),
    /// Split into pieces along one axis.
    Split(Split),
    /// Change of shape, same elements in the same order.
    Reshape(Reshape),
    /// Axis permutation.
    Transpose(Transpose),
    /// Strided slice.
    Slice(Slice),
    /// Padding.
    Pad(Pad),
    /// Gather along an axis (inputs: data, indices).
    Gather(Gather),
    /// Spatial resize of an NHWC tensor.
    Resize(Resize),
    /// Depth-to-space rearrangement (NHWC).
    DepthToSpace(DepthToSpace),
    /// Space-to-depth rearrangement (NHWC).
    SpaceToDepth(SpaceToDepth),
    /// Broadcast to a larger shape.
    Expand(Expand),
    /// Repeat along each axis.
    Tile(Tile),
    /// Copy (removed by the identity pass).
    Identity,

    // Fixed-point operators (`docs/fixed-point.md`); data movement and max pooling are shared
    // with float graphs.
    /// Quantized 2-D convolution.
    QConv2d(QConv2d),
    /// Quantized depthwise convolution.
    QDepthwiseConv2d(QDepthwiseConv2d),
    /// Quantized transposed convolution.
    QTransposeConv2d(QTransposeConv2d),
    /// Quantized fully-connected layer.
    QFullyConnected(QFullyConnected),
    /// Quantized matrix product of two INT16 activations.
    QMatMul(QMatMul),
    /// Quantized element-wise binary operation.
    QBinary(QBinary),
    /// Rescale (also Relu, Clip, LeakyRelu, PRelu).
    QRescale(QRescale),
    /// Table lookup (sigmoid, tanh, exp, ... on INT16).
    QLut(QLut),
    /// Quantized softmax.
    QSoftmax(QSoftmax),
    /// Quantized average pooling.
    QAvgPool2d(QAvgPool2d),
    /// Quantized Mean or Sum reduction.
    QReduce(QReduce),
    /// Quantized bilinear resize.
    QResize(QResize),
    /// Float to integer.
    Quantize(Quantize),
    /// Integer to float (the seeds' Fix2Float).
    Dequantize(Dequantize),
    /// The board's UINT8 image to the model's INT16 input (mean/std and colour folded in).
    InputNormalize(InputNormalize),
}

impl Op {
    /// Short operator name used in messages and reports.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Conv2d(_) => "Conv2d",
            Op::DepthwiseConv2d(_) => "DepthwiseConv2d",
            Op::TransposeConv2d(_) => "TransposeConv2d",
            Op::FullyConnected(_) => "FullyConnected",
            Op::MatMul(_) => "MatMul",
            Op::Binary(b) => b.name(),
            Op::Unary(u) => u.name(),
            Op::Where => "Where",
            Op::Cast(_) => "Cast",
            Op::Softmax(_) => "Softmax",
            Op::LogSoftmax(_) => "LogSoftmax",
            Op::Pool2d(p) => match p.kind {
                PoolKind::Max => "MaxPool2d",
                PoolKind::Average { .. } => "AvgPool2d",
            },
            Op::MaxPool2dWithIndices(_) => "MaxPool2dWithIndices",
            Op::Reduce(r) => r.op.name(),
            Op::ArgReduce(a) => match a.kind {
                ArgReduceKind::Max => "ArgMax",
                ArgReduceKind::Min => "ArgMin",
            },
            Op::Concat(_) => "Concat",
            Op::Split(_) => "Split",
            Op::Reshape(_) => "Reshape",
            Op::Transpose(_) => "Transpose",
            Op::Slice(_) => "Slice",
            Op::Pad(_) => "Pad",
            Op::Gather(_) => "Gather",
            Op::Resize(_) => "Resize",
            Op::DepthToSpace(_) => "DepthToSpace",
            Op::SpaceToDepth(_) => "SpaceToDepth",
            Op::Expand(_) => "Expand",
            Op::Tile(_) => "Tile",
            Op::Identity => "Identity",
            Op::QConv2d(_) => "QConv2d",
            Op::QDepthwiseConv2d(_) => "QDepthwiseConv2d",
            Op::QTransposeConv2d(_) => "QTransposeConv2d",
            Op::QFullyConnected(_) => "QFullyConnected",
            Op::QMatMul(_) => "QMatMul",
            Op::QBinary(_) => "QBinary",
            Op::QRescale(_) => "QRescale",
            Op::QLut(_) => "QLut",
            Op::QSoftmax(_) => "QSoftmax",
            Op::QAvgPool2d(_) => "QAvgPool2d",
            Op::QReduce(_) => "QReduce",
            Op::QResize(_) => "QResize",
            Op::Quantize(_) => "Quantize",
            Op::Dequantize(_) => "Dequantize",
            Op::InputNormalize(_) => "InputNormalize",
        }
    }

    /// Number of inputs accepted: `(min, max)`.
    pub fn arity(&self) -> (usize, usize) {
        match self {
            Op::Conv2d(_)
            | Op::DepthwiseConv2d(_)
            | Op::TransposeConv2d(_)
            | Op::FullyConnected(_)
            | Op::QConv2d(_)
            | Op::QDepthwiseConv2d(_)
            | Op::QTransposeConv2d(_)
            | Op::QFullyConnected(_) => (2, 3),
            Op::MatMul(_) | Op::Binary(_) | Op::Gather(_) | Op::QMatMul(_) | Op::QBinary(_) => {
                (2, 2)
            }
            Op::Where => (3, 3),
            Op::Concat(_) => (1, usize::MAX),
            _ => (1, 1),
        }
    }

    /// Output dtypes and shapes for inputs of the given dtypes and shapes.
    ///
    /// Errors name the operator; callers add the node name (see [`crate::Graph::add_node`]).
    pub fn infer(&self, inputs: &[(DType, &[usize])]) -> Result<Vec<(DType, Vec<usize>)>> {
        let (lo, hi) = self.arity();
        if inputs.len() < lo || inputs.len() > hi {
            return Err(invalid(
                self.name(),
                format!("got {} inputs, expected {lo}..={hi}", inputs.len()),
            ));
        }
        match self {
            Op::Conv2d(c) => c.infer(inputs),
            Op::DepthwiseConv2d(c) => c.infer(inputs),
            Op::TransposeConv2d(c) => c.infer(inputs),
            Op::FullyConnected(f) => f.infer(inputs),
            Op::MatMul(m) => m.infer(inputs),
            Op::Binary(b) => b.infer(inputs),
            Op::Unary(u) => u.infer(inputs),
            Op::Where => elementwise::infer_where(inputs),
            Op::Cast(to) => Ok(vec![(*to, inputs[0].1.to_vec())]),
            Op::Softmax(s) | Op::LogSoftmax(s) => s.infer(inputs),
            Op::Pool2d(p) => p.infer(inputs),
            Op::MaxPool2dWithIndices(p) => p.infer(inputs),
            Op::Reduce(r) => r.infer(inputs),
            Op::ArgReduce(a) => a.infer(inputs),
            Op::Concat(c) => c.infer(inputs),
            Op::Split(s) => s.infer(inputs),
            Op::Reshape(r) => r.infer(inputs),
            Op::Transpose(t) => t.infer(inputs),
            Op::Slice(s) => s.infer(inputs),
            Op::Pad(p) => p.infer(inputs),
            Op::Gather(g) => g.infer(inputs),
            Op::Resize(r) => r.infer(inputs),
            Op::DepthToSpace(d) => d.infer(inputs),
            Op::SpaceToDepth(s) => s.infer(inputs),
            Op::Expand(e) => e.infer(inputs),
            Op::Tile(t) => t.infer(inputs),
            Op::Identity => Ok(vec![(inputs[0].0, inputs[0].1.to_vec())]),
            Op::QConv2d(q) => q.infer(inputs),
            Op::QDepthwiseConv2d(q) => q.infer(inputs),
            Op::QTransposeConv2d(q) => q.infer(inputs),
            Op::QFullyConnected(q) => q.infer(inputs),
            Op::QMatMul(q) => q.infer(inputs),
            Op::QBinary(q) => q.infer(inputs),
            Op::QRescale(q) => q.infer(inputs),
            Op::QLut(q) => q.infer(inputs),
            Op::QSoftmax(q) => q.infer(inputs),
            Op::QAvgPool2d(q) => q.infer(inputs),
            Op::QReduce(q) => q.infer(inputs),
            Op::QResize(q) => q.infer(inputs),
            Op::Quantize(q) => q.infer(inputs),
            Op::Dequantize(q) => q.infer(inputs),
            Op::InputNormalize(q) => q.infer(inputs),
        }
    }

    /// True for the fixed-point operators (`docs/fixed-point.md`).
    pub fn is_fixed_point(&self) -> bool {
        matches!(
            self,
            Op::QConv2d(_)
                | Op::QDepthwiseConv2d(_)
                | Op::QTransposeConv2d(_)
                | Op::QFullyConnected(_)
                | Op::QMatMul(_)
                | Op::QBinary(_)
                | Op::QRescale(_)
                | Op::QLut(_)
                | Op::QSoftmax(_)
                | Op::QAvgPool2d(_)
                | Op::QReduce(_)
                | Op::QResize(_)
                | Op::Quantize(_)
                | Op::Dequantize(_)
                | Op::InputNormalize(_)
        )
    }
}

pub(crate) fn check_rank(op: &str, what: &str, shape: &[usize], rank: usize) -> Result<()> {
    if shape.len() != rank {
        return Err(invalid(
            op,
            format!("{what} must be {rank}-D, got shape {shape:?}"),
        ));
    }
    Ok(())
}

pub(crate) fn check_axis(op: &str, axis: usize, rank: usize) -> Result<()> {
    if axis >= rank {
        return Err(invalid(
            op,
            format!("axis {axis} out of range for rank {rank}"),
        ));
    }
    Ok(())
}
