//! Quantized element-wise binary operations (`QBinary`, `docs/fixed-point.md` §4) on INT16
//! tensors with numpy broadcasting.
//!
//! Products are formed in 64 bits (`|a · m_a| < 2⁴⁶`). The output is
//! `sat_out(z_out + r)` for the formula's `r` (the INT16 outputs of the calibrator have
//! `z_out = 0`). The broadcast iteration is reduced to rows ([`Strided`]); rows where each
//! operand is contiguous or a scalar get loops that vectorise (compiled for AVX-512BW, AVX2 and
//! the baseline).

use super::arith::{check_out, check_requant, div_round, requant, rshift_round, sat_out};
use super::isa::{multiversion, Isa};
use crate::error::{check_len, invalid, Result};
use crate::par;
use crate::shape::{broadcast_all, broadcast_strides, numel, Strided};
use ipukit_ir::ops::fixed::{OutRange, QBinary, QBinaryKind, Requant};
use ipukit_ir::DType;

/// `out = kind(a, b)` with numpy broadcasting; `out` has the broadcast shape.
pub fn qbinary(
    attrs: &QBinary,
    a: &[i16],
    a_shape: &[usize],
    b: &[i16],
    b_shape: &[usize],
    out: &mut [i16],
) -> Result<()> {
    qbinary_isa(Isa::detect(), attrs, a, a_shape, b, b_shape, out)
}

/// [`qbinary`] on a chosen instruction set (clamped to the CPU).
pub fn qbinary_isa(
    isa: Isa,
    attrs: &QBinary,
    a: &[i16],
    a_shape: &[usize],
    b: &[i16],
    b_shape: &[usize],
    out: &mut [i16],
) -> Result<()> {
    const OP: &str = "QBinary";
    check_attrs(attrs)?;
    let shape = broadcast_all(OP, &[a_shape, b_shape])?;
    check_len(OP, "first input", a.len(), numel(a_shape))?;
    check_len(OP, "second input", b.len(), numel(b_shape))?;
    check_len(OP, "output", out.len(), numel(&shape))?;
    if out.is_empty() {
        return Ok(());
    }
    let o_st = broadcast_strides(&shape, &shape);
    let sa = broadcast_strides(a_shape, &shape);
    let sb = broadcast_strides(b_shape, &shape);
    let it = Strided::new(&shape, [&o_st, &sa, &sb], [0, 0, 0]);
    let inner = it.inner;
    par::for_rows(out, inner, par::MIN_PAR_ELEMS, |r0, chunk| {
        let rows = chunk.len() / inner;
        it.for_rows(r0, r0 + rows, |row, [_, oa, ob]| {
            let o = &mut chunk[(row - r0) * inner..(row - r0 + 1) * inner];
            let [_, da, db] = it.inner_steps;
            binary_row(isa, attrs.kind, attrs.out, a, oa, da, b, ob, db, o);
        });
    });
    Ok(())
}

/// Checks the output range and the multipliers of `attrs`.
pub(crate) fn check_attrs(attrs: &QBinary) -> Result<()> {
    const OP: &str = "QBinary";
    check_out::<i16>(OP, Some(DType::I16), &attrs.out)?;
    match attrs.kind {
        QBinaryKind::Add { ma, mb, shift }
        | QBinaryKind::Sub { ma, mb, shift }
        | QBinaryKind::Max { ma, mb, shift }
        | QBinaryKind::Min { ma, mb, shift } => {
            if ma < 0 || mb < 0 || shift > 62 {
                return Err(invalid(
                    OP,
                    format!("multipliers ({ma}, {mb}) and shift {shift} are out of range (0 ≤ m < 2^31, shift ≤ 62)"),
                ));
            }
        }
        QBinaryKind::Mul(m) | QBinaryKind::Div(m) => check_requant(OP, m)?,
    }
    Ok(())
}

/// [`qbinary`] of whole rows `x` (`v.len()` values each) and the vector `v` broadcast over
/// them (`v_first`: `v` is the first operand), on the calling thread: the rows the broadcast
/// iteration gives, through the same row kernel. `attrs` passed [`check_attrs`].
pub(crate) fn rows_by_vector(
    isa: Isa,
    attrs: &QBinary,
    x: &[i16],
    v: &[i16],
    v_first: bool,
    out: &mut [i16],
) {
    let c = v.len().max(1);
    for (xr, o) in x.chunks_exact(c).zip(out.chunks_exact_mut(c)) {
        if v_first {
            binary_row(isa, attrs.kind, attrs.out, v, 0, 1, xr, 0, 1, o);
        } else {
            binary_row(isa, attrs.kind, attrs.out, xr, 0, 1, v, 0, 1, o);
        }
    }
}

