//! Fixed-point operators (`docs/fixed-point.md`) on the integer kernels of
//! `ipukit_kernels::int`.
//!
//! Layers with constant weights (`QConv2d`, `QDepthwiseConv2d`, `QTransposeConv2d`,
//! `QFullyConnected`) and tables (`QLut`) are packed once, when the session is created
//! ([`QPacked`]), for the best instruction set of the CPU (`Isa::detect`); the other
//! operators, and layers whose weights are not constants, run through [`execute`]. Every
//! kernel parallelises on the current rayon pool and gives the same integers for any number
//! of threads and any instruction set.
//!
//! Shared operators that move or compare integers without arithmetic run here too when their
//! input is an integer: nearest [`Op::Resize`] and max/min [`Op::Reduce`].

use crate::buffer::DataMut;
use crate::value::{DataRef, ValueView};
use ipukit_ir::ops::fixed::{InputNormalize, QRescale};
use ipukit_ir::ops::{Pool2d, Reduce, ReduceOp, Resize, ResizeMode};
use ipukit_ir::{DType, Op, TensorData};
use ipukit_kernels::int::{
    self, ChannelScale, LayerInput, PackedQConv, PackedQDepthwise, PackedQFullyConnected,
    PackedQLut, PackedQTransposeConv, QInt, QWeights, Tail,
};
use ipukit_kernels::{KernelError, Result};
use std::sync::Arc;

fn invalid(op: &Op, reason: impl Into<String>) -> KernelError {
    KernelError::Invalid {
        op: op.name(),
        reason: reason.into(),
    }
}

fn unsupported(op: &Op, dtype: DType) -> KernelError {
    KernelError::Unsupported {
        op: op.name(),
        dtype,
    }
}

/// Binds `$x` to the elements of an integer activation input (UINT8, INT8, INT16, UINT16).
macro_rules! with_qin {
    ($op:expr, $data:expr, |$x:ident| $body:expr) => {
        match $data {
            DataRef::U8($x) => $body,
            DataRef::I8($x) => $body,
            DataRef::I16($x) => $body,
            DataRef::U16($x) => $body,
            other => Err(unsupported($op, other.dtype())),
        }
    };
}

/// Binds `$o` to the elements of an integer activation output (UINT8, INT8, INT16, UINT16).
macro_rules! with_qout {
    ($op:expr, $data:expr, |$o:ident| $body:expr) => {
        match $data {
            DataMut::U8(o) => {
                let $o: &mut [u8] = o;
                $body
            }
            DataMut::I8(o) => {
                let $o: &mut [i8] = o;
                $body
            }
            DataMut::I16(o) => {
                let $o: &mut [i16] = o;
                $body
            }
            DataMut::U16(o) => {
                let $o: &mut [u16] = o;
                $body
            }
            other => Err(invalid(
                $op,
                format!(
                    "output must be an integer activation type, got {}",
                    other.dtype()
                ),
            )),
        }
    };
}

/// Binds `$x` / `$o` to an input and an output of the same integer activation type.
macro_rules! same_qint {
    ($op:expr, $data:expr, $out:expr, |$x:ident, $o:ident| $body:expr) => {
        match ($data, $out) {
            (DataRef::U8($x), DataMut::U8($o)) => $body,
            (DataRef::I8($x), DataMut::I8($o)) => $body,
            (DataRef::I16($x), DataMut::I16($o)) => $body,
            (DataRef::U16($x), DataMut::U16($o)) => $body,
            (x, o) => Err(invalid(
                $op,
                format!(
                    "needs an integer activation type for input and output, got {} and {}",
                    x.dtype(),
                    o.dtype()
                ),
            )),
        }
    };
}

/// Binds `$x` to the input of a quantized layer: UINT8 (8-bit mode) or INT16 (16-bit mode).
macro_rules! with_layer_in {
    ($op:expr, $data:expr, |$x:ident| $body:expr) => {
        match $data {
            DataRef::U8($x) => $body,
            DataRef::I16($x) => $body,
            other => Err(unsupported($op, other.dtype())),
        }
    };
}

/// The INT16 elements of an input.
fn i16_in<'a>(op: &Op, v: &ValueView<'a>) -> Result<&'a [i16]> {
    match v.data {
        DataRef::I16(x) => Ok(x),
        other => Err(unsupported(op, other.dtype())),
    }
}

/// The INT16 output.
fn i16_out<'s>(op: &Op, o: &'s mut DataMut<'_>) -> Result<&'s mut [i16]> {
    match o {
        DataMut::I16(x) => Ok(x),
        other => Err(invalid(
            op,
            format!("output must be INT16, got {}", other.dtype()),
        )),
    }
}

