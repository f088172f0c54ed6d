//! Rescale (`QRescale`, `docs/fixed-point.md` §4): change of scale, zero point or type, and
//! Relu / Clip / LeakyRelu / PRelu, with separate multipliers for non-negative and negative
//! `x − z_in`, per channel of the last axis.

use super::arith::{check_out, check_requants, expand_requants, QInt};
use super::isa::{multiversion, Isa};
use crate::error::{check_len, invalid, Result};
use crate::par;
use ipukit_ir::ops::fixed::{QRescale, Requant};

/// `out = sat_out(z_out + requant(x − z_in, x ≥ z_in ? P[c] : N[c]))`, `c` the index along the
/// last axis of `x_shape`.
pub fn qrescale<X: QInt, O: QInt>(
    attrs: &QRescale,
    x: &[X],
    x_shape: &[usize],
    out: &mut [O],
) -> Result<()> {
    qrescale_isa(Isa::detect(), attrs, x, x_shape, out)
}

/// [`qrescale`] on a chosen instruction set (clamped to the CPU).
pub fn qrescale_isa<X: QInt, O: QInt>(
    isa: Isa,
    attrs: &QRescale,
    x: &[X],
    x_shape: &[usize],
    out: &mut [O],
) -> Result<()> {
    const OP: &str = "QRescale";
    let c = x_shape.last().copied().unwrap_or(1);
    check_requants(OP, "positive", &attrs.positive, c)?;
    check_requants(OP, "negative", &attrs.negative, c)?;
    check_out::<O>(OP, Some(attrs.out_dtype), &attrs.out)?;
    check_len(OP, "input", x.len(), x_shape.iter().product())?;
    check_len(OP, "output", out.len(), x.len())?;
    if x.is_empty() {
        return Ok(());
    }
    if c == 0 {
        return Err(invalid(OP, "empty last axis"));
    }
    let z = attrs.out.zero_point as i64;
    let (lo, hi) = (attrs.out.min as i64 - z, attrs.out.max as i64 - z);
    // One multiplier for every element and both signs (a per-tensor change of scale, the
    // common case): a flat loop with the shift as a scalar.
    if let ([pm], [nm]) = (&attrs.positive[..], &attrs.negative[..]) {
        if pm == nm {
            let f = Flat {
                zin: attrs.input_zero_point,
                m: pm.multiplier,
                half: Side::new(&[*pm]).half[0],
                n: pm.shift as i64,
                lo,
                hi,
                z,
            };
            par::for_rows(out, 1, par::MIN_PAR_ELEMS, |r0, chunk| {
                rescale_flat(isa, &f, &x[r0..r0 + chunk.len()], chunk);
            });
            return Ok(());
        }
    }
    let pos = expand_requants(&attrs.positive, c);
    let neg = expand_requants(&attrs.negative, c);
    let p = Params {
        zin: attrs.input_zero_point,
        pos: Side::new(&pos),
        neg: Side::new(&neg),
        lo,
        hi,
        z,
    };
    par::for_rows(out, c, par::MIN_PAR_ELEMS, |r0, chunk| {
        let xs = &x[r0 * c..r0 * c + chunk.len()];
        rescale_rows(isa, &p, xs, chunk);
    });
    Ok(())
}

/// One sign's per-channel multipliers, as the vector loop wants them: `m` as `i32` (so that
/// the product `d · m`, `|d| < 2^17`, compiles to a 32 × 32 → 64-bit multiply), the rounding
/// term `2^(n−1)` (0 for `n = 0`) and the shift `n`, so that
/// `rshift_round(v, n) = (v + 2^(n−1)) >> n` exactly (`|v| < 2^48`, `n ≤ 62`: no overflow).
pub(crate) struct Side {
    m: Vec<i32>,
    half: Vec<i64>,
    n: Vec<i64>,
}

