//! Finding the element-wise tail of a fixed-point convolution: the run of `QRescale`, `QLut`
//! and `QBinary` nodes right after it that read only its output, each other's outputs and
//! per-channel constants, so that they can run on each chunk of the convolution's output
//! while it is in cache ([`ipukit_kernels::int::Tail`]).

use ipukit_ir::ops::fixed::QBinaryKind;
use ipukit_ir::{DType, Graph, Op, TensorData, TensorId};
use ipukit_kernels::int::{PackedQLut, Tail, TailOp, TailOperand};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// A convolution's tail and the nodes it replaces.
#[derive(Debug, Clone)]
pub struct LayerTail {
    /// The operators, checked for the layer's output.
    pub tail: Arc<Tail>,
    /// Indices of the nodes the tail runs, in graph order; the last one produces the tail's
    /// output, the others' outputs are never written.
    pub nodes: Vec<usize>,
}

impl LayerTail {
    /// The node whose output the tail writes.
    pub fn last_node(&self) -> usize {
        self.nodes[self.nodes.len() - 1]
    }
}

/// A constant operand of a `QBinary` in a tail: INT16 with one element, or one per channel
/// of the last axis (all other dimensions 1).
fn channel_constant(graph: &Graph, t: TensorId, channels: usize) -> Option<Vec<i16>> {
    let tensor = graph.tensor(t);
    let Some(TensorData::I16(v)) = &tensor.data else {
        return None;
    };
    let last = tensor.shape.last().copied().unwrap_or(1);
    let leading_ones = tensor.shape.iter().rev().skip(1).all(|&d| d == 1);
    (v.len() == 1 || (leading_ones && last == channels && v.len() == channels)).then(|| v.to_vec())
}

/// The tail after node `i` when it is a `QConv2d` whose output only element-wise nodes read
/// (`None` otherwise). `outputs` are the graph outputs, which a tail may produce only as its
/// result; `lut` gives the packed table of a `QLut` node when the caller already has one.
/// This is the fusion the session makes.
pub fn conv_tail(
    graph: &Graph,
    i: usize,
    outputs: &HashSet<TensorId>,
    lut: &dyn Fn(usize) -> Option<Arc<PackedQLut>>,
) -> Option<LayerTail> {
    let node = graph.nodes.get(i)?;
    if !matches!(node.op, Op::QConv2d(_)) {
        return None;
    }
    layer_tail(graph, i, outputs, lut)
}

/// [`conv_tail`], also after a `QDepthwiseConv2d` (the compiled image's fusion: the
/// session runs depthwise layers and their tails as separate nodes).
pub fn layer_tail(
    graph: &Graph,
    i: usize,
    outputs: &HashSet<TensorId>,
    lut: &dyn Fn(usize) -> Option<Arc<PackedQLut>>,
) -> Option<LayerTail> {
    let node = graph.nodes.get(i)?;
    if !matches!(node.op, Op::QConv2d(_) | Op::QDepthwiseConv2d(_)) {
        return None;
    }
    elementwise_tail(graph, i, outputs, lut)
}

/// The element-wise tail after node `i`, whatever its operator (the image runs one after a
/// convolution's max pool): the `QRescale`, `QLut` and `QBinary` nodes right after it that
/// read only its INT16 or UINT8 output, each other's outputs and per-channel constants.
pub fn elementwise_tail(
    graph: &Graph,
    i: usize,
    outputs: &HashSet<TensorId>,
    lut: &dyn Fn(usize) -> Option<Arc<PackedQLut>>,
) -> Option<LayerTail> {
    let node = graph.nodes.get(i)?;
    if node.outputs.len() != 1 {
        return None;
    }
    let y = node.outputs[0];
    let shape = &graph.tensor(y).shape;
    let channels = *shape.last()?;
    let layer_out = graph.tensor(y).dtype;
    if outputs.contains(&y) || !matches!(layer_out, DType::I16 | DType::U8) {
        return None;
    }
    // Candidates: the element-wise nodes right after `i` that read only earlier values.
    let mut values: HashSet<TensorId> = HashSet::from([y]);
    let mut run = Vec::new();
    for (j, n) in graph.nodes.iter().enumerate().skip(i + 1) {
        let tileable = match &n.op {
            Op::QRescale(_) | Op::QLut(_) => n.inputs.len() == 1 && values.contains(&n.inputs[0]),
            Op::QBinary(_) => {
                n.inputs.len() == 2
                    && n.inputs.iter().any(|t| values.contains(t))
                    && n.inputs.iter().all(|&t| {
                        values.contains(&t) || channel_constant(graph, t, channels).is_some()
                    })
            }
            _ => false,
        };
        if !tileable || n.outputs.len() != 1 || &graph.tensor(n.outputs[0]).shape != shape {
            break;
        }
        values.insert(n.outputs[0]);
        run.push(j);
    }
    // The longest prefix whose values other than its result are read only inside it.
    let readers = |t: TensorId| {
        graph
            .nodes
            .iter()
            .enumerate()
            .filter(move |(_, n)| n.inputs.contains(&t))
            .map(|(k, _)| k)
    };
    let len = (1..=run.len()).rev().find(|&len| {
        let inside: HashSet<usize> = run[..len].iter().copied().collect();
        std::iter::once(y)
            .chain(run[..len - 1].iter().map(|&j| graph.nodes[j].outputs[0]))
            .all(|t| !outputs.contains(&t) && readers(t).all(|k| inside.contains(&k)))
    })?;
    let nodes = run[..len].to_vec();
    // Operators, with a table followed by the product of its input and its output as one.
    let mut value_of: HashMap<TensorId, usize> = HashMap::from([(y, 0)]);
    let mut ops: Vec<TailOp> = Vec::new();
    let mut k = 0;
    while k < nodes.len() {
        let n = &graph.nodes[nodes[k]];
        let operand = |t: TensorId| match value_of.get(&t) {
            Some(&v) => Some(TailOperand::Value(v)),
            None => channel_constant(graph, t, channels).map(TailOperand::Const),
        };
        let (op, last) = match &n.op {
            Op::QRescale(r) => (TailOp::Rescale(*value_of.get(&n.inputs[0])?, r.clone()), k),
            Op::QLut(q) => {
                let x = n.inputs[0];
                let table = match lut(nodes[k]) {
                    Some(t) => t,
                    None => Arc::new(PackedQLut::new(q).ok()?),
                };
                let s = n.outputs[0];
                let product = nodes.get(k + 1).map(|&m| &graph.nodes[m]).and_then(|m| {
                    let Op::QBinary(a) = &m.op else { return None };
                    let pair = m.inputs == [x, s] || m.inputs == [s, x];
                    let only = readers(s).count() == 1;
                    (matches!(a.kind, QBinaryKind::Mul(_)) && pair && only).then(|| a.clone())
                });
                let v = *value_of.get(&x)?;
                match product {
                    Some(a) => (TailOp::LutMul(v, table, a), k + 1),
                    None => (TailOp::Lut(v, table), k),
                }
            }
            Op::QBinary(a) => (
                TailOp::Binary(a.clone(), operand(n.inputs[0])?, operand(n.inputs[1])?),
                k,
            ),
            _ => return None,
        };
        ops.push(op);
        value_of.insert(graph.nodes[nodes[last]].outputs[0], ops.len());
        k = last + 1;
    }
    let tail = Tail::new(layer_out, channels, ops).ok()?;
    Some(LayerTail {
        tail: Arc::new(tail),
        nodes,
    })
}
