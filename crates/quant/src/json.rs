//! Quantization-parameter files: the JSON of the seeds' `save_quant_param.py`.
//!
//! A file is a JSON list of entries, one per tensor:
//!
//! ```json
//! [
//!   { "name": "conv1/weights", "min": [-4.555312, -2.876907], "max": [7.364561, 3.960804], "bit": 8 },
//!   { "name": "relu1", "min": [0.0], "max": [6.0], "bit": 16 }
//! ]
//! ```
//!
//! * `name`: the tensor's name in the float model (`get_tensor_details`);
//! * `min`, `max`: one value, or one per channel — output channels for weights (the number of
//!   kernels), the last (C) axis for every other tensor;
//! * `bit`: 8 or 16;
//! * `data` (optional): the constant's values as a nested list in the tensor's shape (or a
//!   flat list), replacing the float model's values.
//!
//! [`export_fixed`] writes the entries of a fixed graph; [`import`] checks a file against a
//! float graph and returns the accepted entries ([`QuantOverrides`]) together with every
//! rejected one ([`Rejection`]) — imported values win unless invalid, and each rejection is
//! reported. Python's `json` writes `NaN` and `Infinity` for non-finite floats; they are read
//! (and rejected as non-finite) rather than failing the whole file.
//!
//! The seeds' tool also offers a Pickle output; ipukit reads and writes JSON only. Loading a
//! pickle executes arbitrary code chosen by whoever wrote the file, so it is not a format a
//! conversion tool should open; `save_quant_param.py --output_mode JSON` gives the same data.

use crate::error::{QuantError, Result};
use crate::stats::weight_axis;
use ipukit_ir::{DType, Graph, QuantParams, TensorData, TensorId};
use serde_json::{Map, Number, Value as Json};
use std::collections::BTreeMap;
use std::path::Path;

/// One entry of a quantization-parameter file.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantParamEntry {
    /// Tensor name.
    pub name: String,
    /// Minimum per channel (or one value).
    pub min: Vec<f32>,
    /// Maximum per channel (or one value).
    pub max: Vec<f32>,
    /// Bit width (8 or 16).
    pub bit: u32,
    /// Constant data (row-major) and its shape, if given.
    pub data: Option<(Vec<usize>, Vec<f32>)>,
}

/// An accepted imported entry, resolved against the float graph.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantOverride {
    /// The tensor it applies to.
    pub tensor: TensorId,
    /// Minimum: one value or one per channel.
    pub min: Vec<f32>,
    /// Maximum: one value or one per channel.
    pub max: Vec<f32>,
    /// 8 or 16.
    pub bit: u32,
    /// Replacement constant data (row-major, the tensor's shape), if given.
    pub data: Option<Vec<f32>>,
}

/// Accepted imported entries by tensor name.
pub type QuantOverrides = BTreeMap<String, QuantOverride>;

/// An entry (or one problem of an entry) that was not imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Position of the entry in the file (0-based).
    pub index: usize,
    /// The entry's tensor name (`#<index>` when it has none).
    pub name: String,
    /// Why.
    pub reason: String,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "rejected: {}: {}", self.name, self.reason)
    }
}

/// The result of an import: what will be used, and what was refused and why.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ImportReport {
    /// Entries that passed every check.
    pub accepted: QuantOverrides,
    /// Every problem found, in file order (an entry with several problems has several).
    pub rejected: Vec<Rejection>,
}

/// Options of [`export_fixed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExportOptions {
    /// Include the (dequantized) values of constant tensors as `data`.
    pub include_data: bool,
}

fn bit_of(dtype: DType) -> Option<u32> {
    match dtype {
        DType::I8 | DType::U8 => Some(8),
        DType::I16 | DType::U16 => Some(16),
        _ => None,
    }
}

fn int_range(dtype: DType) -> (f64, f64) {
    match dtype {
        DType::I8 => (-128.0, 127.0),
        DType::U8 => (0.0, 255.0),
        DType::I16 => (-32768.0, 32767.0),
        DType::U16 => (0.0, 65535.0),
        _ => (0.0, 0.0),
    }
}

