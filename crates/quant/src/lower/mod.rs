//! Float graph → fixed-point graph (`docs/fixed-point.md`).
//!
//! [`lower`] walks the float graph in order and emits, for each node, the fixed-point operators
//! that compute it: convolutions and fully-connected layers in the 8- or 16-bit mode the
//! [`LowerPlan`] chose, element-wise operations with rescaling multipliers, tables for smooth
//! functions, and unchanged data movement. Every float activation keeps its name in the fixed
//! graph and becomes a symmetric INT16 tensor whose scale comes from its calibrated range; the
//! UINT8 copies that 8-bit convolutions read are added where needed. The model boundary
//! follows `input_config.ini`: image inputs become UINT8 images normalised inside the model,
//! dequantized outputs get a Fix2Float.

mod params;

pub use params::{
    channel_abs_max, common_shift, int16_headroom, quantize_weights, Affine, ChannelWeights,
    HEADROOM_MIN_SAMPLES, INT16_HEADROOM, MIN_HEADROOM,
};

use crate::stats::weight_axis;
use crate::{QuantError, Result};
use ipukit_config::{InputConfig, InputFormat, InputSpec};
use ipukit_ir::ops::fixed::LUT_ENTRIES;
use ipukit_ir::ops::{
    BinaryOp, Dequantize, FusedActivation, ImageInput, InputNormalize, OutRange, PadMode, PoolKind,
    QAvgPool2d, QBinary, QBinaryKind, QConv2d, QDepthwiseConv2d, QFullyConnected, QLayer, QLut,
    QMatMul, QReduce, QRescale, QResize, QSoftmax, QTransposeConv2d, Quantize, ReduceOp, Requant,
    ResizeMode, UnaryOp,
};
use ipukit_ir::{DType, Graph, Node, Op, QuantParams, TensorData, TensorId};
use params::{multiplier, I16_MAX};
use std::collections::{HashMap, HashSet};

/// Calibrated `(min, max)` of float activations, by float tensor.
pub type Ranges = HashMap<TensorId, (f32, f32)>;

/// Arithmetic of a convolution or fully-connected layer (`docs/fixed-point.md` §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LayerBits {
    /// UINT8 input with a zero point, INT8 per-channel weights, INT32 bias.
    Int8,
    /// INT16 input and weights, INT64 bias.
    Int16,
}

/// Everything the lowering needs besides the float graph and the ini.
#[derive(Debug, Clone, Default)]
pub struct LowerPlan {
    /// Calibrated range of every float activation the graph computes or takes as input (the
    /// INT16 scale).
    pub ranges: Ranges,
    /// Ranges of the UINT8 copies 8-bit layers read, where they differ from `ranges` (clipped
    /// to the distribution).
    pub uint8_ranges: Ranges,
    /// Layers (by float node name) that run in 16-bit mode; the others run in 8-bit mode.
    pub int16_layers: HashSet<String>,
    /// Refined per-channel clipping magnitudes of the INT8 weights of 8-bit layers (by float
    /// weight tensor); absent weights, and every 16-bit layer's, are clipped at their
    /// channel's `max |w|`.
    pub weight_clip: HashMap<TensorId, Vec<f32>>,
    /// Headroom of each INT16 activation above its calibrated range (see
    /// [`int16_headroom`]); absent tensors get [`INT16_HEADROOM`].
    pub headroom: HashMap<TensorId, f32>,
}

impl LowerPlan {
    /// The precision of a layer.
    pub fn bits(&self, node: &str) -> LayerBits {
        if self.int16_layers.contains(node) {
            LayerBits::Int16
        } else {
            LayerBits::Int8
        }
    }
}

/// The weight-carrying layers of a float graph (Conv2d, DepthwiseConv2d, TransposeConv2d,
/// FullyConnected), by node index.
pub fn weight_layers(graph: &Graph) -> Vec<usize> {
    graph
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| weight_axis(&n.op).is_some())
        .map(|(i, _)| i)
        .collect()
}

/// Lowers `float` to a fixed-point graph.
pub fn lower(float: &Graph, config: &InputConfig, plan: &LowerPlan) -> Result<Graph> {
    let mut l = Lowering {
        f: float,
        plan,
        g: Graph::new(),
        map: HashMap::new(),
        u8_copies: HashMap::new(),
    };
    for &input in &float.inputs {
        l.input(input, config)?;
    }
    for node in &float.nodes {
        l.node(node)?;
    }
    for &out in &float.outputs {
        l.output(out, config)?;
    }
    l.g.validate()?;
    Ok(l.g)
}

/// A fixed tensor standing for a float tensor.
#[derive(Debug, Clone, Copy)]
struct Fixed {
    id: TensorId,
    q: Option<Affine>,
}

struct Lowering<'a> {
    f: &'a Graph,
    plan: &'a LowerPlan,
    g: Graph,
    /// Float tensor → its fixed tensor.
    map: HashMap<TensorId, Fixed>,
    /// Fixed INT16 tensor → its UINT8 copy for 8-bit layers.
    u8_copies: HashMap<TensorId, (TensorId, Affine)>,
}

fn err(node: &Node, message: impl Into<String>) -> QuantError {
    QuantError::Lower {
        node: node.name.clone(),
        op: node.op.name().to_string(),
        message: message.into(),
    }
}

