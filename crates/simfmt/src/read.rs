//! `.sim` flatbuffer → IR graph.
//!
//! Every access to the flatbuffer goes through planus' checked readers, every index is
//! range-checked, and element counts come from vectors that planus has checked to lie inside
//! the file, so a corrupt file gives an error, not a panic or an allocation larger than a small
//! multiple of the file.

use crate::error::{corrupt, unsupported, Result, SimError};
use crate::flex::{self, Value};
use crate::mapping::{activation_from_name, coord_from_name, custom, nearest_from_name};
use crate::meta::{self, SimMetadata, Stage};
use crate::padding;
use crate::resize;
use crate::tflite::{self as tfl, BuiltinOperator as B, BuiltinOptionsRef as BOR};
use crate::write::GRAPH_FORMAT;
use ipukit_ir::ops::{
    ArgReduce, ArgReduceKind, BinaryOp, Concat, Conv2d, DepthToSpace, DepthToSpaceMode,
    DepthwiseConv2d, Expand, FullyConnected, FusedActivation, Gather, MatMul, MaxPool2dWithIndices,
    Pad, PadMode, Padding2d, Pool2d, PoolKind, Reduce, ReduceOp, Reshape, Resize, ResizeMode,
    Slice, SliceAxis, Softmax, SpaceToDepth, Split, StorageOrder, Tile, Transpose, TransposeConv2d,
    UnaryOp,
};
use ipukit_ir::{DType, Graph, Node, Op, QuantParams, Tensor, TensorData, TensorId};
use planus::ReadAsRoot;
use std::collections::{BTreeMap, HashMap, HashSet};

impl From<planus::Error> for SimError {
    fn from(e: planus::Error) -> Self {
        SimError::Corrupt(e.to_string())
    }
}

/// Parses `.sim` bytes into a graph and its metadata.
///
/// Files written by [`crate::write_sim`] come back exactly as written. Other TFLite files
/// (a plain `.tflite`, a `.sim` from another toolchain) are read on a best-effort basis: node
/// names default to the name of their first output, a zero `PAD` feeding only a VALID
/// convolution is folded into the convolution's padding, and a missing stage is inferred from
/// the presence of quantization parameters or fixed-point operators (a file that says `float`
/// but has fixed-point operators is corrupt). Anything ipukit cannot represent is an
/// [`SimError::Unsupported`]; anything broken is an [`SimError::Corrupt`] or
/// [`SimError::NotRecognized`].
pub fn read_sim(bytes: &[u8]) -> Result<(Graph, SimMetadata)> {
    if bytes.len() < 8 {
        return Err(SimError::NotRecognized(format!(
            "{} bytes is too short for a .sim file",
            bytes.len()
        )));
    }
    if &bytes[4..8] != b"TFL3" {
        return Err(SimError::NotRecognized(
            "no TFL3 file identifier: not a .sim (TFLite flatbuffer) file".into(),
        ));
    }
    let model = tfl::ModelRef::read_as_root(bytes)?;
    let version = model.version()?;
    if version != 3 {
        return Err(unsupported(format!(
            "TFLite schema version {version} (expected 3)"
        )));
    }
    Reader::new(bytes, model)?.read()
}

enum Code {
    Builtin(B),
    Custom(String),
}

struct RawOp<'a> {
    code: usize,
    inputs: Vec<Option<usize>>,
    outputs: Vec<usize>,
    r: tfl::OperatorRef<'a>,
}

struct Reader<'a> {
    bytes: &'a [u8],
    model: tfl::ModelRef<'a>,
    subgraph: tfl::SubGraphRef<'a>,
    buffers: Option<planus::Vector<'a, planus::Result<tfl::BufferRef<'a>>>>,
    tensors: Vec<Tensor>,
    codes: Vec<Code>,
    ops: Vec<RawOp<'a>>,
    hints: Option<Vec<Vec<(String, Value)>>>,
    /// Tensors consumed as attributes (shapes, axes…).
    attr: HashSet<usize>,
    /// Padded tensor → (unpadded tensor, padding) for PADs folded into convolutions.
    fused: HashMap<usize, (usize, Padding2d)>,
}

fn usize_of(v: i32, what: &str) -> Result<usize> {
    usize::try_from(v).map_err(|_| corrupt(format!("negative {what} {v}")))
}

fn positive(v: i32, what: &str) -> Result<usize> {
    if v < 1 {
        return Err(corrupt(format!("{what} {v} must be at least 1")));
    }
    Ok(v as usize)
}

fn norm_axis(v: i64, rank: usize, what: &str) -> Result<usize> {
    let r = rank as i64;
    let a = if v < 0 { v + r } else { v };
    if a < 0 || a >= r {
        return Err(corrupt(format!(
            "{what} {v} is out of range for rank {rank}"
        )));
    }
    Ok(a as usize)
}

fn dtype_of(t: tfl::TensorType) -> Option<DType> {
    Some(match t {
        tfl::TensorType::Float32 => DType::F32,
        tfl::TensorType::Int64 => DType::I64,
        tfl::TensorType::Int32 => DType::I32,
        tfl::TensorType::Int16 => DType::I16,
        tfl::TensorType::Uint16 => DType::U16,
        tfl::TensorType::Int8 => DType::I8,
        tfl::TensorType::Uint8 => DType::U8,
        tfl::TensorType::Bool => DType::Bool,
        _ => return None,
    })
}

fn activation(a: tfl::ActivationFunctionType) -> Result<FusedActivation> {
    Ok(match a {
        tfl::ActivationFunctionType::None => FusedActivation::None,
        tfl::ActivationFunctionType::Relu => FusedActivation::Relu,
        tfl::ActivationFunctionType::Relu6 => FusedActivation::Relu6,
        tfl::ActivationFunctionType::ReluN1To1 => FusedActivation::ReluN1To1,
        other => return Err(unsupported(format!("fused activation {other:?}"))),
    })
}

fn no_activation(a: tfl::ActivationFunctionType, op: &str) -> Result<()> {
    if a != tfl::ActivationFunctionType::None {
        return Err(unsupported(format!("{op} with fused activation {a:?}")));
    }
    Ok(())
}

/// Options of a custom operator or hints of an operator: a decoded flexbuffer map.
struct Opts<'m> {
    map: &'m [(String, Value)],
    what: String,
}

