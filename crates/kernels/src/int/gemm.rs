//! Integer GEMM with prepacked weights: the micro-kernels of the convolutions, the
//! fully-connected layer and the matrix product.
//!
//! `C[M, N] = A[M, K] · B[K, N]`, where the rows of `A` are receptive fields (im2col) or input
//! rows, and `B` holds the weights, packed once in panels of `NR` output channels. An output
//! tile is `MR` rows × `NR` channels. Three packing schemes exist, chosen from the layer's mode
//! and the instruction set:
//!
//! * [`Scheme::Quad`] — 8-bit mode with AVX-512 VNNI. `A` rows are the raw UINT8 inputs
//!   (padding holds `z_in`), `K` rounded up to 4; `B` is `[K/4][NR][4]` INT8, and one
//!   `vpdpbusd` adds four u8 × i8 products per lane. The tile holds `Σ w·x` modulo 2³²; the
//!   epilogue subtracts `z_in · Σ w` (also modulo 2³²), which gives the exact `Σ w·(x − z_in)`
//!   because that sum fits INT32 (checked at packing, see [`check_int32_bound`]).
//! * [`Scheme::Pair8`] — 8-bit mode otherwise. `A` rows are `x − z_in` as INT16 (padding 0),
//!   `K` rounded up to 2; `B` is `[K/2][NR][2]` INT16 and `vpmaddwd` adds two products per
//!   lane. Products are at most `255 · 128` in magnitude, so the pair sums are exact and the
//!   INT32 tile is the exact `Σ w·(x − z_in)`.
//! * [`Scheme::Split16`] — 16-bit mode. Each INT16 weight is split as `w = 256·h + l` with
//!   `l = w & 255 ∈ [0, 255]` and `h = w >> 8 ∈ [−128, 127]`, packed as two `[K/2][NR][2]`
//!   INT16 panels. With `|x| ≤ 32768`:
//!   `|x·l| ≤ 32768 · 255`, so a `vpmaddwd` pair sum is at most 16,711,680 < 2²⁴, and 128 of
//!   them at most 2,139,095,040 < 2³¹; `|x·h| ≤ 2²²`, pair sums ≤ 2²³, 128 of them ≤ 2³⁰.
//!   The INT32 accumulators therefore never overflow over a chunk of [`KC16`] = 256 values of
//!   `K` (128 pair steps); after each chunk they are widened into the INT64 tile as
//!   `acc += 256·H + L`. The result is the exact INT64 `Σ w·x` for any INT16 operands,
//!   −32768 included.
//! * [`Scheme::Bytes16`] — 16-bit mode on AMX-INT8 ([`Isa::Amx`]): both operands split into
//!   bytes, four tile products per 16 × 16 block, INT32 chunks widened to INT64 (the bound is
//!   in [`super::amx`]). `A` rows are INT16 as for Split16; each chunk of rows is split into
//!   byte tiles once and every panel (`NR` = 16, `[K/64][16][16][4]` bytes per half) sweeps it.
//! * [`Scheme::Tile8`] — 8-bit mode on AMX-INT8 ([`Isa::Amx`]): as Quad (raw UINT8 `A` rows,
//!   INT32 sums modulo 2³², the same `z_in · Σ w` correction and bound check), one `tdpbusd`
//!   per 16 × 16 block and 64 values of `K` (see [`amx::block8`]). `B` is the Quad layout
//!   with `NR` = 16 and `K` padded to 64 (`[K/64][16][16][4]` per panel, one tile per block);
//!   each chunk of rows is copied once into 64-byte-aligned rows that the panels sweep, two
//!   row blocks × two panels per tile pass. Fewer than [`TILE8_MIN_ROWS`] rows run the
//!   VNNI Quad kernel on the same packed panels.
//!
//! Each scheme has a portable kernel (the reference) and x86-64 kernels: AVX2 (`NR` = 8 or 16,
//! `MR` = 6), AVX-512BW and AVX-512 VNNI (`NR` = 16 or 32, `MR` = 12). Partial tiles repeat the
//! last row of `A`; the extra results are dropped.

use super::amx::{self, KB, TILE};
use super::arith::QInt;
use super::epilogue::ChannelRequant;
use super::isa::Isa;
use crate::error::{invalid, Result};
use crate::AlignedVec;

/// `K` values per INT32 accumulation chunk in [`Scheme::Split16`] (see the module docs for
/// the bound).
pub(crate) const KC16: usize = 256;

/// Which multiply kernel and weight layout a layer uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    /// u8 × i8 with `vpdpbusd`; `A` is raw UINT8.
    Quad,
    /// 8-bit mode on `vpmaddwd` (or portable); `A` is `x − z_in` as INT16.
    Pair8,
    /// 16-bit mode, split weights, INT64 results; `A` is INT16.
    Split16,
    /// 16-bit mode on AMX tiles, both operands split into bytes, INT64 results; `A` is INT16.
    Bytes16,
    /// 8-bit mode on AMX tiles (`tdpbusd`), as Quad otherwise; `A` is raw UINT8.
    Tile8,
}

/// Precision mode of a quantized layer (`docs/fixed-point.md` §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// UINT8 input, INT8 weights, INT32 bias.
    Bits8,
    /// INT16 input and weights, INT64 bias.
    Bits16,
}

impl Scheme {
    pub(crate) fn for_mode(mode: Mode, isa: Isa) -> Scheme {
        match (mode, isa) {
            (Mode::Bits16, Isa::Amx) => Scheme::Bytes16,
            (Mode::Bits16, _) => Scheme::Split16,
            (Mode::Bits8, Isa::Amx) => Scheme::Tile8,
            (Mode::Bits8, Isa::Avx512Vnni) => Scheme::Quad,
            (Mode::Bits8, _) => Scheme::Pair8,
        }
    }

    /// `K` is padded to a multiple of this.
    pub(crate) fn k_align(self) -> usize {
        match self {
            Scheme::Quad => 4,
            Scheme::Tile8 => KB,
            Scheme::Pair8 | Scheme::Split16 | Scheme::Bytes16 => 2,
        }
    }

    /// True when `A` rows are raw UINT8 and the INT32 sums need the `z_in · Σ w` correction.
    pub(crate) fn raw_u8(self) -> bool {
        matches!(self, Scheme::Quad | Scheme::Tile8)
    }
}

/// Below this many rows, [`Scheme::Tile8`] runs the VNNI Quad kernel (a tile pass costs the
/// same for 1 row as for 16).
pub(crate) const TILE8_MIN_ROWS: usize = 16;

/// Checks the INT32 accumulator bound of 8-bit mode for output channel weights `w` (one
/// receptive field): `Σ |w| · max(z_in, 255 − z_in) ≤ 2³¹ − 1`. It holds for every receptive
/// field of at most 66,311 elements with `|w| ≤ 127` (`docs/fixed-point.md` §3); it is what
/// makes the INT32 sum `Σ w·(x − z_in)` exact, and wrapping INT32 arithmetic (`vpdpbusd`,
/// `vpaddd`) then gives it exactly whatever the order of the additions.
pub(crate) fn check_int32_bound(
    op: &'static str,
    channel: usize,
    w: impl Iterator<Item = i32>,
    zin: i32,
) -> Result<()> {
    let span = zin.max(255 - zin) as i64;
    let sum: i64 = w.map(|v| v.unsigned_abs() as i64).sum();
    if sum * span > i32::MAX as i64 {
        return Err(invalid(
            op,
            format!(
                "output channel {channel}: Σ|w| · max(z_in, 255 − z_in) = {} exceeds the INT32 \
                 accumulator of 8-bit mode (receptive field too large: use 16-bit mode)",
                sum * span
            ),
        ));
    }
    Ok(())
}

/// Weights packed for one [`Scheme`].
#[derive(Debug, Clone)]
pub(crate) struct PackedB {
    pub isa: Isa,
    pub scheme: Scheme,
    /// Length of an `A` row (K rounded up to the scheme's alignment).
    pub kpad: usize,
    /// Output channels.
    pub n: usize,
    /// Panel width.
    pub nr: usize,
    /// Tile height.
    pub mr: usize,
    /// Quad panels `[panel][K/4][NR][4]`; Tile8 panels `[panel][K/64][16][16][4]`.
    b8: AlignedVec<i8>,
    /// Pair8 panels, or the low halves of Split16, `[panel][K/2][NR][2]`.
    lo: AlignedVec<i16>,
    /// High halves of Split16.
    hi: AlignedVec<i16>,
    /// Bytes16 high bytes `w >> 8`, `[panel][K/64][16][16][4]`.
    bh: AlignedVec<i8>,
    /// Bytes16 low bytes `w & 255`, same layout.
    bl: AlignedVec<u8>,
}

