//! Conv and ConvTranspose.

use crate::context::{Ctx, NodeCx, Slot};
use crate::error::{OnnxError, Result};
use crate::layout::NHWC_PERM;
use ipukit_ir::{
    ops::{Conv2d, DepthwiseConv2d, FusedActivation, Padding2d, Reshape, TransposeConv2d},
    Op, TensorData, TensorId,
};

/// Strides, dilations and explicit padding of a 2-D windowed operator.
pub(crate) struct Window {
    pub strides: [usize; 2],
    pub dilations: [usize; 2],
    pub padding: Padding2d,
}

fn two(v: Option<Vec<i64>>, default: usize, what: &str) -> Result<[usize; 2]> {
    match v {
        None => Ok([default; 2]),
        Some(v) if v.len() == 2 && v.iter().all(|&x| x >= 1) => Ok([v[0] as usize, v[1] as usize]),
        Some(v) => Err(OnnxError::Unsupported(format!(
            "{what} {v:?} is not supported (need two positive values)"
        ))),
    }
}

/// Reads `strides`, `dilations`, `pads`, `auto_pad` for an `in_hw` input and `kernel`.
pub(crate) fn window(nx: &NodeCx<'_>, in_hw: [usize; 2], kernel: [usize; 2]) -> Result<Window> {
    let strides = two(nx.attrs.ints("strides")?, 1, "strides")?;
    let dilations = two(nx.attrs.ints("dilations")?, 1, "dilations")?;
    let auto_pad = nx.attrs.string_or("auto_pad", "NOTSET")?;
    let padding = match auto_pad.as_str() {
        "NOTSET" => match nx.attrs.ints("pads")? {
            None => Padding2d::ZERO,
            Some(p) if p.len() == 4 && p.iter().all(|&x| x >= 0) => Padding2d {
                top: p[0] as usize,
                left: p[1] as usize,
                bottom: p[2] as usize,
                right: p[3] as usize,
            },
            Some(p) => {
                return Err(OnnxError::Unsupported(format!(
                    "pads {p:?} are not supported (need four non-negative values)"
                )))
            }
        },
        "VALID" => Padding2d::ZERO,
        "SAME_UPPER" | "SAME_LOWER" => {
            let mut before = [0; 2];
            let mut after = [0; 2];
            for i in 0..2 {
                let out = in_hw[i].div_ceil(strides[i]);
                let span = (kernel[i] - 1) * dilations[i] + 1;
                let total = ((out - 1) * strides[i] + span).saturating_sub(in_hw[i]);
                let small = total / 2;
                let (b, a) = if auto_pad == "SAME_UPPER" {
                    (small, total - small)
                } else {
                    (total - small, small)
                };
                before[i] = b;
                after[i] = a;
            }
            Padding2d {
                top: before[0],
                left: before[1],
                bottom: after[0],
                right: after[1],
            }
        }
        other => {
            return Err(OnnxError::Unsupported(format!(
                "auto_pad {other} is not supported"
            )))
        }
    };
    Ok(Window {
        strides,
        dilations,
        padding,
    })
}

/// Checks `kernel_shape` against the weight's spatial size.
fn check_kernel(nx: &NodeCx<'_>, kernel: [usize; 2]) -> Result<()> {
    if let Some(k) = nx.attrs.ints("kernel_shape")? {
        if k.len() != 2 || k[0] as usize != kernel[0] || k[1] as usize != kernel[1] {
            return Err(OnnxError::Invalid(format!(
                "kernel_shape {k:?} does not match the weight's {kernel:?}"
            )));
        }
    }
    Ok(())
}

/// A 1-D operator runs as 2-D with H = 1: input `[N, C, L]` is viewed as `[N, C, 1, L]`.
pub(crate) struct Lifted {
    pub x: Slot,
    pub one_d: bool,
}

/// Lifts a rank-3 input to rank 4 (for 1-D conv/pool); rank 4 passes through.
pub(crate) fn lift_1d(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>, x: Slot, what: &str) -> Result<Lifted> {
    let s = ctx.onnx_shape(&x);
    match s.len() {
        4 => Ok(Lifted { x, one_d: false }),
        3 => {
            let x = super::reshape_to(
                ctx,
                nx,
                &x,
                vec![s[0], s[1], 1, s[2]],
                &format!("{}_as2d", nx.name),
            )?;
            Ok(Lifted { x, one_d: true })
        }
        _ => Err(OnnxError::Unsupported(format!(
            "ONNX {what} only supports 1-D and 2-D inputs (rank 3 or 4), got shape {s:?}"
        ))),
    }
}