/// The constant operands of a quantized layer: INT8 weights with an optional INT32 bias
/// (8-bit mode) or INT16 weights with an optional INT64 bias (16-bit mode).
fn qweights<'a>(op: &Op, w: DataRef<'a>, bias: Option<DataRef<'a>>) -> Result<QWeights<'a>> {
    match (w, bias) {
        (DataRef::I8(weight), None) => Ok(QWeights::Bits8{ weight, bias: None }),
        (DataRef::I8(weight), Some(DataRef::I32(b))) => Ok(QWeights::Bits8 {
            weight,
            bias: Some(b),
        }),
        (DataRef::I16(weight), None) => Ok(QWeights::Bits16 { weight, bias: None }),
        (DataRef::I16(weight), Some(DataRef::I64(b))) => Ok(QWeights::Bits16 {
            weight,
            bias: Some(b),
        }),
        (w, b) => Err(invalid(
            op,
            format!(
                "weight {} with bias {} is neither 8-bit mode (INT8, INT32) nor 16-bit mode (INT16, INT64)",
                w.dtype(),
                b.map_or_else(|| "none".to_string(), |b| b.dtype().to_string())
            ),
        )),
    }
}

/// A fixed-point operator with its constant operands packed for the integer kernels.
#[derive(Debug, Clone)]
pub(crate) enum QPacked {
    /// `QConv2d`.
    Conv(Arc<PackedQConv>),
    /// `QDepthwiseConv2d`.
    Depthwise(Arc<PackedQDepthwise>),
    /// `QTransposeConv2d`.
    TransposeConv(Arc<PackedQTransposeConv>),
    /// `QFullyConnected`.
    FullyConnected(Arc<PackedQFullyConnected>),
    /// `QLut`, expanded to all 65,536 inputs.
    Lut(Arc<PackedQLut>),
}

impl QPacked {
    /// Packs `op` when it has packable operands: the weight (input 1) and optional bias
    /// (input 2) of a layer, given in `consts` (one entry per node input, `None` for inputs
    /// that are not constants), or a `QLut` table. `None` when there is nothing to pack.
    pub(crate) fn new(
        op: &Op,
        consts: &[Option<(&TensorData, &[usize])>],
    ) -> Result<Option<QPacked>> {
        if let Op::QLut(a) = op {
            return Ok(Some(QPacked::Lut(Arc::new(PackedQLut::new(a)?))));
        }
        if !matches!(
            op,
            Op::QConv2d(_)
                | Op::QDepthwiseConv2d(_)
                | Op::QTransposeConv2d(_)
                | Op::QFullyConnected(_)
        ) {
            return Ok(None);
        }
        let Some(Some((w, ws))) = consts.get(1) else {
            return Ok(None);
        };
        let bias = match consts.get(2) {
            None => None,
            Some(Some((b, _))) => Some(DataRef::from(*b)),
            Some(None) => return Ok(None),
        };
        pack_layer(op, DataRef::from(*w), ws, bias).map(Some)
    }

    /// Runs the packed operator on its activation input `x`.
    pub(crate) fn run(&self, op: &Op, x: ValueView<'_>, out: &mut DataMut<'_>) -> Result<()> {
        match self {
            QPacked::Lut(t) => t.run(i16_in(op, &x)?, i16_out(op, out)?),
            layer => run_layer(op, layer, x, out),
        }
    }
}

/// Packs a quantized layer for the CPU's best instruction set.
fn pack_layer(op: &Op, w: DataRef<'_>, ws: &[usize], bias: Option<DataRef<'_>>) -> Result<QPacked> {
    let qw = qweights(op, w, bias)?;
    Ok(match op {
        Op::QConv2d(a) => QPacked::Conv(Arc::new(PackedQConv::new(a, qw, ws)?)),
        Op::QDepthwiseConv2d(a) => QPacked::Depthwise(Arc::new(PackedQDepthwise::new(a, qw, ws)?)),
        Op::QTransposeConv2d(a) => {
            QPacked::TransposeConv(Arc::new(PackedQTransposeConv::new(a, qw, ws)?))
        }
        Op::QFullyConnected(a) => {
            QPacked::FullyConnected(Arc::new(PackedQFullyConnected::new(a, qw, ws)?))
        }
        _ => return Err(invalid(op, "has no weights to pack")),
    })
}

