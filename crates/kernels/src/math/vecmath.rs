//! Vectorisable approximations of `exp` and the functions built on it.
//!
//! Written with selects and integer bit tricks only (no calls, no branches on data), so loops
//! over them vectorise; accuracy is within a few ulp of the standard library (tested below).

/// `ln 2` split in a part exact in f32 and a correction (Cody–Waite).
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
const LOG2E: f32 = std::f32::consts::LOG2_E;
/// 1.5 · 2²³: adding it rounds an f32 of magnitude < 2²² to an integer.
const ROUND_MAGIC: f32 = 12_582_912.0;

/// `e^x` for every finite `x` (overflow gives `inf`, underflow `0`, NaN stays NaN).
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    let xc = x.clamp(-104.0, 89.0);
    // n = round(x / ln 2), r = x - n ln 2 in [-ln2/2, ln2/2].
    let t = xc * LOG2E + ROUND_MAGIC;
    let n = (t.to_bits() as i32).wrapping_sub(ROUND_MAGIC.to_bits() as i32);
    let nf = t - ROUND_MAGIC;
    let r = xc - nf * LN2_HI - nf * LN2_LO;
    // e^r by a degree-6 polynomial (Cephes expf).
    let p = 1.987_569_1e-4f32;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let er = p * r * r + r + 1.0;
    // 2^n split in two factors so that neither overflows nor flushes early.
    let n1 = n >> 1;
    let n2 = n - n1;
    let s1 = f32::from_bits(((n1 + 127) as u32) << 23);
    let s2 = f32::from_bits(((n2 + 127) as u32) << 23);
    let y = er * s1 * s2;
    if x.is_nan() {
        x
    } else {
        y
    }
}

/// `1 / (1 + e^-x)`.
#[inline(always)]
pub(crate) fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(a: f32, b: f32) -> f32 {
        if a == b {
            0.0
        } else {
            (a - b).abs() / b.abs().max(f32::MIN_POSITIVE)
        }
    }

    #[test]
    fn exp_matches_std() {
        let mut worst: f32 = 0.0;
        let mut x = -87.0f32;
        while x < 88.5 {
            worst = worst.max(rel(exp(x), x.exp()));
            x += 0.0137;
        }
        assert!(worst < 4e-7, "worst relative error {worst}");
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(100.0), f32::INFINITY);
        assert_eq!(exp(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp(-200.0), 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert!(exp(f32::NAN).is_nan());
        // Subnormal range keeps a reasonable absolute error.
        assert!((exp(-100.0) - (-100.0f32).exp()).abs() < 1e-44);
    }

    #[test]
    fn sigmoid_matches_reference() {
        let mut x = -30.0f32;
        while x < 30.0 {
            let want = 1.0 / (1.0 + (-x).exp());
            assert!(
                (sigmoid(x) - want).abs() <= 4.0 * f32::EPSILON * want.max(1e-30),
                "{x}"
            );
            x += 0.01;
        }
        assert_eq!(sigmoid(-1000.0), 0.0);
        assert_eq!(sigmoid(1000.0), 1.0);
    }
}