/// The per-channel min/max a tensor's quantization parameters stand for: the stored
/// calibrated `min`/`max`, or else the ends of the integer range, `s·(q_min - z)` and
/// `s·(q_max - z)`.
fn params_range(q: &QuantParams, dtype: DType) -> (Vec<f32>, Vec<f32>) {
    if !q.min.is_empty() && q.min.len() == q.max.len() {
        return (q.min.clone(), q.max.clone());
    }
    let (qmin, qmax) = int_range(dtype);
    let z = |c: usize| {
        q.zero_point
            .get(c)
            .or(q.zero_point.first())
            .copied()
            .unwrap_or(0) as f64
    };
    let mins = (0..q.scale.len())
        .map(|c| (f64::from(q.scale[c]) * (qmin - z(c))) as f32)
        .collect();
    let maxs = (0..q.scale.len())
        .map(|c| (f64::from(q.scale[c]) * (qmax - z(c))) as f32)
        .collect();
    (mins, maxs)
}

/// Dequantized values of a quantized constant, `s_c·(q - z_c)` along `quantized_dimension`.
fn dequantize(shape: &[usize], data: &TensorData, q: &QuantParams) -> Option<Vec<f32>> {
    let ints = data.to_i64_vec();
    if q.scale.is_empty() {
        return None;
    }
    let axis = q.quantized_dimension.min(shape.len().saturating_sub(1));
    let dim = shape.get(axis).copied().unwrap_or(1).max(1);
    let inner: usize = shape.iter().skip(axis + 1).product();
    let per_channel = q.scale.len() == dim && dim > 1;
    Some(
        ints.iter()
            .enumerate()
            .map(|(i, &v)| {
                let c = if per_channel {
                    (i / inner.max(1)) % dim
                } else {
                    0
                };
                let s = f64::from(q.scale.get(c).copied().unwrap_or(q.scale[0]));
                let z = q
                    .zero_point
                    .get(c)
                    .or(q.zero_point.first())
                    .copied()
                    .unwrap_or(0);
                (s * (v - z) as f64) as f32
            })
            .collect(),
    )
}

/// The entries of a fixed graph: every 8- or 16-bit tensor with quantization parameters, in
/// tensor order. INT32/INT64 biases (their scale is `s_in · s_w`) and float tensors have no
/// entry.
pub fn export_fixed(graph: &Graph, opts: ExportOptions) -> Vec<QuantParamEntry> {
    graph
        .tensors
        .iter()
        .filter_map(|t| {
            let bit = bit_of(t.dtype)?;
            let q = t.quant.as_ref()?;
            let (min, max) = params_range(q, t.dtype);
            if min.is_empty() {
                return None;
            }
            let data = if opts.include_data {
                t.data
                    .as_ref()
                    .and_then(|d| dequantize(&t.shape, d, q))
                    .map(|v| (t.shape.clone(), v))
            } else {
                None
            };
            Some(QuantParamEntry {
                name: t.name.clone(),
                min,
                max,
                bit,
                data,
            })
        })
        .collect()
}

fn num(x: f32) -> Json {
    Number::from_f64(f64::from(x)).map_or(Json::Null, |n| {
        // f32 values print in their shortest f32 form (7.364561, not 7.364560604095459).
        serde_json::from_str::<Json>(&format!("{x:?}")).unwrap_or(Json::Number(n))
    })
}

fn nested(shape: &[usize], data: &[f32]) -> Json {
    match shape.split_first() {
        None => data.first().map_or(Json::Null, |&x| num(x)),
        Some((_, [])) => Json::Array(data.iter().map(|&x| num(x)).collect()),
        Some((&n, rest)) => {
            let inner: usize = rest.iter().product();
            Json::Array(
                (0..n)
                    .map(|i| {
                        nested(
                            rest,
                            &data[(i * inner).min(data.len())..((i + 1) * inner).min(data.len())],
                        )
                    })
                    .collect(),
            )
        }
    }
}

