//! Running an offline image: [`OfflineModel`] executes the program on one arena laid out as
//! the image's memory plan says, with the runtime's integer kernels.

use crate::error::{ImgError, Result};
use crate::format::{self, BatchMode, Image};
use crate::fusion::{fused_groups, FusedGroup, GroupKind};
use crate::program::{table_index_type, tableable, Exec};
use ipukit_config::InputConfig;
use ipukit_ir::ops::fixed::{QBinary, QBinaryKind, QReduce, QRescale};
use ipukit_ir::ops::Pool2d;
use ipukit_ir::{DType, Graph, Node, Op, TensorData, TensorId};
use ipukit_kernels::int::{PackedQLut, Tail};
use ipukit_kernels::AlignedVec;
use ipukit_runtime::{
    DataMut, DataRef, NodeKernel, NodeOutput, RuntimeError, TensorInfo, Value, ValueView,
};
use rayon::prelude::*;
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Options for loading an image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Intra-op threads (`None`: every core).
    pub threads: Option<usize>,
}

/// A table that replaces a chain of element-wise operators: entry `x − min(in type)` holds
/// the chain's result for input `x`.
#[derive(Debug, Clone)]
struct Table {
    input: DType,
    values: TensorData,
}

/// The measured wall time of one step of the program ([`OfflineModel::invoke_profiled`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepTime {
    /// Name of the step's first node.
    pub first: String,
    /// Name of its last node (the first one unless the step is a fused group).
    pub last: String,
    /// The operators the step runs, in order.
    pub ops: Vec<String>,
    /// Wall time, summed over the batch items.
    pub time: Duration,
}

/// What each node runs (built once at load).
#[derive(Debug, Clone)]
enum Step {
    Kernel(NodeKernel),
    Alias,
    Table {
        table: Arc<Table>,
        input: TensorId,
        output: TensorId,
        /// The output is the input's memory (same place and type): the lookup runs in place.
        inplace: bool,
    },
    /// A table chain `s = T(x)` on INT16 whose only reader is the next node, a `QBinary`
    /// `Mul(x, s)` (or `Mul(s, x)`): the product in one pass with the runtime's fused kernel
    /// (a fixed-point SiLU; the same integers, `s` is never written).
    TableMul {
        lut: Arc<PackedQLut>,
        attrs: QBinary,
        /// The table's input `x`.
        input: TensorId,
        /// The `Mul` node (for error messages) and its output.
        mul: usize,
        output: TensorId,
    },
    /// A layer fused with the nodes after it ([`FusedLayer`]), run from its input's place
    /// into the last node's output place.
    Fused {
        layer: FusedLayer,
        input: TensorId,
        output: TensorId,
        /// A member's output the step writes as well ([`FusedGroup::also`]).
        also: Option<TensorId>,
        /// A second input the step reads (the vector of [`FusedLayer::ScaledConv`]).
        second: Option<TensorId>,
    },
    Skip,
}

/// What a [`Step::Fused`] runs.
#[derive(Debug, Clone)]
enum FusedLayer {
    /// A `QConv2d` or `QDepthwiseConv2d` and the element-wise nodes after it
    /// (`ipukit_runtime::layer_tail`), run on each chunk of the layer's output while in
    /// cache; the nodes' own outputs but the last are never written.
    ConvTail { kernel: NodeKernel, tail: Arc<Tail> },
    /// `InputNormalize` and the `QRescale` that alone reads it, as one table per channel.
    InputRescale {
        kernel: NodeKernel,
        rescale: QRescale,
    },
    /// A `QConv2d`, the max pool tiling its output and the pool's tail, each chunk of whole
    /// window rows pooled while in cache; the layer's full output is never written.
    ConvPool {
        kernel: NodeKernel,
        pool: Pool2d,
        tail: Option<Arc<Tail>>,
    },
    /// A `QDepthwiseConv2d`, its tail, and the mean over height and width of the tail's
    /// output (written too), from channel sums taken as the tail writes its rows.
    TailMean {
        kernel: NodeKernel,
        tail: Arc<Tail>,
        reduce: QReduce,
    },
    /// A `QBinary` of the input and a per-channel vector (the step's second input), formed
    /// chunk by chunk into the rows of the 1×1 `QConv2d` after it (`kernel`), and the
    /// layer's tail if any; the product is never written.
    ScaledConv {
        kernel: NodeKernel,
        mul: QBinary,
        vector_first: bool,
        tail: Option<Arc<Tail>>,
    },
}

impl FusedLayer {
    /// Runs from `x` (and `second`, the vector of [`FusedLayer::ScaledConv`]) into `o` (the
    /// group's last output) and `also` (the member output the step writes as well, for
    /// [`FusedLayer::TailMean`]).
    fn run(
        &self,
        x: ValueView<'_>,
        second: Option<ValueView<'_>>,
        o: DataMut<'_>,
        also: Option<DataMut<'_>>,
    ) -> std::result::Result<(), RuntimeError> {
        match (self, second, also) {
            (FusedLayer::ConvTail { kernel, tail }, None, None) => kernel.run_tail(tail, x, o),
            (FusedLayer::InputRescale { kernel, rescale }, None, None) => {
                kernel.run_then_rescale(rescale, x, o)
            }
            (FusedLayer::ConvPool { kernel, pool, tail }, None, None) => {
                kernel.run_pool_tail(pool, tail.as_deref(), x, o)
            }
            (
                FusedLayer::TailMean {
                    kernel,
                    tail,
                    reduce,
                },
                None,
                Some(layer_out),
            ) => kernel.run_tail_mean(tail, reduce, x, layer_out, o),
            (
                FusedLayer::ScaledConv {
                    kernel,
                    mul,
                    vector_first,
                    tail,
                },
                Some(v),
                None,
            ) => kernel.run_scaled(mul, v, *vector_first, tail.as_deref(), x, o),
            _ => Err(RuntimeError::Kernel {
                node: "fused step".into(),
                op: "fusion",
                source: ipukit_kernels::KernelError::Invalid {
                    op: "fusion",
                    reason: "a fused step without the inputs or outputs its layers take".into(),
                },
            }),
        }
    }
}

