//! ONNX importer for ipukit.
//!
//! [`import_file`] reads an `.onnx` model (opset 7–20) and returns an NHWC [`ipukit_ir::Graph`]:
//! NCHW activations are held NHWC, convolution weights become OHWI once at import, transposes
//! the model itself contains only change bookkeeping and cancel, shape arithmetic
//! (`Shape → Gather → Concat → Reshape`, `ConstantOfShape`, `Range`, `Expand` on constants) is
//! evaluated while importing, and the graph is then simplified (BatchNorm folding, activation
//! fusion, identity removal) unless [`ImportOptions::skip_simplify`] is set.
//!
//! At the model boundary 4-D inputs and outputs are NHWC by default; [`Layout::Nchw`] keeps an
//! input or output in the ONNX model's own NCHW order (the ini's `input_layouts` /
//! `output_layouts`). A model whose inputs are already NHWC (it starts with a
//! `Transpose(perm=[0,3,1,2])`, as Keras exports do) is recognised and keeps them as they are.
//!
//! Every operator in [`supported_ops`] is imported with all its attributes checked; any other
//! operator, attribute value or feature fails with a message naming the node.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod attrs;
mod context;
mod error;
mod layout;
mod ops;
pub mod proto;
mod tensor;

pub use error::{OnnxError, Result};
pub use tensor::read_tensor_proto;

use context::{Ctx, NodeCx, Slot};
use ipukit_ir::{passes, Graph, Op, Tensor};
use layout::{identity, NCHW_PERM, NHWC_PERM};
use prost::Message;
use proto::{ModelProto, NodeProto};
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// Newest default-domain opset accepted.
pub const MAX_OPSET: i64 = 20;
/// Oldest default-domain opset accepted.
pub const MIN_OPSET: i64 = 7;

/// Memory order of a 4-D tensor at the model boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Channels first, as ONNX models are exported.
    Nchw,
    /// Channels last, as the IPU runs.
    Nhwc,
}

/// How to import a model.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Shapes for the model inputs in ONNX order (`--input_shapes`); needed for dynamic
    /// dimensions other than the batch, which defaults to 1.
    pub input_shapes: Option<Vec<Vec<usize>>>,
    /// Skip the optional simplification passes (`--skip_simplify`). Shape arithmetic is always
    /// evaluated: the IR needs concrete shapes.
    pub skip_simplify: bool,
    /// Boundary layout of inputs, by name (default NHWC for 4-D inputs).
    pub input_layouts: HashMap<String, Layout>,
    /// Boundary layout of outputs, by name (default NHWC for 4-D outputs).
    pub output_layouts: HashMap<String, Layout>,
    /// Keep every input and output exactly as the ONNX model has it (for conformance tests).
    pub keep_onnx_layout: bool,
    /// Use these tensors as the outputs instead of the model's (cuts the graph, e.g. before a
    /// post-processing tail).
    pub outputs: Option<Vec<String>>,
}

/// Names of the ONNX operators ipukit imports.
pub fn supported_ops() -> impl Iterator<Item = &'static str> {
    ops::TABLE.iter().map(|(n, _)| *n)
}

/// Imports an `.onnx` file.
pub fn import_file(path: impl AsRef<Path>, opts: &ImportOptions) -> Result<Graph> {
    let path = path.as_ref();
    let shown = path.display().to_string();
    if !path.exists() {
        return Err(OnnxError::NotFound(shown));
    }
    let bytes = std::fs::read(path).map_err(|source| OnnxError::Io {
        path: shown.clone(),
        source,
    })?;
    import_bytes_named(&bytes, &shown, opts)
}

/// Imports a model from its serialized bytes.
pub fn import_bytes(bytes: &[u8], opts: &ImportOptions) -> Result<Graph> {
    import_bytes_named(bytes, "model", opts)
}

fn import_bytes_named(bytes: &[u8], what: &str, opts: &ImportOptions) -> Result<Graph> {
    if bytes.is_empty() {
        return Err(OnnxError::Decode {
            path: what.into(),
            reason: "the file is empty".into(),
        });
    }
    let model = ModelProto::decode(bytes).map_err(|e| OnnxError::Decode {
        path: what.into(),
        reason: e.to_string(),
    })?;
    if model.graph.is_none() {
        return Err(OnnxError::Decode {
            path: what.into(),
            reason: "it contains no graph".into(),
        });
    }
    import_model(&model, opts)
}

