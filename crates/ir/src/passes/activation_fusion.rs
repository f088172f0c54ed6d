//! Fusion of Relu / Relu6 / Clip(-1, 1) into the layer before it.

use super::{bypass, only_reader};
use crate::{
    ops::{FusedActivation, UnaryOp},
    Graph, Op, Result,
};

fn fused_slot(op: &mut Op) -> Option<&mut FusedActivation> {
    match op {
        Op::Conv2d(c) => Some(&mut c.activation),
        Op::DepthwiseConv2d(c) => Some(&mut c.activation),
        Op::TransposeConv2d(c) => Some(&mut c.activation),
        Op::FullyConnected(f) => Some(&mut f.activation),
        _ => None,
    }
}

/// Fuses an activation into a convolution or fully-connected layer whose output feeds only it.
/// Returns whether anything changed.
pub fn fuse_activations(graph: &mut Graph) -> Result<bool> {
    let mut changed = false;
    let mut i = 0;
    while i < graph.nodes.len() {
        let act = match graph.nodes[i].op {
            Op::Unary(UnaryOp::Relu) => Some(FusedActivation::Relu),
            Op::Unary(UnaryOp::Clip(lo, hi)) => FusedActivation::from_clip(lo, hi),
            _ => None,
        };
        let input = graph.nodes[i].inputs[0];
        let producer = graph.nodes.iter().position(|n| n.outputs == [input]);
        let fusable = act.is_some()
            && only_reader(graph, input, i)
            && producer.is_some_and(|p| {
                let mut op = graph.nodes[p].op.clone();
                fused_slot(&mut op).is_some_and(|s| *s == FusedActivation::None)
            });
        if let (true, Some(act), Some(p)) = (fusable, act, producer) {
            let op_before = graph.nodes[p].op.clone();
            if let Some(slot) = fused_slot(&mut graph.nodes[p].op) {
                *slot = act;
            }
            if bypass(graph, i, 0) {
                changed = true;
                continue;
            }
            graph.nodes[p].op = op_before;
        }
        i += 1;
    }
    Ok(changed)
}
