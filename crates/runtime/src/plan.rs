//! Execution plans: which kernel runs for each (possibly fused) group of nodes, where every
//! activation lives, and which buffers are reused.
//!
//! Fusion (only in the fast plan, never when every intermediate must be observed):
//! * a layer with packed weights followed by a unary operator that alone reads its output
//!   takes the operator into its epilogue;
//! * `y = layer(x); s = Sigmoid(y); z = Mul(y, s)` becomes the layer with a SiLU epilogue;
//! * `s = Sigmoid(x); z = Mul(x, s)` becomes one SiLU step;
//! * fixed point: `s = QLut(x); z = QBinary Mul(x, s)` becomes one table-product step (the
//!   same integers, without `s` in memory);
//! * fixed point: a `QConv2d` followed by `QRescale` / `QLut` / `QBinary` nodes that read only
//!   its output and each other's ([`crate::tail::conv_tail`]) runs them on each chunk of its
//!   output while in cache (a change to UINT8, PReLU, SiLU: the same integers);
//! * fixed point: `InputNormalize` followed by the `QRescale` that alone reads it (an 8-bit
//!   first layer) becomes one table lookup per channel.
//!
//! Memory: every activation gets a slot; a slot is released after the last step that reads
//! its tensor and handed to the next tensor of the same element type (best fit, grown when
//! none is large enough). Unary and binary steps write into the buffer of an input that dies
//! with them, and a Reshape whose input dies reuses its buffer without copying.

use crate::exec;
use crate::fixed::QPacked;
use ipukit_ir::ops::fixed::{InputNormalize, QBinary, QBinaryKind, QRescale};
use ipukit_ir::ops::{BinaryOp, UnaryOp};
use ipukit_ir::{DType, Graph, Op, TensorId};
use ipukit_kernels::float::{
    Epilogue, PackedConv, PackedDepthwise, PackedLinear, PackedTransposeConv, PostOp,
};
use ipukit_kernels::int::{PackedQConv, PackedQLut, Tail};
use std::collections::HashSet;
use std::sync::Arc;

/// A float layer whose constant weights were packed at session creation.
#[derive(Debug, Clone)]
pub(crate) enum FloatLayer {
    Conv(Arc<PackedConv>),
    Depthwise(Arc<PackedDepthwise>),
    TransposeConv(Arc<PackedTransposeConv>),
    Linear(Arc<PackedLinear>),
}

impl FloatLayer {
    fn epilogue(&self) -> Epilogue {
        match self {
            FloatLayer::Conv(p) => p.epilogue(),
            FloatLayer::Depthwise(p) => p.epilogue(),
            FloatLayer::TransposeConv(p) => p.epilogue(),
            FloatLayer::Linear(p) => p.epilogue(),
        }
    }
}

/// A node whose constant operands were packed at session creation: it reads only its first
/// input at run time.
#[derive(Debug, Clone)]
pub(crate) enum Prepared {
    /// A float layer (activations may be fused into its epilogue).
    Float(FloatLayer),
    /// A fixed-point layer or table (never fused: its output range is its activation).
    Fixed(QPacked),
}

/// What a step runs.
#[derive(Debug, Clone)]
pub(crate) enum Kind {
    /// A packed float layer with its epilogue; reads only the activation input.
    Layer(FloatLayer, Epilogue),
    /// A packed fixed-point layer or table; reads only the activation input.
    QLayer(QPacked),
    /// `x · sigmoid(x)`.
    Silu,
    /// `QBinary` `Mul(x, QLut(x))`: a packed table and the product's attributes.
    QLutMul(Arc<PackedQLut>, QBinary),
    /// A `QConv2d` and the element-wise nodes after it, run on each chunk of its output.
    QConvTail(Arc<PackedQConv>, Arc<Tail>),
    /// `InputNormalize` then the `QRescale` that alone reads it, as one table per channel.
    InputRescale(InputNormalize, QRescale),
    /// Reshape / Identity whose output reuses the input's buffer: nothing to do.
    Alias,
    /// The node's operator through the generic executor.
    Generic,
}

