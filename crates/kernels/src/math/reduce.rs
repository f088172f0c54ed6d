//! Reductions over any set of axes, and arg-max / arg-min.

use crate::error::{check_len, invalid, KernelError, Result};
use crate::shape::{broadcast_strides, contiguous_strides, numel, Strided};
use crate::Element;
use ipukit_ir::ops::{ArgReduceKind, ReduceOp};

/// Element types with reduction kernels: `f32` (every [`ReduceOp`]) and `i64` / `i32`
/// (all but `L2`; `Mean` truncates).
pub trait ReduceElement: Element + PartialOrd {
    #[doc(hidden)]
    fn reduce_impl(
        op: ReduceOp,
        x: &[Self],
        shape: &[usize],
        axes: &[usize],
        out: &mut [Self],
    ) -> Result<()>;
}

/// Reduces `x` over `axes` (ascending, unique) into `out`, which has the input's element
/// count divided by the reduced lengths (`keep_dims` does not change the data).
pub fn reduce<T: ReduceElement>(
    op: ReduceOp,
    x: &[T],
    x_shape: &[usize],
    axes: &[usize],
    out: &mut [T],
) -> Result<()> {
    let name = op.name();
    if axes.iter().any(|&a| a >= x_shape.len()) || axes.windows(2).any(|w| w[0] >= w[1]) {
        return Err(invalid(
            name,
            format!("axes {axes:?} must be ascending, unique and inside {x_shape:?}"),
        ));
    }
    check_len(name, "input", x.len(), numel(x_shape))?;
    let out_n: usize = x_shape
        .iter()
        .enumerate()
        .filter(|(i, _)| !axes.contains(i))
        .map(|(_, &d)| d)
        .product();
    check_len(name, "output", out.len(), out_n)?;
    T::reduce_impl(op, x, x_shape, axes, out)
}