/// Largest tile: `MR_MAX` rows × `NR_MAX` channels.
pub(crate) const MR_MAX: usize = 16;
/// Widest panel.
pub(crate) const NR_MAX: usize = 32;

impl PackedB {
    /// Packs `n` output channels of `k` weights, `w(j, k)` being weight `k` of channel `j`.
    pub(crate) fn pack(
        isa: Isa,
        mode: Mode,
        n: usize,
        k: usize,
        w: impl Fn(usize, usize) -> i32,
    ) -> PackedB {
        let isa = isa.clamp();
        let scheme = Scheme::for_mode(mode, isa);
        let (lanes, mr) = match isa {
            Isa::Scalar => (8, 4),
            Isa::Avx2 => (8, 6),
            Isa::Avx512Bw | Isa::Avx512Vnni | Isa::Amx => (16, 12),
        };
        let mut nr = if n <= lanes { lanes } else { 2 * lanes };
        // The fused 16-bit kernels hold two accumulators (low and high weight halves) per
        // output vector: fewer rows (AVX-512) or one vector per row (AVX2, 16 registers).
        let mr = match (scheme, isa) {
            (Scheme::Split16, Isa::Avx2) => {
                nr = lanes;
                mr
            }
            (Scheme::Split16, Isa::Avx512Bw | Isa::Avx512Vnni) if nr == 2 * lanes => 6,
            (Scheme::Bytes16 | Scheme::Tile8, _) => {
                nr = 16;
                16
            }
            _ => mr,
        };
        let kpad = k.next_multiple_of(scheme.k_align());
        let panels = n.div_ceil(nr);
        let mut p = PackedB {
            isa,
            scheme,
            kpad,
            n,
            nr,
            mr,
            b8: AlignedVec::new(),
            lo: AlignedVec::new(),
            hi: AlignedVec::new(),
            bh: AlignedVec::new(),
            bl: AlignedVec::new(),
        };
        let size = panels * kpad * nr;
        match scheme {
            Scheme::Quad => {
                p.b8 = AlignedVec::zeroed(size);
                for j in 0..n {
                    let (pn, jj) = (j / nr, j % nr);
                    let dst = &mut p.b8[pn * kpad * nr..];
                    for kk in 0..k {
                        dst[((kk / 4) * nr + jj) * 4 + kk % 4] = w(j, kk) as i8;
                    }
                }
            }
            Scheme::Tile8 => {
                let nkb = kpad.div_ceil(KB);
                p.b8 = AlignedVec::zeroed(panels * nkb * TILE);
                for j in 0..n {
                    let (pn, jj) = (j / 16, j % 16);
                    for kk in 0..k {
                        let at = pn * nkb * TILE + (kk / 4) * 64 + jj * 4 + kk % 4;
                        p.b8[at] = w(j, kk) as i8;
                    }
                }
            }
            Scheme::Bytes16 => {
                let nkb = kpad.div_ceil(KB);
                let size = panels * nkb * TILE;
                p.bh = AlignedVec::zeroed(size);
                p.bl = AlignedVec::zeroed(size);
                for j in 0..n {
                    let (pn, jj) = (j / 16, j % 16);
                    for kk in 0..k {
                        let at = (pn * nkb + kk / KB) * TILE + (kk % KB / 4) * 64 + jj * 4 + kk % 4;
                        let v = w(j, kk);
                        p.bh[at] = (v >> 8) as i8;
                        p.bl[at] = (v & 255) as u8;
                    }
                }
            }
            Scheme::Pair8 | Scheme::Split16 => {
                p.lo = AlignedVec::zeroed(size);
                if scheme == Scheme::Split16 {
                    p.hi = AlignedVec::zeroed(size);
                }
                for j in 0..n {
                    let (pn, jj) = (j / nr, j % nr);
                    for kk in 0..k {
                        let at = pn * kpad * nr + ((kk / 2) * nr + jj) * 2 + kk % 2;
                        let v = w(j, kk);
                        if scheme == Scheme::Split16 {
                            p.lo[at] = (v & 255) as i16;
                            p.hi[at] = (v >> 8) as i16;
                        } else {
                            p.lo[at] = v as i16;
                        }
                    }
                }
            }
        }
        p
    }

    /// Number of panels.
    pub(crate) fn panels(&self) -> usize {
        self.n.div_ceil(self.nr)
    }

    fn panel_i16<'a>(&self, v: &'a [i16], p: usize) -> &'a [i16] {
        let len = self.kpad * self.nr;
        &v[p * len..(p + 1) * len]
    }

    /// The weights of Tile8 panels `p..` (`ldb` = `kblocks() · TILE` bytes per panel).
    fn panels_tile8(&self, p: usize) -> &[i8] {
        &self.b8[p * self.kblocks() * TILE..]
    }

    /// Blocks of [`KB`] values of `K` (Bytes16, Tile8).
    fn kblocks(&self) -> usize {
        self.kpad.div_ceil(KB)
    }

    /// The high and low weight bytes of Bytes16 panel `p`.
    fn panel_bytes(&self, p: usize) -> (&[i8], &[u8]) {
        let len = self.kblocks() * TILE;
        (
            &self.bh[p * len..(p + 1) * len],
            &self.bl[p * len..(p + 1) * len],
        )
    }
}

/// Tile buffers of one task; the tiles first, on cache lines (their sizes are multiples of 64
/// bytes).
#[repr(C, align(64))]
pub(crate) struct TileBuf {
    pub t32: [i32; MR_MAX * NR_MAX],
    pub t64: [i64; MR_MAX * NR_MAX],
    hi: [i32; MR_MAX * NR_MAX],
    /// Bytes16: the four INT32 byte-product tiles of one block.
    acc4: [i32; 4 * 256],
    /// Bytes16: the `A` rows of a call split into byte tiles (see [`split_rows`]).
    abytes: AlignedVec<u8>,
    /// A task's im2col matrix, by element type (see [`AElem::scratch`]).
    scratch_u8: AlignedVec<u8>,
    scratch_i16: AlignedVec<i16>,
    /// A convolution's element-wise tail: its layer-output chunk and intermediate tiles.
    pub tail: super::tail::TailScratch,
}

thread_local! {
    /// The buffers of the last task that ran on this thread, so that a layer neither allocates
    /// nor zeroes them again. A `Cell` taken and refilled: a task that starts while another
    /// holds them on the same thread (rayon work stealing) gets new ones.
    static SPARE_BUF: std::cell::Cell<Option<Box<TileBuf>>> = const { std::cell::Cell::new(None) };
}

impl TileBuf {
    pub(crate) fn new() -> Box<TileBuf> {
        Box::new(TileBuf {
            t32: [0; MR_MAX * NR_MAX],
            t64: [0; MR_MAX * NR_MAX],
            hi: [0; MR_MAX * NR_MAX],
            acc4: [0; 4 * 256],
            abytes: AlignedVec::new(),
            scratch_u8: AlignedVec::new(),
            scratch_i16: AlignedVec::new(),
            tail: Default::default(),
        })
    }

    /// This thread's spare buffers, or new ones; hand them back with [`TileBuf::recycle`].
    /// Their contents are unspecified: every kernel writes what it reads.
    pub(crate) fn take() -> Box<TileBuf> {
        SPARE_BUF.with(|s| s.take()).unwrap_or_else(TileBuf::new)
    }

    /// Keeps `buf` as this thread's spare.
    pub(crate) fn recycle(buf: Box<TileBuf>) {
        SPARE_BUF.with(|s| s.set(Some(buf)));
    }
}

