//! Data-movement and shape operators, and the ones that only make constants.

use super::{aligned, common_layout, reshape_to};
use crate::context::{Ctx, NodeCx, Slot};
use crate::error::{OnnxError, Result};
use crate::layout::{identity, inverse, ir_axis, norm_axis, remove_axes, NHWC_PERM};
use crate::tensor::{decode_tensor, ir_dtype};
use ipukit_ir::{
    ops::{
        Concat, DepthToSpace, DepthToSpaceMode, Expand, Gather, Pad, PadMode, Reshape, Slice,
        SliceAxis, SpaceToDepth, Split, Tile,
    },
    DType, Op, TensorData,
};

fn axis_attr(nx: &NodeCx<'_>, default: i64, rank: usize) -> Result<usize> {
    let v = nx.attrs.int_or("axis", default)?;
    norm_axis(v, rank)
        .ok_or_else(|| OnnxError::Invalid(format!("axis {v} out of range for rank {rank}")))
}

fn bind_const(
    ctx: &mut Ctx<'_>,
    nx: &NodeCx<'_>,
    shape: Vec<usize>,
    data: TensorData,
) -> Result<()> {
    let s = ctx.constant(nx.output(0), shape, data)?;
    nx.alias(ctx, 0, s);
    Ok(())
}

pub(crate) fn constant(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>) -> Result<()> {
    nx.attrs.check_known(
        "Constant",
        &[
            "value",
            "value_float",
            "value_floats",
            "value_int",
            "value_ints",
            "sparse_value",
            "value_string",
            "value_strings",
        ],
    )?;
    let a = &nx.attrs;
    if let Some(t) = a.tensor("value")? {
        let (shape, data) = decode_tensor(t)?;
        return bind_const(ctx, nx, shape, data);
    }
    if let Some(f) = a.float("value_float")? {
        return bind_const(ctx, nx, vec![], vec![f].into());
    }
    if let Some(f) = a.floats("value_floats")? {
        return bind_const(ctx, nx, vec![f.len()], f.into());
    }
    if let Some(i) = a.int("value_int")? {
        return bind_const(ctx, nx, vec![], vec![i].into());
    }
    if let Some(i) = a.ints("value_ints")? {
        return bind_const(ctx, nx, vec![i.len()], i.into());
    }
    Err(OnnxError::Unsupported(
        "ONNX Constant only supports tensor, float and int values (not sparse or string)".into(),
    ))
}

pub(crate) fn constant_of_shape(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>) -> Result<()> {
    nx.attrs.check_known("ConstantOfShape", &["value"])?;
    let shape: Vec<usize> = nx
        .const_input(ctx, 0, "shape")?
        .ok_or_else(|| OnnxError::Invalid("shape input is required".into()))?
        .to_i64_vec()
        .iter()
        .map(|&d| {
            usize::try_from(d).map_err(|_| OnnxError::Invalid(format!("negative dimension {d}")))
        })
        .collect::<Result<_>>()?;
    let n: usize = shape.iter().product();
    if n > 1 << 26 {
        return Err(OnnxError::Unsupported(format!(
            "ConstantOfShape {shape:?} is too large"
        )));
    }
    let value = match nx.attrs.tensor("value")? {
        Some(t) => decode_tensor(t)?.1,
        None => vec![0f32].into(),
    };
    let data: TensorData = match &value {
        TensorData::F32(v) => vec![v.first().copied().unwrap_or(0.0); n].into(),
        TensorData::I64(v) => vec![v.first().copied().unwrap_or(0); n].into(),
        TensorData::I32(v) => vec![v.first().copied().unwrap_or(0); n].into(),
        TensorData::Bool(v) => vec![v.first().copied().unwrap_or(false); n].into(),
        TensorData::U8(v) => vec![v.first().copied().unwrap_or(0); n].into(),
        TensorData::I8(v) => vec![v.first().copied().unwrap_or(0); n].into(),
        TensorData::I16(v) => vec![v.first().copied().unwrap_or(0); n].into(),
        TensorData::U16(v) => vec![v.first().copied().unwrap_or(0); n].into(),
    };
    bind_const(ctx, nx, shape, data)
}

