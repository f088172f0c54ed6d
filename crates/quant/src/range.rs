//! Range methods: from statistics to the clipping range `[min, max]` of a quantized tensor.
//!
//! A [`QuantTarget`] says how the tensor will be stored (docs/fixed-point.md §1):
//!
//! * **symmetric**, `b` bits signed, zero point 0: the grid is `k·Δ` for
//!   `|k| ≤ L = 2^(b-1) - 1`, `Δ = T / L` for a threshold `T` — INT16 activations, INT8 and
//!   INT16 weights;
//! * **asymmetric**, `b` bits unsigned: `Δ = (hi - lo) / (2^b - 1)`, zero point
//!   `z = round(-lo / Δ)`, grid `k·Δ` for `-z ≤ k ≤ 2^b - 1 - z` — the UINT8 input of an 8-bit
//!   convolution.
//!
//! Every method returns a [`ClipRange`] with `min ≤ 0 ≤ max` (every grid holds 0) inside the
//! observed `[min, max]` widened to 0. For a symmetric target the range is
//! `[max(min, -T), min(max, T)]` (the scale only depends on `max(|min|, |max|) = T`, and keeping
//! the observed side of a one-sided tensor keeps that information).
//!
//! The methods ([`RangeMethod`]):
//!
//! * **MinMax**: `[min, max]`.
//! * **MovingAverage**: `[mean_s min_s, mean_s max_s]`, the average over samples of each
//!   sample's minimum and maximum (a cumulative, equal-weight moving average: an exponential
//!   one would depend on the order of the images).
//! * **Percentile(p)**: symmetric: `T = Q_{|x|}(p/100)`, the `p`-th percentile of `|x|`;
//!   asymmetric: `[Q_x(1 - p/100), Q_x(p/100)]`. Quantiles are read from the histogram with
//!   linear interpolation inside a bin.
//! * **Mse**: the range minimising the expected squared error of quantize-dequantize,
//!   `E(range) = Σ_bins c_i · (1/|I_i|) ∫_{I_i} (x - q(x))² dx`, where `q` rounds to the grid
//!   and clips to its ends, and the values of each histogram bin `I_i` (clipped to the
//!   observed `[min, max]`) are taken as uniformly spread. Inside the grid the integral of the
//!   sawtooth `x - Δ·round(x/Δ)` is exact (so 8-bit steps wider than a bin and 16-bit steps
//!   narrower than a bin are both right); outside, it is `∫ (x - end)²`. The threshold is
//!   searched on 64 log-spaced candidates in `[2^-10·max|x|, max|x|]` and refined on 33
//!   linear ones around the best; for asymmetric targets `lo` and `hi` are optimised in turn
//!   (coordinate descent, two rounds).
//! * **Entropy**: TensorRT's KL-divergence calibration for 8-bit targets: over the histogram
//!   of `|x|` (bins `h_0 … h_{n-1}` of width `w`) and each candidate `i ≥ M`
//!   (`M = 2^(b-1)` levels): `P = (h_0, …, h_{i-2}, h_{i-1} + Σ_{j≥i} h_j)`, `Q` = `h_0 … h_{i-1}`
//!   merged into `M` groups and spread evenly over each group's non-empty bins; the threshold
//!   is `T = i·w` for the `i` minimising `KL(P‖Q) = Σ P_j ln(P_j / Q_j)`. For asymmetric targets
//!   each side of zero is searched on its own with its share of the `2^b` levels. **For 16-bit
//!   targets Entropy uses Mse**: with `2^15` levels and at most 2048 histogram bins, every bin
//!   gets its own level, `Q = P` for every candidate and the divergence is identically zero —
//!   the criterion cannot choose; the MSE criterion still weighs rare far outliers against
//!   the (tiny) 16-bit rounding noise.

use crate::error::{QuantError, Result};
use crate::stats::{ActivationStats, ChannelStats, Histogram, WeightStats};

/// How the quantized tensor is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// Signed, zero point 0, range `[-T, T]`.
    Symmetric,
    /// Unsigned with a zero point, range `[lo, hi]` with `lo ≤ 0 ≤ hi`.
    Asymmetric,
}

/// Bit width and scheme of a quantized tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QuantTarget {
    /// Bits per element (2 to 16).
    pub bits: u32,
    /// Symmetric or asymmetric.
    pub scheme: Scheme,
}

