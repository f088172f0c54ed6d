//! Graph rewrites shared by every frontend.
//!
//! Each pass keeps the graph valid ([`Graph::validate`]) and keeps the names of graph inputs and
//! outputs: users refer to them in `input_config.ini`.

mod activation_fusion;
mod affine_fold;
mod fold;
mod hard_swish;
mod identity;
mod transpose;

pub use activation_fusion::fuse_activations;
pub use affine_fold::fold_affine_into_conv;
pub use fold::fold_constants;
pub use hard_swish::fuse_hard_swish;
pub use identity::remove_identities;
pub use transpose::simplify_transposes;

use crate::{Graph, Node, Result, TensorData};

/// Evaluates one node on constant inputs; implemented by the runtime so that folding uses the
/// very kernels inference uses.
pub trait ConstEvaluator {
    /// Computes the node's outputs from its (constant) inputs, given as `(data, shape)`.
    fn eval(
        &self,
        node: &Node,
        inputs: &[(&TensorData, &[usize])],
    ) -> std::result::Result<Vec<TensorData>, String>;
}

/// Which optional rewrites [`simplify`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimplifyOptions {
    /// Fold per-channel Mul/Add/Sub/Div (BatchNorm, Scale) into the preceding convolution.
    pub fold_affine: bool,
    /// Fuse Relu / Relu6 / Clip(-1, 1) into convolutions and fully-connected layers.
    pub fuse_activations: bool,
    /// Recognise hard-swish spelled as `x * clip(x + 3, 0, 6) / 6`.
    pub fuse_hard_swish: bool,
}

impl Default for SimplifyOptions {
    fn default() -> Self {
        SimplifyOptions {
            fold_affine: true,
            fuse_activations: true,
            fuse_hard_swish: true,
        }
    }
}

/// Runs the standard pipeline until nothing changes: constant folding, identity removal,
/// transpose simplification, affine folding, hard-swish recognition and activation fusion.
pub fn simplify(graph: &mut Graph, eval: &dyn ConstEvaluator, opts: SimplifyOptions) -> Result<()> {
    for _ in 0..8 {
        let mut changed = fold_constants(graph, eval)?;
        changed |= remove_identities(graph)?;
        changed |= simplify_transposes(graph)?;
        if opts.fold_affine {
            changed |= fold_affine_into_conv(graph)?;
        }
        if opts.fuse_hard_swish {
            changed |= fuse_hard_swish(graph)?;
        }
        if opts.fuse_activations {
            changed |= fuse_activations(graph)?;
        }
        graph.compact();
        if !changed {
            break;
        }
    }
    graph.validate()
}

/// Removes a node by routing its input number `pos` to the consumers of its single output.
///
/// When the output is a graph output, the producer of the input is made to write the output
/// tensor directly so the output keeps its name. Returns false (and changes nothing) when that
/// is impossible: the input is a graph input or constant, or is used elsewhere too.
pub(crate) fn bypass(graph: &mut Graph, node_index: usize, pos: usize) -> bool {
    let node = &graph.nodes[node_index];
    let (input, output) = (node.inputs[pos], node.outputs[0]);
    if !graph.is_output(output) {
        graph.replace_uses(output, input);
        graph.nodes.remove(node_index);
        return true;
    }
    let producer = graph.nodes.iter().position(|n| n.outputs.contains(&input));
    let (it, ot) = (graph.tensor(input), graph.tensor(output));
    if it.dtype != ot.dtype || it.shape != ot.shape {
        return false;
    }
    let other_uses = graph
        .nodes
        .iter()
        .enumerate()
        .any(|(i, n)| i != node_index && n.inputs.contains(&input))
        || graph.is_output(input);
    match producer {
        Some(p) if !other_uses => {
            for o in &mut graph.nodes[p].outputs {
                if *o == input {
                    *o = output;
                }
            }
            graph.nodes.remove(node_index);
            true
        }
        _ => false,
    }
}

/// True if node `reader` is the only node reading `tensor` and it is not a graph output.
pub(crate) fn only_reader(graph: &Graph, tensor: crate::TensorId, reader: usize) -> bool {
    !graph.is_output(tensor)
        && graph
            .nodes
            .iter()
            .enumerate()
            .all(|(i, n)| i == reader || !n.inputs.contains(&tensor))
}
