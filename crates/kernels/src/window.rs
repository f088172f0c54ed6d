//! Sliding-window geometry shared by the float and integer convolution kernels.

use crate::error::{invalid, Result};
use ipukit_ir::ops::{window_out_len, Padding2d};

/// The `[N, H, W, C]` of a 4-D NHWC input shape.
pub(crate) fn nhwc(op: &'static str, x_shape: &[usize]) -> Result<[usize; 4]> {
    match x_shape {
        &[n, h, w, c] => Ok([n, h, w, c]),
        _ => Err(invalid(
            op,
            format!("input must be 4-D NHWC, got {x_shape:?}"),
        )),
    }
}

/// The `[N, H, W]` of an NHWC input that must have `channels` channels (a layer's weights).
pub(crate) fn nhwc_with_channels(
    op: &'static str,
    x_shape: &[usize],
    channels: usize,
) -> Result<[usize; 3]> {
    let [n, h, w, c] = nhwc(op, x_shape)?;
    if c != channels {
        return Err(invalid(
            op,
            format!("input has {c} channels, the weights expect {channels}"),
        ));
    }
    Ok([n, h, w])
}

/// The output pixel `(image, row, column)` of a walk over consecutive pixels, stepped
/// instead of divided out per pixel.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PixelCursor {
    pub n: usize,
    pub oy: usize,
    pub ox: usize,
    oh: usize,
    ow: usize,
}

impl PixelCursor {
    /// Pixel `p` of `[N, oh, ow]` outputs.
    pub(crate) fn at(p: usize, oh: usize, ow: usize) -> PixelCursor {
        let plane = (oh * ow).max(1);
        let ow1 = ow.max(1);
        PixelCursor {
            n: p / plane,
            oy: (p % plane) / ow1,
            ox: p % ow1,
            oh,
            ow,
        }
    }

    /// Moves to the next pixel.
    pub(crate) fn advance(&mut self) {
        self.ox += 1;
        if self.ox == self.ow {
            self.ox = 0;
            self.oy += 1;
            if self.oy == self.oh {
                self.oy = 0;
                self.n += 1;
            }
        }
    }
}

/// Kernel size, strides, dilations and padding of a forward 2-D convolution (NHWC).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ConvGeometry {
    pub kh: usize,
    pub kw: usize,
    pub strides: [usize; 2],
    pub dilations: [usize; 2],
    pub padding: Padding2d,
}

impl ConvGeometry {
    /// The geometry of a `kh` × `kw` kernel; every size, stride and dilation must be positive.
    pub(crate) fn new(
        op: &'static str,
        [kh, kw]: [usize; 2],
        strides: [usize; 2],
        dilations: [usize; 2],
        padding: Padding2d,
    ) -> Result<Self> {
        if kh == 0 || kw == 0 || strides.contains(&0) || dilations.contains(&0) {
            return Err(invalid(
                op,
                "kernel, strides and dilations must be positive",
            ));
        }
        Ok(ConvGeometry {
            kh,
            kw,
            strides,
            dilations,
            padding,
        })
    }

    /// Output (OH, OW) for an input of `h` × `w`.
    pub(crate) fn out_hw(&self, op: &'static str, h: usize, w: usize) -> Result<[usize; 2]> {
        let p = self.padding;
        let axis = |len, before, after, k, axis: usize| {
            window_out_len(
                len,
                before,
                after,
                k,
                self.strides[axis],
                self.dilations[axis],
                false,
            )
        };
        match (
            axis(h, p.top, p.bottom, self.kh, 0),
            axis(w, p.left, p.right, self.kw, 1),
        ) {
            (Some(a), Some(b)) => Ok([a, b]),
            _ => Err(invalid(
                op,
                format!(
                    "kernel {}x{} (stride {:?}, dilation {:?}, padding {:?}) does not fit a {h}x{w} input",
                    self.kh, self.kw, self.strides, self.dilations, self.padding
                ),
            )),
        }
    }

    /// A 1×1, stride-1, unpadded kernel: the input is already the GEMM's left operand.
    pub(crate) fn is_pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.strides == [1, 1] && self.padding.is_zero()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_sizes_are_refused() {
        let p = Padding2d::default();
        for (k, s, d) in [
            ([0, 1], [1, 1], [1, 1]),
            ([1, 1], [1, 0], [1, 1]),
            ([1, 1], [1, 1], [0, 1]),
        ] {
            assert!(ConvGeometry::new("Conv2d", k, s, d, p).is_err());
        }
    }

    #[test]
    fn output_size_and_misfit() {
        let p = Padding2d {
            top: 1,
            left: 1,
            bottom: 1,
            right: 1,
        };
        let g = ConvGeometry::new("Conv2d", [3, 3], [2, 2], [1, 1], p).unwrap();
        assert_eq!(g.out_hw("Conv2d", 7, 8).unwrap(), [4, 4]);
        let g = ConvGeometry::new("Conv2d", [5, 5], [1, 1], [2, 2], Padding2d::default()).unwrap();
        let e = g.out_hw("Conv2d", 8, 9).unwrap_err().to_string();
        assert!(e.contains("does not fit a 8x9 input"), "{e}");
        assert!(!g.is_pointwise());
    }
}
