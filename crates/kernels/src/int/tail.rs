//! Element-wise tails of a layer: operators that follow a convolution and read only its output
//! (a change of type, a PReLU block, a fixed-point SiLU), run on each chunk of output rows
//! while it is still in cache instead of as passes over the whole tensor.
//!
//! Every operator runs the same kernel it runs alone ([`qrescale_isa`], [`qbinary_isa`],
//! [`PackedQLut`]) on a tile of whole rows, so a layer with a tail gives exactly the integers
//! of the layer followed by each operator.

use super::binary::qbinary_isa;
use super::conv::LayerInput;
use super::isa::Isa;
use super::lut::PackedQLut;
use super::prelu::Prelu;
use super::rescale::qrescale_isa;
use crate::error::{invalid, KernelError, Result};
use crate::AlignedVec;
use ipukit_ir::ops::fixed::{QBinary, QRescale};
use ipukit_ir::DType;
use std::sync::{Arc, Mutex};

/// Elements of one tile: whole rows, few enough that the element-wise kernels run it on the
/// calling thread (below their threshold for splitting work).
const TILE_ELEMS: usize = 8192;

/// An operand of a tail operator.
#[derive(Debug, Clone, PartialEq)]
pub enum TailOperand {
    /// Value `i` of the tail: 0 is the layer's output, `i > 0` the output of operator `i − 1`.
    Value(usize),
    /// A constant INT16 tensor of one element or one element per channel (the last axis).
    Const(Vec<i16>),
}

/// One element-wise operator of a tail.
#[derive(Debug, Clone)]
pub enum TailOp {
    /// `QRescale` of a value (INT16 or UINT8 in, its `out_dtype` out).
    Rescale(usize, QRescale),
    /// An expanded `QLut` on an INT16 value.
    Lut(usize, Arc<PackedQLut>),
    /// `QBinary` `Mul(x, T(x))` of an INT16 value `x` and the table `T`, in one pass.
    LutMul(usize, Arc<PackedQLut>, QBinary),
    /// `QBinary` on two INT16 operands.
    Binary(QBinary, TailOperand, TailOperand),
    /// A table from every INT16 input (entry `x + 32768`) to UINT8, e.g. a chain of
    /// operators tabulated by [`Tail::tabulate_suffix`].
    Table8(usize, Arc<[u8]>),
    /// A PReLU block of an INT16 value in one pass (see [`Tail::fuse_prelu`]).
    Prelu(usize, Arc<Prelu>),
}

impl TailOp {
    /// The output type.
    fn out_dtype(&self) -> DType {
        match self {
            TailOp::Rescale(_, r) => r.out_dtype,
            TailOp::Table8(..) => DType::U8,
            _ => DType::I16,
        }
    }

    /// The value the operator reads when it reads one value and its parameters are the same
    /// for every channel (so that it is a function of the element alone).
    fn scalar_input(&self) -> Option<usize> {
        match self {
            TailOp::Rescale(v, r) => (r.positive.len() == 1 && r.negative.len() == 1).then_some(*v),
            TailOp::Lut(v, _) | TailOp::LutMul(v, ..) | TailOp::Table8(v, _) => Some(*v),
            TailOp::Prelu(..) => None,
            TailOp::Binary(_, TailOperand::Value(v), TailOperand::Const(k))
            | TailOp::Binary(_, TailOperand::Const(k), TailOperand::Value(v)) => {
                (k.len() == 1).then_some(*v)
            }
            TailOp::Binary(..) => None,
        }
    }

    /// The operator reading value `v` instead of the one it reads (for operators with a
    /// [`TailOp::scalar_input`]).
    fn reading(&self, v: usize) -> TailOp {
        self.renumbered(&|_| v)
    }

