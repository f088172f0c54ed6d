//! Binary element-wise operations with numpy broadcasting.
//!
//! The broadcast is reduced by [`Strided`] to rows in which each operand is either contiguous
//! or a single repeated value, so same-shape, scalar and per-channel (last-axis) broadcasts all
//! run as simple vectorisable loops over long rows. The in-place form overwrites one operand
//! (whose shape must be the output shape); the runtime uses it when that operand dies.

use crate::error::{check_len, invalid, KernelError, Result};
use crate::shape::{broadcast_all, broadcast_strides, numel, Strided};
use crate::{par, Element};
use ipukit_ir::ops::BinaryOp;

/// Which operand an in-place binary operation overwrites.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The first operand (`a` in `a - b`).
    Lhs,
    /// The second operand.
    Rhs,
}

/// Where a binary operation reads and writes.
enum Mode<'a, T> {
    Separate {
        a: (&'a [T], &'a [usize]),
        b: (&'a [T], &'a [usize]),
        out: &'a mut [T],
    },
    InPlace {
        acc: &'a mut [T],
        acc_shape: &'a [usize],
        other: (&'a [T], &'a [usize]),
        side: Side,
    },
}

impl<T> Mode<'_, T> {
    /// The divisor of a division, when it is a separate slice.
    fn divisor(&self) -> &[T] {
        match self {
            Mode::Separate { b, .. } => b.0,
            Mode::InPlace {
                other,
                side: Side::Lhs,
                ..
            } => other.0,
            Mode::InPlace { acc, .. } => acc,
        }
    }
}

/// Element types with arithmetic binary kernels (`f32`, `i64`, `i32`).
pub trait BinaryElement: Element + PartialOrd {
    #[doc(hidden)]
    #[allow(private_interfaces)]
    fn run(op: BinaryOp, mode: Mode<'_, Self>) -> Result<()>;
}

/// `out = a ⊙ b` with broadcasting, for the arithmetic operators (not the comparisons or the
/// logical ones, see [`compare`] and [`logical`]).
pub fn binary<T: BinaryElement>(
    op: BinaryOp,
    a: &[T],
    a_shape: &[usize],
    b: &[T],
    b_shape: &[usize],
    out: &mut [T],
) -> Result<()> {
    T::run(
        op,
        Mode::Separate {
            a: (a, a_shape),
            b: (b, b_shape),
            out,
        },
    )
}

/// In-place `acc = acc ⊙ other` (`side == Lhs`) or `acc = other ⊙ acc` (`side == Rhs`);
/// `acc_shape` must be the broadcast of both shapes.
pub fn binary_inplace<T: BinaryElement>(
    op: BinaryOp,
    acc: &mut [T],
    acc_shape: &[usize],
    other: &[T],
    other_shape: &[usize],
    side: Side,
) -> Result<()> {
    T::run(
        op,
        Mode::InPlace {
            acc,
            acc_shape,
            other: (other, other_shape),
            side,
        },
    )
}

/// Comparisons (`Equal`, `Less`, `Greater`) with broadcasting; Bool output.
pub fn compare<T: Element + PartialOrd>(
    op: BinaryOp,
    a: &[T],
    a_shape: &[usize],
    b: &[T],
    b_shape: &[usize],
    out: &mut [bool],
) -> Result<()> {
    match op {
        BinaryOp::Equal => zip(op.name(), (a, a_shape), (b, b_shape), out, |x, y| x == y),
        BinaryOp::Less => zip(op.name(), (a, a_shape), (b, b_shape), out, |x, y| x < y),
        BinaryOp::Greater => zip(op.name(), (a, a_shape), (b, b_shape), out, |x, y| x > y),
        _ => Err(invalid(op.name(), "is not a comparison")),
    }
}

/// `And` / `Or` on Bool with broadcasting.
pub fn logical(
    op: BinaryOp,
    a: &[bool],
    a_shape: &[usize],
    b: &[bool],
    b_shape: &[usize],
    out: &mut [bool],
) -> Result<()> {
    match op {
        BinaryOp::And => zip(op.name(), (a, a_shape), (b, b_shape), out, |x, y| x & y),
        BinaryOp::Or => zip(op.name(), (a, a_shape), (b, b_shape), out, |x, y| x | y),
        BinaryOp::Equal => zip(op.name(), (a, a_shape), (b, b_shape), out, |x, y| x == y),
        _ => Err(KernelError::Unsupported {
            op: op.name(),
            dtype: ipukit_ir::DType::Bool,
        }),
    }
}

/// Runs `f` over a [`Mode`].
#[inline(always)]
fn exec<T: Element, F: Fn(T, T) -> T + Sync>(
    name: &'static str,
    mode: Mode<'_, T>,
    f: F,
) -> Result<()> {
    match mode {
        Mode::Separate { a, b, out } => zip(name, a, b, out, f),
        Mode::InPlace {
            acc,
            acc_shape,
            other,
            side,
        } => match side {
            Side::Lhs => zip_inplace(name, acc, acc_shape, other, f),
            Side::Rhs => zip_inplace(name, acc, acc_shape, other, move |x, y| f(y, x)),
        },
    }
}

/// One output row from two operand rows, each contiguous (step 1) or repeated (step 0).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn row<A: Copy, B: Copy, O: Copy, F: Fn(A, B) -> O>(
    dst: &mut [O],
    a: &[A],
    oa: usize,
    ta: isize,
    b: &[B],
    ob: usize,
    tb: isize,
    f: &F,
) {
    let n = dst.len();
    match (ta != 0, tb != 0) {
        (true, true) => {
            for ((d, &x), &y) in dst.iter_mut().zip(&a[oa..oa + n]).zip(&b[ob..ob + n]) {
                *d = f(x, y);
            }
        }
        (true, false) => {
            let y = b[ob];
            for (d, &x) in dst.iter_mut().zip(&a[oa..oa + n]) {
                *d = f(x, y);
            }
        }
        (false, true) => {
            let x = a[oa];
            for (d, &y) in dst.iter_mut().zip(&b[ob..ob + n]) {
                *d = f(x, y);
            }
        }
        (false, false) => {
            dst.fill(f(a[oa], b[ob]));
        }
    }
}

