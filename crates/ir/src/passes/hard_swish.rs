//! Recognition of hard-swish written out as element-wise operations.
//!
//! MobileNetV3-style exports spell `hard_swish(x)` as `x * clip(x + 3, 0, 6) / 6` (or `* 1/6`,
//! or `x * hard_sigmoid(x)` with slope 1/6). One fused operator runs faster and, once
//! quantized, avoids three intermediate roundings.

use super::only_reader;
use crate::{
    ops::{BinaryOp, UnaryOp},
    Graph, Op, Result, TensorId,
};

/// The scalar value of a constant tensor, if it has exactly one element.
fn scalar(graph: &Graph, t: TensorId) -> Option<f32> {
    let d = graph.tensor(t).data.as_ref()?;
    (d.len() == 1 && d.dtype().is_float()).then(|| d.to_f32_vec()[0])
}

fn close(a: f32, b: f32) -> bool {
    (a - b).abs() <= 1e-6 * b.abs().max(1.0)
}

/// The producer index of `t` if it is a binary `op` with one scalar constant operand equal to
/// `value`; returns the other operand.
fn binary_with_scalar(
    graph: &Graph,
    t: TensorId,
    op: BinaryOp,
    value: f32,
) -> Option<(usize, TensorId)> {
    let p = graph.nodes.iter().position(|n| n.outputs == [t])?;
    let n = &graph.nodes[p];
    if n.op != Op::Binary(op) {
        return None;
    }
    let commutative = matches!(op, BinaryOp::Add | BinaryOp::Mul);
    match (scalar(graph, n.inputs[0]), scalar(graph, n.inputs[1])) {
        (None, Some(v)) if close(v, value) => Some((p, n.inputs[0])),
        (Some(v), None) if commutative && close(v, value) => Some((p, n.inputs[1])),
        _ => None,
    }
}

/// If `t` is `relu6(x + 3) / 6`-like gate of `x`, returns `x` and the nodes to delete.
fn gate_of(graph: &Graph, t: TensorId) -> Option<(TensorId, Vec<usize>)> {
    let p = graph.nodes.iter().position(|n| n.outputs == [t])?;
    match graph.nodes[p].op {
        // hard_sigmoid(x) with slope 1/6 and offset 1/2 is clip(x + 3, 0, 6) / 6.
        Op::Unary(UnaryOp::HardSigmoid(a, b)) if close(a, 1.0 / 6.0) && close(b, 0.5) => {
            Some((graph.nodes[p].inputs[0], vec![p]))
        }
        Op::Unary(UnaryOp::Clip(lo, hi)) if lo == 0.0 && hi == 6.0 => {
            let (add, x) = binary_with_scalar(graph, graph.nodes[p].inputs[0], BinaryOp::Add, 3.0)?;
            Some((x, vec![p, add]))
        }
        _ => None,
    }
}

/// Replaces every hard-swish spelled with element-wise operations by one `HardSwish`.
/// Returns whether anything changed.
pub fn fuse_hard_swish(graph: &mut Graph) -> Result<bool> {
    let mut changed = false;
    let mut i = 0;
    while i < graph.nodes.len() {
        if let Some((x, dead)) = match_at(graph, i) {
            graph.nodes[i].op = Op::Unary(UnaryOp::HardSwish);
            graph.nodes[i].inputs = vec![x];
            let mut dead = dead;
            dead.sort_unstable();
            for d in dead.into_iter().rev() {
                graph.nodes.remove(d);
            }
            changed = true;
            i = 0;
        } else {
            i += 1;
        }
    }
    Ok(changed)
}

