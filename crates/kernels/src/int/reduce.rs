//! Reductions on integers (`docs/fixed-point.md` §7): `QReduce` Mean and Sum, and ReduceMax /
//! ReduceMin (no arithmetic).
//!
//! Sums of `x − z_in` are exact in INT64. Mean: `y = sat_out(z_out + div_round(acc · m,
//! cnt · 2ⁿ))` with `cnt` the number of reduced elements; Sum: `y = sat_out(z_out +
//! requant(acc, (m, n)))`. An empty reduction gives `sat_out(z_out)` (Mean, Sum), the type's
//! minimum (Max) or maximum (Min).

use super::arith::{check_out, check_requant, requant, sat_out, QInt};
use super::pool::mean_round;
use crate::error::{check_len, invalid, Result};
use crate::shape::{broadcast_strides, contiguous_strides, numel, Strided};
use ipukit_ir::ops::fixed::QReduce;
use ipukit_ir::ops::ReduceOp;

fn check_axes(op: &'static str, x_shape: &[usize], axes: &[usize]) -> Result<usize> {
    if axes.iter().any(|&a| a >= x_shape.len()) || axes.windows(2).any(|w| w[0] >= w[1]) {
        return Err(invalid(
            op,
            format!("axes {axes:?} must be ascending, unique and inside {x_shape:?}"),
        ));
    }
    Ok(x_shape
        .iter()
        .enumerate()
        .filter(|(i, _)| !axes.contains(i))
        .map(|(_, &d)| d)
        .product())
}

/// Folds `x` over `axes` into `acc` (output-shaped) with `f(acc, x)`.
fn fold<X: Copy, A: Copy>(
    x: &[X],
    shape: &[usize],
    axes: &[usize],
    acc: &mut [A],
    init: A,
    f: impl Fn(A, X) -> A,
) {
    acc.fill(init);
    if x.is_empty() || acc.is_empty() {
        return;
    }
    let in_st: Vec<isize> = contiguous_strides(shape)
        .iter()
        .map(|&s| s as isize)
        .collect();
    let kept: Vec<usize> = shape
        .iter()
        .enumerate()
        .map(|(i, &d)| if axes.contains(&i) { 1 } else { d })
        .collect();
    let out_st = broadcast_strides(&kept, shape);
    let it = Strided::new(shape, [&in_st, &out_st], [0, 0]);
    let inner = it.inner;
    let [si, so] = it.inner_steps;
    it.for_rows(0, it.rows(), |_, [oi, oo]| {
        if so == 0 {
            let a = &mut acc[oo as usize];
            for i in 0..inner as isize {
                *a = f(*a, x[(oi + i * si) as usize]);
            }
        } else if si == 1 && so == 1 {
            let (xs, ac) = (
                &x[oi as usize..oi as usize + inner],
                &mut acc[oo as usize..oo as usize + inner],
            );
            for (a, &v) in ac.iter_mut().zip(xs) {
                *a = f(*a, v);
            }
        } else {
            for i in 0..inner as isize {
                let a = &mut acc[(oo + i * so) as usize];
                *a = f(*a, x[(oi + i * si) as usize]);
            }
        }
    });
}

/// Quantized Mean or Sum over `attrs.reduce.axes` (ascending, unique); `out` has the input's
/// element count divided by the reduced lengths.
pub fn qreduce<X: QInt, O: QInt>(
    attrs: &QReduce,
    x: &[X],
    x_shape: &[usize],
    out: &mut [O],
) -> Result<()> {
    const OP: &str = "QReduce";
    let r = &attrs.reduce;
    if !matches!(r.op, ReduceOp::Mean | ReduceOp::Sum) {
        return Err(invalid(OP, "only Mean and Sum are quantized reductions"));
    }
    check_requant(OP, attrs.requant)?;
    check_out::<O>(OP, Some(attrs.out_dtype), &attrs.out)?;
    let out_n = check_axes(OP, x_shape, &r.axes)?;
    check_len(OP, "input", x.len(), numel(x_shape))?;
    check_len(OP, "output", out.len(), out_n)?;
    let cnt: usize = r.axes.iter().map(|&a| x_shape[a]).product();
    let mut acc = vec![0i64; out_n];
    fold(x, x_shape, &r.axes, &mut acc, 0i64, |a, v| {
        a + v.into() as i64
    });
    qreduce_sums(attrs, &acc, cnt, out)
}