/// Lifts 1-D attribute lists (`[a]` → `[1, a]`, pads `[b, e]` → `[0, b, 0, e]`).
pub(crate) fn lift_attr(
    v: Option<Vec<i64>>,
    one_d: bool,
    pads: bool,
    fill: i64,
) -> Option<Vec<i64>> {
    match (v, one_d) {
        (Some(v), true) if pads && v.len() == 2 => Some(vec![0, v[0], 0, v[1]]),
        (Some(v), true) if v.len() == 1 => Some(vec![fill, v[0]]),
        (v, _) => v,
    }
}

/// Binds ONNX output 0 to an NHWC result, undoing the 1-D lift if there was one.
pub(crate) fn bind_nhwc(
    ctx: &mut Ctx<'_>,
    nx: &NodeCx<'_>,
    id: TensorId,
    one_d: bool,
) -> Result<()> {
    bind_nhwc_at(ctx, nx, 0, id, one_d)
}

/// Binds ONNX output `i` to an NHWC result, undoing the 1-D lift if there was one.
pub(crate) fn bind_nhwc_at(
    ctx: &mut Ctx<'_>,
    nx: &NodeCx<'_>,
    i: usize,
    id: TensorId,
    one_d: bool,
) -> Result<()> {
    if !one_d {
        nx.alias(
            ctx,
            i,
            Slot {
                id,
                perm: NHWC_PERM.to_vec(),
            },
        );
        return Ok(());
    }
    // IR [N, 1, L, C] → [N, L, C], which holds ONNX [N, C, L] with perm [0, 2, 1].
    let s = ctx.graph.tensor(id).shape.clone();
    let out = ctx.emit1(
        &nx.name,
        Op::Reshape(Reshape {
            shape: vec![s[0], s[2], s[3]],
        }),
        vec![id],
        nx.output(i),
    )?;
    nx.alias(
        ctx,
        i,
        Slot {
            id: out,
            perm: vec![0, 2, 1],
        },
    );
    Ok(())
}

fn weight(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>, one_d: bool) -> Result<(Vec<usize>, Vec<f32>)> {
    let w = nx.req(ctx, 1)?;
    let mut shape = ctx.onnx_shape(&w);
    let data = ctx.const_data(&w)?.ok_or_else(|| {
        OnnxError::Unsupported(format!(
            "ONNX {} weight must be a constant tensor",
            nx.op_type
        ))
    })?;
    let data = data
        .as_f32()
        .ok_or_else(|| {
            OnnxError::Unsupported(format!(
                "ONNX {} weight of type {} is not supported",
                nx.op_type,
                data.dtype()
            ))
        })?
        .to_vec();
    if one_d && shape.len() == 3 {
        shape.insert(2, 1);
    }
    if shape.len() != 4 {
        return Err(OnnxError::Invalid(format!(
            "weight shape {shape:?} is not 4-D"
        )));
    }
    Ok((shape, data))
}

fn bias(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>, cout: usize) -> Result<Option<TensorId>> {
    let Some(b) = nx.input(ctx, 2)? else {
        return Ok(None);
    };
    let data = ctx.const_data(&b)?.ok_or_else(|| {
        OnnxError::Unsupported(format!(
            "ONNX {} bias must be a constant tensor",
            nx.op_type
        ))
    })?;
    if data.len() != cout {
        return Err(OnnxError::Invalid(format!(
            "bias has {} values, expected {cout}",
            data.len()
        )));
    }
    let name = format!("{}_bias", nx.name);
    Ok(Some(
        ctx.constant(&name, vec![cout], data.to_f32_vec().into())?
            .id,
    ))
}

/// Runs `window` on an attribute view lifted for 1-D operators.
pub(crate) fn lifted_window(
    nx: &NodeCx<'_>,
    one_d: bool,
    in_hw: [usize; 2],
    kernel: [usize; 2],
) -> Result<Window> {
    if !one_d {
        return window(nx, in_hw, kernel);
    }
    let mut node = nx.node.clone();
    for a in &mut node.attribute {
        let n = a.name.as_deref().unwrap_or("");
        let lifted = match n {
            "strides" | "dilations" | "kernel_shape" => {
                lift_attr(Some(a.ints.clone()), true, false, 1)
            }
            "pads" => lift_attr(Some(a.ints.clone()), true, true, 0),
            "output_padding" => lift_attr(Some(a.ints.clone()), true, false, 0),
            _ => None,
        };
        if let Some(v) = lifted {
            a.ints = v;
        }
    }
    let view = NodeCx::new(&node, 0);
    window(&view, in_hw, kernel)
}

