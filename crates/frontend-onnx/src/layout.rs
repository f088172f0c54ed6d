//! Axis permutations between ONNX's layout and the IR's.
//!
//! The importer tracks, for every ONNX tensor, the IR tensor that holds it and a permutation
//! `perm` such that IR axis `i` holds ONNX axis `perm[i]`. NCHW activations are held NHWC
//! (`perm = [0, 2, 3, 1]`); an ONNX Transpose only changes the permutation, so transposes
//! cancel without ever being emitted, and one is materialised only where an operator needs a
//! specific layout (a Reshape or MatMul needs ONNX's own order, a convolution needs NHWC).

/// IR axis i holds ONNX axis `NHWC_PERM[i]` for an NCHW tensor stored NHWC.
pub const NHWC_PERM: [usize; 4] = [0, 2, 3, 1];
/// The permutation taking NHWC to NCHW (an ONNX `Transpose(perm=[0,3,1,2])`).
pub const NCHW_PERM: [usize; 4] = [0, 3, 1, 2];

/// The identity permutation of a rank.
pub fn identity(rank: usize) -> Vec<usize> {
    (0..rank).collect()
}

/// Inverse permutation.
pub fn inverse(perm: &[usize]) -> Vec<usize> {
    let mut inv = vec![0; perm.len()];
    for (i, &p) in perm.iter().enumerate() {
        inv[p] = i;
    }
    inv
}

/// The IR axis that holds ONNX axis `onnx_axis`.
pub fn ir_axis(perm: &[usize], onnx_axis: usize) -> usize {
    perm.iter()
        .position(|&p| p == onnx_axis)
        .unwrap_or(onnx_axis)
}

/// The Transpose permutation that turns a tensor held with `from` into one held with `to`.
pub fn transpose_between(from: &[usize], to: &[usize]) -> Vec<usize> {
    let inv = inverse(from);
    to.iter().map(|&a| inv[a]).collect()
}

/// Permutation after an ONNX axis set is removed (reductions without keepdims, Squeeze):
/// the remaining entries keep their order and are renumbered.
pub fn remove_axes(perm: &[usize], removed: &[usize]) -> Vec<usize> {
    perm.iter()
        .filter(|p| !removed.contains(p))
        .map(|&p| p - removed.iter().filter(|&&r| r < p).count())
        .collect()
}

/// Normalises a possibly negative ONNX axis.
pub fn norm_axis(axis: i64, rank: usize) -> Option<usize> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    (0..r).contains(&a).then_some(a as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nhwc_round_trip() {
        assert_eq!(
            transpose_between(&identity(4), &NHWC_PERM),
            vec![0, 2, 3, 1]
        );
        assert_eq!(
            transpose_between(&NHWC_PERM, &identity(4)),
            vec![0, 3, 1, 2]
        );
        assert_eq!(ir_axis(&NHWC_PERM, 1), 3);
        assert_eq!(remove_axes(&NHWC_PERM, &[2, 3]), vec![0, 1]);
        assert_eq!(remove_axes(&[0, 2, 3, 1], &[1]), vec![0, 1, 2]);
        assert_eq!(norm_axis(-1, 4), Some(3));
        assert_eq!(norm_axis(4, 4), None);
    }
}
