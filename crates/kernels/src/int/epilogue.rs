//! The requantization epilogue of the quantized layers (`docs/fixed-point.md` §3):
//! `y = sat_out(z_out + requant(bias[c] + Σ, M[c]))`, per output channel `c`.
//!
//! 8-bit mode gets INT32 sums (from a tile, possibly still offset by `z_in · Σw`, see
//! [`super::gemm`]); `bias + Σ` then fits in 33 bits and `(bias + Σ) · m` in 63, so the
//! whole computation is exact in 64-bit arithmetic. AVX-512 does it 16 channels at a time
//! (`vpmuldq` on even and odd lanes, `vpsravq` for the per-channel shifts). 16-bit mode gets
//! INT64 sums and INT64 biases; the sum `bias + Σ` is formed in 128 bits and requantized with
//! [`requant_i128`] unless it fits 33 bits.

use super::arith::{requant, requant_i128, rshift_round, QInt};
use super::isa::Isa;
use ipukit_ir::ops::fixed::{OutRange, Requant};

/// Per-output-channel requantization parameters, padded to a multiple of 32 channels.
#[derive(Debug, Clone)]
pub(crate) struct ChannelRequant {
    /// INT32 bias (8-bit mode).
    bias32: Vec<i32>,
    /// INT64 bias (16-bit mode).
    bias64: Vec<i64>,
    /// Subtracted (wrapping) from INT32 sums first: `z_in · Σ w` for the Quad scheme.
    corr: Vec<i32>,
    mult: Vec<i32>,
    shift: Vec<u32>,
    /// For AVX-512, per block of 16 channels, 8 groups of 8 `i64`: the shifts `n` of the even
    /// lanes, of the odd lanes, then `max(n − 1, 0)` (even, odd), the rounding-bit masks
    /// `n > 0` (even, odd), and `bias · m` (even, odd).
    eo16: Vec<i64>,
    /// The same per block of 8 channels (groups of 4) for AVX2.
    eo8: Vec<i64>,
    /// 16-bit mode, per channel: `m`, `2^(n−1)` (0 for `n = 0`) and `n`, as `i64`.
    m64: Vec<i64>,
    half64: Vec<i64>,
    n64: Vec<i64>,
    /// Every `|bias| < 2^62`, so `bias + Σ` (|Σ| < 2^62) cannot overflow 64 bits and the
    /// vector 16-bit epilogue applies.
    bias64_small: bool,
    pub(crate) out: OutRange,
}

/// Channel padding of the parameter arrays.
const PAD: usize = 32;

impl ChannelRequant {
    /// Parameters for `n` channels: `requant` has `n` entries or one; `bias` (8-bit: INT32
    /// values) is `Bias::None`, or `n` values.
    pub(crate) fn new(n: usize, bias: Bias<'_>, requant: &[Requant], out: OutRange) -> Self {
        let len = n.next_multiple_of(PAD).max(PAD);
        let mut bias32 = vec![0; len];
        let mut bias64 = vec![0; len];
        match bias {
            Bias::None => {}
            Bias::I32(b) => {
                bias32[..n].copy_from_slice(b);
                for (d, &s) in bias64.iter_mut().zip(b) {
                    *d = s as i64;
                }
            }
            Bias::I64(b) => bias64[..n].copy_from_slice(b),
        }
        let mut mult = vec![0; len];
        let mut shift = vec![0; len];
        for c in 0..n {
            let m = if requant.len() == 1 {
                requant[0]
            } else {
                requant[c]
            };
            mult[c] = m.multiplier;
            shift[c] = m.shift;
        }
        // |bias · m| < 2^62 (8-bit mode: INT32 bias).
        let layout = |lanes: usize| -> Vec<i64> {
            let mut v = vec![0i64; len * 4];
            for blk in 0..len / lanes {
                let d = &mut v[blk * lanes * 4..(blk + 1) * lanes * 4];
                for l in 0..lanes {
                    let c = blk * lanes + l;
                    let n = shift[c] as i64;
                    let pos = (l % 2) * (lanes / 2) + l / 2;
                    d[pos] = n;
                    d[lanes + pos] = (n - 1).max(0);
                    d[2 * lanes + pos] = (n > 0) as i64;
                    d[3 * lanes + pos] = bias32[c] as i64 * mult[c] as i64;
                }
            }
            v
        };
        let (eo16, eo8) = (layout(16), layout(8));
        let m64 = mult.iter().map(|&m| m as i64).collect();
        let half64 = shift
            .iter()
            .map(|&n| if n == 0 { 0 } else { 1i64 << (n - 1) })
            .collect();
        let n64 = shift.iter().map(|&n| n as i64).collect();
        let bias64_small = bias64.iter().all(|b| b.unsigned_abs() < 1 << 62);
        ChannelRequant {
            bias32,
            bias64,
            corr: vec![0; len],
            mult,
            shift,
            eo16,
            eo8,
            m64,
            half64,
            n64,
            bias64_small,
            out,
        }
    }

