//! Table lookup with linear interpolation (`QLut`, `docs/fixed-point.md` §5): INT16 → INT16.
//!
//! [`qlut`] evaluates the document's formula directly. [`PackedQLut`] evaluates it once for
//! each of the 65,536 inputs (a 128 KiB table, built at session creation) so that running it is
//! a single load per element.

use super::arith::{check_out, check_requant, rshift_round, sat_out};
use crate::error::{check_len, invalid, Result};
use crate::par;
use ipukit_ir::ops::fixed::{OutRange, QBinary, QBinaryKind, QLut, LUT_ENTRIES};
use ipukit_ir::DType;

/// `y = T[k] + rshift_round((T[k+1] − T[k]) · r, 6)` with `u = x + 32768`, `k = u >> 6`,
/// `r = u & 63`. The result lies between `T[k]` and `T[k+1]`, so it needs no saturation.
#[inline(always)]
pub fn lut_value(table: &[i16], x: i16) -> i16 {
    let u = (x as i32 + 32768) as usize;
    let (k, r) = (u >> 6, (u & 63) as i32);
    let (t0, t1) = (table[k] as i32, table[k + 1] as i32);
    // |(t1 − t0) · r| ≤ 65535 · 63: INT32.
    (t0 + (((t1 - t0) * r + 32) >> 6)) as i16
}

fn check_table(table: &[i16]) -> Result<()> {
    if table.len() != LUT_ENTRIES {
        return Err(invalid(
            "QLut",
            format!(
                "the table has {} entries, expected {LUT_ENTRIES}",
                table.len()
            ),
        ));
    }
    Ok(())
}

/// Applies the table of `attrs` to every element of `x` (formula evaluated per element).
pub fn qlut(attrs: &QLut, x: &[i16], out: &mut [i16]) -> Result<()> {
    check_table(&attrs.table)?;
    check_len("QLut", "output", out.len(), x.len())?;
    let t = attrs.table.as_slice();
    par::for_rows(out, 1, par::MIN_PAR_ELEMS, |r0, chunk| {
        for (d, &v) in chunk.iter_mut().zip(&x[r0..]) {
            *d = lut_value(t, v);
        }
    });
    Ok(())
}

/// A [`QLut`] expanded to all 65,536 inputs.
#[derive(Clone)]
pub struct PackedQLut {
    full: Vec<i16>,
}

impl std::fmt::Debug for PackedQLut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackedQLut").finish_non_exhaustive()
    }
}

impl PackedQLut {
    /// Expands the table.
    pub fn new(attrs: &QLut) -> Result<PackedQLut> {
        check_table(&attrs.table)?;
        let full = (i16::MIN..=i16::MAX)
            .map(|x| lut_value(&attrs.table, x))
            .collect();
        Ok(PackedQLut { full })
    }

    /// A table given as its 65,536 outputs, entry `x + 32768` for input `x` (e.g. a chain of
    /// element-wise maps evaluated on every INT16 value); [`PackedQLut::run`] and
    /// [`PackedQLut::run_mul`] then look it up as they look up an expanded [`QLut`].
    pub fn from_outputs(full: Vec<i16>) -> Result<PackedQLut> {
        if full.len() != 65536 {
            return Err(invalid(
                "QLut",
                format!(
                    "the expanded table has {} entries, expected 65536",
                    full.len()
                ),
            ));
        }
        Ok(PackedQLut { full })
    }

    /// The output for one input.
    #[inline(always)]
    pub fn get(&self, x: i16) -> i16 {
        self.full[(x as i32 + 32768) as usize]
    }

    /// Applies the table to every element of `x`.
    pub fn run(&self, x: &[i16], out: &mut [i16]) -> Result<()> {
        check_len("QLut", "output", out.len(), x.len())?;
        let t = &self.full[..65536];
        par::for_rows(out, 1, par::MIN_PAR_ELEMS, |r0, chunk| {
            for (d, &v) in chunk.iter_mut().zip(&x[r0..]) {
                *d = t[(v as i32 + 32768) as usize];
            }
        });
        Ok(())
    }

    /// `QBinary` `Mul(x, T(x))` (equal to `Mul(T(x), x)`) in one pass: the integers
    /// [`super::qbinary`] gives on `x` and [`PackedQLut::run`]'s output, without that output in
    /// memory (a fixed-point SiLU, `x · sigmoid(x)`). `attrs` must be a `Mul`.
    pub fn run_mul(&self, attrs: &QBinary, x: &[i16], out: &mut [i16]) -> Result<()> {
        check_len("QBinary", "output", out.len(), x.len())?;
        let (mm, n, range) = mul_params(attrs)?;
        let t = &self.full[..65536];
        par::for_rows(out, 1, par::MIN_PAR_ELEMS, |r0, chunk| {
            for (d, &v) in chunk.iter_mut().zip(&x[r0..]) {
                *d = lut_mul(t, v, mm, n, &range);
            }
        });
        Ok(())
    }

