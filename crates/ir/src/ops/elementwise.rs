//! Element-wise operators and numpy broadcasting.

use crate::{error::invalid, DType, Result};

/// Binary element-wise operation (numpy broadcasting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// `a + b`.
    Add,
    /// `a - b`.
    Sub,
    /// `a * b`.
    Mul,
    /// `a / b` (integer division truncates toward zero).
    Div,
    /// `a ^ b`.
    Pow,
    /// `max(a, b)`.
    Max,
    /// `min(a, b)`.
    Min,
    /// `a < 0 ? a * b : a` (b is the slope).
    PRelu,
    /// `a == b` (Bool output).
    Equal,
    /// `a < b` (Bool output).
    Less,
    /// `a > b` (Bool output).
    Greater,
    /// `a && b` on Bool.
    And,
    /// `a || b` on Bool.
    Or,
}

impl BinaryOp {
    /// Operator name.
    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "Add",
            BinaryOp::Sub => "Sub",
            BinaryOp::Mul => "Mul",
            BinaryOp::Div => "Div",
            BinaryOp::Pow => "Pow",
            BinaryOp::Max => "Max",
            BinaryOp::Min => "Min",
            BinaryOp::PRelu => "PRelu",
            BinaryOp::Equal => "Equal",
            BinaryOp::Less => "Less",
            BinaryOp::Greater => "Greater",
            BinaryOp::And => "And",
            BinaryOp::Or => "Or",
        }
    }

    /// True for the comparisons and logical operators, whose output is Bool.
    pub fn is_logical(self) -> bool {
        matches!(
            self,
            BinaryOp::Equal | BinaryOp::Less | BinaryOp::Greater | BinaryOp::And | BinaryOp::Or
        )
    }

    pub(crate) fn infer(&self, inputs: &[(DType, &[usize])]) -> Result<Vec<(DType, Vec<usize>)>> {
        let (da, a) = inputs[0];
        let (db, b) = inputs[1];
        if da != db {
            return Err(invalid(
                self.name(),
                format!("input dtypes differ: {da} and {db}"),
            ));
        }
        let shape = broadcast_shapes(a, b).ok_or_else(|| {
            invalid(
                self.name(),
                format!("shapes {a:?} and {b:?} do not broadcast"),
            )
        })?;
        let dt = if self.is_logical() { DType::Bool } else { da };
        Ok(vec![(dt, shape)])
    }
}

/// Unary element-wise operation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum UnaryOp {
    /// `max(x, 0)`.
    Relu,
    /// `x < 0 ? alpha * x : x`.
    LeakyRelu(f32),
    /// `min(max(x, lo), hi)`.
    Clip(f32, f32),
    /// `1 / (1 + e^-x)`.
    Sigmoid,
    /// `clamp(alpha * x + beta, 0, 1)`.
    HardSigmoid(f32, f32),
    /// `x * clamp(x / 6 + 1/2, 0, 1)`.
    HardSwish,
    /// `tanh(x)`.
    Tanh,
    /// `x < 0 ? alpha * (e^x - 1) : x`.
    Elu(f32),
    /// `ln(1 + e^x)`.
    Softplus,
    /// `|x|`.
    Abs,
    /// `-x`.
    Neg,
    /// `√x`.
    Sqrt,
    /// `1 / √x`.
    Rsqrt,
    /// `e^x`.
    Exp,
    /// `ln x`.
    Log,
    /// `1 / x`.
    Reciprocal,
    /// `⌊x⌋`.
    Floor,
    /// `⌈x⌉`.
    Ceil,
    /// Round half to even.
    Round,
    /// Error function.
    Erf,
    /// `sin x`.
    Sin,
    /// `cos x`.
    Cos,
    /// Logical not on Bool.
    Not,
}

