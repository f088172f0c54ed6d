//! Fixed-point operators: the integer computations of `docs/fixed-point.md`, with every
//! multiplier, shift, zero point and table the calibrator chose stored in the operator, so a
//! fixed model fully defines its arithmetic.
//!
//! Data-movement operators (Reshape, Transpose, Concat, …) and MaxPool are shared with float
//! graphs: they work on any element type.

use super::{
    check_axis, Conv2d, DepthwiseConv2d, FusedActivation, Pool2d, PoolKind, Reduce, ReduceOp,
    Resize, TransposeConv2d,
};
use crate::{error::invalid, DType, Result};

/// A multiplier `multiplier · 2^-shift` (`docs/fixed-point.md` §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Requant {
    /// Integer multiplier, `0 ≤ multiplier < 2^31`.
    pub multiplier: i32,
    /// Right shift, `0 ≤ shift ≤ 62`.
    pub shift: u32,
}

impl Requant {
    /// The identity multiplier `2^30 · 2^-30`.
    pub const IDENTITY: Requant = Requant {
        multiplier: 1 << 30,
        shift: 30,
    };

    /// The multiplier closest to `ratio` (`docs/fixed-point.md` §2); `None` when `ratio` is
    /// negative, not finite, or at least 2^31.
    pub fn from_ratio(ratio: f64) -> Option<Requant> {
        if !ratio.is_finite() || ratio < 0.0 {
            return None;
        }
        if ratio == 0.0 {
            return Some(Requant {
                multiplier: 0,
                shift: 0,
            });
        }
        let (f, mut e) = frexp(ratio);
        let mut m = (f * (1u64 << 31) as f64).round() as i64;
        if m == 1i64 << 31 {
            m = 1 << 30;
            e += 1;
        }
        let mut n = 31 - e;
        if n < 0 {
            return None;
        }
        if n > 62 {
            let drop = (n - 62) as u32;
            m = if drop >= 63 {
                0
            } else {
                (m + (1i64 << (drop - 1))) >> drop
            };
            n = 62;
        }
        Some(Requant {
            multiplier: m as i32,
            shift: n as u32,
        })
    }

    /// The real number this multiplier stands for.
    pub fn ratio(self) -> f64 {
        self.multiplier as f64 / (self.shift as f64).exp2()
    }

    /// True when the fields are in range.
    pub fn is_valid(self) -> bool {
        self.multiplier >= 0 && self.shift <= 62
    }
}

/// `x = f · 2^e` with `0.5 ≤ f < 1` for finite positive `x`.
fn frexp(x: f64) -> (f64, i32) {
    let bits = x.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32;
    if exp == 0 {
        // Subnormal: scale up first.
        let (f, e) = frexp(x * (1u64 << 54) as f64);
        return (f, e - 54);
    }
    let f = f64::from_bits((bits & !(0x7ffu64 << 52)) | (1022u64 << 52));
    (f, exp - 1022)
}

/// Output zero point and saturation bounds of a fixed-point operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OutRange {
    /// Output zero point.
    pub zero_point: i32,
    /// Smallest output value (the type's minimum or a fused activation's bound).
    pub min: i32,
    /// Largest output value.
    pub max: i32,
}

impl OutRange {
    /// The full range of `dtype` with zero point `zero_point`.
    pub fn full(dtype: DType, zero_point: i32) -> OutRange {
        let (min, max) = int_range(dtype).unwrap_or((i32::MIN, i32::MAX));
        OutRange {
            zero_point,
            min,
            max,
        }
    }
}

/// The value range of an integer activation type.
pub fn int_range(dtype: DType) -> Option<(i32, i32)> {
    Some(match dtype {
        DType::U8 => (0, 255),
        DType::I8 => (-128, 127),
        DType::I16 => (-32768, 32767),
        DType::U16 => (0, 65535),
        _ => return None,
    })
}

fn check_out_range(op: &str, dtype: DType, r: &OutRange) -> Result<()> {
    let (lo, hi) = int_range(dtype).ok_or_else(|| {
        invalid(
            op,
            format!("output type {dtype} is not an integer activation type"),
        )
    })?;
    if r.min < lo || r.max > hi || r.min > r.max {
        return Err(invalid(
            op,
            format!("output range [{}, {}] is outside {dtype}", r.min, r.max),
        ));
    }
    Ok(())
}

