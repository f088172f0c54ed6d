//! fixed graph → offline image: checks, fusion, memory planning, descriptors and the report.

use crate::error::{ImgError, Result};
use crate::format::{
    self, aligned_buffer_size, expected_flags, quant_of, BatchMode, Category, Header, Image,
    MemoryPlan, Metadata, TensorDesc, ALIGN, EXT_IMAGE, MAX_BATCH_SIZES, VERSION_MAJOR,
    VERSION_MINOR,
};
use crate::program::{liveness, overlaps_in_time, table_index_type, tableable, Exec, Program};
use crate::report::{self, Report};
use ipukit_config::InputConfig;
use ipukit_ir::ops::fixed::OutRange;
use ipukit_ir::ops::PadMode;
use ipukit_ir::{DType, Graph, Op, TensorId};
use ipukit_simfmt::{SimMetadata, Stage};
use ipukit_soc::SocProfile;
use std::collections::HashSet;
use std::path::Path;

/// What to compile for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileOptions {
    /// `--soc_version` (a profile of `ipukit_soc`).
    pub soc: String,
    /// `--batch_mode`.
    pub batch_mode: BatchMode,
    /// `-b`: the maximum batch for `n_buf` (one entry), the allowed sizes for `one_buf`.
    pub batch_sizes: Vec<usize>,
    /// `-c`.
    pub category: Category,
    /// Producer string stored in the image (e.g. `ipu-compiler 0.1.0`).
    pub producer: String,
    /// File name of the fixed model, stored in the image.
    pub source: String,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions {
            soc: "generic".into(),
            batch_mode: BatchMode::NBuf,
            batch_sizes: vec![1],
            category: Category::Unknown,
            producer: format!("ipukit-offline-img {}", env!("CARGO_PKG_VERSION")),
            source: String::new(),
        }
    }
}

/// A compiled image: its bytes and its report.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// The image file's bytes.
    pub bytes: Vec<u8>,
    /// Per-layer report with totals.
    pub report: Report,
    /// The image the bytes encode.
    pub image: Image,
}

