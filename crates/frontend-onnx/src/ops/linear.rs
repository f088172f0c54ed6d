//! Gemm and MatMul. A constant right-hand matrix becomes a FullyConnected layer.

use super::elementwise::binary_slot;
use super::reshape_to;
use crate::context::{Ctx, NodeCx, Slot};
use crate::error::{OnnxError, Result};
use crate::layout::identity;
use ipukit_ir::{
    ops::{BinaryOp, FullyConnected, MatMul},
    Op, TensorData,
};

/// `[R, C]` row-major → `[C, R]`.
fn transpose2(d: &[f32], r: usize, c: usize) -> Vec<f32> {
    let mut t = vec![0f32; d.len()];
    for i in 0..r {
        for j in 0..c {
            t[j * r + i] = d[i * c + j];
        }
    }
    t
}

/// A 2-D slot viewed transposed (no IR op: only the layout bookkeeping changes).
fn transposed(s: &Slot) -> Slot {
    Slot {
        id: s.id,
        perm: s.perm.iter().map(|&p| 1 - p).collect(),
    }
}

fn f32_const(data: TensorData, what: &str) -> Result<Vec<f32>> {
    data.as_f32().map(<[f32]>::to_vec).ok_or_else(|| {
        OnnxError::Unsupported(format!("{what} of type {} is not supported", data.dtype()))
    })
}

pub(crate) fn gemm(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>) -> Result<()> {
    nx.attrs
        .check_known("Gemm", &["alpha", "beta", "transA", "transB", "broadcast"])?;
    let alpha = nx.attrs.float_or("alpha", 1.0)?;
    let beta = nx.attrs.float_or("beta", 1.0)?;
    let mut a = nx.req(ctx, 0)?;
    let mut b = nx.req(ctx, 1)?;
    if a.perm.len() != 2 || b.perm.len() != 2 {
        return Err(OnnxError::Invalid("Gemm inputs must be 2-D".into()));
    }
    if nx.attrs.int_or("transA", 0)? != 0 {
        a = transposed(&a);
    }
    if nx.attrs.int_or("transB", 0)? != 0 {
        b = transposed(&b);
    }
    let (sa, sb) = (ctx.onnx_shape(&a), ctx.onnx_shape(&b));
    if sa[1] != sb[0] {
        return Err(OnnxError::Invalid(format!(
            "Gemm shapes {sa:?} and {sb:?} do not match"
        )));
    }
    let n = sb[1];
    let c = nx.input(ctx, 2)?;
    let c_const = match &c {
        Some(c) => ctx.const_data(c)?,
        None => None,
    };
    let ain = ctx.canonical(&a, &nx.name)?;
    let out = if let Some(bd) = ctx.const_data(&b)? {
        // FullyConnected wants [N, K] = Bᵀ, scaled by alpha.
        let w: Vec<f32> = transpose2(&f32_const(bd, "Gemm B")?, sb[0], n)
            .iter()
            .map(|v| v * alpha)
            .collect();
        let wid = ctx
            .constant(&format!("{}_weight", nx.name), vec![n, sb[0]], w.into())?
            .id;
        let mut inputs = vec![ain, wid];
        let bias_vec = match (&c, &c_const) {
            (Some(c), Some(cd))
                if cd.len() == 1 || (cd.len() == n && ctx.onnx_shape(c).last() == Some(&n)) =>
            {
                let v = f32_const(cd.clone(), "Gemm C")?;
                Some(if v.len() == 1 {
                    vec![v[0] * beta; n]
                } else {
                    v.iter().map(|x| x * beta).collect()
                })
            }
            _ => None,
        };
        let folded_bias = bias_vec.is_some();
        if let Some(bv) = bias_vec {
            inputs.push(
                ctx.constant(&format!("{}_bias", nx.name), vec![n], bv.into())?
                    .id,
            );
        }
        let name = if folded_bias || c.is_none() {
            nx.output(0).to_string()
        } else {
            format!("{}_fc", nx.output(0))
        };
        let id = ctx.emit1(
            &nx.name,
            Op::FullyConnected(FullyConnected::default()),
            inputs,
            &name,
        )?;
        let y = Slot {
            id,
            perm: identity(2),
        };
        if folded_bias || c.is_none() {
            y
        } else {
            add_scaled_c(ctx, nx, y, c, beta)?
        }
    } else {
        let bin = ctx.canonical(&b, &nx.name)?;
        let id = ctx.emit1(
            &nx.name,
            Op::MatMul(MatMul::default()),
            vec![ain, bin],
            &format!("{}_matmul", nx.output(0)),
        )?;
        let mut y = Slot {
            id,
            perm: identity(2),
        };
        if alpha != 1.0 {
            let k = ctx.constant(&format!("{}_alpha", nx.name), vec![], vec![alpha].into())?;
            y = binary_slot(
                ctx,
                nx,
                BinaryOp::Mul,
                &y,
                &k,
                &format!("{}_scaled", nx.output(0)),
            )?;
        }
        match c {
            None => y,
            Some(_) => add_scaled_c(ctx, nx, y, c, beta)?,
        }
    };
    nx.alias(ctx, 0, out);
    Ok(())
}