pub(crate) fn range(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>) -> Result<()> {
    nx.attrs.check_known("Range", &[])?;
    let mut vals = Vec::new();
    for (i, w) in ["start", "limit", "delta"].iter().enumerate() {
        vals.push(
            nx.const_input(ctx, i, w)?
                .ok_or_else(|| OnnxError::Invalid(format!("{w} is required")))?,
        );
    }
    let count = |s: f64, l: f64, d: f64| -> Result<usize> {
        if d == 0.0 {
            return Err(OnnxError::Invalid("Range delta is zero".into()));
        }
        let n = ((l - s) / d).ceil().max(0.0);
        if n > (1u64 << 26) as f64 {
            return Err(OnnxError::Unsupported("Range is too long".into()));
        }
        Ok(n as usize)
    };
    match &vals[0] {
        TensorData::F32(_) => {
            let v: Vec<f32> = vals
                .iter()
                .map(|d| d.to_f32_vec().first().copied().unwrap_or(0.0))
                .collect();
            let n = count(v[0] as f64, v[1] as f64, v[2] as f64)?;
            bind_const(
                ctx,
                nx,
                vec![n],
                (0..n)
                    .map(|i| v[0] + i as f32 * v[2])
                    .collect::<Vec<f32>>()
                    .into(),
            )
        }
        other => {
            let v: Vec<i64> = vals
                .iter()
                .map(|d| d.to_i64_vec().first().copied().unwrap_or(0))
                .collect();
            let n = count(v[0] as f64, v[1] as f64, v[2] as f64)?;
            let r: Vec<i64> = (0..n as i64).map(|i| v[0] + i * v[2]).collect();
            let data: TensorData = if other.dtype() == DType::I32 {
                r.iter().map(|&x| x as i32).collect::<Vec<i32>>().into()
            } else {
                r.into()
            };
            bind_const(ctx, nx, vec![n], data)
        }
    }
}

pub(crate) fn shape(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>) -> Result<()> {
    nx.attrs.check_known("Shape", &["start", "end"])?;
    let x = nx.req(ctx, 0)?;
    let s: Vec<i64> = ctx.onnx_shape(&x).iter().map(|&d| d as i64).collect();
    let r = s.len() as i64;
    let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
    let start = clamp(nx.attrs.int_or("start", 0)?);
    let end = clamp(nx.attrs.int_or("end", r)?);
    let v: Vec<i64> = if start < end {
        s[start..end].to_vec()
    } else {
        vec![]
    };
    bind_const(ctx, nx, vec![v.len()], v.into())
}

pub(crate) fn size(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>) -> Result<()> {
    nx.attrs.check_known("Size", &[])?;
    let x = nx.req(ctx, 0)?;
    let n = ctx.onnx_shape(&x).iter().product::<usize>() as i64;
    bind_const(ctx, nx, vec![], vec![n].into())
}

pub(crate) fn identity_op(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>) -> Result<()> {
    nx.attrs.check_known("Identity", &[])?;
    let x = nx.req(ctx, 0)?;
    nx.alias(ctx, 0, x);
    Ok(())
}

/// Dropout at inference is the identity, and so is training mode with ratio 0; its optional
/// mask output is then all true. Training with a non-zero ratio is random and refused.
pub(crate) fn dropout(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>) -> Result<()> {
    nx.attrs
        .check_known("Dropout", &["ratio", "seed", "is_test"])?;
    nx.max_outputs(2)?;
    let training = match nx.const_input(ctx, 2, "training_mode")? {
        Some(t) => t.to_i64_vec().first().copied().unwrap_or(0) != 0,
        None => false,
    };
    if training {
        let ratio = match nx.const_input(ctx, 1, "ratio")? {
            Some(r) => r.to_f32_vec().first().copied().unwrap_or(0.5),
            None => 0.5,
        };
        if ratio != 0.0 {
            return Err(OnnxError::Unsupported(
                "ONNX Dropout in training mode is not supported (it is random unless ratio is 0)"
                    .into(),
            ));
        }
    }
    let x = nx.req(ctx, 0)?;
    if nx.output_count() > 1 && !nx.output(1).is_empty() {
        let shape = ctx.onnx_shape(&x);
        let n = shape.iter().product();
        let mask = ctx.constant(nx.output(1), shape, vec![true; n].into())?;
        nx.alias(ctx, 1, mask);
    }
    nx.alias(ctx, 0, x);
    Ok(())
}

