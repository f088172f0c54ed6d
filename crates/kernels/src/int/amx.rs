//! The 16-bit mode's GEMM on AMX-INT8 tiles ([`Scheme::Bytes16`](super::gemm::Scheme)), and
//! the 8-bit mode's ([`Scheme::Tile8`](super::gemm::Scheme), [`block8`]: one `tdpbusd` per
//! block on the raw UINT8 inputs, as the VNNI Quad scheme).
//!
//! AMX multiplies bytes only, so both INT16 operands are split into bytes:
//! `x = 256·xh + xl` and `w = 256·wh + wl` with `xh, wh = v >> 8 ∈ [−128, 127]` (signed) and
//! `xl, wl = v & 255 ∈ [0, 255]` (unsigned), which holds for every INT16 value, −32768
//! included. Then `x·w = 65536·xh·wh + 256·(xh·wl + xl·wh) + xl·wl`, and each of the four
//! byte products has its own tile instruction (`tdpbssd`, `tdpbsud`, `tdpbusd`, `tdpbuud`:
//! the letters give the signedness of `A` then `B`) accumulating into its own INT32 tile.
//!
//! **Exactness.** Per value of `K` the four products are bounded by `|xh·wh| ≤ 128² = 16,384`,
//! `|xh·wl|, |xl·wh| ≤ 128·255 = 32,640` and `xl·wl ≤ 255² = 65,025`. Over a chunk of
//! [`KB_CHUNK`] blocks of 64 values (32,768 values of `K`) the sums are at most
//! `65,025 · 32,768 = 2,130,739,200 < 2³¹ − 1` (the largest), so the INT32 tiles never
//! overflow; after each chunk they are combined in INT64 as
//! `65536·HH + 256·(HL + LH) + LL`, which is the exact `Σ x·w`.
//!
//! Tiles: `tmm0..tmm3` accumulate `HH, HL, LH, LL` of a 16 × 16 output block, `tmm4`/`tmm5`
//! hold the `xh`/`xl` bytes of 16 rows × 64 `K` values, `tmm6`/`tmm7` the `wh`/`wl` bytes of
//! 64 `K` values × 16 channels in the VNNI layout `[K/4][16][4]`. Every tile is 16 rows of
//! 64 bytes (palette 1).

#[cfg(target_arch = "x86_64")]
use std::arch::asm;
use std::marker::PhantomData;

use super::isa::Isa;

/// Bytes of one tile (16 rows of 64 bytes).
pub(crate) const TILE: usize = 1024;

/// `K` values of one tile block.
pub(crate) const KB: usize = 64;

/// Blocks of [`KB`] values of `K` accumulated in INT32 before widening (the bound is in the
/// module docs).
pub(crate) const KB_CHUNK: usize = 512;

/// Proof that this thread has loaded the tile configuration of this module; dropping it
/// releases the tiles (`tilerelease`). Not `Send`: the configuration is per thread.
pub(crate) struct Tiles(PhantomData<*const ()>);

/// The `ldtilecfg` operand: palette 1, tiles 0..8 of 16 rows × 64 bytes.
#[repr(C, align(64))]
struct Config([u8; 64]);

impl Tiles {
    /// Loads the configuration.
    ///
    /// # Panics
    ///
    /// When the CPU (or the operating system) does not support [`Isa::Amx`]; packing clamps
    /// the level, so a [`Scheme::Bytes16`](super::gemm::Scheme) layer never gets here
    /// otherwise.
    pub(crate) fn load() -> Tiles {
        assert!(Isa::Amx.is_supported(), "int gemm: AMX tiles unavailable");
        let mut c = Config([0; 64]);
        c.0[0] = 1;
        for t in 0..8 {
            c.0[16 + 2 * t] = 64;
            c.0[48 + t] = 16;
        }
        // SAFETY: the CPU has AMX-TILE and this process may use tile data (checked above,
        // `Isa::detect` made the permission request); `c` is a valid 64-byte palette-1
        // configuration (rows ≤ 16, bytes per row ≤ 64, reserved bytes zero).
        #[cfg(target_arch = "x86_64")]
        unsafe {
            asm!("ldtilecfg [{}]", in(reg) c.0.as_ptr(), options(nostack, readonly))
        };
        Tiles(PhantomData)
    }
}

impl Drop for Tiles {
    fn drop(&mut self) {
        // SAFETY: the CPU has AMX-TILE (a `Tiles` exists); `tilerelease` only resets the tile
        // state of this thread, which nothing else uses once the token is gone.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            asm!("tilerelease", options(nostack, nomem))
        };
    }
}

