//! The byte layout of an offline image (`docs/offline-img.md`): header, descriptors, section
//! table, sections, and the loader's checks.

use crate::bytes::{align_up, Reader, Writer};
use crate::codec::{self, dtype_code, read_dtype};
use crate::error::{corrupt, header, ImgError, Result};
use crate::program::{liveness, overlaps_in_time, tensor_bytes, Exec, Program};
use ipukit_ir::{DType, Graph, Node, QuantParams, Tensor, TensorData, TensorId};

/// First eight bytes of every image.
pub const MAGIC: [u8; 8] = *b"IPUKIMG\0";
/// Major format version this crate writes and reads.
pub const VERSION_MAJOR: u16 = 4;
/// Minor format version this crate writes (any minor of the same major is read).
pub const VERSION_MINOR: u16 = 0;
/// Alignment of sections in the file and of tensors in the arena.
pub const ALIGN: usize = 64;
/// Most batch sizes one image may list (the seeds' limit for `one_buf`).
pub const MAX_BATCH_SIZES: usize = 10;
/// Largest rank of a model input or output.
pub const MAX_RANK: usize = 6;
/// Largest width or height alignment.
pub const MAX_ALIGNMENT: u16 = 1024;

const SOC_NAME_LEN: usize = 32;
const FIXED_HEADER: usize = 120;
const DESC_BYTES: usize = 2 + 1 + 1 + 4 * MAX_RANK + 2 + 2 + 4 + 4 + 8 + 4 + 4;
const SECTION_ENTRY: usize = 32;

/// Extension flag: the input is a board image (UINT8) that the model normalises itself.
pub const EXT_IMAGE: u32 = 1;
/// Extension flag: the image is YUV NV12 (`[N, H·3/2, W, 1]`).
pub const EXT_NV12: u32 = 2;
/// Extension flag: the tensor is an integer with a meaningful scale and zero point.
pub const EXT_QUANT: u32 = 4;
/// Extension flag: a FLOAT32 input the model quantizes itself.
pub const EXT_FLOAT_QUANTIZED: u32 = 8;
/// Extension flag: a FLOAT32 output the model dequantizes (the seeds' Fix2Float).
pub const EXT_DEQUANTIZED: u32 = 16;
const EXT_KNOWN: u32 = EXT_IMAGE | EXT_NV12 | EXT_QUANT | EXT_FLOAT_QUANTIZED | EXT_DEQUANTIZED;

/// Batch mode (compiler `--batch_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BatchMode {
    /// Each batch item has its own buffers; any batch up to the maximum runs.
    NBuf,
    /// Items are stacked in the highest dimension of one buffer; only the listed sizes run.
    OneBuf,
}

impl BatchMode {
    /// The compiler's spelling: `n_buf` or `one_buf`.
    pub fn as_str(self) -> &'static str {
        match self {
            BatchMode::NBuf => "n_buf",
            BatchMode::OneBuf => "one_buf",
        }
    }
}

impl std::str::FromStr for BatchMode {
    type Err = ImgError;
    fn from_str(s: &str) -> Result<BatchMode> {
        match s.to_ascii_lowercase().as_str() {
            "n_buf" => Ok(BatchMode::NBuf),
            "one_buf" => Ok(BatchMode::OneBuf),
            _ => Err(ImgError::Batch(format!(
                "--batch_mode must be n_buf or one_buf, got '{s}'"
            ))),
        }
    }
}

/// Model category (compiler `-c`): how the simulator presents the outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Category {
    /// All tensor values.
    #[default]
    Unknown,
    /// One output; top-5 scores.
    Classification,
    /// Four outputs of the IPU post-processing (boxes, classes, scores, count).
    Detection,
}

impl Category {
    /// The compiler's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Unknown => "Unknown",
            Category::Classification => "Classification",
            Category::Detection => "Detection",
        }
    }
    fn code(self) -> u8 {
        match self {
            Category::Unknown => 0,
            Category::Classification => 1,
            Category::Detection => 2,
        }
    }
}

impl std::str::FromStr for Category {
    type Err = ImgError;
    fn from_str(s: &str) -> Result<Category> {
        [
            Category::Unknown,
            Category::Classification,
            Category::Detection,
        ]
        .into_iter()
        .find(|c| c.as_str().eq_ignore_ascii_case(s))
        .ok_or_else(|| {
            ImgError::Usage(format!(
                "-c/--category must be Classification, Detection or Unknown, got '{s}'"
            ))
        })
    }
}

/// A model input or output as the header describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorDesc {
    /// Tensor name.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Shape of one batch item (NHWC for images; dimension 0 is 1).
    pub shape: Vec<usize>,
    /// Width alignment in elements (images; 1 otherwise).
    pub width_alignment: u16,
    /// Height alignment in rows (images; 1 otherwise).
    pub height_alignment: u16,
    /// Scale of an integer tensor (`EXT_QUANT`), 0 otherwise.
    pub scale: f32,
    /// Zero point of an integer tensor (`EXT_QUANT`), 0 otherwise.
    pub zero_point: i32,
    /// Bytes of one batch item's buffer with the alignments applied.
    pub aligned_buffer_size: u64,
    /// `EXT_*` flags.
    pub ext_flags: u32,
    /// The tensor in the program.
    pub tensor: usize,
}

