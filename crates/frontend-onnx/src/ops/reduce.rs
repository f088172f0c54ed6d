//! Reductions, arg-reductions and (log-)softmax.

use super::reshape_to;
use crate::context::{Ctx, NodeCx, Slot};
use crate::error::{OnnxError, Result};
use crate::layout::{ir_axis, norm_axis, remove_axes};
use ipukit_ir::{
    ops::{ArgReduce, ArgReduceKind, Reduce, ReduceOp, Softmax},
    Op,
};

/// Emits a reduction over the ONNX axes `axes` of `x` (in any layout) and binds output 0.
pub(crate) fn reduce_axes(
    ctx: &mut Ctx<'_>,
    nx: &NodeCx<'_>,
    x: &Slot,
    op: ReduceOp,
    axes: &[usize],
    keep_dims: bool,
) -> Result<()> {
    let mut ir_axes: Vec<usize> = axes.iter().map(|&a| ir_axis(&x.perm, a)).collect();
    ir_axes.sort_unstable();
    ir_axes.dedup();
    let perm = if keep_dims {
        x.perm.clone()
    } else {
        remove_axes(&x.perm, axes)
    };
    nx.emit_out(
        ctx,
        Op::Reduce(Reduce {
            op,
            axes: ir_axes,
            keep_dims,
        }),
        vec![x.id],
        perm,
    )
}

fn reduce(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>, op: ReduceOp) -> Result<()> {
    nx.attrs
        .check_known(nx.op_type, &["axes", "keepdims", "noop_with_empty_axes"])?;
    let x = nx.req(ctx, 0)?;
    let rank = x.perm.len();
    let keep = nx.attrs.int_or("keepdims", 1)? != 0;
    // Axes moved from attribute to input in opset 13 (ReduceSum) / 18 (the others).
    let axes_raw: Option<Vec<i64>> = match nx.attrs.ints("axes")? {
        Some(a) => Some(a),
        None => nx.const_input(ctx, 1, "axes")?.map(|d| d.to_i64_vec()),
    };
    let axes: Vec<usize> = match axes_raw {
        Some(a) if !a.is_empty() => a
            .iter()
            .map(|&v| {
                norm_axis(v, rank).ok_or_else(|| {
                    OnnxError::Invalid(format!("axis {v} out of range for rank {rank}"))
                })
            })
            .collect::<Result<_>>()?,
        _ if nx.attrs.int_or("noop_with_empty_axes", 0)? != 0 => {
            nx.alias(ctx, 0, x);
            return Ok(());
        }
        _ => (0..rank).collect(),
    };
    reduce_axes(ctx, nx, &x, op, &axes, keep)
}

macro_rules! reduce_fns {
    ($($fn_name:ident => $op:expr),* $(,)?) => {
        $(
            pub(crate) fn $fn_name(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>) -> Result<()> {
                reduce(ctx, nx, $op)
            }
        )*
    };
}

reduce_fns! {
    reduce_mean => ReduceOp::Mean,
    reduce_sum => ReduceOp::Sum,
    reduce_max => ReduceOp::Max,
    reduce_min => ReduceOp::Min,
    reduce_prod => ReduceOp::Prod,
    reduce_l2 => ReduceOp::L2,
}

fn arg(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>, kind: ArgReduceKind) -> Result<()> {
    nx.attrs
        .check_known(nx.op_type, &["axis", "keepdims", "select_last_index"])?;
    let select_last_index = nx.attrs.int_or("select_last_index", 0)? != 0;
    let x = nx.req(ctx, 0)?;
    let rank = x.perm.len();
    let axis_v = nx.attrs.int_or("axis", 0)?;
    let axis = norm_axis(axis_v, rank)
        .ok_or_else(|| OnnxError::Invalid(format!("axis {axis_v} out of range")))?;
    let keep_dims = nx.attrs.int_or("keepdims", 1)? != 0;
    let perm = if keep_dims {
        x.perm.clone()
    } else {
        remove_axes(&x.perm, &[axis])
    };
    let op = Op::ArgReduce(ArgReduce {
        kind,
        axis: ir_axis(&x.perm, axis),
        keep_dims,
        select_last_index,
    });
    nx.emit_out(ctx, op, vec![x.id], perm)
}

pub(crate) fn arg_max(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>) -> Result<()> {
    arg(ctx, nx, ArgReduceKind::Max)
}

pub(crate) fn arg_min(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>) -> Result<()> {
    arg(ctx, nx, ArgReduceKind::Min)
}

fn softmax_like(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>, log: bool) -> Result<()> {
    nx.attrs.check_known(nx.op_type, &["axis"])?;
    let x = nx.req(ctx, 0)?;
    let rank = x.perm.len();
    let default = if ctx.opset >= 13 { -1 } else { 1 };
    let axis_v = nx.attrs.int_or("axis", default)?;
    let axis = norm_axis(axis_v, rank)
        .ok_or_else(|| OnnxError::Invalid(format!("axis {axis_v} out of range for rank {rank}")))?;
    let shape = ctx.onnx_shape(&x);
    let make = |axis: usize| {
        let s = Softmax { axis };
        if log {
            Op::LogSoftmax(s)
        } else {
            Op::Softmax(s)
        }
    };
    let trailing: usize = shape[axis + 1..].iter().product();
    if ctx.opset >= 13 || trailing == 1 {
        // Normalise along the last IR axis: contiguous, a TFLite builtin, and for YOLO-style
        // heads (softmax over channels, then a 1x1 conv) exactly the NHWC layout the next
        // layer wants, so the transpose is not an extra one.
        let last = x.perm.len() - 1;
        if ir_axis(&x.perm, axis) == last {
            return nx.emit_out(ctx, make(last), vec![x.id], x.perm.clone());
        }
        let mut target: Vec<usize> = x.perm.iter().copied().filter(|&p| p != axis).collect();
        target.push(axis);
        let xin = ctx.in_layout(&x, &target, &nx.name)?;
        return nx.emit_out(ctx, make(last), vec![xin], target);
    }
    // Before opset 13 the input is coerced to 2-D at `axis` and normalised over the flattened tail.
    let rows: usize = shape[..axis].iter().product();
    let cols: usize = shape[axis..].iter().product();
    let flat = reshape_to(ctx, nx, &x, vec![rows, cols], &format!("{}_2d", nx.name))?;
    let sm = ctx.emit1(
        &nx.name,
        make(1),
        vec![flat.id],
        &format!("{}_2d", nx.output(0)),
    )?;
    let y = reshape_to(
        ctx,
        nx,
        &Slot {
            id: sm,
            perm: vec![0, 1],
        },
        shape,
        nx.output(0),
    )?;
    nx.alias(ctx, 0, y);
    Ok(())
}

pub(crate) fn softmax(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>) -> Result<()> {
    softmax_like(ctx, nx, false)
}

pub(crate) fn log_softmax(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>) -> Result<()> {
    softmax_like(ctx, nx, true)
}