    /// The operator with every value `x` it reads replaced by `f(x)`.
    fn renumbered(&self, f: &dyn Fn(usize) -> usize) -> TailOp {
        let mut op = self.clone();
        match &mut op {
            TailOp::Rescale(x, _)
            | TailOp::Lut(x, _)
            | TailOp::LutMul(x, ..)
            | TailOp::Table8(x, _)
            | TailOp::Prelu(x, _) => *x = f(*x),
            TailOp::Binary(_, a, b) => {
                for o in [a, b] {
                    if let TailOperand::Value(x) = o {
                        *x = f(*x);
                    }
                }
            }
        }
        op
    }

    /// The values the operator reads.
    fn reads(&self) -> Vec<usize> {
        match self {
            TailOp::Rescale(v, _)
            | TailOp::Lut(v, _)
            | TailOp::LutMul(v, ..)
            | TailOp::Table8(v, _)
            | TailOp::Prelu(v, _) => vec![*v],
            TailOp::Binary(_, a, b) => [a, b]
                .into_iter()
                .filter_map(|o| match o {
                    TailOperand::Value(v) => Some(*v),
                    TailOperand::Const(_) => None,
                })
                .collect(),
        }
    }
}

/// A tile of one value.
enum Tile {
    I16(Vec<i16>),
    U8(Vec<u8>),
}

impl Tile {
    fn new(dtype: DType, len: usize) -> Tile {
        match dtype {
            DType::U8 => Tile::U8(vec![0; len]),
            _ => Tile::I16(vec![0; len]),
        }
    }
}