/// The JSON text of `entries` (a list, one object per entry, keys in the seeds' order).
pub fn to_json_string(entries: &[QuantParamEntry]) -> String {
    let list: Vec<Json> = entries
        .iter()
        .map(|e| {
            let mut m = Map::new();
            m.insert("name".into(), Json::String(e.name.clone()));
            m.insert(
                "min".into(),
                Json::Array(e.min.iter().map(|&x| num(x)).collect()),
            );
            m.insert(
                "max".into(),
                Json::Array(e.max.iter().map(|&x| num(x)).collect()),
            );
            m.insert("bit".into(), Json::from(e.bit));
            if let Some((shape, data)) = &e.data {
                m.insert("data".into(), nested(shape, data));
            }
            Json::Object(m)
        })
        .collect();
    let mut s = serde_json::to_string_pretty(&Json::Array(list)).unwrap_or_else(|_| "[]".into());
    s.push('\n');
    s
}

/// Writes `entries` to `path` atomically (a temporary file in the same directory, renamed).
pub fn write_json(path: impl AsRef<Path>, entries: &[QuantParamEntry]) -> Result<()> {
    let path = path.as_ref();
    let io = |source| QuantError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name()
            .map_or("quant".into(), |f| f.to_string_lossy()),
        std::process::id()
    ));
    std::fs::write(&tmp, to_json_string(entries)).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(e)
    })
}

/// Reads a quantization-parameter file and checks it against the float `graph`.
pub fn import_file(path: impl AsRef<Path>, graph: &Graph) -> Result<ImportReport> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| QuantError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let text = std::str::from_utf8(&bytes).map_err(|e| QuantError::Json {
        path: path.display().to_string(),
        message: format!("not UTF-8 text (byte {}); give the JSON output of save_quant_param.py (Pickle files are not read)", e.valid_up_to()),
    })?;
    import_str(text, &path.display().to_string(), graph)
}

/// [`import_file`] on JSON text.
pub fn import(text: &str, graph: &Graph) -> Result<ImportReport> {
    import_str(text, "<string>", graph)
}