/// The default-domain opset of a model.
pub fn model_opset(model: &ModelProto) -> Result<i64> {
    if let Some(v) = model
        .opset_import
        .iter()
        .find(|o| matches!(o.domain.as_deref(), None | Some("") | Some("ai.onnx")))
        .and_then(|o| o.version)
    {
        return Ok(v);
    }
    let domains: Vec<&str> = model
        .opset_import
        .iter()
        .filter_map(|o| o.domain.as_deref())
        .collect();
    if domains.is_empty() {
        Err(OnnxError::Invalid(
            "the model does not declare an ONNX opset".into(),
        ))
    } else {
        Err(OnnxError::Unsupported(format!(
            "the model only uses operator domain(s) {}, which are not supported",
            domains.join(", ")
        )))
    }
}

/// Imports a decoded model.
pub fn import_model(model: &ModelProto, opts: &ImportOptions) -> Result<Graph> {
    let opset = model_opset(model)?;
    if opset > MAX_OPSET {
        return Err(OnnxError::Unsupported(format!(
            "Please export the ONNX with opset_version <= {MAX_OPSET} (the model uses opset {opset})"
        )));
    }
    if opset < MIN_OPSET {
        return Err(OnnxError::Unsupported(format!(
            "ONNX opset {opset} is not supported; please export with opset_version between {MIN_OPSET} and {MAX_OPSET}"
        )));
    }
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| OnnxError::Invalid("the model contains no graph".into()))?;
    let eval = ipukit_runtime::ReferenceEvaluator;
    let mut ctx = Ctx::new(opset, &eval);

    for t in &graph.initializer {
        let name = t.name.clone().unwrap_or_default();
        let (shape, data) = tensor::decode_tensor(t)?;
        ctx.reserve(&name);
        let id = ctx.graph.add_const(&name, shape.clone(), data)?;
        ctx.set(
            &name,
            Slot {
                id,
                perm: identity(shape.len()),
            },
        );
    }
    add_inputs(&mut ctx, graph, opts)?;
    for (i, node) in topo_order(graph)?.into_iter().enumerate() {
        import_node(&mut ctx, node, i)?;
    }
    bind_outputs(&mut ctx, graph, opts)?;

    let mut g = ctx.graph;
    g.compact();
    if opts.skip_simplify {
        g.validate()?;
    } else {
        passes::simplify(&mut g, &eval, passes::SimplifyOptions::default())?;
    }
    Ok(g)
}

fn import_node(ctx: &mut Ctx<'_>, node: &NodeProto, index: usize) -> Result<()> {
    let nx = NodeCx::new(node, index);
    if !matches!(node.domain.as_deref(), None | Some("") | Some("ai.onnx")) {
        return Err(OnnxError::Unsupported(format!(
            "node '{}' ({}) uses operator domain '{}', which is not supported",
            nx.name,
            nx.op_type,
            node.domain.as_deref().unwrap_or("")
        )));
    }
    let f = ops::lookup(nx.op_type).ok_or_else(|| {
        OnnxError::Unsupported(format!(
            "Exception: not support ONNX op type {} yet (node '{}')",
            nx.op_type, nx.name
        ))
    })?;
    f(ctx, &nx).map_err(|e| match e {
        OnnxError::Unsupported(m) | OnnxError::Invalid(m) => OnnxError::Node {
            node: nx.name.clone(),
            op_type: nx.op_type.to_string(),
            reason: m,
        },
        OnnxError::Ir(e) => OnnxError::Node {
            node: nx.name.clone(),
            op_type: nx.op_type.to_string(),
            reason: e.to_string(),
        },
        other => other,
    })?;
    for i in 0..nx.output_count() {
        let name = nx.output(i);
        if !name.is_empty() && ctx.lookup(name).is_none() {
            return Err(OnnxError::Node {
                node: nx.name.clone(),
                op_type: nx.op_type.to_string(),
                reason: format!("output {i} ('{name}') is not supported"),
            });
        }
    }
    Ok(())
}