/// The activation input of `n` when the loader may put it in a table chain: a `QLut` or
/// per-tensor `QRescale` of one activation, or a `QBinary` (`Add`, `Sub`, `Mul`, `Max`, `Min`)
/// of one activation and a one-element constant, whose output has the activation's shape
/// (every element the same function of the input element alone).
fn chain_input(g: &Graph, n: &Node) -> Option<TensorId> {
    let &[out] = n.outputs.as_slice() else {
        return None;
    };
    if g.tensor(out).dtype == DType::Bool {
        return None;
    }
    match &n.op {
        Op::QBinary(a) => {
            let elementwise = matches!(
                a.kind,
                QBinaryKind::Add { .. }
                    | QBinaryKind::Sub { .. }
                    | QBinaryKind::Mul(_)
                    | QBinaryKind::Max { .. }
                    | QBinaryKind::Min { .. }
            );
            let &[p, q] = n.inputs.as_slice() else {
                return None;
            };
            let scalar = |t: TensorId| g.tensor(t).data.as_ref().is_some_and(|d| d.len() == 1);
            let x = match (scalar(p), scalar(q)) {
                (false, true) => p,
                (true, false) => q,
                _ => return None,
            };
            (elementwise && !g.tensor(x).is_const() && g.tensor(out).shape == g.tensor(x).shape)
                .then_some(x)
        }
        op => {
            let &[x] = n.inputs.as_slice() else {
                return None;
            };
            (tableable(op) && !g.tensor(x).is_const()).then_some(x)
        }
    }
}

/// True when node `n` may extend a table chain on `x` whose current result is `s`: it reads
/// `s` as [`chain_input`] accepts, or it is an element-wise `QBinary` of `x` and `s` (either
/// order, e.g. SiLU's product `x · sigmoid(x)`), still a function of `x` alone.
fn chain_link(g: &Graph, n: &Node, x: TensorId, s: TensorId) -> bool {
    if chain_input(g, n) == Some(s) {
        return true;
    }
    let Op::QBinary(a) = &n.op else {
        return false;
    };
    let elementwise = matches!(
        a.kind,
        QBinaryKind::Add { .. }
            | QBinaryKind::Sub { .. }
            | QBinaryKind::Mul(_)
            | QBinaryKind::Max { .. }
            | QBinaryKind::Min { .. }
    );
    let shape = &g.tensor(x).shape;
    elementwise
        && (n.inputs == [x, s] || n.inputs == [s, x])
        && n.outputs.len() == 1
        && n.outputs.iter().all(|&o| &g.tensor(o).shape == shape)
}

/// True when the arena ranges `a` and `b` share no byte.
fn disjoint(a: (usize, usize), b: (usize, usize)) -> bool {
    a.0 + a.1 <= b.0 || b.0 + b.1 <= a.0
}

/// The `QBinary` `Mul` node `m` and its attributes when it is the product `Mul(x, s)` (either
/// order) of the table chain `s = T(x)` that ends just before it: `s` read by it alone and not
/// a graph output, `x`, `s` and the product INT16 of one shape (what the runtime's plan
/// fuses).
fn table_mul(
    g: &Graph,
    exec: &[Exec],
    readers: &[usize],
    outputs: &HashSet<TensorId>,
    x: TensorId,
    s: TensorId,
    m: usize,
) -> Option<QBinary> {
    let n = g.nodes.get(m)?;
    let Op::QBinary(a) = &n.op else {
        return None;
    };
    let &[z] = n.outputs.as_slice() else {
        return None;
    };
    let i16_like =
        |t: TensorId| g.tensor(t).dtype == DType::I16 && g.tensor(t).shape == g.tensor(x).shape;
    (exec.get(m) == Some(&Exec::Kernel)
        && matches!(a.kind, QBinaryKind::Mul(_))
        && (n.inputs == [x, s] || n.inputs == [s, x])
        && readers[s.0] == 1
        && !outputs.contains(&s)
        && [x, s, z].into_iter().all(i16_like))
    .then(|| a.clone())
}

/// True when the arena ranges of `a` and `b` are disjoint (a fused step reads one while it
/// writes the other).
fn places_disjoint(place: &[Option<(usize, usize)>], a: TensorId, b: TensorId) -> bool {
    match (
        place.get(a.0).copied().flatten(),
        place.get(b.0).copied().flatten(),
    ) {
        (Some(pa), Some(pb)) => disjoint(pa, pb),
        _ => false,
    }
}

/// The step running the fused group that starts at node `i` (found by
/// [`crate::fusion::fused_groups`]), from the first node's input to the last one's output;
/// the memory plan keeps the two apart.
fn fused_step(
    g: &Graph,
    place: &[Option<(usize, usize)>],
    i: usize,
    group: &FusedGroup,
) -> Result<Step> {
    let node = &g.nodes[i];
    // The step's input, and its second input (a scaled layer's vector).
    let (input, second, layer_node) = match &group.kind {
        GroupKind::ScaledConv { vector, .. } => {
            let x = node.inputs.iter().copied().find(|t| t != vector);
            let layer = g.nodes.get(i + 1).ok_or_else(|| {
                crate::error::corrupt(
                    "program",
                    format!("fused node '{}' without its layer", node.name),
                )
            })?;
            (x, Some(*vector), layer)
        }
        _ => (node.inputs.first().copied(), None, node),
    };
    let (Some(input), Some(&output)) = (input, g.nodes[group.last].outputs.first()) else {
        return Err(crate::error::corrupt(
            "program",
            format!("fused node '{}' without input or output", node.name),
        ));
    };
    let kernel = NodeKernel::new(g, layer_node)?;
    // Specializations the compiled program gets over fixed.sim's literal graph: a PReLU
    // block in one pass, a trailing chain as one table.
    let specialize = |t: &Arc<Tail>| -> Result<Arc<Tail>> {
        let tail = match t.fuse_prelu() {
            Some(fused) => Arc::new(fused),
            None => t.clone(),
        };
        match tail.tabulate_suffix() {
            Ok(Some(tail)) => Ok(Arc::new(tail)),
            Ok(None) => Ok(tail),
            Err(e) => Err(kernel_error(g, group.last, e)),
        }
    };
    let layer = match &group.kind {
        GroupKind::LayerTail(t) => FusedLayer::ConvTail {
            kernel,
            tail: specialize(&t.tail)?,
        },
        GroupKind::InputRescale(rescale) => FusedLayer::InputRescale {
            kernel,
            rescale: rescale.clone(),
        },
        GroupKind::ConvPool { pool, tail } => FusedLayer::ConvPool {
            kernel,
            pool: pool.clone(),
            tail: tail.as_ref().map(|t| specialize(&t.tail)).transpose()?,
        },
        GroupKind::LayerTailMean { tail, reduce } => FusedLayer::TailMean {
            kernel,
            tail: specialize(&tail.tail)?,
            reduce: reduce.clone(),
        },
        GroupKind::ScaledConv {
            mul,
            vector_first,
            tail,
            ..
        } => FusedLayer::ScaledConv {
            kernel,
            mul: mul.clone(),
            vector_first: *vector_first,
            tail: tail.as_ref().map(|t| specialize(&t.tail)).transpose()?,
        },
    };
    let also = match group.also {
        Some(m) => Some(*g.nodes[m].outputs.first().ok_or_else(|| {
            crate::error::corrupt(
                "program",
                format!("fused node '{}' without output", g.nodes[m].name),
            )
        })?),
        None => None,
    };
    // Constant vectors live in the program, not the arena.
    let second_in_arena = second.filter(|&t| !g.tensor(t).is_const());
    let writes_over_input = also.is_some_and(|a| !places_disjoint(place, input, a))
        || second_in_arena.is_some_and(|v| !places_disjoint(place, v, output));
    if writes_over_input || !places_disjoint(place, input, output) {
        return Err(crate::error::corrupt(
            "memory plan",
            format!(
                "fused step '{}' .. '{}' writes over its input",
                node.name, g.nodes[group.last].name
            ),
        ));
    }
    Ok(Step::Fused {
        layer,
        input,
        output,
        also,
        second,
    })
}

