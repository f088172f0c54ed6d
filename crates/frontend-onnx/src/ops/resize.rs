//! Resize and Upsample (spatial resizes of NCHW tensors, run NHWC).

use crate::context::{Ctx, NodeCx};
use crate::error::{OnnxError, Result};
use crate::layout::{norm_axis, NHWC_PERM};
use ipukit_ir::{
    ops::{CoordTransform, NearestMode, Resize, ResizeMode},
    Op,
};

/// Output size and coordinate scale along H and W.
struct Geometry {
    size: [usize; 2],
    scales: [f32; 2],
}

fn err(msg: &str, node: &str) -> OnnxError {
    OnnxError::Unsupported(format!("{msg}{node}"))
}

/// Checks that only H and W change and derives the output geometry from scales or sizes.
fn geometry(
    in_shape: &[usize],
    scales: Option<Vec<f32>>,
    sizes: Option<Vec<i64>>,
    node: &str,
) -> Result<Geometry> {
    if in_shape.len() != 4 {
        return Err(err(
            "Exception: ONNX Upsample only supports height and width resize:",
            node,
        ));
    }
    match (scales, sizes) {
        (Some(s), _) if s.len() == 4 => {
            if s[0] != 1.0 || s[1] != 1.0 {
                return Err(err(
                    "Exception: ONNX RESIZE scale tensor only supports height and width resize:",
                    node,
                ));
            }
            if s[2] <= 0.0 || s[3] <= 0.0 {
                return Err(OnnxError::Invalid(format!("scales {s:?} must be positive")));
            }
            let size = [
                (in_shape[2] as f32 * s[2]) as usize,
                (in_shape[3] as f32 * s[3]) as usize,
            ];
            if size.contains(&0) {
                return Err(OnnxError::Invalid(format!(
                    "scales {s:?} give an empty output"
                )));
            }
            Ok(Geometry {
                size,
                scales: [s[2], s[3]],
            })
        }
        (_, Some(z)) if z.len() == 4 => {
            if z[0] as usize != in_shape[0] || z[1] as usize != in_shape[1] {
                return Err(err(
                    "Exception: ONNX RESIZE scale tensor only supports height and width resize:",
                    node,
                ));
            }
            if z[2] < 1 || z[3] < 1 {
                return Err(OnnxError::Invalid(format!("sizes {z:?} must be positive")));
            }
            let size = [z[2] as usize, z[3] as usize];
            Ok(Geometry {
                size,
                scales: [
                    size[0] as f32 / in_shape[2] as f32,
                    size[1] as f32 / in_shape[3] as f32,
                ],
            })
        }
        (s, z) => Err(OnnxError::Invalid(format!(
            "Resize needs 4 scales or 4 sizes, got scales {s:?} sizes {z:?}"
        ))),
    }
}

/// `keep_aspect_ratio_policy`: one scale for H and W, the smallest (`not_larger`) or largest of
/// `sizes / input`, and the output rounded from it, as ONNX Runtime does.
fn keep_aspect_ratio(
    in_shape: &[usize],
    sizes: &[i64],
    not_larger: bool,
    node: &str,
) -> Result<Geometry> {
    if in_shape.len() != 4
        || sizes.len() != 4
        || sizes[0] as usize != in_shape[0]
        || sizes[1] as usize != in_shape[1]
    {
        return Err(err(
            "Exception: ONNX RESIZE scale tensor only supports height and width resize:",
            node,
        ));
    }
    let sh = sizes[2] as f32 / in_shape[2] as f32;
    let sw = sizes[3] as f32 / in_shape[3] as f32;
    let s = if not_larger { sh.min(sw) } else { sh.max(sw) };
    let size = [
        (s * in_shape[2] as f32).round() as usize,
        (s * in_shape[3] as f32).round() as usize,
    ];
    if size.contains(&0) {
        return Err(OnnxError::Invalid(format!(
            "sizes {sizes:?} give an empty output"
        )));
    }
    Ok(Geometry {
        size,
        scales: [s, s],
    })
}

fn emit(
    ctx: &mut Ctx<'_>,
    nx: &NodeCx<'_>,
    mode: ResizeMode,
    coord: CoordTransform,
    g: Geometry,
) -> Result<()> {
    let x = nx.req(ctx, 0)?;
    let xin = ctx.in_layout(&x, &NHWC_PERM, &nx.name)?;
    let op = Op::Resize(Resize {
        mode,
        coord,
        size: g.size,
        scales: g.scales,
    });
    nx.emit_out(ctx, op, vec![xin], NHWC_PERM.to_vec())
}

/// Opset ≤ 10 semantics (Upsample, Resize-10): asymmetric coordinates; nearest truncates when
/// enlarging and rounds up when shrinking, as ONNX Runtime does.
fn legacy(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>, mode: &str, scales: Vec<f32>) -> Result<()> {
    let x = nx.req(ctx, 0)?;
    let g = geometry(&ctx.onnx_shape(&x), Some(scales), None, &nx.name)?;
    let m = match mode {
        "nearest" => {
            let up = g.scales.map(|s| s >= 1.0);
            if up[0] != up[1] {
                return Err(OnnxError::Unsupported(format!(
                    "ONNX {} nearest that enlarges one axis and shrinks the other is not supported",
                    nx.op_type
                )));
            }
            ResizeMode::Nearest(if up[0] {
                NearestMode::Floor
            } else {
                NearestMode::Ceil
            })
        }
        "linear" | "bilinear" => ResizeMode::Linear,
        _ => {
            return Err(err(
                "Exception: ONNX RESIZE only supports nearest or linear:",
                &nx.name,
            ))
        }
    };
    emit(ctx, nx, m, CoordTransform::Asymmetric, g)
}

