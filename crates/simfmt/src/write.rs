//! IR graph → `.sim` flatbuffer.

use crate::error::{unwritable, Result};
use crate::flex::MapWriter;
use crate::mapping::{activation_name, coord_name, custom, nearest_name};
use crate::meta::{self, SimMetadata, Stage};
use crate::padding;
use crate::resize;
use crate::tflite::{self as tfl, BuiltinOperator as B, BuiltinOptions as BO};
use crate::version::{builtin_version, Sig};
use ipukit_ir::ops::{
    ArgReduceKind, BinaryOp, DepthToSpaceMode, FusedActivation, PadMode, Padding2d, Pool2d,
    PoolKind, ReduceOp, ResizeMode, StorageOrder, UnaryOp,
};
use ipukit_ir::{DType, Graph, Node, Op, QuantParams, Tensor, TensorData, TensorId};
use std::collections::{HashMap, HashSet};

/// Version of the `ipukit_graph` metadata layout.
pub(crate) const GRAPH_FORMAT: i64 = 1;

/// Serializes a graph and its metadata into `.sim` bytes.
///
/// The graph must be valid ([`Graph::validate`]). The output depends only on the graph and the
/// metadata, so writing the same model twice gives identical bytes. Fails if the graph is
/// invalid, a dimension or attribute does not fit TFLite's 32-bit fields, or an
/// [`SimMetadata::extra`] key is not a plain name, or the graph has fixed-point operators and
/// the stage is not [`Stage::Fixed`].
pub fn write_sim(graph: &Graph, meta: &SimMetadata) -> Result<Vec<u8>> {
    graph
        .validate()
        .map_err(|e| unwritable(format!("the graph is not valid: {e}")))?;
    for key in meta.extra.keys() {
        if !meta::valid_extra_key(key) {
            return Err(unwritable(format!(
                "metadata key '{key}' must be non-empty ASCII letters, digits, '_', '-' or '.'"
            )));
        }
    }
    if meta.stage == Stage::Float {
        if let Some(n) = graph.nodes.iter().find(|n| n.op.is_fixed_point()) {
            return Err(unwritable(format!(
                "node '{}' is a fixed-point operator ({}): the stage must be fixed",
                n.name,
                n.op.name()
            )));
        }
    }
    if i32::try_from(graph.tensors.len()).is_err() {
        return Err(unwritable("too many tensors"));
    }
    let mut w = Writer::new(graph);
    for t in &graph.tensors {
        let data = t.data.as_ref().map(TensorData::to_le_bytes);
        w.add_tensor(t.name.clone(), t.dtype, &t.shape, t.quant.as_ref(), data)?;
    }
    for n in &graph.nodes {
        w.node(n)?;
    }
    w.finish(meta)
}

enum Code {
    Builtin(B),
    Custom(&'static str),
}

/// One TFLite operator to append.
struct Emit {
    code: Code,
    inputs: Vec<i32>,
    outputs: Vec<i32>,
    options: Option<BO>,
    custom: Option<MapWriter>,
    sig: Sig,
    /// Hints for the reader (IR attributes TFLite does not hold).
    info: MapWriter,
}

impl Emit {
    fn builtin(code: B, inputs: Vec<i32>, outputs: Vec<i32>, options: Option<BO>) -> Emit {
        Emit {
            code: Code::Builtin(code),
            inputs,
            outputs,
            options,
            custom: None,
            sig: Sig::default(),
            info: MapWriter::new(),
        }
    }

    fn custom(code: &'static str, inputs: Vec<i32>, outputs: Vec<i32>, opts: MapWriter) -> Emit {
        Emit {
            code: Code::Custom(code),
            inputs,
            outputs,
            options: None,
            custom: Some(opts),
            sig: Sig::default(),
            info: MapWriter::new(),
        }
    }
}

struct Writer<'g> {
    g: &'g Graph,
    names: HashSet<String>,
    tensors: Vec<tfl::Tensor>,
    /// Buffer contents; index 0 is the empty sentinel.
    buffers: Vec<Option<Vec<u8>>>,
    codes: Vec<tfl::OperatorCode>,
    code_index: HashMap<(i32, &'static str), usize>,
    ops: Vec<tfl::Operator>,
    infos: Vec<MapWriter>,
}

fn i32_of(v: usize, what: &str) -> Result<i32> {
    i32::try_from(v).map_err(|_| unwritable(format!("{what} {v} does not fit in 32 bits")))
}

fn i32_vec(v: &[usize], what: &str) -> Result<Vec<i32>> {
    v.iter().map(|&x| i32_of(x, what)).collect()
}

fn ids(v: &[TensorId]) -> Vec<i32> {
    // Tensor count was checked to fit in i32.
    v.iter().map(|t| t.0 as i32).collect()
}

pub(crate) fn tensor_type(d: DType) -> tfl::TensorType {
    match d {
        DType::F32 => tfl::TensorType::Float32,
        DType::I64 => tfl::TensorType::Int64,
        DType::I32 => tfl::TensorType::Int32,
        DType::I16 => tfl::TensorType::Int16,
        DType::U16 => tfl::TensorType::Uint16,
        DType::I8 => tfl::TensorType::Int8,
        DType::U8 => tfl::TensorType::Uint8,
        DType::Bool => tfl::TensorType::Bool,
    }
}

fn activation(a: FusedActivation) -> tfl::ActivationFunctionType {
    match a {
        FusedActivation::None => tfl::ActivationFunctionType::None,
        FusedActivation::Relu => tfl::ActivationFunctionType::Relu,
        FusedActivation::Relu6 => tfl::ActivationFunctionType::Relu6,
        FusedActivation::ReluN1To1 => tfl::ActivationFunctionType::ReluN1To1,
    }
}

fn quant(q: &QuantParams) -> Result<tfl::QuantizationParameters> {
    let some = |v: &[f32]| (!v.is_empty()).then(|| v.to_vec());
    Ok(tfl::QuantizationParameters {
        min: some(&q.min),
        max: some(&q.max),
        scale: some(&q.scale),
        zero_point: (!q.zero_point.is_empty()).then(|| q.zero_point.clone()),
        details: None,
        quantized_dimension: i32_of(q.quantized_dimension, "quantized_dimension")?,
    })
}

/// `v` as a one-element constant of `dtype`, if `dtype` holds it exactly.
fn exact_scalar(dtype: DType, v: f32) -> Option<TensorData> {
    if dtype == DType::F32 {
        return Some(vec![v].into());
    }
    if !v.is_finite() || v.fract() != 0.0 {
        return None;
    }
    let i = v as i64;
    if i as f32 != v {
        return None;
    }
    Some(match dtype {
        DType::I64 => vec![i].into(),
        DType::I32 => vec![i32::try_from(i).ok()?].into(),
        DType::I16 => vec![i16::try_from(i).ok()?].into(),
        DType::U16 => vec![u16::try_from(i).ok()?].into(),
        DType::I8 => vec![i8::try_from(i).ok()?].into(),
        DType::U8 => vec![u8::try_from(i).ok()?].into(),
        DType::Bool => match i {
            0 => vec![false].into(),
            1 => vec![true].into(),
            _ => return None,
        },
        DType::F32 => return None,
    })
}

impl<'g> Writer<'g> {
    fn new(g: &'g Graph) -> Writer<'g> {
        Writer {
            g,
            names: g.tensors.iter().map(|t| t.name.clone()).collect(),
            tensors: Vec::with_capacity(g.tensors.len()),
            buffers: vec![None],
            codes: Vec::new(),
            code_index: HashMap::new(),
            ops: Vec::new(),
            infos: Vec::new(),
        }
    }

    fn t(&self, id: TensorId) -> &'g Tensor {
        self.g.tensor(id)
    }