impl Opts<'_> {
    fn get(&self, key: &str) -> Option<&Value> {
        flex::get(self.map, key)
    }

    fn req(&self, key: &str) -> Result<&Value> {
        self.get(key)
            .ok_or_else(|| corrupt(format!("{}: missing option '{key}'", self.what)))
    }

    fn err(&self, key: &str, e: String) -> SimError {
        corrupt(format!("{}: option '{key}': {e}", self.what))
    }

    fn usize(&self, key: &str) -> Result<usize> {
        let v = self.req(key)?.as_i64().map_err(|e| self.err(key, e))?;
        usize::try_from(v).map_err(|_| self.err(key, format!("negative value {v}")))
    }

    fn f32(&self, key: &str) -> Result<f32> {
        Ok(self.req(key)?.as_f64().map_err(|e| self.err(key, e))? as f32)
    }

    fn bool(&self, key: &str) -> Result<bool> {
        self.req(key)?.as_bool().map_err(|e| self.err(key, e))
    }

    fn opt_bool(&self, key: &str) -> Result<bool> {
        match self.get(key) {
            Some(v) => v.as_bool().map_err(|e| self.err(key, e)),
            None => Ok(false),
        }
    }

    fn str(&self, key: &str) -> Result<&str> {
        self.req(key)?.as_str().map_err(|e| self.err(key, e))
    }

    fn usizes(&self, key: &str, len: Option<usize>) -> Result<Vec<usize>> {
        let v = self.req(key)?.as_vec().map_err(|e| self.err(key, e))?;
        if let Some(n) = len {
            if v.len() != n {
                return Err(self.err(key, format!("expected {n} values, found {}", v.len())));
            }
        }
        v.iter()
            .map(|x| {
                let i = x.as_i64().map_err(|e| self.err(key, e))?;
                usize::try_from(i).map_err(|_| self.err(key, format!("negative value {i}")))
            })
            .collect()
    }

    fn pair(&self, key: &str) -> Result<[usize; 2]> {
        let v = self.usizes(key, Some(2))?;
        Ok([v[0], v[1]])
    }

    fn padding(&self, key: &str) -> Result<Padding2d> {
        let v = self.usizes(key, Some(4))?;
        Ok(Padding2d {
            top: v[0],
            left: v[1],
            bottom: v[2],
            right: v[3],
        })
    }

    fn f32s(&self, key: &str) -> Result<Vec<f32>> {
        let v = self.req(key)?.as_vec().map_err(|e| self.err(key, e))?;
        v.iter()
            .map(|x| x.as_f64().map(|v| v as f32).map_err(|e| self.err(key, e)))
            .collect()
    }

    fn f32_pair(&self, key: &str) -> Result<[f32; 2]> {
        let v = self.req(key)?.as_vec().map_err(|e| self.err(key, e))?;
        if v.len() != 2 {
            return Err(self.err(key, format!("expected 2 values, found {}", v.len())));
        }
        let f = |x: &Value| x.as_f64().map(|v| v as f32).map_err(|e| self.err(key, e));
        Ok([f(&v[0])?, f(&v[1])?])
    }
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8], model: tfl::ModelRef<'a>) -> Result<Reader<'a>> {
        let subgraphs = model
            .subgraphs()?
            .ok_or_else(|| corrupt("the model has no subgraph"))?;
        if subgraphs.len() != 1 {
            return Err(if subgraphs.is_empty() {
                corrupt("the model has no subgraph")
            } else {
                unsupported(format!(
                    "{} subgraphs (control flow); ipukit models have one",
                    subgraphs.len()
                ))
            });
        }
        let subgraph = subgraphs
            .get(0)
            .ok_or_else(|| corrupt("the model has no subgraph"))??;
        Ok(Reader {
            bytes,
            model,
            subgraph,
            buffers: model.buffers()?,
            tensors: Vec::new(),
            codes: Vec::new(),
            ops: Vec::new(),
            hints: None,
            attr: HashSet::new(),
            fused: HashMap::new(),
        })
    }

    fn buffer_data(&self, index: usize, what: &str) -> Result<Option<&'a [u8]>> {
        let buffers = self.buffers.as_ref();
        let n = buffers.map_or(0, |b| b.len());
        let b = buffers.and_then(|b| b.get(index)).ok_or_else(|| {
            corrupt(format!(
                "{what} refers to buffer {index}, but there are {n}"
            ))
        })??;
        if let Some(d) = b.data()? {
            return Ok(Some(d));
        }
        let (offset, size) = (b.offset()?, b.size()?);
        if offset > 1 {
            let data = usize::try_from(offset)
                .ok()
                .zip(usize::try_from(size).ok())
                .and_then(|(o, s)| self.bytes.get(o..o.checked_add(s)?))
                .ok_or_else(|| {
                    corrupt(format!(
                        "{what}: buffer {index} lies outside the file (offset {offset}, size {size})"
                    ))
                })?;
            return Ok(Some(data));
        }
        Ok(None)
    }

    fn read(mut self) -> Result<(Graph, SimMetadata)> {
        let entries = self.metadata()?;
        if let Some(g) = entries.get(meta::GRAPH) {
            self.hints = Some(parse_hints(g)?);
        }
        self.read_tensors()?;
        self.read_codes()?;
        self.read_ops()?;
        if let Some(h) = &self.hints {
            if h.len() != self.ops.len() {
                return Err(corrupt(format!(
                    "ipukit_graph describes {} operators, the model has {}",
                    h.len(),
                    self.ops.len()
                )));
            }
        }
        let io = |v: Option<planus::Vector<'a, i32>>, what: &str, n: usize| -> Result<Vec<usize>> {
            v.map(|v| v.iter().collect::<Vec<i32>>())
                .unwrap_or_default()
                .into_iter()
                .map(|i| {
                    usize::try_from(i).ok().filter(|&i| i < n).ok_or_else(|| {
                        corrupt(format!("{what} refers to tensor {i}, but there are {n}"))
                    })
                })
                .collect()
        };
        let nt = self.tensors.len();
        let inputs = io(self.subgraph.inputs()?, "a graph input", nt)?;
        let outputs = io(self.subgraph.outputs()?, "a graph output", nt)?;
        self.find_fused_pads(&outputs)?;

        let mut nodes = Vec::with_capacity(self.ops.len());
        for i in 0..self.ops.len() {
            if self.is_fused_pad(i) {
                continue;
            }
            nodes.push(self.node(i)?);
        }

        // Drop the attribute tensors and the fused pads' outputs that nothing else uses.
        let mut used: HashSet<usize> = inputs.iter().chain(&outputs).copied().collect();
        for n in &nodes {
            used.extend(n.inputs.iter().chain(&n.outputs).map(|t| t.0));
        }
        let mut map = vec![usize::MAX; nt];
        let mut tensors = Vec::with_capacity(nt);
        for (i, t) in std::mem::take(&mut self.tensors).into_iter().enumerate() {
            let synthetic = self.attr.contains(&i) || self.fused.contains_key(&i);
            if used.contains(&i) || !synthetic {
                map[i] = tensors.len();
                tensors.push(t);
            }
        }
        let re = |t: usize| TensorId(map[t]);
        for n in &mut nodes {
            n.inputs.iter_mut().for_each(|t| *t = re(t.0));
            n.outputs.iter_mut().for_each(|t| *t = re(t.0));
        }
        let graph = Graph {
            tensors,
            nodes,
            inputs: inputs.into_iter().map(re).collect(),
            outputs: outputs.into_iter().map(re).collect(),
        };
        graph
            .validate()
            .map_err(|e| corrupt(format!("the model is inconsistent: {e}")))?;
        let meta = sim_metadata(&entries, &graph)?;
        Ok((graph, meta))
    }

    /// The `ipukit_*` metadata entries.
    fn metadata(&self) -> Result<BTreeMap<String, Vec<u8>>> {
        let mut out = BTreeMap::new();
        let Some(md) = self.model.metadata()? else {
            return Ok(out);
        };
        for m in md.iter() {
            let m = m?;
            let Some(name) = m.name()? else { continue };
            if !name.starts_with("ipukit_") {
                continue;
            }
            let what = format!("metadata '{name}'");
            let data = self
                .buffer_data(m.buffer()? as usize, &what)?
                .unwrap_or_default();
            if out.insert(name.to_string(), data.to_vec()).is_some() {
                return Err(corrupt(format!("{what} appears twice")));
            }
        }
        Ok(out)
    }

    fn read_tensors(&mut self) -> Result<()> {
        let Some(ts) = self.subgraph.tensors()? else {
            return Ok(());
        };
        self.tensors.reserve(ts.len());
        for (i, t) in ts.iter().enumerate() {
            let t = t?;
            let name = match t.name()? {
                Some(n) => n.to_string(),
                None => format!("tensor_{i}"),
            };
            let what = format!("tensor {i} '{name}'");
            let ty = t.type_()?;
            let dtype = dtype_of(ty)
                .ok_or_else(|| unsupported(format!("{what} has element type {ty:?}")))?;
            if t.sparsity()?.is_some() {
                return Err(unsupported(format!("{what} is sparse")));
            }
            let shape: Vec<usize> = match t.shape()? {
                Some(s) => s
                    .iter()
                    .map(|d| usize_of(d, &format!("dimension of {what}")))
                    .collect::<Result<_>>()?,
                None => Vec::new(),
            };
            let numel = shape
                .iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d))
                .and_then(|n| n.checked_mul(dtype.size()))
                .filter(|&b| b <= isize::MAX as usize)
                .ok_or_else(|| {
                    corrupt(format!("{what} has an impossibly large shape {shape:?}"))
                })?
                / dtype.size();
            let buffer = t.buffer()? as usize;
            let data = if buffer == 0 {
                None
            } else {
                match self.buffer_data(buffer, &what)? {
                    Some(bytes) => {
                        let want = numel * dtype.size();
                        if bytes.len() != want {
                            return Err(corrupt(format!(
                                "{what} of shape {shape:?} ({dtype}) needs {want} bytes, its buffer has {}",
                                bytes.len()
                            )));
                        }
                        TensorData::from_le_bytes(dtype, bytes)
                    }
                    None => None,
                }
            };
            let quant = match t.quantization()? {
                Some(q) => Some(read_quant(&q, &what)?),
                None => None,
            };
            self.tensors.push(Tensor {
                name,
                dtype,
                shape,
                data,
                quant,
            });
        }
        Ok(())
    }

    fn read_codes(&mut self) -> Result<()> {
        let Some(codes) = self.model.operator_codes()? else {
            return Ok(());
        };
        for (i, c) in codes.iter().enumerate() {
            let c = c?;
            let deprecated = c.deprecated_builtin_code()? as i32;
            let code = c.builtin_code().map(|b| b as i32).unwrap_or(deprecated);
            let code = code.max(deprecated);
            let b = B::try_from(code).map_err(|_| {
                unsupported(format!(
                    "operator code {i} is an unknown builtin operator ({code})"
                ))
            })?;
            self.codes.push(if b == B::Custom {
                let name = c
                    .custom_code()?
                    .ok_or_else(|| corrupt(format!("custom operator code {i} has no name")))?;
                Code::Custom(name.to_string())
            } else {
                Code::Builtin(b)
            });
        }
        Ok(())
    }

    fn read_ops(&mut self) -> Result<()> {
        let Some(ops) = self.subgraph.operators()? else {
            return Ok(());
        };
        let nt = self.tensors.len();
        let nc = self.codes.len();
        for (i, op) in ops.iter().enumerate() {
            let op = op?;
            let code = op.opcode_index()? as usize;
            if code >= nc {
                return Err(corrupt(format!(
                    "operator {i} uses operator code {code}, but there are {nc}"
                )));
            }
            let idx = |v: i32| -> Result<Option<usize>> {
                if v == -1 {
                    return Ok(None);
                }
                usize::try_from(v)
                    .ok()
                    .filter(|&t| t < nt)
                    .map(Some)
                    .ok_or_else(|| {
                        corrupt(format!(
                            "operator {i} refers to tensor {v}, but there are {nt}"
                        ))
                    })
            };
            let inputs = op
                .inputs()?
                .map(|v| v.iter().map(idx).collect::<Result<Vec<_>>>())
                .transpose()?
                .unwrap_or_default();
            let outputs = op
                .outputs()?
                .map(|v| v.iter().map(idx).collect::<Result<Vec<_>>>())
                .transpose()?
                .unwrap_or_default()
                .into_iter()
                .map(|o| o.ok_or_else(|| corrupt(format!("operator {i} has an absent output"))))
                .collect::<Result<Vec<_>>>()?;
            self.ops.push(RawOp {
                code,
                inputs,
                outputs,
                r: op,
            });
        }
        Ok(())
    }

    fn builtin_of(&self, i: usize) -> Option<B> {
        match self.codes.get(self.ops.get(i)?.code)? {
            Code::Builtin(b) => Some(*b),
            Code::Custom(_) => None,
        }
    }

    fn hint(&self, i: usize) -> Option<Opts<'_>> {
        let h = self.hints.as_ref()?.get(i)?;
        Some(Opts {
            map: h,
            what: format!("ipukit_graph entry of operator {i}"),
        })
    }

    fn is_fused_pad(&self, i: usize) -> bool {
        self.builtin_of(i) == Some(B::Pad)
            && self.ops[i]
                .outputs
                .first()
                .is_some_and(|o| self.fused.contains_key(o))
    }

    /// Finds the PADs that only exist because TFLite's convolutions take SAME/VALID only.
    fn find_fused_pads(&mut self, graph_outputs: &[usize]) -> Result<()> {
        let mut consumers: HashMap<usize, Vec<(usize, usize)>> = HashMap::new();
        for (i, op) in self.ops.iter().enumerate() {
            for (pos, t) in op.inputs.iter().enumerate() {
                if let Some(t) = t {
                    consumers.entry(*t).or_default().push((i, pos));
                }
            }
        }
        for i in 0..self.ops.len() {
            let marked = match self.hint(i) {
                Some(h) => h.opt_bool("fused_pad")?,
                None => false,
            };
            if self.hints.is_some() && !marked {
                continue;
            }
            let fail = |why: &str| -> Result<()> {
                if marked {
                    Err(corrupt(format!(
                        "operator {i} is marked as a convolution's padding, but {why}"
                    )))
                } else {
                    Ok(())
                }
            };
            if self.builtin_of(i) != Some(B::Pad) {
                fail("it is not a PAD")?;
                continue;
            }
            let op = &self.ops[i];
            let (Some(Some(x)), Some(Some(pads)), [out]) =
                (op.inputs.first(), op.inputs.get(1), op.outputs.as_slice())
            else {
                fail("its inputs and outputs are wrong")?;
                continue;
            };
            let (x, pads, out) = (*x, *pads, *out);
            let conv = match consumers.get(&out).map(Vec::as_slice) {
                Some(&[(c, 0)]) if !graph_outputs.contains(&out) => c,
                _ => {
                    fail("its output is not read by exactly one convolution")?;
                    continue;
                }
            };
            let valid = match self.ops[conv].r.builtin_options()? {
                Some(BOR::Conv2DOptions(o)) => o.padding()? == tfl::Padding::Valid,
                Some(BOR::DepthwiseConv2DOptions(o)) => o.padding()? == tfl::Padding::Valid,
                _ => false,
            };
            let is_conv = matches!(
                self.builtin_of(conv),
                Some(B::Conv2d) | Some(B::DepthwiseConv2d)
            );
            let p = self.const_ints(pads).ok().filter(|p| {
                p.len() == 8
                    && p[0] == 0
                    && p[1] == 0
                    && p[6] == 0
                    && p[7] == 0
                    && p.iter().all(|&v| v >= 0)
            });
            let (true, true, Some(p), 4) = (valid, is_conv, p, self.tensors[x].shape.len()) else {
                fail("it does not feed a VALID convolution with spatial zero padding")?;
                continue;
            };
            self.attr.insert(pads);
            self.fused.insert(
                out,
                (
                    x,
                    Padding2d {
                        top: p[2] as usize,
                        bottom: p[3] as usize,
                        left: p[4] as usize,
                        right: p[5] as usize,
                    },
                ),
            );
        }
        Ok(())
    }

    /// The integer values of a constant tensor.
    fn const_ints(&self, t: usize) -> Result<Vec<i64>> {
        let tensor = &self.tensors[t];
        match (&tensor.data, tensor.dtype) {
            (
                Some(d),
                DType::I32 | DType::I64 | DType::I16 | DType::I8 | DType::U8 | DType::U16,
            ) => Ok(d.to_i64_vec()),
            (Some(_), dt) => Err(unsupported(format!(
                "tensor '{}' must hold integers, it holds {dt}",
                tensor.name
            ))),
            (None, _) => Err(unsupported(format!(
                "tensor '{}' must be a constant (dynamic shapes and axes are not supported)",
                tensor.name
            ))),
        }
    }

    /// Reads an attribute tensor (consumed by the operator, dropped from the graph).
    fn attr_ints(&mut self, t: usize) -> Result<Vec<i64>> {
        let v = self.const_ints(t)?;
        self.attr.insert(t);
        Ok(v)
    }

    fn attr_usizes(&mut self, t: usize, what: &str) -> Result<Vec<usize>> {
        self.attr_ints(t)?
            .into_iter()
            .map(|v| usize::try_from(v).map_err(|_| corrupt(format!("negative {what} {v}"))))
            .collect()
    }

    fn node(&mut self, i: usize) -> Result<Node> {
        let code_name = match &self.codes[self.ops[i].code] {
            Code::Builtin(b) => format!("{b:?}"),
            Code::Custom(c) => c.clone(),
        };
        let name = match self
            .hint(i)
            .map(|h| h.get("name").map(|v| v.as_str().map(str::to_string)))
        {
            Some(Some(Ok(n))) => n,
            Some(Some(Err(e))) => return Err(corrupt(format!("operator {i}: name: {e}"))),
            _ => self.ops[i]
                .outputs
                .first()
                .map(|&o| self.tensors[o].name.clone())
                .unwrap_or_else(|| format!("op_{i}")),
        };
        let (op, inputs) = match &self.codes[self.ops[i].code] {
            Code::Builtin(b) => {
                let b = *b;
                self.builtin(i, b)
            }
            Code::Custom(c) => {
                let c = c.clone();
                self.custom(i, &c)
            }
        }
        .map_err(|e| match e {
            SimError::Corrupt(m) => corrupt(format!("operator {i} ({code_name}, '{name}'): {m}")),
            SimError::Unsupported(m) => {
                unsupported(format!("operator {i} ({code_name}, '{name}'): {m}"))
            }
            other => other,
        })?;
        Ok(Node {
            name,
            op,
            inputs: inputs.into_iter().map(TensorId).collect(),
            outputs: self.ops[i].outputs.iter().map(|&o| TensorId(o)).collect(),
        })
    }

    /// Input `k` of operator `i`, which must be present.
    fn input(&self, i: usize, k: usize) -> Result<usize> {
        self.ops[i]
            .inputs
            .get(k)
            .copied()
            .flatten()
            .ok_or_else(|| corrupt(format!("input {k} is missing")))
    }

    fn n_inputs(&self, i: usize, lo: usize, hi: usize) -> Result<()> {
        let n = self.ops[i].inputs.len();
        if n < lo || n > hi {
            return Err(corrupt(format!("has {n} inputs, expected {lo}..={hi}")));
        }
        Ok(())
    }

    fn shape(&self, t: usize) -> &[usize] {
        &self.tensors[t].shape
    }

    fn rank_is(&self, t: usize, rank: usize) -> Result<()> {
        let s = self.shape(t);
        if s.len() != rank {
            return Err(corrupt(format!(
                "tensor '{}' must be {rank}-D, its shape is {s:?}",
                self.tensors[t].name
            )));
        }
        Ok(())
    }

    /// Data inputs `0..n` (all present), plus an optional bias at `n` for convolution-like ops.
    fn data_inputs(&self, i: usize, n: usize, optional_bias: bool) -> Result<Vec<usize>> {
        self.n_inputs(i, n, n + optional_bias as usize)?;
        let mut v = (0..n)
            .map(|k| self.input(i, k))
            .collect::<Result<Vec<_>>>()?;
        if optional_bias {
            if let Some(Some(b)) = self.ops[i].inputs.get(n) {
                v.push(*b);
            }
        }
        Ok(v)
    }

    fn options(&self, i: usize) -> Result<Option<BOR<'a>>> {
        Ok(self.ops[i].r.builtin_options()?)
    }

    fn builtin(&mut self, i: usize, b: B) -> Result<(Op, Vec<usize>)> {
        macro_rules! opts {
            ($variant:ident) => {
                match self.options(i)? {
                    Some(BOR::$variant(o)) => Some(o),
                    None => None,
                    Some(_) => return Err(corrupt("has options of the wrong type")),
                }
            };
        }
        macro_rules! req_opts {
            ($variant:ident) => {
                opts!($variant).ok_or_else(|| corrupt(concat!("has no ", stringify!($variant))))?
            };
        }
        let unary = |u: UnaryOp, s: &Self| -> Result<(Op, Vec<usize>)> {
            Ok((Op::Unary(u), s.data_inputs(i, 1, false)?))
        };
        let binary = |o: BinaryOp, s: &Self| -> Result<(Op, Vec<usize>)> {
            Ok((Op::Binary(o), s.data_inputs(i, 2, false)?))
        };
        let hint = |s: &Self| -> Option<Vec<(String, Value)>> {
            s.hints.as_ref().and_then(|h| h.get(i)).cloned()
        };
        let hint_opts = |m| opts_of(m, i);
        Ok(match b {
            B::Conv2d | B::DepthwiseConv2d => {
                let mut ins = self.data_inputs(i, 2, true)?;
                let (x, w) = (ins[0], ins[1]);
                self.rank_is(x, 4)?;
                self.rank_is(w, 4)?;
                let (mode, strides, dilations, act) = if b == B::Conv2d {
                    let o = req_opts!(Conv2DOptions);
                    (
                        o.padding()?,
                        [
                            positive(o.stride_h()?, "stride")?,
                            positive(o.stride_w()?, "stride")?,
                        ],
                        [
                            positive(o.dilation_h_factor()?, "dilation")?,
                            positive(o.dilation_w_factor()?, "dilation")?,
                        ],
                        activation(o.fused_activation_function()?)?,
                    )
                } else {
                    let o = req_opts!(DepthwiseConv2DOptions);
                    (
                        o.padding()?,
                        [
                            positive(o.stride_h()?, "stride")?,
                            positive(o.stride_w()?, "stride")?,
                        ],
                        [
                            positive(o.dilation_h_factor()?, "dilation")?,
                            positive(o.dilation_w_factor()?, "dilation")?,
                        ],
                        activation(o.fused_activation_function()?)?,
                    )
                };
                let xs = self.shape(x).to_vec();
                let ws = self.shape(w).to_vec();
                let h = hint(self);
                if ins.len() == 3 && hint_opts(&h).map_or(Ok(false), |h| h.opt_bool("zero_bias"))? {
                    // The writer added zeros because TFLite requires a bias.
                    self.attr.insert(ins[2]);
                    ins.pop();
                }
                let padding = match self.fused.get(&x) {
                    Some(&(src, p)) => {
                        ins[0] = src;
                        p
                    }
                    None => {
                        padding::padding2d(mode, [xs[1], xs[2]], [ws[1], ws[2]], strides, dilations)
                            .ok_or_else(|| {
                                corrupt(format!(
                                    "kernel {:?} does not fit input {xs:?}",
                                    [ws[1], ws[2]]
                                ))
                            })?
                            .0
                    }
                };
                if b == B::Conv2d {
                    if ws[3] == 0 || !xs[3].is_multiple_of(ws[3]) {
                        return Err(corrupt(format!(
                            "weight {ws:?} does not match input {xs:?}"
                        )));
                    }
                    (
                        Op::Conv2d(Conv2d {
                            strides,
                            dilations,
                            padding,
                            groups: xs[3] / ws[3],
                            activation: act,
                        }),
                        ins,
                    )
                } else {
                    if xs[3] == 0 || !ws[3].is_multiple_of(xs[3]) {
                        return Err(corrupt(format!(
                            "depthwise weight {ws:?} does not match input {xs:?}"
                        )));
                    }
                    (
                        Op::DepthwiseConv2d(DepthwiseConv2d {
                            strides,
                            dilations,
                            padding,
                            depth_multiplier: ws[3] / xs[3],
                            activation: act,
                        }),
                        ins,
                    )
                }
            }
            B::TransposeConv => {
                self.n_inputs(i, 3, 4)?;
                let (oshape, w, x) = (self.input(i, 0)?, self.input(i, 1)?, self.input(i, 2)?);
                self.rank_is(x, 4)?;
                self.rank_is(w, 4)?;
                let o = req_opts!(TransposeConvOptions);
                let mode = o.padding()?;
                let strides = [
                    positive(o.stride_h()?, "stride")?,
                    positive(o.stride_w()?, "stride")?,
                ];
                let act = activation(o.fused_activation_function()?)?;
                let out = self.attr_usizes(oshape, "output size")?;
                if out.len() != 4 {
                    return Err(corrupt(format!("output_shape {out:?} is not 4-D")));
                }
                let (xs, ws) = (self.shape(x).to_vec(), self.shape(w).to_vec());
                let in_hw = [xs[1], xs[2]];
                let k = [ws[1], ws[2]];
                let out_hw = [out[1], out[2]];
                let (top, left) = padding::tconv_layout(mode, in_hw, out_hw, k, strides)
                    .ok_or_else(|| {
                        unsupported(format!(
                            "output size {out:?} does not correspond to input {xs:?}"
                        ))
                    })?;
                let (after, extra) =
                    padding::tconv_canonical(in_hw, k, strides, [top, left], out_hw);
                let mut padding = Padding2d {
                    top,
                    left,
                    bottom: after[0],
                    right: after[1],
                };
                let mut output_padding = extra;
                let h = hint(self);
                if let Some(h) = hint_opts(&h) {
                    if h.get("padding").is_some() {
                        padding = h.padding("padding")?;
                        output_padding = h.pair("output_padding")?;
                    }
                }
                let mut ins = vec![x, w];
                if let Some(Some(b)) = self.ops[i].inputs.get(3) {
                    ins.push(*b);
                }
                (
                    Op::TransposeConv2d(TransposeConv2d {
                        strides,
                        dilations: [1, 1],
                        padding,
                        output_padding,
                        groups: 1,
                        activation: act,
                    }),
                    ins,
                )
            }
            B::FullyConnected => {
                let ins = self.data_inputs(i, 2, true)?;
                let o = req_opts!(FullyConnectedOptions);
                if o.weights_format()? != tfl::FullyConnectedOptionsWeightsFormat::Default {
                    return Err(unsupported("shuffled weights"));
                }
                if !o.keep_num_dims()? && self.shape(ins[0]).len() != 2 {
                    return Err(unsupported(
                        "keep_num_dims false on an input that is not 2-D",
                    ));
                }
                (
                    Op::FullyConnected(FullyConnected {
                        activation: activation(o.fused_activation_function()?)?,
                    }),
                    ins,
                )
            }
            B::BatchMatmul => {
                if let Some(o) = opts!(BatchMatMulOptions) {
                    if o.adj_x()? || o.adj_y()? {
                        return Err(unsupported("adjoint (transposed) operands"));
                    }
                }
                (Op::MatMul(MatMul {}), self.data_inputs(i, 2, false)?)
            }
            B::Add => {
                if let Some(o) = opts!(AddOptions) {
                    no_activation(o.fused_activation_function()?, "ADD")?;
                }
                binary(BinaryOp::Add, self)?
            }
            B::Sub => {
                if let Some(o) = opts!(SubOptions) {
                    no_activation(o.fused_activation_function()?, "SUB")?;
                }
                binary(BinaryOp::Sub, self)?
            }
            B::Mul => {
                if let Some(o) = opts!(MulOptions) {
                    no_activation(o.fused_activation_function()?, "MUL")?;
                }
                binary(BinaryOp::Mul, self)?
            }
            B::Div => {
                if let Some(o) = opts!(DivOptions) {
                    no_activation(o.fused_activation_function()?, "DIV")?;
                }
                binary(BinaryOp::Div, self)?
            }
            B::Pow => binary(BinaryOp::Pow, self)?,
            B::Maximum => binary(BinaryOp::Max, self)?,
            B::Minimum => binary(BinaryOp::Min, self)?,
            B::Prelu => binary(BinaryOp::PRelu, self)?,
            B::Equal => binary(BinaryOp::Equal, self)?,
            B::Less => binary(BinaryOp::Less, self)?,
            B::Greater => binary(BinaryOp::Greater, self)?,
            B::LogicalAnd => binary(BinaryOp::And, self)?,
            B::LogicalOr => binary(BinaryOp::Or, self)?,
            B::Relu => unary(UnaryOp::Relu, self)?,
            B::Relu6 => unary(UnaryOp::Clip(0.0, 6.0), self)?,
            B::ReluN1To1 => unary(UnaryOp::Clip(-1.0, 1.0), self)?,
            B::Relu0To1 => unary(UnaryOp::Clip(0.0, 1.0), self)?,
            B::LeakyRelu => {
                let alpha = match opts!(LeakyReluOptions) {
                    Some(o) => o.alpha()?,
                    None => 0.0,
                };
                unary(UnaryOp::LeakyRelu(alpha), self)?
            }
            B::Logistic => unary(UnaryOp::Sigmoid, self)?,
            B::Tanh => unary(UnaryOp::Tanh, self)?,
            B::HardSwish => unary(UnaryOp::HardSwish, self)?,
            B::Elu => unary(UnaryOp::Elu(1.0), self)?,
            B::Abs => unary(UnaryOp::Abs, self)?,
            B::Neg => unary(UnaryOp::Neg, self)?,
            B::Sqrt => unary(UnaryOp::Sqrt, self)?,
            B::Rsqrt => unary(UnaryOp::Rsqrt, self)?,
            B::Exp => unary(UnaryOp::Exp, self)?,
            B::Log => unary(UnaryOp::Log, self)?,
            B::Floor => unary(UnaryOp::Floor, self)?,
            B::Ceil => unary(UnaryOp::Ceil, self)?,
            B::Round => unary(UnaryOp::Round, self)?,
            B::Sin => unary(UnaryOp::Sin, self)?,
            B::Cos => unary(UnaryOp::Cos, self)?,
            B::LogicalNot => unary(UnaryOp::Not, self)?,
            B::SelectV2 => (Op::Where, self.data_inputs(i, 3, false)?),
            B::Cast => {
                let ins = self.data_inputs(i, 1, false)?;
                let out = self.ops[i]
                    .outputs
                    .first()
                    .ok_or_else(|| corrupt("has no output"))?;
                (Op::Cast(self.tensors[*out].dtype), ins)
            }
            B::Softmax | B::LogSoftmax => {
                let ins = self.data_inputs(i, 1, false)?;
                if b == B::Softmax {
                    let beta = req_opts!(SoftmaxOptions).beta()?;
                    if beta != 1.0 {
                        return Err(unsupported(format!("beta {beta} (only 1 is supported)")));
                    }
                }
                let rank = self.shape(ins[0]).len();
                if rank == 0 {
                    return Err(corrupt("input is a scalar"));
                }
                let s = Softmax { axis: rank - 1 };
                (
                    if b == B::Softmax {
                        Op::Softmax(s)
                    } else {
                        Op::LogSoftmax(s)
                    },
                    ins,
                )
            }
            B::MaxPool2d | B::AveragePool2d => {
                let ins = self.data_inputs(i, 1, false)?;
                self.rank_is(ins[0], 4)?;
                let o = req_opts!(Pool2DOptions);
                no_activation(o.fused_activation_function()?, "pooling")?;
                let kernel = [
                    positive(o.filter_height()?, "filter size")?,
                    positive(o.filter_width()?, "filter size")?,
                ];
                let strides = [
                    positive(o.stride_h()?, "stride")?,
                    positive(o.stride_w()?, "stride")?,
                ];
                let xs = self.shape(ins[0]);
                let (padding, _) =
                    padding::padding2d(o.padding()?, [xs[1], xs[2]], kernel, strides, [1, 1])
                        .ok_or_else(|| {
                            corrupt(format!("window {kernel:?} does not fit input {xs:?}"))
                        })?;
                let h = hint(self);
                let h = hint_opts(&h);
                let flag = |k: &str| h.as_ref().map_or(Ok(false), |h| h.opt_bool(k));
                let kind = if b == B::MaxPool2d {
                    PoolKind::Max
                } else {
                    PoolKind::Average {
                        count_include_pad: flag("count_include_pad")?,
                    }
                };
                (
                    Op::Pool2d(Pool2d {
                        kind,
                        kernel,
                        strides,
                        dilations: [1, 1],
                        padding,
                        ceil_mode: flag("ceil_mode")?,
                    }),
                    ins,
                )
            }
            B::Mean | B::Sum | B::ReduceMax | B::ReduceMin | B::ReduceProd => {
                self.n_inputs(i, 2, 2)?;
                let x = self.input(i, 0)?;
                let axes_t = self.input(i, 1)?;
                let rank = self.shape(x).len();
                let mut axes = self
                    .attr_ints(axes_t)?
                    .into_iter()
                    .map(|a| norm_axis(a, rank, "axis"))
                    .collect::<Result<Vec<_>>>()?;
                axes.sort_unstable();
                axes.dedup();
                let keep_dims = match opts!(ReducerOptions) {
                    Some(o) => o.keep_dims()?,
                    None => false,
                };
                let op = match b {
                    B::Mean => ReduceOp::Mean,
                    B::Sum => ReduceOp::Sum,
                    B::ReduceMax => ReduceOp::Max,
                    B::ReduceMin => ReduceOp::Min,
                    _ => ReduceOp::Prod,
                };
                (
                    Op::Reduce(Reduce {
                        op,
                        axes,
                        keep_dims,
                    }),
                    vec![x],
                )
            }
            B::ArgMax | B::ArgMin => {
                self.n_inputs(i, 2, 2)?;
                let x = self.input(i, 0)?;
                let a = self.attr_ints(self.input(i, 1)?)?;
                let [a] = a.as_slice() else {
                    return Err(corrupt(format!("axis {a:?} must be one value")));
                };
                let axis = norm_axis(*a, self.shape(x).len(), "axis")?;
                let kind = if b == B::ArgMax {
                    ArgReduceKind::Max
                } else {
                    ArgReduceKind::Min
                };
                (
                    Op::ArgReduce(ArgReduce {
                        kind,
                        axis,
                        keep_dims: false,
                        select_last_index: false,
                    }),
                    vec![x],
                )
            }
            B::Concatenation => {
                let n = self.ops[i].inputs.len();
                let ins = self.data_inputs(i, n.max(1), false)?;
                let o = req_opts!(ConcatenationOptions);
                no_activation(o.fused_activation_function()?, "CONCATENATION")?;
                let axis = norm_axis(o.axis()? as i64, self.shape(ins[0]).len(), "axis")?;
                (Op::Concat(Concat { axis }), ins)
            }
            B::Split => {
                self.n_inputs(i, 2, 2)?;
                let x = self.input(i, 1)?;
                let a = self.attr_ints(self.input(i, 0)?)?;
                let [a] = a.as_slice() else {
                    return Err(corrupt(format!("axis {a:?} must be one value")));
                };
                let xs = self.shape(x);
                let axis = norm_axis(*a, xs.len(), "axis")?;
                let n = self.ops[i].outputs.len();
                if n == 0 || !xs[axis].is_multiple_of(n) {
                    return Err(corrupt(format!(
                        "cannot split length {} into {n} equal parts",
                        xs[axis]
                    )));
                }
                let sizes = vec![xs[axis] / n; n];
                (Op::Split(Split { axis, sizes }), vec![x])
            }
            B::SplitV => {
                self.n_inputs(i, 3, 3)?;
                let x = self.input(i, 0)?;
                let sizes = self.attr_ints(self.input(i, 1)?)?;
                let a = self.attr_ints(self.input(i, 2)?)?;
                let [a] = a.as_slice() else {
                    return Err(corrupt(format!("axis {a:?} must be one value")));
                };
                let xs = self.shape(x);
                let axis = norm_axis(*a, xs.len(), "axis")?;
                let known: i64 = sizes.iter().filter(|&&s| s >= 0).sum();
                let rest = (xs[axis] as i64).checked_sub(known).filter(|&r| r >= 0);
                let sizes = sizes
                    .iter()
                    .map(|&s| match (s, rest) {
                        (s, _) if s >= 0 => Ok(s as usize),
                        (-1, Some(r)) => Ok(r as usize),
                        _ => Err(corrupt(format!("bad split sizes {sizes:?}"))),
                    })
                    .collect::<Result<Vec<_>>>()?;
                (Op::Split(Split { axis, sizes }), vec![x])
            }
            B::Reshape => {
                self.n_inputs(i, 1, 2)?;
                let x = self.input(i, 0)?;
                if let Some(Some(s)) = self.ops[i].inputs.get(1) {
                    if self.tensors[*s].data.is_some() {
                        self.attr.insert(*s);
                    }
                }
                let out = *self.ops[i]
                    .outputs
                    .first()
                    .ok_or_else(|| corrupt("has no output"))?;
                let shape = self.shape(out).to_vec();
                (Op::Reshape(Reshape { shape }), vec![x])
            }
            B::Transpose => {
                self.n_inputs(i, 2, 2)?;
                let x = self.input(i, 0)?;
                let perm = self.attr_usizes(self.input(i, 1)?, "permutation entry")?;
                (Op::Transpose(Transpose { perm }), vec![x])
            }
            B::StridedSlice => {
                self.n_inputs(i, 4, 4)?;
                let x = self.input(i, 0)?;
                let begin = self.attr_ints(self.input(i, 1)?)?;
                let end = self.attr_ints(self.input(i, 2)?)?;
                let strides = self.attr_ints(self.input(i, 3)?)?;
                let o = req_opts!(StridedSliceOptions);
                if o.ellipsis_mask()? != 0
                    || o.new_axis_mask()? != 0
                    || o.shrink_axis_mask()? != 0
                    || o.offset()?
                {
                    return Err(unsupported(
                        "ellipsis, new-axis, shrink-axis masks or offset mode",
                    ));
                }
                let (bm, em) = (o.begin_mask()?, o.end_mask()?);
                let xs = self.shape(x).to_vec();
                if begin.len() != xs.len() || end.len() != xs.len() || strides.len() != xs.len() {
                    return Err(corrupt(format!(
                        "begin/end/strides lengths do not match input rank {}",
                        xs.len()
                    )));
                }
                let axes = (0..xs.len())
                    .map(|a| {
                        let bit = |m: i32| a < 32 && (m >> a) & 1 == 1;
                        slice_axis(begin[a], end[a], strides[a], bit(bm), bit(em), xs[a])
                    })
                    .collect::<Result<Vec<_>>>()?;
                (Op::Slice(Slice { axes }), vec![x])
            }
            B::Pad | B::Padv2 | B::MirrorPad => {
                let n = if b == B::Padv2 { 3 } else { 2 };
                self.n_inputs(i, 2, n)?;
                let x = self.input(i, 0)?;
                let flat = self.attr_usizes(self.input(i, 1)?, "padding")?;
                let rank = self.shape(x).len();
                if flat.len() != 2 * rank {
                    return Err(corrupt(format!(
                        "{} padding values for a rank-{rank} input",
                        flat.len()
                    )));
                }
                let pads = flat.chunks_exact(2).map(|c| [c[0], c[1]]).collect();
                let mode = match b {
                    B::MirrorPad => {
                        let m = req_opts!(MirrorPadOptions).mode()?;
                        if m != tfl::MirrorPadMode::Reflect {
                            return Err(unsupported(format!("mirror pad mode {m:?}")));
                        }
                        PadMode::Reflect
                    }
                    B::Padv2 if self.ops[i].inputs.len() == 3 => {
                        let c = self.input(i, 2)?;
                        let t = &self.tensors[c];
                        let v = match &t.data {
                            Some(d) if d.len() == 1 => d.to_f32_vec()[0],
                            _ => {
                                return Err(unsupported(
                                    "constant_values must be a one-element constant",
                                ))
                            }
                        };
                        self.attr.insert(c);
                        PadMode::Constant(v)
                    }
                    _ => PadMode::Constant(0.0),
                };
                (Op::Pad(Pad { pads, mode }), vec![x])
            }
            B::Gather => {
                let ins = self.data_inputs(i, 2, false)?;
                let o = req_opts!(GatherOptions);
                if o.batch_dims()? != 0 {
                    return Err(unsupported("batch_dims"));
                }
                let axis = norm_axis(o.axis()? as i64, self.shape(ins[0]).len(), "axis")?;
                (Op::Gather(Gather { axis }), ins)
            }
            B::ResizeBilinear | B::ResizeNearestNeighbor => {
                self.n_inputs(i, 2, 2)?;
                let x = self.input(i, 0)?;
                self.rank_is(x, 4)?;
                let size = self.attr_usizes(self.input(i, 1)?, "size")?;
                let [oh, ow] = size.as_slice() else {
                    return Err(corrupt(format!("size {size:?} must have 2 values")));
                };
                let nearest = b == B::ResizeNearestNeighbor;
                let (align, hp) = if nearest {
                    let o = req_opts!(ResizeNearestNeighborOptions);
                    (o.align_corners()?, o.half_pixel_centers()?)
                } else {
                    let o = req_opts!(ResizeBilinearOptions);
                    (o.align_corners()?, o.half_pixel_centers()?)
                };
                let xs = self.shape(x);
                let in_hw = [xs[1], xs[2]];
                let mut r = resize::from_tflite(nearest, align, hp, in_hw, [*oh, *ow])
                    .ok_or_else(|| unsupported("align_corners together with half_pixel_centers"))?;
                let h = hint(self);
                if let Some(h) = hint_opts(&h) {
                    if h.get("coord").is_some() {
                        let c = h.str("coord")?;
                        r.coord = coord_from_name(c)
                            .ok_or_else(|| corrupt(format!("unknown coordinate mode '{c}'")))?;
                    }
                    if h.get("nearest_mode").is_some() {
                        let m = h.str("nearest_mode")?;
                        r.mode = ResizeMode::Nearest(
                            nearest_from_name(m)
                                .ok_or_else(|| corrupt(format!("unknown nearest mode '{m}'")))?,
                        );
                    }
                    if h.get("scales").is_some() {
                        r.scales = h.f32_pair("scales")?;
                    }
                }
                (Op::Resize(r), vec![x])
            }
            B::DepthToSpace => {
                let ins = self.data_inputs(i, 1, false)?;
                let block = positive(req_opts!(DepthToSpaceOptions).block_size()?, "block size")?;
                (
                    Op::DepthToSpace(DepthToSpace {
                        block,
                        mode: DepthToSpaceMode::Dcr,
                    }),
                    ins,
                )
            }
            B::SpaceToDepth => {
                let ins = self.data_inputs(i, 1, false)?;
                let block = positive(req_opts!(SpaceToDepthOptions).block_size()?, "block size")?;
                (Op::SpaceToDepth(SpaceToDepth { block }), ins)
            }
            B::BroadcastTo => {
                self.n_inputs(i, 2, 2)?;
                let x = self.input(i, 0)?;
                let mut shape = self.attr_usizes(self.input(i, 1)?, "dimension")?;
                let h = hint(self);
                if let Some(h) = hint_opts(&h) {
                    if h.get("expand_shape").is_some() {
                        shape = h.usizes("expand_shape", None)?;
                    }
                }
                (Op::Expand(Expand { shape }), vec![x])
            }
            B::Tile => {
                self.n_inputs(i, 2, 2)?;
                let x = self.input(i, 0)?;
                let repeats = self.attr_usizes(self.input(i, 1)?, "multiple")?;
                (Op::Tile(Tile { repeats }), vec![x])
            }
            other => {
                return Err(unsupported(format!(
                    "builtin operator {other:?} is not supported by ipukit"
                )))
            }
        })
    }

    fn custom(&mut self, i: usize, code: &str) -> Result<(Op, Vec<usize>)> {
        let r = &self.ops[i].r;
        if r.custom_options_format()? != tfl::CustomOptionsFormat::Flexbuffers {
            return Err(unsupported("custom options are not flexbuffers"));
        }
        let bytes: &[u8] = match r.custom_options()? {
            Some(b) => b,
            None => {
                let (off, size) = (
                    r.large_custom_options_offset()?,
                    r.large_custom_options_size()?,
                );
                if off > 1 {
                    usize::try_from(off)
                        .ok()
                        .zip(usize::try_from(size).ok())
                        .and_then(|(o, s)| self.bytes.get(o..o.checked_add(s)?))
                        .ok_or_else(|| corrupt("custom options lie outside the file"))?
                } else {
                    &[]
                }
            }
        };
        let decoded = if bytes.is_empty() {
            Value::Map(Vec::new())
        } else {
            flex::decode(bytes).map_err(|e| corrupt(format!("custom options: {e}")))?
        };
        let map = decoded
            .as_map()
            .map_err(|e| corrupt(format!("custom options: {e}")))?;
        let o = Opts {
            map,
            what: "custom options".into(),
        };
        let unary = |u: UnaryOp, s: &Self| -> Result<(Op, Vec<usize>)> {
            Ok((Op::Unary(u), s.data_inputs(i, 1, false)?))
        };
        let one = self.data_inputs(i, 1, false);
        Ok(match code {
            custom::CLIP => unary(UnaryOp::Clip(o.f32("min")?, o.f32("max")?), self)?,
            custom::HARD_SIGMOID => {
                unary(UnaryOp::HardSigmoid(o.f32("alpha")?, o.f32("beta")?), self)?
            }
            custom::ELU => unary(UnaryOp::Elu(o.f32("alpha")?), self)?,
            custom::SOFTPLUS => unary(UnaryOp::Softplus, self)?,
            custom::RECIPROCAL => unary(UnaryOp::Reciprocal, self)?,
            custom::ERF => unary(UnaryOp::Erf, self)?,
            custom::IDENTITY => (Op::Identity, one?),
            custom::SOFTMAX => (
                Op::Softmax(Softmax {
                    axis: o.usize("axis")?,
                }),
                one?,
            ),
            custom::LOG_SOFTMAX => (
                Op::LogSoftmax(Softmax {
                    axis: o.usize("axis")?,
                }),
                one?,
            ),
            custom::MAX_POOL | custom::AVG_POOL => {
                let kind = if code == custom::MAX_POOL {
                    PoolKind::Max
                } else {
                    PoolKind::Average {
                        count_include_pad: o.bool("count_include_pad")?,
                    }
                };
                (Op::Pool2d(pool_options(&o, kind)?), one?)
            }
            custom::MAX_POOL_WITH_INDICES => (
                Op::MaxPool2dWithIndices(MaxPool2dWithIndices {
                    pool: pool_options(&o, PoolKind::Max)?,
                    storage_order: match o.usize("storage_order")? {
                        0 => StorageOrder::RowMajor,
                        1 => StorageOrder::ColumnMajor,
                        v => return Err(o.err("storage_order", format!("unknown value {v}"))),
                    },
                }),
                one?,
            ),
            custom::REDUCE_L2 => (
                Op::Reduce(Reduce {
                    op: ReduceOp::L2,
                    axes: o.usizes("axes", None)?,
                    keep_dims: o.bool("keep_dims")?,
                }),
                one?,
            ),
            custom::ARG_MAX | custom::ARG_MIN => (
                Op::ArgReduce(ArgReduce {
                    kind: if code == custom::ARG_MAX {
                        ArgReduceKind::Max
                    } else {
                        ArgReduceKind::Min
                    },
                    axis: o.usize("axis")?,
                    keep_dims: o.bool("keep_dims")?,
                    select_last_index: o.opt_bool("select_last_index")?,
                }),
                one?,
            ),
            custom::PAD => {
                let flat = o.usizes("pads", None)?;
                if flat.len() % 2 != 0 {
                    return Err(corrupt("an odd number of pads"));
                }
                let mode = match o.str("mode")? {
                    "constant" => PadMode::Constant(o.f32("value")?),
                    "reflect" => PadMode::Reflect,
                    "edge" => PadMode::Edge,
                    "wrap" => PadMode::Wrap,
                    m => return Err(corrupt(format!("unknown pad mode '{m}'"))),
                };
                (
                    Op::Pad(Pad {
                        pads: flat.chunks_exact(2).map(|c| [c[0], c[1]]).collect(),
                        mode,
                    }),
                    one?,
                )
            }
            custom::GATHER => (
                Op::Gather(Gather {
                    axis: o.usize("axis")?,
                }),
                self.data_inputs(i, 2, false)?,
            ),
            custom::RESIZE => {
                let c = o.str("coordinate_transformation_mode")?;
                let coord = coord_from_name(c)
                    .ok_or_else(|| corrupt(format!("unknown coordinate mode '{c}'")))?;
                let mode = match o.str("mode")? {
                    "linear" => ResizeMode::Linear,
                    "cubic" => {
                        let a = o.f32s("cubic_coeff_a")?;
                        ResizeMode::Cubic {
                            coeff_a: a
                                .first()
                                .copied()
                                .ok_or_else(|| corrupt("empty cubic_coeff_a"))?,
                            exclude_outside: o.opt_bool("exclude_outside")?,
                        }
                    }
                    "nearest" => {
                        let m = o.str("nearest_mode")?;
                        ResizeMode::Nearest(
                            nearest_from_name(m)
                                .ok_or_else(|| corrupt(format!("unknown nearest mode '{m}'")))?,
                        )
                    }
                    m => return Err(corrupt(format!("unknown resize mode '{m}'"))),
                };
                (
                    Op::Resize(Resize {
                        mode,
                        coord,
                        size: o.pair("size")?,
                        scales: o.f32_pair("scales")?,
                    }),
                    one?,
                )
            }
            custom::DEPTH_TO_SPACE => {
                let mode = match o.str("mode")? {
                    "CRD" => DepthToSpaceMode::Crd,
                    "DCR" => DepthToSpaceMode::Dcr,
                    m => return Err(corrupt(format!("unknown depth-to-space mode '{m}'"))),
                };
                (
                    Op::DepthToSpace(DepthToSpace {
                        block: o.usize("block_size")?,
                        mode,
                    }),
                    one?,
                )
            }
            custom::TRANSPOSE_CONV => {
                let a = o.str("activation")?;
                (
                    Op::TransposeConv2d(TransposeConv2d {
                        strides: o.pair("strides")?,
                        dilations: o.pair("dilations")?,
                        padding: o.padding("padding")?,
                        output_padding: o.pair("output_padding")?,
                        groups: o.usize("groups")?,
                        activation: activation_from_name(a)
                            .ok_or_else(|| corrupt(format!("unknown activation '{a}'")))?,
                    }),
                    self.data_inputs(i, 2, true)?,
                )
            }
            code if crate::fixed::is_fixed_code(code) => {
                let d = crate::fixed::decode(code, map, &self.ops[i].inputs, &self.tensors)?;
                self.attr.extend(d.table);
                (d.op, d.inputs)
            }
            other => {
                return Err(unsupported(format!(
                    "custom operator '{other}' is not an ipukit operator"
                )))
            }
        })
    }
}