/// The scalar semantics of one element (§4), before `sat_out`.
#[inline(always)]
pub(crate) fn binary_value(kind: QBinaryKind, a: i64, b: i64) -> i64 {
    match kind {
        QBinaryKind::Add { ma, mb, shift } => rshift_round(a * ma as i64 + b * mb as i64, shift),
        QBinaryKind::Sub { ma, mb, shift } => rshift_round(a * ma as i64 - b * mb as i64, shift),
        QBinaryKind::Max { ma, mb, shift } => {
            rshift_round((a * ma as i64).max(b * mb as i64), shift)
        }
        QBinaryKind::Min { ma, mb, shift } => {
            rshift_round((a * ma as i64).min(b * mb as i64), shift)
        }
        QBinaryKind::Mul(m) => requant(a * b, m),
        QBinaryKind::Div(m) => div_value(a, b, m),
    }
}

/// `requant(q, m)` with `q = div_round(a·2^15, b)` for `b > 0`, `−div_round(a·2^15, −b)` for
/// `b < 0`, and `±(2^31 − 1)` (the sign of `a`, 0 for `a = 0`) for `b = 0`.
#[inline(always)]
fn div_value(a: i64, b: i64, m: Requant) -> i64 {
    let q = match b {
        0 => a.signum() * i32::MAX as i64,
        // |a · 2^15| ≤ 2^30: the 64-bit form of div_round is exact.
        b if b > 0 => div_round(a as i128 * 32768, b as i128).unwrap_or(0) as i64,
        b => -(div_round(a as i128 * 32768, -b as i128).unwrap_or(0) as i64),
    };
    requant(q, m)
}