pub(crate) fn cast(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>) -> Result<()> {
    nx.attrs.check_known("Cast", &["to", "saturate"])?;
    let to = nx
        .attrs
        .int("to")?
        .ok_or_else(|| OnnxError::Invalid("attribute 'to' is required".into()))?;
    let dt = ir_dtype(to as i32, "Cast target")?;
    let x = nx.req(ctx, 0)?;
    nx.emit_out(ctx, Op::Cast(dt), vec![x.id], x.perm.clone())
}

pub(crate) fn transpose(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>) -> Result<()> {
    nx.attrs.check_known("Transpose", &["perm"])?;
    let x = nx.req(ctx, 0)?;
    let rank = x.perm.len();
    let perm: Vec<usize> = match nx.attrs.ints("perm")? {
        Some(p) => p
            .iter()
            .map(|&v| norm_axis(v, rank).unwrap_or(usize::MAX))
            .collect(),
        None => (0..rank).rev().collect(),
    };
    if !ipukit_ir::ops::Transpose::is_valid_perm(&perm) || perm.len() != rank {
        return Err(OnnxError::Invalid(format!(
            "perm {perm:?} is not a permutation of rank {rank}"
        )));
    }
    // Only the bookkeeping changes: IR axis i held input axis p[i], which is output axis inv[p[i]].
    let inv = inverse(&perm);
    let new_perm = x.perm.iter().map(|&p| inv[p]).collect();
    nx.alias(
        ctx,
        0,
        Slot {
            id: x.id,
            perm: new_perm,
        },
    );
    Ok(())
}

fn dims_from(d: &TensorData, what: &str) -> Result<Vec<i64>> {
    if !matches!(d.dtype(), DType::I64 | DType::I32) {
        return Err(OnnxError::Invalid(format!(
            "{what} must be an integer tensor"
        )));
    }
    Ok(d.to_i64_vec())
}

pub(crate) fn reshape(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>) -> Result<()> {
    nx.attrs.check_known("Reshape", &["allowzero", "shape"])?;
    let x = nx.req(ctx, 0)?;
    let in_shape = ctx.onnx_shape(&x);
    let target = match nx.attrs.ints("shape")? {
        Some(s) => s,
        None => dims_from(
            &nx.const_input(ctx, 1, "shape")?
                .ok_or_else(|| OnnxError::Invalid("shape is required".into()))?,
            "shape",
        )?,
    };
    // With allowzero a 0 is a real zero-length dimension, not "copy the input's".
    let allowzero = nx.attrs.int_or("allowzero", 0)? != 0;
    let total: usize = in_shape.iter().product();
    let mut out = Vec::with_capacity(target.len());
    let mut infer = None;
    for (i, &d) in target.iter().enumerate() {
        match d {
            -1 if infer.is_some() => {
                return Err(OnnxError::Invalid(
                    "Assert!!! Errors happened in At most one dimension of the new shape can be -1"
                        .into(),
                ))
            }
            -1 => {
                infer = Some(i);
                out.push(1);
            }
            0 if allowzero => out.push(0),
            0 => out.push(*in_shape.get(i).ok_or_else(|| {
                OnnxError::Invalid(format!(
                    "shape {target:?} copies dimension {i} that the input {in_shape:?} lacks"
                ))
            })?),
            d if d > 0 => out.push(d as usize),
            d => {
                return Err(OnnxError::Invalid(format!(
                    "invalid dimension {d} in shape {target:?}"
                )))
            }
        }
    }
    if let Some(i) = infer {
        let known: usize = out.iter().product();
        if known == 0 || !total.is_multiple_of(known) {
            return Err(OnnxError::Invalid(format!(
                "cannot reshape {in_shape:?} into {target:?}"
            )));
        }
        out[i] = total / known;
    }
    if out.iter().product::<usize>() != total {
        return Err(OnnxError::Invalid(format!(
            "cannot reshape {in_shape:?} into {target:?}"
        )));
    }
    let y = reshape_to(ctx, nx, &x, out, nx.output(0))?;
    nx.alias(ctx, 0, y);
    Ok(())
}

pub(crate) fn flatten(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>) -> Result<()> {
    nx.attrs.check_known("Flatten", &["axis"])?;
    let x = nx.req(ctx, 0)?;
    let s = ctx.onnx_shape(&x);
    let v = nx.attrs.int_or("axis", 1)?;
    let r = s.len() as i64;
    let a = if v < 0 { v + r } else { v };
    if !(0..=r).contains(&a) {
        return Err(OnnxError::Invalid(format!(
            "axis {v} out of range for rank {r}"
        )));
    }
    let a = a as usize;
    let shape = vec![s[..a].iter().product(), s[a..].iter().product()];
    let y = reshape_to(ctx, nx, &x, shape, nx.output(0))?;
    nx.alias(ctx, 0, y);
    Ok(())
}