/// Everything in the header besides the section table.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// `(major, minor)` format version.
    pub version: (u16, u16),
    /// SoC profile the image was compiled for.
    pub soc: String,
    /// Batch mode.
    pub batch_mode: BatchMode,
    /// Allowed batch sizes: one maximum for `n_buf`, the list for `one_buf` (ascending).
    pub batch_sizes: Vec<usize>,
    /// Model category.
    pub category: Category,
    /// Inputs.
    pub inputs: Vec<TensorDesc>,
    /// Outputs.
    pub outputs: Vec<TensorDesc>,
    /// The seeds' BufferSize: bytes of the activation arena.
    pub arena_bytes: u64,
    /// The seeds' BufferSize1: bytes of constant data in the weights section.
    pub const_bytes: u64,
}

/// Free-form facts stored with the image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    /// The tool that wrote the image.
    pub producer: String,
    /// File name of the fixed model compiled.
    pub source: String,
    /// The `input_config.ini` the model was converted with, as JSON (opaque here).
    pub input_config: Option<String>,
}

/// Where each tensor lives in the arena.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryPlan {
    /// Arena size in bytes.
    pub arena_bytes: usize,
    /// `(offset, bytes)` of every arena tensor, by tensor id (`None`: not in the arena).
    pub place: Vec<Option<(usize, usize)>>,
}

/// A complete, checked image.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    /// Header.
    pub header: Header,
    /// Program (fused graph with constants and execution kinds).
    pub program: Program,
    /// Memory plan.
    pub plan: MemoryPlan,
    /// Metadata.
    pub metadata: Metadata,
}

/// Section kinds, in file order.
const SECTIONS: [(u32, &str); 4] = [
    (1, "program"),
    (2, "memory plan"),
    (3, "weights"),
    (4, "metadata"),
];

// ---------------------------------------------------------------- writing

fn write_desc(w: &mut Writer, d: &TensorDesc) -> Result<()> {
    w.str(&d.name)?;
    w.u8(dtype_code(d.dtype));
    w.u8(d.shape.len() as u8);
    for i in 0..MAX_RANK {
        let v = d.shape.get(i).copied().unwrap_or(0);
        w.u32(u32::try_from(v).map_err(|_| {
            ImgError::Unsupported(format!("dimension {v} of '{}' is too large", d.name))
        })?);
    }
    w.u16(d.width_alignment);
    w.u16(d.height_alignment);
    w.f32(d.scale);
    w.i32(d.zero_point);
    w.u64(d.aligned_buffer_size);
    w.u32(d.ext_flags);
    w.size(d.tensor)?;
    Ok(())
}

fn write_program(p: &Program) -> Result<Vec<u8>> {
    let g = &p.graph;
    let mut w = Writer::new();
    w.size(g.tensors.len())?;
    let mut const_index = 0usize;
    for (i, t) in g.tensors.iter().enumerate() {
        w.str(&t.name)?;
        w.u8(dtype_code(t.dtype));
        w.sizes(&t.shape)?;
        if t.data.is_some() {
            w.u8(2);
            w.size(const_index)?;
            const_index += 1;
        } else if g.inputs.contains(&TensorId(i)) {
            w.u8(1);
        } else {
            w.u8(0);
        }
        match &t.quant {
            None => w.u8(0),
            Some(q) => {
                w.u8(1);
                w.size(q.scale.len())?;
                q.scale.iter().for_each(|&v| w.f32(v));
                w.size(q.zero_point.len())?;
                q.zero_point.iter().for_each(|&v| w.i64(v));
                w.size(q.min.len())?;
                q.min.iter().for_each(|&v| w.f32(v));
                w.size(q.max.len())?;
                q.max.iter().for_each(|&v| w.f32(v));
                w.size(q.quantized_dimension)?;
            }
        }
    }
    let ids = |v: &[TensorId]| v.iter().map(|t| t.0).collect::<Vec<_>>();
    w.sizes(&ids(&g.inputs))?;
    w.sizes(&ids(&g.outputs))?;
    w.size(g.nodes.len())?;
    for (n, e) in g.nodes.iter().zip(&p.exec) {
        w.str(&n.name)?;
        w.u16(codec::op_code(&n.op));
        w.u8(e.code());
        w.sizes(&ids(&n.inputs))?;
        w.sizes(&ids(&n.outputs))?;
        let mut a = Writer::new();
        codec::write_attrs(&mut a, &n.op)?;
        w.size(a.len())?;
        w.bytes(&a.buf);
    }
    Ok(w.buf)
}

fn write_plan(plan: &MemoryPlan) -> Result<Vec<u8>> {
    let mut w = Writer::new();
    w.u64(plan.arena_bytes as u64);
    let placed: Vec<(usize, (usize, usize))> = plan
        .place
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.map(|p| (i, p)))
        .collect();
    w.size(placed.len())?;
    for (t, (off, len)) in placed {
        w.size(t)?;
        w.u64(off as u64);
        w.u64(len as u64);
    }
    Ok(w.buf)
}

/// The weights section and its constant byte count.
fn write_weights(g: &Graph) -> Result<(Vec<u8>, u64)> {
    let consts: Vec<&TensorData> = g.tensors.iter().filter_map(|t| t.data.as_ref()).collect();
    let mut w = Writer::new();
    w.size(consts.len())?;
    let table_end = 4 + consts.len() * 24;
    let mut off = align_up(table_end, ALIGN).unwrap_or(table_end);
    let mut total = 0u64;
    let mut placed = Vec::with_capacity(consts.len());
    for d in &consts {
        let len = d.len() * d.dtype().size();
        w.u8(dtype_code(d.dtype()));
        w.bytes(&[0; 7]);
        w.u64(off as u64);
        w.u64(len as u64);
        placed.push(off);
        total += len as u64;
        off = align_up(off + len, ALIGN).unwrap_or(off + len);
    }
    for (d, at) in consts.iter().zip(placed) {
        while w.len() < at {
            w.u8(0);
        }
        w.bytes(&d.to_le_bytes());
    }
    Ok((w.buf, total))
}

