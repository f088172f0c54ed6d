//! The graph: tensors, nodes in topological order, inputs and outputs.

use crate::{error::IrError, DType, Op, Result, Tensor, TensorData};
use std::collections::{HashMap, HashSet};

/// Index of a tensor in [`Graph::tensors`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TensorId(pub usize);

/// Index of a node in [`Graph::nodes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub usize);

/// One operator application.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Unique node name (from the source model where it had one).
    pub name: String,
    /// The operator and its attributes.
    pub op: Op,
    /// Input tensors, in the operator's order.
    pub inputs: Vec<TensorId>,
    /// Output tensors.
    pub outputs: Vec<TensorId>,
}

/// A dataflow graph whose nodes are kept in topological order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Graph {
    /// All tensors; [`TensorId`] indexes this.
    pub tensors: Vec<Tensor>,
    /// Nodes in execution order.
    pub nodes: Vec<Node>,
    /// Graph inputs, in model order.
    pub inputs: Vec<TensorId>,
    /// Graph outputs, in model order.
    pub outputs: Vec<TensorId>,
}

impl Graph {
    /// An empty graph.
    pub fn new() -> Graph {
        Graph::default()
    }

    /// The tensor with this id.
    pub fn tensor(&self, id: TensorId) -> &Tensor {
        &self.tensors[id.0]
    }

    /// Mutable access to a tensor.
    pub fn tensor_mut(&mut self, id: TensorId) -> &mut Tensor {
        &mut self.tensors[id.0]
    }

    /// Finds a tensor by name.
    pub fn find_tensor(&self, name: &str) -> Option<TensorId> {
        self.tensors
            .iter()
            .position(|t| t.name == name)
            .map(TensorId)
    }

    /// A name not used by any tensor, derived from `base`.
    pub fn unique_tensor_name(&self, base: &str) -> String {
        let used: HashSet<&str> = self.tensors.iter().map(|t| t.name.as_str()).collect();
        unique(base, |n| used.contains(n))
    }

    /// A name not used by any node, derived from `base`.
    pub fn unique_node_name(&self, base: &str) -> String {
        let used: HashSet<&str> = self.nodes.iter().map(|n| n.name.as_str()).collect();
        unique(base, |n| used.contains(n))
    }

    /// Adds a tensor and returns its id. The caller keeps names unique.
    pub fn add_tensor(&mut self, tensor: Tensor) -> TensorId {
        self.tensors.push(tensor);
        TensorId(self.tensors.len() - 1)
    }

    /// Adds a graph input.
    pub fn add_input(&mut self, name: &str, dtype: DType, shape: Vec<usize>) -> TensorId {
        let id = self.add_tensor(Tensor {
            name: name.to_string(),
            dtype,
            shape,
            data: None,
            quant: None,
        });
        self.inputs.push(id);
        id
    }

    /// Adds a constant; fails if the data length does not match the shape.
    pub fn add_const(
        &mut self,
        name: &str,
        shape: Vec<usize>,
        data: TensorData,
    ) -> Result<TensorId> {
        if shape.iter().product::<usize>() != data.len() {
            return Err(IrError::InvalidGraph(format!(
                "constant '{name}' has {} elements but shape {shape:?}",
                data.len()
            )));
        }
        Ok(self.add_tensor(Tensor {
            name: name.to_string(),
            dtype: data.dtype(),
            shape,
            data: Some(data),
            quant: None,
        }))
    }

    /// Adds a node, inferring the dtypes and shapes of its outputs, which get the given names.
    pub fn add_node(
        &mut self,
        name: &str,
        op: Op,
        inputs: Vec<TensorId>,
        output_names: &[&str],
    ) -> Result<Vec<TensorId>> {
        let infos = self.infer_outputs(name, &op, &inputs)?;
        if infos.len() != output_names.len() {
            return Err(IrError::InvalidNode {
                op: op.name().to_string(),
                node: name.to_string(),
                reason: format!(
                    "produces {} outputs, {} names given",
                    infos.len(),
                    output_names.len()
                ),
            });
        }
        let outputs = infos
            .into_iter()
            .zip(output_names)
            .map(|((dtype, shape), n)| {
                self.add_tensor(Tensor {
                    name: n.to_string(),
                    dtype,
                    shape,
                    data: None,
                    quant: None,
                })
            })
            .collect::<Vec<_>>();
        self.nodes.push(Node {
            name: name.to_string(),
            op,
            inputs,
            outputs: outputs.clone(),
        });
        Ok(outputs)
    }

