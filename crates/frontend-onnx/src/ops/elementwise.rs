//! Element-wise operators: unary math, activations, broadcasting binary ops, Where.

use super::{aligned, common_layout};
use crate::context::{Ctx, NodeCx, Slot};
use crate::error::{OnnxError, Result};
use ipukit_ir::{
    ops::{broadcast_shapes, BinaryOp, UnaryOp},
    DType, Op,
};

fn unary_op(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>, op: UnaryOp) -> Result<()> {
    let x = nx.req(ctx, 0)?;
    nx.emit_out(ctx, Op::Unary(op), vec![x.id], x.perm.clone())
}

macro_rules! unary_fns {
    ($($fn_name:ident => $op:expr),* $(,)?) => {
        $(
            pub(crate) fn $fn_name(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>) -> Result<()> {
                nx.attrs.check_known(nx.op_type, &[])?;
                unary_op(ctx, nx, $op)
            }
        )*
    };
}

unary_fns! {
    abs => UnaryOp::Abs,
    ceil => UnaryOp::Ceil,
    cos => UnaryOp::Cos,
    erf => UnaryOp::Erf,
    exp => UnaryOp::Exp,
    floor => UnaryOp::Floor,
    hard_swish => UnaryOp::HardSwish,
    log => UnaryOp::Log,
    neg => UnaryOp::Neg,
    not => UnaryOp::Not,
    reciprocal => UnaryOp::Reciprocal,
    relu => UnaryOp::Relu,
    round => UnaryOp::Round,
    sigmoid => UnaryOp::Sigmoid,
    sin => UnaryOp::Sin,
    softplus => UnaryOp::Softplus,
    sqrt => UnaryOp::Sqrt,
    tanh => UnaryOp::Tanh,
}

pub(crate) fn leaky_relu(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>) -> Result<()> {
    nx.attrs.check_known("LeakyRelu", &["alpha"])?;
    let a = nx.attrs.float_or("alpha", 0.01)?;
    unary_op(ctx, nx, UnaryOp::LeakyRelu(a))
}

pub(crate) fn elu(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>) -> Result<()> {
    nx.attrs.check_known("Elu", &["alpha"])?;
    let a = nx.attrs.float_or("alpha", 1.0)?;
    unary_op(ctx, nx, UnaryOp::Elu(a))
}

pub(crate) fn hard_sigmoid(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>) -> Result<()> {
    nx.attrs.check_known("HardSigmoid", &["alpha", "beta"])?;
    let a = nx.attrs.float_or("alpha", 0.2)?;
    let b = nx.attrs.float_or("beta", 0.5)?;
    unary_op(ctx, nx, UnaryOp::HardSigmoid(a, b))
}

pub(crate) fn clip(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>) -> Result<()> {
    nx.attrs.check_known("Clip", &["min", "max"])?;
    let x = nx.req(ctx, 0)?;
    if ctx.dtype(&x) == DType::Bool {
        return Err(OnnxError::Unsupported(
            "ONNX Clip on BOOL tensors is not supported".into(),
        ));
    }
    let bound = |ctx: &mut Ctx<'_>, i: usize, attr: &str, default: f32| -> Result<f32> {
        if ctx.opset < 11 {
            return nx.attrs.float_or(attr, default);
        }
        match nx.const_input(ctx, i, attr)? {
            None => Ok(default),
            Some(d) => d
                .to_f32_vec()
                .first()
                .copied()
                .ok_or_else(|| OnnxError::Invalid(format!("Clip {attr} is empty"))),
        }
    };
    let lo = bound(ctx, 1, "min", f32::NEG_INFINITY)?;
    let hi = bound(ctx, 2, "max", f32::INFINITY)?;
    unary_op(ctx, nx, UnaryOp::Clip(lo, hi))
}

/// Emits `a op b` with numpy broadcasting and returns the output slot, named `out`.
pub(crate) fn binary_slot(
    ctx: &mut Ctx<'_>,
    nx: &NodeCx<'_>,
    op: BinaryOp,
    a: &Slot,
    b: &Slot,
    out: &str,
) -> Result<Slot> {
    let (sa, sb) = (ctx.onnx_shape(a), ctx.onnx_shape(b));
    if broadcast_shapes(&sa, &sb).is_none() {
        return Err(OnnxError::Invalid(format!(
            "shapes {sa:?} and {sb:?} do not broadcast"
        )));
    }
    let rank = sa.len().max(sb.len());
    let perm = common_layout(ctx, &[a, b], rank);
    let ia = aligned(ctx, nx, a, rank, &perm)?;
    let ib = aligned(ctx, nx, b, rank, &perm)?;
    let id = ctx.emit1(&nx.name, Op::Binary(op), vec![ia, ib], out)?;
    Ok(Slot { id, perm })
}

fn binary(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>, op: BinaryOp) -> Result<()> {
    let a = nx.req(ctx, 0)?;
    let b = nx.req(ctx, 1)?;
    let s = binary_slot(ctx, nx, op, &a, &b, nx.output(0))?;
    nx.alias(ctx, 0, s);
    Ok(())
}

macro_rules! binary_fns {
    ($($fn_name:ident => $op:expr),* $(,)?) => {
        $(
            pub(crate) fn $fn_name(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>) -> Result<()> {
                // `broadcast`/`axis` only exist in opset < 7, which is rejected up front.
                nx.attrs.check_known(nx.op_type, &[])?;
                binary(ctx, nx, $op)
            }
        )*
    };
}

