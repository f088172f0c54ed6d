//! Runs one operator on borrowed inputs into caller-provided outputs, for every element type
//! the kernels support. Used by the session for operators without packed weights and by the
//! reference evaluator. Fixed-point operators, and nearest resize and max/min reductions on
//! integers, go to [`crate::fixed`].

use crate::buffer::DataMut;
use crate::fixed;
use crate::value::{DataRef, ValueView};
use ipukit_ir::ops::{BinaryOp, PoolKind, ReduceOp, UnaryOp};
use ipukit_ir::{DType, Op};
use ipukit_kernels::float;
use ipukit_kernels::int;
use ipukit_kernels::math::{self, CastFrom, Side};
use ipukit_kernels::{array, KernelError, Result};

/// An output buffer with its (already inferred) shape.
pub(crate) struct OutSlot<'a> {
    pub shape: &'a [usize],
    pub data: DataMut<'a>,
}

fn unsupported(op: &Op, dtype: DType) -> KernelError {
    KernelError::Unsupported {
        op: op.name(),
        dtype,
    }
}

fn invalid(op: &Op, reason: impl Into<String>) -> KernelError {
    KernelError::Invalid {
        op: op.name(),
        reason: reason.into(),
    }
}

fn f32_in<'a>(op: &Op, v: &ValueView<'a>) -> Result<&'a [f32]> {
    match v.data {
        DataRef::F32(x) => Ok(x),
        other => Err(unsupported(op, other.dtype())),
    }
}

fn f32_out<'s>(op: &Op, o: &'s mut OutSlot<'_>) -> Result<&'s mut [f32]> {
    match &mut o.data {
        DataMut::F32(x) => Ok(x),
        other => Err(invalid(
            op,
            format!("output must be FLOAT32, got {}", other.dtype()),
        )),
    }
}

/// Binds `$xs` / `$os` to the typed input and output slices of the same element type.
macro_rules! same_type {
    ($op:expr, $x:expr, $o:expr, |$xs:ident, $os:ident| $body:expr) => {
        match ($x, $o) {
            (DataRef::F32($xs), DataMut::F32(o)) => {
                let $os: &mut [f32] = o;
                $body
            }
            (DataRef::I64($xs), DataMut::I64(o)) => {
                let $os: &mut [i64] = o;
                $body
            }
            (DataRef::I32($xs), DataMut::I32(o)) => {
                let $os: &mut [i32] = o;
                $body
            }
            (DataRef::I16($xs), DataMut::I16(o)) => {
                let $os: &mut [i16] = o;
                $body
            }
            (DataRef::U16($xs), DataMut::U16(o)) => {
                let $os: &mut [u16] = o;
                $body
            }
            (DataRef::I8($xs), DataMut::I8(o)) => {
                let $os: &mut [i8] = o;
                $body
            }
            (DataRef::U8($xs), DataMut::U8(o)) => {
                let $os: &mut [u8] = o;
                $body
            }
            (DataRef::Bool($xs), DataMut::Bool(o)) => {
                let $os: &mut [bool] = o;
                $body
            }
            (x, o) => Err(invalid(
                $op,
                format!("input is {} but the output is {}", x.dtype(), o.dtype()),
            )),
        }
    };
}

/// Binds `$a` / `$b` to two inputs of the same element type (any type).
macro_rules! same_pair {
    ($op:expr, $x:expr, $y:expr, |$a:ident, $b:ident| $body:expr) => {
        match ($x, $y) {
            (DataRef::F32($a), DataRef::F32($b)) => $body,
            (DataRef::I64($a), DataRef::I64($b)) => $body,
            (DataRef::I32($a), DataRef::I32($b)) => $body,
            (DataRef::I16($a), DataRef::I16($b)) => $body,
            (DataRef::U16($a), DataRef::U16($b)) => $body,
            (DataRef::I8($a), DataRef::I8($b)) => $body,
            (DataRef::U8($a), DataRef::U8($b)) => $body,
            (DataRef::Bool($a), DataRef::Bool($b)) => $body,
            (x, y) => Err(invalid(
                $op,
                format!(
                    "inputs have different types {} and {}",
                    x.dtype(),
                    y.dtype()
                ),
            )),
        }
    };
}