pub(crate) fn conv(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>) -> Result<()> {
    nx.attrs.check_known(
        "Conv",
        &[
            "auto_pad",
            "dilations",
            "group",
            "kernel_shape",
            "pads",
            "strides",
        ],
    )?;
    let x = nx.req(ctx, 0)?;
    let Lifted { x, one_d } = lift_1d(ctx, nx, x, "Conv")?;
    let xs = ctx.onnx_shape(&x);
    let (ws, w) = weight(ctx, nx, one_d)?;
    let group = nx.attrs.int_or("group", 1)?;
    let (cout, cin_g, kh, kw) = (ws[0], ws[1], ws[2], ws[3]);
    let g = usize::try_from(group)
        .ok()
        .filter(|&g| g >= 1 && xs[1] == cin_g * g && cout % g == 0)
        .ok_or_else(|| {
            OnnxError::Invalid(format!(
                "group {group} with weight {ws:?} does not match input {xs:?}"
            ))
        })?;
    if !one_d {
        check_kernel(nx, [kh, kw])?;
    }
    let win = lifted_window(nx, one_d, [xs[2], xs[3]], [kh, kw])?;
    let xin = ctx.in_layout(&x, &NHWC_PERM, &nx.name)?;
    let b = bias(ctx, nx, cout)?;
    let depthwise = g > 1 && cin_g == 1;
    let (op, wshape, wdata) = if depthwise {
        // [Cout, 1, KH, KW] → [1, KH, KW, Cout]
        let mut d = vec![0f32; w.len()];
        for o in 0..cout {
            for k in 0..kh * kw {
                d[k * cout + o] = w[o * kh * kw + k];
            }
        }
        let op = Op::DepthwiseConv2d(DepthwiseConv2d {
            strides: win.strides,
            dilations: win.dilations,
            padding: win.padding,
            depth_multiplier: cout / g,
            activation: FusedActivation::None,
        });
        (op, vec![1, kh, kw, cout], d)
    } else {
        // OIHW → OHWI
        let mut d = vec![0f32; w.len()];
        for o in 0..cout {
            for i in 0..cin_g {
                for k in 0..kh * kw {
                    d[(o * kh * kw + k) * cin_g + i] = w[(o * cin_g + i) * kh * kw + k];
                }
            }
        }
        let op = Op::Conv2d(Conv2d {
            strides: win.strides,
            dilations: win.dilations,
            padding: win.padding,
            groups: g,
            activation: FusedActivation::None,
        });
        (op, vec![cout, kh, kw, cin_g], d)
    };
    let wid = ctx
        .constant(
            &format!("{}_weight", nx.name),
            wshape,
            TensorData::from(wdata),
        )?
        .id;
    let mut inputs = vec![xin, wid];
    inputs.extend(b);
    let out_name = if one_d {
        format!("{}_2d", nx.output(0))
    } else {
        nx.output(0).to_string()
    };
    let id = ctx.emit1(&nx.name, op, inputs, &out_name)?;
    bind_nhwc(ctx, nx, id, one_d)
}

