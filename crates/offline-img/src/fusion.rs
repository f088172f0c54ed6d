//! The layer groups the loaded program runs as one step (`docs/offline-img.md` §9). The
//! compiler's memory planner, the loader's plan check and the loader find them with the same
//! rules on the same program, so the plan gives a group's never-written intermediate values
//! no memory and never lets its outputs share memory with its input.

use crate::program::{Exec, Program};
use ipukit_ir::ops::fixed::{QReduce, QRescale};
use ipukit_ir::ops::Pool2d;
use ipukit_ir::{Graph, Op, TensorId};
use ipukit_runtime::LayerTail;
use std::collections::HashSet;

/// What a group runs after its first node.
#[derive(Debug, Clone)]
pub(crate) enum GroupKind {
    /// A `QConv2d` or `QDepthwiseConv2d` and its element-wise tail
    /// ([`ipukit_runtime::layer_tail`]).
    LayerTail(LayerTail),
    /// A `QDepthwiseConv2d` on one image, its element-wise tail, and the global average pool
    /// (a `QReduce` over height and width, node `last`) of the tail's output, which is
    /// written too ([`FusedGroup::also`]): the squeeze of a squeeze-and-excitation block,
    /// summed while the tail writes its rows.
    LayerTailMean {
        /// The depthwise layer's tail.
        tail: LayerTail,
        /// The reduction.
        reduce: QReduce,
    },
    /// `InputNormalize` and the `QRescale` that alone reads it.
    InputRescale(QRescale),
    /// A `QConv2d`, the max pool (node `first + 1`) whose windows tile its output and alone
    /// reads it, and the pool's element-wise tail if any.
    ConvPool {
        /// The pool's attributes.
        pool: Pool2d,
        /// The tail after the pool.
        tail: Option<LayerTail>,
    },
}

/// Nodes `first..=last` run as one step.
#[derive(Debug, Clone)]
pub(crate) struct FusedGroup {
    /// The group's last node, whose output the step writes.
    pub last: usize,
    /// A member before `last` whose output the step writes as well (nodes after the group
    /// read it); the other members' outputs are never written.
    pub also: Option<usize>,
    /// What the step runs.
    pub kind: GroupKind,
}

/// The nodes `first..=last` may run fused: each is a kernel or a whole table chain (no chain
/// continues past `last`).
fn fusable_run(exec: &[Exec], first: usize, last: usize) -> bool {
    exec[first..=last]
        .iter()
        .all(|e| matches!(e, Exec::Kernel | Exec::TableHead | Exec::TableLink))
        && exec[first] != Exec::TableLink
        && exec.get(last + 1) != Some(&Exec::TableLink)
}

/// The group starting at node `i`, if any.
fn group_at(
    g: &Graph,
    exec: &[Exec],
    readers: &[usize],
    outputs: &HashSet<TensorId>,
    i: usize,
) -> Option<FusedGroup> {
    let node = &g.nodes[i];
    if exec[i] != Exec::Kernel || node.inputs.is_empty() || node.outputs.len() != 1 {
        return None;
    }
    match &node.op {
        Op::QConv2d(_) | Op::QDepthwiseConv2d(_) => {
            let Some(t) = ipukit_runtime::layer_tail(g, i, outputs, &|_| None) else {
                return conv_pool(g, exec, readers, outputs, i);
            };
            let last = t.last_node();
            if !fusable_run(exec, i + 1, last) {
                return None;
            }
            Some(tail_mean(g, exec, i, &t).unwrap_or(FusedGroup {
                last,
                also: None,
                kind: GroupKind::LayerTail(t),
            }))
        }
        Op::InputNormalize(_) => {
            let y = node.outputs[0];
            let next = g.nodes.get(i + 1)?;
            let Op::QRescale(r) = &next.op else {
                return None;
            };
            let alone = next.inputs == [y] && readers[y.0] == 1 && !outputs.contains(&y);
            (alone && next.outputs.len() == 1 && fusable_run(exec, i + 1, i + 1)).then(|| {
                FusedGroup {
                    last: i + 1,
                    also: None,
                    kind: GroupKind::InputRescale(r.clone()),
                }
            })
        }
        _ => None,
    }
}

/// The depthwise layer at node `i` with its tail `t`, when the node right after the tail is
/// a `QReduce` over the height and width of the tail's output, for one image.
fn tail_mean(g: &Graph, exec: &[Exec], i: usize, t: &LayerTail) -> Option<FusedGroup> {
    let Op::QDepthwiseConv2d(_) = g.nodes[i].op else {
        return None;
    };
    let y = *g.nodes[t.last_node()].outputs.first()?;
    let r = t.last_node() + 1;
    let next = g.nodes.get(r)?;
    let Op::QReduce(reduce) = &next.op else {
        return None;
    };
    let shape = &g.tensor(y).shape;
    let spatial = reduce.reduce.axes == [1, 2] && shape.len() == 4 && shape[0] == 1;
    (spatial && next.inputs == [y] && next.outputs.len() == 1 && fusable_run(exec, r, r)).then(
        || FusedGroup {
            last: r,
            also: Some(t.last_node()),
            kind: GroupKind::LayerTailMean {
                tail: t.clone(),
                reduce: reduce.clone(),
            },
        },
    )
}

/// A `QConv2d` at node `i` whose output only a max pool right after it reads, the pool's
/// windows tiling that output (so that each chunk of whole window rows pools alone), with
/// the pool's element-wise tail.
fn conv_pool(
    g: &Graph,
    exec: &[Exec],
    readers: &[usize],
    outputs: &HashSet<TensorId>,
    i: usize,
) -> Option<FusedGroup> {
    let node = &g.nodes[i];
    let y = *node.outputs.first()?;
    let next = g.nodes.get(i + 1)?;
    let (Op::QConv2d(_), Op::Pool2d(pool)) = (&node.op, &next.op) else {
        return None;
    };
    let shape = &g.tensor(y).shape;
    let window = ipukit_kernels::int::tiling_window(pool)?;
    let tiles = shape.len() == 4
        && shape[1].is_multiple_of(window[0])
        && shape[2].is_multiple_of(window[1]);
    let alone = next.inputs == [y] && readers[y.0] == 1 && !outputs.contains(&y);
    if !tiles || !alone || next.outputs.len() != 1 || !fusable_run(exec, i + 1, i + 1) {
        return None;
    }
    let tail = ipukit_runtime::elementwise_tail(g, i + 1, outputs, &|_| None)
        .filter(|t| fusable_run(exec, i + 2, t.last_node()));
    Some(FusedGroup {
        last: tail.as_ref().map_or(i + 1, |t| t.last_node()),
        also: None,
        kind: GroupKind::ConvPool {
            pool: pool.clone(),
            tail,
        },
    })
}

/// The group starting at each node (`None` for nodes that start none, including the
/// members of a group), in program order.
pub(crate) fn fused_groups(p: &Program) -> Vec<Option<FusedGroup>> {
    let g = &p.graph;
    let mut readers = vec![0usize; g.tensors.len()];
    for n in &g.nodes {
        for &t in &n.inputs {
            readers[t.0] += 1;
        }
    }
    let outputs: HashSet<TensorId> = g.outputs.iter().copied().collect();
    let mut groups = vec![None; g.nodes.len()];
    let mut i = 0;
    while i < g.nodes.len() {
        match group_at(g, &p.exec, &readers, &outputs, i) {
            Some(group) => {
                let next = group.last + 1;
                groups[i] = Some(group);
                i = next;
            }
            None => i += 1,
        }
    }
    groups
}
