//! Transpose and reshape chains.

use crate::{
    ops::{Reshape, Transpose},
    Graph, Op, Result,
};

/// Composes Transpose∘Transpose and Reshape∘Reshape chains, and turns a Transpose that only
/// moves size-1 axes into a Reshape (same memory order). Returns whether anything changed.
pub fn simplify_transposes(graph: &mut Graph) -> Result<bool> {
    let mut changed = false;
    let producers = graph.producers();
    for i in 0..graph.nodes.len() {
        let input = graph.nodes[i].inputs[0];
        let inner = producers.get(&input).map(|p| graph.nodes[p.0].clone());
        let out_shape = graph.tensor(graph.nodes[i].outputs[0]).shape.clone();
        let rewrite = match (&graph.nodes[i].op, inner) {
            (Op::Transpose(outer), Some(inner)) => match &inner.op {
                Op::Transpose(inner_t) => {
                    let perm = outer.perm.iter().map(|&p| inner_t.perm[p]).collect();
                    Some((Op::Transpose(Transpose { perm }), inner.inputs[0]))
                }
                _ => None,
            },
            (Op::Reshape(outer), Some(inner)) if matches!(inner.op, Op::Reshape(_)) => {
                Some((Op::Reshape(outer.clone()), inner.inputs[0]))
            }
            _ => None,
        };
        let rewrite = rewrite.or_else(|| match &graph.nodes[i].op {
            Op::Transpose(t) if moves_only_unit_axes(&graph.tensor(input).shape, &t.perm) => {
                Some((Op::Reshape(Reshape { shape: out_shape }), input))
            }
            _ => None,
        });
        if let Some((op, new_input)) = rewrite {
            graph.nodes[i].op = op;
            graph.nodes[i].inputs[0] = new_input;
            changed = true;
        }
    }
    if changed {
        graph.compact();
    }
    Ok(changed)
}

/// True if the axes of size > 1 keep their relative order under `perm`.
pub(crate) fn moves_only_unit_axes(shape: &[usize], perm: &[usize]) -> bool {
    let order: Vec<usize> = perm.iter().copied().filter(|&p| shape[p] != 1).collect();
    order.windows(2).all(|w| w[0] < w[1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DType, Graph, Op};

    #[test]
    fn transposes_compose_and_cancel() {
        let mut g = Graph::new();
        let x = g.add_input("x", DType::F32, vec![1, 2, 3, 4]);
        let a = g
            .add_node(
                "t1",
                Op::Transpose(Transpose {
                    perm: vec![0, 2, 3, 1],
                }),
                vec![x],
                &["a"],
            )
            .unwrap()[0];
        let b = g
            .add_node(
                "t2",
                Op::Transpose(Transpose {
                    perm: vec![0, 3, 1, 2],
                }),
                vec![a],
                &["b"],
            )
            .unwrap()[0];
        g.outputs.push(b);
        assert!(simplify_transposes(&mut g).unwrap());
        g.validate().unwrap();
        assert_eq!(g.nodes.len(), 1);
        let Op::Transpose(t) = &g.nodes[0].op else {
            panic!()
        };
        assert_eq!(t.perm, vec![0, 1, 2, 3]);
    }

    #[test]
    fn unit_axis_transpose_becomes_reshape() {
        assert!(moves_only_unit_axes(&[1, 8, 1, 1], &[0, 2, 3, 1]));
        assert!(!moves_only_unit_axes(&[1, 8, 2, 1], &[0, 2, 3, 1]));
    }
}
