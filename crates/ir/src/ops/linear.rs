//! FullyConnected and MatMul.

use super::FusedActivation;
use crate::{error::invalid, ops::broadcast_shapes, DType, Result};

/// `y = x · Wᵀ + b` over the last axis of `x`; weight `[N, K]`, bias `[N]`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FullyConnected {
    /// Activation applied to the output.
    pub activation: FusedActivation,
}

impl FullyConnected {
    pub(crate) fn infer(&self, inputs: &[(DType, &[usize])]) -> Result<Vec<(DType, Vec<usize>)>> {
        let (dt, x) = inputs[0];
        let (_, w) = inputs[1];
        if x.is_empty() || w.len() != 2 || x[x.len() - 1] != w[1] {
            return Err(invalid(
                "FullyConnected",
                format!("input {x:?} and weight {w:?} do not match (weight must be [N, K] with K the input's last axis)"),
            ));
        }
        if let Some((_, b)) = inputs.get(2) {
            if b.iter().product::<usize>() != w[0] {
                return Err(invalid(
                    "FullyConnected",
                    format!("bias {b:?} must have {} elements", w[0]),
                ));
            }
        }
        let mut out = x.to_vec();
        *out.last_mut().unwrap_or(&mut 0) = w[0];
        Ok(vec![(dt, out)])
    }
}

/// Batched matrix product `a @ b` with numpy broadcasting of the batch axes; both ranks ≥ 2.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MatMul {}

impl MatMul {
    pub(crate) fn infer(&self, inputs: &[(DType, &[usize])]) -> Result<Vec<(DType, Vec<usize>)>> {
        let (da, a) = inputs[0];
        let (db, b) = inputs[1];
        let bad = || {
            invalid(
                "MatMul",
                format!("shapes {a:?} and {b:?} cannot be multiplied"),
            )
        };
        if da != db || a.len() < 2 || b.len() < 2 {
            return Err(bad());
        }
        let (m, k) = (a[a.len() - 2], a[a.len() - 1]);
        let (k2, n) = (b[b.len() - 2], b[b.len() - 1]);
        if k != k2 {
            return Err(bad());
        }
        let mut out = broadcast_shapes(&a[..a.len() - 2], &b[..b.len() - 2]).ok_or_else(bad)?;
        out.extend([m, n]);
        Ok(vec![(da, out)])
    }
}
