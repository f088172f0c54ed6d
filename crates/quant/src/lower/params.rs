//! Scales, zero points and integer parameters of `docs/fixed-point.md` §1–2, computed from
//! calibrated ranges.

use ipukit_ir::ops::FusedActivation;
use ipukit_ir::ops::{OutRange, Requant};
use ipukit_ir::DType;

/// Largest INT16 magnitude.
pub const I16_MAX: f32 = 32767.0;

/// How far beyond its calibrated range an INT16 activation can go before it saturates
/// (`docs/fixed-point.md` §1): its scale covers `INT16_HEADROOM · max(|min|, |max|)`. A
/// calibration set's extremes are a sample's, and an input slightly unlike every calibration
/// image (a page among photos, a larger face) easily drives a squeeze-excitation branch or a
/// classifier head 2–3× beyond them; saturating there costs far more than the 2 bits of
/// the 15 this spends (the calibrated range keeps 13 bits, 8,191 steps). UINT8 copies keep
/// their calibrated (or fitted) range: 8 bits cannot spare any.
pub const INT16_HEADROOM: f32 = 4.0;

/// Fewest calibration samples from which [`int16_headroom`] judges a tensor's spread; with
/// fewer, every tensor gets [`INT16_HEADROOM`].
pub const HEADROOM_MIN_SAMPLES: u64 = 8;

/// The least headroom [`int16_headroom`] gives.
pub const MIN_HEADROOM: f32 = 2.0;

/// The headroom of an INT16 activation whose largest magnitude over the calibration set is
/// `largest` and whose per-sample largest magnitude averages `typical` (`docs/fixed-point.md`
/// §1): an unseen input may exceed the largest magnitude seen by as much as that one exceeds
/// the typical one, so the headroom is their ratio, between [`MIN_HEADROOM`] and
/// [`INT16_HEADROOM`]. A tensor every input drives alike keeps 14 of the 15 bits for its
/// range; one that a few inputs drive far keeps 13. A tensor with one value per channel and
/// sample (`shape` without batch and channel axes has one element: a fully-connected output,
/// a squeeze-excitation vector) gets the full headroom: its per-sample maximum is one draw,
/// not an extreme over a map.
pub fn int16_headroom(largest: f64, typical: f64, samples: u64, shape: &[usize]) -> f32 {
    let spatial: usize = shape.iter().skip(1).rev().skip(1).product();
    if spatial <= 1
        || samples < HEADROOM_MIN_SAMPLES
        || typical.is_nan()
        || typical <= 0.0
        || !largest.is_finite()
    {
        return INT16_HEADROOM;
    }
    ((largest / typical) as f32).clamp(MIN_HEADROOM, INT16_HEADROOM)
}

/// The quantization of one fixed tensor: `r = scale · (q − zero_point)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine {
    /// Scale.
    pub scale: f32,
    /// Zero point.
    pub zero_point: i32,
    /// Element type (I16 or U8).
    pub dtype: DType,
}

impl Affine {
    /// Symmetric INT16 for the range `[min, max]` (§1): `max(|min|, |max|) / 32767`.
    pub fn int16(min: f32, max: f32) -> Affine {
        let amax = min.abs().max(max.abs());
        let scale = if amax > 0.0 && amax.is_finite() {
            amax / I16_MAX
        } else {
            1.0 / I16_MAX
        };
        Affine {
            scale,
            zero_point: 0,
            dtype: DType::I16,
        }
    }

    /// Symmetric INT16 for an activation calibrated to `[min, max]`: [`Affine::int16`] of
    /// the range widened by `headroom` (at least 1).
    pub fn int16_activation(min: f32, max: f32, headroom: f32) -> Affine {
        let h = if headroom.is_finite() {
            headroom.max(1.0)
        } else {
            INT16_HEADROOM
        };
        Affine::int16(min * h, max * h)
    }