fn axes_input(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>, rank: usize) -> Result<Option<Vec<usize>>> {
    let raw = match nx.attrs.ints("axes")? {
        Some(a) => Some(a),
        None => nx.const_input(ctx, 1, "axes")?.map(|d| d.to_i64_vec()),
    };
    raw.map(|a| {
        let mut v: Vec<usize> = a
            .iter()
            .map(|&x| {
                norm_axis(x, rank).ok_or_else(|| {
                    OnnxError::Invalid(format!("axis {x} out of range for rank {rank}"))
                })
            })
            .collect::<Result<_>>()?;
        v.sort_unstable();
        v.dedup();
        Ok(v)
    })
    .transpose()
}

pub(crate) fn squeeze(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>) -> Result<()> {
    nx.attrs.check_known("Squeeze", &["axes"])?;
    let x = nx.req(ctx, 0)?;
    let s = ctx.onnx_shape(&x);
    let axes = match axes_input(ctx, nx, s.len())? {
        Some(a) => a,
        None => (0..s.len()).filter(|&i| s[i] == 1).collect(),
    };
    if let Some(&a) = axes.iter().find(|&&a| s[a] != 1) {
        return Err(OnnxError::Invalid(format!(
            "cannot squeeze axis {a} of shape {s:?}"
        )));
    }
    // Dropping size-1 axes keeps the memory order, so the layout survives.
    let perm = remove_axes(&x.perm, &axes);
    let ir_shape: Vec<usize> = ctx
        .graph
        .tensor(x.id)
        .shape
        .iter()
        .zip(&x.perm)
        .filter(|(_, p)| !axes.contains(p))
        .map(|(&d, _)| d)
        .collect();
    nx.emit_out(
        ctx,
        Op::Reshape(Reshape { shape: ir_shape }),
        vec![x.id],
        perm,
    )
}

pub(crate) fn unsqueeze(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>) -> Result<()> {
    nx.attrs.check_known("Unsqueeze", &["axes"])?;
    let x = nx.req(ctx, 0)?;
    let rank = x.perm.len();
    // Axes count in the output rank, which depends on how many there are.
    let raw = match nx.attrs.ints("axes")? {
        Some(a) => a,
        None => nx
            .const_input(ctx, 1, "axes")?
            .map(|d| d.to_i64_vec())
            .unwrap_or_default(),
    };
    let out_rank = rank + raw.len();
    let mut axes: Vec<usize> = raw
        .iter()
        .map(|&a| {
            norm_axis(a, out_rank)
                .ok_or_else(|| OnnxError::Invalid(format!("axis {a} out of range")))
        })
        .collect::<Result<_>>()?;
    axes.sort_unstable();
    axes.dedup();
    if axes.is_empty() || axes.len() != raw.len() {
        return Err(OnnxError::Invalid(format!(
            "invalid Unsqueeze axes {axes:?}"
        )));
    }
    // Old ONNX axis k becomes the k-th axis not in `axes`.
    let kept: Vec<usize> = (0..out_rank).filter(|a| !axes.contains(a)).collect();
    let mut perm: Vec<usize> = x.perm.iter().map(|&p| kept[p]).collect();
    let mut ir_shape = ctx.graph.tensor(x.id).shape.clone();
    for &a in &axes {
        let pos = a.min(perm.len());
        perm.insert(pos, a);
        ir_shape.insert(pos, 1);
    }
    nx.emit_out(
        ctx,
        Op::Reshape(Reshape { shape: ir_shape }),
        vec![x.id],
        perm,
    )
}

