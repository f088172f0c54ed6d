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
pub use linear::{FullyConnected, MatMul};
pub use pool::{Pool2d, PoolKind};
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
        }
    }

    /// Number of inputs accepted: `(min, max)`.
    pub fn arity(&self) -> (usize, usize) {
        match self {
            Op::Conv2d(_)
            | Op::DepthwiseConv2d(_)
            | Op::TransposeConv2d(_)
            | Op::FullyConnected(_) => (2, 3),
            Op::MatMul(_) | Op::Binary(_) | Op::Gather(_) => (2, 2),
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
        }
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