/// Folds `x` into `out` with `f`, starting from `init`; `merge` combines two partial results.
#[inline(always)]
fn fold<T: Copy, F: Fn(T, T) -> T, M: Fn(T, T) -> T>(
    x: &[T],
    shape: &[usize],
    axes: &[usize],
    out: &mut [T],
    init: T,
    f: F,
    merge: M,
) {
    out.fill(init);
    if x.is_empty() || out.is_empty() {
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
    let out_step = it.inner_steps[1];
    it.for_rows(0, it.rows(), |_, [oi, oo]| {
        let row = &x[oi as usize..oi as usize + inner];
        let oo = oo as usize;
        if out_step == 0 {
            // Eight independent accumulators: vectorisable and better conditioned.
            let mut lanes = [init; 8];
            let chunks = row.chunks_exact(8);
            let rest = chunks.remainder();
            for c in chunks {
                for l in 0..8 {
                    lanes[l] = f(lanes[l], c[l]);
                }
            }
            let mut acc = out[oo];
            for &v in rest {
                acc = f(acc, v);
            }
            for l in lanes {
                acc = merge(acc, l);
            }
            out[oo] = acc;
        } else {
            for (o, &v) in out[oo..oo + inner].iter_mut().zip(row) {
                *o = f(*o, v);
            }
        }
    });
}

impl ReduceElement for f32 {
    fn reduce_impl(
        op: ReduceOp,
        x: &[f32],
        shape: &[usize],
        axes: &[usize],
        out: &mut [f32],
    ) -> Result<()> {
        let count: usize = axes.iter().map(|&a| shape[a]).product();
        let add = |a: f32, b: f32| a + b;
        match op {
            ReduceOp::Sum => fold(x, shape, axes, out, 0.0, add, add),
            ReduceOp::Mean => {
                fold(x, shape, axes, out, 0.0, add, add);
                let inv = 1.0 / count as f32;
                out.iter_mut().for_each(|v| *v *= inv);
            }
            ReduceOp::Max => fold(x, shape, axes, out, f32::NEG_INFINITY, f32::max, f32::max),
            ReduceOp::Min => fold(x, shape, axes, out, f32::INFINITY, f32::min, f32::min),
            ReduceOp::Prod => {
                let mul = |a: f32, b: f32| a * b;
                fold(x, shape, axes, out, 1.0, mul, mul)
            }
            ReduceOp::L2 => {
                fold(x, shape, axes, out, 0.0, |a, v| a + v * v, add);
                out.iter_mut().for_each(|v| *v = v.sqrt());
            }
        }
        Ok(())
    }
}

macro_rules! int_reduce {
    ($($t:ty),*) => {$(
        impl ReduceElement for $t {
            fn reduce_impl(op: ReduceOp, x: &[$t], shape: &[usize], axes: &[usize], out: &mut [$t]) -> Result<()> {
                let count: usize = axes.iter().map(|&a| shape[a]).product();
                let add = <$t>::wrapping_add;
                match op {
                    ReduceOp::Sum => fold(x, shape, axes, out, 0, add, add),
                    ReduceOp::Mean => {
                        if count == 0 {
                            return Err(invalid(op.name(), "mean over an empty axis"));
                        }
                        fold(x, shape, axes, out, 0, add, add);
                        out.iter_mut().for_each(|v| *v /= count as $t);
                    }
                    ReduceOp::Max => fold(x, shape, axes, out, <$t>::MIN, |a: $t, b: $t| a.max(b), |a: $t, b: $t| a.max(b)),
                    ReduceOp::Min => fold(x, shape, axes, out, <$t>::MAX, |a: $t, b: $t| a.min(b), |a: $t, b: $t| a.min(b)),
                    ReduceOp::Prod => fold(x, shape, axes, out, 1, <$t>::wrapping_mul, <$t>::wrapping_mul),
                    ReduceOp::L2 => return Err(KernelError::Unsupported { op: op.name(), dtype: <$t as Element>::DTYPE }),
                }
                Ok(())
            }
        }
    )*};
}
int_reduce!(i64, i32, i16, i8, u16, u8);

/// Index of the maximum (or minimum) along `axis`; ties go to the first index, or to the last
/// with `select_last`.
pub fn arg_reduce<T: Element + PartialOrd>(
    kind: ArgReduceKind,
    select_last: bool,
    x: &[T],
    x_shape: &[usize],
    axis: usize,
    out: &mut [i64],
) -> Result<()> {
    let name = match kind {
        ArgReduceKind::Max => "ArgMax",
        ArgReduceKind::Min => "ArgMin",
    };
    if axis >= x_shape.len() {
        return Err(invalid(
            name,
            format!("axis {axis} out of range for {x_shape:?}"),
        ));
    }
    check_len(name, "input", x.len(), numel(x_shape))?;
    let len = x_shape[axis];
    let outer: usize = x_shape[..axis].iter().product();
    let inner: usize = x_shape[axis + 1..].iter().product();
    check_len(name, "output", out.len(), outer * inner)?;
    if out.is_empty() {
        return Ok(());
    }
    if len == 0 {
        return Err(invalid(name, "cannot search an empty axis"));
    }
    let better = |v: T, best: T| match (kind, select_last) {
        (ArgReduceKind::Max, false) => v > best,
        (ArgReduceKind::Max, true) => v >= best,
        (ArgReduceKind::Min, false) => v < best,
        (ArgReduceKind::Min, true) => v <= best,
    };
    let mut best: Vec<T> = vec![T::default(); inner];
    for o in 0..outer {
        let block = &x[o * len * inner..(o + 1) * len * inner];
        let idx = &mut out[o * inner..(o + 1) * inner];
        best.copy_from_slice(&block[..inner]);
        idx.fill(0);
        for j in 1..len {
            let row = &block[j * inner..(j + 1) * inner];
            for i in 0..inner {
                if better(row[i], best[i]) {
                    best[i] = row[i];
                    idx[i] = j as i64;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive(op: ReduceOp, x: &[f32], shape: &[usize], axes: &[usize]) -> Vec<f32> {
        let kept: Vec<usize> = (0..shape.len()).filter(|a| !axes.contains(a)).collect();
        let out_n: usize = kept.iter().map(|&a| shape[a]).product();
        let mut groups: Vec<Vec<f32>> = vec![vec![]; out_n];
        for (lin, &v) in x.iter().enumerate() {
            let mut rem = lin;
            let mut coord = vec![0; shape.len()];
            for a in (0..shape.len()).rev() {
                coord[a] = rem % shape[a];
                rem /= shape[a];
            }
            let mut o = 0;
            for &a in &kept {
                o = o * shape[a] + coord[a];
            }
            groups[o].push(v);
        }
        groups
            .iter()
            .map(|g| match op {
                ReduceOp::Sum => g.iter().map(|&v| v as f64).sum::<f64>() as f32,
                ReduceOp::Mean => {
                    (g.iter().map(|&v| v as f64).sum::<f64>() / g.len() as f64) as f32
                }
                ReduceOp::Max => g.iter().copied().fold(f32::NEG_INFINITY, f32::max),
                ReduceOp::Min => g.iter().copied().fold(f32::INFINITY, f32::min),
                ReduceOp::Prod => g.iter().map(|&v| v as f64).product::<f64>() as f32,
                ReduceOp::L2 => g.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt() as f32,
            })
            .collect()
    }

    const OPS: [ReduceOp; 6] = [
        ReduceOp::Mean,
        ReduceOp::Sum,
        ReduceOp::Max,
        ReduceOp::Min,
        ReduceOp::Prod,
        ReduceOp::L2,
    ];

    proptest! {
        #[test]
        fn matches_naive(shape in proptest::collection::vec(1usize..6, 1..5), mask in any::<u8>(), opi in 0usize..6) {
            let axes: Vec<usize> = (0..shape.len()).filter(|a| mask >> a & 1 == 1).collect();
            let op = OPS[opi];
            let x: Vec<f32> = (0..numel(&shape)).map(|i| 0.9 + ((i * 7919) % 13) as f32 * 0.02).collect();
            let want = naive(op, &x, &shape, &axes);
            let mut out = vec![0.0; want.len()];
            reduce(op, &x, &shape, &axes, &mut out).unwrap();
            for (g, w) in out.iter().zip(&want) {
                prop_assert!((g - w).abs() <= 1e-5 * w.abs().max(1.0), "{op:?} {g} vs {w}");
            }
        }
    }

    #[test]
    fn integer_reductions() {
        let x: Vec<i64> = vec![1, 2, 3, 4, 5, 6];
        let mut out = vec![0; 2];
        reduce(ReduceOp::Prod, &x, &[2, 3], &[1], &mut out).unwrap();
        assert_eq!(out, vec![6, 120]);
        let mut out = vec![0; 3];
        reduce(ReduceOp::Max, &x, &[2, 3], &[0], &mut out).unwrap();
        assert_eq!(out, vec![4, 5, 6]);
        reduce(ReduceOp::Mean, &x, &[2, 3], &[0], &mut out).unwrap();
        assert_eq!(out, vec![2, 3, 4]);
        assert!(reduce(ReduceOp::L2, &x, &[2, 3], &[0], &mut out).is_err());
    }

    #[test]
    fn argmax_takes_first_on_ties() {
        let x = [1.0f32, 3.0, 3.0, 0.0, 2.0, 2.0];
        let mut out = [0i64; 2];
        arg_reduce(ArgReduceKind::Max, false, &x, &[2, 3], 1, &mut out).unwrap();
        assert_eq!(out, [1, 1]);
        let mut out = [0i64; 3];
        arg_reduce(ArgReduceKind::Min, false, &x, &[2, 3], 0, &mut out).unwrap();
        assert_eq!(out, [1, 1, 1]);
    }
}