/// Element types of `A` rows: `u8` ([`Scheme::Quad`]) or `i16` (the others).
pub(crate) trait AElem: bytemuck::Pod + Default + Send + Sync {
    /// Computes the tile of panel `p` for `b.mr` rows (each at least `b.kpad` long) into
    /// `buf.t32` (Quad, Pair8) or `buf.t64` (Split16, Bytes16), row-major with `b.nr` columns.
    fn tile(b: &PackedB, p: usize, rows: &[&[Self]], buf: &mut TileBuf);

    /// The rows as INT16 rows, if they are.
    fn as_i16<'a>(rows: &'a [&'a [Self]]) -> Option<&'a [&'a [i16]]>;

    /// The rows as UINT8 rows, if they are.
    fn as_u8<'a>(rows: &'a [&'a [Self]]) -> Option<&'a [&'a [u8]]>;

    /// The im2col matrix of this element type kept in `buf`.
    fn scratch(buf: &mut TileBuf) -> &mut AlignedVec<Self>;
}

fn check_tile<T>(b: &PackedB, rows: &[&[T]]) {
    assert_eq!(rows.len(), b.mr, "int gemm: row count");
    assert!(
        rows.iter().all(|r| r.len() >= b.kpad),
        "int gemm: short row"
    );
    assert!(b.mr <= MR_MAX && b.nr <= NR_MAX, "int gemm: tile size");
}

impl AElem for u8 {
    fn tile(b: &PackedB, p: usize, rows: &[&[u8]], buf: &mut TileBuf) {
        check_tile(b, rows);
        if b.scheme == Scheme::Tile8 && b.kpad == 0 {
            buf.t32[..256].fill(0);
            return;
        }
        if b.scheme == Scheme::Tile8 {
            copy_rows_u8(rows, b.kpad, &mut buf.abytes);
            let a: Vec<&[u8]> = buf.abytes.chunks_exact(b.kpad.max(1)).take(16).collect();
            let tiles = amx::Tiles::load();
            amx::block8::<1, 1>(
                &tiles,
                &a,
                b.kpad,
                b.panels_tile8(p),
                b.kblocks() * TILE,
                b.kblocks(),
                &mut buf.acc4,
            );
            buf.t32[..256].copy_from_slice(&buf.acc4[..256]);
            return;
        }
        assert_eq!(
            b.scheme,
            Scheme::Quad,
            "int gemm: u8 rows need the Quad or Tile8 scheme"
        );
        let len = b.kpad * b.nr;
        let w = &b.b8[p * len..(p + 1) * len];
        #[cfg(target_arch = "x86_64")]
        if b.isa >= Isa::Avx512Vnni {
            let mut a = [std::ptr::null::<u8>(); MR_MAX];
            for (d, r) in a.iter_mut().zip(rows) {
                *d = r.as_ptr();
            }
            let steps = b.kpad / 4;
            // SAFETY: Quad packing happens only when `isa` (clamped at packing) is
            // Avx512Vnni, so the CPU has avx512f/bw/vnni; `check_tile` guarantees MR_MAX ≥ mr
            // rows of at least kpad = 4·steps bytes, `w` holds steps·nr·4 bytes, and `t32`
            // holds MR_MAX·NR_MAX ≥ mr·nr values.
            unsafe {
                match (b.mr, b.nr) {
                    (12, 32) => {
                        x86::quad_vnni::<12, 2>(&a, w.as_ptr(), steps, buf.t32.as_mut_ptr())
                    }
                    (12, 16) => {
                        x86::quad_vnni::<12, 1>(&a, w.as_ptr(), steps, buf.t32.as_mut_ptr())
                    }
                    _ => unreachable!("int gemm: Quad tile {}x{}", b.mr, b.nr),
                }
            }
            return;
        }
        quad_portable(rows, w, b.nr, b.kpad / 4, &mut buf.t32);
    }

    fn as_i16<'a>(_: &'a [&'a [u8]]) -> Option<&'a [&'a [i16]]> {
        None
    }

    fn as_u8<'a>(rows: &'a [&'a [u8]]) -> Option<&'a [&'a [u8]]> {
        Some(rows)
    }

    fn scratch(buf: &mut TileBuf) -> &mut AlignedVec<u8> {
        &mut buf.scratch_u8
    }
}

impl AElem for i16 {
    fn tile(b: &PackedB, p: usize, rows: &[&[i16]], buf: &mut TileBuf) {
        check_tile(b, rows);
        match b.scheme {
            Scheme::Pair8 => {
                let w = b.panel_i16(&b.lo, p);
                pair_tile(b, rows, 0, b.kpad, w, &mut buf.t32);
            }
            Scheme::Split16 => {
                let lo = b.panel_i16(&b.lo, p);
                let hi = b.panel_i16(&b.hi, p);
                #[cfg(target_arch = "x86_64")]
                if b.isa >= Isa::Avx2 {
                    let mut a = [std::ptr::null::<i16>(); MR_MAX];
                    for (d, r) in a.iter_mut().zip(rows) {
                        *d = r.as_ptr();
                    }
                    let (l, h, o) = (lo.as_ptr(), hi.as_ptr(), buf.t64.as_mut_ptr());
                    let steps = b.kpad / 2;
                    // SAFETY: `isa` was clamped to the CPU at packing; `check_tile` guarantees
                    // mr ≤ MR_MAX rows of at least kpad = 2·steps values; both panels hold
                    // steps·nr·2 values; `t64` holds MR_MAX·NR_MAX ≥ mr·nr values.
                    unsafe {
                        match (b.isa, b.mr, b.nr) {
                            (Isa::Avx512Vnni, 6, 32) => x86::split_vnni::<6, 2>(&a, l, h, steps, o),
                            (Isa::Avx512Vnni, 12, 16) => {
                                x86::split_vnni::<12, 1>(&a, l, h, steps, o)
                            }
                            (Isa::Avx512Bw, 6, 32) => x86::split_512::<6, 2>(&a, l, h, steps, o),
                            (Isa::Avx512Bw, 12, 16) => x86::split_512::<12, 1>(&a, l, h, steps, o),
                            (Isa::Avx2, 6, 8) => x86::split_avx2::<6>(&a, l, h, steps, o),
                            _ => unreachable!("int gemm: split tile {:?} {}x{}", b.isa, b.mr, b.nr),
                        }
                    }
                    return;
                }
                let n = b.mr * b.nr;
                buf.t64[..n].fill(0);
                let mut k0 = 0;
                while k0 < b.kpad {
                    let k1 = (k0 + KC16).min(b.kpad);
                    pair_tile(b, rows, k0, k1, lo, &mut buf.t32);
                    pair_tile(b, rows, k0, k1, hi, &mut buf.hi);
                    for ((d, &l), &h) in buf.t64[..n].iter_mut().zip(&buf.t32).zip(&buf.hi) {
                        *d += ((h as i64) << 8) + l as i64;
                    }
                    k0 = k1;
                }
            }
            Scheme::Bytes16 => {
                split_rows(b.isa, rows, b.kpad, b.kblocks(), &mut buf.abytes);
                let tiles = amx::Tiles::load();
                bytes_block(b, p, &tiles, 0, buf);
            }
            Scheme::Quad | Scheme::Tile8 => {
                unreachable!("int gemm: i16 rows with a UINT8 scheme")
            }
        }
    }

    fn as_i16<'a>(rows: &'a [&'a [i16]]) -> Option<&'a [&'a [i16]]> {
        Some(rows)
    }

    fn as_u8<'a>(_: &'a [&'a [i16]]) -> Option<&'a [&'a [u8]]> {
        None
    }

    fn scratch(buf: &mut TileBuf) -> &mut AlignedVec<i16> {
        &mut buf.scratch_i16
    }
}

/// Copies the rows (each at least `kpad` long) as Bytes16 `A` tiles into `dst`: for each
/// block of 16 rows, `nkb` tiles of high bytes `x >> 8` then `nkb` tiles of low bytes
/// `x & 255`, each `[16 rows][64 values of K]`. Rows past the last and values past `kpad`
/// keep whatever `dst` held: their products with the packed weights are dropped or 0.
fn split_rows(isa: Isa, rows: &[&[i16]], kpad: usize, nkb: usize, dst: &mut AlignedVec<u8>) {
    let blocks = rows.len().div_ceil(16);
    let block = 2 * nkb * TILE;
    dst.resize_unspecified(blocks * block);
    if block == 0 {
        return;
    }
    for (rb, d) in dst.chunks_exact_mut(block).enumerate() {
        let (hi, lo) = d.split_at_mut(nkb * TILE);
        for (i, r) in rows[rb * 16..rows.len().min(rb * 16 + 16)]
            .iter()
            .enumerate()
        {
            split_row(isa, &r[..kpad], hi, lo, i * 64);
        }
    }
}

#[inline(always)]
fn split_row_body(r: &[i16], hi: &mut [u8], lo: &mut [u8], at: usize) {
    for (kb, src) in r.chunks(KB).enumerate() {
        let o = kb * TILE + at;
        for ((h, l), &v) in hi[o..o + src.len()]
            .iter_mut()
            .zip(&mut lo[o..o + src.len()])
            .zip(src)
        {
            *h = (v >> 8) as u8;
            *l = v as u8;
        }
    }
}

super::isa::multiversion!(
    /// One row of [`split_rows`]: values of block `kb` go to `kb·TILE + at`.
    fn split_row = split_row_body(r: &[i16], hi: &mut [u8], lo: &mut [u8], at: usize)
);

/// Computes the Bytes16 block of panel `p` and the 16 `A` rows of `buf.abytes` starting at
/// row block `rb` into `buf.t64` (16 × 16, row-major).
fn bytes_block(b: &PackedB, p: usize, tiles: &amx::Tiles, rb: usize, buf: &mut TileBuf) {
    let nkb = b.kblocks();
    let (wh, wl) = b.panel_bytes(p);
    let a = &buf.abytes[rb * 2 * nkb * TILE..(rb + 1) * 2 * nkb * TILE];
    let t64 = &mut buf.t64[..256];
    if nkb == 0 {
        // K = 0: empty sums.
        t64.fill(0);
        return;
    }
    let mut kb0 = 0;
    while kb0 < nkb {
        let kb1 = (kb0 + amx::KB_CHUNK).min(nkb);
        let n = kb1 - kb0;
        // Sub-slices of the chunk: `a` holds nkb high tiles then nkb low tiles.
        let mut ab = Vec::new();
        let a_chunk: &[u8] = if n == nkb {
            a
        } else {
            ab.extend_from_slice(&a[kb0 * TILE..kb1 * TILE]);
            ab.extend_from_slice(&a[(nkb + kb0) * TILE..(nkb + kb1) * TILE]);
            &ab
        };
        amx::block(
            tiles,
            a_chunk,
            &wh[kb0 * TILE..kb1 * TILE],
            &wl[kb0 * TILE..kb1 * TILE],
            n,
            &mut buf.acc4,
        );
        combine(b.isa, &buf.acc4, t64, kb0 == 0);
        kb0 = kb1;
    }
}

#[inline(always)]
fn combine_body(acc: &[i32; 4 * 256], t64: &mut [i64], first: bool) {
    let (hh, rest) = acc.split_at(256);
    let (hl, rest) = rest.split_at(256);
    let (lh, ll) = rest.split_at(256);
    for (i, d) in t64[..256].iter_mut().enumerate() {
        let v = ((hh[i] as i64) << 16) + ((hl[i] as i64 + lh[i] as i64) << 8) + ll[i] as i64;
        *d = if first { v } else { *d + v };
    }
}

super::isa::multiversion!(
    /// `t64 (=|+=) 65536·HH + 256·(HL + LH) + LL` over the 256 values of a Bytes16 block.
    fn combine = combine_body(acc: &[i32; 4 * 256], t64: &mut [i64], first: bool)
);

/// [`gemm_rows`] for [`Scheme::Bytes16`]: splits the rows into byte tiles once, then every
/// panel sweeps them 16 rows at a time.
#[allow(clippy::too_many_arguments)]
fn gemm_rows_bytes<O: QInt>(
    b: &PackedB,
    rq: &ChannelRequant,
    rows: &[&[i16]],
    out: &mut [O],
    ldc: usize,
    col0: usize,
    buf: &mut TileBuf,
) {
    let m = rows.len();
    split_rows(b.isa, rows, b.kpad, b.kblocks(), &mut buf.abytes);
    let tiles = amx::Tiles::load();
    for p in 0..b.panels() {
        let c0 = p * 16;
        let cols = 16.min(b.n - c0);
        for rb in 0..m.div_ceil(16) {
            bytes_block(b, p, &tiles, rb, buf);
            let rows = 16.min(m - rb * 16);
            let dst = &mut out[rb * 16 * ldc + col0 + c0..];
            rq.block_i64(b.isa, c0, &buf.t64[..256], 16, rows, cols, dst, ldc);
        }
    }
}

/// Copies the rows (each at least `kpad` long) into `dst` at a stride of `kpad` bytes, which
/// holds whole blocks of 16 rows; rows past the last keep whatever `dst` held (initialized
/// bytes whose results are dropped).
fn copy_rows_u8(rows: &[&[u8]], kpad: usize, dst: &mut AlignedVec<u8>) {
    let len = rows.len().div_ceil(16) * 16 * kpad;
    if dst.len() < len {
        dst.resize(len, 0);
    }
    if kpad > 0 {
        for (d, r) in dst.chunks_exact_mut(kpad).zip(rows) {
            d.copy_from_slice(&r[..kpad]);
        }
    }
}

/// [`gemm_rows`] for [`Scheme::Tile8`]: copies the rows once, then sweeps them with pairs of
/// panels, two blocks of 16 rows at a time; fewer than [`TILE8_MIN_ROWS`] rows run the VNNI
/// Quad kernel instead.
#[allow(clippy::too_many_arguments)]
fn gemm_rows_tile8<O: QInt>(
    b: &PackedB,
    rq: &ChannelRequant,
    rows: &[&[u8]],
    out: &mut [O],
    ldc: usize,
    col0: usize,
    buf: &mut TileBuf,
) {
    let m = rows.len();
    let nkb = b.kblocks();
    let ldb = nkb * TILE;
    #[cfg(target_arch = "x86_64")]
    if m < TILE8_MIN_ROWS || nkb == 0 {
        let mut a = [std::ptr::null::<u8>(); MR_MAX];
        for p in 0..b.panels() {
            let c0 = p * 16;
            let cols = 16.min(b.n - c0);
            let w = &b.panels_tile8(p)[..ldb];
            for r in (0..m).step_by(12) {
                for (i, d) in a[..12].iter_mut().enumerate() {
                    *d = rows[(r + i).min(m - 1)].as_ptr();
                }
                // SAFETY: Tile8 packing happens only when `isa` (clamped at packing) is Amx,
                // which includes avx512f/bw/vnni; `gemm_rows` checked every row holds at
                // least kpad = 4·steps bytes; the panel `w` holds nkb·1,024 ≥ steps·64 bytes
                // in the Quad layout with NR = 16; `t32` holds MR_MAX·NR_MAX ≥ 12·16 values.
                unsafe {
                    x86::quad_vnni::<12, 1>(&a, w.as_ptr(), b.kpad / 4, buf.t32.as_mut_ptr())
                };
                for i in 0..12.min(m - r) {
                    let dst = &mut out[(r + i) * ldc + col0 + c0..][..cols];
                    rq.row_i32(b.isa, c0, &buf.t32[i * 16..i * 16 + cols], dst);
                }
            }
        }
        return;
    }
    // Rows already consecutive at stride kpad (im2col scratch, or a pointwise input with
    // cin = kpad) are loaded in place, but for a last partial block of 16; others are copied.
    let lda = b.kpad;
    let base = rows[0].as_ptr();
    let in_place = rows
        .iter()
        .enumerate()
        .all(|(i, r)| r.as_ptr() == base.wrapping_add(i * lda));
    let full = if in_place { m / 16 * 16 } else { 0 };
    copy_rows_u8(&rows[full..], lda, &mut buf.abytes);
    let mut a: Vec<&[u8]> = rows[..full].to_vec();
    a.extend(
        buf.abytes
            .chunks_exact(lda.max(1))
            .take((m - full).div_ceil(16) * 16),
    );
    let tiles = amx::Tiles::load();
    let rblocks = m.div_ceil(16);
    let mut p = 0;
    while p < b.panels() {
        let np = 2.min(b.panels() - p);
        let w = b.panels_tile8(p);
        let mut rb = 0;
        while rb < rblocks {
            // Two blocks only from the same source (in place, or the copy).
            let both = rb + 2 <= full / 16 || (rb * 16 >= full && rb + 2 <= rblocks);
            let nr = if both { 2 } else { 1 };
            let a = &a[rb * 16..(rb + nr) * 16];
            match (nr, np) {
                (2, 2) => amx::block8::<2, 2>(&tiles, a, lda, w, ldb, nkb, &mut buf.acc4),
                (2, _) => amx::block8::<2, 1>(&tiles, a, lda, w, ldb, nkb, &mut buf.acc4),
                (_, 2) => amx::block8::<1, 2>(&tiles, a, lda, w, ldb, nkb, &mut buf.acc4),
                _ => amx::block8::<1, 1>(&tiles, a, lda, w, ldb, nkb, &mut buf.acc4),
            }
            for r in 0..nr {
                for q in 0..np {
                    let c0 = (p + q) * 16;
                    let cols = 16.min(b.n - c0);
                    let acc = &buf.acc4[(2 * r + q) * 256..(2 * r + q + 1) * 256];
                    let rows = 16.min(m - (rb + r) * 16);
                    let dst = &mut out[(rb + r) * 16 * ldc + col0 + c0..];
                    rq.block_i32(b.isa, c0, acc, 16, rows, cols, dst, ldc);
                }
            }
            rb += nr;
        }
        p += np;
    }
}

/// Pair kernel over `A` columns `k0..k1` (even) into `out` (`mr × nr` INT32).
fn pair_tile(b: &PackedB, rows: &[&[i16]], k0: usize, k1: usize, w: &[i16], out: &mut [i32]) {
    let steps = (k1 - k0) / 2;
    let w = &w[k0 * b.nr..k1 * b.nr];
    #[cfg(target_arch = "x86_64")]
    if b.isa >= Isa::Avx2 {
        let mut a = [std::ptr::null::<i16>(); MR_MAX];
        for (d, r) in a.iter_mut().zip(rows) {
            *d = r[k0..].as_ptr();
        }
        let (w, o) = (w.as_ptr(), out.as_mut_ptr());
        // SAFETY: `isa` was clamped to the CPU at packing, so the features each kernel
        // enables are present; every row has at least kpad ≥ k1 elements (`check_tile`), so
        // the kernel's reads of 2·steps values from `r[k0..]` are in bounds; `w` holds
        // steps·nr·2 values; `out` holds MR_MAX·NR_MAX ≥ mr·nr values.
        unsafe {
            match (b.isa, b.mr, b.nr) {
                (Isa::Avx512Vnni, 12, 32) => x86::pair_vnni::<12, 2>(&a, w, steps, o),
                (Isa::Avx512Vnni, 12, 16) => x86::pair_vnni::<12, 1>(&a, w, steps, o),
                (Isa::Avx512Bw, 12, 32) => x86::pair_512::<12, 2>(&a, w, steps, o),
                (Isa::Avx512Bw, 12, 16) => x86::pair_512::<12, 1>(&a, w, steps, o),
                (Isa::Avx2, 6, 16) => x86::pair_avx2::<6, 2>(&a, w, steps, o),
                (Isa::Avx2, 6, 8) => x86::pair_avx2::<6, 1>(&a, w, steps, o),
                _ => unreachable!("int gemm: pair tile {:?} {}x{}", b.isa, b.mr, b.nr),
            }
        }
        return;
    }
    let rows: Vec<&[i16]> = rows.iter().map(|r| &r[k0..k1]).collect();
    pair_portable(&rows, w, b.nr, steps, out);
}

/// Portable pair kernel: `out[i][j] = Σ_s a_i[2s]·w[s][j][0] + a_i[2s+1]·w[s][j][1]` with
/// the pair sums and the accumulation in wrapping INT32, as `vpmaddwd` + `vpaddd` compute it.
fn pair_portable(rows: &[&[i16]], w: &[i16], nr: usize, steps: usize, out: &mut [i32]) {
    for (i, r) in rows.iter().enumerate() {
        let o = &mut out[i * nr..(i + 1) * nr];
        o.fill(0);
        for s in 0..steps {
            let (a0, a1) = (r[2 * s] as i32, r[2 * s + 1] as i32);
            let ws = &w[s * nr * 2..(s + 1) * nr * 2];
            for (d, p) in o.iter_mut().zip(ws.chunks_exact(2)) {
                let pair = (a0 * p[0] as i32).wrapping_add(a1 * p[1] as i32);
                *d = d.wrapping_add(pair);
            }
        }
    }
}

/// Portable quad kernel (`vpdpbusd` semantics: u8 × i8, wrapping INT32 accumulation).
fn quad_portable(rows: &[&[u8]], w: &[i8], nr: usize, steps: usize, out: &mut [i32]) {
    for (i, r) in rows.iter().enumerate() {
        let o = &mut out[i * nr..(i + 1) * nr];
        o.fill(0);
        for s in 0..steps {
            let a = &r[4 * s..4 * s + 4];
            let ws = &w[s * nr * 4..(s + 1) * nr * 4];
            for (d, q) in o.iter_mut().zip(ws.chunks_exact(4)) {
                let mut sum = 0i32;
                for t in 0..4 {
                    sum += a[t] as i32 * q[t] as i32;
                }
                *d = d.wrapping_add(sum);
            }
        }
    }
}

/// Computes `out[i·ldc + col0 + j] = epilogue(Σ_k rows[i][k] · B[k][j])` for every row of
/// `rows` and every channel of `b`, requantized by `rq`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_rows<T: AElem, O: QInt>(
    b: &PackedB,
    rq: &ChannelRequant,
    rows: &[&[T]],
    out: &mut [O],
    ldc: usize,
    col0: usize,
    buf: &mut TileBuf,
) {
    let m = rows.len();
    if m == 0 {
        return;
    }
    if b.scheme == Scheme::Bytes16 {
        // Bytes16 is 16-bit mode, whose `A` rows are INT16 (the layers map their input so).
        let Some(rows) = T::as_i16(rows) else {
            unreachable!("int gemm: Bytes16 with UINT8 rows")
        };
        return gemm_rows_bytes(b, rq, rows, out, ldc, col0, buf);
    }
    if b.scheme == Scheme::Tile8 {
        // Tile8 is 8-bit mode with raw UINT8 rows (the layers map their input so).
        let Some(rows) = T::as_u8(rows) else {
            unreachable!("int gemm: Tile8 with INT16 rows")
        };
        assert!(
            rows.iter().all(|r| r.len() >= b.kpad),
            "int gemm: short row"
        );
        return gemm_rows_tile8(b, rq, rows, out, ldc, col0, buf);
    }
    let (mr, nr) = (b.mr, b.nr);
    let mut block: [&[T]; MR_MAX] = [rows[0]; MR_MAX];
    for p in 0..b.panels() {
        let c0 = p * nr;
        let cols = nr.min(b.n - c0);
        let mut r = 0;
        while r < m {
            let valid = mr.min(m - r);
            for (i, d) in block[..mr].iter_mut().enumerate() {
                *d = rows[(r + i).min(m - 1)];
            }
            T::tile(b, p, &block[..mr], buf);
            let dst = &mut out[r * ldc + col0 + c0..];
            match b.scheme {
                Scheme::Split16 | Scheme::Bytes16 => {
                    rq.block_i64(b.isa, c0, &buf.t64[..], nr, valid, cols, dst, ldc)
                }
                _ => rq.block_i32(b.isa, c0, &buf.t32[..], nr, valid, cols, dst, ldc),
            }
            r += mr;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::MR_MAX;
    use std::arch::x86_64::*;

    /// VNNI u8 × i8 tile: `MR` rows × `NV`·16 channels.
    ///
    /// # Safety
    ///
    /// The CPU supports avx512f, avx512bw and avx512vnni; `a[..MR]` point to at least
    /// `4 · steps` readable bytes, `w` to `steps · NV · 64` bytes, `out` to `MR · NV · 16`
    /// writable `i32`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn quad_vnni<const MR: usize, const NV: usize>(
        a: &[*const u8; MR_MAX],
        w: *const i8,
        steps: usize,
        out: *mut i32,
    ) {
        // SAFETY (whole body): the bounds above; every access is an unaligned load or store.
        unsafe {
            let mut acc = [[_mm512_setzero_si512(); NV]; MR];
            let mut wp = w;
            for s in 0..steps {
                let mut wv = [_mm512_setzero_si512(); NV];
                for (v, d) in wv.iter_mut().enumerate() {
                    *d = _mm512_loadu_si512(wp.add(v * 64).cast());
                }
                wp = wp.add(NV * 64);
                for i in 0..MR {
                    let x = _mm512_set1_epi32(a[i].add(4 * s).cast::<i32>().read_unaligned());
                    for v in 0..NV {
                        acc[i][v] = _mm512_dpbusd_epi32(acc[i][v], x, wv[v]);
                    }
                }
            }
            for (i, row) in acc.iter().enumerate() {
                for (v, r) in row.iter().enumerate() {
                    _mm512_storeu_si512(out.add((i * NV + v) * 16).cast(), *r);
                }
            }
        }
    }

    macro_rules! pair_kernel {
        ($(#[$m:meta])* $name:ident, $feat:literal, $vec:ty, $lanes:literal, $zero:ident, $load:ident,
         $store:ident, $set1:ident, |$acc:ident, $x:ident, $w:ident| $step:expr) => {
            $(#[$m])*
            ///
            /// # Safety
            ///
            /// The CPU supports the enabled features; `a[..MR]` point to at least `2 · steps`
            /// readable `i16`, `w` to `steps · NV · LANES · 2` `i16`, `out` to
            /// `MR · NV · LANES` writable `i32`.
            #[target_feature(enable = $feat)]
            pub(super) unsafe fn $name<const MR: usize, const NV: usize>(
                a: &[*const i16; MR_MAX],
                w: *const i16,
                steps: usize,
                out: *mut i32,
            ) {
                // SAFETY (whole body): the bounds above; unaligned loads and stores only.
                unsafe {
                    let mut acc: [[$vec; NV]; MR] = [[$zero(); NV]; MR];
                    let mut wp = w;
                    for s in 0..steps {
                        let mut wv: [$vec; NV] = [$zero(); NV];
                        for (v, d) in wv.iter_mut().enumerate() {
                            *d = $load(wp.add(v * $lanes * 2).cast());
                        }
                        wp = wp.add(NV * $lanes * 2);
                        for i in 0..MR {
                            let $x = $set1(a[i].add(2 * s).cast::<i32>().read_unaligned());
                            for v in 0..NV {
                                let $acc = acc[i][v];
                                let $w = wv[v];
                                acc[i][v] = $step;
                            }
                        }
                    }
                    for (i, row) in acc.iter().enumerate() {
                        for (v, r) in row.iter().enumerate() {
                            $store(out.add((i * NV + v) * $lanes).cast(), *r);
                        }
                    }
                }
            }
        };
    }

    pair_kernel!(
        /// AVX-512 VNNI i16 pair tile (`vpdpwssd`).
        pair_vnni, "avx512f,avx512bw,avx512vnni", __m512i, 16, _mm512_setzero_si512,
        _mm512_loadu_si512, _mm512_storeu_si512, _mm512_set1_epi32,
        |acc, x, w| _mm512_dpwssd_epi32(acc, x, w)
    );
    pair_kernel!(
        /// AVX-512BW i16 pair tile (`vpmaddwd` + `vpaddd`).
        pair_512, "avx512f,avx512bw", __m512i, 16, _mm512_setzero_si512,
        _mm512_loadu_si512, _mm512_storeu_si512, _mm512_set1_epi32,
        |acc, x, w| _mm512_add_epi32(acc, _mm512_madd_epi16(x, w))
    );
    pair_kernel!(
        /// AVX2 i16 pair tile (`vpmaddwd` + `vpaddd`).
        pair_avx2, "avx2", __m256i, 8, _mm256_setzero_si256,
        _mm256_loadu_si256, _mm256_storeu_si256, _mm256_set1_epi32,
        |acc, x, w| _mm256_add_epi32(acc, _mm256_madd_epi16(x, w))
    );

    macro_rules! split_kernel_512 {
        ($(#[$m:meta])* $name:ident, $feat:literal, |$acc:ident, $x:ident, $w:ident| $step:expr) => {
            $(#[$m])*
            ///
            /// Accumulates `x·l` and `x·h` in INT32 over chunks of `KC16 / 2` pair steps (the
            /// bound of the module docs) and widens `256·H + L` into the INT64 tile after each.
            ///
            /// # Safety
            ///
            /// The CPU supports the enabled features; `a[..MR]` point to at least `2 · steps`
            /// readable `i16`; `lo` and `hi` to `steps · NV · 32` `i16`; `out` to `MR · NV · 16`
            /// writable `i64`.
            #[target_feature(enable = $feat)]
            pub(super) unsafe fn $name<const MR: usize, const NV: usize>(
                a: &[*const i16; MR_MAX],
                lo: *const i16,
                hi: *const i16,
                steps: usize,
                out: *mut i64,
            ) {
                // SAFETY (whole body): the bounds above; unaligned loads and stores only.
                unsafe {
                    for i in 0..MR * NV * 16 {
                        *out.add(i) = 0;
                    }
                    let mut s0 = 0;
                    while s0 < steps {
                        let s1 = (s0 + super::KC16 / 2).min(steps);
                        let mut al = [[_mm512_setzero_si512(); NV]; MR];
                        let mut ah = [[_mm512_setzero_si512(); NV]; MR];
                        for s in s0..s1 {
                            let mut wl = [_mm512_setzero_si512(); NV];
                            let mut wh = [_mm512_setzero_si512(); NV];
                            for v in 0..NV {
                                wl[v] = _mm512_loadu_si512(lo.add((s * NV + v) * 32).cast());
                                wh[v] = _mm512_loadu_si512(hi.add((s * NV + v) * 32).cast());
                            }
                            for i in 0..MR {
                                let $x = _mm512_set1_epi32(a[i].add(2 * s).cast::<i32>().read_unaligned());
                                for v in 0..NV {
                                    let ($acc, $w) = (al[i][v], wl[v]);
                                    al[i][v] = $step;
                                    let ($acc, $w) = (ah[i][v], wh[v]);
                                    ah[i][v] = $step;
                                }
                            }
                        }
                        for i in 0..MR {
                            for v in 0..NV {
                                let o = out.add((i * NV + v) * 16);
                                let (l, h) = (al[i][v], ah[i][v]);
                                let w0 = _mm512_add_epi64(
                                    _mm512_slli_epi64::<8>(_mm512_cvtepi32_epi64(_mm512_castsi512_si256(h))),
                                    _mm512_cvtepi32_epi64(_mm512_castsi512_si256(l)),
                                );
                                let w1 = _mm512_add_epi64(
                                    _mm512_slli_epi64::<8>(_mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64::<1>(h))),
                                    _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64::<1>(l)),
                                );
                                _mm512_storeu_si512(o.cast(), _mm512_add_epi64(_mm512_loadu_si512(o.cast()), w0));
                                let o1 = o.add(8);
                                _mm512_storeu_si512(o1.cast(), _mm512_add_epi64(_mm512_loadu_si512(o1.cast()), w1));
                            }
                        }
                        s0 = s1;
                    }
                }
            }
        };
    }

    split_kernel_512!(
        /// AVX-512 VNNI fused 16-bit tile (`vpdpwssd` on both weight halves).
        split_vnni, "avx512f,avx512bw,avx512vnni",
        |acc, x, w| _mm512_dpwssd_epi32(acc, x, w)
    );
    split_kernel_512!(
        /// AVX-512BW fused 16-bit tile (`vpmaddwd` + `vpaddd` on both weight halves).
        split_512, "avx512f,avx512bw",
        |acc, x, w| _mm512_add_epi32(acc, _mm512_madd_epi16(x, w))
    );

    /// AVX2 fused 16-bit tile: `MR` rows × 8 channels, as [`split_512`] with 256-bit vectors.
    ///
    /// # Safety
    ///
    /// The CPU supports avx2; `a[..MR]` point to at least `2 · steps` readable `i16`; `lo`
    /// and `hi` to `steps · 16` `i16`; `out` to `MR · 8` writable `i64`.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn split_avx2<const MR: usize>(
        a: &[*const i16; MR_MAX],
        lo: *const i16,
        hi: *const i16,
        steps: usize,
        out: *mut i64,
    ) {
        // SAFETY (whole body): the bounds above; unaligned loads and stores only.
        unsafe {
            for i in 0..MR * 8 {
                *out.add(i) = 0;
            }
            let mut s0 = 0;
            while s0 < steps {
                let s1 = (s0 + super::KC16 / 2).min(steps);
                let mut al = [_mm256_setzero_si256(); MR];
                let mut ah = [_mm256_setzero_si256(); MR];
                for s in s0..s1 {
                    let wl = _mm256_loadu_si256(lo.add(s * 16).cast());
                    let wh = _mm256_loadu_si256(hi.add(s * 16).cast());
                    for i in 0..MR {
                        let x = _mm256_set1_epi32(a[i].add(2 * s).cast::<i32>().read_unaligned());
                        al[i] = _mm256_add_epi32(al[i], _mm256_madd_epi16(x, wl));
                        ah[i] = _mm256_add_epi32(ah[i], _mm256_madd_epi16(x, wh));
                    }
                }
                for i in 0..MR {
                    let o = out.add(i * 8);
                    let (l, h) = (al[i], ah[i]);
                    let w0 = _mm256_add_epi64(
                        _mm256_slli_epi64::<8>(_mm256_cvtepi32_epi64(_mm256_castsi256_si128(h))),
                        _mm256_cvtepi32_epi64(_mm256_castsi256_si128(l)),
                    );
                    let w1 = _mm256_add_epi64(
                        _mm256_slli_epi64::<8>(_mm256_cvtepi32_epi64(
                            _mm256_extracti128_si256::<1>(h),
                        )),
                        _mm256_cvtepi32_epi64(_mm256_extracti128_si256::<1>(l)),
                    );
                    _mm256_storeu_si256(
                        o.cast(),
                        _mm256_add_epi64(_mm256_loadu_si256(o.cast()), w0),
                    );
                    let o1 = o.add(4);
                    _mm256_storeu_si256(
                        o1.cast(),
                        _mm256_add_epi64(_mm256_loadu_si256(o1.cast()), w1),
                    );
                }
                s0 = s1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::int::testutil::Rng;

    /// Naive `Σ_k a[i][k] · w[j][k]` in i64.
    fn naive(a: &[Vec<i32>], w: &[Vec<i32>]) -> Vec<Vec<i64>> {
        a.iter()
            .map(|r| {
                w.iter()
                    .map(|c| r.iter().zip(c).map(|(&x, &y)| x as i64 * y as i64).sum())
                    .collect()
            })
            .collect()
    }

    /// Every tile kernel the CPU has equals the naive product (Pair8, Split16 with extreme
    /// values, Quad with the z·Σw correction), for every panel width.
    #[test]
    fn tiles_match_naive_products() {
        let mut rng = Rng::new(7);
        for &(n, k) in &[
            (5usize, 3usize),
            (16, 8),
            (17, 37),
            (40, 300),
            (33, 513),
            (8, 1),
        ] {
            for isa in Isa::supported() {
                for mode in [Mode::Bits8, Mode::Bits16] {
                    let (wlo, whi, alo, ahi) = match mode {
                        Mode::Bits8 => (-128, 127, 0, 255),
                        Mode::Bits16 => (-32768, 32767, -32768, 32767),
                    };
                    let w: Vec<Vec<i32>> = (0..n)
                        .map(|_| (0..k).map(|_| rng.extreme(wlo, whi)).collect())
                        .collect();
                    let b = PackedB::pack(isa, mode, n, k, |j, kk| w[j][kk]);
                    let a: Vec<Vec<i32>> = (0..b.mr)
                        .map(|_| (0..k).map(|_| rng.extreme(alo, ahi)).collect())
                        .collect();
                    let want = naive(&a, &w);
                    let mut buf = TileBuf::new();
                    for p in 0..b.panels() {
                        let got: Vec<i64> = match b.scheme {
                            Scheme::Quad | Scheme::Tile8 => {
                                let rows: Vec<Vec<u8>> = a
                                    .iter()
                                    .map(|r| {
                                        let mut v: Vec<u8> = r.iter().map(|&x| x as u8).collect();
                                        v.resize(b.kpad, 0);
                                        v
                                    })
                                    .collect();
                                let refs: Vec<&[u8]> = rows.iter().map(|r| r.as_slice()).collect();
                                u8::tile(&b, p, &refs, &mut buf);
                                buf.t32[..b.mr * b.nr].iter().map(|&v| v as i64).collect()
                            }
                            _ => {
                                let rows: Vec<Vec<i16>> = a
                                    .iter()
                                    .map(|r| {
                                        let mut v: Vec<i16> = r.iter().map(|&x| x as i16).collect();
                                        v.resize(b.kpad, 0);
                                        v
                                    })
                                    .collect();
                                let refs: Vec<&[i16]> = rows.iter().map(|r| r.as_slice()).collect();
                                i16::tile(&b, p, &refs, &mut buf);
                                if matches!(b.scheme, Scheme::Split16 | Scheme::Bytes16) {
                                    buf.t64[..b.mr * b.nr].to_vec()
                                } else {
                                    buf.t32[..b.mr * b.nr].iter().map(|&v| v as i64).collect()
                                }
                            }
                        };
                        for i in 0..b.mr {
                            for j in 0..b.nr.min(n - p * b.nr) {
                                let g = got[i * b.nr + j];
                                let wv = want[i][p * b.nr + j];
                                if matches!(b.scheme, Scheme::Split16 | Scheme::Bytes16) {
                                    assert_eq!(g, wv, "{isa} {mode:?} n{n} k{k}");
                                } else {
                                    // 8-bit: INT32 modulo 2^32.
                                    assert_eq!(g as i32, wv as i32, "{isa} {mode:?} n{n} k{k}");
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Split16 is exact in the worst case: every product (−32768)·(−32768) over a K of
    /// several chunks (the INT32 partial sums would overflow without the split).
    #[test]
    fn split16_worst_case_is_exact() {
        let k = 3 * KC16 + 6;
        for isa in Isa::supported() {
            for (wv, xv) in [
                (-32768, -32768),
                (32767, -32768),
                (-32768, 32767),
                (-1, -32768),
            ] {
                let b = PackedB::pack(isa, Mode::Bits16, 3, k, |_, _| wv);
                let row = vec![xv as i16; b.kpad];
                let rows: Vec<&[i16]> = vec![&row; b.mr];
                let mut buf = TileBuf::new();
                i16::tile(&b, 0, &rows, &mut buf);
                let want = k as i64 * wv as i64 * xv as i64;
                for i in 0..b.mr {
                    for j in 0..3 {
                        assert_eq!(buf.t64[i * b.nr + j], want, "{isa}");
                    }
                }
            }
        }
    }

    /// Past the INT32 chunks of both 16-bit schemes (KC16 values for Split16, 512 · 64 for
    /// Bytes16): a K of 33,000 with extreme values (worst case and random) is exact.
    #[test]
    fn large_k_is_exact() {
        let k = 33_000;
        let mut rng = Rng::new(11);
        for isa in Isa::supported() {
            for worst in [true, false] {
                let w: Vec<Vec<i32>> = (0..3)
                    .map(|_| {
                        (0..k)
                            .map(|_| {
                                if worst {
                                    -32768
                                } else {
                                    rng.extreme(-32768, 32767)
                                }
                            })
                            .collect()
                    })
                    .collect();
                let b = PackedB::pack(isa, Mode::Bits16, 3, k, |j, kk| w[j][kk]);
                let a: Vec<Vec<i32>> = (0..b.mr)
                    .map(|_| {
                        (0..k)
                            .map(|_| {
                                if worst {
                                    -32768
                                } else {
                                    rng.extreme(-32768, 32767)
                                }
                            })
                            .collect()
                    })
                    .collect();
                let want = naive(&a, &w);
                let rows: Vec<Vec<i16>> = a
                    .iter()
                    .map(|r| {
                        let mut v: Vec<i16> = r.iter().map(|&x| x as i16).collect();
                        v.resize(b.kpad, 0);
                        v
                    })
                    .collect();
                let refs: Vec<&[i16]> = rows.iter().map(|r| r.as_slice()).collect();
                let mut buf = TileBuf::new();
                i16::tile(&b, 0, &refs, &mut buf);
                for (i, want) in want.iter().enumerate() {
                    for (j, &wv) in want.iter().enumerate() {
                        assert_eq!(buf.t64[i * b.nr + j], wv, "{isa} worst {worst}");
                    }
                }
            }
        }
    }

    /// `gemm_rows` on every level equals the portable level on edge sizes: 1 row, partial
    /// row blocks, odd and tail `K` (around the 64-value AMX blocks), partial panels; with
    /// stale scratch.
    #[test]
    fn gemm_rows_levels_agree_on_edge_sizes() {
        use crate::int::epilogue::Bias;
        use ipukit_ir::ops::fixed::OutRange;
        let mut rng = Rng::new(5);
        for &m in &[1usize, 5, 15, 16, 17, 33] {
            for &k in &[1usize, 2, 3, 63, 64, 65, 129] {
                for &n in &[1usize, 7, 16, 17, 40] {
                    let w: Vec<i32> = (0..n * k).map(|_| rng.extreme(-32768, 32767)).collect();
                    let kpad = k.next_multiple_of(2);
                    let rows: Vec<Vec<i16>> = (0..m)
                        .map(|_| {
                            let mut r: Vec<i16> =
                                (0..k).map(|_| rng.extreme(-32768, 32767) as i16).collect();
                            r.resize(kpad, 0);
                            r
                        })
                        .collect();
                    let refs: Vec<&[i16]> = rows.iter().map(|r| r.as_slice()).collect();
                    let rq: Vec<_> = (0..n).map(|_| rng.requant(33)).collect();
                    let bias: Vec<i64> = (0..n)
                        .map(|_| rng.extreme(i32::MIN, i32::MAX) as i64 * 4096)
                        .collect();
                    let out = OutRange::full(ipukit_ir::DType::I16, 0);
                    let run = |isa: Isa| {
                        let b = PackedB::pack(isa, Mode::Bits16, n, k, |j, kk| w[j * k + kk]);
                        assert_eq!(b.kpad, kpad);
                        let crq = ChannelRequant::new(n, Bias::I64(&bias), &rq, out);
                        // Output columns 3..3 + n of rows of n + 5 values.
                        let mut o = vec![0i16; m * (n + 5)];
                        // Scratch left full of other data: bytes past `kpad` and rows past
                        // the last are not cleared between calls.
                        let mut buf = TileBuf::new();
                        buf.abytes = AlignedVec::from_slice(&[0xA5; 8 * 1024]);
                        gemm_rows(&b, &crq, &refs, &mut o, n + 5, 3, &mut buf);
                        o
                    };
                    let want = run(Isa::Scalar);
                    for isa in Isa::supported() {
                        assert_eq!(run(isa), want, "{isa} m{m} k{k} n{n}");
                    }
                }
            }
        }
    }

    /// 8-bit `gemm_rows` on every level equals the portable level (Pair8 on `x − z_in`) on
    /// edge sizes, extreme weights and zero points: 1..33 rows (VNNI fallback and AMX row
    /// blocks), `K` around the 64-value AMX blocks, partial panels and pairs of panels,
    /// output columns at an offset.
    #[test]
    fn gemm_rows_8bit_levels_agree_on_edge_sizes() {
        use crate::int::epilogue::Bias;
        use ipukit_ir::ops::fixed::OutRange;
        let mut rng = Rng::new(9);
        for &m in &[1usize, 5, 12, 15, 16, 17, 31, 32, 33] {
            for &k in &[1usize, 4, 63, 64, 65, 127, 129, 200] {
                for &n in &[1usize, 7, 16, 17, 33, 48] {
                    let z = [0, 255, rng.range(0, 255)][rng.below(3)];
                    let w: Vec<i32> = (0..n * k).map(|_| rng.extreme(-128, 127)).collect();
                    let x: Vec<Vec<u8>> = (0..m)
                        .map(|_| (0..k).map(|_| rng.extreme(0, 255) as u8).collect())
                        .collect();
                    let rq: Vec<_> = (0..n).map(|_| rng.requant(22)).collect();
                    let bias: Vec<i32> = (0..n).map(|_| rng.range(-1 << 20, 1 << 20)).collect();
                    let out = OutRange::full(ipukit_ir::DType::I16, 0);
                    let run = |isa: Isa| {
                        let b = PackedB::pack(isa, Mode::Bits8, n, k, |j, kk| w[j * k + kk]);
                        let mut crq = ChannelRequant::new(n, Bias::I32(&bias), &rq, out);
                        let mut o = vec![0i16; m * (n + 5)];
                        if b.scheme.raw_u8() {
                            let corr: Vec<i32> = (0..n)
                                .map(|j| (0..k).map(|kk| w[j * k + kk]).sum::<i32>() * z)
                                .collect();
                            crq.set_corr(&corr);
                            // Separate rows (copied) and rows of one buffer (Tile8 loads
                            // them in place).
                            let rows: Vec<Vec<u8>> = x
                                .iter()
                                .map(|r| {
                                    let mut v = r.clone();
                                    v.resize(b.kpad, z as u8);
                                    v
                                })
                                .collect();
                            let refs: Vec<&[u8]> = rows.iter().map(|r| r.as_slice()).collect();
                            gemm_rows(&b, &crq, &refs, &mut o, n + 5, 3, &mut TileBuf::new());
                            let flat = rows.concat();
                            let refs: Vec<&[u8]> = flat.chunks_exact(b.kpad).collect();
                            let mut o2 = vec![0i16; m * (n + 5)];
                            gemm_rows(&b, &crq, &refs, &mut o2, n + 5, 3, &mut TileBuf::new());
                            assert_eq!(o2, o, "{isa} in place m{m} k{k} n{n} z{z}");
                        } else {
                            let rows: Vec<Vec<i16>> = x
                                .iter()
                                .map(|r| {
                                    let mut v: Vec<i16> =
                                        r.iter().map(|&v| v as i16 - z as i16).collect();
                                    v.resize(b.kpad, 0);
                                    v
                                })
                                .collect();
                            let refs: Vec<&[i16]> = rows.iter().map(|r| r.as_slice()).collect();
                            gemm_rows(&b, &crq, &refs, &mut o, n + 5, 3, &mut TileBuf::new());
                        }
                        o
                    };
                    let want = run(Isa::Scalar);
                    for isa in Isa::supported() {
                        assert_eq!(run(isa), want, "{isa} m{m} k{k} n{n} z{z}");
                    }
                }
            }
        }
    }

    /// The 8-bit tiles wrap like `vpdpbusd`: with every input 255 and every weight 127 over
    /// 70,000 values of `K`, `Σ x·w` exceeds 2³¹ and the tile holds it modulo 2³² (which the
    /// `z_in · Σ w` correction, also modulo 2³², turns into the exact in-range result).
    #[test]
    fn tiles_8bit_wrap_modulo_2_32() {
        let k = 70_000;
        for isa in Isa::supported() {
            let b = PackedB::pack(isa, Mode::Bits8, 3, k, |_, _| 127);
            if !b.scheme.raw_u8() {
                continue;
            }
            let row = vec![255u8; b.kpad];
            let rows: Vec<&[u8]> = vec![&row; b.mr];
            let mut buf = TileBuf::new();
            u8::tile(&b, 0, &rows, &mut buf);
            let want = (k as i64 * 255 * 127) as i32;
            for i in 0..b.mr {
                for j in 0..3 {
                    assert_eq!(buf.t32[i * b.nr + j], want, "{isa}");
                }
            }
        }
    }

    #[test]
    fn int32_bound_check() {
        // 66,311 weights of 127 at z = 0 (|x − z| ≤ 255) fit; one more does not.
        assert!(check_int32_bound("t", 0, std::iter::repeat_n(127, 66_311), 0).is_ok());
        assert!(check_int32_bound("t", 0, std::iter::repeat_n(127, 66_312), 0).is_err());
        // -128 weights count with their magnitude.
        assert!(check_int32_bound("t", 0, std::iter::repeat_n(-128, 66_311), 255).is_err());
        // A mid zero point halves the worst case.
        assert!(check_int32_bound("t", 0, std::iter::repeat_n(127, 100_000), 128).is_ok());
    }
}