/// The four byte-product sums of one 16 × 16 block, `acc = [HH, HL, LH, LL]`, each 16 rows ×
/// 16 channels (row-major), over `nkb` blocks of 64 values of `K`.
///
/// `a` holds the block's `A` bytes, `nkb` tiles of `xh` then `nkb` tiles of `xl` (each
/// `[16 rows][64]`); `bh` / `bl` hold `nkb` tiles of `wh` / `wl` bytes (`[16][16][4]`).
/// `nkb` must be at most [`KB_CHUNK`] for the sums to be exact (not for safety).
pub(crate) fn block(
    _tiles: &Tiles,
    a: &[u8],
    bh: &[i8],
    bl: &[u8],
    nkb: usize,
    acc: &mut [i32; 4 * 256],
) {
    assert!(
        a.len() >= 2 * nkb * TILE && bh.len() >= nkb * TILE && bl.len() >= nkb * TILE,
        "int gemm: AMX operands"
    );
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("int gemm: AMX on {}", std::env::consts::ARCH);
    #[cfg(target_arch = "x86_64")]
    let (ah, al) = (a.as_ptr(), a[nkb * TILE..].as_ptr());
    #[cfg(target_arch = "x86_64")]
    let (wh, wl, o) = (bh.as_ptr(), bl.as_ptr(), acc.as_mut_ptr());
    // SAFETY: `_tiles` proves this thread loaded the configuration of the module docs (8
    // tiles of 16 × 64 bytes) and that the CPU has AMX-TILE and AMX-INT8. Every `tileloadd`
    // reads 16 rows of 64 bytes at stride 64 from `ptr + kb·TILE`, inside the slices for
    // kb < nkb (asserted); the stores write 4 tiles of 1,024 bytes into `acc` (4,096 bytes).
    #[cfg(target_arch = "x86_64")]
    unsafe {
        zero_accumulators();
        for kb in 0..nkb {
            let off = kb * TILE;
            asm!(
                "tileloadd tmm4, [{ah} + {s}*1]",
                "tileloadd tmm5, [{al} + {s}*1]",
                "tileloadd tmm6, [{wh} + {s}*1]",
                "tileloadd tmm7, [{wl} + {s}*1]",
                "tdpbssd tmm0, tmm4, tmm6",
                "tdpbsud tmm1, tmm4, tmm7",
                "tdpbusd tmm2, tmm5, tmm6",
                "tdpbuud tmm3, tmm5, tmm7",
                ah = in(reg) ah.add(off),
                al = in(reg) al.add(off),
                wh = in(reg) wh.add(off),
                wl = in(reg) wl.add(off),
                s = in(reg) 64usize,
                options(nostack, readonly)
            );
        }
        store_accumulators(o);
    }
}