/// `out = f(a, b)` with broadcasting.
#[inline(always)]
fn zip<A: Copy + Sync, B: Copy + Sync, O: Copy + Send, F: Fn(A, B) -> O + Sync>(
    name: &'static str,
    a: (&[A], &[usize]),
    b: (&[B], &[usize]),
    out: &mut [O],
    f: F,
) -> Result<()> {
    let shape = broadcast_all(name, &[a.1, b.1])?;
    check_len(name, "first input", a.0.len(), numel(a.1))?;
    check_len(name, "second input", b.0.len(), numel(b.1))?;
    check_len(name, "output", out.len(), numel(&shape))?;
    if out.is_empty() {
        return Ok(());
    }
    let sa = broadcast_strides(a.1, &shape);
    let sb = broadcast_strides(b.1, &shape);
    let it = Strided::new(&shape, [&sa, &sb], [0, 0]);
    let inner = it.inner;
    let [ta, tb] = it.inner_steps;
    par::for_rows(out, inner, par::MIN_PAR_ELEMS, |r0, chunk| {
        let rows = chunk.len() / inner;
        it.for_rows(r0, r0 + rows, |r, [oa, ob]| {
            let dst = &mut chunk[(r - r0) * inner..(r - r0 + 1) * inner];
            row(dst, a.0, oa as usize, ta, b.0, ob as usize, tb, &f);
        });
    });
    Ok(())
}