binary_fns! {
    add => BinaryOp::Add,
    sub => BinaryOp::Sub,
    mul => BinaryOp::Mul,
    div => BinaryOp::Div,
    equal => BinaryOp::Equal,
    less => BinaryOp::Less,
    greater => BinaryOp::Greater,
    and => BinaryOp::And,
    or => BinaryOp::Or,
    prelu => BinaryOp::PRelu,
}

/// A slot converted to `dt` (no op when it already has that type).
fn cast_to(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>, s: Slot, dt: DType, out: &str) -> Result<Slot> {
    if ctx.dtype(&s) == dt {
        return Ok(s);
    }
    let id = ctx.emit1(&nx.name, Op::Cast(dt), vec![s.id], out)?;
    Ok(Slot { id, perm: s.perm })
}

/// ONNX allows base and exponent of different types; the result has the base's type. Mixed
/// cases are computed in FLOAT32 and cast back.
pub(crate) fn pow(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>) -> Result<()> {
    nx.attrs.check_known("Pow", &[])?;
    let a = nx.req(ctx, 0)?;
    let b = nx.req(ctx, 1)?;
    let (ta, tb) = (ctx.dtype(&a), ctx.dtype(&b));
    if ta == tb {
        let s = binary_slot(ctx, nx, BinaryOp::Pow, &a, &b, nx.output(0))?;
        nx.alias(ctx, 0, s);
        return Ok(());
    }
    let af = cast_to(
        ctx,
        nx,
        a,
        DType::F32,
        &format!("{}_base_f32", nx.output(0)),
    )?;
    let bf = cast_to(
        ctx,
        nx,
        b,
        DType::F32,
        &format!("{}_exponent_f32", nx.output(0)),
    )?;
    let name = if ta == DType::F32 {
        nx.output(0).to_string()
    } else {
        format!("{}_f32", nx.output(0))
    };
    let y = binary_slot(ctx, nx, BinaryOp::Pow, &af, &bf, &name)?;
    let y = cast_to(ctx, nx, y, ta, nx.output(0))?;
    nx.alias(ctx, 0, y);
    Ok(())
}

fn compare_not(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>, op: BinaryOp) -> Result<()> {
    nx.attrs.check_known(nx.op_type, &[])?;
    let a = nx.req(ctx, 0)?;
    let b = nx.req(ctx, 1)?;
    let base = format!("{}_inverted", nx.output(0));
    let s = binary_slot(ctx, nx, op, &a, &b, &base)?;
    nx.emit_out(ctx, Op::Unary(UnaryOp::Not), vec![s.id], s.perm)
}

/// `a <= b` is `!(a > b)`.
pub(crate) fn less_or_equal(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>) -> Result<()> {
    compare_not(ctx, nx, BinaryOp::Greater)
}

/// `a >= b` is `!(a < b)`.
pub(crate) fn greater_or_equal(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>) -> Result<()> {
    compare_not(ctx, nx, BinaryOp::Less)
}

/// Folds a variadic operator (Max, Min, Sum) into a chain of binary ones.
fn variadic(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>, op: BinaryOp, out: &str) -> Result<Slot> {
    nx.attrs.check_known(nx.op_type, &[])?;
    let n = nx.input_count();
    if n == 0 {
        return Err(OnnxError::Invalid("needs at least one input".into()));
    }
    let mut acc = nx.req(ctx, 0)?;
    for i in 1..n {
        let b = nx.req(ctx, i)?;
        let name = if i + 1 == n {
            out.to_string()
        } else {
            format!("{out}_partial{i}")
        };
        acc = binary_slot(ctx, nx, op, &acc, &b, &name)?;
    }
    Ok(acc)
}

pub(crate) fn max(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>) -> Result<()> {
    let s = variadic(ctx, nx, BinaryOp::Max, nx.output(0))?;
    nx.alias(ctx, 0, s);
    Ok(())
}

pub(crate) fn min(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>) -> Result<()> {
    let s = variadic(ctx, nx, BinaryOp::Min, nx.output(0))?;
    nx.alias(ctx, 0, s);
    Ok(())
}

pub(crate) fn sum(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>) -> Result<()> {
    let s = variadic(ctx, nx, BinaryOp::Add, nx.output(0))?;
    nx.alias(ctx, 0, s);
    Ok(())
}

pub(crate) fn mean(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>) -> Result<()> {
    let total = variadic(ctx, nx, BinaryOp::Add, &format!("{}_sum", nx.output(0)))?;
    let n = nx.input_count() as f32;
    let c = ctx.constant(&format!("{}_count", nx.name), vec![], vec![n].into())?;
    let s = binary_slot(ctx, nx, BinaryOp::Div, &total, &c, nx.output(0))?;
    nx.alias(ctx, 0, s);
    Ok(())
}

pub(crate) fn where_op(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>) -> Result<()> {
    nx.attrs.check_known("Where", &[])?;
    let c = nx.req(ctx, 0)?;
    let a = nx.req(ctx, 1)?;
    let b = nx.req(ctx, 2)?;
    let (sc, sa, sb) = (ctx.onnx_shape(&c), ctx.onnx_shape(&a), ctx.onnx_shape(&b));
    let shape = broadcast_shapes(&sc, &sa)
        .and_then(|s| broadcast_shapes(&s, &sb))
        .ok_or_else(|| {
            OnnxError::Invalid(format!("shapes {sc:?}, {sa:?}, {sb:?} do not broadcast"))
        })?;
    let rank = shape.len();
    let perm = common_layout(ctx, &[&a, &b, &c], rank);
    let ic = aligned(ctx, nx, &c, rank, &perm)?;
    let ia = aligned(ctx, nx, &a, rank, &perm)?;
    let ib = aligned(ctx, nx, &b, rank, &perm)?;
    nx.emit_out(ctx, Op::Where, vec![ic, ia, ib], perm)
}
