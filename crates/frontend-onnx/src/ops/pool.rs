//! MaxPool, AveragePool and the global pools.

use super::conv::{bind_nhwc_at, lift_1d, lifted_window, Lifted};
use super::reduce::reduce_axes;
use crate::context::{Ctx, NodeCx};
use crate::error::{OnnxError, Result};
use crate::layout::NHWC_PERM;
use ipukit_ir::{
    ops::{MaxPool2dWithIndices, Pool2d, PoolKind, ReduceOp, StorageOrder},
    Op,
};

/// Imports a pooling node; with `indices` (MaxPool's second output requested) also the NCHW
/// index of every maximum, in that storage order.
fn pool(
    ctx: &mut Ctx<'_>,
    nx: &NodeCx<'_>,
    kind: PoolKind,
    indices: Option<StorageOrder>,
) -> Result<()> {
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
    let ceil_mode = nx.attrs.int_or("ceil_mode", 0)? != 0;
    let xin = ctx.in_layout(&x, &NHWC_PERM, &nx.name)?;
    let pool = Pool2d {
        kind,
        kernel,
        strides: win.strides,
        dilations: win.dilations,
        padding: win.padding,
        ceil_mode,
    };
    let out_name = |i: usize| {
        if one_d {
            format!("{}_2d", nx.output(i))
        } else {
            nx.output(i).to_string()
        }
    };
    let Some(storage_order) = indices else {
        let id = ctx.emit1(&nx.name, Op::Pool2d(pool), vec![xin], &out_name(0))?;
        return bind_nhwc_at(ctx, nx, 0, id, one_d);
    };
    // The IR op numbers the input's elements as NCHW, which is the ONNX tensor `xin` holds
    // (also for 1-D, where [N, C, L] is [N, C, 1, L]).
    let op = Op::MaxPool2dWithIndices(MaxPool2dWithIndices {
        pool,
        storage_order,
    });
    let ids = ctx.emit(&nx.name, op, vec![xin], &[&out_name(0), &out_name(1)])?;
    bind_nhwc_at(ctx, nx, 0, ids[0], one_d)?;
    bind_nhwc_at(ctx, nx, 1, ids[1], one_d)
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
    nx.max_outputs(2)?;
    let storage_order = match nx.attrs.int_or("storage_order", 0)? {
        0 => StorageOrder::RowMajor,
        1 => StorageOrder::ColumnMajor,
        v => {
            return Err(OnnxError::Invalid(format!(
                "storage_order {v} is not 0 (row major) or 1 (column major)"
            )))
        }
    };
    let indices = (nx.output_count() == 2).then_some(storage_order);
    pool(ctx, nx, PoolKind::Max, indices)
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
    nx.max_outputs(1)?;
    pool(ctx, nx, PoolKind::Average { count_include_pad }, None)
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
