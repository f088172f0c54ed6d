//! BatchNormalization. The inference form becomes a per-channel multiply-add that the affine
//! folding pass merges into the preceding convolution; the training form (statistics of the
//! batch itself, and updated running statistics) is spelled out with reductions.

use super::elementwise::binary_slot;
use super::reshape_to;
use crate::context::{Ctx, NodeCx, Slot};
use crate::error::{OnnxError, Result};
use crate::layout::identity;
use ipukit_ir::ops::{BinaryOp, Reduce, ReduceOp, UnaryOp};
use ipukit_ir::Op;

/// `training_mode=1`: normalise with the batch's own mean and (population) variance over every
/// axis but the channel one; outputs 1 and 2 are the running statistics updated with
/// `momentum`.
fn training(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>) -> Result<()> {
    let eps = nx.attrs.float_or("epsilon", 1e-5)?;
    let momentum = nx.attrs.float_or("momentum", 0.9)?;
    let x = nx.req(ctx, 0)?;
    let xs = ctx.onnx_shape(&x);
    if xs.len() < 2 || !ctx.dtype(&x).is_float() {
        return Err(OnnxError::Invalid(format!(
            "input {xs:?} has no channel axis"
        )));
    }
    let c = xs[1];
    let axes: Vec<usize> = (0..xs.len()).filter(|&a| a != 1).collect();
    let xc = ctx.canonical(&x, &nx.name)?;
    let rank = xs.len();
    let out = nx.output(0).to_string();
    let reduce = |ctx: &mut Ctx<'_>, id, name: &str| -> Result<Slot> {
        let op = Op::Reduce(Reduce {
            op: ReduceOp::Mean,
            axes: axes.clone(),
            keep_dims: true,
        });
        let id = ctx.emit1(&nx.name, op, vec![id], name)?;
        Ok(Slot {
            id,
            perm: identity(rank),
        })
    };
    let xslot = Slot {
        id: xc,
        perm: identity(rank),
    };
    let mean = reduce(ctx, xc, &format!("{out}_batch_mean"))?;
    let d = binary_slot(
        ctx,
        nx,
        BinaryOp::Sub,
        &xslot,
        &mean,
        &format!("{out}_centred"),
    )?;
    let d2 = binary_slot(ctx, nx, BinaryOp::Mul, &d, &d, &format!("{out}_squared"))?;
    let var = reduce(ctx, d2.id, &format!("{out}_batch_var"))?;
    let e = ctx.constant(&format!("{}_eps", nx.name), vec![], vec![eps].into())?;
    let ve = binary_slot(ctx, nx, BinaryOp::Add, &var, &e, &format!("{out}_var_eps"))?;
    let sd = ctx.emit1(
        &nx.name,
        Op::Unary(UnaryOp::Sqrt),
        vec![ve.id],
        &format!("{out}_std"),
    )?;
    let sd = Slot {
        id: sd,
        perm: identity(rank),
    };
    let norm = binary_slot(
        ctx,
        nx,
        BinaryOp::Div,
        &d,
        &sd,
        &format!("{out}_normalised"),
    )?;
    let mut per_channel = vec![c];
    per_channel.extend(std::iter::repeat_n(1, rank - 2));
    let scale = nx.req(ctx, 1)?;
    let scale = reshape_to(
        ctx,
        nx,
        &scale,
        per_channel.clone(),
        &format!("{out}_scale"),
    )?;
    let bias = nx.req(ctx, 2)?;
    let bias = reshape_to(ctx, nx, &bias, per_channel, &format!("{out}_bias"))?;
    let scaled = binary_slot(
        ctx,
        nx,
        BinaryOp::Mul,
        &norm,
        &scale,
        &format!("{out}_scaled"),
    )?;
    let y = binary_slot(ctx, nx, BinaryOp::Add, &scaled, &bias, &out)?;
    nx.alias(ctx, 0, y);
    let k = ctx.constant(
        &format!("{}_momentum", nx.name),
        vec![],
        vec![momentum].into(),
    )?;
    let k1 = ctx.constant(
        &format!("{}_one_minus_momentum", nx.name),
        vec![],
        vec![1.0 - momentum].into(),
    )?;
    for (i, batch, input) in [(1, mean, 3), (2, var, 4)] {
        let name = nx.output(i).to_string();
        if name.is_empty() {
            continue;
        }
        let running = nx.req(ctx, input)?;
        let flat = reshape_to(ctx, nx, &batch, vec![c], &format!("{name}_batch"))?;
        let a = binary_slot(
            ctx,
            nx,
            BinaryOp::Mul,
            &running,
            &k,
            &format!("{name}_kept"),
        )?;
        let b = binary_slot(ctx, nx, BinaryOp::Mul, &flat, &k1, &format!("{name}_new"))?;
        let r = binary_slot(ctx, nx, BinaryOp::Add, &a, &b, &name)?;
        nx.alias(ctx, i, r);
    }
    Ok(())
}

pub(crate) fn batch_normalization(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>) -> Result<()> {
    nx.attrs.check_known(
        "BatchNormalization",
        &[
            "epsilon",
            "momentum",
            "training_mode",
            "spatial",
            "is_test",
            "consumed_inputs",
        ],
    )?;
    if nx.attrs.int_or("spatial", 1)? != 1 {
        return Err(OnnxError::Unsupported(
            "BatchNormalization does not support spatial not 1:".into(),
        ));
    }
    if nx.attrs.int_or("training_mode", 0)? != 0 {
        return training(ctx, nx);
    }
    nx.max_outputs(1)?;
    let eps = nx.attrs.float_or("epsilon", 1e-5)?;
    let x = nx.req(ctx, 0)?;
    let xs = ctx.onnx_shape(&x);
    if xs.len() < 2 {
        return Err(OnnxError::Invalid(format!(
            "input {xs:?} has no channel axis"
        )));
    }
    let c = xs[1];
    let mut params = Vec::new();
    for (i, what) in [(1, "scale"), (2, "B"), (3, "mean"), (4, "var")] {
        let d = nx
            .const_input(ctx, i, what)?
            .ok_or_else(|| OnnxError::Invalid(format!("input {what} is required")))?
            .to_f32_vec();
        if d.len() != c {
            return Err(OnnxError::Invalid(format!(
                "{what} has {} values for {c} channels",
                d.len()
            )));
        }
        params.push(d);
    }
    let (scale, shift, mean, var) = (&params[0], &params[1], &params[2], &params[3]);
    let s: Vec<f32> = scale
        .iter()
        .zip(var)
        .map(|(g, v)| g / (v + eps).sqrt())
        .collect();
    let t: Vec<f32> = shift
        .iter()
        .zip(mean)
        .zip(&s)
        .map(|((b, m), s)| b - m * s)
        .collect();
    // Shaped [C, 1, ..., 1] so they broadcast on ONNX axis 1.
    let mut cshape = vec![c];
    cshape.extend(std::iter::repeat_n(1, xs.len() - 2));
    let sc = ctx.constant(&format!("{}_scale", nx.name), cshape.clone(), s.into())?;
    let sh = ctx.constant(&format!("{}_shift", nx.name), cshape, t.into())?;
    let scaled = binary_slot(
        ctx,
        nx,
        BinaryOp::Mul,
        &x,
        &sc,
        &format!("{}_scaled", nx.output(0)),
    )?;
    let out = binary_slot(ctx, nx, BinaryOp::Add, &scaled, &sh, nx.output(0))?;
    nx.alias(ctx, 0, out);
    Ok(())
}