impl QuantTarget {
    /// INT16 symmetric: the default for activations and 16-bit weights.
    pub const INT16: QuantTarget = QuantTarget {
        bits: 16,
        scheme: Scheme::Symmetric,
    };
    /// INT8 symmetric: 8-bit weights.
    pub const INT8: QuantTarget = QuantTarget {
        bits: 8,
        scheme: Scheme::Symmetric,
    };
    /// UINT8 with a zero point: inputs of 8-bit convolutions.
    pub const UINT8: QuantTarget = QuantTarget {
        bits: 8,
        scheme: Scheme::Asymmetric,
    };

    fn check(self) -> Result<()> {
        if (2..=16).contains(&self.bits) {
            Ok(())
        } else {
            Err(QuantError::Usage(format!(
                "quantization bit width must be 2 to 16, got {}",
                self.bits
            )))
        }
    }

    /// Symmetric: `L = 2^(b-1) - 1`; asymmetric: `2^b - 1` steps.
    fn steps(self) -> f64 {
        match self.scheme {
            Scheme::Symmetric => f64::from((1u32 << (self.bits - 1)) - 1),
            Scheme::Asymmetric => f64::from((1u32 << self.bits) - 1),
        }
    }
}

/// A range method (see the module documentation for the formulas).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RangeMethod {
    /// Observed minimum and maximum.
    MinMax,
    /// Average over samples of the per-sample minimum and maximum.
    MovingAverage,
    /// Clip at the given percentile (e.g. `99.99`) of `|x|` (symmetric) or of each tail.
    Percentile(f64),
    /// Minimise the expected quantize-dequantize squared error.
    Mse,
    /// Minimise the KL divergence (TensorRT); 16-bit targets use `Mse`.
    Entropy,
}

impl RangeMethod {
    /// Parses `minmax`, `moving_average`, `percentile` (99.99), `percentile:<p>`, `mse`,
    /// `entropy` (also `kl`).
    pub fn parse(s: &str) -> Result<RangeMethod> {
        let lower = s.trim().to_ascii_lowercase();
        let bad = || {
            QuantError::Usage(format!(
                "unknown range method '{s}': use minmax, moving_average, percentile[:<p>], mse or entropy"
            ))
        };
        Ok(match lower.as_str() {
            "minmax" | "min_max" => RangeMethod::MinMax,
            "moving_average" | "movingaverage" | "moving_average_minmax" => {
                RangeMethod::MovingAverage
            }
            "mse" => RangeMethod::Mse,
            "entropy" | "kl" => RangeMethod::Entropy,
            "percentile" => RangeMethod::Percentile(99.99),
            _ => match lower.strip_prefix("percentile:") {
                Some(p) => RangeMethod::Percentile(p.trim().parse().map_err(|_| bad())?),
                None => return Err(bad()),
            },
        })
    }
}

/// A clipping range, `min ≤ 0 ≤ max`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClipRange {
    /// Lower end.
    pub min: f32,
    /// Upper end.
    pub max: f32,
}

impl ClipRange {
    /// `max(|min|, |max|)`, the threshold of a symmetric grid.
    pub fn abs_max(&self) -> f32 {
        self.min.abs().max(self.max.abs())
    }
}

/// What a range method looks at: the observed range, the histogram and, for activations,
/// the mean per-sample range.
#[derive(Debug, Clone, Copy)]
pub struct Distribution<'a> {
    /// Smallest finite value.
    pub min: f32,
    /// Largest finite value.
    pub max: f32,
    /// Histogram of the finite values.
    pub histogram: &'a Histogram,
    /// Mean per-sample (min, max), if known.
    pub mean_min_max: Option<(f64, f64)>,
}

impl ActivationStats {
    /// The distribution range methods read; `None` before any finite value.
    pub fn distribution(&self) -> Option<Distribution<'_>> {
        let (min, max) = self.min_max()?;
        Some(Distribution {
            min,
            max,
            histogram: self.histogram(),
            mean_min_max: self.mean_min_max(),
        })
    }

    /// The clipping range `method` chooses for `target`.
    pub fn range(&self, method: RangeMethod, target: QuantTarget) -> Result<ClipRange> {
        let d = self.distribution().ok_or_else(|| {
            QuantError::NoSamples(format!(
                "tensor '{}' has no finite value in the calibration data",
                self.name()
            ))
        })?;
        choose_range(&d, method, target)
    }
}