fn check_requants(op: &str, r: &[Requant], channels: usize) -> Result<()> {
    if r.len() != channels && r.len() != 1 {
        return Err(invalid(
            op,
            format!("{} multipliers for {channels} channels", r.len()),
        ));
    }
    if r.iter().any(|m| !m.is_valid()) {
        return Err(invalid(op, "multiplier out of range"));
    }
    Ok(())
}

/// Checks the element types of a quantized layer: 8-bit mode (UINT8 input, INT8 weight, INT32
/// bias) or 16-bit mode (INT16, INT16, INT64).
fn check_layer_types(op: &str, inputs: &[(DType, &[usize])]) -> Result<()> {
    let (x, w) = (inputs[0].0, inputs[1].0);
    let bias = inputs.get(2).map(|b| b.0);
    let ok = matches!(
        (x, w, bias),
        (DType::U8, DType::I8, None | Some(DType::I32))
            | (DType::I16, DType::I16, None | Some(DType::I64))
    );
    if !ok {
        return Err(invalid(
            op,
            format!("types ({x}, {w}, {bias:?}) are neither 8-bit mode (UINT8, INT8, INT32) nor 16-bit mode (INT16, INT16, INT64)"),
        ));
    }
    Ok(())
}

/// Parameters shared by the quantized layers.
#[derive(Debug, Clone, PartialEq)]
pub struct QLayer {
    /// Zero point of the input (0 in 16-bit mode).
    pub input_zero_point: i32,
    /// Per-output-channel multipliers (or one for all).
    pub requant: Vec<Requant>,
    /// Output type (INT16 or UINT8).
    pub out_dtype: DType,
    /// Output zero point and saturation.
    pub out: OutRange,
}

impl QLayer {
    fn check(&self, op: &str, inputs: &[(DType, &[usize])], cout: usize) -> Result<()> {
        check_layer_types(op, inputs)?;
        check_requants(op, &self.requant, cout)?;
        check_out_range(op, self.out_dtype, &self.out)
    }
}

/// Quantized 2-D convolution (inputs: x, weight OHWI, optional bias).
#[derive(Debug, Clone, PartialEq)]
pub struct QConv2d {
    /// Geometry; its `activation` must be `None` (activations live in `layer.out`).
    pub conv: Conv2d,
    /// Quantization parameters.
    pub layer: QLayer,
}

/// Quantized depthwise convolution (inputs: x, weight 1HWC, optional bias).
#[derive(Debug, Clone, PartialEq)]
pub struct QDepthwiseConv2d {
    /// Geometry.
    pub conv: DepthwiseConv2d,
    /// Quantization parameters.
    pub layer: QLayer,
}

/// Quantized transposed convolution (inputs: x, weight OHWI, optional bias).
#[derive(Debug, Clone, PartialEq)]
pub struct QTransposeConv2d {
    /// Geometry.
    pub conv: TransposeConv2d,
    /// Quantization parameters.
    pub layer: QLayer,
}

/// Quantized fully-connected layer (inputs: x, weight `[N, K]`, optional bias).
#[derive(Debug, Clone, PartialEq)]
pub struct QFullyConnected {
    /// Quantization parameters.
    pub layer: QLayer,
}

fn with_dtype(mut v: Vec<(DType, Vec<usize>)>, dt: DType) -> Vec<(DType, Vec<usize>)> {
    for o in &mut v {
        o.0 = dt;
    }
    v
}

fn no_activation(op: &str, a: FusedActivation) -> Result<()> {
    if a != FusedActivation::None {
        return Err(invalid(
            op,
            "fused activations are expressed by the output range",
        ));
    }
    Ok(())
}

impl QConv2d {
    pub(crate) fn infer(&self, inputs: &[(DType, &[usize])]) -> Result<Vec<(DType, Vec<usize>)>> {
        no_activation("QConv2d", self.conv.activation)?;
        let cout = inputs[1].1.first().copied().unwrap_or(0);
        self.layer.check("QConv2d", inputs, cout)?;
        let f: Vec<(DType, &[usize])> = inputs.iter().map(|(_, s)| (DType::F32, *s)).collect();
        Ok(with_dtype(self.conv.infer(&f)?, self.layer.out_dtype))
    }
}