impl Compiled {
    /// Writes the image atomically (a temporary file in the same folder, then a rename), so an
    /// interrupted run never leaves a half-written image.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<()> {
        write_atomic(path.as_ref(), &self.bytes)
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let io = |source| ImgError::Io {
        path: path.display().to_string(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

/// Checks the batch request against the seeds' rules.
pub fn check_batch(mode: BatchMode, sizes: &[usize]) -> Result<Vec<usize>> {
    let bad = |m: String| Err(ImgError::Batch(m));
    if sizes.is_empty() || sizes.contains(&0) {
        return bad(format!("batch sizes must be at least 1, got {sizes:?}"));
    }
    match mode {
        BatchMode::NBuf if sizes.len() != 1 => bad(format!(
            "n_buf takes one maximum batch (-b N), got {sizes:?}; list several sizes with --batch_mode one_buf"
        )),
        BatchMode::OneBuf if sizes.len() > MAX_BATCH_SIZES => bad(format!(
            "one_buf takes at most {MAX_BATCH_SIZES} batch sizes, got {}",
            sizes.len()
        )),
        _ => {
            let mut v = sizes.to_vec();
            v.sort_unstable();
            v.dedup();
            if v.iter().any(|&s| s > u32::MAX as usize) {
                return bad("batch size too large".into());
            }
            Ok(v)
        }
    }
}

/// Reads a fixed model and compiles it.
pub fn compile_file(path: impl AsRef<Path>, opts: &CompileOptions) -> Result<Compiled> {
    let path = path.as_ref();
    if !path.exists() {
        return Err(ImgError::Usage(format!(
            "FileNotFoundError: No such model: {}",
            path.display()
        )));
    }
    ipukit_soc::profile(&opts.soc)?;
    check_batch(opts.batch_mode, &opts.batch_sizes)?;
    let bytes = std::fs::read(path).map_err(|source| ImgError::Io {
        path: path.display().to_string(),
        source,
    })?;
    if ipukit_simfmt::sniff(&bytes) != ipukit_simfmt::FileKind::Sim {
        return Err(ImgError::NotRecognized(format!(
            "{} is not an ipukit fixed model (*_fixed.sim)",
            path.display()
        )));
    }
    let (graph, meta) = ipukit_simfmt::read_sim(&bytes)?;
    let mut opts = opts.clone();
    if opts.source.is_empty() {
        opts.source = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
    }
    compile(&graph, &meta, &opts)
}

/// Compiles a fixed graph into an offline image (`docs/offline-img.md`).
pub fn compile(graph: &Graph, meta: &SimMetadata, opts: &CompileOptions) -> Result<Compiled> {
    let soc = ipukit_soc::profile(&opts.soc)?;
    let batch_sizes = check_batch(opts.batch_mode, &opts.batch_sizes)?;
    if meta.stage != Stage::Fixed {
        return Err(ImgError::Unsupported(format!(
            "this is a {} model; the compiler takes a fixed model (*_fixed.sim) made by ipu-calibrator",
            meta.stage.as_str()
        )));
    }
    graph.validate()?;
    check_fixed(graph)?;
    let config = meta
        .input_config
        .as_deref()
        .map(InputConfig::from_json)
        .transpose()
        .map_err(|e| ImgError::Unsupported(format!("the stored input config: {e}")))?;

    let mut g = graph.clone();
    let mut fused: Vec<Vec<String>> = Vec::new();
    fold_pads(&mut g, &mut fused)?;
    fold_clamps(&mut g, &mut fused);
    g.compact();
    // Constants' quantization parameters (per-channel weight scales and ranges) only document
    // the calibration: the operators hold every integer the kernels use.
    for t in g.tensors.iter_mut().filter(|t| t.is_const()) {
        t.quant = None;
    }
    g.validate()?;
    check_limits(soc, &g)?;
    let exec = plan_exec(&g);
    let program = Program { graph: g, exec };
    let plan = plan_memory(&program);

    let descs = |is_input: bool| -> Result<Vec<TensorDesc>> {
        let ids = if is_input {
            &program.graph.inputs
        } else {
            &program.graph.outputs
        };
        ids.iter()
            .map(|&t| describe(&program.graph, t, is_input, config.as_ref()))
            .collect()
    };
    let header = Header {
        version: (VERSION_MAJOR, VERSION_MINOR),
        soc: soc.name.to_string(),
        batch_mode: opts.batch_mode,
        batch_sizes,
        category: opts.category,
        inputs: descs(true)?,
        outputs: descs(false)?,
        arena_bytes: plan.arena_bytes as u64,
        const_bytes: program.graph.const_bytes() as u64,
    };
    let image = Image {
        header,
        program,
        plan,
        metadata: Metadata {
            producer: opts.producer.clone(),
            source: opts.source.clone(),
            input_config: meta.input_config.clone(),
        },
    };
    let bytes = format::encode(&image)?;
    let report = report::build(&image, soc, &fused, graph, bytes.len());
    Ok(Compiled {
        bytes,
        report,
        image,
    })
}

/// Refuses float arithmetic and BOOL tensors: an offline image holds integer computation
/// (plus the boundary's Quantize/Dequantize and data movement of any type).
fn check_fixed(g: &Graph) -> Result<()> {
    for n in &g.nodes {
        let moves = matches!(
            n.op,
            Op::Reshape(_)
                | Op::Transpose(_)
                | Op::Concat(_)
                | Op::Split(_)
                | Op::Slice(_)
                | Op::Gather(_)
                | Op::Identity
                | Op::Expand(_)
                | Op::Tile(_)
                | Op::DepthToSpace(_)
                | Op::SpaceToDepth(_)
                | Op::Pad(_)
        );
        let float_in = n.inputs.iter().any(|&t| g.tensor(t).dtype == DType::F32);
        if float_in && !moves && !matches!(n.op, Op::Quantize(_)) {
            return Err(ImgError::Unsupported(format!(
                "node '{}' ({}) computes in float; re-run ipu-calibrator to get a fixed model",
                n.name,
                n.op.name()
            )));
        }
        if n.inputs
            .iter()
            .chain(&n.outputs)
            .any(|&t| g.tensor(t).dtype == DType::Bool)
        {
            return Err(ImgError::Unsupported(format!(
                "node '{}' ({}) uses BOOL tensors, which offline images do not hold",
                n.name,
                n.op.name()
            )));
        }
    }
    Ok(())
}

/// Readers of each tensor.
fn readers(g: &Graph) -> Vec<Vec<usize>> {
    let mut r = vec![Vec::new(); g.tensors.len()];
    for (i, n) in g.nodes.iter().enumerate() {
        for &t in &n.inputs {
            if !r[t.0].contains(&i) {
                r[t.0].push(i);
            }
        }
    }
    r
}

/// `Pad` (constant = the layer's input zero point, H and W only) → the convolution's padding:
/// the convolution pads with its input zero point itself (`docs/fixed-point.md` §3), so the
/// integers are the same.
fn fold_pads(g: &mut Graph, fused: &mut Vec<Vec<String>>) -> Result<()> {
    let outputs: HashSet<TensorId> = g.outputs.iter().copied().collect();
    let rd = readers(g);
    for p in 0..g.nodes.len() {
        let Op::Pad(pad) = &g.nodes[p].op else {
            continue;
        };
        let PadMode::Constant(value) = pad.mode else {
            continue;
        };
        let (x, y) = (g.nodes[p].inputs[0], g.nodes[p].outputs[0]);
        if pad.pads.len() != 4
            || pad.pads[0] != [0, 0]
            || pad.pads[3] != [0, 0]
            || outputs.contains(&y)
            || rd[y.0].len() != 1
        {
            continue;
        }
        let pads = pad.pads.clone();
        let c = rd[y.0][0];
        if g.nodes[c].inputs.first() != Some(&y) || g.nodes[c].inputs[1..].contains(&y) {
            continue;
        }
        let (padding, zp) = match &mut g.nodes[c].op {
            Op::QConv2d(q) => (&mut q.conv.padding, q.layer.input_zero_point),
            Op::QDepthwiseConv2d(q) => (&mut q.conv.padding, q.layer.input_zero_point),
            _ => continue,
        };
        if value != zp as f32 {
            continue;
        }
        padding.top += pads[1][0];
        padding.bottom += pads[1][1];
        padding.left += pads[2][0];
        padding.right += pads[2][1];
        g.nodes[c].inputs[0] = x;
        fused.push(vec![g.nodes[p].name.clone(), g.nodes[c].name.clone()]);
    }
    Ok(())
}

/// The output range of operators that have one.
fn out_range_mut(op: &mut Op) -> Option<(&mut OutRange, DType)> {
    Some(match op {
        Op::QConv2d(q) => (&mut q.layer.out, q.layer.out_dtype),
        Op::QDepthwiseConv2d(q) => (&mut q.layer.out, q.layer.out_dtype),
        Op::QTransposeConv2d(q) => (&mut q.layer.out, q.layer.out_dtype),
        Op::QFullyConnected(q) => (&mut q.layer.out, q.layer.out_dtype),
        Op::QMatMul(q) => (&mut q.out, DType::I16),
        Op::QBinary(q) => (&mut q.out, DType::I16),
        Op::QRescale(q) => (&mut q.out, q.out_dtype),
        Op::QAvgPool2d(q) => (&mut q.out, q.out_dtype),
        Op::QReduce(q) => (&mut q.out, q.out_dtype),
        Op::QResize(q) => (&mut q.out, q.out_dtype),
        _ => return None,
    })
}

/// A `QRescale` that only clamps: exact identity multipliers (`m = 2ⁿ`), same type and zero
/// point. Returns the clamp bounds.
fn pure_clamp(op: &Op, in_dtype: DType) -> Option<(i32, i32, i32)> {
    let Op::QRescale(r) = op else { return None };
    let identity = |q: &ipukit_ir::ops::Requant| {
        q.shift <= 30 && q.multiplier == 1i32.checked_shl(q.shift).unwrap_or(-1)
    };
    (r.out_dtype == in_dtype
        && r.input_zero_point == r.out.zero_point
        && r.positive.iter().chain(&r.negative).all(identity))
    .then_some((r.out.zero_point, r.out.min, r.out.max))
}

/// Layer → clamp-only `QRescale` (a Relu/Clip on the layer's output scale): the clamp joins
/// the layer's output range. `sat(sat(v, a, b), c, d) = sat(v, max(a, c), min(b, d))` when the
/// ranges meet, so the integers are the same.
fn fold_clamps(g: &mut Graph, fused: &mut Vec<Vec<String>>) {
    let outputs: HashSet<TensorId> = g.outputs.iter().copied().collect();
    let rd = readers(g);
    let mut producer = vec![None; g.tensors.len()];
    for (i, n) in g.nodes.iter().enumerate() {
        for &o in &n.outputs {
            producer[o.0] = Some(i);
        }
    }
    let mut removed = vec![false; g.nodes.len()];
    for r in 0..g.nodes.len() {
        let x = g.nodes[r].inputs[0];
        let Some((zp, lo, hi)) = pure_clamp(&g.nodes[r].op, g.tensor(x).dtype) else {
            continue;
        };
        let Some(p) = producer[x.0] else { continue };
        if removed[p] || outputs.contains(&x) || rd[x.0].len() != 1 || g.nodes[p].outputs.len() != 1
        {
            continue;
        }
        let x_dtype = g.tensor(x).dtype;
        let Some((range, dt)) = out_range_mut(&mut g.nodes[p].op) else {
            continue;
        };
        let (nlo, nhi) = (range.min.max(lo), range.max.min(hi));
        if dt != x_dtype || range.zero_point != zp || nlo > nhi {
            continue;
        }
        range.min = nlo;
        range.max = nhi;
        let y = g.nodes[r].outputs[0];
        g.nodes[p].outputs[0] = y;
        producer[y.0] = Some(p);
        removed[r] = true;
        fused.push(vec![g.nodes[p].name.clone(), g.nodes[r].name.clone()]);
    }
    let mut k = removed.into_iter();
    g.nodes.retain(|_| !k.next().unwrap_or(false));
}

/// Execution kinds: aliases for Reshape/Identity of activations, table chains for runs of
/// element-wise integer maps whose intermediate results nobody else reads.
fn plan_exec(g: &Graph) -> Vec<Exec> {
    let outputs: HashSet<TensorId> = g.outputs.iter().copied().collect();
    let rd = readers(g);
    let mut exec = vec![Exec::Kernel; g.nodes.len()];
    let table_ok = |i: usize| {
        let n = &g.nodes[i];
        tableable(&n.op)
            && n.inputs.len() == 1
            && table_index_type(g.tensor(n.inputs[0]).dtype)
            && !g.tensor(n.inputs[0]).is_const()
    };
    for i in 0..g.nodes.len() {
        let n = &g.nodes[i];
        if matches!(n.op, Op::Reshape(_) | Op::Identity)
            && !g.tensor(n.inputs[0]).is_const()
            && g.tensor(n.inputs[0]).dtype == g.tensor(n.outputs[0]).dtype
        {
            exec[i] = Exec::Alias;
            continue;
        }
        // Extend the chain ending at node i-1 when i reads only its result.
        let extends = i > 0
            && table_ok(i)
            && table_ok(i - 1)
            && matches!(
                exec[i - 1],
                Exec::Kernel | Exec::TableHead | Exec::TableLink
            )
            && g.nodes[i - 1].outputs.first() == n.inputs.first()
            && rd[n.inputs[0].0].len() == 1
            && !outputs.contains(&n.inputs[0]);
        if extends {
            if exec[i - 1] == Exec::Kernel {
                exec[i - 1] = Exec::TableHead;
            }
            exec[i] = Exec::TableLink;
        }
    }
    exec
}

/// Greedy by size: the largest buffers first, each at the lowest aligned offset that no
/// buffer live at the same time occupies. Deterministic (ties broken by buffer order).
fn plan_memory(p: &Program) -> MemoryPlan {
    let live = liveness(p);
    let mut order: Vec<usize> = (0..live.groups.len()).collect();
    order.sort_by(|&a, &b| live.groups[b].2.cmp(&live.groups[a].2).then(a.cmp(&b)));
    let mut offset: Vec<Option<usize>> = vec![None; live.groups.len()];
    let mut placed: Vec<usize> = Vec::new();
    let mut arena = 0usize;
    for &gr in &order {
        let (s, e, len) = live.groups[gr];
        let mut busy: Vec<(usize, usize)> = placed
            .iter()
            .filter(|&&o| overlaps_in_time((s, e), (live.groups[o].0, live.groups[o].1)))
            .filter_map(|&o| offset[o].map(|off| (off, off + live.groups[o].2)))
            .collect();
        busy.sort_unstable();
        let mut at = 0usize;
        for (b0, b1) in busy {
            if at + len <= b0 {
                break;
            }
            at = at.max(crate::bytes::align_up(b1, ALIGN).unwrap_or(b1));
        }
        offset[gr] = Some(at);
        placed.push(gr);
        arena = arena.max(at + len);
    }
    let place = live
        .group
        .iter()
        .enumerate()
        .map(|(t, gr)| {
            gr.and_then(|gr| offset[gr])
                .map(|off| (off, crate::program::tensor_bytes(&p.graph, TensorId(t))))
        })
        .collect();
    MemoryPlan {
        arena_bytes: crate::bytes::align_up(arena, ALIGN).unwrap_or(arena),
        place,
    }
}

/// The header descriptor of a model input or output.
fn describe(
    g: &Graph,
    t: TensorId,
    is_input: bool,
    config: Option<&InputConfig>,
) -> Result<TensorDesc> {
    let tensor = g.tensor(t);
    let flags = expected_flags(g, t, is_input);
    let (wa, ha) = if flags & EXT_IMAGE != 0 {
        let spec = config.and_then(|c| c.input(&tensor.name));
        let (w, h) = spec.map_or((1, 1), |s| (s.width_alignment, s.height_alignment));
        let fit = |v: usize, what: &str| {
            u16::try_from(v)
                .ok()
                .filter(|&a| (1..=format::MAX_ALIGNMENT).contains(&a))
                .ok_or_else(|| {
                    ImgError::Unsupported(format!(
                        "input '{}': {what} alignment {v} is outside 1..={}",
                        tensor.name,
                        format::MAX_ALIGNMENT
                    ))
                })
        };
        (fit(w, "width")?, fit(h, "height")?)
    } else {
        (1, 1)
    };
    if tensor.shape.is_empty() || tensor.shape.len() > format::MAX_RANK {
        return Err(ImgError::Unsupported(format!(
            "'{}' has rank {}; model inputs and outputs need 1 to {} dimensions",
            tensor.name,
            tensor.shape.len(),
            format::MAX_RANK
        )));
    }
    if tensor.shape[0] != 1 {
        return Err(ImgError::Unsupported(format!(
            "'{}' has batch {}; compile a batch-1 model and use -b for batches",
            tensor.name, tensor.shape[0]
        )));
    }
    let (scale, zero_point) = quant_of(tensor, flags);
    let aligned = aligned_buffer_size(tensor.dtype, &tensor.shape, wa, ha, flags)
        .ok_or_else(|| ImgError::Unsupported(format!("'{}' is too large", tensor.name)))?;
    Ok(TensorDesc {
        name: tensor.name.clone(),
        dtype: tensor.dtype,
        shape: tensor.shape.clone(),
        width_alignment: wa,
        height_alignment: ha,
        scale,
        zero_point,
        aligned_buffer_size: aligned,
        ext_flags: flags,
        tensor: t.0,
    })
}

/// The SoC profile's limits on the fused program (kernel, stride, dilation and padding —
/// after folding `Pad` into the convolutions —, pool window, concat fan-in, split fan-out),
/// every violation reported at once.
pub(crate) fn check_limits(soc: &SocProfile, g: &Graph) -> Result<()> {
    Ok(soc.check_graph(g)?)
}