impl ChannelStats {
    /// The distribution of the channel's weights; `None` if it has no finite weight.
    pub fn distribution(&self) -> Option<Distribution<'_>> {
        (self.min <= self.max).then_some(Distribution {
            min: self.min,
            max: self.max,
            histogram: &self.histogram,
            mean_min_max: None,
        })
    }
}

impl WeightStats {
    /// The clipping range of every output channel (MovingAverage is MinMax for weights).
    pub fn channel_ranges(
        &self,
        method: RangeMethod,
        target: QuantTarget,
    ) -> Result<Vec<ClipRange>> {
        self.channels()
            .iter()
            .map(|c| match c.distribution() {
                Some(d) => choose_range(&d, method, target),
                None => Ok(ClipRange { min: 0.0, max: 0.0 }),
            })
            .collect()
    }
}

/// The clipping range `method` chooses for a tensor with distribution `d` stored as `target`.
pub fn choose_range(
    d: &Distribution<'_>,
    method: RangeMethod,
    target: QuantTarget,
) -> Result<ClipRange> {
    target.check()?;
    if !(d.min.is_finite() && d.max.is_finite() && d.min <= d.max) {
        return Err(QuantError::Usage(format!(
            "invalid observed range [{}, {}]",
            d.min, d.max
        )));
    }
    let lo0 = d.min.min(0.0);
    let hi0 = d.max.max(0.0);
    let amax = f64::from(lo0.abs().max(hi0));
    if amax == 0.0 {
        return Ok(ClipRange { min: 0.0, max: 0.0 });
    }
    let from_threshold = |t: f64| ClipRange {
        min: (lo0.max(-(t as f32))).min(0.0),
        max: (hi0.min(t as f32)).max(0.0),
    };
    let from_pair = |lo: f64, hi: f64| ClipRange {
        min: (lo as f32).clamp(lo0, 0.0),
        max: (hi as f32).clamp(0.0, hi0),
    };
    match method {
        RangeMethod::MinMax => Ok(ClipRange { min: lo0, max: hi0 }),
        RangeMethod::MovingAverage => Ok(match d.mean_min_max {
            Some((lo, hi)) => from_pair(lo, hi),
            None => ClipRange { min: lo0, max: hi0 },
        }),
        RangeMethod::Percentile(p) => {
            if !(p > 0.0 && p <= 100.0) {
                return Err(QuantError::Usage(format!(
                    "percentile must be in (0, 100], got {p}"
                )));
            }
            let q = p / 100.0;
            Ok(match target.scheme {
                Scheme::Symmetric => from_threshold(quantile(&abs_bins(d), q)),
                Scheme::Asymmetric => {
                    let bins = signed_bins(d);
                    from_pair(quantile(&bins, 1.0 - q), quantile(&bins, q))
                }
            })
        }
        RangeMethod::Mse => Ok(match target.scheme {
            Scheme::Symmetric => from_threshold(mse_symmetric(&abs_bins(d), amax, target)),
            Scheme::Asymmetric => {
                let (lo, hi) =
                    mse_asymmetric(&signed_bins(d), f64::from(lo0), f64::from(hi0), target);
                from_pair(lo, hi)
            }
        }),
        RangeMethod::Entropy => {
            if target.bits > 8 {
                return choose_range(d, RangeMethod::Mse, target);
            }
            let levels = 1usize << target.bits;
            Ok(match target.scheme {
                Scheme::Symmetric => {
                    let h = d.histogram.abs_counts();
                    from_threshold(kl_threshold(&h, d.histogram.bin_width(), levels / 2, amax))
                }
                Scheme::Asymmetric => {
                    let b = d.histogram.bins_per_side();
                    let counts = d.histogram.counts();
                    let pos: Vec<u64> = counts[b..].to_vec();
                    let neg: Vec<u64> = counts[..b].iter().rev().copied().collect();
                    let span = f64::from(hi0) - f64::from(lo0);
                    let share =
                        |extent: f64| ((levels as f64 * extent / span).round() as usize).max(8);
                    let w = d.histogram.bin_width();
                    let hi = if hi0 > 0.0 {
                        kl_threshold(&pos, w, share(f64::from(hi0)), f64::from(hi0))
                    } else {
                        0.0
                    };
                    let lo = if lo0 < 0.0 {
                        -kl_threshold(&neg, w, share(-f64::from(lo0)), -f64::from(lo0))
                    } else {
                        0.0
                    };
                    from_pair(lo, hi)
                }
            })
        }
    }
}