impl QDepthwiseConv2d {
    pub(crate) fn infer(&self, inputs: &[(DType, &[usize])]) -> Result<Vec<(DType, Vec<usize>)>> {
        no_activation("QDepthwiseConv2d", self.conv.activation)?;
        let cout = inputs[1].1.get(3).copied().unwrap_or(0);
        self.layer.check("QDepthwiseConv2d", inputs, cout)?;
        let f: Vec<(DType, &[usize])> = inputs.iter().map(|(_, s)| (DType::F32, *s)).collect();
        Ok(with_dtype(self.conv.infer(&f)?, self.layer.out_dtype))
    }
}

impl QTransposeConv2d {
    pub(crate) fn infer(&self, inputs: &[(DType, &[usize])]) -> Result<Vec<(DType, Vec<usize>)>> {
        no_activation("QTransposeConv2d", self.conv.activation)?;
        self.layer.check(
            "QTransposeConv2d",
            inputs,
            inputs[1].1.first().copied().unwrap_or(0),
        )?;
        let f: Vec<(DType, &[usize])> = inputs.iter().map(|(_, s)| (DType::F32, *s)).collect();
        Ok(with_dtype(self.conv.infer(&f)?, self.layer.out_dtype))
    }
}

impl QFullyConnected {
    pub(crate) fn infer(&self, inputs: &[(DType, &[usize])]) -> Result<Vec<(DType, Vec<usize>)>> {
        let n = inputs[1].1.first().copied().unwrap_or(0);
        self.layer.check("QFullyConnected", inputs, n)?;
        let f: Vec<(DType, &[usize])> = inputs.iter().map(|(_, s)| (DType::F32, *s)).collect();
        let fc = super::FullyConnected::default();
        Ok(with_dtype(fc.infer(&f)?, self.layer.out_dtype))
    }
}

/// Quantized matrix product of two INT16 activations (`docs/fixed-point.md` §3 with INT64
/// accumulation and one multiplier).
#[derive(Debug, Clone, PartialEq)]
pub struct QMatMul {
    /// Multiplier of `s_a · s_b / s_y`.
    pub requant: Requant,
    /// Output saturation (INT16).
    pub out: OutRange,
}

impl QMatMul {
    pub(crate) fn infer(&self, inputs: &[(DType, &[usize])]) -> Result<Vec<(DType, Vec<usize>)>> {
        if inputs.iter().any(|(d, _)| *d != DType::I16) {
            return Err(invalid("QMatMul", "inputs must be INT16"));
        }
        check_out_range("QMatMul", DType::I16, &self.out)?;
        let f: Vec<(DType, &[usize])> = inputs.iter().map(|(_, s)| (DType::F32, *s)).collect();
        Ok(with_dtype(super::MatMul::default().infer(&f)?, DType::I16))
    }
}

/// Element-wise operation of two INT16 tensors (`docs/fixed-point.md` §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QBinaryKind {
    /// `rshift_round(a·m_a + b·m_b, n)`.
    Add {
        /// Multiplier of `a`.
        ma: i32,
        /// Multiplier of `b`.
        mb: i32,
        /// Common shift.
        shift: u32,
    },
    /// `rshift_round(a·m_a − b·m_b, n)`.
    Sub {
        /// Multiplier of `a`.
        ma: i32,
        /// Multiplier of `b`.
        mb: i32,
        /// Common shift.
        shift: u32,
    },
    /// `rshift_round(max(a·m_a, b·m_b), n)`.
    Max {
        /// Multiplier of `a`.
        ma: i32,
        /// Multiplier of `b`.
        mb: i32,
        /// Common shift.
        shift: u32,
    },
    /// `rshift_round(min(a·m_a, b·m_b), n)`.
    Min {
        /// Multiplier of `a`.
        ma: i32,
        /// Multiplier of `b`.
        mb: i32,
        /// Common shift.
        shift: u32,
    },
    /// `requant(a·b, m)`.
    Mul(Requant),
    /// `requant(div_round(a·2^15, b), m)`.
    Div(Requant),
}