    /// [`PackedQLut::run_mul`] with the output over the input.
    pub fn run_mul_inplace(&self, attrs: &QBinary, x: &mut [i16]) -> Result<()> {
        let (mm, n, range) = mul_params(attrs)?;
        let t = &self.full[..65536];
        par::for_rows(x, 1, par::MIN_PAR_ELEMS, |_, chunk| {
            for d in chunk.iter_mut() {
                *d = lut_mul(t, *d, mm, n, &range);
            }
        });
        Ok(())
    }
}

/// The multiplier, shift and output range of a `QBinary` `Mul`, checked as
/// [`super::qbinary`] checks them.
fn mul_params(attrs: &QBinary) -> Result<(i64, u32, OutRange)> {
    const OP: &str = "QBinary";
    let QBinaryKind::Mul(m) = attrs.kind else {
        return Err(invalid(OP, "a table product needs a Mul"));
    };
    check_requant(OP, m)?;
    check_out::<i16>(OP, Some(DType::I16), &attrs.out)?;
    Ok((m.multiplier as i64, m.shift, attrs.out))
}

/// `sat_out(rshift_round(x · T(x) · m, n))`, as `QBinary` `Mul` computes it
/// (`|x · T(x)| ≤ 2^30`, so the product with `m < 2^31` fits 64 bits).
#[inline(always)]
fn lut_mul(t: &[i16], x: i16, mm: i64, n: u32, range: &OutRange) -> i16 {
    let y = t[(x as i32 + 32768) as usize] as i64;
    sat_out(rshift_round(x as i64 * y * mm, n), range) as i16
}