/// Where a step reads a tensor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Src {
    /// Constant data of the graph.
    Const(TensorId),
    /// Graph input number.
    Input(usize),
    /// An activation slot.
    Slot(usize),
}

/// One step of a plan.
#[derive(Debug, Clone)]
pub(crate) struct Step {
    /// The first node of the step (its operator, for generic steps).
    pub node: usize,
    /// The node that produces the step's outputs.
    pub last_node: usize,
    pub kind: Kind,
    pub inputs: Vec<TensorId>,
    pub srcs: Vec<Src>,
    pub outputs: Vec<TensorId>,
    /// Input position whose buffer receives output 0.
    pub inplace: Option<usize>,
}

/// A complete plan.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub steps: Vec<Step>,
    /// Slot of every activation tensor.
    pub slot_of: Vec<Option<usize>>,
    /// Element type and length of every slot.
    pub slots: Vec<(DType, usize)>,
    /// Scratch the convolutions need.
    pub scratch: usize,
}

fn numel(graph: &Graph, t: TensorId) -> usize {
    graph.tensor(t).numel()
}

/// Nodes reading each tensor (once per node).
fn consumers(graph: &Graph) -> Vec<Vec<usize>> {
    let mut c = vec![Vec::new(); graph.tensors.len()];
    for (i, n) in graph.nodes.iter().enumerate() {
        let mut seen = HashSet::new();
        for &t in &n.inputs {
            if seen.insert(t) {
                c[t.0].push(i);
            }
        }
    }
    c
}

/// The `Mul` of a SiLU pair on `y`: `s = Sigmoid(y)` read only by `m = Mul(y, s)`.
/// `exclude` is a node that may also read `y` (none, or the `Sigmoid` itself when the pair
/// follows a layer). Returns `(sigmoid node, mul node)`.
fn silu_pair(
    graph: &Graph,
    cons: &[Vec<usize>],
    outputs: &HashSet<TensorId>,
    y: TensorId,
    sig: usize,
) -> Option<usize> {
    let s_node = &graph.nodes[sig];
    if s_node.op != Op::Unary(UnaryOp::Sigmoid) || s_node.inputs != [y] {
        return None;
    }
    let s = s_node.outputs[0];
    if outputs.contains(&s) || cons[s.0].len() != 1 {
        return None;
    }
    let m = cons[s.0][0];
    let m_node = &graph.nodes[m];
    let pair_ok = m_node.inputs == [y, s] || m_node.inputs == [s, y];
    (m_node.op == Op::Binary(BinaryOp::Mul)
        && pair_ok
        && graph.tensor(y).dtype == DType::F32
        && graph.tensor(m_node.outputs[0]).shape == graph.tensor(y).shape)
        .then_some(m)
}

/// The `QBinary` `Mul` node of a table product on the `QLut` node `lut`: `s = QLut(x)` read
/// only by `z = Mul(x, s)` (or `Mul(s, x)`) of `x`'s shape.
fn qlut_mul(
    graph: &Graph,
    cons: &[Vec<usize>],
    outputs: &HashSet<TensorId>,
    lut: usize,
) -> Option<(usize, QBinary)> {
    let l_node = &graph.nodes[lut];
    let (&x, &s) = (l_node.inputs.first()?, l_node.outputs.first()?);
    if l_node.outputs.len() != 1 || outputs.contains(&s) || cons[s.0].len() != 1 {
        return None;
    }
    let m = cons[s.0][0];
    let m_node = &graph.nodes[m];
    let Op::QBinary(a) = &m_node.op else {
        return None;
    };
    let pair_ok = m_node.inputs == [x, s] || m_node.inputs == [s, x];
    (matches!(a.kind, QBinaryKind::Mul(_))
        && pair_ok
        && graph.tensor(x).dtype == DType::I16
        && graph.tensor(m_node.outputs[0]).shape == graph.tensor(x).shape)
        .then(|| (m, a.clone()))
}