/// Quantized element-wise binary operation with numpy broadcasting.
#[derive(Debug, Clone, PartialEq)]
pub struct QBinary {
    /// Operation and multipliers.
    pub kind: QBinaryKind,
    /// Output saturation (INT16).
    pub out: OutRange,
}

impl QBinary {
    pub(crate) fn infer(&self, inputs: &[(DType, &[usize])]) -> Result<Vec<(DType, Vec<usize>)>> {
        if inputs.iter().any(|(d, _)| *d != DType::I16) {
            return Err(invalid("QBinary", "inputs must be INT16"));
        }
        check_out_range("QBinary", DType::I16, &self.out)?;
        let s = super::broadcast_shapes(inputs[0].1, inputs[1].1).ok_or_else(|| {
            invalid(
                "QBinary",
                format!(
                    "shapes {:?} and {:?} do not broadcast",
                    inputs[0].1, inputs[1].1
                ),
            )
        })?;
        Ok(vec![(DType::I16, s)])
    }
}

/// Rescale with separate multipliers for non-negative and negative inputs (`docs/fixed-point.md`
/// §4): changes scale, zero point or type; implements Relu, Clip, LeakyRelu and PRelu.
#[derive(Debug, Clone, PartialEq)]
pub struct QRescale {
    /// Input zero point.
    pub input_zero_point: i32,
    /// Multipliers for `x − z ≥ 0`, per channel of the last axis (or one).
    pub positive: Vec<Requant>,
    /// Multipliers for `x − z < 0`, like `positive`.
    pub negative: Vec<Requant>,
    /// Output type (INT16 or UINT8).
    pub out_dtype: DType,
    /// Output zero point and saturation.
    pub out: OutRange,
}

impl QRescale {
    pub(crate) fn infer(&self, inputs: &[(DType, &[usize])]) -> Result<Vec<(DType, Vec<usize>)>> {
        let (dt, x) = inputs[0];
        if int_range(dt).is_none() {
            return Err(invalid(
                "QRescale",
                format!("input type {dt} is not an integer activation type"),
            ));
        }
        let c = x.last().copied().unwrap_or(1);
        check_requants("QRescale", &self.positive, c)?;
        check_requants("QRescale", &self.negative, c)?;
        check_out_range("QRescale", self.out_dtype, &self.out)?;
        Ok(vec![(self.out_dtype, x.to_vec())])
    }
}

/// Table lookup with linear interpolation (`docs/fixed-point.md` §5): INT16 → INT16.
#[derive(Debug, Clone, PartialEq)]
pub struct QLut {
    /// 1025 entries at input breakpoints `64k − 32768`.
    pub table: Vec<i16>,
}

/// Number of entries of a [`QLut`] table.
pub const LUT_ENTRIES: usize = 1025;

impl QLut {
    pub(crate) fn infer(&self, inputs: &[(DType, &[usize])]) -> Result<Vec<(DType, Vec<usize>)>> {
        if inputs[0].0 != DType::I16 || self.table.len() != LUT_ENTRIES {
            return Err(invalid(
                "QLut",
                format!("needs an INT16 input and {LUT_ENTRIES} table entries"),
            ));
        }
        Ok(vec![(DType::I16, inputs[0].1.to_vec())])
    }
}

/// Softmax of an INT16 tensor along `axis` (`docs/fixed-point.md` §6); output scale 1/32767.
#[derive(Debug, Clone, PartialEq)]
pub struct QSoftmax {
    /// Normalised axis.
    pub axis: usize,
    /// 1025 entries `round(2^15 · exp(s · (64k − 65536)))`.
    pub exp_table: Vec<i32>,
}

impl QSoftmax {
    pub(crate) fn infer(&self, inputs: &[(DType, &[usize])]) -> Result<Vec<(DType, Vec<usize>)>> {
        let (dt, x) = inputs[0];
        check_axis("QSoftmax", self.axis, x.len())?;
        if dt != DType::I16 || self.exp_table.len() != LUT_ENTRIES {
            return Err(invalid(
                "QSoftmax",
                format!("needs an INT16 input and {LUT_ENTRIES} table entries"),
            ));
        }
        Ok(vec![(DType::I16, x.to_vec())])
    }
}