/// Builds the table of `f` for input scale `s_in` and output scale `s_out`:
/// `T[k] = sat16(round(f(s_in · (64k − 32768)) / s_out))` (`docs/fixed-point.md` §5; the
/// calibrator's job, here for tests and tools).
pub fn build_lut(f: impl Fn(f64) -> f64, s_in: f64, s_out: f64) -> QLut {
    QLut {
        table: (0..LUT_ENTRIES)
            .map(|k| {
                let v = (f(s_in * (64.0 * k as f64 - 32768.0)) / s_out).round();
                v.clamp(-32768.0, 32767.0) as i16
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::int::testutil::Rng;
    use proptest::prelude::*;

    fn naive(t: &[i16], x: i16) -> i16 {
        let u = x as i64 + 32768;
        let (k, r) = ((u >> 6) as usize, u & 63);
        let d = (t[k + 1] as i64 - t[k] as i64) * r;
        (t[k] as i64 + ((d + 32) >> 6)) as i16
    }

    #[test]
    fn packed_equals_formula_on_every_input() {
        let mut rng = Rng::new(5);
        for _ in 0..4 {
            let q = QLut {
                table: rng.vec(LUT_ENTRIES),
            };
            let p = PackedQLut::new(&q).unwrap();
            let x: Vec<i16> = (i16::MIN..=i16::MAX).collect();
            let mut a = vec![0; x.len()];
            let mut b = vec![0; x.len()];
            qlut(&q, &x, &mut a).unwrap();
            p.run(&x, &mut b).unwrap();
            for (i, &v) in x.iter().enumerate() {
                assert_eq!(a[i], naive(&q.table, v));
            }
            assert_eq!(a, b);
        }
    }

    /// The fused product equals the table then `qbinary`'s `Mul`, in both operand orders,
    /// on every input, out of place and in place, on one and two threads.
    #[test]
    fn run_mul_equals_table_then_qbinary() {
        use crate::int::qbinary;
        use crate::int::testutil::with_threads;
        use ipukit_ir::ops::fixed::Requant;
        let mut rng = Rng::new(9);
        let x: Vec<i16> = (i16::MIN..=i16::MAX).chain(rng.vec(40_000)).collect();
        let shape = [x.len()];
        for round in 0..6 {
            let q = QLut {
                table: rng.vec(LUT_ENTRIES),
            };
            let p = PackedQLut::new(&q).unwrap();
            let r = rng.requant(15);
            let m = Requant {
                shift: (r.shift + 15).min(62),
                ..r
            };
            let out = if round % 2 == 0 {
                OutRange::full(DType::I16, 0)
            } else {
                OutRange {
                    zero_point: 0,
                    min: -100,
                    max: 20_000,
                }
            };
            let attrs = QBinary {
                kind: QBinaryKind::Mul(m),
                out,
            };
            let mut s = vec![0; x.len()];
            p.run(&x, &mut s).unwrap();
            let mut want = vec![0; x.len()];
            qbinary(&attrs, &x, &shape, &s, &shape, &mut want).unwrap();
            let mut swapped = vec![0; x.len()];
            qbinary(&attrs, &s, &shape, &x, &shape, &mut swapped).unwrap();
            assert_eq!(swapped, want);
            for threads in [1, 2] {
                let mut got = vec![0; x.len()];
                with_threads(threads, || p.run_mul(&attrs, &x, &mut got)).unwrap();
                assert_eq!(got, want, "round {round}, {threads} thread(s)");
                let mut inplace = x.clone();
                with_threads(threads, || p.run_mul_inplace(&attrs, &mut inplace)).unwrap();
                assert_eq!(
                    inplace, want,
                    "in place, round {round}, {threads} thread(s)"
                );
            }
        }
        // Only a Mul fuses.
        let p = PackedQLut::new(&QLut {
            table: vec![0; LUT_ENTRIES],
        })
        .unwrap();
        let add = QBinary {
            kind: QBinaryKind::Add {
                ma: 1,
                mb: 1,
                shift: 0,
            },
            out: OutRange::full(DType::I16, 0),
        };
        assert!(p.run_mul(&add, &[1], &mut [0]).is_err());
    }

    /// A table given by its outputs is the expanded table; only 65,536 outputs are accepted.
    #[test]
    fn from_outputs_equals_new() {
        let mut rng = Rng::new(4);
        let q = QLut {
            table: rng.vec(LUT_ENTRIES),
        };
        let p = PackedQLut::new(&q).unwrap();
        let full: Vec<i16> = (i16::MIN..=i16::MAX).map(|x| p.get(x)).collect();
        let f = PackedQLut::from_outputs(full).unwrap();
        assert!((i16::MIN..=i16::MAX).all(|x| f.get(x) == p.get(x)));
        assert!(PackedQLut::from_outputs(vec![0; 65535]).is_err());
    }

    proptest! {
        #[test]
        fn interpolation_stays_between_entries(seed in any::<u64>(), x in any::<i16>()) {
            let mut rng = Rng::new(seed);
            let t: Vec<i16> = rng.vec(LUT_ENTRIES);
            let y = lut_value(&t, x);
            let k = ((x as i32 + 32768) >> 6) as usize;
            prop_assert!(y >= t[k].min(t[k + 1]) && y <= t[k].max(t[k + 1]));
        }
    }

    #[test]
    fn hand_computed_example() {
        let mut t = vec![0i16; LUT_ENTRIES];
        t[512] = 100; // input 0
        t[513] = 164; // input 64
                      // x = 32: k = 512, r = 32 → 100 + 64·32/64 = 132; x = 1: 100 + round(1) = 101.
        assert_eq!(lut_value(&t, 32), 132);
        assert_eq!(lut_value(&t, 1), 101);
        assert_eq!(lut_value(&t, 0), 100);
        // x = −32768 → k = 0; x = 32767 → k = 1023, r = 63.
        assert_eq!(lut_value(&t, -32768), 0);
        assert_eq!(lut_value(&t, 32767), 0);
        assert!(qlut(&QLut { table: vec![0; 10] }, &[0], &mut [0]).is_err());
    }

    /// A function, its calibrated input range, |f''| bound and total slope jump per kink.
    struct Fun {
        name: &'static str,
        f: fn(f64) -> f64,
        range: (f64, f64),
        /// Points where the slope jumps.
        kinks: &'static [f64],
        /// Largest slope change at a kink (0 for C² functions).
        kink: f64,
    }

    fn erf(x: f64) -> f64 {
        // Abramowitz–Stegun 7.1.26 is too coarse; integrate the series instead.
        let mut sum = 0.0f64;
        let mut term = x;
        let mut n = 0.0;
        while term.abs() > 1e-17 * sum.abs().max(1e-300) && n < 200.0 {
            sum += term / (2.0 * n + 1.0);
            n += 1.0;
            term *= -x * x / n;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    /// §5's error bound, measured on every input: `|y − f(s_in·x)/s_out| ≤ 1 +
    /// h²·max|f''|/(8·s_out) + h·J/(4·s_out)` with `h = 64·s_in` and `J` the largest slope
    /// jump at a kink (0 for smooth functions).
    #[test]
    fn error_bound_holds_for_every_table_kind() {
        let funs = [
            Fun {
                name: "sigmoid",
                f: |x| 1.0 / (1.0 + (-x).exp()),
                range: (-8.0, 8.0),
                kinks: &[],
                kink: 0.0,
            },
            Fun {
                name: "tanh",
                f: f64::tanh,
                range: (-4.0, 4.0),
                kinks: &[],
                kink: 0.0,
            },
            Fun {
                name: "hardsigmoid",
                f: |x| (x / 6.0 + 0.5).clamp(0.0, 1.0),
                range: (-6.0, 6.0),
                kinks: &[-3.0, 3.0],
                kink: 1.0 / 6.0,
            },
            Fun {
                name: "hardswish",
                f: |x| x * (x + 3.0).clamp(0.0, 6.0) / 6.0,
                range: (-8.0, 8.0),
                kinks: &[-3.0, 3.0],
                kink: 0.5,
            },
            Fun {
                name: "exp",
                f: f64::exp,
                range: (-10.0, 2.0),
                kinks: &[],
                kink: 0.0,
            },
            Fun {
                name: "log",
                f: |x| x.max(0.05).ln(),
                range: (0.05, 20.0),
                kinks: &[],
                kink: 0.0,
            },
            Fun {
                name: "sqrt",
                f: |x| x.max(0.25).sqrt(),
                range: (0.25, 100.0),
                kinks: &[],
                kink: 0.0,
            },
            Fun {
                name: "rsqrt",
                f: |x| 1.0 / x.max(0.5).sqrt(),
                range: (0.5, 64.0),
                kinks: &[],
                kink: 0.0,
            },
            Fun {
                name: "reciprocal",
                f: |x| 1.0 / x.max(0.5),
                range: (0.5, 16.0),
                kinks: &[],
                kink: 0.0,
            },
            Fun {
                name: "erf",
                f: erf,
                range: (-3.0, 3.0),
                kinks: &[],
                kink: 0.0,
            },
            Fun {
                name: "softplus",
                f: |x| x.exp().ln_1p(),
                range: (-10.0, 10.0),
                kinks: &[],
                kink: 0.0,
            },
            Fun {
                name: "elu",
                f: |x| if x > 0.0 { x } else { x.exp_m1() },
                range: (-6.0, 6.0),
                kinks: &[],
                kink: 0.0,
            },
            Fun {
                name: "sin",
                f: f64::sin,
                range: (-4.0, 4.0),
                kinks: &[],
                kink: 0.0,
            },
            Fun {
                name: "cos",
                f: f64::cos,
                range: (-4.0, 4.0),
                kinks: &[],
                kink: 0.0,
            },
            Fun {
                name: "pow2",
                f: |x| x * x,
                range: (-3.0, 3.0),
                kinks: &[],
                kink: 0.0,
            },
        ];
        for fun in funs {
            let (lo, hi) = fun.range;
            // Symmetric INT16 input covering the range; output scale from the range of f.
            let s_in = lo.abs().max(hi.abs()) / 32767.0;
            let samples: Vec<f64> = (0..=20000)
                .map(|i| lo + (hi - lo) * i as f64 / 20000.0)
                .collect();
            let f_max = samples
                .iter()
                .map(|&x| (fun.f)(x).abs())
                .fold(0.0, f64::max);
            let s_out = f_max * 1.001 / 32767.0;
            // max|f''| on the range by central differences, away from the kinks (which J
            // accounts for).
            let d = 1e-4 * (hi - lo);
            let f2 = samples
                .iter()
                .filter(|&&x| fun.kinks.iter().all(|k| (x - k).abs() > 2.0 * d))
                .map(|&x| ((fun.f)(x + d) - 2.0 * (fun.f)(x) + (fun.f)(x - d)) / (d * d))
                .fold(0.0, |a: f64, v| a.max(v.abs()))
                * 1.01;
            let q = build_lut(fun.f, s_in, s_out);
            let h = 64.0 * s_in;
            let bound = 1.0 + h * h * f2 / (8.0 * s_out) + h * fun.kink / (4.0 * s_out) + 1e-9;
            // Every input whose interpolation segment lies inside the calibrated range.
            let mut worst = 0.0f64;
            for x in -32768..=32767i32 {
                let k = (x + 32768) >> 6;
                let (a, b) = (
                    s_in * (64 * k - 32768) as f64,
                    s_in * (64 * k + 64 - 32768) as f64,
                );
                if a < lo || b > hi {
                    continue;
                }
                let y = lut_value(&q.table, x as i16) as f64;
                let want = (fun.f)(s_in * x as f64) / s_out;
                worst = worst.max((y - want).abs());
            }
            assert!(
                worst <= bound,
                "{}: error {worst} > bound {bound}",
                fun.name
            );
        }
    }
}