/// `acc = f(acc, other)` with `other` broadcast to `acc_shape`.
#[inline(always)]
fn zip_inplace<T: Element, F: Fn(T, T) -> T + Sync>(
    name: &'static str,
    acc: &mut [T],
    acc_shape: &[usize],
    other: (&[T], &[usize]),
    f: F,
) -> Result<()> {
    let shape = broadcast_all(name, &[acc_shape, other.1])?;
    if shape != acc_shape {
        return Err(invalid(
            name,
            format!("in-place operand {acc_shape:?} is not the output shape {shape:?}"),
        ));
    }
    check_len(name, "in-place operand", acc.len(), numel(acc_shape))?;
    check_len(name, "operand", other.0.len(), numel(other.1))?;
    if acc.is_empty() {
        return Ok(());
    }
    let so = broadcast_strides(other.1, &shape);
    let it = Strided::new(&shape, [&so], [0]);
    let inner = it.inner;
    let [to] = it.inner_steps;
    par::for_rows(acc, inner, par::MIN_PAR_ELEMS, |r0, chunk| {
        let rows = chunk.len() / inner;
        it.for_rows(r0, r0 + rows, |r, [oo]| {
            let dst = &mut chunk[(r - r0) * inner..(r - r0 + 1) * inner];
            let oo = oo as usize;
            if to != 0 {
                for (d, &y) in dst.iter_mut().zip(&other.0[oo..oo + inner]) {
                    *d = f(*d, y);
                }
            } else {
                let y = other.0[oo];
                for d in dst.iter_mut() {
                    *d = f(*d, y);
                }
            }
        });
    });
    Ok(())
}

impl BinaryElement for f32 {
    #[allow(private_interfaces)]
    fn run(op: BinaryOp, mode: Mode<'_, f32>) -> Result<()> {
        let n = op.name();
        match op {
            BinaryOp::Add => exec(n, mode, |x, y| x + y),
            BinaryOp::Sub => exec(n, mode, |x, y| x - y),
            BinaryOp::Mul => exec(n, mode, |x, y| x * y),
            BinaryOp::Div => exec(n, mode, |x, y| x / y),
            BinaryOp::Pow => {
                // x² is common (variance in layer norms) and much cheaper than powf.
                let square = match &mode {
                    Mode::Separate { b, .. } => b.0.len() == 1 && b.0[0] == 2.0,
                    Mode::InPlace {
                        other,
                        side: Side::Lhs,
                        ..
                    } => other.0.len() == 1 && other.0[0] == 2.0,
                    _ => false,
                };
                if square {
                    exec(n, mode, |x, _| x * x)
                } else {
                    exec(n, mode, f32::powf)
                }
            }
            BinaryOp::Max => exec(n, mode, f32::max),
            BinaryOp::Min => exec(n, mode, f32::min),
            BinaryOp::PRelu => exec(n, mode, |x, s| if x < 0.0 { x * s } else { x }),
            _ => Err(invalid(n, "has a Bool output; use compare or logical")),
        }
    }
}

macro_rules! int_binary {
    ($($t:ty),*) => {$(
        impl BinaryElement for $t {
            #[allow(private_interfaces)]
            fn run(op: BinaryOp, mode: Mode<'_, $t>) -> Result<()> {
                let n = op.name();
                match op {
                    BinaryOp::Add => exec(n, mode, <$t>::wrapping_add),
                    BinaryOp::Sub => exec(n, mode, <$t>::wrapping_sub),
                    BinaryOp::Mul => exec(n, mode, <$t>::wrapping_mul),
                    BinaryOp::Div => {
                        if mode.divisor().contains(&0) {
                            return Err(invalid(n, "integer division by zero"));
                        }
                        exec(n, mode, <$t>::wrapping_div)
                    }
                    BinaryOp::Pow => exec(n, mode, |x: $t, y: $t| {
                        if y >= 0 {
                            x.wrapping_pow(u32::try_from(y).unwrap_or(u32::MAX))
                        } else {
                            match x {
                                1 => 1,
                                -1 => if y % 2 == 0 { 1 } else { -1 },
                                _ => 0,
                            }
                        }
                    }),
                    BinaryOp::Max => exec(n, mode, |x: $t, y: $t| x.max(y)),
                    BinaryOp::Min => exec(n, mode, |x: $t, y: $t| x.min(y)),
                    BinaryOp::PRelu => exec(n, mode, |x: $t, s: $t| if x < 0 { x.wrapping_mul(s) } else { x }),
                    _ => Err(invalid(n, "has a Bool output; use compare or logical")),
                }
            }
        }
    )*};
}
int_binary!(i64, i32, i16, i8);