fn run_typed<X: LayerInput, O: QInt>(
    layer: &QPacked,
    x: &[X],
    shape: &[usize],
    out: &mut [O],
) -> Result<()> {
    match layer {
        QPacked::Conv(p) => p.run(x, shape, out),
        QPacked::Depthwise(p) => p.run(x, shape, out),
        QPacked::TransposeConv(p) => p.run(x, shape, out),
        QPacked::FullyConnected(p) => p.run(x, shape, out),
        QPacked::Lut(_) => Err(KernelError::Invalid {
            op: "QLut",
            reason: "a table is not a layer".into(),
        }),
    }
}

fn run_layer(op: &Op, layer: &QPacked, x: ValueView<'_>, out: &mut DataMut<'_>) -> Result<()> {
    with_layer_in!(op, x.data, |xs| with_qout!(op, out, |o| run_typed(
        layer, xs, x.shape, o
    )))
}

/// True for the operators this module runs: the fixed-point operators, and the shared ones
/// [`Op::Resize`] nearest and [`Op::Reduce`] max/min on integer inputs (integer max pooling
/// runs in [`crate::exec`]).
pub(crate) fn handles(op: &Op, x: DType) -> bool {
    let qint = matches!(x, DType::U8 | DType::I8 | DType::I16 | DType::U16);
    match op {
        Op::Resize(Resize {
            mode: ResizeMode::Nearest(_),
            ..
        }) => x != DType::F32,
        Op::Reduce(Reduce {
            op: ReduceOp::Max | ReduceOp::Min,
            ..
        }) => qint,
        op => op.is_fixed_point(),
    }
}

/// Checks, before anything runs, that the integer kernels take inputs of these types (shape
/// inference has already checked most of them; this covers what it leaves open).
pub(crate) fn check_supported(op: &Op, dtypes: &[DType]) -> Result<()> {
    let x = dtypes.first().copied().unwrap_or(DType::F32);
    let qint = matches!(x, DType::U8 | DType::I8 | DType::I16 | DType::U16);
    let ok = match op {
        Op::QConv2d(_)
        | Op::QDepthwiseConv2d(_)
        | Op::QTransposeConv2d(_)
        | Op::QFullyConnected(_) => {
            matches!(
                dtypes,
                [DType::U8, DType::I8]
                    | [DType::U8, DType::I8, DType::I32]
                    | [DType::I16, DType::I16]
                    | [DType::I16, DType::I16, DType::I64]
            )
        }
        Op::QMatMul(_) | Op::QBinary(_) => dtypes.iter().all(|&d| d == DType::I16),
        Op::QLut(_) | Op::QSoftmax(_) => x == DType::I16,
        Op::QRescale(_)
        | Op::QAvgPool2d(_)
        | Op::QReduce(_)
        | Op::QResize(_)
        | Op::Dequantize(_) => qint,
        Op::Quantize(_) => x == DType::F32,
        Op::InputNormalize(_) => x == DType::U8,
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        let bad = dtypes
            .iter()
            .copied()
            .find(|d| !matches!(d, DType::U8 | DType::I16))
            .unwrap_or(x);
        Err(unsupported(op, bad))
    }
}