/// One axis of a TFLite STRIDED_SLICE (without ellipsis/new-axis/shrink masks), following
/// tensorflow/lite/kernels/internal/strided_slice_logic.h.
/// The window of an `IPU_MaxPool2d`, `IPU_AvgPool2d` or `IPU_MaxPool2dWithIndices`
/// (`dilations` is optional: files written before it existed hold dense windows).
fn pool_options(o: &Opts<'_>, kind: PoolKind) -> Result<Pool2d> {
    let dilations = match o.get("dilations") {
        Some(_) => o.pair("dilations")?,
        None => [1, 1],
    };
    if dilations.contains(&0) {
        return Err(o.err("dilations", "must be positive".into()));
    }
    Ok(Pool2d {
        kind,
        kernel: o.pair("kernel")?,
        strides: o.pair("strides")?,
        dilations,
        padding: o.padding("padding")?,
        ceil_mode: o.bool("ceil_mode")?,
    })
}

fn slice_axis(
    begin: i64,
    end: i64,
    step: i64,
    begin_masked: bool,
    end_masked: bool,
    dim: usize,
) -> Result<SliceAxis> {
    if step == 0 {
        return Err(corrupt("stride 0"));
    }
    let d = dim as i64;
    let (lo, hi) = if step > 0 { (0, d) } else { (-1, d - 1) };
    let norm = |v: i64| if v < 0 { v.saturating_add(d) } else { v };
    let start = if begin_masked {
        if step > 0 {
            0
        } else {
            d - 1
        }
    } else {
        norm(begin).clamp(lo, hi)
    };
    let stop = if end_masked {
        if step > 0 {
            d
        } else {
            -1
        }
    } else {
        norm(end).clamp(lo, hi)
    };
    let len = if step > 0 {
        if stop > start {
            (stop - start + step - 1) / step
        } else {
            0
        }
    } else if start > stop {
        (start - stop + (-step) - 1) / (-step)
    } else {
        0
    };
    Ok(SliceAxis {
        start: start.max(0) as usize,
        step,
        len: len as usize,
    })
}