/// Checks, before anything runs, that `op` has a kernel for inputs of these types.
pub(crate) fn check_supported(op: &Op, dtypes: &[DType]) -> Result<()> {
    let Some(&x) = dtypes.first() else {
        return Err(invalid(op, "no inputs"));
    };
    if op.is_fixed_point() {
        return fixed::check_supported(op, dtypes);
    }
    let all_f32 = |n: usize| dtypes.iter().take(n).all(|&d| d == DType::F32);
    let ok = match op {
        Op::Conv2d(_) | Op::DepthwiseConv2d(_) | Op::TransposeConv2d(_) | Op::FullyConnected(_) => {
            all_f32(3)
        }
        Op::MatMul(_) => all_f32(2),
        Op::Softmax(_) | Op::LogSoftmax(_) => x == DType::F32,
        // Nearest resize copies elements, so it runs on every type.
        Op::Resize(_) => x == DType::F32 || fixed::handles(op, x),
        // Max pooling compares, so it runs on the integer activation types too.
        Op::Pool2d(p) if p.kind == PoolKind::Max => matches!(
            x,
            DType::F32 | DType::U8 | DType::I8 | DType::I16 | DType::U16
        ),
        Op::Pool2d(_) => x == DType::F32,
        Op::MaxPool2dWithIndices(_) => x != DType::Bool,
        Op::Binary(BinaryOp::And | BinaryOp::Or) => x == DType::Bool,
        Op::Binary(b) if b.is_logical() => true,
        Op::Binary(_) => x != DType::Bool,
        Op::Unary(UnaryOp::Not) => x == DType::Bool,
        Op::Unary(UnaryOp::Abs | UnaryOp::Neg | UnaryOp::Relu | UnaryOp::Clip(..)) => {
            x != DType::Bool
        }
        Op::Unary(_) => x == DType::F32,
        Op::Reduce(r) if r.op == ReduceOp::L2 => x == DType::F32,
        Op::Reduce(r) if x == DType::Bool => matches!(r.op, ReduceOp::Max | ReduceOp::Min),
        Op::Reduce(_) => true,
        Op::Gather(_) => matches!(dtypes.get(1), Some(DType::I64 | DType::I32)),
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(unsupported(
            op,
            dtypes
                .iter()
                .copied()
                .find(|&d| d != DType::F32)
                .unwrap_or(x),
        ))
    }
}

/// Grows `scratch` to at least `len` elements.
fn reserve(scratch: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if scratch.len() < len {
        scratch.resize(len, 0.0);
    }
    &mut scratch[..len]
}

/// The optional bias input of a layer.
fn bias<'a>(op: &Op, ins: &[ValueView<'a>]) -> Result<Option<&'a [f32]>> {
    ins.get(2).map(|b| f32_in(op, b)).transpose()
}