    /// Output dtypes and shapes `op` would give on `inputs`; errors carry the node name.
    pub fn infer_outputs(
        &self,
        node_name: &str,
        op: &Op,
        inputs: &[TensorId],
    ) -> Result<Vec<(DType, Vec<usize>)>> {
        let infos: Vec<(DType, &[usize])> = inputs
            .iter()
            .map(|&i| {
                let t = self.tensor(i);
                (t.dtype, t.shape.as_slice())
            })
            .collect();
        op.infer(&infos).map_err(|e| with_node(e, node_name))
    }

    /// For every tensor, the node that produces it.
    pub fn producers(&self) -> HashMap<TensorId, NodeId> {
        let mut m = HashMap::new();
        for (i, n) in self.nodes.iter().enumerate() {
            for &o in &n.outputs {
                m.insert(o, NodeId(i));
            }
        }
        m
    }

    /// For every tensor, the nodes that read it (in node order, once per node).
    pub fn consumers(&self) -> HashMap<TensorId, Vec<NodeId>> {
        let mut m: HashMap<TensorId, Vec<NodeId>> = HashMap::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let mut seen = HashSet::new();
            for &t in &n.inputs {
                if seen.insert(t) {
                    m.entry(t).or_default().push(NodeId(i));
                }
            }
        }
        m
    }

    /// True if the tensor is a graph output.
    pub fn is_output(&self, id: TensorId) -> bool {
        self.outputs.contains(&id)
    }

    /// Checks that the graph is well formed: unique names, every node input available when the
    /// node runs, each tensor produced once, stored shapes equal to inferred ones.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(IrError::InvalidGraph(m));
        let mut names = HashSet::new();
        for t in &self.tensors {
            if !names.insert(t.name.as_str()) {
                return bad(format!("tensor name '{}' is used twice", t.name));
            }
            if let Some(d) = &t.data {
                if d.len() != t.numel() || d.dtype() != t.dtype {
                    return bad(format!(
                        "constant '{}' data does not match its type",
                        t.name
                    ));
                }
            }
        }
        let mut ready: HashSet<TensorId> = self.inputs.iter().copied().collect();
        for (i, t) in self.tensors.iter().enumerate() {
            if t.data.is_some() {
                ready.insert(TensorId(i));
            }
        }
        for n in &self.nodes {
            for &i in &n.inputs {
                if i.0 >= self.tensors.len() {
                    return bad(format!(
                        "node '{}' reads a tensor that does not exist",
                        n.name
                    ));
                }
                if !ready.contains(&i) {
                    return bad(format!(
                        "node '{}' reads '{}' before it is produced (nodes must be topologically sorted)",
                        n.name,
                        self.tensor(i).name
                    ));
                }
            }
            let inferred = self.infer_outputs(&n.name, &n.op, &n.inputs)?;
            if inferred.len() != n.outputs.len() {
                return bad(format!("node '{}' has the wrong number of outputs", n.name));
            }
            for (&o, (dt, shape)) in n.outputs.iter().zip(inferred) {
                let t = self.tensor(o);
                if t.dtype != dt || t.shape != shape {
                    return bad(format!(
                        "tensor '{}' is stored as {} {:?} but node '{}' produces {dt} {shape:?}",
                        t.name, t.dtype, t.shape, n.name
                    ));
                }
                if !ready.insert(o) || t.data.is_some() {
                    return bad(format!("tensor '{}' is produced twice", t.name));
                }
            }
        }
        for &o in &self.outputs {
            if !ready.contains(&o) {
                return bad(format!(
                    "graph output '{}' is never produced",
                    self.tensor(o).name
                ));
            }
        }
        Ok(())
    }

    /// Replaces every use of `from` (node inputs and graph outputs) with `to`.
    pub fn replace_uses(&mut self, from: TensorId, to: TensorId) {
        for n in &mut self.nodes {
            for i in &mut n.inputs {
                if *i == from {
                    *i = to;
                }
            }
        }
        for o in &mut self.outputs {
            if *o == from {
                *o = to;
            }
        }
    }

    /// Drops nodes whose outputs nobody uses and tensors nothing refers to, then renumbers.
    pub fn compact(&mut self) {
        // Dead nodes, back to front.
        let mut live: HashSet<TensorId> = self.outputs.iter().copied().collect();
        let mut keep = vec![false; self.nodes.len()];
        for (i, n) in self.nodes.iter().enumerate().rev() {
            if n.outputs.iter().any(|o| live.contains(o)) {
                keep[i] = true;
                live.extend(n.inputs.iter().copied());
            }
        }
        let mut k = keep.into_iter();
        self.nodes.retain(|_| k.next().unwrap_or(false));

        // Renumber the tensors still referenced.
        let mut used = vec![false; self.tensors.len()];
        for &i in self.inputs.iter().chain(&self.outputs) {
            used[i.0] = true;
        }
        for n in &self.nodes {
            for &t in n.inputs.iter().chain(&n.outputs) {
                used[t.0] = true;
            }
        }
        let mut map = vec![usize::MAX; self.tensors.len()];
        let mut tensors = Vec::new();
        for (i, t) in std::mem::take(&mut self.tensors).into_iter().enumerate() {
            if used[i] {
                map[i] = tensors.len();
                tensors.push(t);
            }
        }
        self.tensors = tensors;
        let re = |t: &mut TensorId| t.0 = map[t.0];
        self.inputs.iter_mut().for_each(re);
        self.outputs.iter_mut().for_each(re);
        for n in &mut self.nodes {
            n.inputs.iter_mut().for_each(re);
            n.outputs.iter_mut().for_each(re);
        }
    }

    /// Total bytes of constant data.
    pub fn const_bytes(&self) -> usize {
        self.tensors
            .iter()
            .filter_map(|t| t.data.as_ref().map(|d| d.len() * d.dtype().size()))
            .sum()
    }
}