fn write_metadata(m: &Metadata) -> Result<Vec<u8>> {
    let mut w = Writer::new();
    let long = |s: &str| -> Result<()> {
        if s.len() > u32::MAX as usize {
            return Err(ImgError::Unsupported("metadata too long".into()));
        }
        Ok(())
    };
    for s in [&m.producer, &m.source] {
        long(s)?;
        w.size(s.len())?;
        w.bytes(s.as_bytes());
    }
    match &m.input_config {
        None => w.u8(0),
        Some(c) => {
            long(c)?;
            w.u8(1);
            w.size(c.len())?;
            w.bytes(c.as_bytes());
        }
    }
    Ok(w.buf)
}

/// Serialises an image (deterministic: same image, same bytes).
pub(crate) fn encode(img: &Image) -> Result<Vec<u8>> {
    let h = &img.header;
    let (weights, const_bytes) = write_weights(&img.program.graph)?;
    if const_bytes != h.const_bytes {
        return Err(ImgError::Unsupported(
            "constant byte count disagrees with the weights".into(),
        ));
    }
    let sections = [
        write_program(&img.program)?,
        write_plan(&img.plan)?,
        weights,
        write_metadata(&img.metadata)?,
    ];
    let mut w = Writer::new();
    w.bytes(&MAGIC);
    w.u16(h.version.0);
    w.u16(h.version.1);
    w.u32(0); // header length, patched below
    let mut soc = [0u8; SOC_NAME_LEN];
    let name = h.soc.as_bytes();
    if name.len() >= SOC_NAME_LEN {
        return Err(ImgError::Unsupported(format!(
            "SoC name '{}' is too long",
            h.soc
        )));
    }
    soc[..name.len()].copy_from_slice(name);
    w.bytes(&soc);
    w.u8(match h.batch_mode {
        BatchMode::NBuf => 0,
        BatchMode::OneBuf => 1,
    });
    w.u8(h.batch_sizes.len() as u8);
    w.u8(h.category.code());
    w.u8(0);
    for i in 0..MAX_BATCH_SIZES {
        w.size(h.batch_sizes.get(i).copied().unwrap_or(0))?;
    }
    w.u16(h.inputs.len() as u16);
    w.u16(h.outputs.len() as u16);
    w.u64(h.arena_bytes);
    w.u64(h.const_bytes);
    w.u32(sections.len() as u32);
    w.u32(0);
    debug_assert_eq!(w.len(), FIXED_HEADER);
    for d in h.inputs.iter().chain(&h.outputs) {
        write_desc(&mut w, d)?;
    }
    let header_len = w.len() + sections.len() * SECTION_ENTRY + 4;
    let mut off = align_up(header_len, ALIGN).unwrap_or(header_len);
    for ((kind, _), s) in SECTIONS.iter().zip(&sections) {
        w.u32(*kind);
        w.u32(0);
        w.u64(off as u64);
        w.u64(s.len() as u64);
        w.u32(crc32fast::hash(s));
        w.u32(0);
        off = align_up(off + s.len(), ALIGN).unwrap_or(off + s.len());
    }
    w.buf[12..16].copy_from_slice(&(header_len as u32).to_le_bytes());
    let crc = crc32fast::hash(&w.buf);
    w.u32(crc);
    for s in &sections {
        w.pad_to(ALIGN);
        w.bytes(s);
    }
    Ok(w.buf)
}

// ---------------------------------------------------------------- reading

fn io_name(is_input: bool, i: usize) -> String {
    // The seeds write "Input 0" and "output 0".
    if is_input {
        format!("Input {i}")
    } else {
        format!("output {i}")
    }
}

fn check(cond: bool, check: String, detail: impl FnOnce() -> String) -> Result<()> {
    if cond {
        Ok(())
    } else {
        Err(header(check, detail()))
    }
}

/// Bytes of one batch item of an input or output with its alignments applied
/// (`docs/offline-img.md` §3.2).
pub fn aligned_buffer_size(
    dtype: DType,
    shape: &[usize],
    width_alignment: u16,
    height_alignment: u16,
    ext_flags: u32,
) -> Option<u64> {
    let (wa, ha) = (
        width_alignment.max(1) as usize,
        height_alignment.max(1) as usize,
    );
    let item: usize = shape
        .iter()
        .skip(1)
        .try_fold(1usize, |a, &d| a.checked_mul(d))?;
    let bytes = if shape.len() == 4 {
        let (h, w, c) = (shape[1], shape[2], shape[3]);
        let w_al = align_up(w, wa)?;
        if ext_flags & EXT_NV12 != 0 {
            // Rows are 3/2 of the image height: align the image height.
            let img_h = h.checked_mul(2)? / 3;
            let rows = align_up(img_h, ha)?.checked_mul(3)? / 2;
            rows.checked_mul(w_al)?.checked_mul(c)?
        } else {
            align_up(h, ha)?.checked_mul(w_al)?.checked_mul(c)?
        }
    } else {
        item
    };
    bytes.checked_mul(dtype.size()).map(|b| b as u64)
}