/// Nodes in an order where every input is produced first; the seeds' messages for cycles and
/// for inputs nothing produces.
fn topo_order(graph: &proto::GraphProto) -> Result<Vec<&NodeProto>> {
    let mut ready: HashSet<&str> = graph
        .initializer
        .iter()
        .filter_map(|t| t.name.as_deref())
        .collect();
    ready.extend(graph.input.iter().filter_map(|v| v.name.as_deref()));
    ready.insert("");
    let mut pending: Vec<&NodeProto> = graph.node.iter().collect();
    let mut order = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let before = pending.len();
        pending.retain(|n| {
            if n.input.iter().all(|i| ready.contains(i.as_str())) {
                ready.extend(n.output.iter().map(String::as_str));
                order.push(*n);
                false
            } else {
                true
            }
        });
        if pending.len() == before {
            let produced: HashSet<&str> = pending
                .iter()
                .flat_map(|n| n.output.iter().map(String::as_str))
                .collect();
            let n = pending[0];
            let missing = n
                .input
                .iter()
                .find(|i| !ready.contains(i.as_str()))
                .map(String::as_str)
                .unwrap_or("");
            if produced.contains(missing) {
                return Err(OnnxError::Unsupported(
                    "Loopback in graph is not supported!".into(),
                ));
            }
            return Err(OnnxError::Invalid(format!(
                "Nodes in a graph must be topologically sorted; however, input '{missing}' of node: name: {} OpType: {} is not output of any previous nodes.",
                n.name.as_deref().unwrap_or(""),
                n.op_type.as_deref().unwrap_or("")
            )));
        }
    }
    Ok(order)
}

/// The permutation holding a 4-D boundary tensor whose ONNX layout is `onnx_is_nhwc` in the
/// requested layout.
fn boundary_perm(onnx_is_nhwc: bool, want: Layout) -> Vec<usize> {
    match (onnx_is_nhwc, want) {
        (false, Layout::Nhwc) => NHWC_PERM.to_vec(),
        (true, Layout::Nchw) => NCHW_PERM.to_vec(),
        _ => identity(4),
    }
}

