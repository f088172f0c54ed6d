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
///
/// The window of output `(oy, ox)` has the taps `oy·sh − pad_top + i·dh` (`i < KH`) along H
/// and likewise along W; taps outside the input are padding.
#[derive(Debug, Clone, PartialEq)]
pub struct Pool2d {
    /// Max or average.
    pub kind: PoolKind,
    /// Window size (KH, KW), in taps.
    pub kernel: [usize; 2],
    /// Strides.
    pub strides: [usize; 2],
    /// Distance between two taps of the window along H and W (1: a dense window).
    pub dilations: [usize; 2],
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
                self.dilations[0],
                self.ceil_mode,
            )?,
            window_out_len(
                w,
                p.left,
                p.right,
                self.kernel[1],
                self.strides[1],
                self.dilations[1],
                self.ceil_mode,
            )?,
        ])
    }

    pub(crate) fn infer(&self, inputs: &[(DType, &[usize])]) -> Result<Vec<(DType, Vec<usize>)>> {
        let (dt, x) = inputs[0];
        check_rank("Pool2d", "input", x, 4)?;
        if self.dilations.contains(&0) {
            return Err(invalid("Pool2d", "dilations must be positive"));
        }
        let [oh, ow] = self.out_hw(x[1], x[2]).ok_or_else(|| {
            invalid(
                "Pool2d",
                format!(
                    "window {:?} (dilations {:?}) does not fit input {x:?}",
                    self.kernel, self.dilations
                ),
            )
        })?;
        Ok(vec![(dt, vec![x[0], oh, ow, x[3]])])
    }
}

/// How [`MaxPool2dWithIndices`] numbers the elements of its input, seen as **NCHW**
/// (ONNX MaxPool's `storage_order`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StorageOrder {
    /// Row-major: `((n·C + c)·H + y)·W + x` (`storage_order` 0).
    RowMajor,
    /// Each `(n, c)` plane column-major: `(n·C + c)·H·W + x·H + y` (`storage_order` 1).
    ColumnMajor,
}

/// Max pooling that also gives the position of every maximum (ONNX MaxPool's `Indices`
/// output).
///
/// Outputs: the pooled values (as [`Pool2d`] with kind max computes them) and, with the same
/// NHWC shape, an INT64 tensor holding for each of them the index of the input element it
/// came from, counted on the input seen as **NCHW** in `storage_order`. The ONNX importer
/// stores NCHW tensors as NHWC, so this is the index ONNX defines on the original tensor.
/// Within a window the first maximum in row-major order wins; a window without input
/// elements gives the type's lowest value and index −1.
#[derive(Debug, Clone, PartialEq)]
pub struct MaxPool2dWithIndices {
    /// The window; `kind` must be [`PoolKind::Max`].
    pub pool: Pool2d,
    /// How the indices number the input's elements.
    pub storage_order: StorageOrder,
}

impl MaxPool2dWithIndices {
    pub(crate) fn infer(&self, inputs: &[(DType, &[usize])]) -> Result<Vec<(DType, Vec<usize>)>> {
        if self.pool.kind != PoolKind::Max {
            return Err(invalid("MaxPool2dWithIndices", "pool kind must be max"));
        }
        let mut outs = self.pool.infer(inputs)?;
        let shape = outs[0].1.clone();
        outs.push((DType::I64, shape));
        Ok(outs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn max(kernel: usize, stride: usize, dilation: usize, pad: usize, ceil: bool) -> Pool2d {
        Pool2d {
            kind: PoolKind::Max,
            kernel: [kernel; 2],
            strides: [stride; 2],
            dilations: [dilation; 2],
            padding: Padding2d {
                top: pad,
                left: pad,
                bottom: pad,
                right: pad,
            },
            ceil_mode: ceil,
        }
    }

    #[test]
    fn dilated_window_spans_more_input() {
        // ONNX test_maxpool_2d_dilations: 4×4 input, kernel 2, dilation 2 → 2×2.
        assert_eq!(max(2, 1, 2, 0, false).out_hw(4, 4), Some([2, 2]));
        assert_eq!(max(2, 1, 1, 0, false).out_hw(4, 4), Some([3, 3]));
        // Span 5 does not fit 4 rows without padding, does with one on each side.
        assert_eq!(max(3, 1, 2, 0, false).out_hw(4, 4), None);
        assert_eq!(max(3, 1, 2, 1, false).out_hw(4, 4), Some([2, 2]));
        // ceil_mode: (4 + 2 − 5) / 2 + 1 = 1, rounded up to 2.
        assert_eq!(max(3, 2, 2, 1, true).out_hw(4, 4), Some([2, 2]));
        let x = [1, 4, 4, 3];
        let p = max(2, 1, 0, 0, false);
        assert!(p.infer(&[(DType::F32, &x)]).is_err());
    }

    #[test]
    fn with_indices_has_an_int64_second_output() {
        let op = MaxPool2dWithIndices {
            pool: max(2, 2, 1, 0, false),
            storage_order: StorageOrder::RowMajor,
        };
        let outs = op.infer(&[(DType::U8, &[1, 4, 6, 3])]).unwrap();
        assert_eq!(
            outs,
            vec![
                (DType::U8, vec![1, 2, 3, 3]),
                (DType::I64, vec![1, 2, 3, 3])
            ]
        );
        let avg = MaxPool2dWithIndices {
            pool: Pool2d {
                kind: PoolKind::Average {
                    count_include_pad: false,
                },
                ..op.pool
            },
            storage_order: StorageOrder::ColumnMajor,
        };
        assert!(avg.infer(&[(DType::F32, &[1, 4, 6, 3])]).is_err());
    }
}
