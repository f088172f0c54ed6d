//! Deterministic random integers for the integer-kernel tests, biased toward extreme values.

/// A xorshift generator.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub(crate) fn next(&mut self) -> u64 {
        let mut s = self.0;
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        self.0 = s;
        s
    }

    /// Uniform in `0..n` (`n > 0`).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Uniform in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: i32, hi: i32) -> i32 {
        let span = (hi as i64 - lo as i64 + 1) as u64;
        (lo as i64 + (self.next() % span) as i64) as i32
    }

    /// In `lo..=hi`: one time in four an extreme (`lo`, `hi`, `lo + 1`, `hi − 1`, or 0 when
    /// inside), otherwise uniform.
    pub(crate) fn extreme(&mut self, lo: i32, hi: i32) -> i32 {
        if self.next().is_multiple_of(4) {
            let picks = [
                lo,
                hi,
                lo.saturating_add(1).min(hi),
                hi.saturating_sub(1).max(lo),
                0,
            ];
            let v = picks[self.below(picks.len())];
            if (lo..=hi).contains(&v) {
                v
            } else {
                lo
            }
        } else {
            self.range(lo, hi)
        }
    }

    /// `len` values from [`Rng::extreme`] converted with `as`.
    pub(crate) fn vec<T: crate::int::QInt>(&mut self, len: usize) -> Vec<T> {
        (0..len)
            .map(|_| T::from_i32(self.extreme(T::MIN_I32, T::MAX_I32)))
            .collect()
    }
}

/// Runs `f` on a pool of `threads` threads.
pub(crate) fn with_threads<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

use ipukit_ir::ops::fixed::{OutRange, Requant};
use ipukit_ir::DType;

/// `sat_out(z_out + rshift_round(acc · m, n))` straight from the definitions, in 128 bits.
pub(crate) fn requant_def(acc: i128, m: Requant, out: &OutRange) -> i32 {
    let p = acc * m.multiplier as i128;
    let n = m.shift;
    let r = if n == 0 {
        p
    } else {
        (p + (1i128 << (n - 1))) >> n
    };
    (r + out.zero_point as i128).clamp(out.min as i128, out.max as i128) as i32
}

impl Rng {
    /// A multiplier: usually a realistic one for a sum of about `scale_bits` bits, sometimes
    /// an extreme one (multiplier near 2^31 or 0, shift 0 or 62).
    pub(crate) fn requant(&mut self, scale_bits: u32) -> Requant {
        match self.below(8) {
            0 => Requant {
                multiplier: self.extreme(0, i32::MAX),
                shift: self.extreme(0, 62) as u32,
            },
            1 => Requant {
                multiplier: i32::MAX - self.range(0, 3),
                shift: (scale_bits + 31 - 15).min(62),
            },
            _ => Requant {
                multiplier: self.range(1 << 30, i32::MAX),
                shift: (scale_bits as i32 + 31 - 15 + self.range(-3, 3)).clamp(0, 62) as u32,
            },
        }
    }

    /// An output type and range: INT16 full or clipped, or UINT8 with a zero point.
    pub(crate) fn out_range(&mut self, u8_out: bool) -> (DType, OutRange) {
        if u8_out {
            let z = self.extreme(0, 255);
            let relu = self.below(3) == 0;
            (
                DType::U8,
                OutRange {
                    zero_point: z,
                    min: if relu { z } else { 0 },
                    max: 255,
                },
            )
        } else {
            let relu = self.below(3) == 0;
            (
                DType::I16,
                OutRange {
                    zero_point: 0,
                    min: if relu { 0 } else { -32768 },
                    max: if relu { self.range(100, 32767) } else { 32767 },
                },
            )
        }
    }
}

/// Random layer data of both modes: inputs, weights and biases (extreme-biased).
pub(crate) struct LayerData {
    x8: Vec<u8>,
    x16: Vec<i16>,
    w8: Vec<i8>,
    w16: Vec<i16>,
    b32: Vec<i32>,
    b64: Vec<i64>,
}

/// A layer's [`crate::int::QWeights`] and, widened to `i32`/`i64` for a naive reference, its
/// input, weights and optional bias.
pub(crate) type Widened<'a> = (
    crate::int::QWeights<'a>,
    Vec<i32>,
    Vec<i32>,
    Option<Vec<i64>>,
);

impl LayerData {
    /// `nx` input values, `nw` weights and `cout` biases; INT32 biases are shifted right and
    /// INT64 ones left by up to 19 bits so that both small and large biases occur.
    pub(crate) fn random(rng: &mut Rng, nx: usize, nw: usize, cout: usize) -> LayerData {
        let (x8, x16) = (rng.vec(nx), rng.vec(nx));
        let (w8, w16) = (rng.vec(nw), rng.vec(nw));
        let b32 = (0..cout)
            .map(|_| rng.extreme(i32::MIN, i32::MAX) >> rng.below(20))
            .collect();
        let b64 = (0..cout)
            .map(|_| (rng.extreme(i32::MIN, i32::MAX) as i64) << rng.below(20))
            .collect();
        LayerData {
            x8,
            x16,
            w8,
            w16,
            b32,
            b64,
        }
    }

    /// The 16-bit (`bits16`) or 8-bit data, with or without the bias.
    pub(crate) fn weights(&self, bits16: bool, bias: bool) -> Widened<'_> {
        let widen = |v: &[i16]| v.iter().map(|&v| v as i32).collect::<Vec<i32>>();
        if bits16 {
            (
                crate::int::QWeights::Bits16 {
                    weight: &self.w16,
                    bias: bias.then_some(&self.b64[..]),
                },
                widen(&self.x16),
                widen(&self.w16),
                bias.then(|| self.b64.clone()),
            )
        } else {
            (
                crate::int::QWeights::Bits8 {
                    weight: &self.w8,
                    bias: bias.then_some(&self.b32[..]),
                },
                self.x8.iter().map(|&v| v as i32).collect(),
                self.w8.iter().map(|&v| v as i32).collect(),
                bias.then(|| self.b32.iter().map(|&v| v as i64).collect()),
            )
        }
    }

    /// The 8-bit input.
    pub(crate) fn x8(&self) -> &[u8] {
        &self.x8
    }

    /// The 16-bit input.
    pub(crate) fn x16(&self) -> &[i16] {
        &self.x16
    }
}