impl Side {
    fn new(r: &[Requant]) -> Side {
        Side {
            m: r.iter().map(|q| q.multiplier).collect(),
            half: r
                .iter()
                .map(|q| {
                    if q.shift > 0 {
                        1i64 << (q.shift - 1)
                    } else {
                        0
                    }
                })
                .collect(),
            n: r.iter().map(|q| q.shift as i64).collect(),
        }
    }
}

/// Per-channel parameters, expanded (see [`qrescale_isa`]).
pub(crate) struct Params {
    zin: i32,
    pos: Side,
    neg: Side,
    lo: i64,
    hi: i64,
    z: i64,
}

#[inline(always)]
fn rescale_rows_body<X: QInt, O: QInt>(p: &Params, x: &[X], out: &mut [O]) {
    let c = p.pos.m.len();
    // Slices of exactly `c` elements: the loop below has no bounds checks and vectorises
    // (blends for the sign, vpmuldq, variable 64-bit shifts, 64-bit min/max).
    let (pm, ph, pn) = (&p.pos.m[..c], &p.pos.half[..c], &p.pos.n[..c]);
    let (nm, nh, nn) = (&p.neg.m[..c], &p.neg.half[..c], &p.neg.n[..c]);
    for (xr, or) in x.chunks_exact(c).zip(out.chunks_exact_mut(c)) {
        let (xr, or) = (&xr[..c], &mut or[..c]);
        for i in 0..c {
            let d = xr[i].into() - p.zin;
            let neg = d < 0;
            let m = if neg { nm[i] } else { pm[i] };
            let h = if neg { nh[i] } else { ph[i] };
            let n = if neg { nn[i] } else { pn[i] };
            // |d| < 2^17 and 0 ≤ m < 2^31: |d · m| < 2^48.
            let r = (d as i64 * m as i64 + h) >> n;
            or[i] = O::from_i32((r.max(p.lo).min(p.hi) + p.z) as i32);
        }
    }
}

/// The parameters of a rescale with one multiplier for every element and both signs.
pub(crate) struct Flat {
    zin: i32,
    m: i32,
    half: i64,
    n: i64,
    lo: i64,
    hi: i64,
    z: i64,
}

#[inline(always)]
fn rescale_flat_body<X: QInt, O: QInt>(f: &Flat, x: &[X], out: &mut [O]) {
    let (m, half, n) = (f.m as i64, f.half, f.n);
    for (o, &v) in out.iter_mut().zip(x) {
        let d = v.into() - f.zin;
        // As in `rescale_rows_body`, with the same multiplier for both signs.
        let r = (d as i64 * m + half) >> n;
        *o = O::from_i32((r.max(f.lo).min(f.hi) + f.z) as i32);
    }
}

multiversion!(
    /// Every element with the same multiplier.
    fn rescale_flat<X: QInt, O: QInt> = rescale_flat_body(f: &Flat, x: &[X], out: &mut [O])
);