    fn unique_name(&mut self, base: String) -> String {
        let mut name = base.clone();
        let mut i = 1;
        while self.names.contains(&name) {
            name = format!("{base}_{i}");
            i += 1;
        }
        self.names.insert(name.clone());
        name
    }

    fn add_tensor(
        &mut self,
        name: String,
        dtype: DType,
        shape: &[usize],
        q: Option<&QuantParams>,
        data: Option<Vec<u8>>,
    ) -> Result<i32> {
        let shape = i32_vec(shape, &format!("dimension of tensor '{name}'"))?;
        let buffer = match data {
            Some(bytes) => {
                self.buffers.push(Some(bytes));
                u32::try_from(self.buffers.len() - 1).map_err(|_| unwritable("too many buffers"))?
            }
            None => 0,
        };
        let quantization = q.map(quant).transpose()?.map(Box::new);
        self.tensors.push(tfl::Tensor {
            shape: Some(shape),
            type_: tensor_type(dtype),
            buffer,
            name: Some(name),
            quantization,
            has_rank: true,
            ..Default::default()
        });
        i32_of(self.tensors.len() - 1, "tensor count")
    }

    /// Adds an INT32 constant (an attribute tensor of a builtin).
    fn const_i32(&mut self, base: String, shape: Vec<usize>, vals: &[i64]) -> Result<i32> {
        let v: Vec<i32> = vals
            .iter()
            .map(|&x| {
                i32::try_from(x).map_err(|_| {
                    unwritable(format!("value {x} of '{base}' does not fit in 32 bits"))
                })
            })
            .collect::<Result<_>>()?;
        let name = self.unique_name(base);
        let bytes = TensorData::from(v).to_le_bytes();
        self.add_tensor(name, DType::I32, &shape, None, Some(bytes))
    }

    fn const_usize(&mut self, base: String, shape: Vec<usize>, vals: &[usize]) -> Result<i32> {
        let v: Vec<i64> = vals.iter().map(|&x| x as i64).collect();
        self.const_i32(base, shape, &v)
    }

    fn opcode(&mut self, code: &Code, version: i32) -> Result<u32> {
        let (b, custom_code) = match *code {
            Code::Builtin(b) => (b, ""),
            Code::Custom(c) => (B::Custom, c),
        };
        let key = (b as i32, custom_code);
        let idx = match self.code_index.get(&key) {
            Some(&i) => {
                let c = &mut self.codes[i];
                c.version = c.version.max(version);
                i
            }
            None => {
                let deprecated = (b as i32).min(B::PlaceholderForGreaterOpCodes as i32) as i8;
                self.codes.push(tfl::OperatorCode {
                    deprecated_builtin_code: deprecated,
                    custom_code: (!custom_code.is_empty()).then(|| custom_code.to_string()),
                    version,
                    builtin_code: b,
                });
                self.code_index.insert(key, self.codes.len() - 1);
                self.codes.len() - 1
            }
        };
        u32::try_from(idx).map_err(|_| unwritable("too many operator codes"))
    }

    fn emit(&mut self, name: Option<&str>, e: Emit) -> Result<()> {
        let version = match e.code {
            Code::Builtin(b) => builtin_version(b, &e.sig),
            Code::Custom(_) => 1,
        };
        let opcode_index = self.opcode(&e.code, version)?;
        self.ops.push(tfl::Operator {
            opcode_index,
            inputs: Some(e.inputs),
            outputs: Some(e.outputs),
            builtin_options: e.options,
            custom_options: e.custom.map(|m| m.finish()),
            custom_options_format: tfl::CustomOptionsFormat::Flexbuffers,
            ..Default::default()
        });
        let info = match name {
            Some(n) => e.info.str("name", n),
            None => e.info,
        };
        self.infos.push(info);
        Ok(())
    }

