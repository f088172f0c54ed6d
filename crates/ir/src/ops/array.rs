//! Data-movement operators: they rearrange elements without arithmetic.

use super::{broadcast_shapes, check_axis, check_rank};
use crate::{error::invalid, DType, Result};

/// Concatenation along `axis`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Concat {
    /// Normalised axis.
    pub axis: usize,
}

impl Concat {
    pub(crate) fn infer(&self, inputs: &[(DType, &[usize])]) -> Result<Vec<(DType, Vec<usize>)>> {
        let (dt, first) = inputs[0];
        check_axis("Concat", self.axis, first.len())?;
        let mut out = first.to_vec();
        for (d, s) in &inputs[1..] {
            let same_rest = s.len() == first.len()
                && s.iter()
                    .zip(first)
                    .enumerate()
                    .all(|(i, (a, b))| i == self.axis || a == b);
            if *d != dt || !same_rest {
                return Err(invalid(
                    "Concat",
                    format!(
                        "input {s:?} ({d}) does not match {first:?} ({dt}) outside axis {}",
                        self.axis
                    ),
                ));
            }
            out[self.axis] += s[self.axis];
        }
        Ok(vec![(dt, out)])
    }
}

/// Split along `axis` into pieces of the given sizes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// Normalised axis.
    pub axis: usize,
    /// Length of each output along `axis`; they sum to the input length.
    pub sizes: Vec<usize>,
}

impl Split {
    pub(crate) fn infer(&self, inputs: &[(DType, &[usize])]) -> Result<Vec<(DType, Vec<usize>)>> {
        let (dt, x) = inputs[0];
        check_axis("Split", self.axis, x.len())?;
        if self.sizes.iter().sum::<usize>() != x[self.axis] {
            return Err(invalid(
                "Split",
                format!(
                    "sizes {:?} do not add up to {} (axis {} of {x:?})",
                    self.sizes, x[self.axis], self.axis
                ),
            ));
        }
        Ok(self
            .sizes
            .iter()
            .map(|&n| {
                let mut s = x.to_vec();
                s[self.axis] = n;
                (dt, s)
            })
            .collect())
    }
}

/// Reinterpretation with a new shape of the same element count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reshape {
    /// Output shape.
    pub shape: Vec<usize>,
}

impl Reshape {
    pub(crate) fn infer(&self, inputs: &[(DType, &[usize])]) -> Result<Vec<(DType, Vec<usize>)>> {
        let (dt, x) = inputs[0];
        if x.iter().product::<usize>() != self.shape.iter().product::<usize>() {
            return Err(invalid(
                "Reshape",
                format!("cannot reshape {x:?} into {:?}", self.shape),
            ));
        }
        Ok(vec![(dt, self.shape.clone())])
    }
}

/// Axis permutation: output axis `i` is input axis `perm[i]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transpose {
    /// The permutation.
    pub perm: Vec<usize>,
}

impl Transpose {
    /// True if `perm` is a permutation of `0..rank`.
    pub fn is_valid_perm(perm: &[usize]) -> bool {
        let mut seen = vec![false; perm.len()];
        perm.iter()
            .all(|&p| p < perm.len() && !std::mem::replace(&mut seen[p], true))
    }

    pub(crate) fn infer(&self, inputs: &[(DType, &[usize])]) -> Result<Vec<(DType, Vec<usize>)>> {
        let (dt, x) = inputs[0];
        if self.perm.len() != x.len() || !Self::is_valid_perm(&self.perm) {
            return Err(invalid(
                "Transpose",
                format!("{:?} is not a permutation of the axes of {x:?}", self.perm),
            ));
        }
        Ok(vec![(dt, self.perm.iter().map(|&p| x[p]).collect())])
    }
}

/// The slice of one axis: elements `start, start + step, …` (`len` of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SliceAxis {
    /// First index taken (always a valid index when `len > 0`).
    pub start: usize,
    /// Step, never zero; negative walks backwards.
    pub step: i64,
    /// Number of elements taken.
    pub len: usize,
}

/// Strided slice with one entry per input axis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slice {
    /// Per-axis slice, one per input axis.
    pub axes: Vec<SliceAxis>,
}

