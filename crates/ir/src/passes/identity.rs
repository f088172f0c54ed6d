//! Removal of operators that do nothing on their actual inputs.

use super::bypass;
use crate::{ops::BinaryOp, Graph, Op, Result, TensorData};

/// True if every element of a constant equals `v`.
fn all_equal(data: &TensorData, v: f32) -> bool {
    data.to_f32_vec().iter().all(|&x| x == v)
}

/// Removes Identity, same-shape Reshape/Expand, identity Transpose/Slice/Tile, same-type Cast,
/// zero Pad, single-input Concat, single-output Split, and `x + 0`, `x - 0`, `x * 1`, `x / 1`.
/// Returns whether anything changed.
pub fn remove_identities(graph: &mut Graph) -> Result<bool> {
    let mut changed = false;
    let mut i = 0;
    while i < graph.nodes.len() {
        if noop_input(graph, i).is_some_and(|pos| bypass(graph, i, pos)) {
            changed = true;
        } else {
            i += 1;
        }
    }
    Ok(changed)
}

/// If node `i` does nothing, the position of the input that passes through unchanged.
fn noop_input(graph: &Graph, i: usize) -> Option<usize> {
    let n = &graph.nodes[i];
    let x = graph.tensor(n.inputs[0]);
    let out = graph.tensor(n.outputs[0]);
    let same_type = n.outputs.len() == 1 && x.shape == out.shape && x.dtype == out.dtype;
    let noop = match &n.op {
        Op::Identity => true,
        Op::Reshape(_) | Op::Expand(_) | Op::Cast(_) => same_type,
        Op::Transpose(t) => t.perm.iter().enumerate().all(|(i, &p)| i == p),
        Op::Slice(s) => s.is_identity(&x.shape),
        Op::Tile(t) => t.repeats.iter().all(|&r| r == 1),
        Op::Pad(p) => p.pads.iter().all(|p| p[0] == 0 && p[1] == 0),
        Op::Concat(_) => n.inputs.len() == 1,
        Op::Split(_) => n.outputs.len() == 1,
        Op::Binary(op) if same_type && n.inputs.len() == 2 => {
            let a = graph.tensor(n.inputs[0]);
            let b = graph.tensor(n.inputs[1]);
            let (pos, var, c) = match (&a.data, &b.data) {
                (None, Some(c)) => (0, a, c),
                (Some(c), None) if matches!(op, BinaryOp::Add | BinaryOp::Mul) => (1, b, c),
                _ => return None,
            };
            let neutral = match op {
                BinaryOp::Add | BinaryOp::Sub => all_equal(c, 0.0),
                BinaryOp::Mul | BinaryOp::Div => all_equal(c, 1.0),
                _ => false,
            };
            return (neutral && var.shape == out.shape && var.dtype.is_float()).then_some(pos);
        }
        _ => false,
    };
    noop.then_some(0)
}