fn quant_params(a: &Affine, range: Option<(f32, f32)>) -> QuantParams {
    let (min, max) = range.unwrap_or_else(|| a.range());
    QuantParams {
        scale: vec![a.scale],
        zero_point: vec![a.zero_point as i64],
        min: vec![min],
        max: vec![max],
        quantized_dimension: 0,
    }
}

impl Lowering<'_> {
    fn range(&self, node: &Node, t: TensorId) -> Result<(f32, f32)> {
        self.plan.ranges.get(&t).copied().ok_or_else(|| {
            err(
                node,
                format!(
                    "no calibration range for tensor '{}'",
                    self.f.tensor(t).name
                ),
            )
        })
    }

    fn set_quant(&mut self, id: TensorId, a: &Affine, range: Option<(f32, f32)>) {
        self.g.tensor_mut(id).quant = Some(quant_params(a, range));
    }

    /// Adds a node producing one output named `name`, with quantization `q`.
    fn emit(
        &mut self,
        node: &str,
        op: Op,
        inputs: Vec<TensorId>,
        name: &str,
        q: Option<(Affine, Option<(f32, f32)>)>,
    ) -> Result<TensorId> {
        let node = self.g.unique_node_name(node);
        let name = if self.g.find_tensor(name).is_some() {
            self.g.unique_tensor_name(name)
        } else {
            name.to_string()
        };
        let out = self.g.add_node(&node, op, inputs, &[&name])?[0];
        if let Some((a, r)) = q {
            self.set_quant(out, &a, r);
        }
        Ok(out)
    }

    fn const_f32<'b>(&'b self, node: &Node, t: TensorId) -> Result<&'b [f32]> {
        self.f
            .tensor(t)
            .data
            .as_ref()
            .and_then(|d| d.as_f32())
            .ok_or_else(|| {
                err(
                    node,
                    format!("'{}' must be a FLOAT32 constant", self.f.tensor(t).name),
                )
            })
    }

    /// An INT16 activation operand: the mapped tensor, or a constant quantized with its own
    /// symmetric scale.
    fn int16_operand(&mut self, node: &Node, t: TensorId) -> Result<(TensorId, Affine)> {
        if let Some(f) = self.map.get(&t) {
            return match f.q {
                Some(a) if a.dtype == DType::I16 => Ok((f.id, a)),
                _ => Err(err(
                    node,
                    format!(
                        "input '{}' is not an INT16 activation",
                        self.f.tensor(t).name
                    ),
                )),
            };
        }
        let data = self.const_f32(node, t)?;
        let (lo, hi) = data
            .iter()
            .fold((0f32, 0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        let a = Affine::int16(lo, hi);
        let q: Vec<i16> = data.iter().map(|&v| a.quantize(v) as i16).collect();
        let ft = self.f.tensor(t);
        let name = self.g.unique_tensor_name(&ft.name);
        let id = self
            .g
            .add_const(&name, ft.shape.clone(), TensorData::from(q))?;
        self.set_quant(id, &a, Some((lo, hi)));
        Ok((id, a))
    }

    /// The UINT8 copy of an INT16 activation for an 8-bit layer (one per tensor).
    fn uint8_copy(&mut self, node: &Node, t: TensorId) -> Result<(TensorId, Affine)> {
        let (x, a) = self.int16_operand(node, t)?;
        if let Some(&c) = self.u8_copies.get(&x) {
            return Ok(c);
        }
        let (lo, hi) = match (self.plan.uint8_ranges.get(&t), self.plan.ranges.get(&t)) {
            (Some(&r), _) | (None, Some(&r)) => r,
            (None, None) => a.range(),
        };
        let u = Affine::uint8(lo, hi);
        let m = multiplier(a.scale as f64 / u.scale as f64).map_err(|e| err(node, e))?;
        let name = format!("{}_uint8", self.g.tensor(x).name);
        let op = Op::QRescale(QRescale {
            input_zero_point: 0,
            positive: vec![m],
            negative: vec![m],
            out_dtype: DType::U8,
            out: OutRange::full(DType::U8, u.zero_point),
        });
        let id = self.emit(&name, op, vec![x], &name, Some((u, Some((lo, hi)))))?;
        self.u8_copies.insert(x, (id, u));
        Ok((id, u))
    }

    fn input(&mut self, t: TensorId, config: &InputConfig) -> Result<()> {
        let ft = self.f.tensor(t);
        let spec = config.input(&ft.name).ok_or_else(|| QuantError::Lower {
            node: ft.name.clone(),
            op: "input".into(),
            message: "the input is not in input_config.ini's `inputs`".into(),
        })?;
        let fake = Node {
            name: ft.name.clone(),
            op: Op::Identity,
            inputs: vec![],
            outputs: vec![t],
        };
        if ft.dtype != DType::F32 {
            // Integer inputs of a float model (indices, raw U8 data used as integers) pass
            // through unchanged.
            let id = self.g.add_input(&ft.name, ft.dtype, ft.shape.clone());
            self.map.insert(t, Fixed { id, q: None });
            return Ok(());
        }
        let range = self.range(&fake, t)?;
        let a = Affine::int16(range.0, range.1);
        let fixed = match spec.training_format {
            f if !f.is_rawdata() => self.image_input(&fake, t, spec, a, range)?,
            InputFormat::RawdataF32Nhwc if spec.quantize => {
                let x = self.g.add_input(&ft.name, DType::F32, ft.shape.clone());
                let op = Op::Quantize(Quantize {
                    scale: a.scale,
                    zero_point: 0,
                    out_dtype: DType::I16,
                });
                let name = format!("{}_int16", ft.name);
                self.emit(&name, op, vec![x], &name, Some((a, Some(range))))?
            }
            InputFormat::RawdataF32Nhwc | InputFormat::RawdataS16Nhwc => {
                let x = self.g.add_input(&ft.name, DType::I16, ft.shape.clone());
                self.set_quant(x, &a, Some(range));
                x
            }
            InputFormat::RawdataU8Nhwc => {
                // The float model read the bytes as numbers: scale 1, zero point 0.
                let x = self.g.add_input(&ft.name, DType::U8, ft.shape.clone());
                let u = Affine {
                    scale: 1.0,
                    zero_point: 0,
                    dtype: DType::U8,
                };
                self.set_quant(x, &u, None);
                let m = multiplier(1.0 / a.scale as f64).map_err(|e| err(&fake, e))?;
                let op = Op::QRescale(QRescale {
                    input_zero_point: 0,
                    positive: vec![m],
                    negative: vec![m],
                    out_dtype: DType::I16,
                    out: OutRange::full(DType::I16, 0),
                });
                let name = format!("{}_int16", ft.name);
                self.emit(&name, op, vec![x], &name, Some((a, Some(range))))?
            }
            other => {
                return Err(err(
                    &fake,
                    format!(
                        "{} inputs are not supported by the fixed-point lowering yet",
                        other.as_str()
                    ),
                ))
            }
        };
        self.map.insert(
            t,
            Fixed {
                id: fixed,
                q: Some(a),
            },
        );
        Ok(())
    }

    /// A UINT8 image input normalised in the model (§9).
    fn image_input(
        &mut self,
        fake: &Node,
        t: TensorId,
        spec: &InputSpec,
        a: Affine,
        range: (f32, f32),
    ) -> Result<TensorId> {
        let ft = self.f.tensor(t);
        let shape = &ft.shape;
        if shape.len() != 4 || spec.layout_or_default() != ipukit_config::Layout::Nhwc {
            return Err(err(
                fake,
                format!("image inputs must be 4-D NHWC for fixed models, got {shape:?} with input_layouts {}", spec.layout_or_default().as_str()),
            ));
        }
        let c = shape[3];
        let train = spec.training_format;
        let (image, board_shape) = match spec.input_format {
            InputFormat::Rgb | InputFormat::Bgr | InputFormat::Gray => {
                (ImageInput::Interleaved, shape.clone())
            }
            InputFormat::Rgba | InputFormat::Bgra => (
                ImageInput::Interleaved,
                vec![shape[0], shape[1], shape[2], 4],
            ),
            InputFormat::YuvNv12 => (
                ImageInput::Nv12 {
                    to_gray: train == InputFormat::Gray,
                },
                vec![shape[0], shape[1] * 3 / 2, shape[2], 1],
            ),
            other => {
                return Err(err(
                    fake,
                    format!("input_formats {} is not an image format", other.as_str()),
                ))
            }
        };
        // Channel order of what InputNormalize sees: the board format's (NV12 converts to RGB).
        let board_is_bgr = matches!(spec.input_format, InputFormat::Bgr | InputFormat::Bgra);
        let source_channel: Vec<usize> = match train {
            InputFormat::Gray => vec![0],
            InputFormat::Rgb | InputFormat::Bgr => {
                let train_is_bgr = train == InputFormat::Bgr;
                if board_is_bgr == train_is_bgr {
                    vec![0, 1, 2]
                } else {
                    vec![2, 1, 0]
                }
            }
            _ => unreachable_format(fake, train)?,
        };
        if source_channel.len() != c {
            return Err(err(
                fake,
                format!(
                    "training_input_formats {} has {} channels but the model input has {c}",
                    train.as_str(),
                    source_channel.len()
                ),
            ));
        }
        let mean = spec.channel_mean();
        let std = spec.channel_std();
        if mean.len() != c || std.len() != c {
            return Err(err(
                fake,
                format!(
                    "mean/std_value give {} and {} values for {c} channels",
                    mean.len(),
                    std.len()
                ),
            ));
        }
        let mut requant = Vec::with_capacity(c);
        for &s in &std {
            requant.push(
                multiplier(1.0 / (256.0 * s as f64 * a.scale as f64)).map_err(|e| err(fake, e))?,
            );
        }
        let mean_q = mean
            .iter()
            .map(|&m| (256.0 * m as f64).round() as i32)
            .collect();
        let x = self.g.add_input(&ft.name, DType::U8, board_shape);
        let op = Op::InputNormalize(InputNormalize {
            image,
            source_channel,
            mean_q,
            requant,
        });
        let name = format!("{}_int16", ft.name);
        self.emit(&name, op, vec![x], &name, Some((a, Some(range))))
    }

    fn output(&mut self, t: TensorId, config: &InputConfig) -> Result<()> {
        let ft = self.f.tensor(t);
        let fixed = self.map.get(&t).copied().ok_or_else(|| QuantError::Lower {
            node: ft.name.clone(),
            op: "output".into(),
            message: "the output was not computed".into(),
        })?;
        let dequantize = config.output(&ft.name).is_none_or(|o| o.dequantize);
        let id = match fixed.q {
            Some(a) if dequantize => {
                // The integer tensor keeps a suffixed name; the float output keeps the model's.
                let int_name = self.g.unique_tensor_name(&format!("{}_int16", ft.name));
                self.g.tensor_mut(fixed.id).name = int_name;
                let op = Op::Dequantize(Dequantize {
                    scale: a.scale,
                    zero_point: a.zero_point,
                });
                let name = ft.name.clone();
                self.emit(
                    &format!("{name}_dequantize"),
                    op,
                    vec![fixed.id],
                    &name,
                    None,
                )?
            }
            _ => fixed.id,
        };
        self.g.outputs.push(id);
        Ok(())
    }

    /// Maps the node's single output to a new fixed tensor with quantization from its range.
    fn out_affine(&self, node: &Node) -> Result<(Affine, (f32, f32))> {
        let t = node.outputs[0];
        let r = self.range(node, t)?;
        let h = self
            .plan
            .headroom
            .get(&t)
            .copied()
            .unwrap_or(INT16_HEADROOM);
        Ok((Affine::int16_activation(r.0, r.1, h), r))
    }

    fn finish(
        &mut self,
        node: &Node,
        op: Op,
        inputs: Vec<TensorId>,
        a: Affine,
        r: Option<(f32, f32)>,
    ) -> Result<()> {
        let name = self.f.tensor(node.outputs[0]).name.clone();
        let id = self.emit(&node.name, op, inputs, &name, Some((a, r)))?;
        self.map.insert(node.outputs[0], Fixed { id, q: Some(a) });
        Ok(())
    }

    fn node(&mut self, node: &Node) -> Result<()> {
        match &node.op {
            Op::Conv2d(_)
            | Op::DepthwiseConv2d(_)
            | Op::TransposeConv2d(_)
            | Op::FullyConnected(_) => self.layer(node),
            Op::MatMul(_) => self.matmul(node),
            Op::Binary(b) => self.binary(node, *b),
            Op::Unary(u) => self.unary(node, *u),
            Op::Softmax(s) => {
                let (x, a) = self.int16_operand(node, node.inputs[0])?;
                let out = Affine {
                    scale: 1.0 / I16_MAX,
                    zero_point: 0,
                    dtype: DType::I16,
                };
                let exp_table = (0..LUT_ENTRIES)
                    .map(|k| {
                        let d = a.scale as f64 * (64.0 * k as f64 - 65536.0);
                        (32768.0 * d.exp()).round() as i32
                    })
                    .collect();
                self.finish(
                    node,
                    Op::QSoftmax(QSoftmax {
                        axis: s.axis,
                        exp_table,
                    }),
                    vec![x],
                    out,
                    Some((0.0, 1.0)),
                )
            }
            Op::Pool2d(p) => {
                let (x, a) = self.int16_operand(node, node.inputs[0])?;
                match p.kind {
                    PoolKind::Max => self.finish(node, node.op.clone(), vec![x], a, None),
                    PoolKind::Average { .. } => {
                        let (o, r) = self.out_affine(node)?;
                        let requant = multiplier(a.scale as f64 / o.scale as f64)
                            .map_err(|e| err(node, e))?;
                        let op = Op::QAvgPool2d(QAvgPool2d {
                            pool: p.clone(),
                            input_zero_point: 0,
                            requant,
                            out_dtype: DType::I16,
                            out: OutRange::full(DType::I16, 0),
                        });
                        self.finish(node, op, vec![x], o, Some(r))
                    }
                }
            }
            Op::Reduce(r) => {
                let (x, a) = self.int16_operand(node, node.inputs[0])?;
                match r.op {
                    ReduceOp::Max | ReduceOp::Min => {
                        self.finish(node, node.op.clone(), vec![x], a, None)
                    }
                    ReduceOp::Mean | ReduceOp::Sum => {
                        let (o, range) = self.out_affine(node)?;
                        let requant = multiplier(a.scale as f64 / o.scale as f64)
                            .map_err(|e| err(node, e))?;
                        let op = Op::QReduce(QReduce {
                            reduce: r.clone(),
                            input_zero_point: 0,
                            requant,
                            out_dtype: DType::I16,
                            out: OutRange::full(DType::I16, 0),
                        });
                        self.finish(node, op, vec![x], o, Some(range))
                    }
                    other => Err(err(
                        node,
                        format!("{} has no fixed-point form yet", other.name()),
                    )),
                }
            }
            Op::ArgReduce(_) => {
                let (x, _) = self.int16_operand(node, node.inputs[0])?;
                let name = self.f.tensor(node.outputs[0]).name.clone();
                let id = self.emit(&node.name, node.op.clone(), vec![x], &name, None)?;
                self.map.insert(node.outputs[0], Fixed { id, q: None });
                Ok(())
            }
            Op::Resize(r) => {
                let (x, a) = self.int16_operand(node, node.inputs[0])?;
                match r.mode {
                    ResizeMode::Nearest(_) => self.finish(node, node.op.clone(), vec![x], a, None),
                    ResizeMode::Linear => {
                        let (o, range) = self.out_affine(node)?;
                        let requant = multiplier(a.scale as f64 / (o.scale as f64 * 4194304.0))
                            .map_err(|e| err(node, e))?;
                        let op = Op::QResize(QResize {
                            resize: r.clone(),
                            input_zero_point: 0,
                            requant,
                            out_dtype: DType::I16,
                            out: OutRange::full(DType::I16, 0),
                        });
                        self.finish(node, op, vec![x], o, Some(range))
                    }
                    ResizeMode::Cubic { .. } => Err(err(
                        node,
                        "cubic resize has no fixed-point form yet; use linear or nearest",
                    )),
                }
            }
            Op::Concat(_) => self.concat(node),
            Op::Pad(p) => {
                let (x, a) = self.int16_operand(node, node.inputs[0])?;
                let mut p = p.clone();
                if let PadMode::Constant(v) = p.mode {
                    // Shared data-movement ops take their fill value in the element type.
                    p.mode = PadMode::Constant(a.quantize(v) as f32);
                }
                self.finish(node, Op::Pad(p), vec![x], a, None)
            }
            Op::Split(_) => {
                let (x, a) = self.int16_operand(node, node.inputs[0])?;
                let names: Vec<String> = node
                    .outputs
                    .iter()
                    .map(|&o| self.f.tensor(o).name.clone())
                    .collect();
                let refs: Vec<&str> = names.iter().map(String::as_str).collect();
                let name = self.g.unique_node_name(&node.name);
                let outs = self.g.add_node(&name, node.op.clone(), vec![x], &refs)?;
                for (&fo, &o) in node.outputs.iter().zip(&outs) {
                    self.set_quant(o, &a, None);
                    self.map.insert(fo, Fixed { id: o, q: Some(a) });
                }
                Ok(())
            }
            Op::Reshape(_)
            | Op::Transpose(_)
            | Op::Slice(_)
            | Op::DepthToSpace(_)
            | Op::SpaceToDepth(_)
            | Op::Expand(_)
            | Op::Tile(_)
            | Op::Identity => {
                let (x, a) = self.int16_operand(node, node.inputs[0])?;
                self.finish(node, node.op.clone(), vec![x], a, None)
            }
            Op::Gather(_) => {
                let (x, a) = self.int16_operand(node, node.inputs[0])?;
                let idx = match self.map.get(&node.inputs[1]) {
                    Some(f) => f.id,
                    None => {
                        let ft = self.f.tensor(node.inputs[1]);
                        let data = ft.data.clone().ok_or_else(|| {
                            err(node, "indices are neither an activation nor a constant")
                        })?;
                        let name = self.g.unique_tensor_name(&ft.name);
                        self.g.add_const(&name, ft.shape.clone(), data)?
                    }
                };
                self.finish(node, node.op.clone(), vec![x, idx], a, None)
            }
            other => Err(err(
                node,
                format!("{} has no fixed-point form", other.name()),
            )),
        }
    }

    fn layer(&mut self, node: &Node) -> Result<()> {
        let bits = self.plan.bits(&node.name);
        let axis = weight_axis(&node.op).unwrap_or(0);
        let (x, xa) = match bits {
            LayerBits::Int8 => self.uint8_copy(node, node.inputs[0])?,
            LayerBits::Int16 => self.int16_operand(node, node.inputs[0])?,
        };
        let wt = self.f.tensor(node.inputs[1]);
        let w = self.const_f32(node, node.inputs[1])?;
        // The refined clipping magnitudes are chosen for INT8 weights (`weight_clip`): a
        // 16-bit layer keeps every weight (§1: `max |w_c| / 32767`), since clipping an
        // outlier trades 8-bit rounding noise that 16 bits do not have for a lasting error.
        let mut clip = match (bits, self.plan.weight_clip.get(&node.inputs[1])) {
            (LayerBits::Int8, Some(c)) if c.len() == wt.shape[axis] => c.clone(),
            _ => channel_abs_max(w, &wt.shape, axis),
        };
        let qmax = match bits {
            LayerBits::Int8 => 127.0,
            LayerBits::Int16 => I16_MAX,
        };
        // A channel whose weights are tiny next to its bias (a folded BatchNorm with a
        // vanishing scale) gets a wider weight scale, so that its INT32 bias stays within
        // 2^30: its weights, negligible, round to (almost) zero.
        if let (LayerBits::Int8, Some(&b)) = (bits, node.inputs.get(2)) {
            let bias = self.const_f32(node, b)?;
            for (c, &bv) in clip.iter_mut().zip(bias) {
                let floor =
                    (bv.abs() as f64 * qmax as f64 / (xa.scale as f64 * 1073741824.0)) as f32;
                if *c < floor {
                    *c = floor;
                }
            }
        }
        let cw = quantize_weights(w, &wt.shape, axis, &clip, qmax);
        let (o, range) = self.out_affine(node)?;
        let activation = match &node.op {
            Op::Conv2d(c) => c.activation,
            Op::DepthwiseConv2d(c) => c.activation,
            Op::TransposeConv2d(c) => c.activation,
            Op::FullyConnected(f) => f.activation,
            _ => FusedActivation::None,
        };
        let mut requant = Vec::with_capacity(cw.scales.len());
        for &sw in &cw.scales {
            requant.push(
                multiplier(xa.scale as f64 * sw as f64 / o.scale as f64)
                    .map_err(|e| err(node, e))?,
            );
        }
        let wname = self.g.unique_tensor_name(&wt.name);
        let wdata = match bits {
            LayerBits::Int8 => {
                TensorData::from(cw.values.iter().map(|&v| v as i8).collect::<Vec<_>>())
            }
            LayerBits::Int16 => {
                TensorData::from(cw.values.iter().map(|&v| v as i16).collect::<Vec<_>>())
            }
        };
        let wid = self.g.add_const(&wname, wt.shape.clone(), wdata)?;
        self.g.tensor_mut(wid).quant = Some(QuantParams {
            scale: cw.scales.clone(),
            zero_point: vec![0; cw.scales.len()],
            min: clip.iter().map(|c| -c).collect(),
            max: clip.clone(),
            quantized_dimension: axis,
        });
        let mut inputs = vec![x, wid];
        if let Some(&b) = node.inputs.get(2) {
            let bt = self.f.tensor(b);
            let bias = self.const_f32(node, b)?;
            if bias.len() != cw.scales.len() {
                return Err(err(
                    node,
                    format!(
                        "bias has {} values for {} channels",
                        bias.len(),
                        cw.scales.len()
                    ),
                ));
            }
            let bscale: Vec<f32> = cw.scales.iter().map(|&s| s * xa.scale).collect();
            let q: Vec<f64> = bias
                .iter()
                .zip(&bscale)
                .map(|(&v, &s)| (v as f64 / s as f64).round())
                .collect();
            let data = match bits {
                LayerBits::Int8 => {
                    if q.iter().any(|v| v.abs() > i32::MAX as f64) {
                        return Err(err(node, "the bias does not fit INT32 in 8-bit mode; run the layer in 16-bit mode"));
                    }
                    TensorData::from(q.iter().map(|&v| v as i32).collect::<Vec<_>>())
                }
                LayerBits::Int16 => {
                    TensorData::from(q.iter().map(|&v| v as i64).collect::<Vec<_>>())
                }
            };
            let bname = self.g.unique_tensor_name(&bt.name);
            let bid = self.g.add_const(&bname, bt.shape.clone(), data)?;
            self.g.tensor_mut(bid).quant = Some(QuantParams {
                scale: bscale,
                zero_point: vec![0; cw.scales.len()],
                min: vec![],
                max: vec![],
                quantized_dimension: 0,
            });
            inputs.push(bid);
        }
        let layer = QLayer {
            input_zero_point: xa.zero_point,
            requant,
            out_dtype: DType::I16,
            out: o.out_range(activation),
        };
        let op = match &node.op {
            Op::Conv2d(c) => Op::QConv2d(QConv2d {
                conv: ipukit_ir::ops::Conv2d {
                    activation: FusedActivation::None,
                    ..c.clone()
                },
                layer,
            }),
            Op::DepthwiseConv2d(c) => Op::QDepthwiseConv2d(QDepthwiseConv2d {
                conv: ipukit_ir::ops::DepthwiseConv2d {
                    activation: FusedActivation::None,
                    ..c.clone()
                },
                layer,
            }),
            Op::TransposeConv2d(c) => Op::QTransposeConv2d(QTransposeConv2d {
                conv: ipukit_ir::ops::TransposeConv2d {
                    activation: FusedActivation::None,
                    ..c.clone()
                },
                layer,
            }),
            _ => Op::QFullyConnected(QFullyConnected { layer }),
        };
        self.finish(node, op, inputs, o, Some(range))
    }

    fn matmul(&mut self, node: &Node) -> Result<()> {
        let (a, sa) = self.int16_operand(node, node.inputs[0])?;
        let (b, sb) = self.int16_operand(node, node.inputs[1])?;
        let (o, r) = self.out_affine(node)?;
        let requant = multiplier(sa.scale as f64 * sb.scale as f64 / o.scale as f64)
            .map_err(|e| err(node, e))?;
        let op = Op::QMatMul(QMatMul {
            requant,
            out: OutRange::full(DType::I16, 0),
        });
        self.finish(node, op, vec![a, b], o, Some(r))
    }

    fn binary(&mut self, node: &Node, b: BinaryOp) -> Result<()> {
        if b == BinaryOp::PRelu {
            return self.prelu(node);
        }
        if b == BinaryOp::Pow {
            let exp = self
                .const_f32(node, node.inputs[1])
                .ok()
                .filter(|e| e.len() == 1)
                .map(|e| e[0] as f64);
            return match exp {
                Some(e) => self.lut(node, move |x| x.powf(e)),
                None => Err(err(
                    node,
                    "Pow needs a constant scalar exponent in fixed-point models",
                )),
            };
        }
        let (x, sa) = self.int16_operand(node, node.inputs[0])?;
        let (y, sb) = self.int16_operand(node, node.inputs[1])?;
        let (o, r) = self.out_affine(node)?;
        let (ra, rb) = (
            sa.scale as f64 / o.scale as f64,
            sb.scale as f64 / o.scale as f64,
        );
        let shift = |f: fn(i32, i32, u32) -> QBinaryKind| -> Result<QBinaryKind> {
            let (ma, mb, n) = common_shift(ra, rb).map_err(|e| err(node, e))?;
            Ok(f(ma, mb, n))
        };
        let kind = match b {
            BinaryOp::Add => shift(|ma, mb, shift| QBinaryKind::Add { ma, mb, shift })?,
            BinaryOp::Sub => shift(|ma, mb, shift| QBinaryKind::Sub { ma, mb, shift })?,
            BinaryOp::Max => shift(|ma, mb, shift| QBinaryKind::Max { ma, mb, shift })?,
            BinaryOp::Min => shift(|ma, mb, shift| QBinaryKind::Min { ma, mb, shift })?,
            BinaryOp::Mul => {
                QBinaryKind::Mul(multiplier(ra * sb.scale as f64).map_err(|e| err(node, e))?)
            }
            BinaryOp::Div => QBinaryKind::Div(
                multiplier(ra / (sb.scale as f64 * 32768.0)).map_err(|e| err(node, e))?,
            ),
            other => {
                return Err(err(
                    node,
                    format!("{} has no fixed-point form", other.name()),
                ))
            }
        };
        let op = Op::QBinary(QBinary {
            kind,
            out: OutRange::full(DType::I16, 0),
        });
        self.finish(node, op, vec![x, y], o, Some(r))
    }

    fn prelu(&mut self, node: &Node) -> Result<()> {
        let (x, a) = self.int16_operand(node, node.inputs[0])?;
        let slope = self.const_f32(node, node.inputs[1])?.to_vec();
        let c = *self.f.tensor(node.inputs[0]).shape.last().unwrap_or(&1);
        let st = &self.f.tensor(node.inputs[1]).shape;
        let last_axis_only = st.iter().rev().skip(1).all(|&d| d == 1);
        if !(slope.len() == 1 || (slope.len() == c && last_axis_only)) {
            return Err(err(
                node,
                format!("PRelu slope of shape {st:?} is not per channel of the last axis"),
            ));
        }
        self.rescale(node, x, a, &slope, None)
    }

    /// QRescale from `a` to the output's scale, with negative-side slopes (§4).
    fn rescale(
        &mut self,
        node: &Node,
        x: TensorId,
        a: Affine,
        slopes: &[f32],
        clip: Option<(f32, f32)>,
    ) -> Result<()> {
        let (o, r) = self.out_affine(node)?;
        let ratio = a.scale as f64 / o.scale as f64;
        let p = multiplier(ratio).map_err(|e| err(node, e))?;
        if slopes.iter().any(|&s| s < 0.0) {
            // Negative slopes flip the sign: a table handles them.
            return self.lut_slopes(node, slopes);
        }
        let negative = slopes
            .iter()
            .map(|&s| multiplier(ratio * s as f64).map_err(|e| err(node, e)))
            .collect::<Result<Vec<Requant>>>()?;
        let positive = vec![p; negative.len().max(1)];
        let mut out = OutRange::full(DType::I16, 0);
        if let Some((lo, hi)) = clip {
            out.min = if lo.is_finite() {
                o.quantize(lo).max(out.min)
            } else {
                out.min
            };
            out.max = if hi.is_finite() {
                o.quantize(hi).min(out.max)
            } else {
                out.max
            };
        }
        let op = Op::QRescale(QRescale {
            input_zero_point: 0,
            positive,
            negative,
            out_dtype: DType::I16,
            out,
        });
        self.finish(node, op, vec![x], o, Some(r))
    }

    /// Slopes with a negative entry: one slope is a table; per-channel slopes (multipliers
    /// are non-negative) become `rescale(max(x, 0)) + min(x, 0) · α`.
    fn lut_slopes(&mut self, node: &Node, slopes: &[f32]) -> Result<()> {
        if slopes.len() == 1 {
            let s = slopes[0] as f64;
            return self.lut(node, move |x| if x >= 0.0 { x } else { s * x });
        }
        let (x, a) = self.int16_operand(node, node.inputs[0])?;
        let (o, r) = self.out_affine(node)?;
        let base = self.f.tensor(node.outputs[0]).name.clone();
        let zero = Requant {
            multiplier: 0,
            shift: 0,
        };
        let to_out = multiplier(a.scale as f64 / o.scale as f64).map_err(|e| err(node, e))?;
        let rescale = |positive, negative| {
            Op::QRescale(QRescale {
                input_zero_point: 0,
                positive: vec![positive],
                negative: vec![negative],
                out_dtype: DType::I16,
                out: OutRange::full(DType::I16, 0),
            })
        };
        let pos_name = format!("{base}_positive");
        let pos = self.emit(
            &pos_name,
            rescale(to_out, zero),
            vec![x],
            &pos_name,
            Some((o, None)),
        )?;
        let neg_name = format!("{base}_negative");
        let neg = self.emit(
            &neg_name,
            rescale(zero, Requant::IDENTITY),
            vec![x],
            &neg_name,
            Some((a, None)),
        )?;
        // α as an INT16 constant along the last axis.
        let amax = slopes.iter().fold(0f32, |m, s| m.max(s.abs()));
        let sa = Affine::int16(-amax, amax);
        let alpha: Vec<i16> = slopes.iter().map(|&v| sa.quantize(v) as i16).collect();
        let alpha_name = self.g.unique_tensor_name(&format!("{base}_slope"));
        let alpha_id =
            self.g
                .add_const(&alpha_name, vec![slopes.len()], TensorData::from(alpha))?;
        self.set_quant(alpha_id, &sa, Some((-amax, amax)));
        // The input's whole representable range (its headroom included), times |α|.
        let (lo, _) = a.range();
        let bound = (lo.abs() * amax).max(f32::MIN_POSITIVE);
        let sm = Affine::int16(-bound, bound);
        let mul = multiplier(a.scale as f64 * sa.scale as f64 / sm.scale as f64)
            .map_err(|e| err(node, e))?;
        let scaled_name = format!("{base}_negative_scaled");
        let scaled = self.emit(
            &scaled_name,
            Op::QBinary(QBinary {
                kind: QBinaryKind::Mul(mul),
                out: OutRange::full(DType::I16, 0),
            }),
            vec![neg, alpha_id],
            &scaled_name,
            Some((sm, None)),
        )?;
        let (ma, mb, shift) =
            common_shift(1.0, sm.scale as f64 / o.scale as f64).map_err(|e| err(node, e))?;
        let op = Op::QBinary(QBinary {
            kind: QBinaryKind::Add { ma, mb, shift },
            out: OutRange::full(DType::I16, 0),
        });
        self.finish(node, op, vec![pos, scaled], o, Some(r))
    }

    fn unary(&mut self, node: &Node, u: UnaryOp) -> Result<()> {
        let (x, a) = self.int16_operand(node, node.inputs[0])?;
        match u {
            UnaryOp::Relu => self.rescale(node, x, a, &[0.0], Some((0.0, f32::INFINITY))),
            UnaryOp::Clip(lo, hi) => self.rescale(node, x, a, &[1.0], Some((lo, hi))),
            UnaryOp::LeakyRelu(alpha) => self.rescale(node, x, a, &[alpha], None),
            UnaryOp::Sigmoid => self.lut(node, |v| 1.0 / (1.0 + (-v).exp())),
            UnaryOp::Tanh => self.lut(node, f64::tanh),
            UnaryOp::HardSigmoid(alpha, beta) => {
                let (al, be) = (alpha as f64, beta as f64);
                self.lut(node, move |v| (al * v + be).clamp(0.0, 1.0))
            }
            UnaryOp::HardSwish => self.lut(node, |v| v * (v / 6.0 + 0.5).clamp(0.0, 1.0)),
            UnaryOp::Elu(alpha) => {
                let al = alpha as f64;
                self.lut(
                    node,
                    move |v| if v > 0.0 { v } else { al * (v.exp() - 1.0) },
                )
            }
            UnaryOp::Softplus => self.lut(node, |v| v.exp().ln_1p()),
            UnaryOp::Abs => self.lut(node, f64::abs),
            UnaryOp::Neg => self.lut(node, |v| -v),
            UnaryOp::Sqrt => self.lut(node, |v| v.max(0.0).sqrt()),
            UnaryOp::Rsqrt => self.lut(node, |v| 1.0 / v.sqrt()),
            UnaryOp::Exp => self.lut(node, f64::exp),
            UnaryOp::Log => self.lut(node, f64::ln),
            UnaryOp::Reciprocal => self.lut(node, |v| 1.0 / v),
            UnaryOp::Erf => self.lut(node, erf),
            UnaryOp::Sin => self.lut(node, f64::sin),
            UnaryOp::Cos => self.lut(node, f64::cos),
            UnaryOp::Floor => self.lut(node, f64::floor),
            UnaryOp::Ceil => self.lut(node, f64::ceil),
            UnaryOp::Round => self.lut(node, f64::round_ties_even),
            UnaryOp::Not => Err(err(node, "Not has no fixed-point form")),
        }
    }

    /// A table for `f` between the input's and the output's scales (§5).
    fn lut(&mut self, node: &Node, f: impl Fn(f64) -> f64) -> Result<()> {
        let (x, a) = self.int16_operand(node, node.inputs[0])?;
        let (o, r) = self.out_affine(node)?;
        let table = (0..LUT_ENTRIES)
            .map(|k| {
                let v = f(a.scale as f64 * (64.0 * k as f64 - 32768.0)) / o.scale as f64;
                if v.is_nan() {
                    0
                } else {
                    v.round().clamp(-32768.0, 32767.0) as i16
                }
            })
            .collect();
        self.finish(node, Op::QLut(QLut { table }), vec![x], o, Some(r))
    }

    fn concat(&mut self, node: &Node) -> Result<()> {
        let (o, r) = self.out_affine(node)?;
        let mut inputs = Vec::with_capacity(node.inputs.len());
        for &t in &node.inputs {
            let (x, a) = self.int16_operand(node, t)?;
            if a.scale == o.scale {
                inputs.push(x);
                continue;
            }
            let m = multiplier(a.scale as f64 / o.scale as f64).map_err(|e| err(node, e))?;
            let name = format!("{}_rescaled", self.g.tensor(x).name);
            let op = Op::QRescale(QRescale {
                input_zero_point: 0,
                positive: vec![m],
                negative: vec![m],
                out_dtype: DType::I16,
                out: OutRange::full(DType::I16, 0),
            });
            inputs.push(self.emit(&name, op, vec![x], &name, Some((o, Some(r))))?);
        }
        self.finish(node, node.op.clone(), inputs, o, Some(r))
    }
}

fn unreachable_format(node: &Node, f: InputFormat) -> Result<Vec<usize>> {
    Err(err(
        node,
        format!(
            "training_input_formats {} is not an image format",
            f.as_str()
        ),
    ))
}

/// The error function (Abramowitz–Stegun 7.1.26 is not exact enough for tables; this is the
/// series / continued-fraction pair, accurate to ~1e-15).
fn erf(x: f64) -> f64 {
    if x.abs() < 2.5 {
        // Maclaurin series.
        let mut sum = x;
        let mut term = x;
        let x2 = x * x;
        for n in 1..200 {
            term *= -x2 / n as f64;
            let t = term / (2 * n + 1) as f64;
            sum += t;
            if t.abs() < 1e-17 {
                break;
            }
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    } else {
        // Continued fraction for erfc.
        let ax = x.abs();
        let mut f = 0.0;
        for n in (1..60).rev() {
            f = (n as f64 / 2.0) / (ax + f);
        }
        let erfc = (-ax * ax).exp() / std::f64::consts::PI.sqrt() / (ax + f);
        (1.0 - erfc).copysign(x)
    }
}

#[cfg(test)]
mod tests;
