//! The rounding helpers of `docs/fixed-point.md` §2 and the integer element types.
//!
//! Every rounding of the fixed-point semantics goes through [`rshift_round`],
//! [`div_round`] and [`requant`]; they are exact for every input (no intermediate
//! overflow), which the tests check against 128-bit (or arbitrary-precision) definitions.

use crate::error::{invalid, Result};
use crate::Element;
use ipukit_ir::ops::fixed::{OutRange, Requant};

/// Integer activation types of fixed-point tensors: `u8`, `i8`, `i16`, `u16` (plain data:
/// buffers of them can be reused as bytes).
pub trait QInt: Element + Ord + Into<i32> + bytemuck::Pod {
    /// Smallest value.
    const MIN_I32: i32;
    /// Largest value.
    const MAX_I32: i32;
    /// Converts a value already inside `MIN..=MAX` (other values wrap).
    fn from_i32(v: i32) -> Self;
    /// Saturating conversion.
    #[inline]
    fn saturate(v: i64) -> Self {
        Self::from_i32(v.clamp(Self::MIN_I32 as i64, Self::MAX_I32 as i64) as i32)
    }
}

macro_rules! qint {
    ($($t:ty),*) => {$(
        impl QInt for $t {
            const MIN_I32: i32 = <$t>::MIN as i32;
            const MAX_I32: i32 = <$t>::MAX as i32;
            #[inline]
            fn from_i32(v: i32) -> Self {
                v as $t
            }
        }
    )*};
}
qint!(u8, i8, i16, u16);

/// `rshift_round(v, n) = (v + 2^(n−1)) >> n` for `n ≥ 1` (round half toward +∞), `v` for
/// `n = 0`; computed as `(v >> n) + ((v >> (n − 1)) & 1)`, which never overflows.
#[inline(always)]
pub fn rshift_round(v: i64, n: u32) -> i64 {
    match n {
        0 => v,
        1..=63 => (v >> n) + ((v >> (n - 1)) & 1),
        // (v + 2^(n−1)) lies in [0, 2^n) for every i64 v.
        _ => 0,
    }
}

/// [`rshift_round`] on 128-bit values.
#[inline]
pub fn rshift_round_i128(v: i128, n: u32) -> i128 {
    match n {
        0 => v,
        1..=127 => (v >> n) + ((v >> (n - 1)) & 1),
        _ => 0,
    }
}

/// `div_round(n, d) = floor((2n + d) / (2d))` for `d > 0` (round half toward +∞); `None`
/// when `d ≤ 0`. Exact for every `n`, `d` below 2^125 in magnitude.
#[inline]
pub fn div_round(n: i128, d: i128) -> Option<i128> {
    (d > 0).then(|| (2 * n + d).div_euclid(2 * d))
}

/// `requant(v, (m, n)) = rshift_round(v · m, n)`, exact (128-bit product when `|v| > 2^32`,
/// 64-bit otherwise). The result saturates at the `i64` range, which only a shift near 0 and
/// a huge `v` can reach; every caller then saturates to an output type of at most 32 bits,
/// so the final results are exact. A negative multiplier (invalid) is treated as its value.
#[inline(always)]
pub fn requant(v: i64, m: Requant) -> i64 {
    if v.unsigned_abs() <= 1 << 32 {
        // |v · m| ≤ 2^32 · (2^31 − 1) < 2^63.
        rshift_round(v * m.multiplier as i64, m.shift)
    } else {
        requant_i128(v as i128, m)
    }
}