/// Quantized average pooling (`docs/fixed-point.md` §7). Max pooling uses [`Pool2d`] directly.
#[derive(Debug, Clone, PartialEq)]
pub struct QAvgPool2d {
    /// Geometry; `kind` must be average.
    pub pool: Pool2d,
    /// Input zero point.
    pub input_zero_point: i32,
    /// Multiplier of `s_in / s_out`.
    pub requant: Requant,
    /// Output type.
    pub out_dtype: DType,
    /// Output zero point and saturation.
    pub out: OutRange,
}

impl QAvgPool2d {
    pub(crate) fn infer(&self, inputs: &[(DType, &[usize])]) -> Result<Vec<(DType, Vec<usize>)>> {
        if !matches!(self.pool.kind, PoolKind::Average { .. }) {
            return Err(invalid("QAvgPool2d", "pool kind must be average"));
        }
        check_out_range("QAvgPool2d", self.out_dtype, &self.out)?;
        Ok(with_dtype(self.pool.infer(inputs)?, self.out_dtype))
    }
}

/// Quantized Mean or Sum reduction (`docs/fixed-point.md` §7); Max and Min use [`Reduce`].
#[derive(Debug, Clone, PartialEq)]
pub struct QReduce {
    /// Axes and kind (Mean or Sum).
    pub reduce: Reduce,
    /// Input zero point.
    pub input_zero_point: i32,
    /// Multiplier of `s_in / s_out`.
    pub requant: Requant,
    /// Output type.
    pub out_dtype: DType,
    /// Output zero point and saturation.
    pub out: OutRange,
}

impl QReduce {
    pub(crate) fn infer(&self, inputs: &[(DType, &[usize])]) -> Result<Vec<(DType, Vec<usize>)>> {
        if !matches!(self.reduce.op, ReduceOp::Mean | ReduceOp::Sum) {
            return Err(invalid(
                "QReduce",
                "only Mean and Sum are quantized reductions",
            ));
        }
        check_out_range("QReduce", self.out_dtype, &self.out)?;
        Ok(with_dtype(self.reduce.infer(inputs)?, self.out_dtype))
    }
}

/// Quantized bilinear resize (`docs/fixed-point.md` §7); nearest uses [`Resize`] directly.
#[derive(Debug, Clone, PartialEq)]
pub struct QResize {
    /// Geometry (mode must be linear).
    pub resize: Resize,
    /// Input zero point.
    pub input_zero_point: i32,
    /// Multiplier of `s_in / (s_out · 2^22)`.
    pub requant: Requant,
    /// Output type.
    pub out_dtype: DType,
    /// Output zero point and saturation.
    pub out: OutRange,
}

impl QResize {
    pub(crate) fn infer(&self, inputs: &[(DType, &[usize])]) -> Result<Vec<(DType, Vec<usize>)>> {
        check_out_range("QResize", self.out_dtype, &self.out)?;
        Ok(with_dtype(self.resize.infer(inputs)?, self.out_dtype))
    }
}

/// Float to integer at the model boundary (`docs/fixed-point.md` §9).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quantize {
    /// Scale.
    pub scale: f32,
    /// Zero point.
    pub zero_point: i32,
    /// Output type.
    pub out_dtype: DType,
}

impl Quantize {
    pub(crate) fn infer(&self, inputs: &[(DType, &[usize])]) -> Result<Vec<(DType, Vec<usize>)>> {
        if inputs[0].0 != DType::F32
            || int_range(self.out_dtype).is_none()
            || self.scale.is_nan()
            || self.scale <= 0.0
        {
            return Err(invalid(
                "Quantize",
                "needs a FLOAT32 input, a positive scale and an integer output type",
            ));
        }
        Ok(vec![(self.out_dtype, inputs[0].1.to_vec())])
    }
}

/// Integer to float at the model boundary (the seeds' Fix2Float).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dequantize {
    /// Scale.
    pub scale: f32,
    /// Zero point.
    pub zero_point: i32,
}

