//! Operator codes and attribute encodings of the program section (`docs/offline-img.md` §5).
//!
//! Every operator is a `u16` code followed by its attributes in a fixed order; sizes and axes
//! are `u32`, multipliers an `i32` and a `u8` shift, enumerations one byte. Decoding checks
//! every tag and the ranges shape inference cannot (strides, blocks and groups ≥ 1), and the
//! loader then rebuilds the graph with the IR's shape inference, so a decoded operator is
//! always one the kernels accept.

use crate::bytes::{Reader, Writer};
use crate::error::Result;
use ipukit_ir::ops::fixed::{
    Dequantize, ImageInput, InputNormalize, OutRange, QAvgPool2d, QBinary, QBinaryKind, QConv2d,
    QDepthwiseConv2d, QFullyConnected, QLayer, QLut, QMatMul, QReduce, QRescale, QResize, QSoftmax,
    QTransposeConv2d, Quantize, Requant,
};
use ipukit_ir::ops::{
    ArgReduce, ArgReduceKind, BinaryOp, Concat, Conv2d, CoordTransform, DepthToSpace,
    DepthToSpaceMode, DepthwiseConv2d, Expand, FullyConnected, FusedActivation, Gather, MatMul,
    MaxPool2dWithIndices, NearestMode, Pad, PadMode, Padding2d, Pool2d, PoolKind, Reduce, ReduceOp,
    Reshape, Resize, ResizeMode, Slice, SliceAxis, Softmax, SpaceToDepth, Split, StorageOrder,
    Tile, Transpose, TransposeConv2d, UnaryOp,
};
use ipukit_ir::{DType, Op};

/// The element types, by their one-byte code.
pub(crate) const DTYPES: [DType; 8] = [
    DType::F32,
    DType::I64,
    DType::I32,
    DType::I16,
    DType::U16,
    DType::I8,
    DType::U8,
    DType::Bool,
];

/// One-byte code of an element type.
pub(crate) fn dtype_code(d: DType) -> u8 {
    DTYPES.iter().position(|&x| x == d).unwrap_or(0) as u8
}

pub(crate) fn read_dtype(r: &mut Reader<'_>) -> Result<DType> {
    let c = r.u8()?;
    DTYPES
        .get(c as usize)
        .copied()
        .ok_or_else(|| r.err(format!("unknown element type code {c}")))
}

const BINARY: [BinaryOp; 13] = [
    BinaryOp::Add,
    BinaryOp::Sub,
    BinaryOp::Mul,
    BinaryOp::Div,
    BinaryOp::Pow,
    BinaryOp::Max,
    BinaryOp::Min,
    BinaryOp::PRelu,
    BinaryOp::Equal,
    BinaryOp::Less,
    BinaryOp::Greater,
    BinaryOp::And,
    BinaryOp::Or,
];

const REDUCE: [ReduceOp; 6] = [
    ReduceOp::Mean,
    ReduceOp::Sum,
    ReduceOp::Max,
    ReduceOp::Min,
    ReduceOp::Prod,
    ReduceOp::L2,
];