fn read_desc(r: &mut Reader<'_>, is_input: bool, i: usize) -> Result<TensorDesc> {
    let what = |c: &str| format!("{} {c} check failed", io_name(is_input, i));
    let name = r.str()?;
    let code = r.u8()?;
    let dtype = *codec::DTYPES
        .get(code as usize)
        .filter(|&&d| d != DType::Bool)
        .ok_or_else(|| {
            header(
                what("Element format"),
                format!("unknown element format {code}"),
            )
        })?;
    let rank = r.u8()? as usize;
    let mut dims = [0usize; MAX_RANK];
    for d in &mut dims {
        *d = r.u32()? as usize;
    }
    check((1..=MAX_RANK).contains(&rank), what("dim"), || {
        format!("rank {rank}, expected 1..={MAX_RANK}")
    })?;
    check(
        dims[..rank].iter().all(|&d| d > 0) && dims[rank..].iter().all(|&d| d == 0),
        what("dim"),
        || format!("dimensions {dims:?} for rank {rank}"),
    )?;
    let shape = dims[..rank].to_vec();
    let width_alignment = r.u16()?;
    let height_alignment = r.u16()?;
    let scale = r.f32()?;
    let zero_point = r.i32()?;
    let aligned = r.u64()?;
    let ext = r.u32()?;
    let tensor = r.size()?;

    // Extension flags: known bits, consistent with the element type and the direction.
    let int = !matches!(dtype, DType::F32);
    let ext_ok = ext & !EXT_KNOWN == 0
        && (ext & EXT_NV12 == 0 || ext & EXT_IMAGE != 0)
        && (ext & EXT_IMAGE == 0 || (is_input && dtype == DType::U8 && rank == 4))
        && (ext & EXT_QUANT == 0 || int)
        && (ext & EXT_FLOAT_QUANTIZED == 0 || (is_input && dtype == DType::F32))
        && (ext & EXT_DEQUANTIZED == 0 || (!is_input && dtype == DType::F32));
    check(ext_ok, what("ExtFlag"), || format!("flags {ext:#x}"))?;
    let image = ext & EXT_IMAGE != 0;
    for (al, c) in [
        (width_alignment, "Width alignment"),
        (height_alignment, "Height alignment"),
    ] {
        let ok = if image {
            (1..=MAX_ALIGNMENT).contains(&al) && (ext & EXT_NV12 == 0 || al % 2 == 0)
        } else {
            al == 1
        };
        check(ok, what(c), || {
            format!(
                "{} {al}; expected 1..={MAX_ALIGNMENT} for images (even for YUV_NV12), 1 otherwise",
                c.to_lowercase()
            )
        })?;
    }
    let quant = ext & EXT_QUANT != 0;
    check(
        if quant {
            scale.is_finite() && scale > 0.0
        } else {
            scale == 0.0
        },
        what("Scalar"),
        || format!("scale {scale} (quantized: {quant})"),
    )?;
    let zp_ok = if quant {
        ipukit_ir::ops::fixed::int_range(dtype)
            .is_some_and(|(lo, hi)| (lo..=hi).contains(&zero_point))
    } else {
        zero_point == 0
    };
    check(zp_ok, what("ZPoint"), || {
        format!("zero point {zero_point} for {dtype}")
    })?;
    let expected = aligned_buffer_size(dtype, &shape, width_alignment, height_alignment, ext);
    check(
        expected == Some(aligned),
        what("Aligned Buffer Size"),
        || format!("{aligned} bytes, the shape and alignments give {expected:?}"),
    )?;
    Ok(TensorDesc {
        name,
        dtype,
        shape,
        width_alignment,
        height_alignment,
        scale,
        zero_point,
        aligned_buffer_size: aligned,
        ext_flags: ext,
        tensor,
    })
}