impl Dequantize {
    pub(crate) fn infer(&self, inputs: &[(DType, &[usize])]) -> Result<Vec<(DType, Vec<usize>)>> {
        if int_range(inputs[0].0).is_none() {
            return Err(invalid(
                "Dequantize",
                format!(
                    "input type {} is not an integer activation type",
                    inputs[0].0
                ),
            ));
        }
        Ok(vec![(DType::F32, inputs[0].1.to_vec())])
    }
}

/// Colour layout of the board's image input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageInput {
    /// Interleaved channels (RGB, BGR, RGBA, BGRA, GRAY): input `[N, H, W, C]`.
    Interleaved,
    /// YUV 4:2:0 semi-planar: input `[N, H·3/2, W, 1]`, converted with BT.601 to RGB
    /// (`to_gray`: Y only).
    Nv12 {
        /// Produce one gray channel (the Y plane) instead of RGB.
        to_gray: bool,
    },
}

/// The board's UINT8 image to the model's INT16 input (`docs/fixed-point.md` §9).
#[derive(Debug, Clone, PartialEq)]
pub struct InputNormalize {
    /// Image layout.
    pub image: ImageInput,
    /// For each output channel, the input (or converted RGB) channel it takes.
    pub source_channel: Vec<usize>,
    /// `round(256 · mean)` per output channel.
    pub mean_q: Vec<i32>,
    /// Multiplier of `1 / (256 · std · s_out)` per output channel.
    pub requant: Vec<Requant>,
}

impl InputNormalize {
    pub(crate) fn infer(&self, inputs: &[(DType, &[usize])]) -> Result<Vec<(DType, Vec<usize>)>> {
        let (dt, x) = inputs[0];
        let c = self.source_channel.len();
        if dt != DType::U8 || x.len() != 4 || self.mean_q.len() != c || self.requant.len() != c {
            return Err(invalid(
                "InputNormalize",
                "needs a 4-D UINT8 image and one mean and multiplier per output channel",
            ));
        }
        let (h, w, in_c) = match self.image {
            ImageInput::Interleaved => (x[1], x[2], x[3]),
            ImageInput::Nv12 { .. } => {
                if x[1] % 3 != 0 || x[3] != 1 {
                    return Err(invalid(
                        "InputNormalize",
                        format!("NV12 input {x:?} must be [N, H*3/2, W, 1]"),
                    ));
                }
                (x[1] / 3 * 2, x[2], 3)
            }
        };
        if self.source_channel.iter().any(|&s| s >= in_c) {
            return Err(invalid("InputNormalize", "source channel out of range"));
        }
        Ok(vec![(DType::I16, vec![x[0], h, w, c])])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipliers_round_trip_ratios() {
        for r in [
            1.0,
            0.5,
            0.75,
            1e-3,
            3.0,
            12345.678,
            1e-12,
            2.0f64.powi(-40),
        ] {
            let m = Requant::from_ratio(r).unwrap();
            assert!(m.is_valid());
            assert!(
                ((m.ratio() - r) / r).abs() < 1e-9 || m.shift == 62,
                "{r} -> {m:?}"
            );
        }
        assert_eq!(
            Requant::from_ratio(0.0),
            Some(Requant {
                multiplier: 0,
                shift: 0
            })
        );
        assert_eq!(Requant::from_ratio(-1.0), None);
        assert_eq!(Requant::from_ratio(3e9), None);
        assert_eq!(
            Requant::from_ratio(1.0),
            Some(Requant {
                multiplier: 1 << 30,
                shift: 30
            })
        );
        // f = 0.9999999999 rounds m up to 2^31: renormalised.
        let m = Requant::from_ratio(1.0 - 1e-12).unwrap();
        assert_eq!(
            m,
            Requant {
                multiplier: 1 << 30,
                shift: 30
            }
        );
    }

    #[test]
    fn frexp_matches_definition() {
        for x in [1.0, 0.3, 1234.5, 5e-310] {
            let (f, e) = frexp(x);
            assert!((0.5..1.0).contains(&f), "{x}");
            assert_eq!(f * (e as f64).exp2(), x);
        }
    }
}
