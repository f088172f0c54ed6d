//! Indirect GEMM: the convolution micro-kernel.
//!
//! An output tile is `MR` pixels × `NR` output channels. Its left operand is read through
//! *row slices*: for each of the tile's pixels and each kernel tap, the `Cin` input channels at
//! that tap (a slice of the NHWC input, or of a zero row where the tap falls in the padding).
//! No im2col copy is made. The weights are packed once into panels of `NR` output channels,
//! `[tap][cin][NR]`, zero-padded past `Cout`, with the bias padded alongside; the accumulators
//! start from the bias.
//!
//! Three kernels compute a tile: AVX-512 (`NR` = 32, two vectors per row), AVX2+FMA (`NR` = 16)
//! and a portable one for any `NR` (the reference the SIMD kernels are tested against). The
//! panel width is chosen at packing time from the CPU; a run on a lower level than the packing
//! assumed falls back to the portable kernel.

use crate::simd::{self, Level};

/// Pixels per tile.
pub(crate) const MR: usize = 12;

/// Weights packed in panels of `nr` output channels.
#[derive(Debug, Clone)]
pub(crate) struct Panels {
    pub nr: usize,
    pub taps: usize,
    pub cin: usize,
    pub cout: usize,
    /// `[panel][tap][cin][nr]`.
    data: Vec<f32>,
    /// `[panel][nr]`.
    bias: Vec<f32>,
}

impl Panels {
    /// Panel width for the CPU this runs on.
    pub(crate) fn native_nr() -> usize {
        match simd::detected() {
            Level::Avx512 => 32,
            _ => 16,
        }
    }

    /// Packs OHWI weights `[cout][taps][cin]` (taps = KH·KW in row-major order).
    pub(crate) fn pack(
        weight: &[f32],
        cout: usize,
        taps: usize,
        cin: usize,
        bias: Option<&[f32]>,
        nr: usize,
    ) -> Panels {
        let k = taps * cin;
        let n_panels = cout.div_ceil(nr);
        let mut data = vec![0.0; n_panels * k * nr];
        let mut b = vec![0.0; n_panels * nr];
        for o in 0..cout {
            let (p, j) = (o / nr, o % nr);
            let src = &weight[o * k..(o + 1) * k];
            let dst = &mut data[p * k * nr..(p + 1) * k * nr];
            for (q, &v) in src.iter().enumerate() {
                dst[q * nr + j] = v;
            }
            if let Some(bias) = bias {
                b[o] = bias[o];
            }
        }
        Panels {
            nr,
            taps,
            cin,
            cout,
            data,
            bias: b,
        }
    }

    pub(crate) fn n_panels(&self) -> usize {
        self.cout.div_ceil(self.nr)
    }

    fn panel(&self, p: usize) -> (&[f32], &[f32]) {
        let k = self.taps * self.cin;
        (
            &self.data[p * k * self.nr..(p + 1) * k * self.nr],
            &self.bias[p * self.nr..(p + 1) * self.nr],
        )
    }

    /// Computes the tile of panel `p` for the `MR` pixels whose row slices are `rows`
    /// (`rows[i * taps + t]`, each at least `cin` long) into `out` (row `i` at `i * ldc`,
    /// `nr` columns each). `taps · cin` must equal the packed `K`; a caller that copied the
    /// receptive fields contiguously passes `taps = 1, cin = K`.
    ///
    /// # Panics
    ///
    /// If a slice is shorter than the tile needs (internal invariant, checked before any
    /// SIMD code runs).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn tile(
        &self,
        level: Level,
        p: usize,
        (taps, cin): (usize, usize),
        rows: &[&[f32]],
        out: &mut [f32],
        ldc: usize,
    ) {
        let (w, bias) = self.panel(p);
        let nr = self.nr;
        assert_eq!(taps * cin, self.taps * self.cin, "igemm: K");
        assert_eq!(rows.len(), MR * taps, "igemm: row count");
        assert!(rows.iter().all(|r| r.len() >= cin), "igemm: short row");
        assert!(
            ldc >= nr && out.len() >= (MR - 1) * ldc + nr,
            "igemm: output tile"
        );
        #[cfg(target_arch = "x86_64")]
        {
            if nr == 32 && level == Level::Avx512 {
                // SAFETY: the CPU has avx512f (`level` comes from detection); the asserts above
                // and the panel layout guarantee every pointer the kernel forms is in bounds:
                // `rows` has MR·taps slices of ≥ cin elements, `w` is taps·cin·32 long, `bias`
                // 32 long, and `out` holds MR rows of 32 at stride `ldc`.
                unsafe { x86::tile_avx512(taps, cin, rows, w, bias, out, ldc) };
                return;
            }
            if nr == 16 && level >= Level::Avx2 {
                // SAFETY: as above with avx2+fma, 16-wide panels.
                unsafe { x86::tile_avx2(taps, cin, rows, w, bias, out, ldc) };
                return;
            }
        }
        let _ = level;
        tile_portable(taps, cin, nr, rows, w, bias, out, ldc);
    }
}

