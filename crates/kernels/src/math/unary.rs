//! Unary element-wise operations.
//!
//! `f32` semantics are [`UnaryOp::apply_f32`]; the hot activations (Relu, Clip, Sigmoid,
//! HardSwish, Exp, …) run as vectorised loops compiled for the best instruction set, with
//! `exp` from [`super::vecmath`] (within a few ulp of the standard library).

use super::vecmath;
use crate::error::{check_len, KernelError, Result};
use crate::simd::dispatch;
use crate::{par, Element};
use ipukit_ir::ops::UnaryOp;

/// Below this many elements a unary operation runs on one thread.
const MIN_PAR: usize = 1 << 14;

#[inline(always)]
fn kernel<const FMA: bool>(op: UnaryOp, src: Option<&[f32]>, dst: &mut [f32]) {
    macro_rules! go {
        ($f:expr) => {{
            let f = $f;
            match src {
                Some(s) => {
                    for (d, &x) in dst.iter_mut().zip(s) {
                        *d = f(x);
                    }
                }
                None => {
                    for d in dst.iter_mut() {
                        *d = f(*d);
                    }
                }
            }
        }};
    }
    match op {
        UnaryOp::Relu => go!(|x: f32| if x > 0.0 { x } else { 0.0 }),
        UnaryOp::LeakyRelu(a) => go!(|x: f32| if x < 0.0 { a * x } else { x }),
        UnaryOp::Clip(lo, hi) => go!(|x: f32| x.max(lo).min(hi)),
        UnaryOp::Sigmoid => go!(vecmath::sigmoid),
        UnaryOp::HardSigmoid(a, b) => go!(|x: f32| (a * x + b).clamp(0.0, 1.0)),
        UnaryOp::HardSwish => go!(|x: f32| x * (x / 6.0 + 0.5).clamp(0.0, 1.0)),
        UnaryOp::Abs => go!(f32::abs),
        UnaryOp::Neg => go!(|x: f32| -x),
        UnaryOp::Sqrt => go!(f32::sqrt),
        UnaryOp::Rsqrt => go!(|x: f32| 1.0 / x.sqrt()),
        UnaryOp::Exp => go!(vecmath::exp),
        UnaryOp::Reciprocal => go!(|x: f32| 1.0 / x),
        UnaryOp::Elu(a) => go!(|x: f32| if x < 0.0 {
            a * (vecmath::exp(x) - 1.0)
        } else {
            x
        }),
        _ => go!(|x: f32| op.apply_f32(x)),
    }
}

dispatch!(fn kernel_best = kernel(op: UnaryOp, src: Option<&[f32]>, dst: &mut [f32]));

fn check_f32_op(op: UnaryOp) -> Result<()> {
    if op == UnaryOp::Not {
        return Err(KernelError::Unsupported {
            op: op.name(),
            dtype: ipukit_ir::DType::F32,
        });
    }
    Ok(())
}

/// `out = op(x)` on `f32`.
pub fn unary_f32(op: UnaryOp, x: &[f32], out: &mut [f32]) -> Result<()> {
    check_f32_op(op)?;
    check_len(op.name(), "output", out.len(), x.len())?;
    par::for_rows(out, 1, MIN_PAR, |start, chunk| {
        kernel_best(op, Some(&x[start..start + chunk.len()]), chunk);
    });
    Ok(())
}

/// `x = op(x)` on `f32`, in place.
pub fn unary_f32_inplace(op: UnaryOp, x: &mut [f32]) -> Result<()> {
    check_f32_op(op)?;
    par::for_rows(x, 1, MIN_PAR, |_, chunk| kernel_best(op, None, chunk));
    Ok(())
}

/// Integer element types with the integer unary operations (`Abs`, `Neg`, `Relu`, `Clip`).
pub trait IntUnaryElement: Element + Ord {
    /// Absolute value (wrapping at the minimum).
    fn abs_w(self) -> Self;
    /// Negation (wrapping).
    fn neg_w(self) -> Self;
}

macro_rules! int_unary {
    (signed: $($t:ty),*) => {$(
        impl IntUnaryElement for $t {
            fn abs_w(self) -> Self { self.wrapping_abs() }
            fn neg_w(self) -> Self { self.wrapping_neg() }
        }
    )*};
    (unsigned: $($t:ty),*) => {$(
        impl IntUnaryElement for $t {
            fn abs_w(self) -> Self { self }
            fn neg_w(self) -> Self { self.wrapping_neg() }
        }
    )*};
}
int_unary!(signed: i64, i32, i16, i8);
int_unary!(unsigned: u16, u8);