/// A read-only view of a value's tile.
#[derive(Clone, Copy)]
enum TileRef<'a> {
    I16(&'a [i16]),
    U8(&'a [u8]),
}

/// The output of one operator on a tile.
enum TileMut<'a> {
    I16(&'a mut [i16]),
    U8(&'a mut [u8]),
}

impl<'a> TileMut<'a> {
    fn of<O: LayerInput>(x: &'a mut [O]) -> TileMut<'a> {
        match O::as_i16_mut(x) {
            Ok(v) => TileMut::I16(v),
            Err(x) => TileMut::U8(O::as_u8_mut(x).unwrap_or_default()),
        }
    }
}

fn tile_ref<L: LayerInput>(x: &[L]) -> TileRef<'_> {
    match L::as_i16(x) {
        Some(v) => TileRef::I16(v),
        None => TileRef::U8(L::as_u8(x).unwrap_or_default()),
    }
}

/// The element-wise operators after a layer, checked for the layer's output type and channel
/// count. The tail's result is the last operator's output.
#[derive(Debug, Clone)]
pub struct Tail {
    ops: Vec<TailOp>,
    /// Type of every value (the layer's output first).
    dtypes: Vec<DType>,
    channels: usize,
}

impl Tail {
    /// Checks `ops` after a layer whose output has type `layer_out` and `channels` channels
    /// on its last axis: each operator reads earlier values of the types its kernel takes,
    /// constants have one element or one per channel, and each kernel accepts its parameters.
    pub fn new(layer_out: DType, channels: usize, ops: Vec<TailOp>) -> Result<Tail> {
        const OP: &str = "layer tail";
        if ops.is_empty() {
            return Err(invalid(OP, "no operators"));
        }
        if !matches!(layer_out, DType::I16 | DType::U8) {
            return Err(invalid(OP, format!("{layer_out} layer output")));
        }
        let mut dtypes = vec![layer_out];
        for (i, op) in ops.iter().enumerate() {
            for v in op.reads() {
                let Some(&dt) = dtypes.get(v) else {
                    return Err(invalid(
                        OP,
                        format!("operator {i} reads value {v}, not yet computed"),
                    ));
                };
                if dt != DType::I16 && !matches!(op, TailOp::Rescale(..)) {
                    return Err(invalid(
                        OP,
                        format!("operator {i} needs an INT16 input, got {dt}"),
                    ));
                }
            }
            if let TailOp::Table8(_, t) = op {
                if t.len() != 65536 {
                    return Err(invalid(
                        OP,
                        format!("operator {i}: a table of {} entries", t.len()),
                    ));
                }
            }
            if let TailOp::Binary(_, a, b) = op {
                for c in [a, b] {
                    if let TailOperand::Const(v) = c {
                        if v.len() != 1 && v.len() != channels {
                            return Err(invalid(
                                OP,
                                format!(
                                    "operator {i}: a constant of {} elements for {channels} channels",
                                    v.len()
                                ),
                            ));
                        }
                    }
                }
            }
            dtypes.push(op.out_dtype());
            if !matches!(op.out_dtype(), DType::I16 | DType::U8) {
                return Err(invalid(
                    OP,
                    format!("operator {i} outputs {}", op.out_dtype()),
                ));
            }
        }
        let tail = Tail {
            ops,
            dtypes,
            channels,
        };
        // Every kernel checks its parameters when it runs: once here, on one row of zeros.
        let mut scratch = TailScratch::default();
        match layer_out {
            DType::U8 => tail.run_tile(Isa::Scalar, &vec![0u8; channels], &mut scratch, None)?,
            _ => tail.run_tile(Isa::Scalar, &vec![0i16; channels], &mut scratch, None)?,
        }
        Ok(tail)
    }

    /// The output type.
    pub fn out_dtype(&self) -> DType {
        self.dtypes[self.dtypes.len() - 1]
    }

    /// Channels (elements per row).
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// The operators.
    pub fn ops(&self) -> &[TailOp] {
        &self.ops
    }

    /// The tail with TFLite's PReLU block — `Rescale_P(v)`, `Rescale_N(v)`, `Mul` of the
    /// latter with a per-channel constant, `Add` of the two (operands in either order) — as
    /// one operator that runs each element through the four in registers
    /// ([`TailOp::Prelu`]; the integers do not change). `None` when there is no such block
    /// whose intermediate values only the block reads.
    pub fn fuse_prelu(&self) -> Option<Tail> {
        let ops = &self.ops;
        let c = self.channels;
        let reads_of = |v: usize| ops.iter().filter(|op| op.reads().contains(&v)).count();
        (0..ops.len().saturating_sub(3)).find_map(|k| {
            let (TailOp::Rescale(v, p), TailOp::Rescale(w, n)) = (&ops[k], &ops[k + 1]) else {
                return None;
            };
            let TailOp::Binary(mul, a, b) = &ops[k + 2] else {
                return None;
            };
            let slope = match (a, b) {
                (TailOperand::Value(x), TailOperand::Const(s))
                | (TailOperand::Const(s), TailOperand::Value(x))
                    if *x == k + 2 =>
                {
                    s
                }
                _ => return None,
            };
            let TailOp::Binary(add, l, r) = &ops[k + 3] else {
                return None;
            };
            let swapped = match (l, r) {
                (TailOperand::Value(x), TailOperand::Value(y)) if (*x, *y) == (k + 1, k + 3) => {
                    false
                }
                (TailOperand::Value(x), TailOperand::Value(y)) if (*x, *y) == (k + 3, k + 1) => {
                    true
                }
                _ => return None,
            };
            let private = (k + 1..=k + 3).all(|x| reads_of(x) == 1);
            if v != w || self.dtypes[*v] != DType::I16 || !private {
                return None;
            }
            let block = Prelu::new(c, p, n, mul, slope, add, swapped)?;
            // Values k+1..=k+3 disappear; the block's output k+4 becomes k+1.
            let renumber = |x: usize| if x <= k { x } else { x - 3 };
            let mut fused: Vec<TailOp> = ops[..k].to_vec();
            fused.push(TailOp::Prelu(*v, Arc::new(block)));
            fused.extend(ops[k + 4..].iter().map(|op| op.renumbered(&renumber)));
            Tail::new(self.dtypes[0], c, fused).ok()
        })
    }

    /// The tail with its last operators replaced by one table lookup, when at least two of
    /// them form a chain on an INT16 value (each reads only the one before, with the same
    /// parameters for every channel) ending in INT16 or UINT8: the table holds the chain's
    /// result for every INT16 input, computed by running the chain's own kernels on all
    /// 65,536 values, so the integers do not change. `None` when there is no such chain.
    pub fn tabulate_suffix(&self) -> Result<Option<Tail>> {
        let n = self.ops.len();
        // The chain ops[k0..]: op k reads value k (its predecessor's output).
        let mut k0 = n;
        while k0 > 0 && self.ops[k0 - 1].scalar_input() == Some(k0 - 1) {
            k0 -= 1;
        }
        if n - k0 < 2 || self.dtypes[k0] != DType::I16 {
            return Ok(None);
        }
        let chain: Vec<TailOp> = self.ops[k0..]
            .iter()
            .enumerate()
            .map(|(t, op)| op.reading(t))
            .collect();
        let sub = Tail::new(DType::I16, 1, chain)?;
        let all: Vec<i16> = (i16::MIN..=i16::MAX).collect();
        let mut scratch = TailScratch::default();
        let table = match sub.out_dtype() {
            DType::U8 => {
                let mut t = vec![0u8; all.len()];
                sub.run_rows(Isa::detect(), &all, &mut t, &mut scratch)?;
                TailOp::Table8(k0, t.into())
            }
            _ => {
                let mut t = vec![0i16; all.len()];
                sub.run_rows(Isa::detect(), &all, &mut t, &mut scratch)?;
                TailOp::Lut(k0, Arc::new(PackedQLut::from_outputs(t)?))
            }
        };
        let mut ops = self.ops[..k0].to_vec();
        ops.push(table);
        Tail::new(self.dtypes[0], self.channels, ops).map(Some)
    }

    /// Runs the tail on whole rows of the layer's output `x` into `out` (same length), tile
    /// by tile on the calling thread; `scratch` holds the intermediate tiles between calls.
    pub(crate) fn run_rows<L: LayerInput, O: LayerInput>(
        &self,
        isa: Isa,
        x: &[L],
        out: &mut [O],
        scratch: &mut TailScratch,
    ) -> Result<()> {
        if L::DTYPE != self.dtypes[0] || O::DTYPE != self.out_dtype() || x.len() != out.len() {
            return Err(invalid(
                "layer tail",
                format!(
                    "{} → {} tail on {} → {} buffers of {} and {} elements",
                    self.dtypes[0],
                    self.out_dtype(),
                    L::DTYPE,
                    O::DTYPE,
                    x.len(),
                    out.len()
                ),
            ));
        }
        let c = self.channels.max(1);
        let step = (TILE_ELEMS / c).max(1) * c;
        for (xs, os) in x.chunks(step).zip(out.chunks_mut(step)) {
            self.run_tile(isa, xs, scratch, Some(TileMut::of(os)))?;
        }
        Ok(())
    }

    /// Runs every operator on one tile of whole rows; the last writes into `out` (or into
    /// scratch when `None`, to check parameters).
    fn run_tile<L: LayerInput>(
        &self,
        isa: Isa,
        x: &[L],
        scratch: &mut TailScratch,
        mut out: Option<TileMut<'_>>,
    ) -> Result<()> {
        let n = x.len();
        let rows = n / self.channels.max(1);
        let tiles = &mut scratch.tiles;
        for (i, op) in self.ops.iter().enumerate() {
            let into_out = i + 1 == self.ops.len() && out.is_some();
            if !into_out {
                // Intermediate tile i, of the operator's type and this tile's length.
                if tiles.len() <= i {
                    tiles.push(Tile::new(op.out_dtype(), n));
                }
                let fits = match &tiles[i] {
                    Tile::I16(t) => op.out_dtype() == DType::I16 && t.len() >= n,
                    Tile::U8(t) => op.out_dtype() == DType::U8 && t.len() >= n,
                };
                if !fits {
                    tiles[i] = Tile::new(op.out_dtype(), n);
                }
            }
            let k = i.min(tiles.len());
            let (done, rest) = tiles.split_at_mut(k);
            let values: Vec<TileRef<'_>> = std::iter::once(tile_ref(x))
                .chain(done.iter().map(|t| match t {
                    Tile::I16(t) => TileRef::I16(&t[..n]),
                    Tile::U8(t) => TileRef::U8(&t[..n]),
                }))
                .collect();
            let dst = if into_out {
                match out.take() {
                    Some(o) => o,
                    None => return Err(invalid("layer tail", "no output")),
                }
            } else {
                match &mut rest[0] {
                    Tile::I16(t) => TileMut::I16(&mut t[..n]),
                    Tile::U8(t) => TileMut::U8(&mut t[..n]),
                }
            };
            self.run_op(isa, op, &values, rows, dst)?;
        }
        Ok(())
    }

    fn run_op(
        &self,
        isa: Isa,
        op: &TailOp,
        values: &[TileRef<'_>],
        rows: usize,
        dst: TileMut<'_>,
    ) -> Result<()> {
        let shape = [rows, self.channels];
        match op {
            TailOp::Rescale(v, r) => match (value(values, *v)?, dst) {
                (TileRef::I16(x), TileMut::I16(o)) => qrescale_isa(isa, r, x, &shape, o),
                (TileRef::I16(x), TileMut::U8(o)) => qrescale_isa(isa, r, x, &shape, o),
                (TileRef::U8(x), TileMut::I16(o)) => qrescale_isa(isa, r, x, &shape, o),
                (TileRef::U8(x), TileMut::U8(o)) => qrescale_isa(isa, r, x, &shape, o),
            },
            TailOp::Lut(v, t) => t.run(value_i16(values, *v)?, out_i16(dst)?),
            TailOp::LutMul(v, t, a) => t.run_mul(a, value_i16(values, *v)?, out_i16(dst)?),
            TailOp::Prelu(v, p) => p.run(isa, value_i16(values, *v)?, out_i16(dst)?),
            TailOp::Table8(v, t) => {
                let x = value_i16(values, *v)?;
                let TileMut::U8(o) = dst else {
                    return Err(invalid("layer tail", "UINT8 table into INT16"));
                };
                let t = &t[..65536];
                for (d, &e) in o.iter_mut().zip(x) {
                    *d = t[(e as i32 + 32768) as usize];
                }
                Ok(())
            }
            TailOp::Binary(a, x, y) => {
                let (xa, sa) = operand(values, x, &shape)?;
                let (xb, sb) = operand(values, y, &shape)?;
                qbinary_isa(isa, a, xa, &sa, xb, &sb, out_i16(dst)?)
            }
        }
    }
}

fn value<'a>(values: &[TileRef<'a>], v: usize) -> Result<TileRef<'a>> {
    values
        .get(v)
        .copied()
        .ok_or_else(|| invalid("layer tail", format!("value {v} is not computed")))
}