/// A table chain found at load time.
struct LoadChain {
    /// The chain's input (an activation of a type a table can be indexed by).
    input: TensorId,
    /// Its last node.
    last: usize,
    /// The output is placed over the input (same offset, size and type).
    inplace: bool,
}

/// The table chain starting at node `i`: the image's chain (a table head and its links), or a
/// single node [`chain_input`] accepts, extended by the next nodes [`chain_link`] accepts
/// whose chain operand only they read (and is not a graph output), e.g. HardSwish's `QLut`
/// followed by the `QBinary` scale and bias of PP-LCNetV3's learnable affine block, or
/// SiLU's `QLut` and product followed by the `QRescale` to UINT8 of YOLOv8 (several passes
/// become one lookup). A product `x · T(x)` that would end the chain is left to the table
/// product. `None` when node `i` starts no chain of two or more nodes.
///
/// The memory plan gave the extended chain's output a place from its own node on, so it may
/// share the input's memory (the input dies at the head): the extension is kept only when
/// the two are disjoint or the same place, size and type (then the lookup runs in place).
fn load_chain(
    g: &Graph,
    exec: &[Exec],
    place: &[Option<(usize, usize)>],
    readers: &[usize],
    outputs: &HashSet<TensorId>,
    i: usize,
) -> Result<Option<LoadChain>> {
    let node = &g.nodes[i];
    let (x, mut j) = match exec[i] {
        Exec::TableHead => {
            let mut j = i;
            while exec.get(j + 1) == Some(&Exec::TableLink) {
                j += 1;
            }
            let x = node.inputs.first().copied().ok_or_else(|| {
                crate::error::corrupt(
                    "program",
                    format!("table head '{}' without input", node.name),
                )
            })?;
            (x, j)
        }
        Exec::Kernel => match chain_input(g, node) {
            Some(x) if table_index_type(g.tensor(x).dtype) => (x, i),
            _ => return Ok(None),
        },
        Exec::Alias | Exec::TableLink => return Ok(None),
    };
    let image_end = j;
    while let (Some(&s), Some(next)) = (g.nodes[j].outputs.first(), g.nodes.get(j + 1)) {
        let extends = matches!(
            exec[j + 1],
            Exec::Kernel | Exec::TableHead | Exec::TableLink
        ) && chain_link(g, next, x, s)
            && readers[s.0] == 1
            && !outputs.contains(&s);
        if !extends {
            break;
        }
        j += 1;
    }
    // A product `x · T(x)` that ends the chain runs as the table product (fewer tables).
    if j > image_end && j > i {
        let s = g.nodes[j - 1].outputs[0];
        if table_mul(g, exec, readers, outputs, x, s, j).is_some() {
            j -= 1;
        }
    }
    // The longest extension whose output does not partly overlap the input.
    let mut inplace = false;
    while j > image_end {
        let out = g.nodes[j].outputs[0];
        match (place[x.0], place[out.0]) {
            (Some(a), Some(b)) if disjoint(a, b) => break,
            (Some(a), Some(b)) if a == b && g.tensor(x).dtype == g.tensor(out).dtype => {
                inplace = true;
                break;
            }
            _ => j -= 1,
        }
    }
    Ok((j > i || exec[i] == Exec::TableHead).then_some(LoadChain {
        input: x,
        last: j,
        inplace,
    }))
}

/// A loaded offline image, ready to run (the `calibrator_custom.offline_simulator` interface).
///
/// ```no_run
/// use ipukit_offline_img::OfflineModel;
/// use ipukit_runtime::Value;
///
/// let mut m = OfflineModel::load("ppocr_cls_fixed.sim_sgsimg.img").unwrap();
/// let info = &m.input_details()[0];
/// let image = Value::new(info.shape.clone(), vec![0u8; info.shape.iter().product()]).unwrap();
/// m.set_input(0, image).unwrap();
/// m.invoke().unwrap();
/// let scores = m.output(0).unwrap();
/// # let _ = scores;
/// ```
pub struct OfflineModel {
    image: Arc<Image>,
    steps: Arc<Vec<Step>>,
    pool: Arc<rayon::ThreadPool>,
    threads: usize,
    /// The arena, on cache lines like the kernels' own buffers.
    arena: AlignedVec<u64>,
    scratch: Vec<f32>,
    inputs: Vec<Option<(usize, TensorData)>>,
    outputs: Option<Vec<Value>>,
}

impl std::fmt::Debug for OfflineModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OfflineModel")
            .field("soc", &self.image.header.soc)
            .field("nodes", &self.image.program.graph.nodes.len())
            .field("arena_bytes", &self.image.plan.arena_bytes)
            .field("threads", &self.threads)
            .finish()
    }
}

fn typed<'a>(dtype: DType, b: &'a [u8]) -> Result<DataRef<'a>> {
    let bad = |_| ImgError::Usage(format!("arena view of {} bytes is misaligned", b.len()));
    Ok(match dtype {
        DType::F32 => DataRef::F32(bytemuck::try_cast_slice(b).map_err(bad)?),
        DType::I64 => DataRef::I64(bytemuck::try_cast_slice(b).map_err(bad)?),
        DType::I32 => DataRef::I32(bytemuck::try_cast_slice(b).map_err(bad)?),
        DType::I16 => DataRef::I16(bytemuck::try_cast_slice(b).map_err(bad)?),
        DType::U16 => DataRef::U16(bytemuck::try_cast_slice(b).map_err(bad)?),
        DType::I8 => DataRef::I8(bytemuck::try_cast_slice(b).map_err(bad)?),
        DType::U8 => DataRef::U8(b),
        DType::Bool => {
            return Err(ImgError::Usage(
                "BOOL tensors cannot live in the arena".into(),
            ))
        }
    })
}