macro_rules! uint_binary {
    ($($t:ty),*) => {$(
        impl BinaryElement for $t {
            #[allow(private_interfaces)]
            fn run(op: BinaryOp, mode: Mode<'_, $t>) -> Result<()> {
                let n = op.name();
                match op {
                    BinaryOp::Add => exec(n, mode, <$t>::wrapping_add),
                    BinaryOp::Sub => exec(n, mode, <$t>::wrapping_sub),
                    BinaryOp::Mul => exec(n, mode, <$t>::wrapping_mul),
                    BinaryOp::Div => {
                        if mode.divisor().contains(&0) {
                            return Err(invalid(n, "integer division by zero"));
                        }
                        exec(n, mode, <$t>::wrapping_div)
                    }
                    BinaryOp::Pow => exec(n, mode, |x: $t, y: $t| x.wrapping_pow(u32::from(y))),
                    BinaryOp::Max => exec(n, mode, |x: $t, y: $t| x.max(y)),
                    BinaryOp::Min => exec(n, mode, |x: $t, y: $t| x.min(y)),
                    // Unsigned values are never negative.
                    BinaryOp::PRelu => exec(n, mode, |x: $t, _s: $t| x),
                    _ => Err(invalid(n, "has a Bool output; use compare or logical")),
                }
            }
        }
    )*};
}
uint_binary!(u16, u8);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Independent reference: coordinates by division, numpy broadcasting.
    fn naive(
        op: BinaryOp,
        a: &[f32],
        sa: &[usize],
        b: &[f32],
        sb: &[usize],
    ) -> (Vec<usize>, Vec<f32>) {
        let rank = sa.len().max(sb.len());
        let pad = |s: &[usize]| {
            let mut v = vec![1; rank - s.len()];
            v.extend_from_slice(s);
            v
        };
        let (pa, pb) = (pad(sa), pad(sb));
        let shape: Vec<usize> = pa.iter().zip(&pb).map(|(&x, &y)| x.max(y)).collect();
        let n: usize = shape.iter().product();
        let idx = |p: &[usize], coord: &[usize]| {
            let mut i = 0;
            for (d, &c) in p.iter().zip(coord) {
                i = i * d + if *d == 1 { 0 } else { c };
            }
            i
        };
        let mut out = vec![];
        for lin in 0..n {
            let mut rem = lin;
            let mut coord = vec![0; rank];
            for k in (0..rank).rev() {
                coord[k] = rem % shape[k];
                rem /= shape[k];
            }
            let (x, y) = (a[idx(&pa, &coord)], b[idx(&pb, &coord)]);
            out.push(match op {
                BinaryOp::Add => x + y,
                BinaryOp::Sub => x - y,
                BinaryOp::Mul => x * y,
                BinaryOp::Div => x / y,
                BinaryOp::Max => x.max(y),
                BinaryOp::Min => x.min(y),
                BinaryOp::PRelu => {
                    if x < 0.0 {
                        x * y
                    } else {
                        x
                    }
                }
                _ => unreachable!(),
            });
        }
        (shape, out)
    }

    /// A pair of broadcast-compatible shapes.
    fn shapes() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
        proptest::collection::vec((1usize..5, 0u8..3), 0..5).prop_flat_map(|dims| {
            let full: Vec<usize> = dims.iter().map(|d| d.0).collect();
            let a: Vec<usize> = dims
                .iter()
                .map(|&(d, k)| if k == 1 { 1 } else { d })
                .collect();
            let b: Vec<usize> = dims
                .iter()
                .map(|&(d, k)| if k == 2 { 1 } else { d })
                .collect();
            (0..=full.len()).prop_map(move |cut| (a.clone(), b[cut..].to_vec()))
        })
    }

    const OPS: [BinaryOp; 7] = [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Max,
        BinaryOp::Min,
        BinaryOp::PRelu,
    ];

    proptest! {
        #[test]
        fn broadcast_matches_naive((sa, sb) in shapes(), opi in 0usize..7, swap in any::<bool>()) {
            let (sa, sb) = if swap { (sb, sa) } else { (sa, sb) };
            let op = OPS[opi];
            let a: Vec<f32> = (0..numel(&sa)).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
            let b: Vec<f32> = (0..numel(&sb)).map(|i| (i as f32 * 0.71).cos() * 2.0 + 0.1).collect();
            let (shape, want) = naive(op, &a, &sa, &b, &sb);
            let mut out = vec![0.0; want.len()];
            binary(op, &a, &sa, &b, &sb, &mut out).unwrap();
            prop_assert_eq!(&out, &want);
            // In place on whichever operand has the output shape.
            if sa == shape {
                let mut acc = a.clone();
                binary_inplace(op, &mut acc, &sa, &b, &sb, Side::Lhs).unwrap();
                prop_assert_eq!(&acc, &want);
            }
            if sb == shape {
                let mut acc = b.clone();
                binary_inplace(op, &mut acc, &sb, &a, &sa, Side::Rhs).unwrap();
                prop_assert_eq!(&acc, &want);
            }
        }
    }

    #[test]
    fn large_per_channel_broadcast_runs_in_parallel_chunks() {
        let shape = [1, 64, 64, 48];
        let a: Vec<f32> = (0..numel(&shape)).map(|i| i as f32).collect();
        let b: Vec<f32> = (0..48).map(|i| i as f32 * 0.5).collect();
        let mut out = vec![0.0; a.len()];
        binary(BinaryOp::Mul, &a, &shape, &b, &[48], &mut out).unwrap();
        for (i, &v) in out.iter().enumerate() {
            assert_eq!(v, a[i] * b[i % 48]);
        }
    }

    #[test]
    fn integer_semantics() {
        let a = [7i64, -7, i64::MAX];
        let b = [2i64];
        let mut out = [0; 3];
        binary(BinaryOp::Div, &a, &[3], &b, &[], &mut out).unwrap();
        assert_eq!(out, [3, -3, i64::MAX / 2]);
        binary(BinaryOp::Add, &a, &[3], &[1], &[1], &mut out).unwrap();
        assert_eq!(out, [8, -6, i64::MIN]);
        assert!(binary(BinaryOp::Div, &a, &[3], &[0], &[1], &mut out).is_err());
        let mut o32 = [0i32; 2];
        binary(BinaryOp::Pow, &[2i32, 3], &[2], &[3], &[], &mut o32).unwrap();
        assert_eq!(o32, [8, 27]);
    }

    #[test]
    fn comparisons_and_logic() {
        let mut out = [false; 3];
        compare(BinaryOp::Less, &[1i64, 5, 3], &[3], &[3], &[1], &mut out).unwrap();
        assert_eq!(out, [true, false, false]);
        compare(
            BinaryOp::Equal,
            &[1.0f32, 3.0, 3.0],
            &[3],
            &[3.0],
            &[],
            &mut out,
        )
        .unwrap();
        assert_eq!(out, [false, true, true]);
        logical(
            BinaryOp::Or,
            &[true, false, false],
            &[3],
            &[false],
            &[],
            &mut out,
        )
        .unwrap();
        assert_eq!(out, [true, false, false]);
        assert!(compare(BinaryOp::Add, &[1i64], &[], &[1], &[], &mut out[..1]).is_err());
    }
}
