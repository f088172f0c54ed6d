//! Max and average pooling over H and W of an NHWC tensor.

use super::{check_rank, window_out_len, Padding2d};
use crate::{error::invalid, DType, Result};

/// Pooling kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PoolKind {
    /// Maximum over the window (padding never wins).
    Max,
    /// Mean over the window.
    Average {
        /// Divide by the full window size even where it overlaps padding.
        count_include_pad: bool,
    },
}

/// 2-D pooling.
#[derive(Debug, Clone, PartialEq)]
pub struct Pool2d {
    /// Max or average.
    pub kind: PoolKind,
    /// Window size (KH, KW).
    pub kernel: [usize; 2],
    /// Strides.
    pub strides: [usize; 2],
    /// Explicit padding.
    pub padding: Padding2d,
    /// Round the output size up (ONNX `ceil_mode`).
    pub ceil_mode: bool,
}

impl Pool2d {
    /// Output (H, W) for an input of `h` × `w`.
    pub fn out_hw(&self, h: usize, w: usize) -> Option<[usize; 2]> {
        let p = self.padding;
        Some([
            window_out_len(
                h,
                p.top,
                p.bottom,
                self.kernel[0],
                self.strides[0],
                1,
                self.ceil_mode,
            )?,
            window_out_len(
                w,
                p.left,
                p.right,
                self.kernel[1],
                self.strides[1],
                1,
                self.ceil_mode,
            )?,
        ])
    }

    pub(crate) fn infer(&self, inputs: &[(DType, &[usize])]) -> Result<Vec<(DType, Vec<usize>)>> {
        let (dt, x) = inputs[0];
        check_rank("Pool2d", "input", x, 4)?;
        let [oh, ow] = self.out_hw(x[1], x[2]).ok_or_else(|| {
            invalid(
                "Pool2d",
                format!("window {:?} does not fit input {x:?}", self.kernel),
            )
        })?;
        Ok(vec![(dt, vec![x[0], oh, ow, x[3]])])
    }
}