fn typed_mut<'a>(dtype: DType, b: &'a mut [u8]) -> Result<DataMut<'a>> {
    let n = b.len();
    let bad = |_| ImgError::Usage(format!("arena view of {n} bytes is misaligned"));
    Ok(match dtype {
        DType::F32 => DataMut::F32(bytemuck::try_cast_slice_mut(b).map_err(bad)?),
        DType::I64 => DataMut::I64(bytemuck::try_cast_slice_mut(b).map_err(bad)?),
        DType::I32 => DataMut::I32(bytemuck::try_cast_slice_mut(b).map_err(bad)?),
        DType::I16 => DataMut::I16(bytemuck::try_cast_slice_mut(b).map_err(bad)?),
        DType::U16 => DataMut::U16(bytemuck::try_cast_slice_mut(b).map_err(bad)?),
        DType::I8 => DataMut::I8(bytemuck::try_cast_slice_mut(b).map_err(bad)?),
        DType::U8 => DataMut::U8(b),
        DType::Bool => {
            return Err(ImgError::Usage(
                "BOOL tensors cannot live in the arena".into(),
            ))
        }
    })
}

fn raw_bytes<'a>(d: &DataRef<'a>) -> Result<&'a [u8]> {
    Ok(match *d {
        DataRef::F32(v) => bytemuck::cast_slice(v),
        DataRef::I64(v) => bytemuck::cast_slice(v),
        DataRef::I32(v) => bytemuck::cast_slice(v),
        DataRef::I16(v) => bytemuck::cast_slice(v),
        DataRef::U16(v) => bytemuck::cast_slice(v),
        DataRef::I8(v) => bytemuck::cast_slice(v),
        DataRef::U8(v) => v,
        DataRef::Bool(_) => {
            return Err(ImgError::Usage(
                "BOOL tensors cannot live in the arena".into(),
            ))
        }
    })
}

/// Splits the arena into the (disjoint) output ranges, mutable, and the gaps between them.
#[allow(clippy::type_complexity)]
fn split<'a>(
    mut arena: &'a mut [u8],
    outs: &[(usize, usize)],
) -> Result<(Vec<&'a mut [u8]>, Vec<(usize, &'a [u8])>)> {
    let mut order: Vec<usize> = (0..outs.len()).collect();
    order.sort_by_key(|&i| outs[i].0);
    let mut pos = 0usize;
    let mut gaps = Vec::with_capacity(outs.len() + 1);
    let mut slices: Vec<Option<&'a mut [u8]>> = (0..outs.len()).map(|_| None).collect();
    for &i in &order {
        let (off, len) = outs[i];
        if off < pos || off + len > pos + arena.len() {
            return Err(ImgError::Usage(
                "outputs of a step overlap in the arena".into(),
            ));
        }
        let (gap, rest) = std::mem::take(&mut arena).split_at_mut(off - pos);
        let (out, rest) = rest.split_at_mut(len);
        gaps.push((pos, &*gap));
        slices[i] = Some(out);
        arena = rest;
        pos = off + len;
    }
    gaps.push((pos, &*arena));
    let slices = slices.into_iter().flatten().collect();
    Ok((slices, gaps))
}

fn find<'a>(gaps: &[(usize, &'a [u8])], off: usize, len: usize) -> Result<&'a [u8]> {
    gaps.iter()
        .find(|(start, g)| off >= *start && off + len <= start + g.len())
        .map(|(start, g)| &g[off - start..off - start + len])
        .ok_or_else(|| ImgError::Usage("a step reads memory it also writes".into()))
}

/// Runs a chain of table-able kernels (nodes `first..=last` of `g`, each reading the previous
/// one's output, the first reading `x`) on every value of `x`'s type.
fn build_table(g: &Graph, first: usize, last: usize, x: TensorId) -> Result<Table> {
    let input = g.tensor(x).dtype;
    let domain: TensorData = match input {
        DType::U8 => (0..=255u8).collect::<Vec<_>>().into(),
        DType::I8 => (-128..=127i8).collect::<Vec<_>>().into(),
        DType::I16 => (i16::MIN..=i16::MAX).collect::<Vec<_>>().into(),
        DType::U16 => (0..=u16::MAX).collect::<Vec<_>>().into(),
        d => return Err(ImgError::Usage(format!("no table over {d}"))),
    };
    let mut cur = domain.clone();
    let mut scratch = Vec::new();
    let mut act = x;
    for node in &g.nodes[first..=last] {
        let k = NodeKernel::new(g, node)?;
        let shape = [cur.len()];
        let read = if k.reads_first_input_only() {
            &node.inputs[..1]
        } else {
            &node.inputs[..]
        };
        let mut views = Vec::with_capacity(read.len());
        let mut dims = Vec::with_capacity(read.len());
        for &t in read {
            let tensor = g.tensor(t);
            let view = match (&tensor.data, t == act) {
                (_, true) => ValueView {
                    shape: &shape,
                    data: DataRef::from(&cur),
                },
                (_, false) if t == x => ValueView {
                    shape: &shape,
                    data: DataRef::from(&domain),
                },
                (Some(d), false) => ValueView {
                    shape: &tensor.shape,
                    data: DataRef::from(d),
                },
                (None, false) => {
                    return Err(ImgError::Usage(format!(
                        "table operator '{}' reads another activation",
                        node.name
                    )))
                }
            };
            dims.push((view.data.dtype(), view.shape));
            views.push(view);
        }
        let (out_dtype, out_shape) = k
            .op()
            .infer(&dims)
            .map_err(ImgError::Graph)?
            .into_iter()
            .next()
            .ok_or_else(|| ImgError::Usage("table operator without output".into()))?;
        if out_shape.iter().product::<usize>() != cur.len() {
            return Err(ImgError::Usage(format!(
                "table operator '{}' changes the number of elements",
                node.name
            )));
        }
        let mut out = zeros(out_dtype, cur.len());
        {
            let mut outs = [NodeOutput {
                shape: &out_shape,
                data: data_mut(&mut out)?,
            }];
            k.run(&views, &mut outs, &mut scratch)?;
        }
        cur = out;
        act = node.outputs[0];
    }
    Ok(Table { input, values: cur })
}

fn zeros(dtype: DType, n: usize) -> TensorData {
    match dtype {
        DType::F32 => vec![0f32; n].into(),
        DType::I64 => vec![0i64; n].into(),
        DType::I32 => vec![0i32; n].into(),
        DType::I16 => vec![0i16; n].into(),
        DType::U16 => vec![0u16; n].into(),
        DType::I8 => vec![0i8; n].into(),
        DType::U8 => vec![0u8; n].into(),
        DType::Bool => vec![false; n].into(),
    }
}

fn data_mut(d: &mut TensorData) -> Result<DataMut<'_>> {
    let bad = || ImgError::Usage("shared tensor data".into());
    Ok(match d {
        TensorData::F32(v) => DataMut::F32(Arc::get_mut(v).ok_or_else(bad)?),
        TensorData::I64(v) => DataMut::I64(Arc::get_mut(v).ok_or_else(bad)?),
        TensorData::I32(v) => DataMut::I32(Arc::get_mut(v).ok_or_else(bad)?),
        TensorData::I16(v) => DataMut::I16(Arc::get_mut(v).ok_or_else(bad)?),
        TensorData::U16(v) => DataMut::U16(Arc::get_mut(v).ok_or_else(bad)?),
        TensorData::I8(v) => DataMut::I8(Arc::get_mut(v).ok_or_else(bad)?),
        TensorData::U8(v) => DataMut::U8(Arc::get_mut(v).ok_or_else(bad)?),
        TensorData::Bool(v) => DataMut::Bool(Arc::get_mut(v).ok_or_else(bad)?),
    })
}