fn read_program(buf: &[u8]) -> Result<(Program, Vec<usize>)> {
    let mut r = Reader::new(buf, "program");
    let n_t = r.count(8)?;
    let mut g = Graph::new();
    let mut const_of = Vec::new();
    let mut kinds = Vec::with_capacity(n_t);
    for _ in 0..n_t {
        let name = r.str()?;
        let dtype = read_dtype(&mut r)?;
        let shape = r.sizes()?;
        let kind = r.u8()?;
        match kind {
            0 | 1 => {}
            2 => const_of.push((g.tensors.len(), r.size()?)),
            k => return Err(r.err(format!("unknown tensor kind {k}"))),
        }
        kinds.push(kind);
        let quant = match r.u8()? {
            0 => None,
            1 => {
                let n = r.count(4)?;
                let scale = (0..n).map(|_| r.f32()).collect::<Result<Vec<_>>>()?;
                let n = r.count(8)?;
                let zero_point = (0..n).map(|_| r.i64()).collect::<Result<Vec<_>>>()?;
                let n = r.count(4)?;
                let min = (0..n).map(|_| r.f32()).collect::<Result<Vec<_>>>()?;
                let n = r.count(4)?;
                let max = (0..n).map(|_| r.f32()).collect::<Result<Vec<_>>>()?;
                Some(QuantParams {
                    scale,
                    zero_point,
                    min,
                    max,
                    quantized_dimension: r.size()?,
                })
            }
            v => return Err(r.err(format!("quantization flag {v}"))),
        };
        if shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .and_then(|n| n.checked_mul(dtype.size()))
            .is_none()
        {
            return Err(r.err(format!("tensor '{name}' is impossibly large")));
        }
        g.add_tensor(Tensor {
            name,
            dtype,
            shape,
            data: None,
            quant,
        });
    }
    let ids = |r: &mut Reader<'_>| -> Result<Vec<TensorId>> {
        let v = r.sizes()?;
        if let Some(&bad) = v.iter().find(|&&t| t >= n_t) {
            return Err(r.err(format!("tensor index {bad} out of range")));
        }
        Ok(v.into_iter().map(TensorId).collect())
    };
    g.inputs = ids(&mut r)?;
    for &t in &g.inputs {
        if kinds[t.0] != 1 {
            return Err(r.err(format!("graph input {} is not marked as an input", t.0)));
        }
    }
    if kinds
        .iter()
        .enumerate()
        .any(|(i, &k)| k == 1 && !g.inputs.contains(&TensorId(i)))
    {
        return Err(r.err("a tensor marked as input is not a graph input"));
    }
    g.outputs = ids(&mut r)?;
    let n_nodes = r.count(12)?;
    let mut exec = Vec::with_capacity(n_nodes);
    for _ in 0..n_nodes {
        let name = r.str()?;
        let code = r.u16()?;
        let e = r.u8()?;
        let e = Exec::from_code(e).ok_or_else(|| r.err(format!("unknown execution kind {e}")))?;
        let inputs = ids(&mut r)?;
        let outputs = ids(&mut r)?;
        let len = r.size()?;
        let attrs = r.take(len)?;
        let mut ar = Reader::new(attrs, "program");
        let op = codec::read_op(&mut ar, code)?;
        ar.expect_end()?;
        g.nodes.push(Node {
            name,
            op,
            inputs,
            outputs,
        });
        exec.push(e);
    }
    r.expect_end()?;
    let mut consts = vec![usize::MAX; n_t];
    for (t, w) in const_of {
        consts[t] = w;
    }
    Ok((Program { graph: g, exec }, consts))
}

fn read_plan(buf: &[u8], n_tensors: usize) -> Result<MemoryPlan> {
    let mut r = Reader::new(buf, "memory plan");
    let arena = usize::try_from(r.u64()?).map_err(|_| r.err("arena too large"))?;
    let n = r.count(20)?;
    let mut place = vec![None; n_tensors];
    let mut last = None;
    for _ in 0..n {
        let t = r.size()?;
        let off = r.u64()?;
        let len = r.u64()?;
        if t >= n_tensors || last.is_some_and(|l| t <= l) {
            return Err(r.err(format!("tensor index {t} out of range or out of order")));
        }
        last = Some(t);
        let end = off.checked_add(len).filter(|&e| e <= arena as u64);
        if end.is_none() || off % ALIGN as u64 != 0 {
            return Err(r.err(format!(
                "tensor {t} at {off}+{len} is misaligned or outside the {arena}-byte arena"
            )));
        }
        place[t] = Some((off as usize, len as usize));
    }
    r.expect_end()?;
    Ok(MemoryPlan {
        arena_bytes: arena,
        place,
    })
}

fn read_weights(buf: &[u8], g: &mut Graph, consts: &[usize]) -> Result<u64> {
    let mut r = Reader::new(buf, "weights");
    let n = r.count(24)?;
    let mut entries = Vec::with_capacity(n);
    for _ in 0..n {
        let dtype = read_dtype(&mut r)?;
        r.take(7)?;
        let off = r.u64()?;
        let len = r.u64()?;
        entries.push((dtype, off, len));
    }
    let mut total = 0u64;
    let mut used = vec![false; n];
    for (t, &w) in consts.iter().enumerate() {
        if w == usize::MAX {
            continue;
        }
        let &(dtype, off, len) = entries
            .get(w)
            .ok_or_else(|| corrupt("weights", format!("constant {w} does not exist")))?;
        if std::mem::replace(&mut used[w], true) {
            return Err(corrupt("weights", format!("constant {w} is used twice")));
        }
        let tensor = &mut g.tensors[t];
        let bytes = usize::try_from(off)
            .ok()
            .zip(usize::try_from(len).ok())
            .and_then(|(o, l)| buf.get(o..o.checked_add(l)?))
            .ok_or_else(|| corrupt("weights", format!("constant {w} lies outside the section")))?;
        let expect = tensor.numel() * tensor.dtype.size();
        if dtype != tensor.dtype || bytes.len() != expect {
            return Err(corrupt(
                "weights",
                format!(
                    "constant '{}' is {dtype} of {} bytes, the program expects {} of {expect}",
                    tensor.name,
                    bytes.len(),
                    tensor.dtype
                ),
            ));
        }
        tensor.data = Some(
            TensorData::from_le_bytes(dtype, bytes)
                .ok_or_else(|| corrupt("weights", "bad constant bytes"))?,
        );
        total += len;
    }
    if used.iter().any(|u| !u) {
        return Err(corrupt("weights", "a constant is not used by the program"));
    }
    Ok(total)
}

fn read_metadata(buf: &[u8]) -> Result<Metadata> {
    let mut r = Reader::new(buf, "metadata");
    let text = |r: &mut Reader<'_>| -> Result<String> {
        let n = r.size()?;
        let b = r.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| r.err("text is not UTF-8"))
    };
    let producer = text(&mut r)?;
    let source = text(&mut r)?;
    let input_config = match r.u8()? {
        0 => None,
        1 => Some(text(&mut r)?),
        v => return Err(r.err(format!("config flag {v}"))),
    };
    r.expect_end()?;
    Ok(Metadata {
        producer,
        source,
        input_config,
    })
}