/// [`requant`] of a 128-bit value (the product is exact for `|v| < 2^96`), saturated to `i64`.
#[inline]
pub fn requant_i128(v: i128, m: Requant) -> i64 {
    let p = v.saturating_mul(m.multiplier as i128);
    rshift_round_i128(p, m.shift).clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

/// `sat_out(z_out + r)`: adds the output zero point and clamps to `[out.min, out.max]`.
#[inline(always)]
pub fn sat_out(r: i64, out: &OutRange) -> i32 {
    // clamp(r, min − z, max − z) + z: no overflow for any r (and no panic for min > max).
    let z = out.zero_point as i64;
    (r.max(out.min as i64 - z).min(out.max as i64 - z) + z) as i32
}

/// Checks that every multiplier is valid (`0 ≤ m < 2^31`, `n ≤ 62`) and that there are
/// `channels` of them or one.
pub(crate) fn check_requants(
    op: &'static str,
    what: &str,
    r: &[Requant],
    channels: usize,
) -> Result<()> {
    if r.len() != channels && r.len() != 1 {
        return Err(invalid(
            op,
            format!("{} {what} multipliers for {channels} channels", r.len()),
        ));
    }
    if let Some(m) = r.iter().find(|m| !m.is_valid()) {
        return Err(invalid(
            op,
            format!("{what} multiplier {m:?} is out of range (0 ≤ m < 2^31, shift ≤ 62)"),
        ));
    }
    Ok(())
}

/// Checks a single multiplier.
pub(crate) fn check_requant(op: &'static str, m: Requant) -> Result<()> {
    check_requants(op, "the", &[m], 1)
}

/// Checks that the output range fits the element type `O` and that the declared output type
/// (when given) is `O`.
pub(crate) fn check_out<O: QInt>(
    op: &'static str,
    declared: Option<ipukit_ir::DType>,
    out: &OutRange,
) -> Result<()> {
    if let Some(d) = declared {
        if d != O::DTYPE {
            return Err(invalid(
                op,
                format!(
                    "the output type is {d}, the output buffer holds {}",
                    O::DTYPE
                ),
            ));
        }
    }
    if out.min < O::MIN_I32 || out.max > O::MAX_I32 || out.min > out.max {
        return Err(invalid(
            op,
            format!(
                "output range [{}, {}] is outside {}",
                out.min,
                out.max,
                O::DTYPE
            ),
        ));
    }
    Ok(())
}

/// Per-channel multipliers expanded to `channels` entries (one shared multiplier repeated).
pub(crate) fn expand_requants(r: &[Requant], channels: usize) -> Vec<Requant> {
    if r.len() == channels {
        r.to_vec()
    } else {
        vec![r.first().copied().unwrap_or_default(); channels]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The doc's definitions, literally, in 128-bit arithmetic.
    fn rshift_round_def(v: i128, n: u32) -> i128 {
        if n == 0 {
            v
        } else {
            (v + (1i128 << (n - 1))) >> n
        }
    }

    #[test]
    fn hand_computed_roundings() {
        // Half rounds toward +inf.
        assert_eq!(rshift_round(5, 1), 3); // 2.5 -> 3
        assert_eq!(rshift_round(-5, 1), -2); // -2.5 -> -2
        assert_eq!(rshift_round(-6, 2), -1); // -1.5 -> -1
        assert_eq!(rshift_round(-7, 2), -2); // -1.75 -> -2
        assert_eq!(rshift_round(7, 0), 7);
        assert_eq!(rshift_round(i64::MAX, 1), 1 << 62);
        assert_eq!(rshift_round(i64::MIN, 63), -1);
        assert_eq!(rshift_round(i64::MAX, 63), 1);
        assert_eq!(rshift_round(i64::MIN, 64), 0);
        assert_eq!(div_round(5, 2), Some(3)); // 2.5 -> 3
        assert_eq!(div_round(-5, 2), Some(-2)); // -2.5 -> -2
        assert_eq!(div_round(-7, 3), Some(-2)); // -2.33 -> -2
        assert_eq!(div_round(7, 3), Some(2));
        assert_eq!(div_round(1, 0), None);
        // 100 · 0.75 = 75.
        let m = Requant::from_ratio(0.75).unwrap();
        assert_eq!(requant(100, m), 75);
        assert_eq!(requant(-3, Requant::from_ratio(0.5).unwrap()), -1); // -1.5 -> -1
        let out = OutRange {
            zero_point: 10,
            min: 0,
            max: 255,
        };
        assert_eq!(sat_out(300, &out), 255);
        assert_eq!(sat_out(-11, &out), 0);
        assert_eq!(sat_out(i64::MAX, &out), 255);
        assert_eq!(sat_out(5, &out), 15);
    }

    proptest! {
        #[test]
        fn rshift_round_matches_definition(v in any::<i64>(), n in 0u32..64) {
            prop_assert_eq!(rshift_round(v, n) as i128, rshift_round_def(v as i128, n));
        }

        #[test]
        fn requant_is_exact(v in any::<i64>(), m in 0i32..=i32::MAX, n in 0u32..=62) {
            let r = Requant { multiplier: m, shift: n };
            let want = rshift_round_def(v as i128 * m as i128, n)
                .clamp(i64::MIN as i128, i64::MAX as i128);
            prop_assert_eq!(requant(v, r) as i128, want);
            // Values near the 64-bit fast-path boundary.
            let v2 = (v % 4) + (1i64 << 32) * v.signum();
            let want2 = rshift_round_def(v2 as i128 * m as i128, n);
            prop_assert_eq!(requant(v2, r) as i128, want2);
        }

        #[test]
        fn div_round_matches_rational_rounding(n in any::<i64>(), d in 1i64..i64::MAX) {
            // floor(n/d + 1/2) computed with exact rationals.
            let (n, d) = (n as i128, d as i128);
            let q = n.div_euclid(d);
            let r = n.rem_euclid(d);
            let want = if 2 * r >= d { q + 1 } else { q };
            prop_assert_eq!(div_round(n, d), Some(want));
        }
    }
}