/// A histogram bin as an interval `[a, b]` holding `c` values spread uniformly.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Bin {
    a: f64,
    b: f64,
    c: f64,
}

/// The non-empty bins of `x`, clipped to the observed `[min, max]`.
fn signed_bins(d: &Distribution<'_>) -> Vec<Bin> {
    let (lo, hi) = (f64::from(d.min), f64::from(d.max));
    d.histogram
        .counts()
        .iter()
        .enumerate()
        .filter(|(_, &c)| c > 0)
        .map(|(i, &c)| {
            let (a, b) = d.histogram.bin_edges(i);
            let a = a.clamp(lo, hi);
            Bin {
                a,
                b: b.clamp(a, hi),
                c: c as f64,
            }
        })
        .collect()
}

/// The non-empty bins of `|x|`, clipped to the observed range of `|x|`.
fn abs_bins(d: &Distribution<'_>) -> Vec<Bin> {
    let (lo, hi) = (f64::from(d.min), f64::from(d.max));
    let amax = lo.abs().max(hi.abs());
    let amin = if lo <= 0.0 && hi >= 0.0 {
        0.0
    } else {
        lo.abs().min(hi.abs())
    };
    let w = d.histogram.bin_width();
    d.histogram
        .abs_counts()
        .iter()
        .enumerate()
        .filter(|(_, &c)| c > 0)
        .map(|(j, &c)| {
            let a = (j as f64 * w).clamp(amin, amax);
            Bin {
                a,
                b: ((j + 1) as f64 * w).clamp(a, amax),
                c: c as f64,
            }
        })
        .collect()
}

/// The value below which a fraction `q` of the mass lies (linear inside a bin).
fn quantile(bins: &[Bin], q: f64) -> f64 {
    let total: f64 = bins.iter().map(|b| b.c).sum();
    let Some(first) = bins.first() else {
        return 0.0;
    };
    let target = q.clamp(0.0, 1.0) * total;
    if target <= 0.0 {
        return first.a;
    }
    let mut acc = 0.0;
    for b in bins {
        if acc + b.c >= target {
            let f = ((target - acc) / b.c).clamp(0.0, 1.0);
            return b.a + f * (b.b - b.a);
        }
        acc += b.c;
    }
    bins.last().map_or(0.0, |b| b.b)
}

/// `∫_{-Δ/2}^{x} s(t)² dt + const` for the sawtooth `s(t) = t - Δ·round(t/Δ)`.
fn saw_integral(x: f64, delta: f64) -> f64 {
    let u = x / delta;
    let k = (u + 0.5).floor();
    let r = u - k;
    delta * delta * delta * (k / 12.0 + (r * r * r + 0.125) / 3.0)
}

/// Mean squared quantize-dequantize error of values spread uniformly over `[a, b]`, for the
/// grid of step `delta` clipped to `[gl, gh]` (`gl ≤ 0 ≤ gh`, both on the grid).
fn interval_error(a: f64, b: f64, delta: f64, gl: f64, gh: f64) -> f64 {
    let point = |x: f64| {
        let e = if x < gl {
            x - gl
        } else if x > gh {
            x - gh
        } else {
            x - delta * (x / delta).round()
        };
        e * e
    };
    let len = b - a;
    if len <= 0.0 || len < 1e-9 * delta {
        return point(0.5 * (a + b));
    }
    let mut sum = 0.0;
    if a < gl {
        let hi = b.min(gl);
        sum += ((hi - gl).powi(3) - (a - gl).powi(3)) / 3.0;
    }
    if b > gh {
        let lo = a.max(gh);
        sum += ((b - gh).powi(3) - (lo - gh).powi(3)) / 3.0;
    }
    let (lo, hi) = (a.max(gl), b.min(gh));
    if hi > lo {
        sum += saw_integral(hi, delta) - saw_integral(lo, delta);
    }
    sum / len
}

/// Total squared error of `bins` on a grid.
fn grid_error(bins: &[Bin], delta: f64, gl: f64, gh: f64) -> f64 {
    bins.iter()
        .map(|b| b.c * interval_error(b.a, b.b, delta, gl, gh))
        .sum()
}