/// Matches a hard-swish ending at node `i`: `(x * g) / 6`, `(x * g) * (1/6)` with `g` the
/// relu6(x+3) gate, or `x * hard_sigmoid(x)`. Returns `x` and the other nodes of the pattern.
fn match_at(graph: &Graph, i: usize) -> Option<(TensorId, Vec<usize>)> {
    let n = &graph.nodes[i];
    let out = n.outputs[0];
    // Form 1: x * hard_sigmoid(x), where the multiply is node i itself.
    if n.op == Op::Binary(BinaryOp::Mul) {
        for (a, b) in [(n.inputs[0], n.inputs[1]), (n.inputs[1], n.inputs[0])] {
            if let Some((x, dead)) = gate_of(graph, b) {
                let p = dead[0];
                let is_hsig = matches!(graph.nodes[p].op, Op::Unary(UnaryOp::HardSigmoid(..)));
                if is_hsig && x == a && only_reader(graph, b, i) {
                    return Some((x, dead));
                }
            }
        }
    }
    // Form 2: (x * relu6(x + 3)) / 6 or * (1/6).
    let (mul, prod) = binary_with_scalar(graph, out, BinaryOp::Div, 6.0)
        .or_else(|| binary_with_scalar(graph, out, BinaryOp::Mul, 1.0 / 6.0))
        .filter(|(p, _)| *p == i)?;
    let m = graph.nodes.iter().position(|n| n.outputs == [prod])?;
    if graph.nodes[m].op != Op::Binary(BinaryOp::Mul) || !only_reader(graph, prod, mul) {
        return None;
    }
    let (a, b) = (graph.nodes[m].inputs[0], graph.nodes[m].inputs[1]);
    for (x, g) in [(a, b), (b, a)] {
        if let Some((gx, mut dead)) = gate_of(graph, g) {
            let clip_chain =
                !matches!(graph.nodes[dead[0]].op, Op::Unary(UnaryOp::HardSigmoid(..)));
            let private = only_reader(graph, g, m)
                && dead
                    .get(1)
                    .is_none_or(|&add| only_reader(graph, graph.nodes[add].outputs[0], dead[0]));
            if clip_chain && gx == x && private {
                dead.push(m);
                return Some((x, dead));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DType;

    #[test]
    fn clip_chain_becomes_hard_swish() {
        let mut g = Graph::new();
        let x = g.add_input("x", DType::F32, vec![1, 4]);
        let three = g.add_const("three", vec![], vec![3.0f32].into()).unwrap();
        let six = g.add_const("six", vec![], vec![6.0f32].into()).unwrap();
        let a = g
            .add_node("add", Op::Binary(BinaryOp::Add), vec![x, three], &["a"])
            .unwrap()[0];
        let c = g
            .add_node("clip", Op::Unary(UnaryOp::Clip(0.0, 6.0)), vec![a], &["c"])
            .unwrap()[0];
        let m = g
            .add_node("mul", Op::Binary(BinaryOp::Mul), vec![x, c], &["m"])
            .unwrap()[0];
        let y = g
            .add_node("div", Op::Binary(BinaryOp::Div), vec![m, six], &["y"])
            .unwrap()[0];
        g.outputs.push(y);
        assert!(fuse_hard_swish(&mut g).unwrap());
        g.compact();
        g.validate().unwrap();
        assert_eq!(g.nodes.len(), 1);
        assert_eq!(g.nodes[0].op, Op::Unary(UnaryOp::HardSwish));
        assert_eq!(g.tensor(g.outputs[0]).name, "y");
    }

    #[test]
    fn shared_gate_is_left_alone() {
        let mut g = Graph::new();
        let x = g.add_input("x", DType::F32, vec![1, 4]);
        let three = g.add_const("three", vec![], vec![3.0f32].into()).unwrap();
        let six = g.add_const("six", vec![], vec![6.0f32].into()).unwrap();
        let a = g
            .add_node("add", Op::Binary(BinaryOp::Add), vec![x, three], &["a"])
            .unwrap()[0];
        let c = g
            .add_node("clip", Op::Unary(UnaryOp::Clip(0.0, 6.0)), vec![a], &["c"])
            .unwrap()[0];
        let m = g
            .add_node("mul", Op::Binary(BinaryOp::Mul), vec![x, c], &["m"])
            .unwrap()[0];
        let y = g
            .add_node("div", Op::Binary(BinaryOp::Div), vec![m, six], &["y"])
            .unwrap()[0];
        g.outputs.extend([y, c]);
        assert!(!fuse_hard_swish(&mut g).unwrap());
    }
}
