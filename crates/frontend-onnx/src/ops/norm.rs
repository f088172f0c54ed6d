//! BatchNormalization (inference form), emitted as a per-channel multiply-add that the affine
//! folding pass then merges into the preceding convolution.

use super::elementwise::binary_slot;
use crate::context::{Ctx, NodeCx};
use crate::error::{OnnxError, Result};
use ipukit_ir::ops::BinaryOp;

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
    if nx.attrs.int_or("training_mode", 0)? != 0 {
        return Err(OnnxError::Unsupported(
            "ONNX BatchNormalization does not support training_mode not 0:".into(),
        ));
    }
    if nx.attrs.int_or("spatial", 1)? != 1 {
        return Err(OnnxError::Unsupported(
            "BatchNormalization does not support spatial not 1:".into(),
        ));
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
