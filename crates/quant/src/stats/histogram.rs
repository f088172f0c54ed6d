//! A linear histogram of signed values over a power-of-two range that grows as data arrives.
//!
//! The histogram covers `[-R, R)` with `R = 2^exp` in `2·B` bins of width `w = R / B` (`B`, the
//! bins per side, is a power of two). Bin `i` (0-based) holds the values `x` with
//! `floor(x / w) = i - B`, i.e. `x ∈ [(i - B)·w, (i - B + 1)·w)`.
//!
//! When a value with `|x| ≥ R` arrives, `R` doubles (as many times as needed) and each pair of
//! neighbouring bins merges into one: the new bin of an old bin `j` (signed) is `j >> 1`. A
//! bin index is an exact floor (computed with a power-of-two scale, which is exact in binary
//! floating point), and `floor(floor(x/w)/2^k) = floor(x/(2^k·w))`, so a value lands in the
//! same final bin whether it was added before or after the range grew. Two histograms merge
//! by coarsening the one with the smaller range and adding counts. Counts are integers, so
//! the result of any sequence of `add` and `merge` calls depends only on the multiset of
//! values — not on their order, on how they were split between workers, or on the merge
//! order.
//!
//! The final range is the smallest power of two strictly above `max |x|` (and at least
//! `2^MIN_EXP`), so at least half of the bins of the occupied side lie inside
//! `[0, max |x|]`: with the default `B = 2048`, the histogram of `|x|` has between 1024 and
//! 2048 bins over `[0, max |x|]` (TensorRT's entropy calibration uses 2048).

use crate::error::{QuantError, Result};

/// Smallest range exponent: `R ≥ 2^MIN_EXP`. Values below `2^MIN_EXP / B` in magnitude all
/// fall into the two bins around zero; they are far below any quantization step.
pub const MIN_EXP: i32 = -40;

/// Default bins per side for activations (4096 bins in all).
pub const DEFAULT_BINS_PER_SIDE: u32 = 2048;

/// A mergeable, order-independent histogram of finite `f32` values (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Histogram {
    log2_bins: u32,
    exp: i32,
    counts: Vec<u64>,
}

impl Histogram {
    /// An empty histogram with `bins_per_side` bins on each side of zero; `bins_per_side` must
    /// be a power of two between 2 and 2^20.
    pub fn new(bins_per_side: u32) -> Result<Histogram> {
        if !bins_per_side.is_power_of_two() || !(2..=1 << 20).contains(&bins_per_side) {
            return Err(QuantError::Usage(format!(
                "histogram bins per side must be a power of two between 2 and 1048576, got {bins_per_side}"
            )));
        }
        Ok(Histogram {
            log2_bins: bins_per_side.trailing_zeros(),
            exp: MIN_EXP,
            counts: vec![0; 2 * bins_per_side as usize],
        })
    }

    /// Bins on each side of zero (`B`).
    pub fn bins_per_side(&self) -> usize {
        1 << self.log2_bins
    }

    /// The range exponent: the histogram covers `[-2^exp, 2^exp)`.
    pub fn exp(&self) -> i32 {
        self.exp
    }

    /// `R = 2^exp`.
    pub fn limit(&self) -> f64 {
        2f64.powi(self.exp)
    }

    /// Bin width `R / B`.
    pub fn bin_width(&self) -> f64 {
        2f64.powi(self.exp - self.log2_bins as i32)
    }

    /// The counts, `2·B` of them, from the most negative bin up.
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// The value interval `[lo, hi)` of bin `i`.
    pub fn bin_edges(&self, i: usize) -> (f64, f64) {
        let w = self.bin_width();
        let s = i as f64 - self.bins_per_side() as f64;
        (s * w, (s + 1.0) * w)
    }

    /// Number of values counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The histogram of `|x|`: `B` bins of width `w` over `[0, R)`; bin `j` holds the values
    /// `x ∈ [j·w, (j+1)·w)` and `x ∈ [-(j+1)·w, -j·w)`. (A negative value exactly on a bin
    /// edge is therefore counted one bin lower than the positive value of the same
    /// magnitude; the fold is exact and integer, so it stays order-independent.)
    pub fn abs_counts(&self) -> Vec<u64> {
        let b = self.bins_per_side();
        (0..b)
            .map(|j| self.counts[b + j] + self.counts[b - 1 - j])
            .collect()
    }