/// Minimises `f` over `[lo, hi]`: 64 log-spaced candidates, then 33 linear ones between the
/// neighbours of the best. Ties go to the larger argument (less clipping).
fn minimize(lo: f64, hi: f64, f: impl Fn(f64) -> f64) -> f64 {
    if hi <= lo {
        return hi;
    }
    const COARSE: usize = 64;
    const FINE: usize = 33;
    let ratio = (hi / lo).ln();
    let coarse: Vec<f64> = (0..COARSE)
        .map(|i| {
            if i + 1 == COARSE {
                hi
            } else {
                lo * (ratio * i as f64 / (COARSE - 1) as f64).exp()
            }
        })
        .collect();
    let mut best = (f64::INFINITY, hi);
    let mut best_i = COARSE - 1;
    for (i, &t) in coarse.iter().enumerate() {
        let e = f(t);
        if e <= best.0 {
            best = (e, t);
            best_i = i;
        }
    }
    let a = coarse[best_i.saturating_sub(1)];
    let b = coarse[(best_i + 1).min(COARSE - 1)];
    for i in 0..FINE {
        let t = a + (b - a) * i as f64 / (FINE - 1) as f64;
        let e = f(t);
        if e < best.0 || (e == best.0 && t > best.1) {
            best = (e, t);
        }
    }
    best.1
}

/// The MSE-optimal symmetric threshold for the `|x|` bins.
fn mse_symmetric(bins: &[Bin], amax: f64, target: QuantTarget) -> f64 {
    let l = target.steps();
    minimize(amax / 1024.0, amax, |t| {
        let delta = t / l;
        grid_error(bins, delta, -t, t)
    })
}

/// The grid an asymmetric `[lo, hi]` gives: step, and the clipped ends on the grid.
fn asymmetric_grid(lo: f64, hi: f64, steps: f64) -> (f64, f64, f64) {
    let delta = (hi - lo) / steps;
    if delta <= 0.0 {
        return (f64::MIN_POSITIVE, 0.0, 0.0);
    }
    let z = (-lo / delta).round().clamp(0.0, steps);
    (delta, -z * delta, (steps - z) * delta)
}

/// The MSE-optimal asymmetric range, by coordinate descent from the observed one.
fn mse_asymmetric(bins: &[Bin], min: f64, max: f64, target: QuantTarget) -> (f64, f64) {
    let steps = target.steps();
    let err = |lo: f64, hi: f64| {
        let (delta, gl, gh) = asymmetric_grid(lo, hi, steps);
        grid_error(bins, delta, gl, gh)
    };
    let (mut lo, mut hi) = (min, max);
    let span = max - min;
    for _ in 0..2 {
        if max > 0.0 {
            let l = lo;
            hi = minimize((max / 1024.0).max(span / 1e6), max, |h| err(l, h));
        }
        if min < 0.0 {
            let h = hi;
            lo = -minimize((-min / 1024.0).max(span / 1e6), -min, |l| err(-l, h));
        }
    }
    (lo, hi)
}

/// TensorRT's KL threshold over a histogram of `|x|` (bins of width `w`) for `levels`
/// quantization levels; `amax` is the largest `|x|`. Returns `amax` when there are no more
/// non-empty bins than levels (nothing to gain from clipping).
fn kl_threshold(h: &[u64], w: f64, levels: usize, amax: f64) -> f64 {
    let Some(last) = h.iter().rposition(|&c| c > 0) else {
        return 0.0;
    };
    let n = last + 1;
    if n <= levels || levels < 2 {
        return amax;
    }
    // Candidates i in [levels, n]; at most ~512 of them evaluated.
    let stride = ((n - levels) / 512).max(1);
    let total_above: Vec<f64> = {
        // suffix[i] = Σ_{j ≥ i} h_j
        let mut s = vec![0.0; n + 1];
        for i in (0..n).rev() {
            s[i] = s[i + 1] + h[i] as f64;
        }
        s
    };
    let mut best = (f64::INFINITY, n);
    let mut p = Vec::with_capacity(n);
    let mut q = Vec::with_capacity(n);
    let mut i = levels;
    loop {
        p.clear();
        p.extend(h[..i].iter().map(|&c| c as f64));
        p[i - 1] += total_above[i];
        // Q: h[..i] merged into `levels` groups, each spread over its non-empty bins.
        q.clear();
        q.resize(i, 0.0);
        for g in 0..levels {
            let start = g * i / levels;
            let end = ((g + 1) * i / levels).max(start + 1).min(i);
            let sum: f64 = h[start..end].iter().map(|&c| c as f64).sum();
            let nonzero = h[start..end].iter().filter(|&&c| c > 0).count();
            if nonzero > 0 {
                let v = sum / nonzero as f64;
                for j in start..end {
                    if h[j] > 0 {
                        q[j] = v;
                    }
                }
            }
        }
        let kl = kl_divergence(&p, &q);
        if kl < best.0 {
            best = (kl, i);
        }
        if i == n {
            break;
        }
        i = (i + stride).min(n);
    }
    (best.1 as f64 * w).min(amax)
}