const COORD: [CoordTransform; 5] = [
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

const ACT: [FusedActivation; 4] = [
    FusedActivation::None,
    FusedActivation::Relu,
    FusedActivation::Relu6,
    FusedActivation::ReluN1To1,
];

fn pos<T: PartialEq>(table: &[T], v: &T) -> u8 {
    table.iter().position(|x| x == v).unwrap_or(0) as u8
}

fn pick<T: Copy>(r: &mut Reader<'_>, table: &[T], what: &str) -> Result<T> {
    let c = r.u8()?;
    table
        .get(c as usize)
        .copied()
        .ok_or_else(|| r.err(format!("unknown {what} code {c}")))
}

/// The operator code of `op` (`docs/offline-img.md` §5.3).
pub(crate) fn op_code(op: &Op) -> u16 {
    match op {
        Op::Conv2d(_) => 1,
        Op::DepthwiseConv2d(_) => 2,
        Op::TransposeConv2d(_) => 3,
        Op::FullyConnected(_) => 4,
        Op::MatMul(_) => 5,
        Op::Binary(_) => 6,
        Op::Unary(_) => 7,
        Op::Where => 8,
        Op::Cast(_) => 9,
        Op::Softmax(_) => 10,
        Op::LogSoftmax(_) => 11,
        Op::Pool2d(_) => 12,
        Op::MaxPool2dWithIndices(_) => 13,
        Op::Reduce(_) => 14,
        Op::ArgReduce(_) => 15,
        Op::Concat(_) => 16,
        Op::Split(_) => 17,
        Op::Reshape(_) => 18,
        Op::Transpose(_) => 19,
        Op::Slice(_) => 20,
        Op::Pad(_) => 21,
        Op::Gather(_) => 22,
        Op::Resize(_) => 23,
        Op::DepthToSpace(_) => 24,
        Op::SpaceToDepth(_) => 25,
        Op::Expand(_) => 26,
        Op::Tile(_) => 27,
        Op::Identity => 28,
        Op::QConv2d(_) => 64,
        Op::QDepthwiseConv2d(_) => 65,
        Op::QTransposeConv2d(_) => 66,
        Op::QFullyConnected(_) => 67,
        Op::QMatMul(_) => 68,
        Op::QBinary(_) => 69,
        Op::QRescale(_) => 70,
        Op::QLut(_) => 71,
        Op::QSoftmax(_) => 72,
        Op::QAvgPool2d(_) => 73,
        Op::QReduce(_) => 74,
        Op::QResize(_) => 75,
        Op::Quantize(_) => 76,
        Op::Dequantize(_) => 77,
        Op::InputNormalize(_) => 78,
    }
}

// ---- writing ----

fn w_pair(w: &mut Writer, p: [usize; 2]) -> Result<()> {
    w.size(p[0])?;
    w.size(p[1])
}

fn w_padding(w: &mut Writer, p: Padding2d) -> Result<()> {
    for v in [p.top, p.left, p.bottom, p.right] {
        w.size(v)?;
    }
    Ok(())
}

fn w_requant(w: &mut Writer, r: Requant) {
    w.i32(r.multiplier);
    w.u8(r.shift.min(255) as u8);
}

fn w_requants(w: &mut Writer, r: &[Requant]) -> Result<()> {
    w.size(r.len())?;
    r.iter().for_each(|&q| w_requant(w, q));
    Ok(())
}

fn w_out(w: &mut Writer, o: &OutRange) {
    w.i32(o.zero_point);
    w.i32(o.min);
    w.i32(o.max);
}

fn w_layer(w: &mut Writer, l: &QLayer) -> Result<()> {
    w.i32(l.input_zero_point);
    w_requants(w, &l.requant)?;
    w.u8(dtype_code(l.out_dtype));
    w_out(w, &l.out);
    Ok(())
}

fn w_conv_geom(
    w: &mut Writer,
    strides: [usize; 2],
    dilations: [usize; 2],
    padding: Padding2d,
) -> Result<()> {
    w_pair(w, strides)?;
    w_pair(w, dilations)?;
    w_padding(w, padding)
}

fn w_conv(w: &mut Writer, c: &Conv2d) -> Result<()> {
    w_conv_geom(w, c.strides, c.dilations, c.padding)?;
    w.size(c.groups)?;
    w.u8(pos(&ACT, &c.activation));
    Ok(())
}

fn w_dw(w: &mut Writer, c: &DepthwiseConv2d) -> Result<()> {
    w_conv_geom(w, c.strides, c.dilations, c.padding)?;
    w.size(c.depth_multiplier)?;
    w.u8(pos(&ACT, &c.activation));
    Ok(())
}

fn w_tconv(w: &mut Writer, c: &TransposeConv2d) -> Result<()> {
    w_conv_geom(w, c.strides, c.dilations, c.padding)?;
    w_pair(w, c.output_padding)?;
    w.size(c.groups)?;
    w.u8(pos(&ACT, &c.activation));
    Ok(())
}

fn w_pool(w: &mut Writer, p: &Pool2d) -> Result<()> {
    match p.kind {
        PoolKind::Max => w.u8(0),
        PoolKind::Average { count_include_pad } => {
            w.u8(1);
            w.bool(count_include_pad);
        }
    }
    w_pair(w, p.kernel)?;
    w_pair(w, p.strides)?;
    w_pair(w, p.dilations)?;
    w_padding(w, p.padding)?;
    w.bool(p.ceil_mode);
    Ok(())
}

fn w_reduce(w: &mut Writer, r: &Reduce) -> Result<()> {
    w.u8(pos(&REDUCE, &r.op));
    w.sizes(&r.axes)?;
    w.bool(r.keep_dims);
    Ok(())
}

fn w_resize(w: &mut Writer, r: &Resize) -> Result<()> {
    match r.mode {
        ResizeMode::Nearest(n) => {
            w.u8(0);
            w.u8(pos(&NEAREST, &n));
        }
        ResizeMode::Linear => w.u8(1),
        ResizeMode::Cubic {
            coeff_a,
            exclude_outside,
        } => {
            w.u8(2);
            w.f32(coeff_a);
            w.bool(exclude_outside);
        }
    }
    w.u8(pos(&COORD, &r.coord));
    w_pair(w, r.size)?;
    w.f32(r.scales[0]);
    w.f32(r.scales[1]);
    Ok(())
}

fn w_unary(w: &mut Writer, u: UnaryOp) {
    let (tag, params): (u8, Vec<f32>) = match u {
        UnaryOp::Relu => (0, vec![]),
        UnaryOp::LeakyRelu(a) => (1, vec![a]),
        UnaryOp::Clip(a, b) => (2, vec![a, b]),
        UnaryOp::Sigmoid => (3, vec![]),
        UnaryOp::HardSigmoid(a, b) => (4, vec![a, b]),
        UnaryOp::HardSwish => (5, vec![]),
        UnaryOp::Tanh => (6, vec![]),
        UnaryOp::Elu(a) => (7, vec![a]),
        UnaryOp::Softplus => (8, vec![]),
        UnaryOp::Abs => (9, vec![]),
        UnaryOp::Neg => (10, vec![]),
        UnaryOp::Sqrt => (11, vec![]),
        UnaryOp::Rsqrt => (12, vec![]),
        UnaryOp::Exp => (13, vec![]),
        UnaryOp::Log => (14, vec![]),
        UnaryOp::Reciprocal => (15, vec![]),
        UnaryOp::Floor => (16, vec![]),
        UnaryOp::Ceil => (17, vec![]),
        UnaryOp::Round => (18, vec![]),
        UnaryOp::Erf => (19, vec![]),
        UnaryOp::Sin => (20, vec![]),
        UnaryOp::Cos => (21, vec![]),
        UnaryOp::Not => (22, vec![]),
    };
    w.u8(tag);
    params.into_iter().for_each(|p| w.f32(p));
}

/// Appends the attributes of `op` (`docs/offline-img.md` §5.3).
pub(crate) fn write_attrs(w: &mut Writer, op: &Op) -> Result<()> {
    match op {
        Op::Conv2d(c) => w_conv(w, c)?,
        Op::DepthwiseConv2d(c) => w_dw(w, c)?,
        Op::TransposeConv2d(c) => w_tconv(w, c)?,
        Op::FullyConnected(f) => w.u8(pos(&ACT, &f.activation)),
        Op::MatMul(_) | Op::Where | Op::Identity => {}
        Op::Binary(b) => w.u8(pos(&BINARY, b)),
        Op::Unary(u) => w_unary(w, *u),
        Op::Cast(d) => w.u8(dtype_code(*d)),
        Op::Softmax(s) | Op::LogSoftmax(s) => w.size(s.axis)?,
        Op::Pool2d(p) => w_pool(w, p)?,
        Op::MaxPool2dWithIndices(p) => {
            w_pool(w, &p.pool)?;
            w.u8(match p.storage_order {
                StorageOrder::RowMajor => 0,
                StorageOrder::ColumnMajor => 1,
            });
        }
        Op::Reduce(r) => w_reduce(w, r)?,
        Op::ArgReduce(a) => {
            w.u8(match a.kind {
                ArgReduceKind::Max => 0,
                ArgReduceKind::Min => 1,
            });
            w.size(a.axis)?;
            w.bool(a.keep_dims);
            w.bool(a.select_last_index);
        }
        Op::Concat(c) => w.size(c.axis)?,
        Op::Split(s) => {
            w.size(s.axis)?;
            w.sizes(&s.sizes)?;
        }
        Op::Reshape(r) => w.sizes(&r.shape)?,
        Op::Transpose(t) => w.sizes(&t.perm)?,
        Op::Slice(s) => {
            w.size(s.axes.len())?;
            for a in &s.axes {
                w.size(a.start)?;
                w.i64(a.step);
                w.size(a.len)?;
            }
        }
        Op::Pad(p) => {
            w.size(p.pads.len())?;
            for pr in &p.pads {
                w_pair(w, *pr)?;
            }
            match p.mode {
                PadMode::Constant(v) => {
                    w.u8(0);
                    w.f32(v);
                }
                PadMode::Reflect => w.u8(1),
                PadMode::Edge => w.u8(2),
                PadMode::Wrap => w.u8(3),
            }
        }
        Op::Gather(g) => w.size(g.axis)?,
        Op::Resize(r) => w_resize(w, r)?,
        Op::DepthToSpace(d) => {
            w.size(d.block)?;
            w.u8(match d.mode {
                DepthToSpaceMode::Dcr => 0,
                DepthToSpaceMode::Crd => 1,
            });
        }
        Op::SpaceToDepth(s) => w.size(s.block)?,
        Op::Expand(e) => w.sizes(&e.shape)?,
        Op::Tile(t) => w.sizes(&t.repeats)?,
        Op::QConv2d(q) => {
            w_conv(w, &q.conv)?;
            w_layer(w, &q.layer)?;
        }
        Op::QDepthwiseConv2d(q) => {
            w_dw(w, &q.conv)?;
            w_layer(w, &q.layer)?;
        }
        Op::QTransposeConv2d(q) => {
            w_tconv(w, &q.conv)?;
            w_layer(w, &q.layer)?;
        }
        Op::QFullyConnected(q) => w_layer(w, &q.layer)?,
        Op::QMatMul(q) => {
            w_requant(w, q.requant);
            w_out(w, &q.out);
        }
        Op::QBinary(q) => {
            match q.kind {
                QBinaryKind::Add { ma, mb, shift }
                | QBinaryKind::Sub { ma, mb, shift }
                | QBinaryKind::Max { ma, mb, shift }
                | QBinaryKind::Min { ma, mb, shift } => {
                    w.u8(match q.kind {
                        QBinaryKind::Add { .. } => 0,
                        QBinaryKind::Sub { .. } => 1,
                        QBinaryKind::Max { .. } => 2,
                        _ => 3,
                    });
                    w.i32(ma);
                    w.i32(mb);
                    w.u8(shift.min(255) as u8);
                }
                QBinaryKind::Mul(r) => {
                    w.u8(4);
                    w_requant(w, r);
                }
                QBinaryKind::Div(r) => {
                    w.u8(5);
                    w_requant(w, r);
                }
            }
            w_out(w, &q.out);
        }
        Op::QRescale(q) => {
            w.i32(q.input_zero_point);
            w_requants(w, &q.positive)?;
            w_requants(w, &q.negative)?;
            w.u8(dtype_code(q.out_dtype));
            w_out(w, &q.out);
        }
        Op::QLut(q) => {
            w.size(q.table.len())?;
            q.table
                .iter()
                .for_each(|&v| w.buf.extend_from_slice(&v.to_le_bytes()));
        }
        Op::QSoftmax(q) => {
            w.size(q.axis)?;
            w.size(q.exp_table.len())?;
            q.exp_table.iter().for_each(|&v| w.i32(v));
        }
        Op::QAvgPool2d(q) => {
            w_pool(w, &q.pool)?;
            w.i32(q.input_zero_point);
            w_requant(w, q.requant);
            w.u8(dtype_code(q.out_dtype));
            w_out(w, &q.out);
        }
        Op::QReduce(q) => {
            w_reduce(w, &q.reduce)?;
            w.i32(q.input_zero_point);
            w_requant(w, q.requant);
            w.u8(dtype_code(q.out_dtype));
            w_out(w, &q.out);
        }
        Op::QResize(q) => {
            w_resize(w, &q.resize)?;
            w.i32(q.input_zero_point);
            w_requant(w, q.requant);
            w.u8(dtype_code(q.out_dtype));
            w_out(w, &q.out);
        }
        Op::Quantize(q) => {
            w.f32(q.scale);
            w.i32(q.zero_point);
            w.u8(dtype_code(q.out_dtype));
        }
        Op::Dequantize(q) => {
            w.f32(q.scale);
            w.i32(q.zero_point);
        }
        Op::InputNormalize(q) => {
            match q.image {
                ImageInput::Interleaved => w.u8(0),
                ImageInput::Nv12 { to_gray } => {
                    w.u8(1);
                    w.bool(to_gray);
                }
            }
            w.sizes(&q.source_channel)?;
            w.size(q.mean_q.len())?;
            q.mean_q.iter().for_each(|&v| w.i32(v));
            w_requants(w, &q.requant)?;
        }
    }
    Ok(())
}

// ---- reading ----

fn r_pos(r: &mut Reader<'_>, what: &str) -> Result<usize> {
    let v = r.size()?;
    if v == 0 {
        return Err(r.err(format!("{what} must be at least 1")));
    }
    Ok(v)
}

fn r_pair(r: &mut Reader<'_>) -> Result<[usize; 2]> {
    Ok([r.size()?, r.size()?])
}

fn r_pos_pair(r: &mut Reader<'_>, what: &str) -> Result<[usize; 2]> {
    Ok([r_pos(r, what)?, r_pos(r, what)?])
}

fn r_padding(r: &mut Reader<'_>) -> Result<Padding2d> {
    Ok(Padding2d {
        top: r.size()?,
        left: r.size()?,
        bottom: r.size()?,
        right: r.size()?,
    })
}

fn r_requant(r: &mut Reader<'_>) -> Result<Requant> {
    let q = Requant {
        multiplier: r.i32()?,
        shift: r.u8()? as u32,
    };
    if !q.is_valid() {
        return Err(r.err(format!("multiplier {q:?} out of range")));
    }
    Ok(q)
}

fn r_requants(r: &mut Reader<'_>) -> Result<Vec<Requant>> {
    let n = r.count(5)?;
    (0..n).map(|_| r_requant(r)).collect()
}

fn r_out(r: &mut Reader<'_>) -> Result<OutRange> {
    Ok(OutRange {
        zero_point: r.i32()?,
        min: r.i32()?,
        max: r.i32()?,
    })
}

fn r_layer(r: &mut Reader<'_>) -> Result<QLayer> {
    Ok(QLayer {
        input_zero_point: r.i32()?,
        requant: r_requants(r)?,
        out_dtype: read_dtype(r)?,
        out: r_out(r)?,
    })
}

type Geom = ([usize; 2], [usize; 2], Padding2d);

fn r_geom(r: &mut Reader<'_>) -> Result<Geom> {
    Ok((
        r_pos_pair(r, "a stride")?,
        r_pos_pair(r, "a dilation")?,
        r_padding(r)?,
    ))
}

fn r_conv(r: &mut Reader<'_>) -> Result<Conv2d> {
    let (strides, dilations, padding) = r_geom(r)?;
    Ok(Conv2d {
        strides,
        dilations,
        padding,
        groups: r_pos(r, "groups")?,
        activation: pick(r, &ACT, "activation")?,
    })
}

fn r_dw(r: &mut Reader<'_>) -> Result<DepthwiseConv2d> {
    let (strides, dilations, padding) = r_geom(r)?;
    Ok(DepthwiseConv2d {
        strides,
        dilations,
        padding,
        depth_multiplier: r_pos(r, "the depth multiplier")?,
        activation: pick(r, &ACT, "activation")?,
    })
}

fn r_tconv(r: &mut Reader<'_>) -> Result<TransposeConv2d> {
    let (strides, dilations, padding) = r_geom(r)?;
    Ok(TransposeConv2d {
        strides,
        dilations,
        padding,
        output_padding: r_pair(r)?,
        groups: r_pos(r, "groups")?,
        activation: pick(r, &ACT, "activation")?,
    })
}

fn r_pool(r: &mut Reader<'_>) -> Result<Pool2d> {
    let kind = match r.u8()? {
        0 => PoolKind::Max,
        1 => PoolKind::Average {
            count_include_pad: r.bool()?,
        },
        c => return Err(r.err(format!("unknown pool kind {c}"))),
    };
    Ok(Pool2d {
        kind,
        kernel: r_pos_pair(r, "a pool window")?,
        strides: r_pos_pair(r, "a stride")?,
        dilations: r_pos_pair(r, "a dilation")?,
        padding: r_padding(r)?,
        ceil_mode: r.bool()?,
    })
}

fn r_reduce(r: &mut Reader<'_>) -> Result<Reduce> {
    Ok(Reduce {
        op: pick(r, &REDUCE, "reduction")?,
        axes: r.sizes()?,
        keep_dims: r.bool()?,
    })
}

fn r_resize(r: &mut Reader<'_>) -> Result<Resize> {
    let mode = match r.u8()? {
        0 => ResizeMode::Nearest(pick(r, &NEAREST, "nearest mode")?),
        1 => ResizeMode::Linear,
        2 => ResizeMode::Cubic {
            coeff_a: r.f32()?,
            exclude_outside: r.bool()?,
        },
        c => return Err(r.err(format!("unknown resize mode {c}"))),
    };
    Ok(Resize {
        mode,
        coord: pick(r, &COORD, "coordinate transform")?,
        size: r_pos_pair(r, "a resize output size")?,
        scales: [r.f32()?, r.f32()?],
    })
}

fn r_unary(r: &mut Reader<'_>) -> Result<UnaryOp> {
    Ok(match r.u8()? {
        0 => UnaryOp::Relu,
        1 => UnaryOp::LeakyRelu(r.f32()?),
        2 => UnaryOp::Clip(r.f32()?, r.f32()?),
        3 => UnaryOp::Sigmoid,
        4 => UnaryOp::HardSigmoid(r.f32()?, r.f32()?),
        5 => UnaryOp::HardSwish,
        6 => UnaryOp::Tanh,
        7 => UnaryOp::Elu(r.f32()?),
        8 => UnaryOp::Softplus,
        9 => UnaryOp::Abs,
        10 => UnaryOp::Neg,
        11 => UnaryOp::Sqrt,
        12 => UnaryOp::Rsqrt,
        13 => UnaryOp::Exp,
        14 => UnaryOp::Log,
        15 => UnaryOp::Reciprocal,
        16 => UnaryOp::Floor,
        17 => UnaryOp::Ceil,
        18 => UnaryOp::Round,
        19 => UnaryOp::Erf,
        20 => UnaryOp::Sin,
        21 => UnaryOp::Cos,
        22 => UnaryOp::Not,
        c => return Err(r.err(format!("unknown unary operator {c}"))),
    })
}

fn r_i32s(r: &mut Reader<'_>) -> Result<Vec<i32>> {
    let n = r.count(4)?;
    (0..n).map(|_| r.i32()).collect()
}

/// Reads the attributes of the operator with code `code`.
pub(crate) fn read_op(r: &mut Reader<'_>, code: u16) -> Result<Op> {
    Ok(match code {
        1 => Op::Conv2d(r_conv(r)?),
        2 => Op::DepthwiseConv2d(r_dw(r)?),
        3 => Op::TransposeConv2d(r_tconv(r)?),
        4 => Op::FullyConnected(FullyConnected {
            activation: pick(r, &ACT, "activation")?,
        }),
        5 => Op::MatMul(MatMul::default()),
        6 => Op::Binary(pick(r, &BINARY, "binary operator")?),
        7 => Op::Unary(r_unary(r)?),
        8 => Op::Where,
        9 => Op::Cast(read_dtype(r)?),
        10 => Op::Softmax(Softmax { axis: r.size()? }),
        11 => Op::LogSoftmax(Softmax { axis: r.size()? }),
        12 => Op::Pool2d(r_pool(r)?),
        13 => Op::MaxPool2dWithIndices(MaxPool2dWithIndices {
            pool: r_pool(r)?,
            storage_order: match r.u8()? {
                0 => StorageOrder::RowMajor,
                1 => StorageOrder::ColumnMajor,
                c => return Err(r.err(format!("unknown storage order {c}"))),
            },
        }),
        14 => Op::Reduce(r_reduce(r)?),
        15 => Op::ArgReduce(ArgReduce {
            kind: match r.u8()? {
                0 => ArgReduceKind::Max,
                1 => ArgReduceKind::Min,
                c => return Err(r.err(format!("unknown arg-reduction {c}"))),
            },
            axis: r.size()?,
            keep_dims: r.bool()?,
            select_last_index: r.bool()?,
        }),
        16 => Op::Concat(Concat { axis: r.size()? }),
        17 => Op::Split(Split {
            axis: r.size()?,
            sizes: r.sizes()?,
        }),
        18 => Op::Reshape(Reshape { shape: r.sizes()? }),
        19 => Op::Transpose(Transpose { perm: r.sizes()? }),
        20 => {
            let n = r.count(16)?;
            let axes = (0..n)
                .map(|_| {
                    let a = SliceAxis {
                        start: r.size()?,
                        step: r.i64()?,
                        len: r.size()?,
                    };
                    if a.step == 0 {
                        return Err(r.err("slice step 0"));
                    }
                    Ok(a)
                })
                .collect::<Result<Vec<_>>>()?;
            Op::Slice(Slice { axes })
        }
        21 => {
            let n = r.count(8)?;
            let pads = (0..n).map(|_| r_pair(r)).collect::<Result<Vec<_>>>()?;
            let mode = match r.u8()? {
                0 => PadMode::Constant(r.f32()?),
                1 => PadMode::Reflect,
                2 => PadMode::Edge,
                3 => PadMode::Wrap,
                c => return Err(r.err(format!("unknown pad mode {c}"))),
            };
            Op::Pad(Pad { pads, mode })
        }
        22 => Op::Gather(Gather { axis: r.size()? }),
        23 => Op::Resize(r_resize(r)?),
        24 => Op::DepthToSpace(DepthToSpace {
            block: r_pos(r, "a block size")?,
            mode: match r.u8()? {
                0 => DepthToSpaceMode::Dcr,
                1 => DepthToSpaceMode::Crd,
                c => return Err(r.err(format!("unknown depth-to-space mode {c}"))),
            },
        }),
        25 => Op::SpaceToDepth(SpaceToDepth {
            block: r_pos(r, "a block size")?,
        }),
        26 => Op::Expand(Expand { shape: r.sizes()? }),
        27 => Op::Tile(Tile {
            repeats: r.sizes()?,
        }),
        28 => Op::Identity,
        64 => Op::QConv2d(QConv2d {
            conv: r_conv(r)?,
            layer: r_layer(r)?,
        }),
        65 => Op::QDepthwiseConv2d(QDepthwiseConv2d {
            conv: r_dw(r)?,
            layer: r_layer(r)?,
        }),
        66 => Op::QTransposeConv2d(QTransposeConv2d {
            conv: r_tconv(r)?,
            layer: r_layer(r)?,
        }),
        67 => Op::QFullyConnected(QFullyConnected { layer: r_layer(r)? }),
        68 => Op::QMatMul(QMatMul {
            requant: r_requant(r)?,
            out: r_out(r)?,
        }),
        69 => {
            let kind = match r.u8()? {
                t @ 0..=3 => {
                    let (ma, mb, shift) = (r.i32()?, r.i32()?, r.u8()? as u32);
                    if ma < 0 || mb < 0 || shift > 62 {
                        return Err(r.err("element-wise multipliers out of range"));
                    }
                    match t {
                        0 => QBinaryKind::Add { ma, mb, shift },
                        1 => QBinaryKind::Sub { ma, mb, shift },
                        2 => QBinaryKind::Max { ma, mb, shift },
                        _ => QBinaryKind::Min { ma, mb, shift },
                    }
                }
                4 => QBinaryKind::Mul(r_requant(r)?),
                5 => QBinaryKind::Div(r_requant(r)?),
                c => return Err(r.err(format!("unknown element-wise operation {c}"))),
            };
            Op::QBinary(QBinary {
                kind,
                out: r_out(r)?,
            })
        }
        70 => Op::QRescale(QRescale {
            input_zero_point: r.i32()?,
            positive: r_requants(r)?,
            negative: r_requants(r)?,
            out_dtype: read_dtype(r)?,
            out: r_out(r)?,
        }),
        71 => {
            let n = r.count(2)?;
            let table = (0..n)
                .map(|_| r.take(2).map(|b| i16::from_le_bytes([b[0], b[1]])))
                .collect::<Result<Vec<_>>>()?;
            Op::QLut(QLut { table })
        }
        72 => Op::QSoftmax(QSoftmax {
            axis: r.size()?,
            exp_table: r_i32s(r)?,
        }),
        73 => Op::QAvgPool2d(QAvgPool2d {
            pool: r_pool(r)?,
            input_zero_point: r.i32()?,
            requant: r_requant(r)?,
            out_dtype: read_dtype(r)?,
            out: r_out(r)?,
        }),
        74 => Op::QReduce(QReduce {
            reduce: r_reduce(r)?,
            input_zero_point: r.i32()?,
            requant: r_requant(r)?,
            out_dtype: read_dtype(r)?,
            out: r_out(r)?,
        }),
        75 => Op::QResize(QResize {
            resize: r_resize(r)?,
            input_zero_point: r.i32()?,
            requant: r_requant(r)?,
            out_dtype: read_dtype(r)?,
            out: r_out(r)?,
        }),
        76 => Op::Quantize(Quantize {
            scale: r.f32()?,
            zero_point: r.i32()?,
            out_dtype: read_dtype(r)?,
        }),
        77 => Op::Dequantize(Dequantize {
            scale: r.f32()?,
            zero_point: r.i32()?,
        }),
        78 => {
            let image = match r.u8()? {
                0 => ImageInput::Interleaved,
                1 => ImageInput::Nv12 { to_gray: r.bool()? },
                c => return Err(r.err(format!("unknown image layout {c}"))),
            };
            Op::InputNormalize(InputNormalize {
                image,
                source_channel: r.sizes()?,
                mean_q: r_i32s(r)?,
                requant: r_requants(r)?,
            })
        }
        c => return Err(r.err(format!("unknown operator code {c}"))),
    })
}