/// The end of [`qreduce`] from the plain sums `Σ x` (no zero point subtracted) of the `cnt`
/// elements reduced into each output, for a caller that summed them itself (a layer that
/// sums its output while it writes it).
pub fn qreduce_sums<O: QInt>(
    attrs: &QReduce,
    sums: &[i64],
    cnt: usize,
    out: &mut [O],
) -> Result<()> {
    const OP: &str = "QReduce";
    if !matches!(attrs.reduce.op, ReduceOp::Mean | ReduceOp::Sum) {
        return Err(invalid(OP, "only Mean and Sum are quantized reductions"));
    }
    check_requant(OP, attrs.requant)?;
    check_out::<O>(OP, Some(attrs.out_dtype), &attrs.out)?;
    check_len(OP, "output", out.len(), sums.len())?;
    let z = attrs.input_zero_point as i64;
    for (o, &a) in out.iter_mut().zip(sums) {
        // Σ (x − z) = Σ x − cnt · z.
        let s = a - cnt as i64 * z;
        let v = match attrs.reduce.op {
            ReduceOp::Mean if cnt == 0 => 0,
            ReduceOp::Mean => mean_round(s, cnt as u64, attrs.requant),
            _ => requant(s, attrs.requant),
        };
        *o = O::from_i32(sat_out(v, &attrs.out));
    }
    Ok(())
}