    /// The exponent a histogram needs to hold values up to `max_abs` (finite).
    pub fn exp_for(max_abs: f32) -> i32 {
        let bits = max_abs.abs().to_bits();
        let e = ((bits >> 23) & 0xff) as i32 - 127;
        // |x| ∈ [2^e, 2^(e+1)) for normal x; subnormals and zero are below 2^MIN_EXP anyway.
        (e + 1).max(MIN_EXP)
    }

    /// Grows the range to `2^exp` if it is smaller, merging bins.
    pub fn grow_to(&mut self, exp: i32) {
        if exp <= self.exp {
            return;
        }
        let shift = (exp - self.exp).min(62) as u32;
        let b = self.bins_per_side() as i64;
        let mut next = vec![0u64; self.counts.len()];
        for (i, &c) in self.counts.iter().enumerate() {
            if c != 0 {
                let s = i as i64 - b;
                let ns = s >> shift;
                next[(ns + b) as usize] += c;
            }
        }
        self.counts = next;
        self.exp = exp;
    }

    /// Adds values known to be finite and below `2^self.exp()` in magnitude (the caller
    /// grows the range first); anything else lands in a wrong bin, but never out of bounds.
    pub(crate) fn add_finite(&mut self, xs: &[f32]) {
        let b = self.bins_per_side() as i32;
        // 2^(log2 B - exp), a normal f32 for every exp in [MIN_EXP, 128].
        let scale = 2f32.powi(self.log2_bins as i32 - self.exp);
        let mask = (2 * b - 1) as u32;
        let n = self.counts.len();
        // Two passes per block: bin indices (branch-free, vectorisable), then the increments.
        let mut idx = [0u32; 2048];
        if xs.len() < 4 * n {
            for block in xs.chunks(idx.len()) {
                bin_block(block, scale, b, mask, &mut idx);
                for &i in &idx[..block.len()] {
                    if let Some(c) = self.counts.get_mut(i as usize) {
                        *c += 1;
                    }
                }
            }
            return;
        }
        // Large inputs: alternate elements go to two 32-bit sub-histograms, which halves the
        // chains of dependent increments on popular bins (zeros after a ReLU, the peak of a
        // bell), then the sub-histograms are added in. Pieces of at most 2^31 elements keep
        // the 32-bit counts from overflowing.
        let mut even = vec![0u32; n];
        let mut odd = vec![0u32; n];
        for piece in xs.chunks(1 << 31) {
            for block in piece.chunks(idx.len()) {
                bin_block(block, scale, b, mask, &mut idx);
                let ids = &idx[..block.len()];
                let mut pairs = ids.chunks_exact(2);
                for p in &mut pairs {
                    if let Some(c) = even.get_mut(p[0] as usize) {
                        *c += 1;
                    }
                    if let Some(c) = odd.get_mut(p[1] as usize) {
                        *c += 1;
                    }
                }
                for &i in pairs.remainder() {
                    if let Some(c) = even.get_mut(i as usize) {
                        *c += 1;
                    }
                }
            }
            for ((c, e), o) in self.counts.iter_mut().zip(&mut even).zip(&mut odd) {
                *c += u64::from(*e) + u64::from(*o);
                *e = 0;
                *o = 0;
            }
        }
    }

    /// Adds finite values, growing the range first if needed; non-finite values are ignored.
    pub fn add(&mut self, xs: &[f32]) {
        let max_abs = xs
            .iter()
            .filter(|x| x.is_finite())
            .fold(0f32, |m, &x| m.max(x.abs()));
        self.grow_to(Self::exp_for(max_abs));
        if xs.iter().all(|x| x.is_finite()) {
            self.add_finite(xs);
        } else {
            let finite: Vec<f32> = xs.iter().copied().filter(|x| x.is_finite()).collect();
            self.add_finite(&finite);
        }
    }