pub(crate) fn concat(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>) -> Result<()> {
    nx.attrs.check_known("Concat", &["axis"])?;
    let n = nx.input_count();
    let inputs: Vec<Slot> = (0..n).map(|i| nx.req(ctx, i)).collect::<Result<_>>()?;
    let Some(first) = inputs.first() else {
        return Err(OnnxError::Invalid("Concat needs inputs".into()));
    };
    let rank = first.perm.len();
    if inputs.iter().any(|s| s.perm.len() != rank) {
        return Err(OnnxError::Invalid(
            "Concat inputs have different ranks".into(),
        ));
    }
    let axis = axis_attr(nx, 1, rank)?;
    let refs: Vec<&Slot> = inputs.iter().collect();
    let perm = common_layout(ctx, &refs, rank);
    // Empty inputs (a legal ONNX idiom) contribute nothing.
    let mut ids = Vec::new();
    for s in &inputs {
        if ctx.onnx_shape(s)[axis] > 0 {
            ids.push(ctx.in_layout(s, &perm, &nx.name)?);
        }
    }
    if ids.is_empty() {
        ids.push(ctx.in_layout(first, &perm, &nx.name)?);
    }
    nx.emit_out(
        ctx,
        Op::Concat(Concat {
            axis: ir_axis(&perm, axis),
        }),
        ids,
        perm,
    )
}

pub(crate) fn split(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>) -> Result<()> {
    nx.attrs
        .check_known("Split", &["axis", "split", "num_outputs"])?;
    let x = nx.req(ctx, 0)?;
    let s = ctx.onnx_shape(&x);
    let axis = axis_attr(nx, 0, s.len())?;
    let outs = nx.node.output.len();
    let dim = s[axis];
    let sizes: Vec<usize> = match nx.attrs.ints("split")? {
        Some(v) => v.iter().map(|&d| d.max(0) as usize).collect(),
        None => match nx.const_input(ctx, 1, "split")? {
            Some(d) => d.to_i64_vec().iter().map(|&d| d.max(0) as usize).collect(),
            None => {
                let parts = nx
                    .attrs
                    .int("num_outputs")?
                    .map(|n| n as usize)
                    .unwrap_or(outs);
                if parts == 0 {
                    return Err(OnnxError::Invalid("Split has no outputs".into()));
                }
                let chunk = dim.div_ceil(parts);
                (0..parts)
                    .map(|i| chunk.min(dim.saturating_sub(i * chunk)))
                    .collect()
            }
        },
    };
    if sizes.len() != outs || sizes.iter().sum::<usize>() != dim {
        return Err(OnnxError::Invalid(format!(
            "split sizes {sizes:?} do not match {outs} outputs over axis length {dim}"
        )));
    }
    let names: Vec<String> = (0..outs).map(|i| nx.output(i).to_string()).collect();
    let refs: Vec<&str> = names
        .iter()
        .map(|n| {
            if n.is_empty() {
                "unused_split"
            } else {
                n.as_str()
            }
        })
        .collect();
    let op = Op::Split(Split {
        axis: ir_axis(&x.perm, axis),
        sizes,
    });
    let ids = ctx.emit(&nx.name, op, vec![x.id], &refs)?;
    for (i, id) in ids.into_iter().enumerate() {
        nx.alias(
            ctx,
            i,
            Slot {
                id,
                perm: x.perm.clone(),
            },
        );
    }
    Ok(())
}

pub(crate) fn slice(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>) -> Result<()> {
    nx.attrs.check_known("Slice", &["starts", "ends", "axes"])?;
    let x = nx.req(ctx, 0)?;
    let s = ctx.onnx_shape(&x);
    let rank = s.len();
    let get = |ctx: &mut Ctx<'_>, i: usize, name: &str| -> Result<Option<Vec<i64>>> {
        if ctx.opset < 10 {
            return nx.attrs.ints(name);
        }
        Ok(nx.const_input(ctx, i, name)?.map(|d| d.to_i64_vec()))
    };
    let starts =
        get(ctx, 1, "starts")?.ok_or_else(|| OnnxError::Invalid("starts is required".into()))?;
    let ends = get(ctx, 2, "ends")?.ok_or_else(|| OnnxError::Invalid("ends is required".into()))?;
    let axes = get(ctx, 3, "axes")?.unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps = if ctx.opset < 10 {
        None
    } else {
        nx.const_input(ctx, 4, "steps")?.map(|d| d.to_i64_vec())
    }
    .unwrap_or_else(|| vec![1; starts.len()]);
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return Err(OnnxError::Invalid(
            "starts, ends, axes and steps must have the same length".into(),
        ));
    }
    let mut per_axis: Vec<SliceAxis> = s
        .iter()
        .map(|&d| SliceAxis {
            start: 0,
            step: 1,
            len: d,
        })
        .collect();
    for i in 0..starts.len() {
        let a = norm_axis(axes[i], rank)
            .ok_or_else(|| OnnxError::Invalid(format!("axis {} out of range", axes[i])))?;
        per_axis[a] = Slice::axis_from_range(starts[i], ends[i], steps[i], s[a])
            .ok_or_else(|| OnnxError::Invalid("Slice step cannot be 0".into()))?;
    }
    let ir_axes = x.perm.iter().map(|&p| per_axis[p]).collect();
    nx.emit_out(
        ctx,
        Op::Slice(Slice { axes: ir_axes }),
        vec![x.id],
        x.perm.clone(),
    )
}