/// Portable tile: the reference semantics of the SIMD kernels.
#[allow(clippy::too_many_arguments)]
fn tile_portable(
    taps: usize,
    cin: usize,
    nr: usize,
    rows: &[&[f32]],
    w: &[f32],
    bias: &[f32],
    out: &mut [f32],
    ldc: usize,
) {
    for i in 0..MR {
        let o = &mut out[i * ldc..i * ldc + nr];
        o.copy_from_slice(&bias[..nr]);
        for t in 0..taps {
            let r = &rows[i * taps + t][..cin];
            for (c, &a) in r.iter().enumerate() {
                let wr = &w[(t * cin + c) * nr..(t * cin + c + 1) * nr];
                for (d, &b) in o.iter_mut().zip(wr) {
                    *d += a * b;
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::MR;
    use std::arch::x86_64::*;

    /// AVX-512 tile: 12 pixels × 32 channels in 24 zmm accumulators.
    ///
    /// # Safety
    ///
    /// The CPU must support avx512f; `rows` holds `MR * taps` slices of at least `cin`
    /// elements, `w` at least `taps * cin * 32`, `bias` at least 32, and `out` at least
    /// `(MR - 1) * ldc + 32` elements.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn tile_avx512(
        taps: usize,
        cin: usize,
        rows: &[&[f32]],
        w: &[f32],
        bias: &[f32],
        out: &mut [f32],
        ldc: usize,
    ) {
        // SAFETY (whole body): bounds as documented; loads and stores are unaligned variants.
        unsafe {
            let b0 = _mm512_loadu_ps(bias.as_ptr());
            let b1 = _mm512_loadu_ps(bias.as_ptr().add(16));
            let mut acc = [[b0, b1]; MR];
            let mut wp = w.as_ptr();
            for t in 0..taps {
                let r: [*const f32; MR] =
                    std::array::from_fn(|i| rows.get_unchecked(i * taps + t).as_ptr());
                let mut c = 0;
                while c + 2 <= cin {
                    let w0 = _mm512_loadu_ps(wp);
                    let w1 = _mm512_loadu_ps(wp.add(16));
                    let w2 = _mm512_loadu_ps(wp.add(32));
                    let w3 = _mm512_loadu_ps(wp.add(48));
                    wp = wp.add(64);
                    for i in 0..MR {
                        let a = _mm512_set1_ps(*r[i].add(c));
                        acc[i][0] = _mm512_fmadd_ps(a, w0, acc[i][0]);
                        acc[i][1] = _mm512_fmadd_ps(a, w1, acc[i][1]);
                    }
                    for i in 0..MR {
                        let a = _mm512_set1_ps(*r[i].add(c + 1));
                        acc[i][0] = _mm512_fmadd_ps(a, w2, acc[i][0]);
                        acc[i][1] = _mm512_fmadd_ps(a, w3, acc[i][1]);
                    }
                    c += 2;
                }
                if c < cin {
                    let w0 = _mm512_loadu_ps(wp);
                    let w1 = _mm512_loadu_ps(wp.add(16));
                    wp = wp.add(32);
                    for i in 0..MR {
                        let a = _mm512_set1_ps(*r[i].add(c));
                        acc[i][0] = _mm512_fmadd_ps(a, w0, acc[i][0]);
                        acc[i][1] = _mm512_fmadd_ps(a, w1, acc[i][1]);
                    }
                }
            }
            let op = out.as_mut_ptr();
            for (i, a) in acc.iter().enumerate() {
                _mm512_storeu_ps(op.add(i * ldc), a[0]);
                _mm512_storeu_ps(op.add(i * ldc + 16), a[1]);
            }
        }
    }

    /// AVX2 tile: 12 pixels × 16 channels, in three passes of 4 pixels (8 ymm accumulators).
    ///
    /// # Safety
    ///
    /// The CPU must support avx2 and fma; `rows` holds `MR * taps` slices of at least `cin`
    /// elements, `w` at least `taps * cin * 16`, `bias` at least 16, and `out` at least
    /// `(MR - 1) * ldc + 16` elements.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn tile_avx2(
        taps: usize,
        cin: usize,
        rows: &[&[f32]],
        w: &[f32],
        bias: &[f32],
        out: &mut [f32],
        ldc: usize,
    ) {
        const H: usize = 4;
        // SAFETY (whole body): bounds as documented; loads and stores are unaligned variants.
        unsafe {
            let b0 = _mm256_loadu_ps(bias.as_ptr());
            let b1 = _mm256_loadu_ps(bias.as_ptr().add(8));
            for half in 0..MR / H {
                let mut acc = [[b0, b1]; H];
                let mut wp = w.as_ptr();
                for t in 0..taps {
                    let r: [*const f32; H] = std::array::from_fn(|i| {
                        rows.get_unchecked((half * H + i) * taps + t).as_ptr()
                    });
                    for c in 0..cin {
                        let w0 = _mm256_loadu_ps(wp);
                        let w1 = _mm256_loadu_ps(wp.add(8));
                        wp = wp.add(16);
                        for i in 0..H {
                            let a = _mm256_set1_ps(*r[i].add(c));
                            acc[i][0] = _mm256_fmadd_ps(a, w0, acc[i][0]);
                            acc[i][1] = _mm256_fmadd_ps(a, w1, acc[i][1]);
                        }
                    }
                }
                let op = out.as_mut_ptr().add(half * H * ldc);
                for (i, a) in acc.iter().enumerate() {
                    _mm256_storeu_ps(op.add(i * ldc), a[0]);
                    _mm256_storeu_ps(op.add(i * ldc + 8), a[1]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::float::testutil::data;

    /// Contiguous rows (`taps = 1, cin = K`) give the same tile as per-tap rows.
    #[test]
    fn contiguous_rows_match_per_tap_rows() {
        let (taps, cin, nr) = (9, 3, 16);
        let w = data(16 * taps * cin, 4);
        let p = Panels::pack(&w, 16, taps, cin, None, nr);
        let x = data(MR * taps * cin, 5);
        let per_tap: Vec<&[f32]> = x.chunks(cin).collect();
        let whole: Vec<&[f32]> = x.chunks(taps * cin).collect();
        let mut a = vec![0.0; MR * nr];
        let mut b = vec![0.0; MR * nr];
        p.tile(simd::level(), 0, (taps, cin), &per_tap, &mut a, nr);
        p.tile(simd::level(), 0, (1, taps * cin), &whole, &mut b, nr);
        for (u, v) in a.iter().zip(&b) {
            assert!((u - v).abs() <= 1e-5 * (1.0 + v.abs()));
        }
    }

    /// Every kernel the CPU supports agrees with the portable one.
    #[test]
    fn simd_tiles_match_portable() {
        for (taps, cin) in [(1, 1), (1, 3), (9, 5), (9, 64), (4, 17)] {
            for nr in [16, 32] {
                let cout = nr + 5;
                let w = data(cout * taps * cin, 1);
                let b = data(cout, 2);
                let p = Panels::pack(&w, cout, taps, cin, Some(&b), nr);
                let x = data(MR * taps * cin, 3);
                let rows: Vec<&[f32]> = x.chunks(cin).collect();
                for panel in 0..p.n_panels() {
                    let ldc = nr + 3;
                    let mut want = vec![0.0; MR * ldc];
                    tile_portable(
                        taps,
                        cin,
                        nr,
                        &rows,
                        p.panel(panel).0,
                        p.panel(panel).1,
                        &mut want,
                        ldc,
                    );
                    for level in [Level::Baseline, Level::Avx2, Level::Avx512] {
                        if level > simd::detected() {
                            continue;
                        }
                        let mut got = vec![0.0; MR * ldc];
                        p.tile(level, panel, (taps, cin), &rows, &mut got, ldc);
                        for (g, w) in got.iter().zip(&want) {
                            assert!(
                                (g - w).abs() <= 1e-5 * (1.0 + w.abs()),
                                "{level:?} nr {nr}: {g} vs {w}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn packing_pads_past_cout() {
        let w: Vec<f32> = (0..3 * 2).map(|v| v as f32).collect(); // cout 3, taps 1, cin 2
        let p = Panels::pack(&w, 3, 1, 2, Some(&[1.0, 2.0, 3.0]), 16);
        let (panel, bias) = p.panel(0);
        assert_eq!(&panel[..4], &[0.0, 2.0, 4.0, 0.0]);
        assert_eq!(&panel[16..19], &[1.0, 3.0, 5.0]);
        assert_eq!(&bias[..4], &[1.0, 2.0, 3.0, 0.0]);
    }
}