    /// Adds every count of `other` (same bins per side) to this histogram.
    pub fn merge(&mut self, other: &Histogram) -> Result<()> {
        if other.log2_bins != self.log2_bins {
            return Err(QuantError::Usage(format!(
                "cannot merge histograms with {} and {} bins per side",
                self.bins_per_side(),
                other.bins_per_side()
            )));
        }
        self.grow_to(other.exp);
        if other.exp == self.exp {
            for (a, b) in self.counts.iter_mut().zip(&other.counts) {
                *a += b;
            }
        } else {
            let mut o = other.clone();
            o.grow_to(self.exp);
            for (a, b) in self.counts.iter_mut().zip(&o.counts) {
                *a += b;
            }
        }
        Ok(())
    }

    /// The same data with `bins_per_side / 2^k` bins per side (exact: bins merge in pairs).
    pub fn coarsen(&self, bins_per_side: u32) -> Result<Histogram> {
        let mut out = Histogram::new(bins_per_side)?;
        if out.log2_bins > self.log2_bins {
            return Err(QuantError::Usage(format!(
                "cannot refine a histogram from {} to {bins_per_side} bins per side",
                self.bins_per_side()
            )));
        }
        out.exp = self.exp;
        let shift = self.log2_bins - out.log2_bins;
        let b = self.bins_per_side() as i64;
        let nb = out.bins_per_side() as i64;
        for (i, &c) in self.counts.iter().enumerate() {
            let ns = (i as i64 - b) >> shift;
            out.counts[(ns + nb) as usize] += c;
        }
        Ok(out)
    }
}

/// Bin indices `floor(x · scale) + b` of a block of values (masked into `[0, 2b)`; exact for
/// `|x · scale| < b`).
#[inline]
fn bin_block(block: &[f32], scale: f32, b: i32, mask: u32, idx: &mut [u32]) {
    for (o, &x) in idx.iter_mut().zip(block) {
        *o = ((bin_index(x, scale) + b) as u32) & mask;
    }
}