/// One output row for operand offsets `oa`, `ob` and steps `da`, `db`.
// The operands travel as (slice, offset, step) triples; a struct would only rename them.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn row<F: Fn(i64, i64) -> i64>(
    f: F,
    out_r: OutRange,
    a: &[i16],
    oa: isize,
    da: isize,
    b: &[i16],
    ob: isize,
    db: isize,
    o: &mut [i16],
) {
    let n = o.len();
    let g = |x: i16, y: i16| sat_out(f(x as i64, y as i64), &out_r) as i16;
    match (da, db) {
        (1, 1) => {
            let (a, b) = (
                &a[oa as usize..oa as usize + n],
                &b[ob as usize..ob as usize + n],
            );
            for ((d, &x), &y) in o.iter_mut().zip(a).zip(b) {
                *d = g(x, y);
            }
        }
        (1, 0) => {
            let (a, y) = (&a[oa as usize..oa as usize + n], b[ob as usize]);
            for (d, &x) in o.iter_mut().zip(a) {
                *d = g(x, y);
            }
        }
        (0, 1) => {
            let (x, b) = (a[oa as usize], &b[ob as usize..ob as usize + n]);
            for (d, &y) in o.iter_mut().zip(b) {
                *d = g(x, y);
            }
        }
        _ => {
            for (i, d) in o.iter_mut().enumerate() {
                let i = i as isize;
                *d = g(a[(oa + i * da) as usize], b[(ob + i * db) as usize]);
            }
        }
    }
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn binary_row_body(
    kind: QBinaryKind,
    out_r: OutRange,
    a: &[i16],
    oa: isize,
    da: isize,
    b: &[i16],
    ob: isize,
    db: isize,
    o: &mut [i16],
) {
    // One loop per kind, so that each vectorises with its own arithmetic.
    match kind {
        QBinaryKind::Add { ma, mb, shift } => {
            let (ma, mb) = (ma as i64, mb as i64);
            row(
                |x, y| rshift_round(x * ma + y * mb, shift),
                out_r,
                a,
                oa,
                da,
                b,
                ob,
                db,
                o,
            )
        }
        QBinaryKind::Sub { ma, mb, shift } => {
            let (ma, mb) = (ma as i64, mb as i64);
            row(
                |x, y| rshift_round(x * ma - y * mb, shift),
                out_r,
                a,
                oa,
                da,
                b,
                ob,
                db,
                o,
            )
        }
        QBinaryKind::Max { .. } | QBinaryKind::Min { .. } | QBinaryKind::Div(_) => row(
            |x, y| binary_value(kind, x, y),
            out_r,
            a,
            oa,
            da,
            b,
            ob,
            db,
            o,
        ),
        QBinaryKind::Mul(m) => {
            // |x·y| ≤ 2^30, so the product with m fits 64 bits.
            let (mm, n) = (m.multiplier as i64, m.shift);
            row(
                |x, y| rshift_round(x * y * mm, n),
                out_r,
                a,
                oa,
                da,
                b,
                ob,
                db,
                o,
            )
        }
    }
}

multiversion!(
    /// One output row of a binary operation.
    fn binary_row = binary_row_body(kind: QBinaryKind, out_r: OutRange, a: &[i16], oa: isize, da: isize, b: &[i16], ob: isize, db: isize, o: &mut [i16])
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::int::testutil::{with_threads, Rng};
    use proptest::prelude::*;

    /// §4 literally, in 128 bits, with numpy broadcasting by coordinates.
    fn naive(attrs: &QBinary, a: &[i16], sa: &[usize], b: &[i16], sb: &[usize]) -> Vec<i16> {
        let shape = broadcast_all("t", &[sa, sb]).unwrap();
        let idx = |s: &[usize], coord: &[usize]| -> usize {
            let off = coord.len() - s.len();
            let mut i = 0;
            for (d, &len) in s.iter().enumerate() {
                let c = if len == 1 { 0 } else { coord[off + d] };
                i = i * len + c;
            }
            i
        };
        let rr = |v: i128, n: u32| {
            if n == 0 {
                v
            } else {
                (v + (1i128 << (n - 1))) >> n
            }
        };
        let dr = |n: i128, d: i128| (2 * n + d).div_euclid(2 * d);
        (0..numel(&shape))
            .map(|lin| {
                let mut coord = vec![0; shape.len()];
                let mut r = lin;
                for d in (0..shape.len()).rev() {
                    coord[d] = r % shape[d];
                    r /= shape[d];
                }
                let (x, y) = (a[idx(sa, &coord)] as i128, b[idx(sb, &coord)] as i128);
                let v = match attrs.kind {
                    QBinaryKind::Add { ma, mb, shift } => {
                        rr(x * ma as i128 + y * mb as i128, shift)
                    }
                    QBinaryKind::Sub { ma, mb, shift } => {
                        rr(x * ma as i128 - y * mb as i128, shift)
                    }
                    QBinaryKind::Max { ma, mb, shift } => {
                        rr((x * ma as i128).max(y * mb as i128), shift)
                    }
                    QBinaryKind::Min { ma, mb, shift } => {
                        rr((x * ma as i128).min(y * mb as i128), shift)
                    }
                    QBinaryKind::Mul(m) => rr(x * y * m.multiplier as i128, m.shift),
                    QBinaryKind::Div(m) => {
                        let q = if y > 0 {
                            dr(x * 32768, y)
                        } else if y < 0 {
                            -dr(x * 32768, -y)
                        } else {
                            x.signum() * (i32::MAX as i128)
                        };
                        rr(q * m.multiplier as i128, m.shift)
                    }
                };
                (v + attrs.out.zero_point as i128)
                    .clamp(attrs.out.min as i128, attrs.out.max as i128) as i16
            })
            .collect()
    }

    fn kind(rng: &mut Rng, which: usize) -> QBinaryKind {
        let mut m = || rng.requant(15);
        let (r1, r2) = (m(), m());
        let shift = r1.shift.min(62);
        match which {
            0 => QBinaryKind::Add {
                ma: r1.multiplier,
                mb: r2.multiplier,
                shift,
            },
            1 => QBinaryKind::Sub {
                ma: r1.multiplier,
                mb: r2.multiplier,
                shift,
            },
            2 => QBinaryKind::Max {
                ma: r1.multiplier,
                mb: r2.multiplier,
                shift,
            },
            3 => QBinaryKind::Min {
                ma: r1.multiplier,
                mb: r2.multiplier,
                shift,
            },
            4 => QBinaryKind::Mul(Requant {
                shift: (r1.shift + 15).min(62),
                ..r1
            }),
            _ => QBinaryKind::Div(Requant {
                shift: (r1.shift + 15).min(62),
                ..r1
            }),
        }
    }

    prop_compose! {
        fn shapes()(rank in 0usize..5, dims in proptest::collection::vec(1usize..5, 4),
                    mask_a in 0u32..16, mask_b in 0u32..16, cut_a in 0usize..3, cut_b in 0usize..3)
            -> (Vec<usize>, Vec<usize>) {
            let full: Vec<usize> = dims[..rank].to_vec();
            let mk = |mask: u32, cut: usize| -> Vec<usize> {
                full.iter().enumerate().skip(cut.min(rank)).map(|(i, &d)| if mask >> i & 1 == 1 { 1 } else { d }).collect()
            };
            (mk(mask_a, cut_a), mk(mask_b, cut_b))
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn matches_definition((sa, sb) in shapes(), which in 0usize..6, seed in any::<u64>(), relu in any::<bool>(), threads in 1usize..3) {
            let mut rng = Rng::new(seed);
            let a: Vec<i16> = rng.vec(numel(&sa));
            let b: Vec<i16> = rng.vec(numel(&sb));
            let attrs = QBinary {
                kind: kind(&mut rng, which),
                out: OutRange { zero_point: 0, min: if relu { 0 } else { -32768 }, max: 32767 },
            };
            let want = naive(&attrs, &a, &sa, &b, &sb);
            for isa in Isa::supported() {
                let mut got = vec![0i16; want.len()];
                with_threads(threads, || qbinary_isa(isa, &attrs, &a, &sa, &b, &sb, &mut got)).unwrap();
                prop_assert_eq!(&got, &want, "{}", isa);
            }
        }
    }

    /// Large contiguous and per-channel cases take the vectorised rows and the parallel split.
    #[test]
    fn long_rows_match_definition() {
        let mut rng = Rng::new(11);
        for which in 0..6 {
            let attrs = QBinary {
                kind: kind(&mut rng, which),
                out: OutRange::full(DType::I16, 0),
            };
            for (sa, sb) in [
                (vec![4, 50, 50, 32], vec![4, 50, 50, 32]),
                (vec![2, 40, 40, 64], vec![64]),
                (vec![1], vec![3, 30, 30, 8]),
            ] {
                let a: Vec<i16> = rng.vec(numel(&sa));
                let b: Vec<i16> = rng.vec(numel(&sb));
                let want = naive(&attrs, &a, &sa, &b, &sb);
                for isa in Isa::supported() {
                    let mut got = vec![0i16; want.len()];
                    with_threads(2, || qbinary_isa(isa, &attrs, &a, &sa, &b, &sb, &mut got))
                        .unwrap();
                    assert_eq!(got, want, "{isa} {which}");
                }
            }
        }
    }

    #[test]
    fn hand_computed_examples() {
        let out = OutRange::full(DType::I16, 0);
        let run = |kind, a: i16, b: i16| {
            let mut o = [0i16];
            qbinary(&QBinary { kind, out }, &[a], &[1], &[b], &[1], &mut o).unwrap();
            o[0]
        };
        // (3·2^14 + 5·2^13) / 2^14 = 3 + 2.5 = 5.5 → 6.
        assert_eq!(
            run(
                QBinaryKind::Add {
                    ma: 1 << 14,
                    mb: 1 << 13,
                    shift: 14
                },
                3,
                5
            ),
            6
        );
        // 3 − 2.5 = 0.5 → 1; −3 + 2.5 = −0.5 → 0.
        assert_eq!(
            run(
                QBinaryKind::Sub {
                    ma: 1 << 14,
                    mb: 1 << 13,
                    shift: 14
                },
                3,
                5
            ),
            1
        );
        assert_eq!(
            run(
                QBinaryKind::Sub {
                    ma: 1 << 14,
                    mb: 1 << 13,
                    shift: 14
                },
                -3,
                -5
            ),
            0
        );
        assert_eq!(
            run(
                QBinaryKind::Max {
                    ma: 1 << 14,
                    mb: 1 << 13,
                    shift: 14
                },
                3,
                7
            ),
            4
        ); // max(3, 3.5) → 4
           // 300 · 200 / 2^10 = 58.59 → 59.
        assert_eq!(
            run(
                QBinaryKind::Mul(Requant {
                    multiplier: 1 << 20,
                    shift: 30
                }),
                300,
                200
            ),
            59
        );
        // Div: 7·2^15/2 = 114688 → ·2^-15 = 3.5 → 4; by zero: sign of a, saturated.
        let d = Requant {
            multiplier: 1 << 16,
            shift: 31,
        };
        assert_eq!(run(QBinaryKind::Div(d), 7, 2), 4);
        assert_eq!(run(QBinaryKind::Div(d), -7, 2), -3);
        // b < 0: q = −div_round(7·2^15, 2) = −114688 → −3.5 → −3 (half toward +∞ after the sign).
        assert_eq!(run(QBinaryKind::Div(d), 7, -2), -3);
        assert_eq!(run(QBinaryKind::Div(d), 5, 0), 32767);
        assert_eq!(run(QBinaryKind::Div(d), -5, 0), -32768);
        assert_eq!(run(QBinaryKind::Div(d), 0, 0), 0);
        // Bad multipliers and shapes.
        let mut o = [0i16; 2];
        assert!(qbinary(
            &QBinary {
                kind: QBinaryKind::Add {
                    ma: -1,
                    mb: 1,
                    shift: 1
                },
                out
            },
            &[1],
            &[1],
            &[1],
            &[1],
            &mut o[..1]
        )
        .is_err());
        assert!(qbinary(
            &QBinary {
                kind: QBinaryKind::Mul(Requant::IDENTITY),
                out
            },
            &[1, 2],
            &[2],
            &[1, 2, 3],
            &[3],
            &mut o
        )
        .is_err());
    }
}