/// `KL(P‖Q)` of two unnormalised distributions; bins where `P > 0` and `Q = 0` (the
/// outlier bin) get `Q` smoothed to `ε·ΣQ`, `ε = 1e-4`, as in TensorRT/MXNet.
fn kl_divergence(p: &[f64], q: &[f64]) -> f64 {
    let sp: f64 = p.iter().sum();
    let sq: f64 = q.iter().sum();
    if sp <= 0.0 || sq <= 0.0 {
        return f64::INFINITY;
    }
    let eps = 1e-4;
    p.iter()
        .zip(q)
        .filter(|(&pj, _)| pj > 0.0)
        .map(|(&pj, &qj)| {
            let pn = pj / sp;
            let qn = if qj > 0.0 { qj / sq } else { eps };
            pn * (pn / qn).ln()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic pseudo-random generator (splitmix64) for synthetic data.
    struct Rng(u64);
    impl Rng {
        fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        /// Uniform in (0, 1).
        fn uniform(&mut self) -> f64 {
            ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        }
        fn laplace(&mut self, b: f64) -> f64 {
            let u = self.uniform() - 0.5;
            -b * u.signum() * (1.0 - 2.0 * u.abs()).ln()
        }
    }

    fn stats_of(xs: &[f32]) -> ActivationStats {
        let mut s = ActivationStats::new(ipukit_ir::TensorId(0), "t", &[xs.len()], 2048).unwrap();
        s.observe(xs);
        s
    }

    /// Exact quantize-dequantize MSE of samples for a symmetric threshold.
    fn empirical_mse(xs: &[f32], t: f64, bits: u32) -> f64 {
        let l = f64::from((1u32 << (bits - 1)) - 1);
        let d = t / l;
        xs.iter()
            .map(|&x| {
                let x = f64::from(x);
                let q = (x / d).round().clamp(-l, l) * d;
                (x - q) * (x - q)
            })
            .sum::<f64>()
            / xs.len() as f64
    }

    /// 10^6 samples of Laplace(b = 1) and two far outliers. Clipping an outlier at `M` to `T`
    /// costs `(M - T)²`; widening the 8-bit grid costs `n·T²/(12·127²)` for n samples, so with
    /// 10^6 samples the MSE optimum is near `T ≈ 17` (`n·T/(6·127²) = 2·2·(60 - T)`), well
    /// inside the max of 61.
    fn laplace_with_outliers() -> Vec<f32> {
        let mut rng = Rng(7);
        let mut xs: Vec<f32> = (0..1_000_000).map(|_| rng.laplace(1.0) as f32).collect();
        xs.extend([59.0f32, -61.0]);
        xs
    }

    #[test]
    fn uniform_minmax_is_optimal() {
        let mut rng = Rng(1);
        let xs: Vec<f32> = (0..100_000)
            .map(|_| (rng.uniform() * 8.0 - 4.0) as f32)
            .collect();
        let s = stats_of(&xs);
        let mm = s.range(RangeMethod::MinMax, QuantTarget::INT8).unwrap();
        let mse = s.range(RangeMethod::Mse, QuantTarget::INT8).unwrap();
        // For a uniform distribution clipping never pays: MSE keeps (almost) the whole range.
        assert!(mse.abs_max() >= 0.97 * mm.abs_max(), "{mse:?} vs {mm:?}");
        let e_mm = empirical_mse(&xs, f64::from(mm.abs_max()), 8);
        let e_mse = empirical_mse(&xs, f64::from(mse.abs_max()), 8);
        assert!(e_mse <= e_mm * 1.05, "{e_mse} vs {e_mm}");
        let kl = s.range(RangeMethod::Entropy, QuantTarget::INT8).unwrap();
        assert!(kl.abs_max() >= 0.9 * mm.abs_max(), "{kl:?}");
        let p = s
            .range(RangeMethod::Percentile(99.99), QuantTarget::INT8)
            .unwrap();
        assert!((p.abs_max() - 4.0).abs() < 0.01, "{p:?}");
    }

    #[test]
    fn laplace_with_outliers_is_clipped_well_inside_the_max() {
        let xs = laplace_with_outliers();
        let s = stats_of(&xs);
        let mm = s.range(RangeMethod::MinMax, QuantTarget::INT8).unwrap();
        assert_eq!(mm.abs_max(), 61.0);
        let mse = s.range(RangeMethod::Mse, QuantTarget::INT8).unwrap();
        let pct = s
            .range(RangeMethod::Percentile(99.99), QuantTarget::INT8)
            .unwrap();
        let kl = s.range(RangeMethod::Entropy, QuantTarget::INT8).unwrap();
        let (t_mse, t_pct, t_kl) = (mse.abs_max(), pct.abs_max(), kl.abs_max());
        // Laplace(b = 1): the 99.99th percentile of |x| is ln(10^4) ≈ 9.21.
        assert!((t_pct - 9.21).abs() < 0.6, "percentile {t_pct}");
        assert!((12.0..24.0).contains(&t_mse), "mse {t_mse}");
        // KL lands between the bulk and the max.
        assert!(t_kl > 3.0 && t_kl < 40.0, "kl {t_kl}");
        // The MSE choice is (near) optimal on the real data: compare with a scan.
        let e = |t: f64| empirical_mse(&xs, t, 8);
        let best = (8..80)
            .map(|k| e(k as f64 * 0.5))
            .fold(f64::INFINITY, f64::min);
        assert!(
            e(f64::from(t_mse)) <= best * 1.02,
            "{} vs {best}",
            e(f64::from(t_mse))
        );
        assert!(e(f64::from(t_mse)) < 0.5 * e(61.0));
    }

    #[test]
    fn sixteen_bits_keep_the_range_and_entropy_falls_back_to_mse() {
        let xs = laplace_with_outliers();
        let s = stats_of(&xs);
        let mse = s.range(RangeMethod::Mse, QuantTarget::INT16).unwrap();
        let kl = s.range(RangeMethod::Entropy, QuantTarget::INT16).unwrap();
        assert_eq!(mse, kl);
        // With 2^15 levels the rounding noise is tiny: clipping the outliers costs more.
        assert!(mse.abs_max() > 55.0, "{mse:?}");
    }

    #[test]
    fn asymmetric_relu_like() {
        // One-sided data: ReLU of a Laplacian plus an outlier; UINT8 range starts at 0.
        let mut rng = Rng(3);
        let mut xs: Vec<f32> = (0..1_000_000)
            .map(|_| rng.laplace(1.0).max(0.0) as f32)
            .collect();
        xs.push(80.0);
        let s = stats_of(&xs);
        let mse = s.range(RangeMethod::Mse, QuantTarget::UINT8).unwrap();
        assert_eq!(mse.min, 0.0);
        // Half the samples are exact zeros (no rounding error); for the n = 5·10^5 others,
        // n·T/(6·255²) = 2·(80 - T) → T ≈ 49.
        assert!(mse.max > 44.0 && mse.max < 54.0, "{mse:?}");
        let kl = s.range(RangeMethod::Entropy, QuantTarget::UINT8).unwrap();
        assert_eq!(kl.min, 0.0);
        assert!(kl.max > 3.0 && kl.max < 80.0, "{kl:?}");
        let p = s
            .range(RangeMethod::Percentile(99.9), QuantTarget::UINT8)
            .unwrap();
        assert_eq!(p.min, 0.0);
        // P(relu(x) > t) = e^-t / 2 = 0.001 → t = ln 500 ≈ 6.21
        assert!((p.max - 6.21).abs() < 0.3, "{p:?}");
    }

    #[test]
    fn asymmetric_two_sided_mse_tracks_each_tail() {
        // Silu-like: small negative tail, long positive tail.
        let mut rng = Rng(11);
        let xs: Vec<f32> = (0..100_000)
            .map(|_| {
                let v = rng.laplace(2.0);
                (v / (1.0 + (-v).exp())) as f32
            })
            .collect();
        let s = stats_of(&xs);
        let (lo, hi) = s.min_max().unwrap();
        let r = s.range(RangeMethod::Mse, QuantTarget::UINT8).unwrap();
        assert!(r.min >= lo && r.min < 0.0, "{r:?} lo {lo}");
        assert!(r.max > 0.3 * hi && r.max <= hi, "{r:?} hi {hi}");
    }

    #[test]
    fn moving_average_averages_per_sample_ranges() {
        let mut s = ActivationStats::new(ipukit_ir::TensorId(0), "t", &[3], 64).unwrap();
        s.observe(&[-1.0, 0.0, 2.0]);
        s.observe(&[-3.0, 0.0, 6.0]);
        let r = s
            .range(RangeMethod::MovingAverage, QuantTarget::INT16)
            .unwrap();
        assert_eq!(
            r,
            ClipRange {
                min: -2.0,
                max: 4.0
            }
        );
        let mm = s.range(RangeMethod::MinMax, QuantTarget::INT16).unwrap();
        assert_eq!(
            mm,
            ClipRange {
                min: -3.0,
                max: 6.0
            }
        );
    }

    #[test]
    fn degenerate_inputs() {
        let s = stats_of(&[0.0; 10]);
        for m in [
            RangeMethod::MinMax,
            RangeMethod::Mse,
            RangeMethod::Entropy,
            RangeMethod::Percentile(99.0),
        ] {
            assert_eq!(
                s.range(m, QuantTarget::UINT8).unwrap(),
                ClipRange { min: 0.0, max: 0.0 }
            );
        }
        let one = stats_of(&[2.5]);
        let r = one.range(RangeMethod::Mse, QuantTarget::INT8).unwrap();
        assert_eq!(r.max, 2.5);
        let empty = ActivationStats::new(ipukit_ir::TensorId(0), "e", &[1], 64).unwrap();
        assert!(empty
            .range(RangeMethod::MinMax, QuantTarget::INT16)
            .is_err());
        assert!(stats_of(&[1.0])
            .range(RangeMethod::Percentile(0.0), QuantTarget::INT8)
            .is_err());
        let bad = QuantTarget {
            bits: 1,
            scheme: Scheme::Symmetric,
        };
        assert!(stats_of(&[1.0]).range(RangeMethod::MinMax, bad).is_err());
    }

    #[test]
    fn interval_error_matches_sampling() {
        // Mean squared error over [a, b] by dense sampling vs the closed form.
        for &(a, b, delta, gl, gh) in &[
            (0.0, 1.0, 0.3, -0.9, 0.9),
            (0.05, 0.07, 0.3, -0.9, 0.9),
            (-2.0, 2.0, 0.25, -1.0, 1.0),
            (0.9, 1.7, 0.1, -0.5, 1.2),
            (-3.0, -2.5, 0.01, -2.7, 2.7),
        ] {
            let n = 200_000;
            let mut sum = 0.0;
            for i in 0..n {
                let x: f64 = a + (b - a) * (i as f64 + 0.5) / n as f64;
                let q = if x < gl {
                    gl
                } else if x > gh {
                    gh
                } else {
                    delta * (x / delta).round()
                };
                sum += (x - q) * (x - q);
            }
            let want = sum / n as f64;
            let got = interval_error(a, b, delta, gl, gh);
            assert!(
                (got - want).abs() <= 1e-6 * want.max(1e-9) + 1e-12,
                "{a} {b}: {got} vs {want}"
            );
        }
    }

    #[test]
    fn parse_methods() {
        assert_eq!(RangeMethod::parse("MSE").unwrap(), RangeMethod::Mse);
        assert_eq!(
            RangeMethod::parse("percentile:99.9").unwrap(),
            RangeMethod::Percentile(99.9)
        );
        assert_eq!(RangeMethod::parse("kl").unwrap(), RangeMethod::Entropy);
        assert!(RangeMethod::parse("median").is_err());
    }

    #[test]
    fn weight_channels_get_their_own_ranges() {
        let ch = |xs: &[f32]| {
            let mut h = Histogram::new(256).unwrap();
            h.add(xs);
            ChannelStats {
                min: xs.iter().copied().fold(f32::INFINITY, f32::min),
                max: xs.iter().copied().fold(f32::NEG_INFINITY, f32::max),
                histogram: h,
            }
        };
        let c0 = ch(&[-1.0, 0.5, 0.25]);
        let d = c0.distribution().unwrap();
        let r = choose_range(&d, RangeMethod::MinMax, QuantTarget::INT8).unwrap();
        assert_eq!(
            r,
            ClipRange {
                min: -1.0,
                max: 0.5
            }
        );
    }
}