impl UnaryOp {
    /// Operator name.
    pub fn name(self) -> &'static str {
        match self {
            UnaryOp::Relu => "Relu",
            UnaryOp::LeakyRelu(_) => "LeakyRelu",
            UnaryOp::Clip(..) => "Clip",
            UnaryOp::Sigmoid => "Sigmoid",
            UnaryOp::HardSigmoid(..) => "HardSigmoid",
            UnaryOp::HardSwish => "HardSwish",
            UnaryOp::Tanh => "Tanh",
            UnaryOp::Elu(_) => "Elu",
            UnaryOp::Softplus => "Softplus",
            UnaryOp::Abs => "Abs",
            UnaryOp::Neg => "Neg",
            UnaryOp::Sqrt => "Sqrt",
            UnaryOp::Rsqrt => "Rsqrt",
            UnaryOp::Exp => "Exp",
            UnaryOp::Log => "Log",
            UnaryOp::Reciprocal => "Reciprocal",
            UnaryOp::Floor => "Floor",
            UnaryOp::Ceil => "Ceil",
            UnaryOp::Round => "Round",
            UnaryOp::Erf => "Erf",
            UnaryOp::Sin => "Sin",
            UnaryOp::Cos => "Cos",
            UnaryOp::Not => "Not",
        }
    }

    /// Applies the operation to one `f32`; the float reference semantics every backend follows.
    pub fn apply_f32(self, x: f32) -> f32 {
        match self {
            UnaryOp::Relu => x.max(0.0),
            UnaryOp::LeakyRelu(a) => {
                if x < 0.0 {
                    a * x
                } else {
                    x
                }
            }
            UnaryOp::Clip(lo, hi) => x.max(lo).min(hi),
            UnaryOp::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            UnaryOp::HardSigmoid(a, b) => (a * x + b).clamp(0.0, 1.0),
            UnaryOp::HardSwish => x * (x / 6.0 + 0.5).clamp(0.0, 1.0),
            UnaryOp::Tanh => x.tanh(),
            UnaryOp::Elu(a) => {
                if x < 0.0 {
                    a * (x.exp() - 1.0)
                } else {
                    x
                }
            }
            UnaryOp::Softplus => {
                // ln(1 + e^x) without overflow for large x.
                if x > 20.0 {
                    x
                } else {
                    x.exp().ln_1p()
                }
            }
            UnaryOp::Abs => x.abs(),
            UnaryOp::Neg => -x,
            UnaryOp::Sqrt => x.sqrt(),
            UnaryOp::Rsqrt => 1.0 / x.sqrt(),
            UnaryOp::Exp => x.exp(),
            UnaryOp::Log => x.ln(),
            UnaryOp::Reciprocal => 1.0 / x,
            UnaryOp::Floor => x.floor(),
            UnaryOp::Ceil => x.ceil(),
            UnaryOp::Round => x.round_ties_even(),
            UnaryOp::Erf => erf(x),
            UnaryOp::Sin => x.sin(),
            UnaryOp::Cos => x.cos(),
            UnaryOp::Not => {
                if x == 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
        }
    }

    pub(crate) fn infer(&self, inputs: &[(DType, &[usize])]) -> Result<Vec<(DType, Vec<usize>)>> {
        let (dt, x) = inputs[0];
        let ok = match self {
            UnaryOp::Not => dt == DType::Bool,
            UnaryOp::Abs | UnaryOp::Neg | UnaryOp::Relu | UnaryOp::Clip(..) => dt != DType::Bool,
            _ => dt.is_float(),
        };
        if !ok {
            return Err(invalid(self.name(), format!("does not accept {dt} input")));
        }
        Ok(vec![(dt, x.to_vec())])
    }
}

/// Error function by Abramowitz–Stegun 7.1.26 in f64; |error| < 1.5e-7.
fn erf(x: f32) -> f32 {
    let xd = x as f64;
    let t = 1.0 / (1.0 + 0.327_591_1 * xd.abs());
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let mut y = 1.0 - poly * (-xd * xd).exp();
    if xd < 0.0 {
        y = -y;
    }
    y as f32
}

/// Numpy broadcast of two shapes; `None` if incompatible.
pub fn broadcast_shapes(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let da = if i + a.len() >= n {
            a[i + a.len() - n]
        } else {
            1
        };
        let db = if i + b.len() >= n {
            b[i + b.len() - n]
        } else {
            1
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        };
    }
    Some(out)
}

pub(crate) fn infer_where(inputs: &[(DType, &[usize])]) -> Result<Vec<(DType, Vec<usize>)>> {
    let (dc, c) = inputs[0];
    let (da, a) = inputs[1];
    let (db, b) = inputs[2];
    if dc != DType::Bool || da != db {
        return Err(invalid(
            "Where",
            format!("needs (BOOL, T, T) inputs, got ({dc}, {da}, {db})"),
        ));
    }
    let s = broadcast_shapes(c, a)
        .and_then(|s| broadcast_shapes(&s, b))
        .ok_or_else(|| {
            invalid(
                "Where",
                format!("shapes {c:?}, {a:?}, {b:?} do not broadcast"),
            )
        })?;
    Ok(vec![(da, s)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_follows_numpy() {
        assert_eq!(broadcast_shapes(&[1, 3, 1], &[1, 4]), Some(vec![1, 3, 4]));
        assert_eq!(broadcast_shapes(&[1, 3, 1], &[4, 1]), None);
        assert_eq!(broadcast_shapes(&[], &[2, 2]), Some(vec![2, 2]));
        assert_eq!(broadcast_shapes(&[3], &[4]), None);
    }

    #[test]
    fn erf_is_accurate() {
        for (x, want) in [
            (0.0f32, 0.0f32),
            (0.5, 0.520_499_9),
            (1.0, 0.842_700_8),
            (-2.0, -0.995_322_3),
        ] {
            assert!((erf(x) - want).abs() < 1e-6, "erf({x})");
        }
    }
}