impl Slice {
    /// Normalises ONNX/numpy `start:end:step` on an axis of length `dim`.
    pub fn axis_from_range(start: i64, end: i64, step: i64, dim: usize) -> Option<SliceAxis> {
        if step == 0 {
            return None;
        }
        let d = dim as i64;
        let norm = |v: i64| if v < 0 { v + d } else { v };
        let (s, e) = if step > 0 {
            (norm(start).clamp(0, d), norm(end).clamp(0, d))
        } else {
            (norm(start).clamp(-1, d - 1), norm(end).clamp(-1, d - 1))
        };
        let len = if step > 0 {
            if e > s {
                (e - s + step - 1) / step
            } else {
                0
            }
        } else if s > e {
            (s - e + (-step) - 1) / (-step)
        } else {
            0
        };
        Some(SliceAxis {
            start: if len > 0 { s as usize } else { 0 },
            step,
            len: len as usize,
        })
    }

    /// True if the slice takes every element in order.
    pub fn is_identity(&self, x: &[usize]) -> bool {
        self.axes
            .iter()
            .zip(x)
            .all(|(a, &d)| a.start == 0 && a.step == 1 && a.len == d)
    }

    pub(crate) fn infer(&self, inputs: &[(DType, &[usize])]) -> Result<Vec<(DType, Vec<usize>)>> {
        let (dt, x) = inputs[0];
        if self.axes.len() != x.len() {
            return Err(invalid(
                "Slice",
                format!("{} axes given for input {x:?}", self.axes.len()),
            ));
        }
        for (a, &d) in self.axes.iter().zip(x) {
            let last = a.start as i64 + (a.len as i64 - 1) * a.step;
            if a.step == 0 || (a.len > 0 && (a.start >= d || last < 0 || last >= d as i64)) {
                return Err(invalid(
                    "Slice",
                    format!("{a:?} is out of range for axis length {d}"),
                ));
            }
        }
        Ok(vec![(dt, self.axes.iter().map(|a| a.len).collect())])
    }
}

/// How padded elements are filled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PadMode {
    /// A constant value.
    Constant(f32),
    /// Mirror without repeating the edge (`dcb|abcd|cba`).
    Reflect,
    /// Repeat the edge element.
    Edge,
    /// Wrap around (`cd|abcd|ab`).
    Wrap,
}

/// Padding of every axis.
#[derive(Debug, Clone, PartialEq)]
pub struct Pad {
    /// `[before, after]` per axis.
    pub pads: Vec<[usize; 2]>,
    /// Fill mode.
    pub mode: PadMode,
}

impl Pad {
    pub(crate) fn infer(&self, inputs: &[(DType, &[usize])]) -> Result<Vec<(DType, Vec<usize>)>> {
        let (dt, x) = inputs[0];
        if self.pads.len() != x.len() {
            return Err(invalid(
                "Pad",
                format!("{} pad pairs for input {x:?}", self.pads.len()),
            ));
        }
        if self.mode == PadMode::Reflect
            && self
                .pads
                .iter()
                .zip(x)
                .any(|(p, &d)| p[0] >= d.max(1) || p[1] >= d.max(1))
        {
            return Err(invalid(
                "Pad",
                format!(
                    "reflect padding {:?} must be smaller than input {x:?}",
                    self.pads
                ),
            ));
        }
        Ok(vec![(
            dt,
            x.iter()
                .zip(&self.pads)
                .map(|(&d, p)| d + p[0] + p[1])
                .collect(),
        )])
    }
}

/// Gather along `axis`; indices may be negative (counted from the end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gather {
    /// Normalised axis of the data input.
    pub axis: usize,
}

impl Gather {
    pub(crate) fn infer(&self, inputs: &[(DType, &[usize])]) -> Result<Vec<(DType, Vec<usize>)>> {
        let (dt, x) = inputs[0];
        let (di, idx) = inputs[1];
        check_axis("Gather", self.axis, x.len())?;
        if !matches!(di, DType::I64 | DType::I32) {
            return Err(invalid(
                "Gather",
                format!("indices must be INT64 or INT32, got {di}"),
            ));
        }
        let mut out = x[..self.axis].to_vec();
        out.extend_from_slice(idx);
        out.extend_from_slice(&x[self.axis + 1..]);
        Ok(vec![(dt, out)])
    }
}