    /// Signature for the version of a node's operator.
    fn sig(&self, n: &Node) -> Sig {
        let dt = |i: usize| n.inputs.get(i).map(|&t| self.t(t).dtype);
        let shape = |i: usize| n.inputs.get(i).map(|&t| self.t(t).shape.as_slice());
        Sig {
            in0: dt(0),
            in1: dt(1),
            out0: n.outputs.first().map(|&t| self.t(t).dtype),
            max_rank: n
                .inputs
                .iter()
                .map(|&t| self.t(t).shape.len())
                .max()
                .unwrap_or(0),
            broadcast: shape(1).is_some() && shape(0) != shape(1),
            feature: false,
            feature2: false,
        }
    }

    fn node(&mut self, n: &Node) -> Result<()> {
        let ins = ids(&n.inputs);
        let outs = ids(&n.outputs);
        let sig = self.sig(n);
        let x = self.t(n.inputs[0]);
        let out = self.t(n.outputs[0]);
        let rank = x.shape.len();
        let mut e = match &n.op {
            Op::Conv2d(c) => {
                return self.conv(
                    n,
                    c.strides,
                    c.dilations,
                    c.padding,
                    c.activation,
                    None,
                    c.groups,
                )
            }
            Op::DepthwiseConv2d(c) => {
                return self.conv(
                    n,
                    c.strides,
                    c.dilations,
                    c.padding,
                    c.activation,
                    Some(c.depth_multiplier),
                    1,
                )
            }
            Op::TransposeConv2d(c) => return self.transpose_conv(n, c),
            Op::FullyConnected(f) => {
                let keep = rank != 2;
                let mut e = Emit::builtin(
                    B::FullyConnected,
                    ins,
                    outs,
                    Some(BO::FullyConnectedOptions(Box::new(
                        tfl::FullyConnectedOptions {
                            fused_activation_function: activation(f.activation),
                            keep_num_dims: keep,
                            ..Default::default()
                        },
                    ))),
                );
                e.sig = Sig {
                    feature: n.inputs.len() == 2,
                    feature2: keep,
                    ..sig
                };
                e
            }
            Op::MatMul(_) => Emit::builtin(
                B::BatchMatmul,
                ins,
                outs,
                Some(BO::BatchMatMulOptions(Box::default())),
            ),
            Op::Binary(b) => {
                let none = tfl::ActivationFunctionType::None;
                let (code, options) = match b {
                    BinaryOp::Add => (
                        B::Add,
                        Some(BO::AddOptions(Box::new(tfl::AddOptions {
                            fused_activation_function: none,
                            pot_scale_int16: true,
                        }))),
                    ),
                    BinaryOp::Sub => (
                        B::Sub,
                        Some(BO::SubOptions(Box::new(tfl::SubOptions {
                            fused_activation_function: none,
                            pot_scale_int16: true,
                        }))),
                    ),
                    BinaryOp::Mul => (B::Mul, Some(BO::MulOptions(Box::default()))),
                    BinaryOp::Div => (B::Div, Some(BO::DivOptions(Box::default()))),
                    BinaryOp::Pow => (B::Pow, None),
                    BinaryOp::Max => (B::Maximum, None),
                    BinaryOp::Min => (B::Minimum, None),
                    BinaryOp::PRelu => (B::Prelu, None),
                    BinaryOp::Equal => (B::Equal, None),
                    BinaryOp::Less => (B::Less, None),
                    BinaryOp::Greater => (B::Greater, None),
                    BinaryOp::And => (B::LogicalAnd, None),
                    BinaryOp::Or => (B::LogicalOr, None),
                };
                Emit::builtin(code, ins, outs, options)
            }
            Op::Unary(u) => self.unary(*u, ins, outs),
            Op::Where => Emit::builtin(B::SelectV2, ins, outs, None),
            Op::Cast(to) => Emit::builtin(
                B::Cast,
                ins,
                outs,
                Some(BO::CastOptions(Box::new(tfl::CastOptions {
                    in_data_type: tensor_type(x.dtype),
                    out_data_type: tensor_type(*to),
                }))),
            ),
            Op::Softmax(s) | Op::LogSoftmax(s) => {
                let log = matches!(n.op, Op::LogSoftmax(_));
                if s.axis + 1 == rank {
                    if log {
                        Emit::builtin(B::LogSoftmax, ins, outs, None)
                    } else {
                        Emit::builtin(
                            B::Softmax,
                            ins,
                            outs,
                            Some(BO::SoftmaxOptions(Box::new(tfl::SoftmaxOptions {
                                beta: 1.0,
                            }))),
                        )
                    }
                } else {
                    let code = if log {
                        custom::LOG_SOFTMAX
                    } else {
                        custom::SOFTMAX
                    };
                    Emit::custom(code, ins, outs, MapWriter::new().uint("axis", s.axis))
                }
            }
            Op::Pool2d(p) => {
                let hw = [x.shape[1], x.shape[2]];
                let out_hw = [out.shape[1], out.shape[2]];
                let mode = padding::match_mode(p.padding, out_hw, hw, p.kernel, p.strides, [1, 1]);
                let (max, cip) = match p.kind {
                    PoolKind::Max => (true, false),
                    PoolKind::Average { count_include_pad } => (false, count_include_pad),
                };
                match mode {
                    // TFLite's pools have no dilation.
                    Some(mode) if (!cip || p.padding.is_zero()) && p.dilations == [1, 1] => {
                        let mut e = Emit::builtin(
                            if max { B::MaxPool2d } else { B::AveragePool2d },
                            ins,
                            outs,
                            Some(BO::Pool2DOptions(Box::new(tfl::Pool2DOptions {
                                padding: mode,
                                stride_w: i32_of(p.strides[1], "stride")?,
                                stride_h: i32_of(p.strides[0], "stride")?,
                                filter_width: i32_of(p.kernel[1], "kernel size")?,
                                filter_height: i32_of(p.kernel[0], "kernel size")?,
                                fused_activation_function: tfl::ActivationFunctionType::None,
                            }))),
                        );
                        if p.ceil_mode {
                            e.info = e.info.bool("ceil_mode", true);
                        }
                        if cip {
                            e.info = e.info.bool("count_include_pad", true);
                        }
                        e
                    }
                    _ => {
                        let mut o = pool_options(p);
                        if !max {
                            o = o.bool("count_include_pad", cip);
                        }
                        let code = if max {
                            custom::MAX_POOL
                        } else {
                            custom::AVG_POOL
                        };
                        Emit::custom(code, ins, outs, o)
                    }
                }
            }
            Op::MaxPool2dWithIndices(p) => {
                let order = match p.storage_order {
                    StorageOrder::RowMajor => 0,
                    StorageOrder::ColumnMajor => 1,
                };
                let o = pool_options(&p.pool).uint("storage_order", order);
                Emit::custom(custom::MAX_POOL_WITH_INDICES, ins, outs, o)
            }
            Op::Reduce(r) => {
                let code = match r.op {
                    ReduceOp::Mean => B::Mean,
                    ReduceOp::Sum => B::Sum,
                    ReduceOp::Max => B::ReduceMax,
                    ReduceOp::Min => B::ReduceMin,
                    ReduceOp::Prod => B::ReduceProd,
                    ReduceOp::L2 => {
                        let o = MapWriter::new()
                            .uints("axes", &r.axes)
                            .bool("keep_dims", r.keep_dims);
                        return self.emit_node(n, Emit::custom(custom::REDUCE_L2, ins, outs, o));
                    }
                };
                let axes =
                    self.const_usize(format!("{}/axes", n.name), vec![r.axes.len()], &r.axes)?;
                Emit::builtin(
                    code,
                    vec![ins[0], axes],
                    outs,
                    Some(BO::ReducerOptions(Box::new(tfl::ReducerOptions {
                        keep_dims: r.keep_dims,
                    }))),
                )
            }
            Op::ArgReduce(a) => {
                let max = a.kind == ArgReduceKind::Max;
                if a.keep_dims || a.select_last_index {
                    let code = if max {
                        custom::ARG_MAX
                    } else {
                        custom::ARG_MIN
                    };
                    let o = MapWriter::new()
                        .uint("axis", a.axis)
                        .bool("keep_dims", a.keep_dims)
                        .bool("select_last_index", a.select_last_index);
                    Emit::custom(code, ins, outs, o)
                } else {
                    let axis = self.const_usize(format!("{}/axis", n.name), vec![1], &[a.axis])?;
                    let out_t = tfl::TensorType::Int64;
                    let (code, options) = if max {
                        (
                            B::ArgMax,
                            BO::ArgMaxOptions(Box::new(tfl::ArgMaxOptions { output_type: out_t })),
                        )
                    } else {
                        (
                            B::ArgMin,
                            BO::ArgMinOptions(Box::new(tfl::ArgMinOptions { output_type: out_t })),
                        )
                    };
                    Emit::builtin(code, vec![ins[0], axis], outs, Some(options))
                }
            }
            Op::Concat(c) => Emit::builtin(
                B::Concatenation,
                ins,
                outs,
                Some(BO::ConcatenationOptions(Box::new(
                    tfl::ConcatenationOptions {
                        axis: i32_of(c.axis, "axis")?,
                        fused_activation_function: tfl::ActivationFunctionType::None,
                    },
                ))),
            ),
            Op::Split(s) => {
                let num_splits = i32_of(s.sizes.len(), "number of splits")?;
                let axis = self.const_usize(format!("{}/axis", n.name), vec![], &[s.axis])?;
                let equal = s.sizes.windows(2).all(|w| w[0] == w[1]) && !s.sizes.is_empty();
                if equal {
                    Emit::builtin(
                        B::Split,
                        vec![axis, ins[0]],
                        outs,
                        Some(BO::SplitOptions(Box::new(tfl::SplitOptions { num_splits }))),
                    )
                } else {
                    let sizes = self.const_usize(
                        format!("{}/size_splits", n.name),
                        vec![s.sizes.len()],
                        &s.sizes,
                    )?;
                    Emit::builtin(
                        B::SplitV,
                        vec![ins[0], sizes, axis],
                        outs,
                        Some(BO::SplitVOptions(Box::new(tfl::SplitVOptions {
                            num_splits,
                        }))),
                    )
                }
            }
            Op::Reshape(r) => {
                let shape =
                    self.const_usize(format!("{}/shape", n.name), vec![r.shape.len()], &r.shape)?;
                Emit::builtin(
                    B::Reshape,
                    vec![ins[0], shape],
                    outs,
                    Some(BO::ReshapeOptions(Box::new(tfl::ReshapeOptions {
                        new_shape: Some(i32_vec(&r.shape, "dimension")?),
                    }))),
                )
            }
            Op::Transpose(t) => {
                let perm =
                    self.const_usize(format!("{}/perm", n.name), vec![t.perm.len()], &t.perm)?;
                Emit::builtin(B::Transpose, vec![ins[0], perm], outs, None)
            }
            Op::Slice(s) => {
                let (mut begin, mut end, mut strides) = (vec![], vec![], vec![]);
                let mut end_mask = 0i32;
                for (i, a) in s.axes.iter().enumerate() {
                    let start = a.start as i64;
                    let stop = start + a.len as i64 * a.step;
                    begin.push(start);
                    strides.push(a.step);
                    if a.len > 0 && stop < 0 {
                        if i >= 31 {
                            return Err(unwritable("slices of rank above 31 are not supported"));
                        }
                        end_mask |= 1 << i;
                        end.push(0);
                    } else if a.len == 0 {
                        end.push(start);
                    } else {
                        end.push(stop);
                    }
                }
                let r = vec![rank];
                let b = self.const_i32(format!("{}/begin", n.name), r.clone(), &begin)?;
                let en = self.const_i32(format!("{}/end", n.name), r.clone(), &end)?;
                let st = self.const_i32(format!("{}/strides", n.name), r, &strides)?;
                Emit::builtin(
                    B::StridedSlice,
                    vec![ins[0], b, en, st],
                    outs,
                    Some(BO::StridedSliceOptions(Box::new(
                        tfl::StridedSliceOptions {
                            end_mask,
                            ..Default::default()
                        },
                    ))),
                )
            }
            Op::Pad(p) => {
                let flat: Vec<usize> = p.pads.iter().flat_map(|q| [q[0], q[1]]).collect();
                let custom_pad = |mode: &str, value: f32| {
                    MapWriter::new()
                        .uints("pads", &flat)
                        .str("mode", mode)
                        .float("value", value)
                };
                let scalar = match p.mode {
                    PadMode::Constant(v) if v != 0.0 => Some(exact_scalar(x.dtype, v)),
                    _ => None,
                };
                match (p.mode, scalar) {
                    (PadMode::Wrap, _) => {
                        Emit::custom(custom::PAD, ins, outs, custom_pad("wrap", 0.0))
                    }
                    (PadMode::Edge, _) => {
                        Emit::custom(custom::PAD, ins, outs, custom_pad("edge", 0.0))
                    }
                    (PadMode::Constant(v), Some(None)) => {
                        Emit::custom(custom::PAD, ins, outs, custom_pad("constant", v))
                    }
                    (mode, scalar) => {
                        let pads =
                            self.const_usize(format!("{}/paddings", n.name), vec![rank, 2], &flat)?;
                        match (mode, scalar) {
                            (PadMode::Reflect, _) => Emit::builtin(
                                B::MirrorPad,
                                vec![ins[0], pads],
                                outs,
                                Some(BO::MirrorPadOptions(Box::new(tfl::MirrorPadOptions {
                                    mode: tfl::MirrorPadMode::Reflect,
                                }))),
                            ),
                            (_, Some(Some(value))) => {
                                let name = self.unique_name(format!("{}/constant_values", n.name));
                                let cv = self.add_tensor(
                                    name,
                                    x.dtype,
                                    &[],
                                    x.quant.as_ref(),
                                    Some(value.to_le_bytes()),
                                )?;
                                Emit::builtin(
                                    B::Padv2,
                                    vec![ins[0], pads, cv],
                                    outs,
                                    Some(BO::PadV2Options(Box::default())),
                                )
                            }
                            _ => Emit::builtin(
                                B::Pad,
                                vec![ins[0], pads],
                                outs,
                                Some(BO::PadOptions(Box::default())),
                            ),
                        }
                    }
                }
            }
            Op::Gather(g) => {
                let idx = self.t(n.inputs[1]);
                let negative = idx
                    .data
                    .as_ref()
                    .is_some_and(|d| d.to_i64_vec().iter().any(|&v| v < 0));
                if negative {
                    Emit::custom(
                        custom::GATHER,
                        ins,
                        outs,
                        MapWriter::new().uint("axis", g.axis),
                    )
                } else {
                    Emit::builtin(
                        B::Gather,
                        ins,
                        outs,
                        Some(BO::GatherOptions(Box::new(tfl::GatherOptions {
                            axis: i32_of(g.axis, "axis")?,
                            batch_dims: 0,
                        }))),
                    )
                }
            }
            Op::Resize(r) => {
                let in_hw = [x.shape[1], x.shape[2]];
                match resize::builtin_flags(r, in_hw) {
                    Some((align_corners, half_pixel_centers)) => {
                        let nearest = matches!(r.mode, ResizeMode::Nearest(_));
                        let size =
                            self.const_usize(format!("{}/size", n.name), vec![2], &r.size)?;
                        let (code, options) = if nearest {
                            (
                                B::ResizeNearestNeighbor,
                                BO::ResizeNearestNeighborOptions(Box::new(
                                    tfl::ResizeNearestNeighborOptions {
                                        align_corners,
                                        half_pixel_centers,
                                    },
                                )),
                            )
                        } else {
                            (
                                B::ResizeBilinear,
                                BO::ResizeBilinearOptions(Box::new(tfl::ResizeBilinearOptions {
                                    align_corners,
                                    half_pixel_centers,
                                })),
                            )
                        };
                        let mut e = Emit::builtin(code, vec![ins[0], size], outs, Some(options));
                        e.sig = Sig {
                            feature: half_pixel_centers || (nearest && align_corners),
                            ..sig.clone()
                        };
                        let canon = resize::from_tflite(
                            nearest,
                            align_corners,
                            half_pixel_centers,
                            in_hw,
                            r.size,
                        );
                        if let Some(c) = canon {
                            if c.coord != r.coord {
                                e.info = e.info.str("coord", coord_name(r.coord));
                            }
                            if let (ResizeMode::Nearest(want), true) = (r.mode, c.mode != r.mode) {
                                e.info = e.info.str("nearest_mode", nearest_name(want));
                            }
                            if c.scales.map(f32::to_bits) != r.scales.map(f32::to_bits) {
                                e.info = e.info.floats("scales", &r.scales);
                            }
                        }
                        return self.emit_node(n, e);
                    }
                    None => {
                        let mut o = MapWriter::new()
                            .str("coordinate_transformation_mode", coord_name(r.coord))
                            .uints("size", &r.size)
                            .floats("scales", &r.scales);
                        o = match r.mode {
                            ResizeMode::Nearest(m) => o
                                .str("mode", "nearest")
                                .str("nearest_mode", nearest_name(m)),
                            ResizeMode::Linear => o.str("mode", "linear"),
                            ResizeMode::Cubic {
                                coeff_a,
                                exclude_outside,
                            } => o
                                .str("mode", "cubic")
                                .floats("cubic_coeff_a", &[coeff_a])
                                .bool("exclude_outside", exclude_outside),
                        };
                        Emit::custom(custom::RESIZE, ins, outs, o)
                    }
                }
            }
            Op::DepthToSpace(d) => match d.mode {
                DepthToSpaceMode::Dcr => Emit::builtin(
                    B::DepthToSpace,
                    ins,
                    outs,
                    Some(BO::DepthToSpaceOptions(Box::new(
                        tfl::DepthToSpaceOptions {
                            block_size: i32_of(d.block, "block size")?,
                        },
                    ))),
                ),
                DepthToSpaceMode::Crd => Emit::custom(
                    custom::DEPTH_TO_SPACE,
                    ins,
                    outs,
                    MapWriter::new()
                        .uint("block_size", d.block)
                        .str("mode", "CRD"),
                ),
            },
            Op::SpaceToDepth(s) => Emit::builtin(
                B::SpaceToDepth,
                ins,
                outs,
                Some(BO::SpaceToDepthOptions(Box::new(
                    tfl::SpaceToDepthOptions {
                        block_size: i32_of(s.block, "block size")?,
                    },
                ))),
            ),
            Op::Expand(ex) => {
                let shape = self.const_usize(
                    format!("{}/shape", n.name),
                    vec![out.shape.len()],
                    &out.shape,
                )?;
                let mut e = Emit::builtin(B::BroadcastTo, vec![ins[0], shape], outs, None);
                if ex.shape != out.shape {
                    e.info = e.info.uints("expand_shape", &ex.shape);
                }
                e
            }
            Op::Tile(t) => {
                let m = self.const_usize(
                    format!("{}/multiples", n.name),
                    vec![t.repeats.len()],
                    &t.repeats,
                )?;
                Emit::builtin(B::Tile, vec![ins[0], m], outs, None)
            }
            Op::Identity => Emit::custom(custom::IDENTITY, ins, outs, MapWriter::new()),
            op => {
                let f = crate::fixed::encode(op)
                    .ok_or_else(|| unwritable(format!("{} has no .sim encoding", op.name())))?;
                let mut ins = ins;
                if let Some((suffix, data)) = f.table {
                    let name = self.unique_name(format!("{}/{suffix}", n.name));
                    let bytes = Some(data.to_le_bytes());
                    ins.push(self.add_tensor(name, data.dtype(), &[data.len()], None, bytes)?);
                }
                Emit::custom(f.code, ins, outs, f.options)
            }
        };
        if e.sig.in0.is_none() {
            e.sig = sig;
        }
        self.emit_node(n, e)
    }

