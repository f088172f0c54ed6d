//! Constant folding.

use super::ConstEvaluator;
use crate::{Graph, IrError, Result};

/// Outputs larger than this are left unfolded: folding an Expand or Tile of a small constant
/// would bloat the model file for no gain.
const MAX_FOLDED_ELEMENTS: usize = 1 << 22;

/// Evaluates every node whose inputs are all constant and turns its outputs into constants.
/// Returns whether anything changed.
pub fn fold_constants(graph: &mut Graph, eval: &dyn ConstEvaluator) -> Result<bool> {
    let mut changed = false;
    let mut i = 0;
    while i < graph.nodes.len() {
        let node = &graph.nodes[i];
        let all_const = node.inputs.iter().all(|&t| graph.tensor(t).is_const());
        let small = node
            .outputs
            .iter()
            .all(|&o| graph.tensor(o).numel() <= MAX_FOLDED_ELEMENTS);
        if !all_const || !small {
            i += 1;
            continue;
        }
        let inputs: Vec<_> = node
            .inputs
            .iter()
            .map(|&t| {
                let t = graph.tensor(t);
                (
                    t.data
                        .as_ref()
                        .unwrap_or_else(|| unreachable!("checked constant")),
                    t.shape.as_slice(),
                )
            })
            .collect();
        let results = eval.eval(node, &inputs).map_err(|reason| IrError::Fold {
            node: node.name.clone(),
            reason,
        })?;
        let outputs = node.outputs.clone();
        if results.len() != outputs.len() {
            return Err(IrError::Fold {
                node: graph.nodes[i].name.clone(),
                reason: format!(
                    "evaluator returned {} outputs, expected {}",
                    results.len(),
                    outputs.len()
                ),
            });
        }
        for (o, data) in outputs.into_iter().zip(results) {
            let t = graph.tensor_mut(o);
            if data.len() != t.numel() || data.dtype() != t.dtype {
                return Err(IrError::Fold {
                    node: graph.nodes[i].name.clone(),
                    reason: format!(
                        "evaluator result does not match tensor '{}'",
                        graph.tensor(o).name
                    ),
                });
            }
            t.data = Some(data);
        }
        graph.nodes.remove(i);
        changed = true;
    }
    Ok(changed)
}
