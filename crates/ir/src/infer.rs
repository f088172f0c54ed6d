//! Graph-wide shape inference.

use crate::{Graph, Result};

/// Recomputes the dtype and shape of every node output from the graph inputs and constants.
///
/// Used after a pass changes an upstream shape (for example a new input shape): downstream
/// stored types are overwritten, and the first node whose operator rejects its inputs is
/// reported.
pub fn reinfer(graph: &mut Graph) -> Result<()> {
    for i in 0..graph.nodes.len() {
        let n = &graph.nodes[i];
        let infos = graph.infer_outputs(&n.name, &n.op, &n.inputs)?;
        let outs = n.outputs.clone();
        for (o, (dt, shape)) in outs.into_iter().zip(infos) {
            let t = graph.tensor_mut(o);
            t.dtype = dt;
            t.shape = shape;
        }
    }
    Ok(())
}
