//! DepthToSpace and SpaceToDepth on NHWC, as a reshape plus a transpose.

use super::transpose;
use crate::error::{invalid, Result};
use crate::Element;
use ipukit_ir::ops::DepthToSpaceMode;

/// NHWC depth-to-space with block `b`: `[N, H, W, C·b²] → [N, H·b, W·b, C]`.
///
/// DCR reads channel `(i·b + j)·C + c`, CRD reads `c·b² + i·b + j` for output pixel
/// `(h·b + i, w·b + j)`.
pub fn depth_to_space<T: Element>(
    x: &[T],
    x_shape: &[usize],
    block: usize,
    mode: DepthToSpaceMode,
    out: &mut [T],
) -> Result<()> {
    let &[n, h, w, c] = x_shape else {
        return Err(invalid(
            "DepthToSpace",
            format!("input must be 4-D, got {x_shape:?}"),
        ));
    };
    if block == 0 || c % (block * block) != 0 {
        return Err(invalid(
            "DepthToSpace",
            format!("channels {c} must be divisible by blocksize^2 ({block}^2)"),
        ));
    }
    let co = c / (block * block);
    match mode {
        // [N, H, W, i, j, C] -> [N, H, i, W, j, C]
        DepthToSpaceMode::Dcr => {
            transpose(x, &[n, h, w, block, block, co], &[0, 1, 3, 2, 4, 5], out)
        }
        // [N, H, W, C, i, j] -> [N, H, i, W, j, C]
        DepthToSpaceMode::Crd => {
            transpose(x, &[n, h, w, co, block, block], &[0, 1, 4, 2, 5, 3], out)
        }
    }
}

/// NHWC space-to-depth with block `b`: `[N, H·b, W·b, C] → [N, H, W, C·b²]`, output channel
/// `(i·b + j)·C + c`.
pub fn space_to_depth<T: Element>(
    x: &[T],
    x_shape: &[usize],
    block: usize,
    out: &mut [T],
) -> Result<()> {
    let &[n, h, w, c] = x_shape else {
        return Err(invalid(
            "SpaceToDepth",
            format!("input must be 4-D, got {x_shape:?}"),
        ));
    };
    if block == 0 || h % block != 0 || w % block != 0 {
        return Err(invalid(
            "SpaceToDepth",
            format!("H and W of {x_shape:?} must be divisible by {block}"),
        ));
    }
    // [N, H', i, W', j, C] -> [N, H', W', i, j, C]
    transpose(
        x,
        &[n, h / block, block, w / block, block, c],
        &[0, 1, 3, 2, 4, 5],
        out,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ONNX DepthToSpace docs example (NCHW), converted to NHWC.
    fn onnx_input_nhwc() -> Vec<f32> {
        // NCHW [1, 8, 2, 3] with values 0..48.
        let mut out = vec![0.0; 48];
        for c in 0..8 {
            for h in 0..2 {
                for w in 0..3 {
                    out[(h * 3 + w) * 8 + c] = (c * 6 + h * 3 + w) as f32;
                }
            }
        }
        out
    }

    fn to_nchw(y: &[f32], h: usize, w: usize, c: usize) -> Vec<f32> {
        let mut out = vec![0.0; y.len()];
        for ci in 0..c {
            for hi in 0..h {
                for wi in 0..w {
                    out[(ci * h + hi) * w + wi] = y[(hi * w + wi) * c + ci];
                }
            }
        }
        out
    }

    #[test]
    fn onnx_dcr_example() {
        let x = onnx_input_nhwc();
        let mut y = vec![0.0; 48];
        depth_to_space(&x, &[1, 2, 3, 8], 2, DepthToSpaceMode::Dcr, &mut y).unwrap();
        let got = to_nchw(&y, 4, 6, 2);
        let want = [
            0., 12., 1., 13., 2., 14., 24., 36., 25., 37., 26., 38., 3., 15., 4., 16., 5., 17.,
            27., 39., 28., 40., 29., 41., 6., 18., 7., 19., 8., 20., 30., 42., 31., 43., 32., 44.,
            9., 21., 10., 22., 11., 23., 33., 45., 34., 46., 35., 47.,
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn onnx_crd_example() {
        let x = onnx_input_nhwc();
        let mut y = vec![0.0; 48];
        depth_to_space(&x, &[1, 2, 3, 8], 2, DepthToSpaceMode::Crd, &mut y).unwrap();
        let got = to_nchw(&y, 4, 6, 2);
        let want = [
            0., 6., 1., 7., 2., 8., 12., 18., 13., 19., 14., 20., 3., 9., 4., 10., 5., 11., 15.,
            21., 16., 22., 17., 23., 24., 30., 25., 31., 26., 32., 36., 42., 37., 43., 38., 44.,
            27., 33., 28., 34., 29., 35., 39., 45., 40., 46., 41., 47.,
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn space_to_depth_inverts_dcr() {
        let x: Vec<i32> = (0..2 * 4 * 6 * 3).collect();
        let mut y = vec![0; x.len()];
        space_to_depth(&x, &[2, 4, 6, 3], 2, &mut y).unwrap();
        let mut z = vec![0; x.len()];
        depth_to_space(&y, &[2, 2, 3, 12], 2, DepthToSpaceMode::Dcr, &mut z).unwrap();
        assert_eq!(z, x);
    }
}