/// `y + beta * C`.
fn add_scaled_c(
    ctx: &mut Ctx<'_>,
    nx: &NodeCx<'_>,
    y: Slot,
    c: Option<Slot>,
    beta: f32,
) -> Result<Slot> {
    let Some(mut c) = c else { return Ok(y) };
    if beta != 1.0 {
        let k = ctx.constant(&format!("{}_beta", nx.name), vec![], vec![beta].into())?;
        c = binary_slot(
            ctx,
            nx,
            BinaryOp::Mul,
            &c,
            &k,
            &format!("{}_c_scaled", nx.output(0)),
        )?;
    }
    binary_slot(ctx, nx, BinaryOp::Add, &y, &c, nx.output(0))
}

pub(crate) fn matmul(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>) -> Result<()> {
    nx.attrs.check_known("MatMul", &[])?;
    let mut a = nx.req(ctx, 0)?;
    let mut b = nx.req(ctx, 1)?;
    let (mut sa, mut sb) = (ctx.onnx_shape(&a), ctx.onnx_shape(&b));
    if sa.is_empty() || sb.is_empty() {
        return Err(OnnxError::Invalid(
            "MatMul inputs must have rank >= 1".into(),
        ));
    }
    // numpy semantics for 1-D operands: promote, multiply, then drop the added axis.
    let (a1, b1) = (sa.len() == 1, sb.len() == 1);
    if a1 {
        sa.insert(0, 1);
        a = reshape_to(ctx, nx, &a, sa.clone(), &format!("{}_a2d", nx.name))?;
    }
    if b1 {
        sb.push(1);
        b = reshape_to(ctx, nx, &b, sb.clone(), &format!("{}_b2d", nx.name))?;
    }
    let k = sa[sa.len() - 1];
    if sb[sb.len() - 2] != k {
        return Err(OnnxError::Invalid(format!(
            "MatMul shapes {sa:?} and {sb:?} do not match"
        )));
    }
    let out_name = if a1 || b1 {
        format!("{}_2d", nx.output(0))
    } else {
        nx.output(0).to_string()
    };
    let ain = ctx.canonical(&a, &nx.name)?;
    let bconst = if sb.len() == 2 {
        ctx.const_data(&b)?
    } else {
        None
    };
    let id = match bconst.filter(|d| d.as_f32().is_some()) {
        Some(bd) if ctx.dtype(&a).is_float() => {
            let n = sb[1];
            let w = transpose2(&f32_const(bd, "MatMul B")?, k, n);
            let wid = ctx
                .constant(&format!("{}_weight", nx.name), vec![n, k], w.into())?
                .id;
            ctx.emit1(
                &nx.name,
                Op::FullyConnected(FullyConnected::default()),
                vec![ain, wid],
                &out_name,
            )?
        }
        _ => {
            let bin = ctx.canonical(&b, &nx.name)?;
            ctx.emit1(
                &nx.name,
                Op::MatMul(MatMul::default()),
                vec![ain, bin],
                &out_name,
            )?
        }
    };
    let mut shape = ctx.graph.tensor(id).shape.clone();
    let mut y = Slot {
        id,
        perm: identity(shape.len()),
    };
    if a1 || b1 {
        if b1 {
            shape.pop();
        }
        if a1 {
            shape.remove(shape.len() - if b1 { 1 } else { 2 });
        }
        y = reshape_to(ctx, nx, &y, shape, nx.output(0))?;
    }
    nx.alias(ctx, 0, y);
    Ok(())
}