fn value_i16<'a>(values: &[TileRef<'a>], v: usize) -> Result<&'a [i16]> {
    match value(values, v)? {
        TileRef::I16(t) => Ok(t),
        TileRef::U8(_) => Err(invalid("layer tail", "UINT8 value where INT16 is needed")),
    }
}

fn out_i16(d: TileMut<'_>) -> Result<&mut [i16]> {
    match d {
        TileMut::I16(t) => Ok(t),
        TileMut::U8(_) => Err(invalid("layer tail", "INT16 output into UINT8")),
    }
}

/// An operand's data and shape on a tile of `shape`.
fn operand<'a>(
    values: &[TileRef<'a>],
    o: &'a TailOperand,
    shape: &[usize; 2],
) -> Result<(&'a [i16], Vec<usize>)> {
    match o {
        TailOperand::Value(v) => Ok((value_i16(values, *v)?, shape.to_vec())),
        TailOperand::Const(k) => Ok((k.as_slice(), vec![k.len()])),
    }
}

/// Intermediate tiles of a [`Tail`], and the chunk of the layer's output it reads, kept by a
/// thread between tiles and between layers (in its spare GEMM buffers).
#[derive(Default)]
pub(crate) struct TailScratch {
    tiles: Vec<Tile>,
    /// Backing store of the layer's output chunk, in words so that any element type fits.
    layer: AlignedVec<u64>,
    /// Backing store of a pooled chunk (a convolution's max pool, before the tail).
    pooled: AlignedVec<u64>,
}