    /// Sets the per-channel INT32 correction subtracted from INT32 sums.
    pub(crate) fn set_corr(&mut self, corr: &[i32]) {
        self.corr[..corr.len()].copy_from_slice(corr);
    }

    /// Requantizes INT32 sums of channels `c0..c0 + acc.len()` into `out` (`c0` a multiple of
    /// 16 for the AVX-512 path, of 8 for the AVX2 path; other offsets run the scalar code).
    #[inline]
    pub(crate) fn row_i32<O: QInt>(&self, isa: Isa, c0: usize, acc: &[i32], out: &mut [O]) {
        let n = acc.len();
        assert!(
            c0 + n <= self.mult.len() && out.len() >= n,
            "int epilogue: row"
        );
        let mut done = 0;
        #[cfg(target_arch = "x86_64")]
        {
            let isa = isa.clamp();
            let width = size_of::<O>();
            if isa >= Isa::Avx512Bw && c0.is_multiple_of(16) && width <= 2 {
                // SAFETY: the CPU has avx512f/bw (clamped level); `acc` and `out` hold `n`
                // elements (asserted) and every parameter array covers channel c0 + n rounded
                // up to 16 (they are padded to a multiple of 32); `O` is `width` (1 or 2) bytes
                // wide, which is what the masked stores write.
                unsafe { x86::row_i32_512(self, c0, acc, out.as_mut_ptr().cast(), width) };
                return;
            }
            if isa >= Isa::Avx2 && c0.is_multiple_of(8) && width <= 2 {
                done = n / 8 * 8;
                // SAFETY: the CPU has avx2; the first `done` (a multiple of 8) elements of `acc`
                // and `out` exist, the parameter arrays cover them, and `O` is `width` bytes,
                // signed when its minimum is negative.
                unsafe {
                    x86::row_i32_avx2(
                        self,
                        c0,
                        &acc[..done],
                        out.as_mut_ptr().cast(),
                        width,
                        O::MIN_I32 < 0,
                    )
                };
            }
        }
        let _ = isa;
        for (i, (&a, o)) in acc.iter().zip(out.iter_mut()).enumerate().skip(done) {
            *o = O::from_i32(self.one_i32(c0 + i, a));
        }
    }

    /// False for an empty block; panics when the parameters do not cover channels
    /// `c0..c0 + cols` or a buffer (`(length, row stride)`) does not hold every row.
    fn block_fits(
        &self,
        c0: usize,
        cols: usize,
        rows: usize,
        (acc_len, lda): (usize, usize),
        (out_len, ldc): (usize, usize),
    ) -> bool {
        if rows == 0 {
            return false;
        }
        assert!(
            c0 + cols <= self.mult.len()
                && acc_len >= (rows - 1) * lda + cols
                && out_len >= (rows - 1) * ldc + cols,
            "int epilogue: block"
        );
        true
    }