    /// Asymmetric UINT8 for the range `[min, max]` widened to contain 0 (§1).
    pub fn uint8(min: f32, max: f32) -> Affine {
        let (lo, hi) = (min.min(0.0), max.max(0.0));
        let span = hi - lo;
        let scale = if span > 0.0 && span.is_finite() {
            span / 255.0
        } else {
            1.0 / 255.0
        };
        let zero_point = (-lo / scale).round().clamp(0.0, 255.0) as i32;
        Affine {
            scale,
            zero_point,
            dtype: DType::U8,
        }
    }

    /// The real range this quantization covers.
    pub fn range(&self) -> (f32, f32) {
        let (lo, hi) = ipukit_ir::ops::fixed::int_range(self.dtype).unwrap_or((0, 0));
        (
            self.scale * (lo - self.zero_point) as f32,
            self.scale * (hi - self.zero_point) as f32,
        )
    }

    /// The integer that stands for the real value `r`, saturated to the type.
    pub fn quantize(&self, r: f32) -> i32 {
        let (lo, hi) = ipukit_ir::ops::fixed::int_range(self.dtype).unwrap_or((0, 0));
        let q = (r as f64 / self.scale as f64).round() + self.zero_point as f64;
        q.clamp(lo as f64, hi as f64) as i32
    }

    /// Output bounds for this quantization with a fused activation (§3).
    pub fn out_range(&self, activation: FusedActivation) -> OutRange {
        let full = OutRange::full(self.dtype, self.zero_point);
        let (lo, hi) = activation.range();
        let clamp = |v: f32, default: i32| {
            if v.is_finite() {
                self.quantize(v)
            } else {
                default
            }
        };
        OutRange {
            zero_point: self.zero_point,
            min: clamp(lo, full.min).max(full.min),
            max: clamp(hi, full.max).min(full.max),
        }
    }
}

/// The multiplier of a real ratio, or a message when the ratio is out of range.
pub fn multiplier(ratio: f64) -> Result<Requant, String> {
    Requant::from_ratio(ratio).ok_or_else(|| format!("scale ratio {ratio:e} is out of range"))
}

/// Two multipliers with one common shift, `m_a / 2ⁿ ≈ a` and `m_b / 2ⁿ ≈ b` (§4), both below
/// `2³¹`.
pub fn common_shift(a: f64, b: f64) -> Result<(i32, i32, u32), String> {
    let big = a.abs().max(b.abs());
    if !big.is_finite() || a < 0.0 || b < 0.0 {
        return Err(format!("scale ratios {a:e}, {b:e} are out of range"));
    }
    if big == 0.0 {
        return Ok((0, 0, 0));
    }
    // Largest n with big · 2ⁿ < 2³¹ (one bit of margin for rounding up).
    let n = (30.0 - big.log2().floor()).clamp(0.0, 62.0) as u32;
    let scale = (n as f64).exp2();
    let (ma, mb) = ((a * scale).round(), (b * scale).round());
    if ma >= 2f64.powi(31) || mb >= 2f64.powi(31) {
        return Err(format!("scale ratios {a:e}, {b:e} are out of range"));
    }
    Ok((ma as i32, mb as i32, n))
}

/// Per-output-channel symmetric quantization of a weight tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelWeights {
    /// Scale per channel.
    pub scales: Vec<f32>,
    /// Quantized values, same layout as the float weights.
    pub values: Vec<i32>,
}

/// Quantizes `w` per channel along `axis` of `shape` to `qmax` (127 or 32767), each channel's
/// clipping magnitude given by `clip[c]` (the channel's |max| unless refined).
pub fn quantize_weights(
    w: &[f32],
    shape: &[usize],
    axis: usize,
    clip: &[f32],
    qmax: f32,
) -> ChannelWeights {
    let inner: usize = shape[axis + 1..].iter().product();
    let channels = shape[axis];
    let scales: Vec<f32> = clip
        .iter()
        .map(|&a| {
            if a > 0.0 && a.is_finite() {
                a / qmax
            } else {
                1.0
            }
        })
        .collect();
    let values = w
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let c = (i / inner) % channels;
            (v / scales[c]).round().clamp(-qmax, qmax) as i32
        })
        .collect();
    ChannelWeights { scales, values }
}