multiversion!(
    /// Rows of `c` channels.
    fn rescale_rows<X: QInt, O: QInt> = rescale_rows_body(p: &Params, x: &[X], out: &mut [O])
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::int::testutil::{requant_def, with_threads, Rng};
    use ipukit_ir::ops::fixed::OutRange;
    use ipukit_ir::DType;
    use proptest::prelude::*;

    fn naive<X: QInt, O: QInt>(a: &QRescale, x: &[X], c: usize) -> Vec<O> {
        x.iter()
            .enumerate()
            .map(|(i, &v)| {
                let d = v.into() as i128 - a.input_zero_point as i128;
                let ch = i % c;
                let pick = |v: &[Requant]| if v.len() == 1 { v[0] } else { v[ch] };
                let m = if d >= 0 {
                    pick(&a.positive)
                } else {
                    pick(&a.negative)
                };
                O::from_i32(requant_def(d, m, &a.out))
            })
            .collect()
    }

    fn check<X: QInt, O: QInt>(
        seed: u64,
        shape: &[usize],
        per_channel: bool,
        same_signs: bool,
        threads: usize,
    ) -> std::result::Result<(), TestCaseError> {
        let mut rng = Rng::new(seed);
        let c = *shape.last().unwrap();
        let n = if per_channel { c } else { 1 };
        let x: Vec<X> = rng.vec(shape.iter().product());
        let zout = if O::MIN_I32 == 0 {
            rng.extreme(0, O::MAX_I32)
        } else {
            0
        };
        let positive: Vec<Requant> = (0..n).map(|_| rng.requant(8)).collect();
        let negative = if same_signs {
            positive.clone()
        } else {
            (0..n).map(|_| rng.requant(8)).collect()
        };
        let attrs = QRescale {
            input_zero_point: rng.extreme(X::MIN_I32, X::MAX_I32),
            positive,
            negative,
            out_dtype: O::DTYPE,
            out: OutRange {
                zero_point: zout,
                min: if rng.below(3) == 0 { zout } else { O::MIN_I32 },
                max: O::MAX_I32,
            },
        };
        let want: Vec<O> = naive(&attrs, &x, c);
        for isa in Isa::supported() {
            let mut got = vec![O::default(); x.len()];
            with_threads(threads, || qrescale_isa(isa, &attrs, &x, shape, &mut got)).unwrap();
            prop_assert_eq!(&got, &want, "{}", isa);
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]
        #[test]
        fn matches_definition(seed in any::<u64>(), dims in proptest::collection::vec(1usize..7, 1..4), per_channel in any::<bool>(), same_signs in any::<bool>(), threads in 1usize..3) {
            // Per tensor with the same multiplier for both signs: the flat loop.
            let s = same_signs;
            check::<i16, i16>(seed, &dims, per_channel, s, threads)?;
            check::<i16, u8>(seed, &dims, per_channel, s, threads)?;
            check::<u8, i16>(seed, &dims, per_channel, s, threads)?;
            check::<u8, u8>(seed, &dims, per_channel, s, threads)?;
            check::<i8, i16>(seed, &dims, per_channel, s, threads)?;
            check::<u16, i16>(seed, &dims, per_channel, s, threads)?;
        }
    }

    #[test]
    fn large_tensors_match() {
        check::<i16, u8>(1, &[2, 64, 64, 24], true, false, 2).unwrap();
        check::<i16, i16>(2, &[1, 100, 100, 3], false, false, 2).unwrap();
        // The flat loop, split across threads at any element.
        check::<i16, u8>(3, &[1, 80, 80, 16], false, true, 2).unwrap();
        check::<u8, i16>(4, &[1, 101, 99, 3], false, true, 2).unwrap();
    }

    /// LeakyRelu with α = 0.1 and an INT16 → UINT8 conversion, by hand.
    #[test]
    fn hand_computed_examples() {
        let attrs = QRescale {
            input_zero_point: 0,
            positive: vec![Requant::IDENTITY],
            negative: vec![Requant::from_ratio(0.1).unwrap()],
            out_dtype: DType::I16,
            out: OutRange::full(DType::I16, 0),
        };
        let mut o = [0i16; 4];
        qrescale(&attrs, &[100i16, -100, -15, -16], &[4], &mut o).unwrap();
        assert_eq!(o, [100, -10, -1, -2]); // −1.5 → −1, −1.6 → −2
        let to_u8 = QRescale {
            input_zero_point: 0,
            positive: vec![Requant::from_ratio(0.5).unwrap()],
            negative: vec![Requant::from_ratio(0.5).unwrap()],
            out_dtype: DType::U8,
            out: OutRange {
                zero_point: 128,
                min: 0,
                max: 255,
            },
        };
        let mut o = [0u8; 4];
        qrescale(&to_u8, &[0i16, 5, -5, 1000], &[4], &mut o).unwrap();
        assert_eq!(o, [128, 131, 126, 255]); // 2.5 → 3, −2.5 → −2
                                             // The output buffer type must be the declared one.
        let mut o = [0i16; 4];
        assert!(qrescale(&to_u8, &[0i16; 4], &[4], &mut o).is_err());
    }
}