/// Parses and checks an image (`docs/offline-img.md` §7 lists the checks in order).
pub(crate) fn decode(bytes: &[u8]) -> Result<Image> {
    if bytes.len() < 8 || bytes[..8] != MAGIC {
        return Err(ImgError::NotRecognized(
            "not an ipukit offline image (bad magic)".into(),
        ));
    }
    let mut r = Reader::new(bytes, "header");
    r.take(8)?;
    let version = (r.u16()?, r.u16()?);
    if version.0 != VERSION_MAJOR {
        return Err(header(
            "Version check failed",
            format!(
                "format version {}.{}, this ipukit reads {VERSION_MAJOR}.x",
                version.0, version.1
            ),
        ));
    }
    let header_len = r.u32()? as usize;
    if header_len > bytes.len() || header_len < FIXED_HEADER + 4 {
        return Err(header(
            "Header size check failed",
            format!("header of {header_len} bytes in a file of {}", bytes.len()),
        ));
    }
    let mut r = Reader::new(&bytes[..header_len], "header");
    r.take(16)?;
    let soc_raw = r.take(SOC_NAME_LEN)?;
    let soc_end = soc_raw.iter().position(|&b| b == 0).unwrap_or(SOC_NAME_LEN);
    let soc = std::str::from_utf8(&soc_raw[..soc_end])
        .ok()
        .filter(|s| soc_raw[soc_end..].iter().all(|&b| b == 0) && !s.is_empty())
        .ok_or_else(|| header("SoC check failed", "SoC name is not NUL-padded text"))?
        .to_string();
    ipukit_soc::profile(&soc).map_err(|e| header("SoC check failed", e.to_string()))?;
    let mode = r.u8()?;
    let n_batch = r.u8()? as usize;
    let category = r.u8()?;
    let reserved = r.u8()?;
    let mut sizes = [0usize; MAX_BATCH_SIZES];
    for s in &mut sizes {
        *s = r.u32()? as usize;
    }
    let batch_mode = match mode {
        0 => BatchMode::NBuf,
        1 => BatchMode::OneBuf,
        m => return Err(header("Batch mode check failed", format!("batch mode {m}"))),
    };
    let listed = &sizes[..n_batch.min(MAX_BATCH_SIZES)];
    let batch_ok = (1..=MAX_BATCH_SIZES).contains(&n_batch)
        && (batch_mode == BatchMode::OneBuf || n_batch == 1)
        && listed.iter().all(|&s| s >= 1)
        && listed.windows(2).all(|w| w[0] < w[1])
        && sizes[n_batch.min(MAX_BATCH_SIZES)..]
            .iter()
            .all(|&s| s == 0);
    check(batch_ok, "Batch mode check failed".into(), || {
        format!("{} with batch sizes {:?}", batch_mode.as_str(), &sizes)
    })?;
    let category = match category {
        0 => Category::Unknown,
        1 => Category::Classification,
        2 => Category::Detection,
        c => return Err(header("Category check failed", format!("category {c}"))),
    };
    check(reserved == 0, "Reserved check failed".into(), || {
        format!("reserved byte {reserved}")
    })?;
    let n_in = r.u16()? as usize;
    let n_out = r.u16()? as usize;
    let arena_bytes = r.u64()?;
    let const_bytes = r.u64()?;
    let n_sections = r.u32()? as usize;
    let reserved = r.u32()?;
    check(reserved == 0, "Reserved check failed".into(), || {
        format!("reserved word {reserved}")
    })?;
    check(
        n_in >= 1 && n_out >= 1,
        "Input/Output count check failed".into(),
        || format!("{n_in} inputs, {n_out} outputs"),
    )?;
    check(
        n_sections == SECTIONS.len(),
        "Section count check failed".into(),
        || format!("{n_sections} sections, expected {}", SECTIONS.len()),
    )?;
    if (n_in + n_out) * DESC_BYTES > r.remaining() {
        return Err(header(
            "Header size check failed",
            "descriptors do not fit in the header",
        ));
    }
    let inputs = (0..n_in)
        .map(|i| read_desc(&mut r, true, i))
        .collect::<Result<Vec<_>>>()?;
    let outputs = (0..n_out)
        .map(|i| read_desc(&mut r, false, i))
        .collect::<Result<Vec<_>>>()?;
    let mut table = Vec::with_capacity(n_sections);
    for (kind, name) in SECTIONS {
        let k = r.u32()?;
        let flags = r.u32()?;
        let off = r.u64()?;
        let len = r.u64()?;
        let crc = r.u32()?;
        let res = r.u32()?;
        check(
            k == kind && flags == 0 && res == 0,
            "Section table check failed".into(),
            || format!("entry for the {name} section holds kind {k}, flags {flags}"),
        )?;
        table.push((name, off, len, crc));
    }
    let stored = r.u32()?;
    if r.remaining() != 0 {
        return Err(header(
            "Header size check failed",
            format!("{} bytes after the header CRC", r.remaining()),
        ));
    }
    let computed = crc32fast::hash(&bytes[..header_len - 4]);
    if stored != computed {
        return Err(ImgError::Crc {
            section: "header",
            stored,
            computed,
        });
    }
    // Sections: aligned, in order, inside the file, not overlapping.
    let mut end = header_len as u64;
    let mut payloads = Vec::with_capacity(SECTIONS.len());
    for &(name, off, len, crc) in &table {
        let ok = off % ALIGN as u64 == 0
            && off >= end
            && off
                .checked_add(len)
                .is_some_and(|e| e <= bytes.len() as u64);
        if !ok {
            return Err(corrupt(
                name,
                format!(
                    "section at {off}+{len} lies outside the {}-byte file or overlaps another",
                    bytes.len()
                ),
            ));
        }
        if bytes[end as usize..off as usize].iter().any(|&b| b != 0) {
            return Err(corrupt(name, "padding before the section is not zero"));
        }
        let s = &bytes[off as usize..(off + len) as usize];
        let computed = crc32fast::hash(s);
        if computed != crc {
            return Err(ImgError::Crc {
                section: name,
                stored: crc,
                computed,
            });
        }
        end = off + len;
        payloads.push(s);
    }
    if end != bytes.len() as u64 {
        return Err(corrupt(
            "metadata",
            format!("{} bytes after the last section", bytes.len() as u64 - end),
        ));
    }
    let (mut program, consts) = read_program(payloads[0])?;
    let plan = read_plan(payloads[1], program.graph.tensors.len())?;
    let weight_bytes = read_weights(payloads[2], &mut program.graph, &consts)?;
    let metadata = read_metadata(payloads[3])?;
    check(
        weight_bytes == const_bytes,
        "BufferSize1 Check Failed".into(),
        || format!("header says {const_bytes} constant bytes, the weights hold {weight_bytes}"),
    )?;
    check(
        plan.arena_bytes as u64 == arena_bytes,
        "BufferSize Check Failed".into(),
        || {
            format!(
                "header says a {arena_bytes}-byte arena, the memory plan {}",
                plan.arena_bytes
            )
        },
    )?;
    program.graph.validate()?;
    let header = Header {
        version,
        soc,
        batch_mode,
        batch_sizes: listed.to_vec(),
        category,
        inputs,
        outputs,
        arena_bytes,
        const_bytes,
    };
    check_descs(&header, &program)?;
    check_exec(&program)?;
    check_plan(&program, &plan)?;
    Ok(Image {
        header,
        program,
        plan,
        metadata,
    })
}