/// `floor(x · scale)` for finite `x` with `|x · scale| < 2^22` and a power-of-two `scale`,
/// exactly.
///
/// `v = x · scale` is exact whenever the product is a normal number. Adding and subtracting
/// `1.5 · 2^23` rounds `v` to the nearest integer `r` (exact for `|v| < 2^22`), read from the
/// low mantissa bits; `floor(v) = r - 1` when `r > v`. When the product underflows its
/// magnitude is below 1, where the floor is 0 for `x ≥ 0` and -1 for `x < 0`; a negative
/// product that underflows to -0.0 is caught by the second test. Only float adds, compares
/// and integer arithmetic: the loop vectorises on baseline x86-64.
#[inline]
pub(crate) fn bin_index(x: f32, scale: f32) -> i32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 · 2^23
    let v = x * scale;
    let y = v + MAGIC;
    let r = (y.to_bits() as i32).wrapping_sub(MAGIC.to_bits() as i32);
    let below = ((y - MAGIC) > v) | ((v == 0.0) & (x < 0.0));
    r - i32::from(below)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_bin(x: f64, exp: i32, log2_bins: u32) -> i64 {
        (x / 2f64.powi(exp - log2_bins as i32)).floor() as i64
    }

    #[test]
    fn bin_index_is_an_exact_floor() {
        let scale = 2f32.powi(11);
        for &x in &[
            0.0f32,
            -0.0,
            1e-30,
            -1e-30,
            f32::MIN_POSITIVE,
            -f32::MIN_POSITIVE,
            1e-45,
            -1e-45,
            0.5,
            -0.5,
            0.99999994,
            -0.99999994,
            0.25,
            -0.25,
            2.0f32.powi(-11),
            -(2.0f32.powi(-11)),
        ] {
            let want = (x as f64 * scale as f64).floor() as i64;
            assert_eq!(bin_index(x, scale) as i64, want, "x = {x:e}");
        }
        // Pseudo-random magnitudes and signs over many scales.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..200_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let e = (state % 60) as i32 - 40;
            let x = f32::from_bits((state >> 32) as u32 & 0x807f_ffff | 0x3f80_0000) * 2f32.powi(e);
            let scale = 2f32.powi(11 - (e + 1) - ((state >> 8) % 40) as i32);
            let want = (f64::from(x) * f64::from(scale)).floor() as i64;
            assert_eq!(
                bin_index(x, scale) as i64,
                want,
                "x = {x:e}, scale = {scale:e}"
            );
        }
        // Underflowing products: x tiny and scale tiny.
        let tiny_scale = 2f32.powi(-117);
        assert_eq!(bin_index(-1e-40, tiny_scale), -1);
        assert_eq!(bin_index(1e-40, tiny_scale), 0);
    }

    #[test]
    fn range_is_smallest_power_of_two_above_max() {
        let mut h = Histogram::new(2048).unwrap();
        h.add(&[0.3, -0.7]);
        assert_eq!(h.exp(), 0); // 0.7 < 1
        h.add(&[1.0]);
        assert_eq!(h.exp(), 1); // 1.0 needs R > 1
        h.add(&[-3.5]);
        assert_eq!(h.exp(), 2);
        assert_eq!(h.total(), 4);
        let mut e = Histogram::new(8).unwrap();
        e.add(&[0.0]);
        assert_eq!(e.exp(), MIN_EXP);
    }

    #[test]
    fn growth_matches_direct_binning() {
        // Values added in increasing magnitude (growth each time) vs all at once.
        let xs: Vec<f32> = (0..5000)
            .map(|i| (i as f32 * 0.37).sin() * (1.0 + i as f32 / 50.0))
            .collect();
        let mut grown = Histogram::new(64).unwrap();
        for c in xs.chunks(7) {
            grown.add(c);
        }
        let mut direct = Histogram::new(64).unwrap();
        direct.add(&xs);
        assert_eq!(grown, direct);
        // And against a naive floor at the final range.
        let mut naive = vec![0u64; 128];
        for &x in &xs {
            naive[(naive_bin(x as f64, direct.exp(), 6) + 64) as usize] += 1;
        }
        assert_eq!(direct.counts(), naive.as_slice());
    }

    #[test]
    fn merge_is_order_independent() {
        let parts: Vec<Vec<f32>> = (0..6)
            .map(|p| {
                (0..300)
                    .map(|i| ((i * 7 + p * 13) as f32).cos() * 10f32.powi(p - 3))
                    .collect()
            })
            .collect();
        let hist = |order: &[usize]| {
            let mut acc = Histogram::new(256).unwrap();
            for &p in order {
                let mut h = Histogram::new(256).unwrap();
                h.add(&parts[p]);
                acc.merge(&h).unwrap();
            }
            acc
        };
        let a = hist(&[0, 1, 2, 3, 4, 5]);
        let b = hist(&[5, 3, 1, 0, 4, 2]);
        assert_eq!(a, b);
        let mut all = Histogram::new(256).unwrap();
        all.add(&parts.concat());
        assert_eq!(a, all);
    }

    #[test]
    fn abs_counts_fold_both_sides() {
        let mut h = Histogram::new(4).unwrap();
        h.add(&[0.1, -0.1, 0.6, -0.9, 0.0]);
        // R = 1, w = 0.25: |x| bins [0,.25): 0.1, -0.1, 0.0; [.5,.75): 0.6; [.75,1): -0.9
        assert_eq!(h.abs_counts(), vec![3, 0, 1, 1]);
    }

    #[test]
    fn coarsen_merges_pairs() {
        let mut h = Histogram::new(8).unwrap();
        h.add(&[0.1, 0.2, 0.3, -0.4, 0.9]);
        let c = h.coarsen(2).unwrap();
        let mut d = Histogram::new(2).unwrap();
        d.add(&[0.1, 0.2, 0.3, -0.4, 0.9]);
        assert_eq!(c, d);
        assert!(h.coarsen(16).is_err());
        assert!(Histogram::new(3).is_err());
    }

    #[test]
    fn large_inputs_take_the_split_path_with_the_same_result() {
        // 4·2·B elements or more use the two sub-histograms.
        let xs: Vec<f32> = (0..40_001)
            .map(|i| ((i * 7919 % 1001) as f32 - 500.0) / 37.0)
            .collect();
        let mut big = Histogram::new(1024).unwrap();
        big.add(&xs);
        let mut small = Histogram::new(1024).unwrap();
        for c in xs.chunks(1000) {
            small.add(c);
        }
        assert_eq!(big, small);
        assert_eq!(big.total(), 40_001);
    }

    #[test]
    fn non_finite_values_are_ignored() {
        let mut h = Histogram::new(4).unwrap();
        h.add(&[f32::NAN, f32::INFINITY, 1.5]);
        assert_eq!(h.total(), 1);
        assert_eq!(h.exp(), 1);
    }
}