/// ReduceMax or ReduceMin of an integer tensor over `axes` (ascending, unique).
pub fn reduce_extreme<T: QInt>(
    op: ReduceOp,
    x: &[T],
    x_shape: &[usize],
    axes: &[usize],
    out: &mut [T],
) -> Result<()> {
    let name = op.name();
    let out_n = check_axes(name, x_shape, axes)?;
    check_len(name, "input", x.len(), numel(x_shape))?;
    check_len(name, "output", out.len(), out_n)?;
    match op {
        ReduceOp::Max => fold(x, x_shape, axes, out, T::from_i32(T::MIN_I32), |a, v| {
            if v > a {
                v
            } else {
                a
            }
        }),
        ReduceOp::Min => fold(x, x_shape, axes, out, T::from_i32(T::MAX_I32), |a, v| {
            if v < a {
                v
            } else {
                a
            }
        }),
        _ => {
            return Err(invalid(
                name,
                "only Max and Min reduce integers without a quantized form",
            ))
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::int::testutil::{requant_def, Rng};
    use ipukit_ir::ops::fixed::{OutRange, Requant};
    use ipukit_ir::ops::Reduce;
    use ipukit_ir::DType;
    use proptest::prelude::*;

    /// Groups the input by output index (coordinates), then applies §7.
    fn groups<X: QInt>(x: &[X], shape: &[usize], axes: &[usize]) -> Vec<Vec<i128>> {
        let kept: Vec<usize> = (0..shape.len()).filter(|i| !axes.contains(i)).collect();
        let out_n: usize = kept.iter().map(|&i| shape[i]).product();
        let mut g = vec![vec![]; out_n];
        for (lin, &v) in x.iter().enumerate() {
            let mut coord = vec![0; shape.len()];
            let mut r = lin;
            for d in (0..shape.len()).rev() {
                coord[d] = r % shape[d];
                r /= shape[d];
            }
            let mut o = 0;
            for &k in &kept {
                o = o * shape[k] + coord[k];
            }
            g[o].push(v.into() as i128);
        }
        g
    }

    prop_compose! {
        fn case()(dims in proptest::collection::vec(1usize..5, 1..5), mask in 1u32..16, seed in any::<u64>()) -> (Vec<usize>, Vec<usize>, u64) {
            let axes: Vec<usize> = (0..dims.len()).filter(|i| mask >> i & 1 == 1).collect();
            let axes = if axes.is_empty() { vec![0] } else { axes };
            (dims, axes, seed)
        }
    }

    fn check<X: QInt, O: QInt>(
        dims: &[usize],
        axes: &[usize],
        seed: u64,
    ) -> std::result::Result<(), TestCaseError> {
        let mut rng = Rng::new(seed);
        let x: Vec<X> = rng.vec(dims.iter().product());
        let g = groups(&x, dims, axes);
        for op in [ReduceOp::Mean, ReduceOp::Sum] {
            let zout = if O::MIN_I32 == 0 {
                rng.extreme(0, O::MAX_I32)
            } else {
                0
            };
            let q = QReduce {
                reduce: Reduce {
                    op,
                    axes: axes.to_vec(),
                    keep_dims: rng.below(2) == 0,
                },
                input_zero_point: rng.extreme(X::MIN_I32, X::MAX_I32),
                requant: rng.requant(if op == ReduceOp::Sum { 4 } else { 1 }),
                out_dtype: O::DTYPE,
                out: OutRange {
                    zero_point: zout,
                    min: O::MIN_I32,
                    max: O::MAX_I32,
                },
            };
            let want: Vec<i32> = g
                .iter()
                .map(|vals| {
                    let z = q.input_zero_point as i128;
                    let acc: i128 = vals.iter().map(|v| v - z).sum();
                    if op == ReduceOp::Sum {
                        requant_def(acc, q.requant, &q.out)
                    } else {
                        let num = acc * q.requant.multiplier as i128;
                        let den = (vals.len() as i128) << q.requant.shift;
                        let r = (2 * num + den).div_euclid(2 * den);
                        (r + q.out.zero_point as i128).clamp(q.out.min as i128, q.out.max as i128)
                            as i32
                    }
                })
                .collect();
            let mut got = vec![O::default(); want.len()];
            qreduce(&q, &x, dims, &mut got).unwrap();
            let got: Vec<i32> = got.iter().map(|&v| v.into()).collect();
            prop_assert_eq!(got, want, "{:?}", op);
        }
        for op in [ReduceOp::Max, ReduceOp::Min] {
            let want: Vec<i32> = g
                .iter()
                .map(|v| if op == ReduceOp::Max { *v.iter().max().unwrap() } else { *v.iter().min().unwrap() } as i32)
                .collect();
            let mut got = vec![X::default(); want.len()];
            reduce_extreme(op, &x, dims, axes, &mut got).unwrap();
            let got: Vec<i32> = got.iter().map(|&v| v.into()).collect();
            prop_assert_eq!(got, want, "{:?}", op);
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        fn matches_definition((dims, axes, seed) in case()) {
            check::<i16, i16>(&dims, &axes, seed)?;
            check::<u8, u8>(&dims, &axes, seed)?;
            check::<u8, i16>(&dims, &axes, seed)?;
        }
    }

    #[test]
    fn hand_computed_examples() {
        let q = QReduce {
            reduce: Reduce {
                op: ReduceOp::Mean,
                axes: vec![1],
                keep_dims: false,
            },
            input_zero_point: 0,
            requant: Requant::IDENTITY,
            out_dtype: DType::I16,
            out: OutRange::full(DType::I16, 0),
        };
        let mut o = [0i16; 2];
        // Means of [1, 2] = 1.5 → 2 and [−1, −2] = −1.5 → −1.
        qreduce(&q, &[1i16, 2, -1, -2], &[2, 2], &mut o).unwrap();
        assert_eq!(o, [2, -1]);
        let s = QReduce {
            reduce: Reduce {
                op: ReduceOp::Sum,
                ..q.reduce.clone()
            },
            requant: Requant {
                multiplier: 1 << 30,
                shift: 31,
            },
            ..q.clone()
        };
        qreduce(&s, &[1i16, 2, -1, -2], &[2, 2], &mut o).unwrap();
        assert_eq!(o, [2, -1]); // 3/2 → 2, −3/2 → −1
        let bad = QReduce {
            reduce: Reduce {
                op: ReduceOp::Max,
                ..q.reduce.clone()
            },
            ..q
        };
        assert!(qreduce(&bad, &[1i16, 2, -1, -2], &[2, 2], &mut o).is_err());
    }
}
