//! Reductions, arg-reductions and softmax.

use super::check_axis;
use crate::{error::invalid, DType, Result};

/// Reduction kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    /// Arithmetic mean.
    Mean,
    /// Sum.
    Sum,
    /// Maximum.
    Max,
    /// Minimum.
    Min,
    /// Product.
    Prod,
    /// Square root of the sum of squares.
    L2,
}

impl ReduceOp {
    /// Operator name.
    pub fn name(self) -> &'static str {
        match self {
            ReduceOp::Mean => "ReduceMean",
            ReduceOp::Sum => "ReduceSum",
            ReduceOp::Max => "ReduceMax",
            ReduceOp::Min => "ReduceMin",
            ReduceOp::Prod => "ReduceProd",
            ReduceOp::L2 => "ReduceL2",
        }
    }
}

/// Reduction over `axes` (sorted, unique).
#[derive(Debug, Clone, PartialEq)]
pub struct Reduce {
    /// Kind of reduction.
    pub op: ReduceOp,
    /// Reduced axes, ascending.
    pub axes: Vec<usize>,
    /// Keep reduced axes as size 1.
    pub keep_dims: bool,
}

/// Output shape of a reduction of `x` over `axes`.
pub(crate) fn reduced_shape(x: &[usize], axes: &[usize], keep_dims: bool) -> Vec<usize> {
    x.iter()
        .enumerate()
        .filter_map(|(i, &d)| {
            if axes.contains(&i) {
                keep_dims.then_some(1)
            } else {
                Some(d)
            }
        })
        .collect()
}

impl Reduce {
    pub(crate) fn infer(&self, inputs: &[(DType, &[usize])]) -> Result<Vec<(DType, Vec<usize>)>> {
        let (dt, x) = inputs[0];
        for &a in &self.axes {
            check_axis(self.op.name(), a, x.len())?;
        }
        if self.axes.windows(2).any(|w| w[0] >= w[1]) {
            return Err(invalid(
                self.op.name(),
                format!("axes {:?} must be ascending and unique", self.axes),
            ));
        }
        Ok(vec![(dt, reduced_shape(x, &self.axes, self.keep_dims))])
    }
}

/// Which extreme an [`ArgReduce`] looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArgReduceKind {
    /// Index of the maximum.
    Max,
    /// Index of the minimum.
    Min,
}

/// Index of the extreme along one axis; ties go to the first index unless `select_last_index`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgReduce {
    /// Max or min.
    pub kind: ArgReduceKind,
    /// Axis searched.
    pub axis: usize,
    /// Keep the axis as size 1.
    pub keep_dims: bool,
    /// Ties go to the last index.
    pub select_last_index: bool,
}

impl ArgReduce {
    pub(crate) fn infer(&self, inputs: &[(DType, &[usize])]) -> Result<Vec<(DType, Vec<usize>)>> {
        let (_, x) = inputs[0];
        let name = match self.kind {
            ArgReduceKind::Max => "ArgMax",
            ArgReduceKind::Min => "ArgMin",
        };
        check_axis(name, self.axis, x.len())?;
        Ok(vec![(
            DType::I64,
            reduced_shape(x, &[self.axis], self.keep_dims),
        )])
    }
}

/// Softmax (or log-softmax) along one axis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Softmax {
    /// Normalised axis.
    pub axis: usize,
}

impl Softmax {
    pub(crate) fn infer(&self, inputs: &[(DType, &[usize])]) -> Result<Vec<(DType, Vec<usize>)>> {
        let (dt, x) = inputs[0];
        check_axis("Softmax", self.axis, x.len())?;
        if !dt.is_float() {
            return Err(invalid("Softmax", format!("does not accept {dt} input")));
        }
        Ok(vec![(dt, x.to_vec())])
    }
}