/// `v` grown to hold `n` elements of `M`.
fn grown<M: bytemuck::Pod>(mut v: AlignedVec<u64>, n: usize) -> AlignedVec<u64> {
    let words = (n * size_of::<M>()).div_ceil(8);
    if v.len() < words {
        v.resize(words, 0);
    }
    v
}

impl TailScratch {
    /// Takes the layer-output store out (give it back with [`TailScratch::restore_layer`]),
    /// grown to hold `n` elements of `M`; its contents are unspecified.
    pub(crate) fn take_layer<M: bytemuck::Pod>(&mut self, n: usize) -> AlignedVec<u64> {
        grown::<M>(std::mem::take(&mut self.layer), n)
    }

    /// Keeps the layer-output store for the next chunk or layer.
    pub(crate) fn restore_layer(&mut self, v: AlignedVec<u64>) {
        self.layer = v;
    }

    /// Takes the pooled-chunk store out (give it back with [`TailScratch::restore_pooled`]),
    /// grown to hold `n` elements of `M`; its contents are unspecified.
    pub(crate) fn take_pooled<M: bytemuck::Pod>(&mut self, n: usize) -> AlignedVec<u64> {
        grown::<M>(std::mem::take(&mut self.pooled), n)
    }

    /// Keeps the pooled-chunk store for the next chunk or layer.
    pub(crate) fn restore_pooled(&mut self, v: AlignedVec<u64>) {
        self.pooled = v;
    }
}