/// Runs a fixed-point operator, or a shared one on integers ([`handles`]), into `out`.
pub(crate) fn execute(op: &Op, ins: &[ValueView<'_>], out: &mut DataMut<'_>) -> Result<()> {
    let Some(&x) = ins.first() else {
        return Err(invalid(op, "no inputs"));
    };
    match op {
        Op::QConv2d(_)
        | Op::QDepthwiseConv2d(_)
        | Op::QTransposeConv2d(_)
        | Op::QFullyConnected(_) => {
            let w = ins.get(1).ok_or_else(|| invalid(op, "missing weight"))?;
            let layer = pack_layer(op, w.data, w.shape, ins.get(2).map(|b| b.data))?;
            run_layer(op, &layer, x, out)
        }
        Op::QMatMul(a) => {
            let b = ins.get(1).ok_or_else(|| invalid(op, "missing operand"))?;
            int::qmatmul(
                a,
                i16_in(op, &x)?,
                x.shape,
                i16_in(op, b)?,
                b.shape,
                i16_out(op, out)?,
            )
        }
        Op::QBinary(a) => {
            let b = ins.get(1).ok_or_else(|| invalid(op, "missing operand"))?;
            int::qbinary(
                a,
                i16_in(op, &x)?,
                x.shape,
                i16_in(op, b)?,
                b.shape,
                i16_out(op, out)?,
            )
        }
        Op::QRescale(a) => {
            with_qin!(op, x.data, |xs| with_qout!(op, out, |o| int::qrescale(
                a, xs, x.shape, o
            )))
        }
        Op::QLut(a) => int::qlut(a, i16_in(op, &x)?, i16_out(op, out)?),
        Op::QSoftmax(a) => int::qsoftmax(a, i16_in(op, &x)?, x.shape, i16_out(op, out)?),
        Op::QAvgPool2d(a) => {
            with_qin!(op, x.data, |xs| with_qout!(op, out, |o| int::qavg_pool2d(
                a, xs, x.shape, o
            )))
        }
        Op::QReduce(a) => {
            with_qin!(op, x.data, |xs| with_qout!(op, out, |o| int::qreduce(
                a, xs, x.shape, o
            )))
        }
        Op::QResize(a) => {
            with_qin!(op, x.data, |xs| with_qout!(op, out, |o| int::qresize(
                a, xs, x.shape, o
            )))
        }
        Op::Quantize(a) => {
            let DataRef::F32(xs) = x.data else {
                return Err(unsupported(op, x.dtype()));
            };
            with_qout!(op, out, |o| int::quantize(a, xs, o))
        }
        Op::Dequantize(a) => {
            let DataMut::F32(o) = out else {
                return Err(invalid(
                    op,
                    format!("output must be FLOAT32, got {}", out.dtype()),
                ));
            };
            with_qin!(op, x.data, |xs| int::dequantize(a, xs, o))
        }
        Op::InputNormalize(a) => {
            let DataRef::U8(xs) = x.data else {
                return Err(unsupported(op, x.dtype()));
            };
            int::input_normalize(a, xs, x.shape, i16_out(op, out)?)
        }
        Op::Reduce(r) => same_qint!(op, x.data, out, |xs, o| int::reduce_extreme(
            r.op, xs, x.shape, &r.axes, o
        )),
        Op::Resize(r) => resize_nearest(op, r, x, out),
        _ => Err(invalid(op, "is not a fixed-point operator")),
    }
}

/// Nearest resize of any non-float element type: elements are copied, never computed.
fn resize_nearest(op: &Op, r: &Resize, x: ValueView<'_>, out: &mut DataMut<'_>) -> Result<()> {
    let s = x.shape;
    match (x.data, out) {
        (DataRef::I64(v), DataMut::I64(o)) => int::resize_nearest(r, v, s, o),
        (DataRef::I32(v), DataMut::I32(o)) => int::resize_nearest(r, v, s, o),
        (DataRef::I16(v), DataMut::I16(o)) => int::resize_nearest(r, v, s, o),
        (DataRef::U16(v), DataMut::U16(o)) => int::resize_nearest(r, v, s, o),
        (DataRef::I8(v), DataMut::I8(o)) => int::resize_nearest(r, v, s, o),
        (DataRef::U8(v), DataMut::U8(o)) => int::resize_nearest(r, v, s, o),
        (DataRef::Bool(v), DataMut::Bool(o)) => int::resize_nearest(r, v, s, o),
        (x, o) => Err(invalid(
            op,
            format!("input is {} but the output is {}", x.dtype(), o.dtype()),
        )),
    }
}

/// A packed layer that runs with an element-wise tail ([`PackedQConv::run_tail`],
/// [`PackedQDepthwise::run_tail`]).
pub(crate) trait TailLayer {
    /// The layer then `tail`, from `x` into `out`.
    fn run_tail<X: LayerInput, O: LayerInput>(
        &self,
        x: &[X],
        x_shape: &[usize],
        tail: &Tail,
        out: &mut [O],
    ) -> Result<()>;
}

impl TailLayer for PackedQConv {
    fn run_tail<X: LayerInput, O: LayerInput>(
        &self,
        x: &[X],
        x_shape: &[usize],
        tail: &Tail,
        out: &mut [O],
    ) -> Result<()> {
        PackedQConv::run_tail(self, x, x_shape, tail, out)
    }
}

impl TailLayer for PackedQDepthwise {
    fn run_tail<X: LayerInput, O: LayerInput>(
        &self,
        x: &[X],
        x_shape: &[usize],
        tail: &Tail,
        out: &mut [O],
    ) -> Result<()> {
        PackedQDepthwise::run_tail(self, x, x_shape, tail, out)
    }
}

/// A packed layer followed by its element-wise `tail`, for every input and output type the
/// two take.
pub(crate) fn run_conv_tail(
    op: &Op,
    layer: &impl TailLayer,
    tail: &Tail,
    x: ValueView<'_>,
    out: DataMut<'_>,
) -> Result<()> {
    match (x.data, out) {
        (DataRef::U8(xs), DataMut::U8(o)) => layer.run_tail(xs, x.shape, tail, o),
        (DataRef::U8(xs), DataMut::I16(o)) => layer.run_tail(xs, x.shape, tail, o),
        (DataRef::I16(xs), DataMut::U8(o)) => layer.run_tail(xs, x.shape, tail, o),
        (DataRef::I16(xs), DataMut::I16(o)) => layer.run_tail(xs, x.shape, tail, o),
        (d, _) => Err(unsupported(op, d.dtype())),
    }
}

/// A packed depthwise layer and its element-wise `tail` into `out` on one image, then the
/// global average pool (or sum) `reduce` of `out` over its height and width into `mean`, from
/// channel sums taken while the rows were in cache.
pub(crate) fn run_dw_tail_mean(
    op: &Op,
    layer: &PackedQDepthwise,
    tail: &Tail,
    reduce: &ipukit_ir::ops::fixed::QReduce,
    x: ValueView<'_>,
    out: DataMut<'_>,
    mean: DataMut<'_>,
) -> Result<()> {
    let shape = layer.output_shape(x.shape)?;
    if reduce.reduce.axes != [1, 2] {
        return Err(invalid(
            op,
            format!(
                "a mean over axes {:?}, not height and width",
                reduce.reduce.axes
            ),
        ));
    }
    let mut sums = vec![0i64; shape[3]];
    match (x.data, out) {
        (DataRef::U8(xs), DataMut::U8(o)) => layer.run_tail_sums(xs, x.shape, tail, o, &mut sums),
        (DataRef::U8(xs), DataMut::I16(o)) => layer.run_tail_sums(xs, x.shape, tail, o, &mut sums),
        (DataRef::I16(xs), DataMut::U8(o)) => layer.run_tail_sums(xs, x.shape, tail, o, &mut sums),
        (DataRef::I16(xs), DataMut::I16(o)) => layer.run_tail_sums(xs, x.shape, tail, o, &mut sums),
        (d, _) => Err(unsupported(op, d.dtype())),
    }?;
    let cnt = shape[1] * shape[2];
    with_qout!(op, mean, |m| int::qreduce_sums(reduce, &sums, cnt, m))
}

/// [`ChannelScale`] `scale` of the INT16 activation `x`, the packed 1×1 `QConv2d`, then
/// `tail` (if any), for every output type they take.
pub(crate) fn run_conv_scaled(
    op: &Op,
    conv: &PackedQConv,
    scale: &ChannelScale<'_>,
    tail: Option<&Tail>,
    x: ValueView<'_>,
    out: DataMut<'_>,
) -> Result<()> {
    let DataRef::I16(xs) = x.data else {
        return Err(unsupported(op, x.dtype()));
    };
    match out {
        DataMut::U8(o) => conv.run_scaled(xs, x.shape, scale, tail, o),
        DataMut::I16(o) => conv.run_scaled(xs, x.shape, scale, tail, o),
        d => Err(unsupported(op, d.dtype())),
    }
}

/// A packed `QConv2d`, the max pool tiling its output, then `tail` (if any), for every
/// input and output type they take.
pub(crate) fn run_conv_pool(
    op: &Op,
    conv: &PackedQConv,
    pool: &Pool2d,
    tail: Option<&Tail>,
    x: ValueView<'_>,
    out: DataMut<'_>,
) -> Result<()> {
    match (x.data, out) {
        (DataRef::U8(xs), DataMut::U8(o)) => conv.run_pool_tail(xs, x.shape, pool, tail, o),
        (DataRef::U8(xs), DataMut::I16(o)) => conv.run_pool_tail(xs, x.shape, pool, tail, o),
        (DataRef::I16(xs), DataMut::U8(o)) => conv.run_pool_tail(xs, x.shape, pool, tail, o),
        (DataRef::I16(xs), DataMut::I16(o)) => conv.run_pool_tail(xs, x.shape, pool, tail, o),
        (d, _) => Err(unsupported(op, d.dtype())),
    }
}

/// `InputNormalize` then `QRescale` as one table per channel.
pub(crate) fn run_input_rescale(
    op: &Op,
    norm: &InputNormalize,
    rescale: &QRescale,
    x: ValueView<'_>,
    out: DataMut<'_>,
) -> Result<()> {
    let DataRef::U8(xs) = x.data else {
        return Err(unsupported(op, x.dtype()));
    };
    match out {
        DataMut::U8(o) => int::input_normalize_rescaled(norm, rescale, xs, x.shape, o),
        DataMut::I16(o) => int::input_normalize_rescaled(norm, rescale, xs, x.shape, o),
        d => Err(unsupported(op, d.dtype())),
    }
}