pub(crate) fn pad(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>) -> Result<()> {
    nx.attrs.check_known("Pad", &["mode", "pads", "value"])?;
    let x = nx.req(ctx, 0)?;
    let rank = x.perm.len();
    let mode = nx.attrs.string_or("mode", "constant")?;
    let (pads, value) = if ctx.opset < 11 {
        (
            nx.attrs
                .ints("pads")?
                .ok_or_else(|| OnnxError::Invalid("pads is required".into()))?,
            nx.attrs.float_or("value", 0.0)?,
        )
    } else {
        let p = nx
            .const_input(ctx, 1, "pads")?
            .ok_or_else(|| OnnxError::Invalid("pads is required".into()))?
            .to_i64_vec();
        let v = nx
            .const_input(ctx, 2, "constant_value")?
            .and_then(|d| d.to_f32_vec().first().copied())
            .unwrap_or(0.0);
        (p, v)
    };
    let axes: Vec<usize> = match nx.const_input(ctx, 3, "axes")? {
        Some(a) => a
            .to_i64_vec()
            .iter()
            .map(|&v| {
                norm_axis(v, rank)
                    .ok_or_else(|| OnnxError::Invalid(format!("axis {v} out of range")))
            })
            .collect::<Result<_>>()?,
        None => (0..rank).collect(),
    };
    if pads.len() != 2 * axes.len() {
        return Err(OnnxError::Invalid(format!(
            "pads {pads:?} must have 2 values per padded axis"
        )));
    }
    if pads.iter().any(|&p| p < 0) {
        return Err(OnnxError::Unsupported(format!(
            "ONNX Pad with negative pads {pads:?} is not supported"
        )));
    }
    let n = axes.len();
    let mut onnx_pads = vec![[0usize; 2]; rank];
    for (i, &a) in axes.iter().enumerate() {
        onnx_pads[a] = [pads[i] as usize, pads[i + n] as usize];
    }
    let mode = match mode.as_str() {
        "constant" => PadMode::Constant(value),
        "reflect" => PadMode::Reflect,
        "edge" => PadMode::Edge,
        "wrap" => PadMode::Wrap,
        _ => {
            return Err(OnnxError::Unsupported(
                "ONNX Pad only supports constant, reflect, edge and wrap mode".into(),
            ))
        }
    };
    let ir_pads = x.perm.iter().map(|&p| onnx_pads[p]).collect();
    nx.emit_out(
        ctx,
        Op::Pad(Pad {
            pads: ir_pads,
            mode,
        }),
        vec![x.id],
        x.perm.clone(),
    )
}

pub(crate) fn gather(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>) -> Result<()> {
    nx.attrs.check_known("Gather", &["axis"])?;
    let x = nx.req(ctx, 0)?;
    let idx = nx.req(ctx, 1)?;
    let rank = x.perm.len();
    let axis = axis_attr(nx, 0, rank)?;
    let idx_id = ctx.canonical(&idx, &nx.name)?;
    let idx_rank = idx.perm.len();
    match idx_rank {
        // Keeps the rank: the layout survives with the axis remapped.
        1 => {
            let op = Op::Gather(Gather {
                axis: ir_axis(&x.perm, axis),
            });
            nx.emit_out(ctx, op, vec![x.id, idx_id], x.perm.clone())
        }
        // Scalar index: the axis disappears.
        0 => {
            let op = Op::Gather(Gather {
                axis: ir_axis(&x.perm, axis),
            });
            nx.emit_out(ctx, op, vec![x.id, idx_id], remove_axes(&x.perm, &[axis]))
        }
        _ => {
            let xin = ctx.canonical(&x, &nx.name)?;
            let out_rank = rank - 1 + idx_rank;
            nx.emit_out(
                ctx,
                Op::Gather(Gather { axis }),
                vec![xin, idx_id],
                identity(out_rank),
            )
        }
    }
}