fn read_quant(q: &tfl::QuantizationParametersRef<'_>, what: &str) -> Result<QuantParams> {
    if q.details()?.is_some() {
        return Err(unsupported(format!(
            "{what} has custom quantization details"
        )));
    }
    let f = |v: Option<planus::Vector<'_, f32>>| v.map(|v| v.iter().collect()).unwrap_or_default();
    Ok(QuantParams {
        scale: f(q.scale()?),
        zero_point: q
            .zero_point()?
            .map(|v| v.iter().collect())
            .unwrap_or_default(),
        min: f(q.min()?),
        max: f(q.max()?),
        quantized_dimension: usize_of(q.quantized_dimension()?, "quantized_dimension")?,
    })
}

fn opts_of(m: &Option<Vec<(String, Value)>>, i: usize) -> Option<Opts<'_>> {
    m.as_ref().map(|map| Opts {
        map,
        what: format!("ipukit_graph entry of operator {i}"),
    })
}

fn parse_hints(bytes: &[u8]) -> Result<Vec<Vec<(String, Value)>>> {
    let bad = |e: String| corrupt(format!("ipukit_graph metadata: {e}"));
    let v = flex::decode(bytes).map_err(bad)?;
    let m = v.as_map().map_err(bad)?;
    let format = flex::get(m, "format")
        .ok_or_else(|| bad("no format".into()))?
        .as_i64()
        .map_err(bad)?;
    if format > GRAPH_FORMAT {
        return Err(unsupported(format!(
            "ipukit_graph format {format}: the file was written by a newer ipukit"
        )));
    }
    let ops = flex::get(m, "ops")
        .ok_or_else(|| bad("no ops".into()))?
        .as_vec()
        .map_err(bad)?;
    ops.iter()
        .map(|o| o.as_map().map(<[_]>::to_vec).map_err(bad))
        .collect()
}