pub(crate) fn conv_transpose(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>) -> Result<()> {
    nx.attrs.check_known(
        "ConvTranspose",
        &[
            "auto_pad",
            "dilations",
            "group",
            "kernel_shape",
            "output_padding",
            "output_shape",
            "pads",
            "strides",
        ],
    )?;
    let x = nx.req(ctx, 0)?;
    let Lifted { x, one_d } = lift_1d(ctx, nx, x, "ConvTranspose")?;
    let xs = ctx.onnx_shape(&x);
    let (ws, w) = weight(ctx, nx, one_d)?;
    let group = nx.attrs.int_or("group", 1)?;
    let (cin, cout_g, kh, kw) = (ws[0], ws[1], ws[2], ws[3]);
    let g = usize::try_from(group)
        .ok()
        .filter(|&g| g >= 1 && xs[1] == cin && cin % g == 0)
        .ok_or_else(|| {
            OnnxError::Invalid(format!(
                "group {group} with weight {ws:?} does not match input {xs:?}"
            ))
        })?;
    let cout = cout_g * g;
    let cin_g = cin / g;
    if !one_d {
        check_kernel(nx, [kh, kw])?;
    }
    let lift = |name: &str, fill: i64| -> Result<Option<Vec<i64>>> {
        Ok(lift_attr(nx.attrs.ints(name)?, one_d, false, fill))
    };
    let strides = two(lift("strides", 1)?, 1, "strides")?;
    let dilations = two(lift("dilations", 1)?, 1, "dilations")?;
    let mut output_padding = match lift("output_padding", 0)? {
        None => [0, 0],
        Some(v) if v.len() == 2 && v.iter().all(|&x| x >= 0) => [v[0] as usize, v[1] as usize],
        Some(v) => {
            return Err(OnnxError::Unsupported(format!(
                "output_padding {v:?} is not supported"
            )))
        }
    };
    let auto_pad = nx.attrs.string_or("auto_pad", "NOTSET")?;
    let full = |i: usize, op: usize| {
        (xs[2 + i] - 1) * strides[i] + ([kh, kw][i] - 1) * dilations[i] + 1 + op
    };
    let target: Option<[usize; 2]> = match (lift("output_shape", 1)?, auto_pad.as_str()) {
        (Some(os), _) => {
            let os = if os.len() > 2 {
                os[os.len() - 2..].to_vec()
            } else {
                os
            };
            if os.len() != 2 || os.iter().any(|&v| v < 1) {
                return Err(OnnxError::Unsupported(format!(
                    "output_shape {os:?} is not supported"
                )));
            }
            Some([os[0] as usize, os[1] as usize])
        }
        (None, "SAME_UPPER" | "SAME_LOWER") => Some([xs[2] * strides[0], xs[3] * strides[1]]),
        _ => None,
    };
    let padding = match target {
        Some(t) => {
            let mut pb = [0; 2];
            let mut pa = [0; 2];
            for i in 0..2 {
                let f = full(i, output_padding[i]);
                if f < t[i] {
                    // The requested output is larger than the full result: extend with output padding.
                    output_padding[i] += t[i] - f;
                    continue;
                }
                let total = f - t[i];
                let (b, a) = if auto_pad == "SAME_UPPER" {
                    (total / 2, total - total / 2)
                } else {
                    (total - total / 2, total / 2)
                };
                pb[i] = b;
                pa[i] = a;
            }
            Padding2d {
                top: pb[0],
                left: pb[1],
                bottom: pa[0],
                right: pa[1],
            }
        }
        None => match lift_attr(nx.attrs.ints("pads")?, one_d, true, 0) {
            None => Padding2d::ZERO,
            Some(p) if p.len() == 4 && p.iter().all(|&x| x >= 0) => Padding2d {
                top: p[0] as usize,
                left: p[1] as usize,
                bottom: p[2] as usize,
                right: p[3] as usize,
            },
            Some(p) => {
                return Err(OnnxError::Unsupported(format!(
                    "pads {p:?} are not supported"
                )))
            }
        },
    };
    // ONNX [Cin, Cout/g, KH, KW] → IR [Cout, KH, KW, Cin/g].
    let mut d = vec![0f32; w.len()];
    for o in 0..cout {
        let (gi, ol) = (o / cout_g, o % cout_g);
        for il in 0..cin_g {
            let ci = gi * cin_g + il;
            for k in 0..kh * kw {
                d[(o * kh * kw + k) * cin_g + il] = w[(ci * cout_g + ol) * kh * kw + k];
            }
        }
    }
    let xin = ctx.in_layout(&x, &NHWC_PERM, &nx.name)?;
    let b = bias(ctx, nx, cout)?;
    let wid = ctx
        .constant(
            &format!("{}_weight", nx.name),
            vec![cout, kh, kw, cin_g],
            d.into(),
        )?
        .id;
    let op = Op::TransposeConv2d(TransposeConv2d {
        strides,
        dilations,
        padding,
        output_padding,
        groups: g,
        activation: FusedActivation::None,
    });
    let mut inputs = vec![xin, wid];
    inputs.extend(b);
    let out_name = if one_d {
        format!("{}_2d", nx.output(0))
    } else {
        nx.output(0).to_string()
    };
    let id = ctx.emit1(&nx.name, op, inputs, &out_name)?;
    bind_nhwc(ctx, nx, id, one_d)
}