/// `out[i] = table[x[i] − min]`, in parallel chunks.
fn apply_table(t: &Table, x: DataRef<'_>, out: DataMut<'_>) -> Result<()> {
    fn go<X: Copy + Sync, O: Copy + Send + Sync>(
        x: &[X],
        table: &[O],
        out: &mut [O],
        index: impl Fn(X) -> usize + Sync,
    ) -> Result<()> {
        if x.len() != out.len() {
            return Err(ImgError::Usage(
                "table input and output differ in size".into(),
            ));
        }
        const CHUNK: usize = 1 << 14;
        out.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .for_each(|(o, x)| {
                for (o, &v) in o.iter_mut().zip(x) {
                    *o = table[index(v)];
                }
            });
        Ok(())
    }
    macro_rules! with_out {
        ($x:expr, $idx:expr) => {
            match (&t.values, out) {
                (TensorData::U8(tb), DataMut::U8(o)) => go($x, tb, o, $idx),
                (TensorData::I8(tb), DataMut::I8(o)) => go($x, tb, o, $idx),
                (TensorData::I16(tb), DataMut::I16(o)) => go($x, tb, o, $idx),
                (TensorData::U16(tb), DataMut::U16(o)) => go($x, tb, o, $idx),
                (TensorData::I32(tb), DataMut::I32(o)) => go($x, tb, o, $idx),
                _ => Err(ImgError::Usage("table output type mismatch".into())),
            }
        };
    }
    match (t.input, x) {
        (DType::U8, DataRef::U8(x)) => with_out!(x, |v: u8| v as usize),
        (DType::I8, DataRef::I8(x)) => with_out!(x, |v: i8| (v as i32 + 128) as usize),
        (DType::I16, DataRef::I16(x)) => with_out!(x, |v: i16| (v as i32 + 32768) as usize),
        (DType::U16, DataRef::U16(x)) => with_out!(x, |v: u16| v as usize),
        _ => Err(ImgError::Usage("table input type mismatch".into())),
    }
}

/// `x[i] = table[x[i] − min]` in place (input and output of one type), in parallel chunks.
fn apply_table_inplace(t: &Table, x: DataMut<'_>) -> Result<()> {
    fn go<X: Copy + Send + Sync>(
        x: &mut [X],
        table: &[X],
        index: impl Fn(X) -> usize + Sync,
    ) -> Result<()> {
        const CHUNK: usize = 1 << 14;
        x.par_chunks_mut(CHUNK).for_each(|c| {
            for v in c {
                *v = table[index(*v)];
            }
        });
        Ok(())
    }
    match (t.input, &t.values, x) {
        (DType::U8, TensorData::U8(tb), DataMut::U8(x)) => go(x, tb, |v: u8| v as usize),
        (DType::I8, TensorData::I8(tb), DataMut::I8(x)) => {
            go(x, tb, |v: i8| (v as i32 + 128) as usize)
        }
        (DType::I16, TensorData::I16(tb), DataMut::I16(x)) => {
            go(x, tb, |v: i16| (v as i32 + 32768) as usize)
        }
        (DType::U16, TensorData::U16(tb), DataMut::U16(x)) => go(x, tb, |v: u16| v as usize),
        _ => Err(ImgError::Usage(
            "in-place table of another input and output type".into(),
        )),
    }
}

impl OfflineModel {
    /// Loads and checks an image file.
    pub fn load(path: impl AsRef<Path>) -> Result<OfflineModel> {
        OfflineModel::load_with(path, &LoadOptions::default())
    }