/// A tail applied to rows of a layer's output (`M`) into the final output (`O`).
pub(crate) type TailFn<'a, M, O> =
    dyn Fn(&[M], &mut [O], &mut TailScratch) -> Result<()> + Sync + 'a;

/// Checks that `tail` follows a layer of `channels` channels and writes `out` elements.
pub(crate) fn check_tail_fits(
    op: &'static str,
    tail: &Tail,
    channels: usize,
    out: DType,
) -> Result<()> {
    if tail.channels() != channels {
        return Err(invalid(
            op,
            format!("a tail for {} channels after {channels}", tail.channels()),
        ));
    }
    if tail.out_dtype() != out {
        return Err(invalid(
            op,
            format!("a tail to {} written into {out}", tail.out_dtype()),
        ));
    }
    Ok(())
}

/// Adds the channels of `rows` (whole pixels of `channels` values, channels innermost) into
/// `sums`: a chunk's own sums first, then one short lock. Integer sums, so the order the
/// chunks arrive in does not change the result.
pub(crate) fn add_channel_sums<O: super::arith::QInt>(
    rows: &[O],
    channels: usize,
    sums: &Mutex<Vec<i64>>,
) {
    let mut own = vec![0i64; channels];
    for pixel in rows.chunks_exact(channels.max(1)) {
        for (s, &v) in own.iter_mut().zip(pixel) {
            *s += v.into() as i64;
        }
    }
    if let Ok(mut total) = sums.lock() {
        for (t, s) in total.iter_mut().zip(&own) {
            *t += s;
        }
    }
}

/// The first error of parallel tasks.
#[derive(Default)]
pub(crate) struct FirstError(Mutex<Option<KernelError>>);

impl FirstError {
    pub(crate) fn keep(&self, r: Result<()>) {
        if let Err(e) = r {
            if let Ok(mut g) = self.0.lock() {
                g.get_or_insert(e);
            }
        }
    }

    pub(crate) fn into_result(self) -> Result<()> {
        match self.0.into_inner() {
            Ok(Some(e)) => Err(e),
            _ => Ok(()),
        }
    }
}