/// `max |w|` per channel along `axis`.
pub fn channel_abs_max(w: &[f32], shape: &[usize], axis: usize) -> Vec<f32> {
    let inner: usize = shape[axis + 1..].iter().product();
    let channels = shape[axis];
    let mut m = vec![0f32; channels];
    for (i, &v) in w.iter().enumerate() {
        let c = (i / inner) % channels;
        m[c] = m[c].max(v.abs());
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headroom_follows_the_spread_of_per_sample_maxima() {
        let map = [1, 40, 30, 16];
        // Every sample alike: the floor.
        assert_eq!(int16_headroom(5.0, 4.9, 100, &map), MIN_HEADROOM);
        // The largest sample 3x the typical one: 3x room above it.
        assert_eq!(int16_headroom(6.0, 2.0, 100, &map), 3.0);
        // Never beyond the fixed headroom.
        assert_eq!(int16_headroom(60.0, 2.0, 100, &map), INT16_HEADROOM);
        // Too few samples, one value per channel and sample, or no typical value: fixed.
        assert_eq!(int16_headroom(5.0, 4.9, 3, &map), INT16_HEADROOM);
        assert_eq!(
            int16_headroom(5.0, 4.9, 100, &[1, 1, 1, 16]),
            INT16_HEADROOM
        );
        assert_eq!(int16_headroom(5.0, 4.9, 100, &[1, 16]), INT16_HEADROOM);
        assert_eq!(int16_headroom(5.0, 0.0, 100, &map), INT16_HEADROOM);
        assert_eq!(int16_headroom(f64::NAN, 1.0, 100, &map), INT16_HEADROOM);
        // The activation scale takes it, and never less than 1.
        let a = Affine::int16_activation(-1.0, 2.0, 3.0);
        assert_eq!(a.scale, 6.0 / I16_MAX);
        assert_eq!(
            Affine::int16_activation(-1.0, 2.0, 0.5).scale,
            2.0 / I16_MAX
        );
    }

    #[test]
    fn int16_is_symmetric_and_covers_the_range() {
        let a = Affine::int16(-2.0, 1.0);
        assert_eq!(a.zero_point, 0);
        assert_eq!(a.quantize(-2.0), -32767);
        assert_eq!(a.quantize(3.0), 32767);
        assert_eq!(Affine::int16(0.0, 0.0).scale, 1.0 / I16_MAX);
    }

    #[test]
    fn uint8_contains_zero_exactly() {
        let a = Affine::uint8(0.5, 6.0);
        assert_eq!(a.zero_point, 0);
        let b = Affine::uint8(-1.0, 3.0);
        assert_eq!(b.zero_point, 64);
        assert_eq!(b.quantize(0.0), 64);
        assert_eq!(b.quantize(3.0), 255);
    }

    #[test]
    fn relu6_bounds() {
        let a = Affine::int16(0.0, 8.0);
        let r = a.out_range(FusedActivation::Relu6);
        assert_eq!((r.min, r.max), (0, a.quantize(6.0)));
        let n = a.out_range(FusedActivation::None);
        assert_eq!((n.min, n.max), (-32768, 32767));
    }

    #[test]
    fn common_shift_keeps_both_ratios() {
        let (ma, mb, n) = common_shift(0.75, 3.0e-3).unwrap();
        let s = (n as f64).exp2();
        assert!((ma as f64 / s - 0.75).abs() < 1e-9);
        assert!((mb as f64 / s - 3.0e-3).abs() < 1e-9);
        assert!((ma as i64) < (1 << 31));
        assert!(common_shift(-1.0, 1.0).is_err());
    }

    #[test]
    fn weights_per_channel() {
        let w = [1.0, -0.5, 0.25, 0.0, 2.0, -4.0];
        let shape = [2, 3];
        let clip = channel_abs_max(&w, &shape, 0);
        assert_eq!(clip, vec![1.0, 4.0]);
        let q = quantize_weights(&w, &shape, 0, &clip, 127.0);
        assert_eq!(q.values, vec![127, -64, 32, 0, 64, -127]);
    }
}