/// Builds a plan; `fuse` enables the fusions of the module docs.
pub(crate) fn build(
    graph: &Graph,
    prepared: &[Option<Prepared>],
    fuse: bool,
    threads: usize,
) -> Plan {
    let cons = consumers(graph);
    let outputs: HashSet<TensorId> = graph.outputs.iter().copied().collect();
    let mut skip = vec![false; graph.nodes.len()];
    let mut steps = Vec::new();
    for (i, node) in graph.nodes.iter().enumerate() {
        if skip[i] {
            continue;
        }
        let mut step = Step {
            node: i,
            last_node: i,
            kind: Kind::Generic,
            inputs: node.inputs.clone(),
            srcs: Vec::new(),
            outputs: node.outputs.clone(),
            inplace: None,
        };
        if let Some(Prepared::Fixed(q)) = &prepared[i] {
            step.inputs.truncate(1);
            step.kind = Kind::QLayer(q.clone());
            let lut = |j: usize| match prepared.get(j) {
                Some(Some(Prepared::Fixed(QPacked::Lut(t)))) => Some(t.clone()),
                _ => None,
            };
            let tail = match (fuse, q) {
                (true, QPacked::Conv(_)) => crate::tail::conv_tail(graph, i, &outputs, &lut),
                _ => None,
            };
            if let (Some(t), QPacked::Conv(c)) = (tail, q) {
                step.kind = Kind::QConvTail(c.clone(), t.tail.clone());
                step.last_node = t.last_node();
                step.outputs = graph.nodes[t.last_node()].outputs.clone();
                for &j in &t.nodes {
                    skip[j] = true;
                }
            } else if let (true, QPacked::Lut(t)) = (fuse, q) {
                if let Some((m, a)) = qlut_mul(graph, &cons, &outputs, i) {
                    step.kind = Kind::QLutMul(t.clone(), a);
                    step.outputs = graph.nodes[m].outputs.clone();
                    step.last_node = m;
                    skip[m] = true;
                }
            }
        } else if let Some(Prepared::Float(p)) = &prepared[i] {
            let mut epi = p.epilogue();
            step.inputs.truncate(1);
            let y = node.outputs[0];
            if fuse && !outputs.contains(&y) && node.outputs.len() == 1 {
                let c = &cons[y.0];
                match *c.as_slice() {
                    [u] => {
                        if let Op::Unary(op) = graph.nodes[u].op {
                            if op != UnaryOp::Not {
                                if let Some(e) = epi.then(PostOp::Unary(op)) {
                                    epi = e;
                                    step.outputs = graph.nodes[u].outputs.clone();
                                    step.last_node = u;
                                    skip[u] = true;
                                }
                            }
                        }
                    }
                    [a, b] => {
                        let pair = silu_pair(graph, &cons, &outputs, y, a)
                            .filter(|&m| m == b)
                            .map(|m| (a, m))
                            .or_else(|| {
                                silu_pair(graph, &cons, &outputs, y, b)
                                    .filter(|&m| m == a)
                                    .map(|m| (b, m))
                            });
                        if let Some((s, m)) = pair {
                            if let Some(e) = epi.then(PostOp::Silu) {
                                epi = e;
                                step.outputs = graph.nodes[m].outputs.clone();
                                step.last_node = m;
                                skip[s] = true;
                                skip[m] = true;
                            }
                        }
                    }
                    _ => {}
                }
            }
            step.kind = Kind::Layer(p.clone(), epi);
        } else if let (true, Op::InputNormalize(a)) = (fuse, &node.op) {
            let y = node.outputs[0];
            let next = match cons[y.0].as_slice() {
                [u] if !outputs.contains(&y) && graph.nodes[*u].inputs == [y] => Some(*u),
                _ => None,
            };
            if let Some((u, Op::QRescale(r))) = next.map(|u| (u, &graph.nodes[u].op)) {
                step.kind = Kind::InputRescale(a.clone(), r.clone());
                step.outputs = graph.nodes[u].outputs.clone();
                step.last_node = u;
                skip[u] = true;
            }
        } else if fuse && node.op == Op::Unary(UnaryOp::Sigmoid) {
            let x = node.inputs[0];
            if let Some(m) = silu_pair(graph, &cons, &outputs, x, i) {
                step.kind = Kind::Silu;
                step.outputs = graph.nodes[m].outputs.clone();
                step.last_node = m;
                skip[m] = true;
            }
        } else if matches!(node.op, Op::Reshape(_) | Op::Identity) {
            step.kind = Kind::Alias;
        }
        steps.push(step);
    }

    // Liveness: the last step reading each tensor.
    let n_t = graph.tensors.len();
    let is_activation = |t: TensorId| !graph.tensor(t).is_const() && !graph.inputs.contains(&t);
    let mut last_use = vec![None; n_t];
    for (si, s) in steps.iter().enumerate() {
        for &t in &s.inputs {
            last_use[t.0] = Some(si);
        }
    }

    // In place where allowed.
    for (si, s) in steps.iter_mut().enumerate() {
        if s.outputs.len() != 1 {
            continue;
        }
        let o = s.outputs[0];
        let dies =
            |t: TensorId| is_activation(t) && last_use[t.0] == Some(si) && !outputs.contains(&t);
        let unique =
            |t: TensorId, inputs: &[TensorId]| inputs.iter().filter(|&&u| u == t).count() == 1;
        let ot = graph.tensor(o);
        match s.kind {
            Kind::Alias => {
                let t = s.inputs[0];
                if dies(t) && graph.tensor(t).dtype == ot.dtype {
                    s.inplace = Some(0);
                } else {
                    s.kind = Kind::Generic;
                }
            }
            Kind::Silu | Kind::QLutMul(..) => {
                if dies(s.inputs[0]) {
                    s.inplace = Some(0);
                }
            }
            Kind::Generic => {
                let op = &graph.nodes[s.node].op;
                s.inplace = s.inputs.iter().enumerate().position(|(pos, &t)| {
                    let tt = graph.tensor(t);
                    dies(t)
                        && unique(t, &s.inputs)
                        && tt.dtype == ot.dtype
                        && exec::can_run_inplace(op, pos, tt.dtype, &tt.shape, &ot.shape)
                });
            }
            Kind::Layer(..) | Kind::QLayer(_) | Kind::QConvTail(..) | Kind::InputRescale(..) => {}
        }
    }

    // Slots.
    let mut slot_of: Vec<Option<usize>> = vec![None; n_t];
    let mut slots: Vec<(DType, usize)> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let alloc = |dtype: DType,
                 len: usize,
                 slots: &mut Vec<(DType, usize)>,
                 free: &mut Vec<usize>|
     -> usize {
        let same: Vec<usize> = free
            .iter()
            .copied()
            .filter(|&s| slots[s].0 == dtype)
            .collect();
        let fit = same
            .iter()
            .copied()
            .filter(|&s| slots[s].1 >= len)
            .min_by_key(|&s| slots[s].1);
        let pick = fit.or_else(|| same.iter().copied().max_by_key(|&s| slots[s].1));
        match pick {
            Some(s) => {
                free.retain(|&f| f != s);
                slots[s].1 = slots[s].1.max(len);
                s
            }
            None => {
                slots.push((dtype, len));
                slots.len() - 1
            }
        }
    };
    for (si, s) in steps.iter().enumerate() {
        for (k, &o) in s.outputs.iter().enumerate() {
            if k == 0 {
                if let Some(pos) = s.inplace {
                    slot_of[o.0] = slot_of[s.inputs[pos].0];
                    continue;
                }
            }
            let t = graph.tensor(o);
            slot_of[o.0] = Some(alloc(t.dtype, numel(graph, o), &mut slots, &mut free));
        }
        let inplace_input = s.inplace.map(|p| s.inputs[p]);
        let mut released = HashSet::new();
        for &t in &s.inputs {
            if is_activation(t)
                && last_use[t.0] == Some(si)
                && !outputs.contains(&t)
                && Some(t) != inplace_input
                && released.insert(t)
            {
                if let Some(sl) = slot_of[t.0] {
                    free.push(sl);
                }
            }
        }
        for &o in &s.outputs {
            if last_use[o.0].is_none() && !outputs.contains(&o) {
                if let Some(sl) = slot_of[o.0] {
                    free.push(sl);
                }
            }
        }
    }

    // Sources.
    for s in &mut steps {
        s.srcs = s
            .inputs
            .iter()
            .map(|&t| {
                if graph.tensor(t).is_const() {
                    Src::Const(t)
                } else if let Some(i) = graph.inputs.iter().position(|&g| g == t) {
                    Src::Input(i)
                } else {
                    Src::Slot(slot_of[t.0].unwrap_or(usize::MAX))
                }
            })
            .collect();
    }

    // Scratch.
    let scratch = steps
        .iter()
        .map(|s| {
            let x = &graph.tensor(s.inputs[0]).shape;
            match &s.kind {
                Kind::Layer(FloatLayer::Conv(p), _) => p.scratch_len(x, threads),
                Kind::Layer(FloatLayer::TransposeConv(p), _) => p.scratch_len(x),
                _ => 0,
            }
        })
        .max()
        .unwrap_or(0);

    Plan {
        steps,
        slot_of,
        slots,
        scratch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipukit_ir::ops::{Conv2d, FusedActivation, Padding2d, Reshape};

    fn chain(n: usize) -> Graph {
        let mut g = Graph::new();
        let mut x = g.add_input("x", DType::F32, vec![1, 8, 8, 4]);
        for i in 0..n {
            let w = g
                .add_const(&format!("w{i}"), vec![4, 3, 3, 4], vec![0.1f32; 144].into())
                .unwrap();
            let conv = Op::Conv2d(Conv2d {
                strides: [1, 1],
                dilations: [1, 1],
                padding: Padding2d {
                    top: 1,
                    left: 1,
                    bottom: 1,
                    right: 1,
                },
                groups: 1,
                activation: FusedActivation::None,
            });
            let y = g
                .add_node(&format!("c{i}"), conv, vec![x, w], &[&format!("y{i}")])
                .unwrap()[0];
            let s = g
                .add_node(
                    &format!("s{i}"),
                    Op::Unary(UnaryOp::Sigmoid),
                    vec![y],
                    &[&format!("s{i}")],
                )
                .unwrap()[0];
            x = g
                .add_node(
                    &format!("m{i}"),
                    Op::Binary(BinaryOp::Mul),
                    vec![s, y],
                    &[&format!("z{i}")],
                )
                .unwrap()[0];
        }
        let r = g
            .add_node(
                "r",
                Op::Reshape(Reshape {
                    shape: vec![1, 256],
                }),
                vec![x],
                &["flat"],
            )
            .unwrap()[0];
        g.outputs.push(r);
        g
    }

    fn prepared(g: &Graph) -> Vec<Option<Prepared>> {
        g.nodes
            .iter()
            .map(|n| match &n.op {
                Op::Conv2d(a) => {
                    let w = g.tensor(n.inputs[1]);
                    let p = PackedConv::new(
                        a,
                        w.data.as_ref().unwrap().as_f32().unwrap(),
                        &w.shape,
                        None,
                    )
                    .unwrap();
                    Some(Prepared::Float(FloatLayer::Conv(Arc::new(p))))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn conv_sigmoid_mul_fuses_and_buffers_ping_pong() {
        let g = chain(6);
        let p = build(&g, &prepared(&g), true, 2);
        // Six fused layers and an in-place reshape.
        assert_eq!(p.steps.len(), 7);
        assert!(p.steps[..6]
            .iter()
            .all(|s| matches!(s.kind, Kind::Layer(_, e) if e.post == PostOp::Silu)));
        assert!(matches!(p.steps[6].kind, Kind::Alias));
        assert_eq!(p.steps[6].inplace, Some(0));
        // Activations alternate between two buffers.
        assert_eq!(p.slots.len(), 2, "{:?}", p.slots);
        assert_eq!(p.scratch, 0, "indirect GEMM needs no im2col scratch");
    }

    #[test]
    fn unfused_plan_runs_unary_and_binary_in_place() {
        let g = chain(3);
        let p = build(&g, &prepared(&g), false, 1);
        assert_eq!(p.steps.len(), g.nodes.len());
        // Each Mul writes into the buffer of an input that dies with it.
        let muls: Vec<&Step> = p
            .steps
            .iter()
            .filter(|s| g.nodes[s.node].op == Op::Binary(BinaryOp::Mul))
            .collect();
        assert!(muls.iter().all(|s| s.inplace.is_some()));
        // conv out (y) lives while the sigmoid reads it, so at most three buffers.
        assert!(p.slots.len() <= 3, "{:?}", p.slots);
    }

    /// `QLut` then `QBinary` `Mul` with the table's input fuses (either operand order), in
    /// place when the input dies; not when the table's output has another reader.
    #[test]
    fn fixed_table_product_fuses() {
        use ipukit_ir::ops::fixed::{OutRange, QLut, Requant, LUT_ENTRIES};
        let mut g = Graph::new();
        let x = g.add_input("x", DType::I16, vec![1, 4, 4, 8]);
        let lut = Op::QLut(QLut {
            table: vec![7; LUT_ENTRIES],
        });
        let mul = Op::QBinary(QBinary {
            kind: QBinaryKind::Mul(Requant::IDENTITY),
            out: OutRange::full(DType::I16, 0),
        });
        let s0 = g.add_node("t0", lut.clone(), vec![x], &["s0"]).unwrap()[0];
        let z0 = g.add_node("m0", mul.clone(), vec![x, s0], &["z0"]).unwrap()[0];
        let s1 = g.add_node("t1", lut.clone(), vec![z0], &["s1"]).unwrap()[0];
        let z1 = g
            .add_node("m1", mul.clone(), vec![s1, z0], &["z1"])
            .unwrap()[0];
        let s2 = g.add_node("t2", lut, vec![z1], &["s2"]).unwrap()[0];
        let z2 = g.add_node("m2", mul, vec![z1, s2], &["z2"]).unwrap()[0];
        g.outputs.extend([z2, s2]);
        let prepared: Vec<Option<Prepared>> = g
            .nodes
            .iter()
            .map(|n| QPacked::new(&n.op, &[]).unwrap().map(Prepared::Fixed))
            .collect();
        let p = build(&g, &prepared, true, 1);
        let kinds: Vec<&Kind> = p.steps.iter().map(|s| &s.kind).collect();
        assert_eq!(kinds.len(), 4, "{kinds:?}");
        assert!(matches!(kinds[0], Kind::QLutMul(..)));
        assert!(matches!(kinds[1], Kind::QLutMul(..)));
        // s2 is a graph output: no fusion.
        assert!(matches!(kinds[2], Kind::QLayer(_)));
        assert!(matches!(kinds[3], Kind::Generic));
        assert_eq!(p.steps[0].outputs, vec![z0]);
        // x is a graph input: not overwritten; z0 dies in the second product.
        assert_eq!(p.steps[0].inplace, None);
        assert_eq!(p.steps[1].inplace, Some(0));
        let unfused = build(&g, &prepared, false, 1);
        assert_eq!(unfused.steps.len(), g.nodes.len());
    }

    #[test]
    fn graph_outputs_are_never_overwritten() {
        let mut g = chain(2);
        // Make an intermediate a graph output: it must keep its own slot and stop fusion.
        let y0 = g.find_tensor("y0").unwrap();
        g.outputs.push(y0);
        let p = build(&g, &prepared(&g), true, 1);
        let s0 = p.slot_of[y0.0].unwrap();
        for s in &p.steps {
            for &o in &s.outputs {
                if o != y0 {
                    assert_ne!(
                        p.slot_of[o.0],
                        Some(s0),
                        "{} reuses y0's buffer",
                        g.tensor(o).name
                    );
                }
            }
        }
    }
}