fn unique(base: &str, used: impl Fn(&str) -> bool) -> String {
    if !used(base) {
        return base.to_string();
    }
    (1..)
        .map(|i| format!("{base}_{i}"))
        .find(|n| !used(n))
        .unwrap_or_else(|| base.to_string())
}

/// Adds the node name to an inference error.
pub(crate) fn with_node(e: IrError, node: &str) -> IrError {
    match e {
        IrError::InvalidNode { op, reason, .. } => IrError::InvalidNode {
            op,
            node: node.to_string(),
            reason,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::{BinaryOp, UnaryOp};

    fn small() -> Graph {
        let mut g = Graph::new();
        let x = g.add_input("x", DType::F32, vec![1, 4]);
        let c = g.add_const("c", vec![4], vec![1.0f32; 4].into()).unwrap();
        let y = g
            .add_node("add", Op::Binary(BinaryOp::Add), vec![x, c], &["y"])
            .unwrap()[0];
        let z = g
            .add_node("relu", Op::Unary(UnaryOp::Relu), vec![y], &["z"])
            .unwrap()[0];
        let _dead = g
            .add_node("neg", Op::Unary(UnaryOp::Neg), vec![y], &["dead"])
            .unwrap();
        g.outputs.push(z);
        g
    }

    #[test]
    fn builds_and_validates() {
        let g = small();
        g.validate().unwrap();
        assert_eq!(g.tensor(g.outputs[0]).shape, vec![1, 4]);
    }

    #[test]
    fn compact_drops_dead_nodes_and_tensors() {
        let mut g = small();
        g.compact();
        g.validate().unwrap();
        assert_eq!(g.nodes.len(), 2);
        assert!(g.find_tensor("dead").is_none());
    }

    #[test]
    fn inference_errors_name_the_node() {
        let mut g = Graph::new();
        let a = g.add_input("a", DType::F32, vec![3]);
        let b = g.add_input("b", DType::F32, vec![4]);
        let e = g
            .add_node("bad_add", Op::Binary(BinaryOp::Add), vec![a, b], &["o"])
            .unwrap_err();
        assert!(e.to_string().contains("bad_add"), "{e}");
    }

    #[test]
    fn validate_catches_unsorted_nodes() {
        let mut g = small();
        g.nodes.swap(0, 1);
        assert!(g
            .validate()
            .unwrap_err()
            .to_string()
            .contains("topologically"));
    }
}