/// The descriptors against the program they describe.
fn check_descs(h: &Header, p: &Program) -> Result<()> {
    let g = &p.graph;
    for (is_input, descs, ids) in [
        (true, &h.inputs, &g.inputs),
        (false, &h.outputs, &g.outputs),
    ] {
        check(
            descs.len() == ids.len(),
            "Input/Output count check failed".into(),
            || {
                format!(
                    "header lists {} {}, the program has {}",
                    descs.len(),
                    if is_input { "inputs" } else { "outputs" },
                    ids.len()
                )
            },
        )?;
        for (i, (d, &t)) in descs.iter().zip(ids).enumerate() {
            let what = |c: &str| format!("{} {c} check failed", io_name(is_input, i));
            check(d.tensor == t.0, what("Tensor"), || {
                format!("descriptor names tensor {}, the program {}", d.tensor, t.0)
            })?;
            let tensor = g.tensor(t);
            check(d.name == tensor.name, what("Name"), || {
                format!("'{}' vs '{}' in the program", d.name, tensor.name)
            })?;
            check(d.dtype == tensor.dtype, what("Element format"), || {
                format!("{} vs {} in the program", d.dtype, tensor.dtype)
            })?;
            check(d.shape == tensor.shape, what("Shape"), || {
                format!("{:?} vs {:?} in the program", d.shape, tensor.shape)
            })?;
            let expect = expected_flags(g, t, is_input);
            check(d.ext_flags == expect, what("ExtFlag"), || {
                format!("{:#x}, the program needs {expect:#x}", d.ext_flags)
            })?;
            let (scale, zp) = quant_of(tensor, expect);
            check(d.scale.to_bits() == scale.to_bits(), what("Scalar"), || {
                format!("{} vs {scale} in the program", d.scale)
            })?;
            check(d.zero_point == zp, what("ZPoint"), || {
                format!("{} vs {zp} in the program", d.zero_point)
            })?;
        }
    }
    Ok(())
}

/// Scale and zero point a descriptor carries for `t`.
pub(crate) fn quant_of(t: &Tensor, flags: u32) -> (f32, i32) {
    if flags & EXT_QUANT == 0 {
        return (0.0, 0);
    }
    let q = t.quant.as_ref();
    (
        q.and_then(|q| q.scale.first().copied()).unwrap_or(0.0),
        q.and_then(|q| q.zero_point.first().copied())
            .and_then(|z| i32::try_from(z).ok())
            .unwrap_or(0),
    )
}

/// The extension flags the program implies for a model input or output.
pub(crate) fn expected_flags(g: &Graph, t: TensorId, is_input: bool) -> u32 {
    let tensor = g.tensor(t);
    let mut f = 0;
    let has_quant = tensor
        .quant
        .as_ref()
        .is_some_and(|q| q.scale.first().is_some_and(|&s| s.is_finite() && s > 0.0));
    if tensor.dtype != DType::F32 && has_quant {
        f |= EXT_QUANT;
    }
    if is_input {
        for n in g.nodes.iter().filter(|n| n.inputs.first() == Some(&t)) {
            match &n.op {
                ipukit_ir::Op::InputNormalize(a) => {
                    f |= EXT_IMAGE;
                    f &= !EXT_QUANT;
                    if matches!(a.image, ipukit_ir::ops::ImageInput::Nv12 { .. }) {
                        f |= EXT_NV12;
                    }
                }
                ipukit_ir::Op::Quantize(_) => f |= EXT_FLOAT_QUANTIZED,
                _ => {}
            }
        }
    } else if g
        .nodes
        .iter()
        .any(|n| n.outputs.contains(&t) && matches!(n.op, ipukit_ir::Op::Dequantize(_)))
    {
        f |= EXT_DEQUANTIZED;
    }
    f
}