/// Runs `op`; `outs` have the shapes shape inference gives.
pub(crate) fn execute(
    op: &Op,
    ins: &[ValueView<'_>],
    outs: &mut [OutSlot<'_>],
    scratch: &mut Vec<f32>,
) -> Result<()> {
    let (lo, hi) = op.arity();
    if ins.len() < lo || ins.len() > hi {
        return Err(invalid(
            op,
            format!("got {} inputs, expected {lo}..={hi}", ins.len()),
        ));
    }
    let n_out = match op {
        Op::Split(s) => s.sizes.len(),
        Op::MaxPool2dWithIndices(_) => 2,
        _ => 1,
    };
    if outs.len() != n_out {
        return Err(invalid(
            op,
            format!("got {} outputs, expected {n_out}", outs.len()),
        ));
    }
    let x = ins[0];
    if fixed::handles(op, x.dtype()) {
        return fixed::execute(op, ins, &mut outs[0].data);
    }
    match op {
        Op::Conv2d(a) => {
            let p = float::PackedConv::new(a, f32_in(op, &ins[1])?, ins[1].shape, bias(op, ins)?)?;
            let need = p.scratch_len(x.shape, rayon::current_num_threads());
            let s = reserve(scratch, need);
            p.run(f32_in(op, &x)?, x.shape, f32_out(op, &mut outs[0])?, s)
        }
        Op::DepthwiseConv2d(a) => {
            let p =
                float::PackedDepthwise::new(a, f32_in(op, &ins[1])?, ins[1].shape, bias(op, ins)?)?;
            p.run(f32_in(op, &x)?, x.shape, f32_out(op, &mut outs[0])?)
        }
        Op::TransposeConv2d(a) => {
            let p = float::PackedTransposeConv::new(
                a,
                f32_in(op, &ins[1])?,
                ins[1].shape,
                bias(op, ins)?,
            )?;
            let s = reserve(scratch, p.scratch_len(x.shape));
            p.run(f32_in(op, &x)?, x.shape, f32_out(op, &mut outs[0])?, s)
        }
        Op::FullyConnected(a) => {
            let p =
                float::PackedLinear::new(a, f32_in(op, &ins[1])?, ins[1].shape, bias(op, ins)?)?;
            p.run(f32_in(op, &x)?, x.shape, f32_out(op, &mut outs[0])?)
        }
        Op::MatMul(_) => float::matmul(
            f32_in(op, &x)?,
            x.shape,
            f32_in(op, &ins[1])?,
            ins[1].shape,
            f32_out(op, &mut outs[0])?,
        ),
        Op::Binary(b) => binary(op, *b, x, ins[1], &mut outs[0]),
        Op::Unary(u) => unary(op, *u, x, &mut outs[0]),
        Op::Where => {
            let DataRef::Bool(c) = x.data else {
                return Err(invalid(
                    op,
                    format!("condition must be BOOL, got {}", x.dtype()),
                ));
            };
            let (a, b) = (ins[1], ins[2]);
            let out = &mut outs[0].data;
            match (a.data, b.data, out) {
                (DataRef::F32(p), DataRef::F32(q), DataMut::F32(o)) => {
                    array::where_select((c, x.shape), (p, a.shape), (q, b.shape), o)
                }
                (DataRef::I64(p), DataRef::I64(q), DataMut::I64(o)) => {
                    array::where_select((c, x.shape), (p, a.shape), (q, b.shape), o)
                }
                (DataRef::I32(p), DataRef::I32(q), DataMut::I32(o)) => {
                    array::where_select((c, x.shape), (p, a.shape), (q, b.shape), o)
                }
                (DataRef::I16(p), DataRef::I16(q), DataMut::I16(o)) => {
                    array::where_select((c, x.shape), (p, a.shape), (q, b.shape), o)
                }
                (DataRef::U16(p), DataRef::U16(q), DataMut::U16(o)) => {
                    array::where_select((c, x.shape), (p, a.shape), (q, b.shape), o)
                }
                (DataRef::I8(p), DataRef::I8(q), DataMut::I8(o)) => {
                    array::where_select((c, x.shape), (p, a.shape), (q, b.shape), o)
                }
                (DataRef::U8(p), DataRef::U8(q), DataMut::U8(o)) => {
                    array::where_select((c, x.shape), (p, a.shape), (q, b.shape), o)
                }
                (DataRef::Bool(p), DataRef::Bool(q), DataMut::Bool(o)) => {
                    array::where_select((c, x.shape), (p, a.shape), (q, b.shape), o)
                }
                _ => Err(invalid(
                    op,
                    "the two value inputs and the output must have one type",
                )),
            }
        }
        Op::Cast(_) => match x.data {
            DataRef::F32(s) => cast_into(s, &mut outs[0].data),
            DataRef::I64(s) => cast_into(s, &mut outs[0].data),
            DataRef::I32(s) => cast_into(s, &mut outs[0].data),
            DataRef::I16(s) => cast_into(s, &mut outs[0].data),
            DataRef::U16(s) => cast_into(s, &mut outs[0].data),
            DataRef::I8(s) => cast_into(s, &mut outs[0].data),
            DataRef::U8(s) => cast_into(s, &mut outs[0].data),
            DataRef::Bool(s) => cast_into(s, &mut outs[0].data),
        },
        Op::Softmax(s) => float::softmax(
            f32_in(op, &x)?,
            x.shape,
            s.axis,
            false,
            f32_out(op, &mut outs[0])?,
        ),
        Op::LogSoftmax(s) => float::softmax(
            f32_in(op, &x)?,
            x.shape,
            s.axis,
            true,
            f32_out(op, &mut outs[0])?,
        ),
        Op::Pool2d(p) => match (x.data, &mut outs[0].data) {
            (DataRef::F32(v), DataMut::F32(o)) => float::pool2d(p, v, x.shape, o),
            // Integer max pooling; `int::max_pool2d` rejects average pools.
            (DataRef::U8(v), DataMut::U8(o)) => int::max_pool2d(p, v, x.shape, o),
            (DataRef::I8(v), DataMut::I8(o)) => int::max_pool2d(p, v, x.shape, o),
            (DataRef::I16(v), DataMut::I16(o)) => int::max_pool2d(p, v, x.shape, o),
            (DataRef::U16(v), DataMut::U16(o)) => int::max_pool2d(p, v, x.shape, o),
            (d, _) => Err(unsupported(op, d.dtype())),
        },
        Op::MaxPool2dWithIndices(p) => {
            let [vals, idx] = outs else {
                return Err(invalid(op, "expected two outputs"));
            };
            let DataMut::I64(idx) = &mut idx.data else {
                return Err(invalid(op, "indices output must be INT64"));
            };
            let s = x.shape;
            match (x.data, &mut vals.data) {
                (DataRef::F32(v), DataMut::F32(o)) => {
                    math::max_pool2d_with_indices(p, v, s, o, idx)
                }
                (DataRef::I64(v), DataMut::I64(o)) => {
                    math::max_pool2d_with_indices(p, v, s, o, idx)
                }
                (DataRef::I32(v), DataMut::I32(o)) => {
                    math::max_pool2d_with_indices(p, v, s, o, idx)
                }
                (DataRef::I16(v), DataMut::I16(o)) => {
                    math::max_pool2d_with_indices(p, v, s, o, idx)
                }
                (DataRef::U16(v), DataMut::U16(o)) => {
                    math::max_pool2d_with_indices(p, v, s, o, idx)
                }
                (DataRef::I8(v), DataMut::I8(o)) => math::max_pool2d_with_indices(p, v, s, o, idx),
                (DataRef::U8(v), DataMut::U8(o)) => math::max_pool2d_with_indices(p, v, s, o, idx),
                (d, _) => Err(unsupported(op, d.dtype())),
            }
        }
        Op::Reduce(r) => match (x.data, &mut outs[0].data) {
            (DataRef::F32(v), DataMut::F32(o)) => math::reduce(r.op, v, x.shape, &r.axes, o),
            (DataRef::I64(v), DataMut::I64(o)) => math::reduce(r.op, v, x.shape, &r.axes, o),
            (DataRef::I32(v), DataMut::I32(o)) => math::reduce(r.op, v, x.shape, &r.axes, o),
            (DataRef::I16(v), DataMut::I16(o)) => math::reduce(r.op, v, x.shape, &r.axes, o),
            (DataRef::I8(v), DataMut::I8(o)) => math::reduce(r.op, v, x.shape, &r.axes, o),
            (DataRef::U16(v), DataMut::U16(o)) => math::reduce(r.op, v, x.shape, &r.axes, o),
            (DataRef::U8(v), DataMut::U8(o)) => math::reduce(r.op, v, x.shape, &r.axes, o),
            // Max of booleans is "any", min is "all": reduce them as 0/1 bytes.
            (DataRef::Bool(v), DataMut::Bool(o)) => {
                let bytes: Vec<u8> = v.iter().map(|&b| b as u8).collect();
                let mut res = vec![0u8; o.len()];
                math::reduce(r.op, &bytes, x.shape, &r.axes, &mut res)?;
                o.iter_mut().zip(res).for_each(|(d, v)| *d = v != 0);
                Ok(())
            }
            (d, _) => Err(unsupported(op, d.dtype())),
        },
        Op::ArgReduce(a) => {
            let DataMut::I64(o) = &mut outs[0].data else {
                return Err(invalid(op, "output must be INT64"));
            };
            match x.data {
                DataRef::F32(v) => {
                    math::arg_reduce(a.kind, a.select_last_index, v, x.shape, a.axis, o)
                }
                DataRef::I64(v) => {
                    math::arg_reduce(a.kind, a.select_last_index, v, x.shape, a.axis, o)
                }
                DataRef::I32(v) => {
                    math::arg_reduce(a.kind, a.select_last_index, v, x.shape, a.axis, o)
                }
                DataRef::I16(v) => {
                    math::arg_reduce(a.kind, a.select_last_index, v, x.shape, a.axis, o)
                }
                DataRef::U16(v) => {
                    math::arg_reduce(a.kind, a.select_last_index, v, x.shape, a.axis, o)
                }
                DataRef::I8(v) => {
                    math::arg_reduce(a.kind, a.select_last_index, v, x.shape, a.axis, o)
                }
                DataRef::U8(v) => {
                    math::arg_reduce(a.kind, a.select_last_index, v, x.shape, a.axis, o)
                }
                DataRef::Bool(v) => {
                    math::arg_reduce(a.kind, a.select_last_index, v, x.shape, a.axis, o)
                }
            }
        }
        Op::Concat(c) => concat(op, c.axis, ins, &mut outs[0].data),
        Op::Split(s) => split(op, x, s.axis, &s.sizes, outs),
        Op::Reshape(_) | Op::Identity => {
            same_type!(op, x.data, &mut outs[0].data, |xs, os| array::reshape(
                xs, os
            ))
        }
        Op::Transpose(t) => same_type!(op, x.data, &mut outs[0].data, |xs, os| array::transpose(
            xs, x.shape, &t.perm, os
        )),
        Op::Slice(s) => same_type!(op, x.data, &mut outs[0].data, |xs, os| array::slice(
            xs, x.shape, &s.axes, os
        )),
        Op::Pad(p) => same_type!(op, x.data, &mut outs[0].data, |xs, os| array::pad(
            xs, x.shape, &p.pads, p.mode, os
        )),
        Op::Gather(g) => {
            let dim = x.shape.get(g.axis).copied().unwrap_or(0);
            let idx = match ins[1].data {
                DataRef::I64(i) => array::gather_indices(i, dim)?,
                DataRef::I32(i) => array::gather_indices(i, dim)?,
                other => return Err(unsupported(op, other.dtype())),
            };
            let is = ins[1].shape;
            same_type!(op, x.data, &mut outs[0].data, |xs, os| array::gather(
                xs, x.shape, g.axis, &idx, is, os
            ))
        }
        Op::Resize(r) => float::resize(r, f32_in(op, &x)?, x.shape, f32_out(op, &mut outs[0])?),
        Op::DepthToSpace(d) => {
            same_type!(op, x.data, &mut outs[0].data, |xs, os| {
                array::depth_to_space(xs, x.shape, d.block, d.mode, os)
            })
        }
        Op::SpaceToDepth(d) => same_type!(op, x.data, &mut outs[0].data, |xs, os| {
            array::space_to_depth(xs, x.shape, d.block, os)
        }),
        Op::Expand(_) => {
            let shape = outs[0].shape;
            same_type!(op, x.data, &mut outs[0].data, |xs, os| array::expand(
                xs, x.shape, shape, os
            ))
        }
        Op::Tile(t) => same_type!(op, x.data, &mut outs[0].data, |xs, os| array::tile(
            xs, x.shape, &t.repeats, os
        )),
        _ => fixed::execute(op, ins, &mut outs[0].data),
    }
}

fn binary(
    op: &Op,
    b: BinaryOp,
    x: ValueView<'_>,
    y: ValueView<'_>,
    out: &mut OutSlot<'_>,
) -> Result<()> {
    let (sa, sb) = (x.shape, y.shape);
    match b {
        BinaryOp::And | BinaryOp::Or => match (x.data, y.data, &mut out.data) {
            (DataRef::Bool(p), DataRef::Bool(q), DataMut::Bool(o)) => {
                math::logical(b, p, sa, q, sb, o)
            }
            _ => Err(unsupported(op, x.dtype())),
        },
        BinaryOp::Equal | BinaryOp::Less | BinaryOp::Greater => {
            let DataMut::Bool(o) = &mut out.data else {
                return Err(invalid(op, "output must be BOOL"));
            };
            same_pair!(op, x.data, y.data, |p, q| math::compare(b, p, sa, q, sb, o))
        }
        _ => match (x.data, y.data, &mut out.data) {
            (DataRef::F32(p), DataRef::F32(q), DataMut::F32(o)) => math::binary(b, p, sa, q, sb, o),
            (DataRef::I64(p), DataRef::I64(q), DataMut::I64(o)) => math::binary(b, p, sa, q, sb, o),
            (DataRef::I32(p), DataRef::I32(q), DataMut::I32(o)) => math::binary(b, p, sa, q, sb, o),
            (DataRef::I16(p), DataRef::I16(q), DataMut::I16(o)) => math::binary(b, p, sa, q, sb, o),
            (DataRef::I8(p), DataRef::I8(q), DataMut::I8(o)) => math::binary(b, p, sa, q, sb, o),
            (DataRef::U16(p), DataRef::U16(q), DataMut::U16(o)) => math::binary(b, p, sa, q, sb, o),
            (DataRef::U8(p), DataRef::U8(q), DataMut::U8(o)) => math::binary(b, p, sa, q, sb, o),
            _ => Err(unsupported(op, x.dtype())),
        },
    }
}

fn unary(op: &Op, u: UnaryOp, x: ValueView<'_>, out: &mut OutSlot<'_>) -> Result<()> {
    match (x.data, &mut out.data) {
        (DataRef::F32(v), DataMut::F32(o)) => math::unary_f32(u, v, o),
        (DataRef::I64(v), DataMut::I64(o)) => math::unary_int(u, v, o),
        (DataRef::I32(v), DataMut::I32(o)) => math::unary_int(u, v, o),
        (DataRef::I16(v), DataMut::I16(o)) => math::unary_int(u, v, o),
        (DataRef::U16(v), DataMut::U16(o)) => math::unary_int(u, v, o),
        (DataRef::I8(v), DataMut::I8(o)) => math::unary_int(u, v, o),
        (DataRef::U8(v), DataMut::U8(o)) => math::unary_int(u, v, o),
        (DataRef::Bool(v), DataMut::Bool(o)) if u == UnaryOp::Not => math::not(v, o),
        (d, _) => Err(unsupported(op, d.dtype())),
    }
}

/// In place: `acc` holds input `pos` of a unary, binary or SiLU step and receives the result.
pub(crate) fn execute_inplace(
    op: &Op,
    pos: usize,
    acc: &mut DataMut<'_>,
    acc_shape: &[usize],
    others: &[ValueView<'_>],
) -> Result<()> {
    match (op, acc) {
        (Op::Unary(u), DataMut::F32(a)) => math::unary_f32_inplace(*u, a),
        (Op::Binary(b), acc) => {
            let other = others
                .first()
                .ok_or_else(|| invalid(op, "missing operand"))?;
            let side = if pos == 0 { Side::Lhs } else { Side::Rhs };
            match (acc, other.data) {
                (DataMut::F32(a), DataRef::F32(o)) => {
                    math::binary_inplace(*b, a, acc_shape, o, other.shape, side)
                }
                (DataMut::I64(a), DataRef::I64(o)) => {
                    math::binary_inplace(*b, a, acc_shape, o, other.shape, side)
                }
                (DataMut::I32(a), DataRef::I32(o)) => {
                    math::binary_inplace(*b, a, acc_shape, o, other.shape, side)
                }
                (a, _) => Err(unsupported(op, a.dtype())),
            }
        }
        (_, a) => Err(unsupported(op, a.dtype())),
    }
}

/// True if [`execute_inplace`] can run `op` with input `pos` (of this type and shape) as the
/// output.
pub(crate) fn can_run_inplace(
    op: &Op,
    pos: usize,
    dtype: DType,
    in_shape: &[usize],
    out_shape: &[usize],
) -> bool {
    match op {
        Op::Unary(_) => dtype == DType::F32 && pos == 0,
        Op::Binary(b) => {
            !b.is_logical()
                && matches!(dtype, DType::F32 | DType::I64 | DType::I32)
                && in_shape == out_shape
        }
        _ => false,
    }
}

fn cast_into<S: Copy + Sync>(s: &[S], out: &mut DataMut<'_>) -> Result<()>
where
    f32: CastFrom<S>,
    i64: CastFrom<S>,
    i32: CastFrom<S>,
    i16: CastFrom<S>,
    u16: CastFrom<S>,
    i8: CastFrom<S>,
    u8: CastFrom<S>,
    bool: CastFrom<S>,
{
    match out {
        DataMut::F32(o) => math::cast(s, o),
        DataMut::I64(o) => math::cast(s, o),
        DataMut::I32(o) => math::cast(s, o),
        DataMut::I16(o) => math::cast(s, o),
        DataMut::U16(o) => math::cast(s, o),
        DataMut::I8(o) => math::cast(s, o),
        DataMut::U8(o) => math::cast(s, o),
        DataMut::Bool(o) => math::cast(s, o),
    }
}

fn concat(op: &Op, axis: usize, ins: &[ValueView<'_>], out: &mut DataMut<'_>) -> Result<()> {
    macro_rules! go {
        ($variant:ident, $o:expr) => {{
            let mut parts = Vec::with_capacity(ins.len());
            for v in ins {
                match v.data {
                    DataRef::$variant(d) => parts.push((d, v.shape)),
                    other => {
                        return Err(invalid(
                            op,
                            format!("inputs mix {} and {}", other.dtype(), ins[0].dtype()),
                        ))
                    }
                }
            }
            array::concat(&parts, axis, $o)
        }};
    }
    match out {
        DataMut::F32(o) => go!(F32, o),
        DataMut::I64(o) => go!(I64, o),
        DataMut::I32(o) => go!(I32, o),
        DataMut::I16(o) => go!(I16, o),
        DataMut::U16(o) => go!(U16, o),
        DataMut::I8(o) => go!(I8, o),
        DataMut::U8(o) => go!(U8, o),
        DataMut::Bool(o) => go!(Bool, o),
    }
}

fn split(
    op: &Op,
    x: ValueView<'_>,
    axis: usize,
    sizes: &[usize],
    outs: &mut [OutSlot<'_>],
) -> Result<()> {
    macro_rules! go {
        ($variant:ident, $xs:expr) => {{
            let mut parts = Vec::with_capacity(outs.len());
            for o in outs.iter_mut() {
                match &mut o.data {
                    DataMut::$variant(d) => parts.push(&mut **d),
                    other => {
                        return Err(invalid(
                            op,
                            format!("output is {}, input {}", other.dtype(), x.dtype()),
                        ))
                    }
                }
            }
            array::split($xs, x.shape, axis, sizes, &mut parts)
        }};
    }
    match x.data {
        DataRef::F32(v) => go!(F32, v),
        DataRef::I64(v) => go!(I64, v),
        DataRef::I32(v) => go!(I32, v),
        DataRef::I16(v) => go!(I16, v),
        DataRef::U16(v) => go!(U16, v),
        DataRef::I8(v) => go!(I8, v),
        DataRef::U8(v) => go!(U8, v),
        DataRef::Bool(v) => go!(Bool, v),
    }
}

/// Runs the SiLU of a fused `Sigmoid` + `Mul` pair.
pub(crate) fn silu(op: &Op, x: ValueView<'_>, out: &mut DataMut<'_>) -> Result<()> {
    match (x.data, out) {
        (DataRef::F32(v), DataMut::F32(o)) => float::silu(v, o),
        (d, _) => Err(unsupported(op, d.dtype())),
    }
}
