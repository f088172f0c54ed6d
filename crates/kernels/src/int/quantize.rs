//! The model boundary (`docs/fixed-point.md` §9): `Quantize` (FLOAT32 → integers) and
//! `Dequantize` (integers → FLOAT32), in IEEE-754 single precision.

use super::arith::{check_out, QInt};
use super::isa::{multiversion, Isa};
use crate::error::{check_len, invalid, Result};
use crate::par;
use ipukit_ir::ops::fixed::{Dequantize, OutRange, Quantize};

/// `y = sat(z + round_half_away_from_zero(x / s))`, the division and rounding in `f32`
/// (a NaN quotient counts as 0, infinities saturate).
pub fn quantize<O: QInt>(attrs: &Quantize, x: &[f32], out: &mut [O]) -> Result<()> {
    quantize_isa(Isa::detect(), attrs, x, out)
}

/// [`quantize`] on a chosen instruction set (clamped to the CPU).
pub fn quantize_isa<O: QInt>(isa: Isa, attrs: &Quantize, x: &[f32], out: &mut [O]) -> Result<()> {
    const OP: &str = "Quantize";
    if !(attrs.scale > 0.0 && attrs.scale.is_finite()) {
        return Err(invalid(
            OP,
            format!("scale {} must be positive and finite", attrs.scale),
        ));
    }
    let range = OutRange::full(attrs.out_dtype, attrs.zero_point);
    check_out::<O>(OP, Some(attrs.out_dtype), &range)?;
    check_len(OP, "output", out.len(), x.len())?;
    par::for_rows(out, 1, par::MIN_PAR_ELEMS, |r0, chunk| {
        quantize_rows(
            isa,
            attrs.scale,
            attrs.zero_point,
            &x[r0..r0 + chunk.len()],
            chunk,
        );
    });
    Ok(())
}

#[inline(always)]
fn quantize_body<O: QInt>(s: f32, z: i32, x: &[f32], out: &mut [O]) {
    let (lo, hi) = (O::MIN_I32 as f32, O::MAX_I32 as f32);
    for (o, &v) in out.iter_mut().zip(x) {
        let r = (v / s).round();
        // z + r in f32 is exact while |r| < 2^24 − 2^16, and saturates the same beyond;
        // `as` maps NaN to 0.
        let q = if r.is_nan() {
            z as f32
        } else {
            (z as f32 + r.clamp(-(1 << 24) as f32, (1 << 24) as f32)).clamp(lo, hi)
        };
        *o = O::from_i32(q as i32);
    }
}

multiversion!(
    /// One chunk of [`quantize`].
    fn quantize_rows<O: QInt> = quantize_body(s: f32, z: i32, x: &[f32], out: &mut [O])
);

/// `y = (x − z) · s` in `f32` (the integer difference is exact in `f32`).
pub fn dequantize<X: QInt>(attrs: &Dequantize, x: &[X], out: &mut [f32]) -> Result<()> {
    dequantize_isa(Isa::detect(), attrs, x, out)
}

/// [`dequantize`] on a chosen instruction set (clamped to the CPU).
pub fn dequantize_isa<X: QInt>(
    isa: Isa,
    attrs: &Dequantize,
    x: &[X],
    out: &mut [f32],
) -> Result<()> {
    check_len("Dequantize", "output", out.len(), x.len())?;
    par::for_rows(out, 1, par::MIN_PAR_ELEMS, |r0, chunk| {
        dequantize_rows(
            isa,
            attrs.scale,
            attrs.zero_point,
            &x[r0..r0 + chunk.len()],
            chunk,
        );
    });
    Ok(())
}

#[inline(always)]
fn dequantize_body<X: QInt>(s: f32, z: i32, x: &[X], out: &mut [f32]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = (v.into() - z) as f32 * s;
    }
}

multiversion!(
    /// One chunk of [`dequantize`].
    fn dequantize_rows<X: QInt> = dequantize_body(s: f32, z: i32, x: &[X], out: &mut [f32])
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::int::testutil::Rng;
    use ipukit_ir::DType;
    use proptest::prelude::*;

    /// §9 literally: round half away from zero of the f32 quotient, then saturate (exact
    /// integer arithmetic on the rounded value).
    fn naive_q(s: f32, z: i32, lo: i32, hi: i32, v: f32) -> i32 {
        let r = (v / s).round();
        if r.is_nan() {
            return z.clamp(lo, hi);
        }
        (z as f64 + r as f64).clamp(lo as f64, hi as f64) as i32
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        fn quantize_matches_definition(seed in any::<u64>(), s in 1e-6f32..100.0, u8_out in any::<bool>()) {
            let mut rng = Rng::new(seed);
            let mut x: Vec<f32> = (0..300).map(|_| (rng.range(-1 << 20, 1 << 20) as f32) * s / 64.0).collect();
            // Exact halves, huge values, infinities, NaN.
            x.extend([0.5 * s, -0.5 * s, 1.5 * s, -2.5 * s, 1e30, -1e30, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, -0.0]);
            let (dt, z, lo, hi) = if u8_out { (DType::U8, rng.range(0, 255), 0, 255) } else { (DType::I16, 0, -32768, 32767) };
            let q = Quantize { scale: s, zero_point: z, out_dtype: dt };
            let want: Vec<i32> = x.iter().map(|&v| naive_q(s, z, lo, hi, v)).collect();
            for isa in Isa::supported() {
                let got: Vec<i32> = if u8_out {
                    let mut o = vec![0u8; x.len()];
                    quantize_isa(isa, &q, &x, &mut o).unwrap();
                    o.iter().map(|&v| v as i32).collect()
                } else {
                    let mut o = vec![0i16; x.len()];
                    quantize_isa(isa, &q, &x, &mut o).unwrap();
                    o.iter().map(|&v| v as i32).collect()
                };
                prop_assert_eq!(&got, &want, "{}", isa);
            }
        }

        #[test]
        fn dequantize_matches_definition(seed in any::<u64>(), s in 1e-6f32..100.0, z in -300i32..300) {
            let mut rng = Rng::new(seed);
            let x: Vec<i16> = rng.vec(500);
            let d = Dequantize { scale: s, zero_point: z };
            for isa in Isa::supported() {
                let mut o = vec![0.0f32; x.len()];
                dequantize_isa(isa, &d, &x, &mut o).unwrap();
                for (g, &v) in o.iter().zip(&x) {
                    prop_assert_eq!(g.to_bits(), ((v as i32 - z) as f32 * s).to_bits());
                }
            }
        }
    }

    #[test]
    fn hand_computed_examples() {
        let q = Quantize {
            scale: 0.5,
            zero_point: 10,
            out_dtype: DType::U8,
        };
        let mut o = [0u8; 6];
        quantize(&q, &[0.25, -0.25, 0.75, 100.0, -100.0, f32::NAN], &mut o).unwrap();
        // 0.5 → 1 (away from zero), −0.5 → −1, 1.5 → 2.
        assert_eq!(o, [11, 9, 12, 210, 0, 10]);
        let mut o16 = [0i16; 1];
        assert!(quantize(&q, &[0.0], &mut o16).is_err());
        assert!(quantize(&Quantize { scale: 0.0, ..q }, &[0.0], &mut o).is_err());
        let mut f = [0.0f32; 2];
        dequantize(
            &Dequantize {
                scale: 0.5,
                zero_point: 10,
            },
            &[13u8, 0],
            &mut f,
        )
        .unwrap();
        assert_eq!(f, [1.5, -5.0]);
    }
}