fn add_inputs(ctx: &mut Ctx<'_>, graph: &proto::GraphProto, opts: &ImportOptions) -> Result<()> {
    let inits: HashSet<&str> = graph
        .initializer
        .iter()
        .filter_map(|t| t.name.as_deref())
        .collect();
    let inputs: Vec<_> = graph
        .input
        .iter()
        .filter(|v| !inits.contains(v.name.as_deref().unwrap_or("")))
        .collect();
    if let Some(shapes) = &opts.input_shapes {
        if shapes.len() != inputs.len() {
            return Err(OnnxError::Invalid(format!(
                "--input_shapes gives {} shape(s) but the model has {} input(s)",
                shapes.len(),
                inputs.len()
            )));
        }
    }
    for (i, v) in inputs.iter().enumerate() {
        let name = v.name.clone().unwrap_or_default();
        let what = format!("input '{name}'");
        let (dtype, dims) = tensor::tensor_type(v.r#type.as_ref(), &what)?;
        let dims = dims.ok_or_else(|| {
            OnnxError::Invalid(format!("{what} has no shape; give it with --input_shapes"))
        })?;
        let shape: Vec<usize> = match opts.input_shapes.as_ref().map(|s| &s[i]) {
            Some(given) => {
                if given.len() != dims.len() {
                    return Err(OnnxError::Invalid(format!(
                        "--input_shapes gives {given:?} for {what}, which has {} dimensions",
                        dims.len()
                    )));
                }
                for (k, (&g, d)) in given.iter().zip(&dims).enumerate() {
                    if matches!(d, Some(d) if *d as usize != g) {
                        return Err(OnnxError::Invalid(format!(
                            "--input_shapes gives {g} for dimension {k} of {what}, but the model fixes it to {}",
                            d.unwrap_or(0)
                        )));
                    }
                }
                given.clone()
            }
            None => dims
                .iter()
                .enumerate()
                .map(|(k, d)| match d {
                    Some(d) => Ok(*d as usize),
                    None if k == 0 => Ok(1),
                    None => Err(OnnxError::Invalid(format!(
                        "sub 0, tensor [{name}] has dynamic shape that cannot be figured out! Dimension {k} of {what} is dynamic; give the shape with --input_shapes (e.g. --input_shapes {})",
                        dims.iter().enumerate().map(|(j, d)| d.map(|d| d.to_string()).unwrap_or_else(|| if j == 0 { "1".into() } else { "N".into() })).collect::<Vec<_>>().join(",")
                    ))),
                })
                .collect::<Result<_>>()?,
        };
        let perm = if shape.len() != 4 || opts.keep_onnx_layout {
            identity(shape.len())
        } else {
            let nhwc = feeds_only_nhwc_to_nchw(graph, &name);
            boundary_perm(
                nhwc,
                opts.input_layouts
                    .get(&name)
                    .copied()
                    .unwrap_or(Layout::Nhwc),
            )
        };
        let ir_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
        ctx.reserve(&name);
        let id = ctx.graph.add_input(&name, dtype, ir_shape);
        ctx.set(&name, Slot { id, perm });
    }
    Ok(())
}

/// True if every reader of `name` is a `Transpose(perm=[0,3,1,2])`: the tensor is NHWC already.
fn feeds_only_nhwc_to_nchw(graph: &proto::GraphProto, name: &str) -> bool {
    let readers: Vec<&NodeProto> = graph
        .node
        .iter()
        .filter(|n| n.input.iter().any(|i| i == name))
        .collect();
    !readers.is_empty() && readers.iter().all(|n| is_transpose(n, &NCHW_PERM))
}

fn is_transpose(n: &NodeProto, perm: &[usize]) -> bool {
    n.op_type.as_deref() == Some("Transpose")
        && n.attribute.iter().any(|a| {
            a.name.as_deref() == Some("perm")
                && a.ints.iter().map(|&v| v as usize).eq(perm.iter().copied())
        })
}

/// True if `name` is computed from a `Transpose(perm=[0,2,3,1])` through operators that keep
/// the layout (activations, softmax, element-wise with constants): the ONNX tensor is NHWC
/// already, as in Keras exports that end `Transpose → Softmax`.
fn comes_from_nchw_to_nhwc(producers: &HashMap<&str, &NodeProto>, name: &str) -> bool {
    const KEEPS_LAYOUT: &[&str] = &[
        "Softmax",
        "LogSoftmax",
        "Sigmoid",
        "Relu",
        "Tanh",
        "Clip",
        "LeakyRelu",
        "PRelu",
        "HardSigmoid",
        "HardSwish",
        "Identity",
        "Dropout",
        "Cast",
        "Add",
        "Mul",
        "Sub",
        "Div",
    ];
    let mut cur = name;
    for _ in 0..16 {
        let Some(n) = producers.get(cur) else {
            return false;
        };
        if is_transpose(n, &NHWC_PERM) {
            return true;
        }
        if !KEEPS_LAYOUT.contains(&n.op_type.as_deref().unwrap_or("")) {
            return false;
        }
        // Follow the first input that another node produces (constants end the walk).
        match n.input.iter().find(|i| producers.contains_key(i.as_str())) {
            Some(i) => cur = i,
            None => return false,
        }
    }
    false
}

fn bind_outputs(ctx: &mut Ctx<'_>, graph: &proto::GraphProto, opts: &ImportOptions) -> Result<()> {
    let names: Vec<String> = match &opts.outputs {
        Some(o) => o.clone(),
        None => graph
            .output
            .iter()
            .map(|v| v.name.clone().unwrap_or_default())
            .collect(),
    };
    for v in &graph.output {
        if v.r#type.is_some() {
            tensor::tensor_type(
                v.r#type.as_ref(),
                &format!("output '{}'", v.name.as_deref().unwrap_or("")),
            )?;
        }
    }
    let producers: HashMap<&str, &NodeProto> = graph
        .node
        .iter()
        .flat_map(|n| n.output.iter().map(move |o| (o.as_str(), n)))
        .collect();
    for name in &names {
        let slot = ctx.lookup(name).cloned().ok_or_else(|| {
            OnnxError::Invalid(format!("The model doesn't have output named \"{name}\""))
        })?;
        let target = if slot.perm.len() != 4 || opts.keep_onnx_layout {
            identity(slot.perm.len())
        } else {
            let nhwc = comes_from_nchw_to_nhwc(&producers, name);
            boundary_perm(
                nhwc,
                opts.output_layouts
                    .get(name)
                    .copied()
                    .unwrap_or(Layout::Nhwc),
            )
        };
        let mut id = ctx.in_layout(&slot, &target, name)?;
        let needs_copy = ctx.graph.inputs.contains(&id) || ctx.graph.outputs.contains(&id);
        if needs_copy {
            id = ctx.emit1(
                &format!("{name}_copy"),
                Op::Identity,
                vec![id],
                &format!("{name}_copy"),
            )?;
        }
        if ctx.graph.tensor(id).name != *name {
            if let Some(other) = ctx.graph.find_tensor(name) {
                let renamed = ctx.fresh(&format!("{name}_inner"));
                ctx.graph.tensor_mut(other).name = renamed;
            }
            let t: &mut Tensor = ctx.graph.tensor_mut(id);
            t.name = name.clone();
            ctx.reserve(name);
        }
        ctx.graph.outputs.push(id);
    }
    Ok(())
}