    /// [`ChannelRequant::row_i32`] on `rows` rows of `cols` sums, row `r` at `acc[r · lda..]`
    /// into `out[r · ldc..]`: the AVX-512 path loads each channel group's parameters once.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub(crate) fn block_i32<O: QInt>(
        &self,
        isa: Isa,
        c0: usize,
        acc: &[i32],
        lda: usize,
        rows: usize,
        cols: usize,
        out: &mut [O],
        ldc: usize,
    ) {
        if !self.block_fits(c0, cols, rows, (acc.len(), lda), (out.len(), ldc)) {
            return;
        }
        #[cfg(target_arch = "x86_64")]
        {
            let width = size_of::<O>();
            if isa.clamp() >= Isa::Avx512Bw && c0.is_multiple_of(16) && width <= 2 {
                // SAFETY: the CPU has avx512f/bw (clamped level); `acc` and `out` hold every
                // row (asserted); the parameter arrays cover channel c0 + cols rounded up to
                // 16 (they are padded to a multiple of 32); `O` is `width` bytes wide.
                unsafe {
                    x86::rows_i32_512(
                        self,
                        c0,
                        acc,
                        cols,
                        rows,
                        lda,
                        out.as_mut_ptr().cast(),
                        ldc,
                        width,
                    )
                };
                return;
            }
        }
        for r in 0..rows {
            let dst = &mut out[r * ldc..r * ldc + cols];
            self.row_i32(isa, c0, &acc[r * lda..r * lda + cols], dst);
        }
    }

    /// [`ChannelRequant::row_i64`] on `rows` rows, as [`ChannelRequant::block_i32`].
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub(crate) fn block_i64<O: QInt>(
        &self,
        isa: Isa,
        c0: usize,
        acc: &[i64],
        lda: usize,
        rows: usize,
        cols: usize,
        out: &mut [O],
        ldc: usize,
    ) {
        if !self.block_fits(c0, cols, rows, (acc.len(), lda), (out.len(), ldc)) {
            return;
        }
        #[cfg(target_arch = "x86_64")]
        {
            let width = size_of::<O>();
            if isa.clamp() >= Isa::Avx512Bw && width <= 2 && self.bias64_small {
                // SAFETY: the CPU has avx512f/bw; `acc` and `out` hold every row and the
                // parameter arrays channel c0 + cols (asserted, padded to a multiple of 32);
                // `O` is `width` bytes; |bias| < 2^62 and the sums are below 2^62.
                unsafe {
                    x86::rows_i64_512(
                        self,
                        c0,
                        acc,
                        cols,
                        rows,
                        lda,
                        out.as_mut_ptr().cast(),
                        ldc,
                        width,
                    )
                };
                return;
            }
        }
        for r in 0..rows {
            let dst = &mut out[r * ldc..r * ldc + cols];
            self.row_i64(isa, c0, &acc[r * lda..r * lda + cols], dst);
        }
    }

    /// Scalar requantization of one INT32 sum of channel `c`.
    #[inline(always)]
    pub(crate) fn one_i32(&self, c: usize, a: i32) -> i32 {
        let s = a.wrapping_sub(self.corr[c]);
        let v = self.bias32[c] as i64 + s as i64;
        // |v| ≤ 2^32, so v · m fits in 63 bits.
        let r = rshift_round(v * self.mult[c] as i64, self.shift[c]);
        sat(r, &self.out)
    }

    /// Requantizes INT64 sums (16-bit mode) of channels `c0..c0 + acc.len()`; each sum must
    /// be below 2^62 in magnitude (true of every `Σ w·x` of fewer than 2^32 products).
    #[inline]
    pub(crate) fn row_i64<O: QInt>(&self, isa: Isa, c0: usize, acc: &[i64], out: &mut [O]) {
        let n = acc.len();
        assert!(
            c0 + n <= self.mult.len() && out.len() >= n,
            "int epilogue: row"
        );
        let mut done = 0;
        #[cfg(target_arch = "x86_64")]
        {
            let isa = isa.clamp();
            let width = size_of::<O>();
            if isa >= Isa::Avx512Bw && width <= 2 && self.bias64_small {
                // SAFETY: the CPU has avx512f/bw; `acc` and `out` hold `n` elements and the
                // parameter arrays `c0 + n` (asserted); `O` is `width` bytes, which is what the
                // masked stores write; |bias| < 2^62 and |acc| < 2^62, as the kernel requires.
                unsafe { x86::row_i64_512(self, c0, acc, out.as_mut_ptr().cast(), width) };
                return;
            }
            if isa >= Isa::Avx2 && self.bias64_small {
                done = n / 4 * 4;
                let mut tmp = [0i32; 4];
                for i in (0..done).step_by(4) {
                    // SAFETY: the CPU has avx2; elements i..i + 4 of `acc` and the parameter
                    // arrays exist; the bounds on bias and acc hold as above.
                    unsafe { x86::quad_i64_avx2(self, c0 + i, &acc[i..i + 4], &mut tmp) };
                    for (o, &t) in out[i..i + 4].iter_mut().zip(&tmp) {
                        *o = O::from_i32(t);
                    }
                }
            }
        }
        let _ = isa;
        for (i, (&a, o)) in acc.iter().zip(out.iter_mut()).enumerate().skip(done) {
            *o = O::from_i32(self.one_i64(c0 + i, a));
        }
    }

    /// Scalar requantization of one INT64 sum of channel `c` (16-bit mode).
    #[inline(always)]
    pub(crate) fn one_i64(&self, c: usize, a: i64) -> i32 {
        let m = Requant {
            multiplier: self.mult[c],
            shift: self.shift[c],
        };
        let r = match a.checked_add(self.bias64[c]) {
            Some(v) => requant(v, m),
            None => requant_i128(a as i128 + self.bias64[c] as i128, m),
        };
        sat(r, &self.out)
    }
}