    /// Loads and checks an image file with options.
    pub fn load_with(path: impl AsRef<Path>, opts: &LoadOptions) -> Result<OfflineModel> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                ImgError::Usage(format!("FileNotFoundError: {}", path.display()))
            } else {
                ImgError::Io {
                    path: path.display().to_string(),
                    source,
                }
            }
        })?;
        OfflineModel::from_bytes(&bytes, opts)
    }

    /// Checks an image held in memory and prepares it to run.
    pub fn from_bytes(bytes: &[u8], opts: &LoadOptions) -> Result<OfflineModel> {
        OfflineModel::from_image(format::decode(bytes)?, opts)
    }

    /// Prepares a decoded image: packs the layers' weights for this CPU and builds the tables
    /// of element-wise chains.
    ///
    /// Weights are stored in the image in their canonical layouts (OHWI, `1HWC`, `[N, K]`) and
    /// packed here, because the packed layout depends on the instruction set the CPU offers
    /// (AVX2, AVX-512, scalar), which the compiling machine cannot know.
    pub fn from_image(image: Image, opts: &LoadOptions) -> Result<OfflineModel> {
        let g = &image.program.graph;
        let mut steps = Vec::with_capacity(g.nodes.len());
        let mut readers = vec![0usize; g.tensors.len()];
        for n in &g.nodes {
            for &t in &n.inputs {
                readers[t.0] += 1;
            }
        }
        let graph_outputs: HashSet<TensorId> = g.outputs.iter().copied().collect();
        let exec = &image.program.exec;
        let place = &image.plan.place;
        let groups = fused_groups(&image.program);
        let mut i = 0;
        while i < g.nodes.len() {
            let node = &g.nodes[i];
            if let Some(group) = &groups[i] {
                steps.push(fused_step(g, place, i, group)?);
                steps.extend((i..group.last).map(|_| Step::Skip));
                i = group.last + 1;
                continue;
            }
            if let Some(chain) = load_chain(g, exec, place, &readers, &graph_outputs, i)? {
                let LoadChain {
                    input: x,
                    last: j,
                    inplace,
                } = chain;
                let table = build_table(g, i, j, x)?;
                let s = g.nodes[j].outputs[0];
                let fused = table_mul(g, exec, &readers, &graph_outputs, x, s, j + 1);
                if let (Some(attrs), TensorData::I16(v)) = (fused, &table.values) {
                    let mul = j + 1;
                    let lut = PackedQLut::from_outputs(v.to_vec())
                        .map_err(|e| kernel_error(g, mul, e))?;
                    steps.push(Step::TableMul {
                        lut: Arc::new(lut),
                        attrs,
                        input: x,
                        mul,
                        output: g.nodes[mul].outputs[0],
                    });
                    steps.extend((i..mul).map(|_| Step::Skip));
                    i = mul + 1;
                    continue;
                }
                steps.push(Step::Table {
                    table: Arc::new(table),
                    input: x,
                    output: s,
                    inplace,
                });
                steps.extend((i..j).map(|_| Step::Skip));
                i = j + 1;
                continue;
            }
            match exec[i] {
                Exec::Kernel => {
                    let fused = match (&node.op, node.inputs.first(), node.outputs.first()) {
                        (Op::QLut(q), Some(&x), Some(&s)) => {
                            table_mul(g, exec, &readers, &graph_outputs, x, s, i + 1)
                                .map(|a| (q, a, x))
                        }
                        _ => None,
                    };
                    if let Some((q, attrs, x)) = fused {
                        let mul = i + 1;
                        let lut = PackedQLut::new(q).map_err(|e| kernel_error(g, i, e))?;
                        steps.push(Step::TableMul {
                            lut: Arc::new(lut),
                            attrs,
                            input: x,
                            mul,
                            output: g.nodes[mul].outputs[0],
                        });
                        steps.push(Step::Skip);
                        i = mul + 1;
                        continue;
                    }
                    steps.push(Step::Kernel(NodeKernel::new(g, node)?));
                }
                Exec::Alias => steps.push(Step::Alias),
                Exec::TableLink | Exec::TableHead => {
                    return Err(crate::error::corrupt(
                        "program",
                        format!("table node '{}' outside a chain", node.name),
                    ))
                }
            }
            i += 1;
        }
        let (pool, threads) =
            ipukit_runtime::thread_pool(opts.threads, "ipukit-img").map_err(ImgError::Runtime)?;
        let n_in = g.inputs.len();
        let words = image.plan.arena_bytes.div_ceil(8);
        Ok(OfflineModel {
            image: Arc::new(image),
            steps: Arc::new(steps),
            pool: Arc::new(pool),
            threads,
            arena: AlignedVec::zeroed(words),
            scratch: Vec::new(),
            inputs: vec![None; n_in],
            outputs: None,
        })
    }

    /// An independent executor of the same image (shares the packed weights) on its own
    /// pool of `threads` threads.
    pub fn fork(&self, threads: usize) -> Result<OfflineModel> {
        let (pool, threads) =
            ipukit_runtime::thread_pool(Some(threads), "ipukit-img").map_err(ImgError::Runtime)?;
        Ok(OfflineModel {
            image: self.image.clone(),
            steps: self.steps.clone(),
            pool: Arc::new(pool),
            threads,
            arena: AlignedVec::zeroed(self.arena.len()),
            scratch: Vec::new(),
            inputs: vec![None; self.inputs.len()],
            outputs: None,
        })
    }

    /// The checked image.
    pub fn image(&self) -> &Image {
        &self.image
    }

    /// Names of the `QBinary` `Mul` nodes that run fused with the table before them (a
    /// fixed-point SiLU `x · T(x)`: one pass, the table's output never written), in program
    /// order. The fusion happens at load; the image stores the two nodes.
    pub fn fused_table_products(&self) -> Vec<&str> {
        let g = &self.image.program.graph;
        self.steps
            .iter()
            .filter_map(|s| match s {
                Step::TableMul { mul, .. } => Some(g.nodes[*mul].name.as_str()),
                _ => None,
            })
            .collect()
    }

    /// The nodes that run as one table lookup (a chain of element-wise operators, the table
    /// product after it included), one list per lookup in program order: the image's table
    /// chains and those the loader finds (a `QLut` or `QRescale` followed by `QBinary`
    /// operators with a one-element constant, e.g. a learnable affine block after HardSwish).
    pub fn table_chains(&self) -> Vec<Vec<&str>> {
        let g = &self.image.program.graph;
        let mut chains = Vec::new();
        for (i, s) in self.steps.iter().enumerate() {
            if matches!(s, Step::Table { .. } | Step::TableMul { .. }) {
                let skipped = self.fused_after(i);
                chains.push(
                    g.nodes[i..=i + skipped]
                        .iter()
                        .map(|n| n.name.as_str())
                        .collect(),
                );
            }
        }
        chains
    }

    /// The layers that run fused with the nodes after them (a convolution with its
    /// element-wise tail, `InputNormalize` with its rescale): the names of each group's first
    /// and last node, in program order. The fusion happens at load; the image stores every
    /// node.
    pub fn fused_layers(&self) -> Vec<(&str, &str)> {
        let g = &self.image.program.graph;
        let mut groups = Vec::new();
        for (i, s) in self.steps.iter().enumerate() {
            if matches!(s, Step::Fused { .. }) {
                let skipped = self.fused_after(i);
                groups.push((g.nodes[i].name.as_str(), g.nodes[i + skipped].name.as_str()));
            }
        }
        groups
    }

    /// How many nodes after step `i` run inside it (the `Skip` steps that follow).
    fn fused_after(&self, i: usize) -> usize {
        self.steps[i + 1..]
            .iter()
            .take_while(|s| matches!(s, Step::Skip))
            .count()
    }

    /// Batch mode of the image.
    pub fn batch_mode(&self) -> BatchMode {
        self.image.header.batch_mode
    }

    /// Allowed batch sizes: `[max]` for `n_buf` (any size up to it runs), the list for
    /// `one_buf`.
    pub fn batch_sizes(&self) -> &[usize] {
        &self.image.header.batch_sizes
    }

    /// The `input_config.ini` the model was converted with, if the image stores it.
    pub fn input_config(&self) -> Result<Option<InputConfig>> {
        self.image
            .metadata
            .input_config
            .as_deref()
            .map(|j| {
                InputConfig::from_json(j)
                    .map_err(|e| crate::error::corrupt("metadata", e.to_string()))
            })
            .transpose()
    }

    fn info(&self, index: usize, t: TensorId) -> TensorInfo {
        let t = self.image.program.graph.tensor(t);
        TensorInfo {
            index,
            name: t.name.clone(),
            shape: t.shape.clone(),
            dtype: t.dtype,
            quantization: t.quant.clone().filter(|_| t.dtype != DType::F32),
        }
    }

    /// The model inputs (shapes of one batch item, as in the fixed model).
    pub fn input_details(&self) -> Vec<TensorInfo> {
        let g = &self.image.program.graph;
        g.inputs
            .iter()
            .enumerate()
            .map(|(i, &t)| self.info(i, t))
            .collect()
    }

    /// The model outputs (shapes of one batch item).
    pub fn output_details(&self) -> Vec<TensorInfo> {
        let g = &self.image.program.graph;
        g.outputs
            .iter()
            .enumerate()
            .map(|(i, &t)| self.info(i, t))
            .collect()
    }

    fn check_batch(&self, n: usize) -> Result<()> {
        let sizes = self.batch_sizes();
        let ok = match self.batch_mode() {
            BatchMode::NBuf => n >= 1 && sizes.first().is_some_and(|&m| n <= m),
            BatchMode::OneBuf => sizes.contains(&n),
        };
        if ok {
            Ok(())
        } else {
            Err(ImgError::Batch(match self.batch_mode() {
                BatchMode::NBuf => format!(
                    "batch {n} is not allowed: this n_buf image runs 1 to {} items",
                    sizes.first().copied().unwrap_or(1)
                ),
                BatchMode::OneBuf => {
                    format!(
                        "batch {n} is not allowed: this one_buf image runs batches of {sizes:?}"
                    )
                }
            }))
        }
    }

    /// Sets input `index`: the input's element type and shape, with dimension 0 the batch
    /// (1 for a single item; up to the maximum for `n_buf`, one of the sizes for `one_buf`).
    pub fn set_input(&mut self, index: usize, value: Value) -> Result<()> {
        let g = &self.image.program.graph;
        let count = g.inputs.len();
        let &t = g
            .inputs
            .get(index)
            .ok_or(ImgError::Runtime(RuntimeError::InputIndex { index, count }))?;
        let t = g.tensor(t);
        let name = t.name.clone();
        if value.dtype() != t.dtype {
            return Err(ImgError::Runtime(RuntimeError::InputType {
                got: value.dtype(),
                expected: t.dtype,
                index,
                name,
            }));
        }
        if value.shape.len() != t.shape.len() {
            return Err(ImgError::Runtime(RuntimeError::InputRank {
                got: value.shape.len(),
                expected: t.shape.len(),
                index,
                name,
            }));
        }
        if let Some(dim) = (1..t.shape.len()).find(|&d| value.shape[d] != t.shape[d]) {
            return Err(ImgError::Runtime(RuntimeError::InputDim {
                got: value.shape[dim],
                expected: t.shape[dim],
                dim,
                index,
                name,
            }));
        }
        let n = value.shape.first().copied().unwrap_or(1);
        self.check_batch(n)?;
        let expected = t.numel() * n;
        if value.data.len() != expected {
            return Err(ImgError::Runtime(RuntimeError::ValueLength {
                got: value.data.len(),
                expected,
                shape: value.shape,
            }));
        }
        self.inputs[index] = Some((n, value.data));
        self.outputs = None;
        Ok(())
    }

    /// Runs the model on the inputs set with [`OfflineModel::set_input`], one batch item
    /// after the other.
    pub fn invoke(&mut self) -> Result<()> {
        self.invoke_timed(None)
    }

    /// Like [`OfflineModel::invoke`], and returns the wall time of every step of the program
    /// (summed over the batch items): one entry per step, fused groups as one, in program
    /// order; aliases, which run nothing, are left out. The measured counterpart of the
    /// compile report's estimated cycles.
    pub fn invoke_profiled(&mut self) -> Result<Vec<StepTime>> {
        let mut times = vec![Duration::ZERO; self.steps.len()];
        self.invoke_timed(Some(&mut times))?;
        let g = &self.image.program.graph;
        let mut out = Vec::new();
        for (i, s) in self.steps.iter().enumerate() {
            if matches!(s, Step::Skip | Step::Alias) {
                continue;
            }
            let skipped = self.fused_after(i);
            let nodes = &g.nodes[i..=i + skipped];
            out.push(StepTime {
                first: nodes[0].name.clone(),
                last: nodes[skipped].name.clone(),
                ops: nodes.iter().map(|n| n.op.name().to_string()).collect(),
                time: times[i],
            });
        }
        Ok(out)
    }

    fn invoke_timed(&mut self, mut times: Option<&mut [Duration]>) -> Result<()> {
        self.outputs = None;
        let image = self.image.clone();
        let g = &image.program.graph;
        let mut n = None;
        for (i, v) in self.inputs.iter().enumerate() {
            let Some((b, _)) = v else {
                return Err(ImgError::Runtime(RuntimeError::InputNotSet {
                    index: i,
                    name: g.tensor(g.inputs[i]).name.clone(),
                }));
            };
            if n.is_some_and(|n| n != *b) {
                return Err(ImgError::Batch(format!(
                    "inputs have different batch sizes ({} and {b})",
                    n.unwrap_or(0)
                )));
            }
            n = Some(*b);
        }
        let n = n.unwrap_or(1);
        let mut outs: Vec<Vec<u8>> = vec![Vec::new(); g.outputs.len()];
        for item in 0..n {
            self.run_item(item, &mut outs, times.as_deref_mut())?;
        }
        let values = g
            .outputs
            .iter()
            .zip(outs)
            .map(|(&t, bytes)| {
                let t = g.tensor(t);
                let data = TensorData::from_le_bytes(t.dtype, &bytes)
                    .ok_or_else(|| ImgError::Usage("bad output bytes".into()))?;
                let mut shape = t.shape.clone();
                if let Some(d0) = shape.first_mut() {
                    *d0 *= n;
                }
                Ok(Value::new(shape, data)?)
            })
            .collect::<Result<Vec<_>>>()?;
        self.outputs = Some(values);
        Ok(())
    }

    fn run_item(
        &mut self,
        item: usize,
        outs: &mut [Vec<u8>],
        mut times: Option<&mut [Duration]>,
    ) -> Result<()> {
        let OfflineModel {
            image,
            steps,
            pool,
            arena,
            scratch,
            inputs,
            ..
        } = self;
        let g = &image.program.graph;
        let place = &image.plan.place;
        let arena: &mut [u8] = bytemuck::cast_slice_mut(&mut arena[..]);
        ipukit_runtime::install_awake(pool, || -> Result<()> {
            // Inputs into their arena buffers, while the pool's other workers wake up.
            for (i, &t) in g.inputs.iter().enumerate() {
                let Some((_, data)) = &inputs[i] else {
                    continue;
                };
                let all = raw_bytes(&DataRef::from(data))?;
                let len = g.tensor(t).numel() * g.tensor(t).dtype.size();
                let src = all
                    .get(item * len..(item + 1) * len)
                    .ok_or_else(|| ImgError::Usage("input shorter than its batch".into()))?;
                let Some((off, _)) = place[t.0] else {
                    continue;
                };
                arena[off..off + len].copy_from_slice(src);
            }
            for (i, step) in steps.iter().enumerate() {
                let node = &g.nodes[i];
                let start = times.is_some().then(Instant::now);
                match step {
                    Step::Alias | Step::Skip => {}
                    Step::Kernel(k) => {
                        let out_places: Vec<(usize, usize)> = node
                            .outputs
                            .iter()
                            .map(|&o| place[o.0].ok_or_else(|| no_place(g, o)))
                            .collect::<Result<_>>()?;
                        let (slices, gaps) = split(arena, &out_places)?;
                        let read = if k.reads_first_input_only() {
                            &node.inputs[..1]
                        } else {
                            &node.inputs[..]
                        };
                        let views = read
                            .iter()
                            .map(|&t| input_view(g, place, &gaps, t))
                            .collect::<Result<Vec<_>>>()?;
                        let mut outputs = node
                            .outputs
                            .iter()
                            .zip(slices)
                            .map(|(&o, s)| {
                                let t = g.tensor(o);
                                Ok(NodeOutput {
                                    shape: &t.shape,
                                    data: typed_mut(t.dtype, s)?,
                                })
                            })
                            .collect::<Result<Vec<_>>>()?;
                        k.run(&views, &mut outputs, scratch)?;
                    }
                    Step::Table {
                        table,
                        input: x,
                        output,
                        inplace,
                    } => {
                        let x = *x;
                        let (xo, xl) = place[x.0].ok_or_else(|| no_place(g, x))?;
                        let (oo, ol) = place[output.0].ok_or_else(|| no_place(g, *output))?;
                        if *inplace {
                            let out = arena
                                .get_mut(oo..oo + ol)
                                .ok_or_else(|| no_place(g, *output))?;
                            apply_table_inplace(table, typed_mut(g.tensor(*output).dtype, out)?)?;
                        } else {
                            let (slices, gaps) = split(arena, &[(oo, ol)])?;
                            let xv = typed(g.tensor(x).dtype, find(&gaps, xo, xl)?)?;
                            let Some(out) = slices.into_iter().next() else {
                                return Err(no_place(g, *output));
                            };
                            apply_table(table, xv, typed_mut(g.tensor(*output).dtype, out)?)?;
                        }
                    }
                    Step::Fused {
                        layer,
                        input,
                        output,
                        also,
                        second,
                    } => {
                        let (xo, xl) = place[input.0].ok_or_else(|| no_place(g, *input))?;
                        let o = place[output.0].ok_or_else(|| no_place(g, *output))?;
                        let also_at = also
                            .map(|t| place[t.0].ok_or_else(|| no_place(g, t)))
                            .transpose()?;
                        // `split` takes the places in arena order.
                        let (slices, gaps) = match also_at {
                            Some(a) if a.0 < o.0 => {
                                let (mut s, gaps) = split(arena, &[a, o])?;
                                s.reverse();
                                (s, gaps)
                            }
                            Some(a) => split(arena, &[o, a])?,
                            None => split(arena, &[o])?,
                        };
                        let xt = g.tensor(*input);
                        let xv = ValueView {
                            shape: &xt.shape,
                            data: typed(xt.dtype, find(&gaps, xo, xl)?)?,
                        };
                        let mut slices = slices.into_iter();
                        let Some(out) = slices.next() else {
                            return Err(no_place(g, *output));
                        };
                        let out = typed_mut(g.tensor(*output).dtype, out)?;
                        let also_out = match (also, slices.next()) {
                            (Some(t), Some(slice)) => Some(typed_mut(g.tensor(*t).dtype, slice)?),
                            _ => None,
                        };
                        let second = second.map(|t| input_view(g, place, &gaps, t)).transpose()?;
                        layer
                            .run(xv, second, out, also_out)
                            .map_err(ImgError::Runtime)?;
                    }
                    Step::TableMul {
                        lut,
                        attrs,
                        input: x,
                        mul,
                        output,
                    } => {
                        let x = *x;
                        let (xo, xl) = place[x.0].ok_or_else(|| no_place(g, x))?;
                        let (oo, ol) = place[output.0].ok_or_else(|| no_place(g, *output))?;
                        let (slices, gaps) = split(arena, &[(oo, ol)])?;
                        let xv = find(&gaps, xo, xl)?;
                        let Some(out) = slices.into_iter().next() else {
                            return Err(no_place(g, *output));
                        };
                        let bad = |_| ImgError::Usage("misaligned INT16 arena view".into());
                        let xv: &[i16] = bytemuck::try_cast_slice(xv).map_err(bad)?;
                        let out: &mut [i16] = bytemuck::try_cast_slice_mut(out).map_err(bad)?;
                        lut.run_mul(attrs, xv, out)
                            .map_err(|e| kernel_error(g, *mul, e))?;
                    }
                }
                if let (Some(start), Some(times)) = (start, times.as_deref_mut()) {
                    times[i] += start.elapsed();
                }
            }
            Ok(())
        })?;
        for (k, &t) in g.outputs.iter().enumerate() {
            let tensor = g.tensor(t);
            let len = tensor.numel() * tensor.dtype.size();
            if let Some(d) = &tensor.data {
                outs[k].extend_from_slice(raw_bytes(&DataRef::from(d))?);
            } else if let Some((off, _)) = place[t.0] {
                outs[k].extend_from_slice(&arena[off..off + len]);
            } else {
                return Err(no_place(g, t));
            }
        }
        Ok(())
    }

    /// Output `index` of the last [`OfflineModel::invoke`] (dimension 0 is the batch).
    pub fn output(&self, index: usize) -> Result<Value> {
        let outs = self
            .outputs
            .as_ref()
            .ok_or(ImgError::Runtime(RuntimeError::NotInvoked))?;
        outs.get(index)
            .cloned()
            .ok_or(ImgError::Runtime(RuntimeError::OutputIndex {
                index,
                count: outs.len(),
            }))
    }

    /// Sets every input, invokes, and returns every output.
    pub fn run(&mut self, inputs: Vec<Value>) -> Result<Vec<Value>> {
        let expected = self.inputs.len();
        if inputs.len() != expected {
            return Err(ImgError::Runtime(RuntimeError::InputCount {
                got: inputs.len(),
                expected,
            }));
        }
        for (i, v) in inputs.into_iter().enumerate() {
            self.set_input(i, v)?;
        }
        self.invoke()?;
        (0..self.image.program.graph.outputs.len())
            .map(|i| self.output(i))
            .collect()
    }
}

/// Input `t` of a step: its constant data, or its place in the arena (among `gaps`, the
/// parts the step does not write).
fn input_view<'a>(
    g: &'a Graph,
    place: &[Option<(usize, usize)>],
    gaps: &[(usize, &'a [u8])],
    t: TensorId,
) -> Result<ValueView<'a>> {
    let tensor = g.tensor(t);
    let data = match (&tensor.data, place[t.0]) {
        (Some(d), _) => DataRef::from(d),
        (None, Some((off, len))) => typed(tensor.dtype, find(gaps, off, len)?)?,
        (None, None) => return Err(no_place(g, t)),
    };
    Ok(ValueView {
        shape: &tensor.shape,
        data,
    })
}

fn kernel_error(g: &Graph, node: usize, source: ipukit_kernels::KernelError) -> ImgError {
    ImgError::Runtime(RuntimeError::Kernel {
        node: g.nodes[node].name.clone(),
        op: g.nodes[node].op.name(),
        source,
    })
}

fn no_place(g: &ipukit_ir::Graph, t: TensorId) -> ImgError {
    ImgError::Usage(format!(
        "tensor '{}' has no place in the arena",
        g.tensor(t).name
    ))
}