/// Execution kinds: aliases copy nothing, chains hold table-able operators in a row.
fn check_exec(p: &Program) -> Result<()> {
    let g = &p.graph;
    let bad = |n: &Node, why: &str| corrupt("program", format!("node '{}': {why}", n.name));
    let outputs: std::collections::HashSet<TensorId> = g.outputs.iter().copied().collect();
    let mut readers = vec![0usize; g.tensors.len()];
    for n in &g.nodes {
        for &t in &n.inputs {
            readers[t.0] += 1;
        }
    }
    if g.nodes.len() != p.exec.len() {
        return Err(corrupt("program", "one execution kind per node expected"));
    }
    for (i, (n, e)) in g.nodes.iter().zip(&p.exec).enumerate() {
        match e {
            Exec::Kernel => {
                if n.outputs.iter().any(|&o| g.tensor(o).dtype == DType::Bool) {
                    return Err(bad(n, "BOOL tensors are not supported in offline images"));
                }
            }
            Exec::Alias => {
                let ok = matches!(n.op, ipukit_ir::Op::Reshape(_) | ipukit_ir::Op::Identity)
                    && n.inputs.len() == 1
                    && !g.tensor(n.inputs[0]).is_const()
                    && g.tensor(n.inputs[0]).dtype == g.tensor(n.outputs[0]).dtype;
                if !ok {
                    return Err(bad(
                        n,
                        "only a Reshape or Identity of an activation aliases",
                    ));
                }
            }
            Exec::TableHead | Exec::TableLink => {
                let x = g.tensor(n.inputs[0]);
                let ok = crate::program::tableable(&n.op)
                    && n.inputs.len() == 1
                    && n.outputs.len() == 1
                    && crate::program::table_index_type(x.dtype)
                    && g.tensor(n.outputs[0]).dtype != DType::Bool;
                if !ok {
                    return Err(bad(n, "cannot run as a table"));
                }
                if *e == Exec::TableLink {
                    let prev = i
                        .checked_sub(1)
                        .and_then(|j| g.nodes.get(j).map(|pn| (j, pn)));
                    let linked = prev.is_some_and(|(j, pn)| {
                        matches!(p.exec[j], Exec::TableHead | Exec::TableLink)
                            && pn.outputs.first() == n.inputs.first()
                            && readers[n.inputs[0].0] == 1
                            && !outputs.contains(&n.inputs[0])
                    });
                    if !linked {
                        return Err(bad(n, "a table link must follow the chain it extends"));
                    }
                }
            }
        }
    }
    Ok(())
}

/// The memory plan against the lifetimes the program implies.
fn check_plan(p: &Program, plan: &MemoryPlan) -> Result<()> {
    let g = &p.graph;
    let live = liveness(p);
    let bad = |m: String| corrupt("memory plan", m);
    let mut group_place: Vec<Option<(usize, usize)>> = vec![None; live.groups.len()];
    for (t, gr) in live.group.iter().enumerate() {
        let placed = plan.place[t];
        let Some(gr) = *gr else {
            if placed.is_some() {
                return Err(bad(format!(
                    "tensor '{}' is not an arena tensor",
                    g.tensors[t].name
                )));
            }
            continue;
        };
        let Some((off, len)) = placed else {
            return Err(bad(format!(
                "tensor '{}' has no place in the arena",
                g.tensors[t].name
            )));
        };
        if len != tensor_bytes(g, TensorId(t)) {
            return Err(bad(format!(
                "tensor '{}' has {len} bytes, needs {}",
                g.tensors[t].name,
                tensor_bytes(g, TensorId(t))
            )));
        }
        match group_place[gr] {
            None => group_place[gr] = Some((off, live.groups[gr].2)),
            Some((o, _)) if o == off => {}
            Some(_) => {
                return Err(bad(format!(
                    "alias '{}' does not share its input's memory",
                    g.tensors[t].name
                )))
            }
        }
    }
    let mut spans: Vec<(usize, usize, usize, usize)> = Vec::new();
    for (gr, pl) in group_place.iter().enumerate() {
        let Some((off, len)) = *pl else { continue };
        if off.checked_add(len).is_none_or(|e| e > plan.arena_bytes) {
            return Err(bad(format!("buffer {gr} exceeds the arena")));
        }
        spans.push((off, off + len, live.groups[gr].0, live.groups[gr].1));
    }
    spans.sort_unstable();
    for (i, a) in spans.iter().enumerate() {
        for b in &spans[i + 1..] {
            if b.0 >= a.1 {
                break;
            }
            if a.1 > a.0 && b.1 > b.0 && overlaps_in_time((a.2, a.3), (b.2, b.3)) {
                return Err(bad(format!(
                    "buffers at {}..{} and {}..{} are live at the same time",
                    a.0, a.1, b.0, b.1
                )));
            }
        }
    }
    Ok(())
}