#[inline(always)]
fn sat(r: i64, out: &OutRange) -> i32 {
    super::arith::sat_out(r, out)
}

/// Bias of a layer.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Bias<'a> {
    None,
    I32(&'a [i32]),
    I64(&'a [i64]),
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::ChannelRequant;
    use std::arch::x86_64::*;

    /// AVX-512 epilogue of one row of INT32 sums.
    ///
    /// # Safety
    ///
    /// The CPU supports avx512f and avx512bw; `c0` is a multiple of 16; `acc` and `out` hold
    /// `acc.len()` elements of `width` bytes (1 or 2); the parameter arrays of `rq` cover
    /// channel `c0 + acc.len()` rounded up to 16.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn row_i32_512(
        rq: &ChannelRequant,
        c0: usize,
        acc: &[i32],
        out: *mut u8,
        width: usize,
    ) {
        // SAFETY: one row, as the caller guarantees.
        unsafe { rows_i32_512(rq, c0, acc, acc.len(), 1, 0, out, 0, width) }
    }

    /// AVX-512 epilogue of `rows` rows of `n` INT32 sums each, row `r` at `acc[r · lda..]` and
    /// written at element `r · ldc` of `out`; each group of 16 channels loads its parameters
    /// once for all rows.
    ///
    /// # Safety
    ///
    /// As [`row_i32_512`] for every row: `acc` holds `(rows − 1) · lda + n` elements, `out`
    /// `(rows − 1) · ldc + n` elements of `width` bytes.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn rows_i32_512(
        rq: &ChannelRequant,
        c0: usize,
        acc: &[i32],
        n: usize,
        rows: usize,
        lda: usize,
        out: *mut u8,
        ldc: usize,
        width: usize,
    ) {
        let o = &rq.out;
        let lo = _mm512_set1_epi64(o.min as i64 - o.zero_point as i64);
        let hi = _mm512_set1_epi64(o.max as i64 - o.zero_point as i64);
        let z = _mm512_set1_epi64(o.zero_point as i64);
        let mut i = 0;
        while i < n {
            let k = (n - i).min(16);
            let mask: __mmask16 = if k == 16 { 0xFFFF } else { (1u16 << k) - 1 };
            let c = c0 + i;
            // SAFETY: `c` is a multiple of 16 and the parameter arrays cover c + 16; `acc`
            // is read with the lane mask, `out` written with it.
            unsafe {
                let corr = _mm512_loadu_si512(rq.corr.as_ptr().add(c).cast());
                let m = _mm512_loadu_si512(rq.mult.as_ptr().add(c).cast());
                let m_odd = _mm512_srli_epi64::<32>(m);
                let p = rq.eo16.as_ptr().add(c * 4);
                let ld = |g: usize| _mm512_loadu_si512(p.add(8 * g).cast());
                let params = [ld(0), ld(1), ld(2), ld(3), ld(4), ld(5), ld(6), ld(7)];
                for r in 0..rows {
                    let a = _mm512_maskz_loadu_epi32(mask, acc.as_ptr().add(r * lda + i));
                    // Exact Σ (fits INT32); (bias + Σ)·m = bias·m + Σ·m, |each| < 2^62.
                    let d = _mm512_sub_epi32(a, corr);
                    let pe = _mm512_add_epi64(_mm512_mul_epi32(d, m), params[6]);
                    let po = _mm512_add_epi64(
                        _mm512_mul_epi32(_mm512_srli_epi64::<32>(d), m_odd),
                        params[7],
                    );
                    // rshift_round(p, n) = (p >> n) + ((p >> max(n − 1, 0)) & (n > 0)), then
                    // sat_out: clamp to [min − z, max − z] and add z.
                    let round = |p: __m512i, g: usize| {
                        let r = _mm512_add_epi64(
                            _mm512_srav_epi64(p, params[g]),
                            _mm512_and_si512(_mm512_srav_epi64(p, params[g + 2]), params[g + 4]),
                        );
                        _mm512_add_epi64(_mm512_min_epi64(_mm512_max_epi64(r, lo), hi), z)
                    };
                    let re = round(pe, 0);
                    let ro = round(po, 1);
                    let y = _mm512_mask_blend_epi32(0xAAAA, re, _mm512_slli_epi64::<32>(ro));
                    let at = r * ldc + i;
                    if width == 2 {
                        _mm512_mask_cvtepi32_storeu_epi16(out.add(2 * at).cast(), mask, y);
                    } else {
                        _mm512_mask_cvtepi32_storeu_epi8(out.add(at).cast(), mask, y);
                    }
                }
            }
            i += 16;
        }
    }

    /// AVX2 epilogue of a row of INT32 sums whose length is a multiple of 8.
    ///
    /// # Safety
    ///
    /// The CPU supports avx2; `c0` is a multiple of 8; `acc.len()` is a multiple of 8; `out`
    /// holds `acc.len()` elements of `width` bytes (1 or 2), signed if `signed`; the parameter
    /// arrays of `rq` cover channel `c0 + acc.len()`.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn row_i32_avx2(
        rq: &ChannelRequant,
        c0: usize,
        acc: &[i32],
        out: *mut u8,
        width: usize,
        signed: bool,
    ) {
        let o = &rq.out;
        let lo = _mm256_set1_epi64x(o.min as i64 - o.zero_point as i64);
        let hi = _mm256_set1_epi64x(o.max as i64 - o.zero_point as i64);
        let z = _mm256_set1_epi64x(o.zero_point as i64);
        let zero = _mm256_setzero_si256();
        for i in (0..acc.len() / 8 * 8).step_by(8) {
            let c = c0 + i;
            // SAFETY: `c` is a multiple of 8 and the parameter arrays cover c + 8; `acc` has
            // 8 elements from `i`, `out` room for 8 elements of `width` bytes.
            unsafe {
                let a = _mm256_loadu_si256(acc.as_ptr().add(i).cast());
                let corr = _mm256_loadu_si256(rq.corr.as_ptr().add(c).cast());
                let m = _mm256_loadu_si256(rq.mult.as_ptr().add(c).cast());
                let p = rq.eo8.as_ptr().add(c * 4);
                let ld = |g: usize| _mm256_loadu_si256(p.add(4 * g).cast());
                let d = _mm256_sub_epi32(a, corr);
                let pe = _mm256_add_epi64(_mm256_mul_epi32(d, m), ld(6));
                let po = _mm256_add_epi64(
                    _mm256_mul_epi32(_mm256_srli_epi64::<32>(d), _mm256_srli_epi64::<32>(m)),
                    ld(7),
                );
                // Arithmetic shift by a variable count: (p ^ s) >>> n ^ s with s the sign mask.
                let round = |p: __m256i, g: usize| {
                    let s = _mm256_cmpgt_epi64(zero, p);
                    let ps = _mm256_xor_si256(p, s);
                    let q = _mm256_xor_si256(_mm256_srlv_epi64(ps, ld(g)), s);
                    let q1 = _mm256_xor_si256(_mm256_srlv_epi64(ps, ld(g + 2)), s);
                    let r = _mm256_add_epi64(q, _mm256_and_si256(q1, ld(g + 4)));
                    let r = _mm256_blendv_epi8(r, lo, _mm256_cmpgt_epi64(lo, r));
                    let r = _mm256_blendv_epi8(r, hi, _mm256_cmpgt_epi64(r, hi));
                    _mm256_add_epi64(r, z)
                };
                let re = round(pe, 0);
                let ro = round(po, 1);
                let y = _mm256_blend_epi32::<0b1010_1010>(re, _mm256_slli_epi64::<32>(ro));
                // Values are inside the output type: the packs are exact.
                let w16 = if signed || width == 1 {
                    _mm256_packs_epi32(y, y)
                } else {
                    _mm256_packus_epi32(y, y)
                };
                let w16 = _mm256_castsi256_si128(_mm256_permute4x64_epi64::<0b1000>(w16));
                if width == 2 {
                    _mm_storeu_si128(out.add(2 * i).cast(), w16);
                } else {
                    let b = if signed {
                        _mm_packs_epi16(w16, w16)
                    } else {
                        _mm_packus_epi16(w16, w16)
                    };
                    _mm_storel_epi64(out.add(i).cast(), b);
                }
            }
        }
    }

    /// AVX-512 epilogue of one row of INT64 sums (16-bit mode), exact:
    /// with `v = Σ + bias = vh·2³² + vl` (`0 ≤ vl < 2³²`), `v·m + 2ⁿ⁻¹ = T·2³² + L_lo` where
    /// `H = vh·m`, `L = vl·m + 2ⁿ⁻¹` (< 2⁶⁴ unsigned), `T = H + (L >> 32)`, `L_lo = L mod 2³²`.
    /// For `n ≥ 32` the result is `T >> (n − 32)`; for `n < 32` it is
    /// `T·2^(32−n) + (L_lo >> n)`, where `T` may first be clamped to `±2²⁰` because any larger
    /// `|T|` saturates every output type.
    ///
    /// # Safety
    ///
    /// The CPU supports avx512f and avx512bw; `acc` and `out` hold `acc.len()` elements
    /// (`out` of `width` = 1 or 2 bytes); the parameter arrays cover `c0 + acc.len()`; every
    /// `|acc| < 2^62` and every `|bias| < 2^62`.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn row_i64_512(
        rq: &ChannelRequant,
        c0: usize,
        acc: &[i64],
        out: *mut u8,
        width: usize,
    ) {
        // SAFETY: one row, as the caller guarantees.
        unsafe { rows_i64_512(rq, c0, acc, acc.len(), 1, 0, out, 0, width) }
    }

    /// [`row_i64_512`] on `rows` rows of `n` sums, row `r` at `acc[r · lda..]` and written at
    /// element `r · ldc` of `out`; each group of 8 channels loads its parameters once.
    ///
    /// # Safety
    ///
    /// As [`row_i64_512`] for every row: `acc` holds `(rows − 1) · lda + n` elements, `out`
    /// `(rows − 1) · ldc + n` elements of `width` bytes.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn rows_i64_512(
        rq: &ChannelRequant,
        c0: usize,
        acc: &[i64],
        n: usize,
        rows: usize,
        lda: usize,
        out: *mut u8,
        ldc: usize,
        width: usize,
    ) {
        let o = &rq.out;
        let lo = _mm512_set1_epi64(o.min as i64 - o.zero_point as i64);
        let hi = _mm512_set1_epi64(o.max as i64 - o.zero_point as i64);
        let z = _mm512_set1_epi64(o.zero_point as i64);
        let c32 = _mm512_set1_epi64(32);
        let tmax = _mm512_set1_epi64(1 << 20);
        let tmin = _mm512_set1_epi64(-(1 << 20));
        let low32 = _mm512_set1_epi64(0xFFFF_FFFF);
        let mut i = 0;
        while i < n {
            let k = (n - i).min(8);
            let mask: __mmask8 = if k == 8 { 0xFF } else { (1u8 << k) - 1 };
            let c = c0 + i;
            // SAFETY: the parameter arrays cover c + k (padded to a multiple of 32 ≥ c + 8);
            // `acc` is read and `out` written with the lane mask.
            unsafe {
                let b = _mm512_loadu_si512(rq.bias64.as_ptr().add(c).cast());
                let m = _mm512_loadu_si512(rq.m64.as_ptr().add(c).cast());
                let half = _mm512_loadu_si512(rq.half64.as_ptr().add(c).cast());
                let nn = _mm512_loadu_si512(rq.n64.as_ptr().add(c).cast());
                let big = _mm512_cmpge_epi64_mask(nn, c32);
                let right = _mm512_max_epi64(_mm512_sub_epi64(nn, c32), _mm512_setzero_si512());
                let left = _mm512_sub_epi64(c32, nn);
                for row in 0..rows {
                    let a = _mm512_maskz_loadu_epi64(mask, acc.as_ptr().add(row * lda + i));
                    let v = _mm512_add_epi64(a, b);
                    let h = _mm512_mul_epi32(_mm512_srai_epi64::<32>(v), m);
                    let l = _mm512_add_epi64(_mm512_mul_epu32(v, m), half);
                    let t = _mm512_add_epi64(h, _mm512_srli_epi64::<32>(l));
                    let ra = _mm512_srav_epi64(t, right);
                    let tc = _mm512_min_epi64(_mm512_max_epi64(t, tmin), tmax);
                    let rb = _mm512_add_epi64(
                        _mm512_sllv_epi64(tc, left),
                        _mm512_srlv_epi64(_mm512_and_si512(l, low32), nn),
                    );
                    let r = _mm512_mask_blend_epi64(big, rb, ra);
                    let y = _mm512_add_epi64(_mm512_min_epi64(_mm512_max_epi64(r, lo), hi), z);
                    let at = row * ldc + i;
                    if width == 2 {
                        _mm512_mask_cvtepi64_storeu_epi16(out.add(2 * at).cast(), mask, y);
                    } else {
                        _mm512_mask_cvtepi64_storeu_epi8(out.add(at).cast(), mask, y);
                    }
                }
            }
            i += 8;
        }
    }

    /// AVX2 version of [`row_i64_512`] for four sums of channels `c..c + 4`, into `out`.
    ///
    /// # Safety
    ///
    /// The CPU supports avx2; `acc` holds 4 elements; the parameter arrays cover `c + 4`; the
    /// bounds on `acc` and the bias of [`row_i64_512`] hold.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn quad_i64_avx2(
        rq: &ChannelRequant,
        c: usize,
        acc: &[i64],
        out: &mut [i32; 4],
    ) {
        let o = &rq.out;
        // SAFETY: the bounds above.
        unsafe {
            let zero = _mm256_setzero_si256();
            let c32 = _mm256_set1_epi64x(32);
            let sra = |x: __m256i, n: __m256i| {
                let s = _mm256_cmpgt_epi64(zero, x);
                _mm256_xor_si256(_mm256_srlv_epi64(_mm256_xor_si256(x, s), n), s)
            };
            let clamp = |x: __m256i, lo: i64, hi: i64| {
                let (lo, hi) = (_mm256_set1_epi64x(lo), _mm256_set1_epi64x(hi));
                let x = _mm256_blendv_epi8(x, lo, _mm256_cmpgt_epi64(lo, x));
                _mm256_blendv_epi8(x, hi, _mm256_cmpgt_epi64(x, hi))
            };
            let a = _mm256_loadu_si256(acc.as_ptr().cast());
            let b = _mm256_loadu_si256(rq.bias64.as_ptr().add(c).cast());
            let m = _mm256_loadu_si256(rq.m64.as_ptr().add(c).cast());
            let half = _mm256_loadu_si256(rq.half64.as_ptr().add(c).cast());
            let nn = _mm256_loadu_si256(rq.n64.as_ptr().add(c).cast());
            let v = _mm256_add_epi64(a, b);
            let h = _mm256_mul_epi32(sra(v, c32), m);
            let l = _mm256_add_epi64(_mm256_mul_epu32(v, m), half);
            let t = _mm256_add_epi64(h, _mm256_srli_epi64::<32>(l));
            let big = _mm256_cmpgt_epi64(nn, _mm256_set1_epi64x(31));
            let ra = sra(t, _mm256_and_si256(_mm256_sub_epi64(nn, c32), big));
            let tc = clamp(t, -(1 << 20), 1 << 20);
            let rb = _mm256_add_epi64(
                _mm256_sllv_epi64(tc, _mm256_sub_epi64(c32, nn)),
                _mm256_srlv_epi64(_mm256_and_si256(l, _mm256_set1_epi64x(0xFFFF_FFFF)), nn),
            );
            let r = _mm256_blendv_epi8(rb, ra, big);
            let z = o.zero_point as i64;
            let y = _mm256_add_epi64(
                clamp(r, o.min as i64 - z, o.max as i64 - z),
                _mm256_set1_epi64x(z),
            );
            let mut tmp = [0i64; 4];
            _mm256_storeu_si256(tmp.as_mut_ptr().cast(), y);
            for (d, &v) in out.iter_mut().zip(&tmp) {
                *d = v as i32;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::int::testutil::Rng;

    /// The AVX-512 row equals the scalar definition for random and extreme parameters.
    #[test]
    fn vector_rows_match_scalar() {
        let mut rng = Rng::new(3);
        for trial in 0..200 {
            let n = 1 + rng.below(70);
            let requant: Vec<Requant> = (0..n)
                .map(|_| Requant {
                    multiplier: rng.extreme(0, i32::MAX),
                    shift: rng.extreme(0, 62) as u32,
                })
                .collect();
            let bias: Vec<i32> = (0..n).map(|_| rng.extreme(i32::MIN, i32::MAX)).collect();
            let (min, max, zp) = if trial % 2 == 0 {
                (-32768, 32767, 0)
            } else {
                (
                    rng.extreme(0, 100),
                    rng.extreme(150, 255),
                    rng.extreme(0, 255),
                )
            };
            let out = OutRange {
                zero_point: zp,
                min,
                max,
            };
            let mut rq = ChannelRequant::new(n, Bias::I32(&bias), &requant, out);
            let corr: Vec<i32> = (0..n).map(|_| rng.extreme(i32::MIN, i32::MAX)).collect();
            rq.set_corr(&corr);
            let acc: Vec<i32> = (0..n).map(|_| rng.extreme(i32::MIN, i32::MAX)).collect();
            let want: Vec<i32> = (0..n)
                .map(|c| {
                    let s = acc[c].wrapping_sub(corr[c]) as i128 + bias[c] as i128;
                    let p = s * requant[c].multiplier as i128;
                    let n = requant[c].shift;
                    let r = if n == 0 {
                        p
                    } else {
                        (p + (1i128 << (n - 1))) >> n
                    };
                    (r + zp as i128).clamp(min as i128, max as i128) as i32
                })
                .collect();
            for isa in Isa::supported() {
                if trial % 2 == 0 {
                    let mut got = vec![0i16; n];
                    rq.row_i32(isa, 0, &acc, &mut got);
                    let got: Vec<i32> = got.iter().map(|&v| v as i32).collect();
                    assert_eq!(got, want, "{isa}");
                } else {
                    let mut got = vec![0u8; n];
                    rq.row_i32(isa, 0, &acc, &mut got);
                    let got: Vec<i32> = got.iter().map(|&v| v as i32).collect();
                    assert_eq!(got, want, "{isa}");
                }
            }
        }
    }

    /// The 16-bit rows (AVX-512, AVX2, scalar) equal the 128-bit definition, for sums and
    /// biases up to ±2^61 and every shift.
    #[test]
    fn vector_i64_rows_match_definition() {
        let mut rng = Rng::new(4);
        for trial in 0..300 {
            let n = 1 + rng.below(40);
            let requant: Vec<Requant> = (0..n)
                .map(|_| Requant {
                    multiplier: rng.extreme(0, i32::MAX),
                    shift: rng.extreme(0, 62) as u32,
                })
                .collect();
            let wide = |rng: &mut Rng| -> i64 {
                let v = (rng.next() as i64) >> rng.below(63);
                v.clamp(-(1 << 61), 1 << 61)
            };
            let bias: Vec<i64> = (0..n).map(|_| wide(&mut rng)).collect();
            let acc: Vec<i64> = (0..n).map(|_| wide(&mut rng)).collect();
            let (dt, out) = if trial % 2 == 0 {
                (
                    ipukit_ir::DType::I16,
                    OutRange {
                        zero_point: 0,
                        min: rng.extreme(-32768, 0),
                        max: 32767,
                    },
                )
            } else {
                let z = rng.extreme(0, 255);
                (
                    ipukit_ir::DType::U8,
                    OutRange {
                        zero_point: z,
                        min: 0,
                        max: 255,
                    },
                )
            };
            let rq = ChannelRequant::new(n, Bias::I64(&bias), &requant, out);
            let want: Vec<i32> = (0..n)
                .map(|c| {
                    crate::int::testutil::requant_def(
                        acc[c] as i128 + bias[c] as i128,
                        requant[c],
                        &out,
                    )
                })
                .collect();
            for isa in Isa::supported() {
                let got: Vec<i32> = if dt == ipukit_ir::DType::I16 {
                    let mut o = vec![0i16; n];
                    rq.row_i64(isa, 0, &acc, &mut o);
                    o.iter().map(|&v| v as i32).collect()
                } else {
                    let mut o = vec![0u8; n];
                    rq.row_i64(isa, 0, &acc, &mut o);
                    o.iter().map(|&v| v as i32).collect()
                };
                assert_eq!(got, want, "{isa} trial {trial}");
            }
        }
    }

    #[test]
    fn wide_sums_use_128_bits() {
        let m = Requant {
            multiplier: i32::MAX,
            shift: 62,
        };
        let rq = ChannelRequant::new(
            1,
            Bias::I64(&[i64::MAX]),
            &[m],
            OutRange::full(ipukit_ir::DType::I16, 0),
        );
        // (2^63 − 1 + 2^62) · (2^31 − 1) / 2^62 ≈ 3·2^30: saturates at 32767.
        assert_eq!(rq.one_i64(0, 1 << 62), 32767);
        let m1 = Requant {
            multiplier: 1 << 30,
            shift: 62,
        };
        let rq = ChannelRequant::new(
            1,
            Bias::I64(&[i64::MAX]),
            &[m1],
            OutRange::full(ipukit_ir::DType::I16, 0),
        );
        // (2^63 − 1 + 2^63) · 2^30 / 2^62 = 2^32 − 2^-32 → saturates; with a negative sum:
        assert_eq!(rq.one_i64(0, i64::MAX), 32767);
        let rq = ChannelRequant::new(
            1,
            Bias::I64(&[i64::MIN]),
            &[m1],
            OutRange::full(ipukit_ir::DType::I16, 0),
        );
        assert_eq!(rq.one_i64(0, 1 << 62), -32768);
        let rq = ChannelRequant::new(
            1,
            Bias::I64(&[-(1 << 40)]),
            &[Requant {
                multiplier: 1 << 30,
                shift: 40,
            }],
            OutRange::full(ipukit_ir::DType::I16, 0),
        );
        // (−2^40 + 3·2^37) · 2^30 / 2^40 = −2^30 + 3·2^27 = −2^27·5 → saturates at −32768.
        assert_eq!(rq.one_i64(0, 3 << 37), -32768);
        // Small: (−2^40 + 2^40 + 100) · 2^−10 = 0.0977 → 0.
        assert_eq!(rq.one_i64(0, (1 << 40) + 100), 0);
    }
}
