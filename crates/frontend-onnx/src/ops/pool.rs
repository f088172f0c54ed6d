//! MaxPool, AveragePool and the global pools.

use super::conv::{bind_nhwc, lift_1d, lifted_window, Lifted};
use super::reduce::reduce_axes;
use crate::context::{Ctx, NodeCx};
use crate::error::{OnnxError, Result};
use crate::layout::NHWC_PERM;
use ipukit_ir::{
    ops::{Pool2d, PoolKind, ReduceOp},
    Op,
};

fn pool(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>, kind: PoolKind) -> Result<()> {
    let x = nx.req(ctx, 0)?;
    let Lifted { x, one_d } = lift_1d(ctx, nx, x, nx.op_type)?;
    let xs = ctx.onnx_shape(&x);
    let k = nx
        .attrs
        .ints("kernel_shape")?
        .ok_or_else(|| OnnxError::Invalid("kernel_shape is required".into()))?;
    let k = super::conv::lift_attr(Some(k), one_d, false, 1).unwrap_or_default();
    if k.len() != 2 || k.iter().any(|&v| v < 1) {
        return Err(OnnxError::Unsupported(format!(
            "ONNX {} kernel_shape {k:?} is not supported",
            nx.op_type
        )));
    }
    let kernel = [k[0] as usize, k[1] as usize];
    let win = lifted_window(nx, one_d, [xs[2], xs[3]], kernel)?;
    if win.dilations != [1, 1] {
        return Err(OnnxError::Unsupported(format!(
            "ONNX {} only supports dilation 1: {:?}",
            nx.op_type, win.dilations
        )));
    }
    let ceil_mode = nx.attrs.int_or("ceil_mode", 0)? != 0;
    let xin = ctx.in_layout(&x, &NHWC_PERM, &nx.name)?;
    let op = Op::Pool2d(Pool2d {
        kind,
        kernel,
        strides: win.strides,
        padding: win.padding,
        ceil_mode,
    });
    let out_name = if one_d {
        format!("{}_2d", nx.output(0))
    } else {
        nx.output(0).to_string()
    };
    let id = ctx.emit1(&nx.name, op, vec![xin], &out_name)?;
    bind_nhwc(ctx, nx, id, one_d)
}

pub(crate) fn max_pool(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>) -> Result<()> {
    nx.attrs.check_known(
        "MaxPool",
        &[
            "auto_pad",
            "ceil_mode",
            "dilations",
            "kernel_shape",
            "pads",
            "storage_order",
            "strides",
        ],
    )?;
    nx.max_outputs(1)?;
    pool(ctx, nx, PoolKind::Max)
}

pub(crate) fn average_pool(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>) -> Result<()> {
    nx.attrs.check_known(
        "AveragePool",
        &[
            "auto_pad",
            "ceil_mode",
            "count_include_pad",
            "dilations",
            "kernel_shape",
            "pads",
            "strides",
        ],
    )?;
    let count_include_pad = nx.attrs.int_or("count_include_pad", 0)? != 0;
    pool(ctx, nx, PoolKind::Average { count_include_pad })
}

fn global(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>, op: ReduceOp) -> Result<()> {
    nx.attrs.check_known(nx.op_type, &[])?;
    let x = nx.req(ctx, 0)?;
    let rank = x.perm.len();
    if rank < 3 {
        return Err(OnnxError::Invalid(format!(
            "{} needs an input of rank >= 3",
            nx.op_type
        )));
    }
    let axes: Vec<usize> = (2..rank).collect();
    reduce_axes(ctx, nx, &x, op, &axes, true)
}

pub(crate) fn global_average_pool(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>) -> Result<()> {
    global(ctx, nx, ReduceOp::Mean)
}

pub(crate) fn global_max_pool(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>) -> Result<()> {
    global(ctx, nx, ReduceOp::Max)
}
