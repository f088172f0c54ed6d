//! The program: the fixed graph after fusion, with how each node executes, and the liveness
//! rules both the compiler's memory planner and the loader's checks use.

use ipukit_ir::{DType, Graph, Op, TensorId};

/// How a node of the program executes (`docs/offline-img.md` §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Exec {
    /// Its kernel runs on its inputs into its outputs.
    Kernel,
    /// A Reshape or Identity whose output shares its input's memory: nothing runs.
    Alias,
    /// The first operator of an element-wise chain that runs as one 256/65,536-entry table
    /// built at load time by running the chain's kernels on every possible input.
    TableHead,
    /// A further operator of the chain started by the closest [`Exec::TableHead`] before it.
    TableLink,
}

impl Exec {
    /// Byte code in the image.
    pub(crate) fn code(self) -> u8 {
        match self {
            Exec::Kernel => 0,
            Exec::Alias => 1,
            Exec::TableHead => 2,
            Exec::TableLink => 3,
        }
    }

    /// Inverse of [`Exec::code`].
    pub(crate) fn from_code(c: u8) -> Option<Exec> {
        Some(match c {
            0 => Exec::Kernel,
            1 => Exec::Alias,
            2 => Exec::TableHead,
            3 => Exec::TableLink,
            _ => return None,
        })
    }
}

/// A compiled graph with the execution kind of every node.
#[derive(Debug, Clone, PartialEq)]
pub struct Program {
    /// The fused fixed graph (constants included).
    pub graph: Graph,
    /// One entry per node.
    pub exec: Vec<Exec>,
}

/// Integer element types a table can be indexed by (at most 65,536 values).
pub(crate) fn table_index_type(d: DType) -> bool {
    matches!(d, DType::U8 | DType::I8 | DType::I16 | DType::U16)
}

/// True for the operators a table chain may hold: element-wise integer maps whose parameters
/// do not depend on the element's position.
pub(crate) fn tableable(op: &Op) -> bool {
    match op {
        Op::QLut(_) => true,
        Op::QRescale(r) => r.positive.len() == 1 && r.negative.len() == 1,
        _ => false,
    }
}

/// Where every arena tensor lives in time, and which tensors share memory.
#[derive(Debug, Clone)]
pub(crate) struct Liveness {
    /// The buffer group of each tensor (`None`: constant or chain-internal, not in the arena).
    pub group: Vec<Option<usize>>,
    /// Per group: inclusive `(first, last)` step and byte size.
    pub groups: Vec<(usize, usize, usize)>,
}

/// Bytes of a tensor.
pub(crate) fn tensor_bytes(graph: &Graph, t: TensorId) -> usize {
    let t = graph.tensor(t);
    t.numel().saturating_mul(t.dtype.size())
}

/// True if `t` is the output of a chain member whose next node continues the chain (then it is
/// never stored).
fn chain_internal(p: &Program, producer: &[Option<usize>], t: TensorId) -> bool {
    producer[t.0].is_some_and(|n| {
        matches!(p.exec[n], Exec::TableHead | Exec::TableLink)
            && p.exec.get(n + 1) == Some(&Exec::TableLink)
    })
}

/// Computes buffer groups and lifetimes (`docs/offline-img.md` §6): a tensor is live from the
/// step that writes it (graph inputs from step 0) to the last step that reads it (graph
/// outputs to the end), both inclusive; an alias joins its input's group. A table chain
/// or a fused layer group ([`crate::fusion`]) writes its result at its first node and its
/// intermediate values nowhere.
pub(crate) fn liveness(p: &Program) -> Liveness {
    let g = &p.graph;
    let n_steps = g.nodes.len();
    let mut producer = vec![None; g.tensors.len()];
    for (i, n) in g.nodes.iter().enumerate() {
        for &o in &n.outputs {
            producer[o.0] = Some(i);
        }
    }
    // For each member of a fused group: the group's first node, and whether the step writes
    // the member's output.
    let mut fused: Vec<Option<(usize, bool)>> = vec![None; n_steps];
    for (i, group) in crate::fusion::fused_groups(p).iter().enumerate() {
        if let Some(group) = group {
            for (k, f) in fused[i..=group.last].iter_mut().enumerate() {
                let member = i + k;
                *f = Some((i, member == group.last || Some(member) == group.also));
            }
        }
    }
    let mut group: Vec<Option<usize>> = vec![None; g.tensors.len()];
    let mut groups: Vec<(usize, usize, usize)> = Vec::new();
    let new_group = |t: TensorId, start: usize, groups: &mut Vec<(usize, usize, usize)>| {
        groups.push((start, start, tensor_bytes(g, t)));
        groups.len() - 1
    };
    for &t in &g.inputs {
        if group[t.0].is_none() {
            group[t.0] = Some(new_group(t, 0, &mut groups));
        }
    }
    let mut head = 0;
    for (i, n) in g.nodes.iter().enumerate() {
        // A chain or a group runs as one step at its head: its result is written there.
        if let Some((first, _)) = fused[i] {
            head = first;
        } else if p.exec[i] != Exec::TableLink {
            head = i;
        }
        let group_internal = fused[i].is_some_and(|(_, written)| !written);
        for &t in &n.inputs {
            if let Some(gr) = group[t.0] {
                groups[gr].1 = groups[gr].1.max(i);
            }
        }
        for &o in &n.outputs {
            if group_internal || chain_internal(p, &producer, o) || g.tensor(o).is_const() {
                continue;
            }
            let aliased = (p.exec[i] == Exec::Alias)
                .then(|| n.inputs.first().and_then(|&x| group[x.0]))
                .flatten();
            match aliased {
                Some(gr) => {
                    group[o.0] = Some(gr);
                    groups[gr].1 = groups[gr].1.max(i);
                    groups[gr].2 = groups[gr].2.max(tensor_bytes(g, o));
                }
                None => group[o.0] = Some(new_group(o, head, &mut groups)),
            }
        }
    }
    for &t in &g.outputs {
        if let Some(gr) = group[t.0] {
            groups[gr].1 = n_steps;
        }
    }
    Liveness { group, groups }
}

/// True when two inclusive step ranges meet.
pub(crate) fn overlaps_in_time(a: (usize, usize), b: (usize, usize)) -> bool {
    a.0 <= b.1 && b.0 <= a.1
}