pub(crate) fn upsample(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>) -> Result<()> {
    nx.attrs.check_known(
        "Upsample",
        &["mode", "scales", "height_scale", "width_scale"],
    )?;
    let mode = nx.attrs.string_or("mode", "nearest")?;
    let scales = match nx.attrs.floats("scales")? {
        Some(s) => s,
        None => nx
            .const_input(ctx, 1, "scales")?
            .ok_or_else(|| OnnxError::Invalid("Upsample needs scales".into()))?
            .to_f32_vec(),
    };
    legacy(ctx, nx, &mode, scales)
}

pub(crate) fn resize(ctx: &mut Ctx<'_>, nx: &NodeCx<'_>) -> Result<()> {
    nx.attrs.check_known(
        "Resize",
        &[
            "mode",
            "coordinate_transformation_mode",
            "nearest_mode",
            "cubic_coeff_a",
            "exclude_outside",
            "extrapolation_value",
            "antialias",
            "axes",
            "keep_aspect_ratio_policy",
        ],
    )?;
    let node = nx.name.as_str();
    let mode = nx.attrs.string_or("mode", "nearest")?;
    if ctx.opset < 11 {
        let scales = nx
            .const_input(ctx, 1, "scales")?
            .ok_or_else(|| OnnxError::Invalid("Resize needs scales".into()))?
            .to_f32_vec();
        return legacy(ctx, nx, &mode, scales);
    }
    if nx.attrs.int_or("antialias", 0)? != 0 {
        return Err(err("Exception: resize antialias only supports 0", ""));
    }
    let exclude_outside = nx.attrs.int_or("exclude_outside", 0)? != 0;
    if exclude_outside && mode != "cubic" {
        return Err(err(
            "Exception: ONNX RESIZE unsupported 'exclude_outside' non-zero value:",
            node,
        ));
    }
    let policy = nx.attrs.string_or("keep_aspect_ratio_policy", "stretch")?;
    if !matches!(policy.as_str(), "stretch" | "not_larger" | "not_smaller") {
        return Err(err(
            "Exception: resize does not support keep_aspect_ratio_policy ",
            &policy,
        ));
    }
    let m = match mode.as_str() {
        "nearest" => ResizeMode::Nearest(match nx.attrs.string_or("nearest_mode", "round_prefer_floor")?.as_str() {
            "round_prefer_floor" => NearestMode::RoundPreferFloor,
            "round_prefer_ceil" => NearestMode::RoundPreferCeil,
            "floor" => NearestMode::Floor,
            "ceil" => NearestMode::Ceil,
            _ => return Err(err("Exception: ONNX RESIZE only supports 'nearest_mode': round_prefer_floor/floor/round_prefer_ceil:", node)),
        }),
        "linear" => ResizeMode::Linear,
        "cubic" => ResizeMode::Cubic {
            coeff_a: nx.attrs.float_or("cubic_coeff_a", -0.75)?,
            exclude_outside,
        },
        _ => return Err(err("Exception: ONNX RESIZE only supports nearest, linear or cubic:", node)),
    };
    let coord = match nx.attrs.string_or("coordinate_transformation_mode", "half_pixel")?.as_str() {
        "half_pixel" => CoordTransform::HalfPixel,
        "pytorch_half_pixel" => CoordTransform::PytorchHalfPixel,
        "align_corners" => CoordTransform::AlignCorners,
        "asymmetric" => CoordTransform::Asymmetric,
        "half_pixel_symmetric" => CoordTransform::HalfPixelSymmetric,
        _ => return Err(err("Exception: ONNX RESIZE only supports 'coordinate_transformation_mode': align_corners/asymmetric/half_pixel/pytorch_half_pixel/half_pixel_symmetric:", node)),
    };
    let x = nx.req(ctx, 0)?;
    let shape = ctx.onnx_shape(&x);
    let rank = shape.len();
    let mut scales = nx
        .const_input(ctx, 2, "scales")?
        .map(|d| d.to_f32_vec())
        .filter(|s| !s.is_empty());
    let mut sizes = nx
        .const_input(ctx, 3, "sizes")?
        .map(|d| d.to_i64_vec())
        .filter(|s| !s.is_empty());
    // Opset 18 `axes`: scales/sizes only for the listed axes; expand them to every axis.
    if let Some(axes) = nx.attrs.ints("axes")? {
        let axes: Vec<usize> = axes
            .iter()
            .map(|&a| {
                norm_axis(a, rank)
                    .ok_or_else(|| OnnxError::Invalid(format!("axis {a} out of range")))
            })
            .collect::<Result<_>>()?;
        if let Some(s) = scales.take() {
            let mut full = vec![1.0; rank];
            for (a, v) in axes.iter().zip(s) {
                full[*a] = v;
            }
            scales = Some(full);
        }
        if let Some(z) = sizes.take() {
            let mut full: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
            for (a, v) in axes.iter().zip(z) {
                full[*a] = v;
            }
            sizes = Some(full);
        }
    }
    let g = if policy != "stretch" {
        let z = sizes
            .ok_or_else(|| OnnxError::Invalid("keep_aspect_ratio_policy needs sizes".into()))?;
        keep_aspect_ratio(&shape, &z, policy == "not_larger", node)?
    } else {
        geometry(
            &shape,
            if sizes.is_some() { None } else { scales },
            sizes,
            node,
        )?
    };
    emit(ctx, nx, m, coord, g)
}