/// The 8-bit mode's GEMM on AMX tiles ([`Scheme::Tile8`](super::gemm::Scheme)): the INT32
/// sums `Σ x·w` of `R` blocks of 16 rows × `P` panels of 16 channels over `nkb` blocks of 64
/// values of `K`, with one `tdpbusd` (u8 × s8) per pair of tiles.
///
/// Tiles: `tmm(2r + p)` accumulates row block `r` × panel `p`, `tmm4`/`tmm5` hold the `A`
/// bytes of row blocks 0/1, `tmm6`/`tmm7` the weights of panels 0/1. `tdpbusd` adds into
/// INT32 without saturation (wrapping), exactly as `vpdpbusd`, so the tiles hold `Σ x·w`
/// modulo 2³² over any `K`, and the Quad correction `− z_in · Σ w` makes it exact (no
/// chunking needed, unlike [`block`]).
///
/// `a` holds the `16·R` rows, consecutive in memory at stride `lda` (asserted), each at least
/// `nkb · 64` bytes (values of block `kb` at `kb·64`); `b` holds the panels at stride `ldb`, each `nkb` tiles of
/// `[16][16][4]` bytes. Block `(r, p)` is stored row-major (16 × 16) at `acc[(2r + p)·256..]`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn block8<const R: usize, const P: usize>(
    _tiles: &Tiles,
    a: &[&[u8]],
    lda: usize,
    b: &[i8],
    ldb: usize,
    nkb: usize,
    acc: &mut [i32; 4 * 256],
) {
    assert!(
        (1..=2).contains(&R)
            && (1..=2).contains(&P)
            && a.len() == R * 16
            && a.iter().enumerate().all(|(i, r)| {
                r.len() >= nkb * KB && r.as_ptr() == a[0].as_ptr().wrapping_add(i * lda)
            })
            && ldb >= nkb * TILE
            && b.len() >= (P - 1) * ldb + nkb * TILE,
        "int gemm: AMX 8-bit operands"
    );
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("int gemm: AMX on {}", std::env::consts::ARCH);
    #[cfg(target_arch = "x86_64")]
    let (pa, pb, o) = (a[0].as_ptr(), b.as_ptr(), acc.as_mut_ptr());
    // SAFETY: `_tiles` proves this thread loaded the configuration of the module docs (8
    // tiles of 16 × 64 bytes) and that the CPU has AMX-TILE and AMX-INT8. An `A` load of row
    // block r < R at block kb < nkb reads, for i < 16, 64 bytes at `pa + (16r + i)·lda +
    // kb·64`, which is `a[16r + i].as_ptr() + kb·64` (asserted), inside that row because
    // `kb·64 + 64 ≤ nkb·64 ≤ len` (asserted); a `B`
    // load of panel p < P reads 1,024 contiguous bytes at `p·ldb + kb·TILE`, inside `b`
    // (asserted above). The stores write tiles (2r + p) < 4 of 1,024 bytes into `acc`
    // (4,096 bytes).
    #[cfg(target_arch = "x86_64")]
    unsafe {
        zero_accumulators();
        for kb in 0..nkb {
            let (a0, b0) = (pa.add(kb * KB), pb.add(kb * TILE));
            match (R, P) {
                (2, 2) => asm!(
                    "tileloadd tmm4, [{a0} + {sa}*1]",
                    "tileloadd tmm6, [{b0} + {sb}*1]",
                    "tileloadd tmm5, [{a1} + {sa}*1]",
                    "tileloadd tmm7, [{b1} + {sb}*1]",
                    "tdpbusd tmm0, tmm4, tmm6",
                    "tdpbusd tmm1, tmm4, tmm7",
                    "tdpbusd tmm2, tmm5, tmm6",
                    "tdpbusd tmm3, tmm5, tmm7",
                    a0 = in(reg) a0,
                    a1 = in(reg) a0.add(16 * lda),
                    b0 = in(reg) b0,
                    b1 = in(reg) b0.add(ldb),
                    sa = in(reg) lda,
                    sb = in(reg) 64usize,
                    options(nostack, readonly)
                ),
                (2, _) => asm!(
                    "tileloadd tmm6, [{b0} + {sb}*1]",
                    "tileloadd tmm4, [{a0} + {sa}*1]",
                    "tileloadd tmm5, [{a1} + {sa}*1]",
                    "tdpbusd tmm0, tmm4, tmm6",
                    "tdpbusd tmm2, tmm5, tmm6",
                    a0 = in(reg) a0,
                    a1 = in(reg) a0.add(16 * lda),
                    b0 = in(reg) b0,
                    sa = in(reg) lda,
                    sb = in(reg) 64usize,
                    options(nostack, readonly)
                ),
                (_, 2) => asm!(
                    "tileloadd tmm4, [{a0} + {sa}*1]",
                    "tileloadd tmm6, [{b0} + {sb}*1]",
                    "tileloadd tmm7, [{b1} + {sb}*1]",
                    "tdpbusd tmm0, tmm4, tmm6",
                    "tdpbusd tmm1, tmm4, tmm7",
                    a0 = in(reg) a0,
                    b0 = in(reg) b0,
                    b1 = in(reg) b0.add(ldb),
                    sa = in(reg) lda,
                    sb = in(reg) 64usize,
                    options(nostack, readonly)
                ),
                _ => asm!(
                    "tileloadd tmm4, [{a0} + {sa}*1]",
                    "tileloadd tmm6, [{b0} + {sb}*1]",
                    "tdpbusd tmm0, tmm4, tmm6",
                    a0 = in(reg) a0,
                    b0 = in(reg) b0,
                    sa = in(reg) lda,
                    sb = in(reg) 64usize,
                    options(nostack, readonly)
                ),
            }
        }
        store_accumulators(o);
    }
}

/// Zeroes the accumulator tiles `tmm0`–`tmm3`.
///
/// # Safety
/// The calling thread holds a [`Tiles`] guard (the tile configuration is loaded and the CPU
/// has AMX-TILE).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn zero_accumulators() {
    // SAFETY: the caller holds the tile configuration; `tilezero` touches no memory.
    unsafe {
        asm!(
            "tilezero tmm0",
            "tilezero tmm1",
            "tilezero tmm2",
            "tilezero tmm3",
            options(nostack, nomem)
        );
    }
}

/// Stores the accumulator tiles `tmm0`–`tmm3` (16 rows of 64 bytes each) row-major at
/// `o[t·256..]` for tile `t`.
///
/// # Safety
/// As [`zero_accumulators`], and `o` is valid for writes of 4 × 256 `i32`s.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn store_accumulators(o: *mut i32) {
    // SAFETY: the caller holds the tile configuration and `o` is valid for 1,024 `i32`s;
    // each store writes 16 rows of 64 bytes at stride 64 into its quarter of them.
    unsafe {
        asm!(
            "tilestored [{o0} + {s}*1], tmm0",
            "tilestored [{o1} + {s}*1], tmm1",
            "tilestored [{o2} + {s}*1], tmm2",
            "tilestored [{o3} + {s}*1], tmm3",
            o0 = in(reg) o,
            o1 = in(reg) o.add(256),
            o2 = in(reg) o.add(512),
            o3 = in(reg) o.add(768),
            s = in(reg) 64usize,
            options(nostack)
        );
    }
}