    fn emit_node(&mut self, n: &Node, mut e: Emit) -> Result<()> {
        if e.sig.in0.is_none() {
            e.sig = self.sig(n);
        }
        self.emit(Some(&n.name), e)
    }

    fn unary(&self, u: UnaryOp, ins: Vec<i32>, outs: Vec<i32>) -> Emit {
        let b = |code| Emit::builtin(code, ins.clone(), outs.clone(), None);
        let c = |code, o| Emit::custom(code, ins.clone(), outs.clone(), o);
        match u {
            UnaryOp::Relu => b(B::Relu),
            UnaryOp::LeakyRelu(alpha) => Emit::builtin(
                B::LeakyRelu,
                ins.clone(),
                outs.clone(),
                Some(BO::LeakyReluOptions(Box::new(tfl::LeakyReluOptions {
                    alpha,
                }))),
            ),
            UnaryOp::Clip(lo, hi) if lo == 0.0 && hi == 6.0 => b(B::Relu6),
            UnaryOp::Clip(lo, hi) if lo == -1.0 && hi == 1.0 => b(B::ReluN1To1),
            UnaryOp::Clip(lo, hi) => c(
                custom::CLIP,
                MapWriter::new().float("min", lo).float("max", hi),
            ),
            UnaryOp::Sigmoid => b(B::Logistic),
            UnaryOp::HardSigmoid(alpha, beta) => c(
                custom::HARD_SIGMOID,
                MapWriter::new().float("alpha", alpha).float("beta", beta),
            ),
            UnaryOp::HardSwish => b(B::HardSwish),
            UnaryOp::Tanh => b(B::Tanh),
            UnaryOp::Elu(1.0) => b(B::Elu),
            UnaryOp::Elu(alpha) => c(custom::ELU, MapWriter::new().float("alpha", alpha)),
            UnaryOp::Softplus => c(custom::SOFTPLUS, MapWriter::new()),
            UnaryOp::Abs => b(B::Abs),
            UnaryOp::Neg => b(B::Neg),
            UnaryOp::Sqrt => b(B::Sqrt),
            UnaryOp::Rsqrt => b(B::Rsqrt),
            UnaryOp::Exp => b(B::Exp),
            UnaryOp::Log => b(B::Log),
            UnaryOp::Reciprocal => c(custom::RECIPROCAL, MapWriter::new()),
            UnaryOp::Floor => b(B::Floor),
            UnaryOp::Ceil => b(B::Ceil),
            UnaryOp::Round => b(B::Round),
            UnaryOp::Erf => c(custom::ERF, MapWriter::new()),
            UnaryOp::Sin => b(B::Sin),
            UnaryOp::Cos => b(B::Cos),
            UnaryOp::Not => b(B::LogicalNot),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn conv(
        &mut self,
        n: &Node,
        strides: [usize; 2],
        dilations: [usize; 2],
        p: Padding2d,
        act: FusedActivation,
        depth_multiplier: Option<usize>,
        groups: usize,
    ) -> Result<()> {
        let x = self.t(n.inputs[0]);
        let w = self.t(n.inputs[1]);
        let out = self.t(n.outputs[0]);
        let hw = [x.shape[1], x.shape[2]];
        let k = [w.shape[1], w.shape[2]];
        let out_hw = [out.shape[1], out.shape[2]];
        let mut ins = ids(&n.inputs);
        let mode = match padding::match_mode(p, out_hw, hw, k, strides, dilations) {
            Some(m) => m,
            None => {
                // Explicit padding TFLite cannot express: zero PAD, then a VALID convolution.
                let shape = vec![
                    x.shape[0],
                    x.shape[1] + p.top + p.bottom,
                    x.shape[2] + p.left + p.right,
                    x.shape[3],
                ];
                let name = self.unique_name(format!("{}/padded", n.name));
                let padded = self.add_tensor(name, x.dtype, &shape, x.quant.as_ref(), None)?;
                let pads = self.const_usize(
                    format!("{}/paddings", n.name),
                    vec![4, 2],
                    &[0, 0, p.top, p.bottom, p.left, p.right, 0, 0],
                )?;
                let mut e = Emit::builtin(
                    B::Pad,
                    vec![ins[0], pads],
                    vec![padded],
                    Some(BO::PadOptions(Box::default())),
                );
                e.sig = Sig {
                    in0: Some(x.dtype),
                    out0: Some(x.dtype),
                    max_rank: 4,
                    ..Sig::default()
                };
                e.info = e.info.bool("fused_pad", true);
                self.emit(None, e)?;
                ins[0] = padded;
                tfl::Padding::Valid
            }
        };
        let mut sig = self.sig(n);
        let (code, options) = match depth_multiplier {
            None => {
                sig.feature = groups != 1;
                (
                    B::Conv2d,
                    BO::Conv2DOptions(Box::new(tfl::Conv2DOptions {
                        padding: mode,
                        stride_w: i32_of(strides[1], "stride")?,
                        stride_h: i32_of(strides[0], "stride")?,
                        fused_activation_function: activation(act),
                        dilation_w_factor: i32_of(dilations[1], "dilation")?,
                        dilation_h_factor: i32_of(dilations[0], "dilation")?,
                        ..Default::default()
                    })),
                )
            }
            Some(m) => {
                sig.feature = dilations != [1, 1];
                (
                    B::DepthwiseConv2d,
                    BO::DepthwiseConv2DOptions(Box::new(tfl::DepthwiseConv2DOptions {
                        padding: mode,
                        stride_w: i32_of(strides[1], "stride")?,
                        stride_h: i32_of(strides[0], "stride")?,
                        depth_multiplier: i32_of(m, "depth multiplier")?,
                        fused_activation_function: activation(act),
                        dilation_w_factor: i32_of(dilations[1], "dilation")?,
                        dilation_h_factor: i32_of(dilations[0], "dilation")?,
                    })),
                )
            }
        };
        let no_bias = ins.len() == 2;
        if no_bias {
            // TFLite's CONV_2D kernel requires a bias: add zeros, dropped again on reading.
            let cout = out.shape[3];
            let (dt, bytes) = match x.dtype {
                DType::F32 => (DType::F32, TensorData::from(vec![0f32; cout])),
                DType::I16 => (DType::I64, TensorData::from(vec![0i64; cout])),
                _ => (DType::I32, TensorData::from(vec![0i32; cout])),
            };
            let name = self.unique_name(format!("{}/zero_bias", n.name));
            let b = self.add_tensor(name, dt, &[cout], None, Some(bytes.to_le_bytes()))?;
            ins.push(b);
        }
        let mut e = Emit::builtin(code, ins, ids(&n.outputs), Some(options));
        e.sig = sig;
        if no_bias {
            e.info = e.info.bool("zero_bias", true);
        }
        self.emit(Some(&n.name), e)
    }

    fn transpose_conv(&mut self, n: &Node, c: &ipukit_ir::ops::TransposeConv2d) -> Result<()> {
        let x = self.t(n.inputs[0]);
        let w = self.t(n.inputs[1]);
        let out = self.t(n.outputs[0]);
        let in_hw = [x.shape[1], x.shape[2]];
        let k = [w.shape[1], w.shape[2]];
        let out_hw = [out.shape[1], out.shape[2]];
        let p = c.padding;
        let mode = (c.groups == 1 && c.dilations == [1, 1])
            .then(|| {
                [tfl::Padding::Valid, tfl::Padding::Same]
                    .into_iter()
                    .find(|&m| {
                        padding::tconv_layout(m, in_hw, out_hw, k, c.strides)
                            .is_some_and(|(top, left)| top == p.top && left == p.left)
                    })
            })
            .flatten();
        let ins = ids(&n.inputs);
        let outs = ids(&n.outputs);
        let Some(mode) = mode else {
            let o = MapWriter::new()
                .uints("strides", &c.strides)
                .uints("dilations", &c.dilations)
                .uints("padding", &pad4(p))
                .uints("output_padding", &c.output_padding)
                .uint("groups", c.groups)
                .str("activation", activation_name(c.activation));
            return self.emit(
                Some(&n.name),
                Emit::custom(custom::TRANSPOSE_CONV, ins, outs, o),
            );
        };
        let shape = self.const_usize(format!("{}/output_shape", n.name), vec![4], &out.shape)?;
        let mut inputs = vec![shape, ins[1], ins[0]];
        inputs.extend(ins.get(2));
        let mut e = Emit::builtin(
            B::TransposeConv,
            inputs,
            outs,
            Some(BO::TransposeConvOptions(Box::new(
                tfl::TransposeConvOptions {
                    padding: mode,
                    stride_w: i32_of(c.strides[1], "stride")?,
                    stride_h: i32_of(c.strides[0], "stride")?,
                    fused_activation_function: activation(c.activation),
                    ..Default::default()
                },
            ))),
        );
        e.sig = Sig {
            in1: Some(w.dtype),
            feature: c.activation != FusedActivation::None,
            feature2: ins.len() == 3,
            ..self.sig(n)
        };
        let canon = padding::tconv_canonical(in_hw, k, c.strides, [p.top, p.left], out_hw);
        if canon != ([p.bottom, p.right], c.output_padding) {
            e.info = e
                .info
                .uints("padding", &pad4(p))
                .uints("output_padding", &c.output_padding);
        }
        self.emit(Some(&n.name), e)
    }

    fn finish(mut self, meta: &SimMetadata) -> Result<Vec<u8>> {
        let mut entries: Vec<(String, Vec<u8>)> = vec![
            (meta::STAGE.into(), meta.stage.as_str().as_bytes().to_vec()),
            (meta::PRODUCER.into(), meta.producer.as_bytes().to_vec()),
        ];
        if let Some(s) = &meta.source_sha256 {
            entries.push((meta::SOURCE_SHA256.into(), s.as_bytes().to_vec()));
        }
        if let Some(s) = &meta.input_config {
            entries.push((meta::INPUT_CONFIG.into(), s.as_bytes().to_vec()));
        }
        let graph_info = MapWriter::new()
            .int("format", GRAPH_FORMAT)
            .maps("ops", std::mem::take(&mut self.infos))
            .finish();
        entries.push((meta::GRAPH.into(), graph_info));
        for (k, v) in &meta.extra {
            entries.push((format!("{}{k}", meta::EXTRA_PREFIX), v.clone()));
        }
        let mut metadata = Vec::with_capacity(entries.len());
        for (name, bytes) in entries {
            self.buffers.push(Some(bytes));
            let buffer = u32::try_from(self.buffers.len() - 1)
                .map_err(|_| unwritable("too many buffers"))?;
            metadata.push(tfl::Metadata {
                name: Some(name),
                buffer,
            });
        }

        let mut b = planus::Builder::new();
        let buffers: Vec<planus::Offset<tfl::Buffer>> = self
            .buffers
            .iter()
            .map(|d| {
                let data = d.as_ref().map(|bytes| aligned_bytes(&mut b, bytes));
                tfl::Buffer::create(&mut b, data, 0u64, 0u64)
            })
            .collect();
        let subgraph = tfl::SubGraph {
            tensors: Some(self.tensors),
            inputs: Some(ids(&self.g.inputs)),
            outputs: Some(ids(&self.g.outputs)),
            operators: Some(self.ops),
            name: Some("main".into()),
            ..Default::default()
        };
        let description = format!("ipukit {} model", meta.stage);
        let model = tfl::Model::create(
            &mut b,
            3u32,
            self.codes,
            vec![subgraph],
            description.as_str(),
            buffers,
            (),
            metadata,
            (),
            (),
            (),
        );
        Ok(with_identifier(b.finish(model, None)))
    }
}

/// Serializes an owned TFLite model (for example one read with `tflite::Model::try_from` and
/// modified) with the `TFL3` file identifier.
///
/// Unlike [`write_sim`], buffer data is only 4-byte aligned. Tests and tools use it to build
/// TFLite files by hand.
pub fn encode_model(model: &tfl::Model) -> Vec<u8> {
    let mut b = planus::Builder::new();
    with_identifier(b.finish(model, None))
}

/// Inserts the `TFL3` file identifier after the root offset.
///
/// planus 1.3's `Builder::finish` writes the identifier *before* the root offset (fixed upstream
/// in planus-org/planus#377), so the buffer is finished without one and 16 bytes are inserted
/// after the root offset: the identifier and 12 bytes of padding. Every other offset in a
/// flatbuffer is relative, so only the root offset changes, and 16-byte alignment is kept.
fn with_identifier(finished: &[u8]) -> Vec<u8> {
    let mut root = [0u8; 4];
    root.copy_from_slice(&finished[..4]);
    let root = u32::from_le_bytes(root) + 16;
    let mut out = Vec::with_capacity(finished.len() + 16);
    out.extend_from_slice(&root.to_le_bytes());
    out.extend_from_slice(b"TFL3");
    out.extend_from_slice(&[0; 12]);
    out.extend_from_slice(&finished[4..]);
    out
}

/// `[top, left, bottom, right]`.
/// Options of the custom pooling operators: the window, and its `dilations` unless dense (so
/// that files of dense pools read by older versions stay as they were).
fn pool_options(p: &Pool2d) -> MapWriter {
    let o = MapWriter::new()
        .uints("kernel", &p.kernel)
        .uints("strides", &p.strides)
        .uints("padding", &pad4(p.padding))
        .bool("ceil_mode", p.ceil_mode);
    if p.dilations == [1, 1] {
        o
    } else {
        o.uints("dilations", &p.dilations)
    }
}

pub(crate) fn pad4(p: Padding2d) -> [usize; 4] {
    [p.top, p.left, p.bottom, p.right]
}

/// Writes a `[ubyte]` vector whose data starts on a 16-byte boundary of the final buffer, as the
/// schema's `force_align: 16` on `Buffer.data` asks (planus ignores that attribute).
fn aligned_bytes(b: &mut planus::Builder, data: &[u8]) -> planus::Offset<[u8]> {
    let len = (data.len() as u32).to_le_bytes();
    // SAFETY: each closure initialises every byte of the slice it is given: the first copies
    // `data.len()` bytes into a slice of that length, the second the 4 length bytes. The builder
    // grows backwards, so the length prefix lands right before the data: the data write leaves
    // the position 16-aligned, hence 4-aligned, and the 4-byte write needs no padding.
    unsafe {
        b.write_with(data.len(), 15, |_, out| {
            for (o, &v) in out.iter_mut().zip(data) {
                o.write(v);
            }
        });
        b.write_with(4, 3, |_, out| {
            for (o, &v) in out.iter_mut().zip(&len) {
                o.write(v);
            }
        });
    }
    b.current_offset()
}
