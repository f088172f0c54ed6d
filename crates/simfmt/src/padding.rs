//! TFLite's SAME / VALID padding arithmetic (tensorflow/lite/kernels/padding.h).

use crate::tflite::Padding;
use ipukit_ir::ops::Padding2d;

/// Padding and output length along one axis for a TFLite padding mode, or `None` if the window
/// does not fit.
///
/// VALID: `out = (in - eff) / stride + 1`, no padding. SAME: `out = ceil(in / stride)`,
/// `total = max((out - 1) * stride + eff - in, 0)`, `before = total / 2`, `after = total - before`,
/// where `eff = (k - 1) * dilation + 1`.
pub(crate) fn axis(
    mode: Padding,
    input: usize,
    k: usize,
    stride: usize,
    dilation: usize,
) -> Option<(usize, usize, usize)> {
    if stride == 0 || k == 0 || dilation == 0 {
        return None;
    }
    let eff = (k - 1).checked_mul(dilation)?.checked_add(1)?;
    match mode {
        Padding::Valid => {
            let n = input.checked_sub(eff)?;
            Some((0, 0, n / stride + 1))
        }
        Padding::Same => {
            let out = input.div_ceil(stride);
            if out == 0 {
                return None;
            }
            let total = ((out - 1) * stride + eff).saturating_sub(input);
            Some((total / 2, total - total / 2, out))
        }
    }
}

/// The explicit padding TFLite uses for `mode` on an `h` × `w` input, with the output size.
pub(crate) fn padding2d(
    mode: Padding,
    hw: [usize; 2],
    kernel: [usize; 2],
    strides: [usize; 2],
    dilations: [usize; 2],
) -> Option<(Padding2d, [usize; 2])> {
    let (t, b, oh) = axis(mode, hw[0], kernel[0], strides[0], dilations[0])?;
    let (l, r, ow) = axis(mode, hw[1], kernel[1], strides[1], dilations[1])?;
    Some((
        Padding2d {
            top: t,
            left: l,
            bottom: b,
            right: r,
        },
        [oh, ow],
    ))
}

/// The TFLite mode whose padding equals `p` and whose output size equals `out`, VALID first.
pub(crate) fn match_mode(
    p: Padding2d,
    out: [usize; 2],
    hw: [usize; 2],
    kernel: [usize; 2],
    strides: [usize; 2],
    dilations: [usize; 2],
) -> Option<Padding> {
    [Padding::Valid, Padding::Same]
        .into_iter()
        .find(|&mode| padding2d(mode, hw, kernel, strides, dilations) == Some((p, out)))
}

/// For TFLite's TRANSPOSE_CONV: the `(top, left)` padding TFLite derives for `mode` from the
/// output size, provided the forward convolution it implies maps the output back to exactly
/// the input size (otherwise the optimized kernel's col2im would not line up).
pub(crate) fn tconv_layout(
    mode: Padding,
    in_hw: [usize; 2],
    out_hw: [usize; 2],
    k: [usize; 2],
    strides: [usize; 2],
) -> Option<(usize, usize)> {
    let (top, _, fh) = axis(mode, out_hw[0], k[0], strides[0], 1)?;
    let (left, _, fw) = axis(mode, out_hw[1], k[1], strides[1], 1)?;
    (fh == in_hw[0] && fw == in_hw[1]).then_some((top, left))
}

/// The IR's `(bottom/right padding, output_padding)` for a TRANSPOSE_CONV whose output starts at
/// `before` in the full (uncropped) output: whatever the full output lacks is output padding,
/// whatever it has too much is bottom/right padding.
pub(crate) fn tconv_canonical(
    in_hw: [usize; 2],
    k: [usize; 2],
    strides: [usize; 2],
    before: [usize; 2],
    out_hw: [usize; 2],
) -> ([usize; 2], [usize; 2]) {
    let mut after = [0; 2];
    let mut extra = [0; 2];
    for a in 0..2 {
        let full = in_hw[a].saturating_sub(1) * strides[a] + k[a];
        let need = out_hw[a] + before[a];
        if need <= full {
            after[a] = full - need;
        } else {
            extra[a] = need - full;
        }
    }
    (after, extra)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_padding_matches_tflite() {
        // 224 -> 112 with k3 s2: total 1, before 0, after 1.
        assert_eq!(axis(Padding::Same, 224, 3, 2, 1), Some((0, 1, 112)));
        // k3 s1: 1 and 1.
        assert_eq!(axis(Padding::Same, 10, 3, 1, 1), Some((1, 1, 10)));
        // k1 s2 on 5: no padding needed.
        assert_eq!(axis(Padding::Same, 5, 1, 2, 1), Some((0, 0, 3)));
        // dilation 2, k3 -> effective 5.
        assert_eq!(axis(Padding::Same, 8, 3, 1, 2), Some((2, 2, 8)));
        assert_eq!(axis(Padding::Valid, 8, 3, 2, 1), Some((0, 0, 3)));
        assert_eq!(axis(Padding::Valid, 2, 3, 1, 1), None);
    }
}