fn sim_metadata(entries: &BTreeMap<String, Vec<u8>>, graph: &Graph) -> Result<SimMetadata> {
    let text = |k: &str| -> Result<Option<String>> {
        entries
            .get(k)
            .map(|b| {
                String::from_utf8(b.clone())
                    .map_err(|_| corrupt(format!("metadata '{k}' is not UTF-8 text")))
            })
            .transpose()
    };
    let fixed_ops = graph.nodes.iter().any(|n| n.op.is_fixed_point());
    let stage = match text(meta::STAGE)? {
        Some(s) => Stage::parse(&s).ok_or_else(|| {
            corrupt(format!(
                "metadata '{}' is '{s}', expected float or fixed",
                meta::STAGE
            ))
        })?,
        None if graph.tensors.iter().any(|t| t.quant.is_some()) || fixed_ops => Stage::Fixed,
        None => Stage::Float,
    };
    if stage == Stage::Float && fixed_ops {
        return Err(corrupt(format!(
            "metadata '{}' says float, but the model has fixed-point operators",
            meta::STAGE
        )));
    }
    let extra = entries
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix(meta::EXTRA_PREFIX)
                .map(|key| (key.to_string(), v.clone()))
        })
        .collect();
    Ok(SimMetadata {
        stage,
        producer: text(meta::PRODUCER)?.unwrap_or_default(),
        source_sha256: text(meta::SOURCE_SHA256)?,
        input_config: text(meta::INPUT_CONFIG)?,
        extra,
    })
}