/// `out = op(x)` on integers; `Clip` bounds are rounded inward to integers.
pub fn unary_int<T: IntUnaryElement>(op: UnaryOp, x: &[T], out: &mut [T]) -> Result<()> {
    check_len(op.name(), "output", out.len(), x.len())?;
    let zero = T::default();
    let f: Box<dyn Fn(T) -> T + Sync> = match op {
        UnaryOp::Abs => Box::new(|v: T| v.abs_w()),
        UnaryOp::Neg => Box::new(|v: T| v.neg_w()),
        UnaryOp::Relu => Box::new(move |v: T| v.max(zero)),
        UnaryOp::Clip(lo, hi) => {
            let lo = T::from_f32(lo.ceil());
            let hi = T::from_f32(hi.floor());
            Box::new(move |v: T| v.max(lo).min(hi))
        }
        _ => {
            return Err(KernelError::Unsupported {
                op: op.name(),
                dtype: T::DTYPE,
            })
        }
    };
    for (d, &v) in out.iter_mut().zip(x) {
        *d = f(v);
    }
    Ok(())
}

/// Logical not.
pub fn not(x: &[bool], out: &mut [bool]) -> Result<()> {
    check_len("Not", "output", out.len(), x.len())?;
    for (d, &v) in out.iter_mut().zip(x) {
        *d = !v;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simd;

    const OPS: [UnaryOp; 22] = [
        UnaryOp::Relu,
        UnaryOp::LeakyRelu(0.1),
        UnaryOp::Clip(-1.5, 2.0),
        UnaryOp::Sigmoid,
        UnaryOp::HardSigmoid(0.2, 0.5),
        UnaryOp::HardSwish,
        UnaryOp::Tanh,
        UnaryOp::Elu(1.0),
        UnaryOp::Softplus,
        UnaryOp::Abs,
        UnaryOp::Neg,
        UnaryOp::Sqrt,
        UnaryOp::Rsqrt,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Reciprocal,
        UnaryOp::Floor,
        UnaryOp::Ceil,
        UnaryOp::Round,
        UnaryOp::Erf,
        UnaryOp::Sin,
        UnaryOp::Cos,
    ];

    fn close(got: f32, want: f32) -> bool {
        if got.is_nan() || want.is_nan() {
            return got.is_nan() && want.is_nan();
        }
        got == want || (got - want).abs() <= 4e-7 * want.abs().max(1e-6)
    }

    #[test]
    fn every_op_matches_apply_f32_on_every_level() {
        let x: Vec<f32> = (0..40_000)
            .map(|i| (i as f32 - 20_000.0) * 0.0031)
            .collect();
        for level in [
            simd::Level::Baseline,
            simd::Level::Avx2,
            simd::Level::Avx512,
        ] {
            simd::force(Some(level));
            for op in OPS {
                let mut out = vec![0.0; x.len()];
                unary_f32(op, &x, &mut out).unwrap();
                let mut inplace = x.clone();
                unary_f32_inplace(op, &mut inplace).unwrap();
                for (i, &v) in x.iter().enumerate() {
                    let want = op.apply_f32(v);
                    assert!(close(out[i], want), "{op:?}({v}) = {} want {want}", out[i]);
                    assert_eq!(out[i].to_bits(), inplace[i].to_bits(), "{op:?}");
                }
            }
        }
        simd::force(None);
    }

    #[test]
    fn integer_ops() {
        let x = [-3i64, 0, 5, i64::MIN];
        let mut out = [0; 4];
        unary_int(UnaryOp::Abs, &x, &mut out).unwrap();
        assert_eq!(out, [3, 0, 5, i64::MIN]);
        unary_int(UnaryOp::Clip(-1.5, 4.5), &x, &mut out).unwrap();
        assert_eq!(out, [-1, 0, 4, -1]);
        assert!(unary_int(UnaryOp::Sigmoid, &x, &mut out).is_err());
        assert!(unary_f32(UnaryOp::Not, &[1.0], &mut [0.0]).is_err());
    }
}