/// Channel ordering of depth-to-space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DepthToSpaceMode {
    /// Depth-column-row: channel `(i * b + j) * C + c` (TensorFlow's order).
    Dcr,
    /// Column-row-depth: channel `c * b * b + i * b + j`.
    Crd,
}

/// Depth-to-space on NHWC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepthToSpace {
    /// Block size.
    pub block: usize,
    /// Channel ordering.
    pub mode: DepthToSpaceMode,
}

impl DepthToSpace {
    pub(crate) fn infer(&self, inputs: &[(DType, &[usize])]) -> Result<Vec<(DType, Vec<usize>)>> {
        let (dt, x) = inputs[0];
        check_rank("DepthToSpace", "input", x, 4)?;
        let b = self.block;
        if b == 0 || x[3] % (b * b) != 0 {
            return Err(invalid(
                "DepthToSpace",
                format!("channels {} must be divisible by blocksize^2 ({b}^2)", x[3]),
            ));
        }
        Ok(vec![(dt, vec![x[0], x[1] * b, x[2] * b, x[3] / (b * b)])])
    }
}

/// Space-to-depth on NHWC (TensorFlow / ONNX channel order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpaceToDepth {
    /// Block size.
    pub block: usize,
}

impl SpaceToDepth {
    pub(crate) fn infer(&self, inputs: &[(DType, &[usize])]) -> Result<Vec<(DType, Vec<usize>)>> {
        let (dt, x) = inputs[0];
        check_rank("SpaceToDepth", "input", x, 4)?;
        let b = self.block;
        if b == 0 || x[1] % b != 0 || x[2] % b != 0 {
            return Err(invalid(
                "SpaceToDepth",
                format!("H and W of {x:?} must be divisible by {b}"),
            ));
        }
        Ok(vec![(dt, vec![x[0], x[1] / b, x[2] / b, x[3] * b * b])])
    }
}

/// Numpy broadcast of the input to `shape`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expand {
    /// Target shape (the output is the broadcast of input and this).
    pub shape: Vec<usize>,
}

impl Expand {
    pub(crate) fn infer(&self, inputs: &[(DType, &[usize])]) -> Result<Vec<(DType, Vec<usize>)>> {
        let (dt, x) = inputs[0];
        let out = broadcast_shapes(x, &self.shape).ok_or_else(|| {
            invalid(
                "Expand",
                format!("{x:?} does not broadcast to {:?}", self.shape),
            )
        })?;
        Ok(vec![(dt, out)])
    }
}

/// Repetition along each axis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tile {
    /// Repeat count per axis.
    pub repeats: Vec<usize>,
}

impl Tile {
    pub(crate) fn infer(&self, inputs: &[(DType, &[usize])]) -> Result<Vec<(DType, Vec<usize>)>> {
        let (dt, x) = inputs[0];
        if self.repeats.len() != x.len() {
            return Err(invalid(
                "Tile",
                format!("{} repeats for input {x:?}", self.repeats.len()),
            ));
        }
        Ok(vec![(
            dt,
            x.iter().zip(&self.repeats).map(|(a, b)| a * b).collect(),
        )])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_normalisation_matches_numpy() {
        let a = Slice::axis_from_range(1, i64::MAX, 1, 5).unwrap();
        assert_eq!((a.start, a.len), (1, 4));
        let r = Slice::axis_from_range(-1, i64::MIN, -1, 5).unwrap();
        assert_eq!((r.start, r.step, r.len), (4, -1, 5));
        let s = Slice::axis_from_range(0, 5, 2, 5).unwrap();
        assert_eq!(s.len, 3);
        let e = Slice::axis_from_range(3, 1, 1, 5).unwrap();
        assert_eq!(e.len, 0);
        assert!(Slice::axis_from_range(0, 1, 0, 5).is_none());
    }

    #[test]
    fn perm_validation() {
        assert!(Transpose::is_valid_perm(&[0, 2, 1]));
        assert!(!Transpose::is_valid_perm(&[0, 0, 1]));
        assert!(!Transpose::is_valid_perm(&[0, 3]));
    }
}