/// Replaces Python's bare `NaN`, `Infinity` and `-Infinity` tokens (outside strings) with
/// strings, so that such entries can be rejected one by one.
fn python_tokens_to_strings(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_str = false;
    let mut escaped = false;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if in_str {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_str = false;
            }
            rest = &rest[c.len_utf8()..];
            continue;
        }
        if c == '"' {
            in_str = true;
            out.push(c);
            rest = &rest[1..];
            continue;
        }
        let mut matched = false;
        for tok in ["-Infinity", "Infinity", "NaN"] {
            if rest.starts_with(tok) {
                out.push('"');
                out.push_str(tok);
                out.push('"');
                rest = &rest[tok.len()..];
                matched = true;
                break;
            }
        }
        if !matched {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// A JSON number, or one of Python's non-finite tokens.
fn as_f32(v: &Json) -> Option<f32> {
    match v {
        Json::Number(n) => n.as_f64().map(|x| x as f32),
        Json::String(s) => match s.as_str() {
            "NaN" => Some(f32::NAN),
            "Infinity" => Some(f32::INFINITY),
            "-Infinity" => Some(f32::NEG_INFINITY),
            _ => None,
        },
        _ => None,
    }
}

/// Flattens a nested list of numbers, returning its shape (`None` if ragged or not numbers).
fn flatten(v: &Json, out: &mut Vec<f32>) -> Option<Vec<usize>> {
    match v {
        Json::Array(items) => {
            let mut inner: Option<Vec<usize>> = None;
            for it in items {
                let s = flatten(it, out)?;
                match &inner {
                    None => inner = Some(s),
                    Some(prev) if *prev == s => {}
                    Some(_) => return None,
                }
            }
            let mut shape = vec![items.len()];
            shape.extend(inner.unwrap_or_default());
            Some(shape)
        }
        other => {
            out.push(as_f32(other)?);
            Some(Vec::new())
        }
    }
}

/// Where a float-graph tensor sits, for the import rules.
struct Roles {
    /// Output-channel axis of tensors used as layer weights.
    weight_axis: Vec<Option<usize>>,
    /// Tensors used as the bias of a layer.
    bias: Vec<bool>,
    /// Tensors whose every consumer reads them as the data input of a layer.
    eight_bit_ok: Vec<bool>,
}

fn roles(graph: &Graph) -> Roles {
    let n = graph.tensors.len();
    let mut weight = vec![None; n];
    let mut bias = vec![false; n];
    let mut layer_input_only = vec![true; n];
    let mut consumed = vec![false; n];
    for node in &graph.nodes {
        let layer = weight_axis(&node.op);
        for (pos, &t) in node.inputs.iter().enumerate() {
            consumed[t.0] = true;
            match (layer, pos) {
                (Some(axis), 1) => {
                    if weight[t.0].is_none() {
                        weight[t.0] = Some(axis);
                    }
                }
                (Some(_), 2) => {
                    bias[t.0] = true;
                    layer_input_only[t.0] = false;
                }
                (Some(_), 0) => {}
                _ => layer_input_only[t.0] = false,
            }
        }
    }
    let eight_bit_ok = (0..n)
        .map(|i| {
            weight[i].is_some()
                || (consumed[i] && layer_input_only[i] && !graph.is_output(TensorId(i)))
        })
        .collect();
    Roles {
        weight_axis: weight,
        bias,
        eight_bit_ok,
    }
}

fn import_str(text: &str, path: &str, graph: &Graph) -> Result<ImportReport> {
    let cleaned = python_tokens_to_strings(text);
    let doc: Json = serde_json::from_str(&cleaned).map_err(|e| QuantError::Json {
        path: path.to_string(),
        message: format!(
            "not valid JSON ({e}); expected the JSON list written by save_quant_param.py"
        ),
    })?;
    let Json::Array(items) = doc else {
        return Err(QuantError::Json {
            path: path.to_string(),
            message: "expected a JSON list of {\"name\", \"min\", \"max\", \"bit\"} entries".into(),
        });
    };
    let roles = roles(graph);
    let mut report = ImportReport::default();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (index, item) in items.iter().enumerate() {
        let mut problems: Vec<String> = Vec::new();
        let Json::Object(obj) = item else {
            report.rejected.push(Rejection {
                index,
                name: format!("#{index}"),
                reason: "entry is not a JSON object".into(),
            });
            continue;
        };
        let name = match obj.get("name") {
            Some(Json::String(s)) => s.clone(),
            Some(_) => {
                problems.push("\"name\" is not a string".into());
                format!("#{index}")
            }
            None => {
                problems.push("no \"name\"".into());
                format!("#{index}")
            }
        };
        let list = |key: &str, problems: &mut Vec<String>| -> Option<Vec<f32>> {
            match obj.get(key) {
                None => {
                    problems.push(format!("no \"{key}\""));
                    None
                }
                Some(Json::Array(xs)) => {
                    let vals: Option<Vec<f32>> = xs.iter().map(as_f32).collect();
                    match vals {
                        Some(v) if v.is_empty() => {
                            problems.push(format!("\"{key}\" is empty"));
                            None
                        }
                        Some(v) => Some(v),
                        None => {
                            problems.push(format!("\"{key}\" must be a list of numbers"));
                            None
                        }
                    }
                }
                Some(v) => match as_f32(v) {
                    Some(x) => Some(vec![x]),
                    None => {
                        problems.push(format!("\"{key}\" must be a list of numbers"));
                        None
                    }
                },
            }
        };
        let min = list("min", &mut problems);
        let max = list("max", &mut problems);
        let bit = match obj.get("bit") {
            None => {
                problems.push("no \"bit\"".into());
                None
            }
            Some(v) => match v.as_u64() {
                Some(b @ (8 | 16)) => Some(b as u32),
                _ => {
                    problems.push(format!("bit must be 8 or 16, got {v}"));
                    None
                }
            },
        };
        let tensor = graph.find_tensor(&name);
        if tensor.is_none() && !name.starts_with('#') {
            problems.push("no tensor of this name in the float model (names are those of get_tensor_details on the converted model)".into());
        }
        if let Some(prev) = seen.get(&name) {
            problems.push(format!("duplicate entry (entry #{prev} has the same name)"));
        } else {
            seen.insert(name.clone(), index);
        }
        let mut data_vals = None;
        if let Some(id) = tensor {
            let t = graph.tensor(id);
            if t.dtype != DType::F32 {
                problems.push(format!("tensor is {}, not a float tensor", t.dtype));
            }
            if roles.bias[id.0] {
                problems.push("biases are quantized from the input and weight scales (s_in·s_w); their range cannot be imported".into());
            }
            let channels = match roles.weight_axis[id.0] {
                Some(axis) => t.shape.get(axis).copied().unwrap_or(1),
                None => t.shape.last().copied().unwrap_or(1),
            };
            for (key, v) in [("min", &min), ("max", &max)] {
                if let Some(v) = v {
                    if v.len() != 1 && v.len() != channels {
                        problems.push(format!(
                            "\"{key}\" has {} values; give 1 or {channels} (the tensor's {})",
                            v.len(),
                            if roles.weight_axis[id.0].is_some() {
                                "output channels"
                            } else {
                                "channels, last axis"
                            }
                        ));
                    }
                }
            }
            if bit == Some(8) && !roles.eight_bit_ok[id.0] {
                problems.push("bit 8 is only possible for the weights and the inputs of Conv2D, DepthwiseConv2D, TransposeConv2D and FullyConnected layers; other operators are quantized to 16 bits".into());
            }
            if let Some(d) = obj.get("data") {
                if t.data.is_none() {
                    problems.push("\"data\" is only accepted for constant tensors".into());
                } else {
                    let mut flat = Vec::new();
                    match flatten(d, &mut flat) {
                        None => problems.push("\"data\" must be a (nested) list of numbers".into()),
                        Some(shape) => {
                            let ok_shape = shape == t.shape || shape == [t.numel()];
                            if !ok_shape || flat.len() != t.numel() {
                                problems.push(format!(
                                    "\"data\" has shape {shape:?}; the tensor's is {:?}",
                                    t.shape
                                ));
                            } else if flat.iter().any(|x| !x.is_finite()) {
                                problems.push("\"data\" has non-finite values".into());
                            } else {
                                data_vals = Some(flat);
                            }
                        }
                    }
                }
            }
        }
        if let (Some(mn), Some(mx)) = (&min, &max) {
            if mn.iter().chain(mx).any(|x| !x.is_finite()) {
                problems.push("min/max has non-finite values (NaN or Infinity)".into());
            } else if mn.len() == mx.len() {
                if let Some(c) = (0..mn.len()).find(|&c| mn[c] > mx[c]) {
                    problems.push(format!("min > max at channel {c} ({} > {})", mn[c], mx[c]));
                }
            } else if mn.len() != 1 && mx.len() != 1 {
                problems.push(format!(
                    "\"min\" has {} values and \"max\" {}",
                    mn.len(),
                    mx.len()
                ));
            } else {
                let n = mn.len().max(mx.len());
                let at = |v: &[f32], c: usize| if v.len() == 1 { v[0] } else { v[c] };
                if let Some(c) = (0..n).find(|&c| at(mn, c) > at(mx, c)) {
                    problems.push(format!(
                        "min > max at channel {c} ({} > {})",
                        at(mn, c),
                        at(mx, c)
                    ));
                }
            }
        }
        match (problems.is_empty(), tensor, min, max, bit) {
            (true, Some(id), Some(min), Some(max), Some(bit)) => {
                report.accepted.insert(
                    name,
                    QuantOverride {
                        tensor: id,
                        min,
                        max,
                        bit,
                        data: data_vals,
                    },
                );
            }
            _ => report
                .rejected
                .extend(problems.into_iter().map(|reason| Rejection {
                    index,
                    name: name.clone(),
                    reason,
                })),
        }
    }
    Ok(report)
}

/// An entry for each accepted override (for writing back what was imported).
pub fn overrides_to_entries(graph: &Graph, overrides: &QuantOverrides) -> Vec<QuantParamEntry> {
    overrides
        .iter()
        .map(|(name, o)| QuantParamEntry {
            name: name.clone(),
            min: o.min.clone(),
            max: o.max.clone(),
            bit: o.bit,
            data: o
                .data
                .as_ref()
                .map(|d| (graph.tensor(o.tensor).shape.clone(), d.clone())),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipukit_ir::ops::{BinaryOp, Conv2d, FusedActivation, Padding2d, UnaryOp};
    use ipukit_ir::Op;

    /// x [1,4,4,2] → conv(w [3,1,1,2], b [3]) → y [1,4,4,3] → relu → z → add(c [3]) → out
    fn float_graph() -> Graph {
        let mut g = Graph::new();
        let x = g.add_input("x", DType::F32, vec![1, 4, 4, 2]);
        let w = g
            .add_const("w", vec![3, 1, 1, 2], vec![0.5f32; 6].into())
            .unwrap();
        let b = g.add_const("b", vec![3], vec![0.0f32; 3].into()).unwrap();
        let conv = Conv2d {
            strides: [1, 1],
            dilations: [1, 1],
            padding: Padding2d::ZERO,
            groups: 1,
            activation: FusedActivation::None,
        };
        let y = g
            .add_node("conv", Op::Conv2d(conv), vec![x, w, b], &["y"])
            .unwrap()[0];
        let z = g
            .add_node("relu", Op::Unary(UnaryOp::Relu), vec![y], &["z"])
            .unwrap()[0];
        let c = g.add_const("c", vec![3], vec![1.0f32; 3].into()).unwrap();
        let o = g
            .add_node("add", Op::Binary(BinaryOp::Add), vec![z, c], &["out"])
            .unwrap()[0];
        g.outputs.push(o);
        g
    }

    #[test]
    fn accepts_valid_entries() {
        let g = float_graph();
        let text = r#"[
            {"name": "w", "min": [-1, -2, -3], "max": [1, 2, 3], "bit": 8,
             "data": [[[[1, 2]]], [[[3, 4]]], [[[5, 6]]]]},
            {"name": "x", "min": [-1.5], "max": [2.5], "bit": 8},
            {"name": "z", "min": [0, 0, 0], "max": [6, 6, 6], "bit": 16}
        ]"#;
        let r = import(text, &g).unwrap();
        assert!(r.rejected.is_empty(), "{:?}", r.rejected);
        assert_eq!(r.accepted.len(), 3);
        assert_eq!(
            r.accepted["w"].data.as_deref(),
            Some(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0][..])
        );
        assert_eq!(r.accepted["x"].min, vec![-1.5]);
    }

    #[test]
    fn collects_every_problem() {
        let g = float_graph();
        let text = r#"[
            {"name": "nope", "min": [0], "max": [1], "bit": 16},
            {"name": "y", "min": [0, 0], "max": [1, 1], "bit": 16},
            {"name": "z", "min": [2], "max": [1], "bit": 16},
            {"name": "out", "min": [0], "max": [1], "bit": 4},
            {"name": "x", "min": [NaN], "max": [Infinity], "bit": 16},
            {"name": "out", "min": [0], "max": [1], "bit": 8},
            {"name": "b", "min": [0], "max": [1], "bit": 16},
            {"name": "w", "min": [0], "max": [1], "bit": 8, "data": [1, 2]},
            {"name": "z", "min": [0], "max": [1], "bit": 16, "data": [1, 2, 3]},
            {"min": [0], "max": [1], "bit": 16},
            42,
            {"name": "x", "min": [0], "max": [1], "bit": 16}
        ]"#;
        let r = import(text, &g).unwrap();
        let lines: Vec<String> = r.rejected.iter().map(|x| x.to_string()).collect();
        let has = |name: &str, what: &str| {
            assert!(
                r.rejected
                    .iter()
                    .any(|x| x.name == name && x.reason.contains(what)),
                "no rejection of {name} with '{what}' in {lines:#?}"
            )
        };
        has("nope", "no tensor of this name");
        has("y", "give 1 or 3");
        has("z", "min > max");
        has("out", "bit must be 8 or 16");
        has("x", "non-finite");
        has("out", "bit 8 is only possible");
        has("b", "biases");
        has("w", "\"data\" has shape [2]");
        has("z", "only accepted for constant");
        has("#9", "no \"name\"");
        has("#10", "not a JSON object");
        has("x", "duplicate entry");
        // The first "x" entry was rejected (NaN), the duplicate too; nothing accepted.
        assert!(r.accepted.is_empty(), "{:?}", r.accepted);
        assert!(lines.iter().all(|l| l.starts_with("rejected: ")));
    }

    #[test]
    fn whole_file_errors() {
        let g = float_graph();
        assert!(import("{\"name\": 1}", &g)
            .unwrap_err()
            .to_string()
            .contains("JSON list"));
        assert!(import("[{", &g)
            .unwrap_err()
            .to_string()
            .contains("not valid JSON"));
        // Strings that look like Python tokens are left alone.
        let r = import(
            r#"[{"name": "NaN", "min": [0], "max": [1], "bit": 16}]"#,
            &g,
        )
        .unwrap();
        assert_eq!(r.rejected[0].name, "NaN");
    }

    #[test]
    fn export_round_trip() {
        let mut g = Graph::new();
        let x = g.add_input("x", DType::I16, vec![1, 2, 2, 3]);
        g.tensor_mut(x).quant = Some(QuantParams {
            scale: vec![0.01],
            zero_point: vec![0],
            min: vec![-3.0, -2.0, -1.0],
            max: vec![3.0, 2.0, 1.5],
            quantized_dimension: 3,
        });
        let w = g
            .add_const("w", vec![2, 1, 1, 3], vec![1i8, -2, 3, 127, 0, -127].into())
            .unwrap();
        g.tensor_mut(w).quant = Some(QuantParams {
            scale: vec![0.5, 0.25],
            zero_point: vec![0, 0],
            min: vec![],
            max: vec![],
            quantized_dimension: 0,
        });
        let b = g.add_const("b", vec![2], vec![1i32, 2].into()).unwrap();
        g.tensor_mut(b).quant = Some(QuantParams {
            scale: vec![0.1, 0.1],
            zero_point: vec![0, 0],
            ..Default::default()
        });
        let entries = export_fixed(&g, ExportOptions { include_data: true });
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].bit, 16);
        assert_eq!(entries[1].min, vec![-64.0, -32.0]);
        assert_eq!(entries[1].max, vec![63.5, 31.75]);
        assert_eq!(
            entries[1].data.as_ref().map(|d| d.1.clone()),
            Some(vec![0.5, -1.0, 1.5, 31.75, 0.0, -31.75])
        );
        let text = to_json_string(&entries);
        assert!(text.contains("\"min\": [\n      -3.0"), "{text}");
        // Import into a float graph with the same names.
        let mut f = Graph::new();
        let fx = f.add_input("x", DType::F32, vec![1, 2, 2, 3]);
        let fw = f
            .add_const("w", vec![2, 1, 1, 3], vec![0.0f32; 6].into())
            .unwrap();
        let conv = Conv2d {
            strides: [1, 1],
            dilations: [1, 1],
            padding: Padding2d::ZERO,
            groups: 1,
            activation: FusedActivation::None,
        };
        let y = f
            .add_node("conv", Op::Conv2d(conv), vec![fx, fw], &["y"])
            .unwrap()[0];
        f.outputs.push(y);
        let r = import(&text, &f).unwrap();
        assert!(r.rejected.is_empty(), "{:?}", r.rejected);
        assert_eq!(r.accepted["x"].max, vec![3.0, 2.0, 1.5]);
        assert_eq!(r.accepted["w"].data.as_ref().map(|d| d[3]), Some(31.75));
        let mut sorted = entries.clone();
        sorted.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(overrides_to_entries(&f, &r.accepted), sorted);

        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("q.json");
        write_json(&p, &entries).unwrap();
        let r2 = import_file(&p, &f).unwrap();
        assert_eq!(r2, r);
    }
}