pub(crate) fn expand(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>) -> Result<()> {
    nx.attrs.check_known("Expand", &[])?;
    let x = nx.req(ctx, 0)?;
    let target = nx
        .const_input(ctx, 1, "shape")
        .map_err(|_| {
            OnnxError::Unsupported("ONNX EXPAND shape input only supports const tensor".into())
        })?
        .ok_or_else(|| OnnxError::Invalid("shape is required".into()))?
        .to_i64_vec();
    let shape: Vec<usize> = target
        .iter()
        .map(|&d| {
            usize::try_from(d)
                .map_err(|_| OnnxError::Invalid(format!("negative dimension in {target:?}")))
        })
        .collect::<Result<_>>()?;
    let rank = shape.len().max(x.perm.len());
    let perm = if x.perm.len() == rank {
        x.perm.clone()
    } else {
        identity(rank)
    };
    let xin = aligned(ctx, nx, &x, rank, &perm)?;
    let mut full = vec![1; rank - shape.len()];
    full.extend(&shape);
    let ir_shape = perm.iter().map(|&p| full[p]).collect();
    nx.emit_out(ctx, Op::Expand(Expand { shape: ir_shape }), vec![xin], perm)
}

pub(crate) fn tile(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>) -> Result<()> {
    nx.attrs.check_known("Tile", &[])?;
    let x = nx.req(ctx, 0)?;
    let reps = nx
        .const_input(ctx, 1, "repeats")?
        .ok_or_else(|| OnnxError::Invalid("repeats is required".into()))?
        .to_i64_vec();
    if reps.len() != x.perm.len() || reps.iter().any(|&r| r < 0) {
        return Err(OnnxError::Invalid(format!(
            "repeats {reps:?} do not match rank {}",
            x.perm.len()
        )));
    }
    let repeats = x.perm.iter().map(|&p| reps[p] as usize).collect();
    nx.emit_out(ctx, Op::Tile(Tile { repeats }), vec![x.id], x.perm.clone())
}

fn block(nx: &NodeCx<'_>) -> Result<usize> {
    let b = nx
        .attrs
        .int("blocksize")?
        .ok_or_else(|| OnnxError::Invalid("blocksize is required".into()))?;
    usize::try_from(b)
        .ok()
        .filter(|&b| b >= 1)
        .ok_or_else(|| OnnxError::Invalid(format!("blocksize {b} must be positive")))
}

pub(crate) fn depth_to_space(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>) -> Result<()> {
    nx.attrs
        .check_known("DepthToSpace", &["blocksize", "mode"])?;
    let x = nx.req(ctx, 0)?;
    let s = ctx.onnx_shape(&x);
    let b = block(nx)?;
    if s.len() != 4 || !s[1].is_multiple_of(b * b) {
        return Err(OnnxError::Unsupported(
            "Exception: ONNX DepthToSpace c must be divisible by blocksize^2".into(),
        ));
    }
    let mode = match nx.attrs.string_or("mode", "DCR")?.as_str() {
        "DCR" => DepthToSpaceMode::Dcr,
        "CRD" => DepthToSpaceMode::Crd,
        m => {
            return Err(OnnxError::Unsupported(format!(
                "ONNX DepthToSpace mode {m} is not supported"
            )))
        }
    };
    let xin = ctx.in_layout(&x, &NHWC_PERM, &nx.name)?;
    nx.emit_out(
        ctx,
        Op::DepthToSpace(DepthToSpace { block: b, mode }),
        vec![xin],
        NHWC_PERM.to_vec(),
    )
}

pub(crate) fn space_to_depth(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>) -> Result<()> {
    nx.attrs.check_known("SpaceToDepth", &["blocksize"])?;
    let x = nx.req(ctx, 0)?;
    if x.perm.len() != 4 {
        return Err(OnnxError::Unsupported(
            "ONNX SpaceToDepth only supports 4-D inputs".into(),
        ));
    }
    let b = block(nx)?;
    let xin = ctx.in_layout(&x, &NHWC_PERM, &nx.name)?;
    nx.emit_out(
        ctx,
        Op::SpaceToDepth(SpaceToDepth { block: b }),
        vec![xin],
        NHWC_PERM.to_vec(),
    )
}
