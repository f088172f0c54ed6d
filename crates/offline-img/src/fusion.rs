//! The layer groups the loaded program runs as one step (`docs/offline-img.md` §9). The
//! compiler's memory planner, the loader's plan check and the loader find them with the same
//! rules on the same program, so the plan gives a group's never-written intermediate values
//! no memory and never lets its outputs share memory with its input.

use crate::program::{Exec, Program};
use ipukit_ir::ops::fixed::{QBinary, QReduce, QRescale};
use ipukit_ir::ops::{Padding2d, Pool2d};
use ipukit_ir::{DType, Graph, Op, TensorId};
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
    /// An element-wise `QBinary` (the group's first node) of an INT16 activation and a
    /// vector of one value per channel, read only by a 1×1, stride-1, unpadded, ungrouped
    /// 16-bit `QConv2d` (node `first + 1`), and the layer's element-wise tail if any: the
    /// excitation of a squeeze-and-excitation block and the projection after it. Each chunk
    /// of pixels is scaled into the layer's GEMM rows; the product is never written.
    ScaledConv {
        /// The `QBinary`.
        mul: QBinary,
        /// The vector (the activation is the group's input).
        vector: TensorId,
        /// The vector is the `QBinary`'s first operand.
        vector_first: bool,
        /// The layer's tail.
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
        Op::QBinary(_) => scaled_conv(g, exec, readers, outputs, i),
        _ => None,
    }
}

/// The `QBinary` at node `i` of an INT16 activation and a per-channel vector, when a 1×1
/// 16-bit `QConv2d` right after it alone reads the product ([`GroupKind::ScaledConv`]).
fn scaled_conv(
    g: &Graph,
    exec: &[Exec],
    readers: &[usize],
    outputs: &HashSet<TensorId>,
    i: usize,
) -> Option<FusedGroup> {
    let node = &g.nodes[i];
    let Op::QBinary(mul) = &node.op else {
        return None;
    };
    let (&[p, q], &[y]) = (node.inputs.as_slice(), node.outputs.as_slice()) else {
        return None;
    };
    let shape = &g.tensor(y).shape;
    let &[_, _, _, c] = shape.as_slice() else {
        return None;
    };
    // One value per channel, on the last axis.
    let vector = |t: TensorId| {
        let s = &g.tensor(t).shape;
        s.last() == Some(&c) && s.iter().rev().skip(1).all(|&d| d == 1) && s.len() <= 4
    };
    let (x, v, vector_first) = match (vector(p), vector(q)) {
        (false, true) => (p, q, false),
        (true, false) => (q, p, true),
        _ => return None,
    };
    let i16s = [x, v, y].iter().all(|&t| g.tensor(t).dtype == DType::I16);
    let alone = readers[y.0] == 1 && !outputs.contains(&y);
    if !i16s || !alone || g.tensor(x).shape != *shape || g.tensor(x).is_const() {
        return None;
    }
    let next = g.nodes.get(i + 1)?;
    let Op::QConv2d(conv) = &next.op else {
        return None;
    };
    let weight = g.tensor(*next.inputs.get(1)?);
    let geometry = conv.conv.strides == [1, 1]
        && conv.conv.padding == Padding2d::ZERO
        && conv.conv.groups == 1
        && weight.shape.get(1..3) == Some(&[1, 1][..]);
    let packed_16bit = weight.dtype == DType::I16 && weight.is_const();
    if next.inputs.first() != Some(&y) || !geometry || !packed_16bit {
        return None;
    }
    if !fusable_run(exec, i, i + 1) {
        return None;
    }
    let tail = ipukit_runtime::layer_tail(g, i + 1, outputs, &|_| None);
    Some(through_tail(exec, i + 1, tail, |tail| {
        GroupKind::ScaledConv {
            mul: mul.clone(),
            vector: v,
            vector_first,
            tail,
        }
    }))
}

/// The group ending at node `at` or, when its nodes may run fused, at the end of `tail` (the
/// element-wise tail after `at`).
fn through_tail(
    exec: &[Exec],
    at: usize,
    tail: Option<LayerTail>,
    kind: impl FnOnce(Option<LayerTail>) -> GroupKind,
) -> FusedGroup {
    let tail = tail.filter(|t| fusable_run(exec, at + 1, t.last_node()));
    FusedGroup {
        last: tail.as_ref().map_or(at, |t| t.last_node()),
        also: None,
        kind: kind(tail),
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
    let tail = ipukit_runtime::elementwise_tail(g, i + 1, outputs, &|_| None);
    Some(through_tail(exec, i + 1, tail, |tail| {
        GroupKind::ConvPool {
            pool: pool.clone(),
            tail,
        }
    }))
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
