//! Shape arithmetic shared by the kernels: contiguous strides, broadcasting and a strided
//! row iterator with dimension coalescing.

use crate::error::{invalid, Result};

/// Number of elements of a shape.
#[inline]
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Row-major strides of a contiguous tensor.
pub fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Numpy broadcast of several shapes.
pub fn broadcast_all(op: &'static str, shapes: &[&[usize]]) -> Result<Vec<usize>> {
    let rank = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut out = vec![1usize; rank];
    for s in shapes {
        let off = rank - s.len();
        for (i, &d) in s.iter().enumerate() {
            let o = &mut out[off + i];
            if *o == 1 {
                *o = d;
            } else if d != 1 && d != *o {
                return Err(invalid(op, format!("shapes {shapes:?} do not broadcast")));
            }
        }
    }
    Ok(out)
}

/// Strides (in elements) of a contiguous tensor of shape `shape` read as the broadcast shape
/// `out`: right-aligned, 0 along broadcast axes.
pub fn broadcast_strides(shape: &[usize], out: &[usize]) -> Vec<isize> {
    let st = contiguous_strides(shape);
    let off = out.len() - shape.len();
    (0..out.len())
        .map(|i| {
            if i < off || shape[i - off] == 1 {
                0
            } else {
                st[i - off] as isize
            }
        })
        .collect()
}

/// Iteration over a contiguous output whose `K` operands are read with arbitrary strides.
///
/// Axes of length 1 are dropped and adjacent axes that every operand walks contiguously are
/// merged, so the common cases (same shape, scalar, per-channel broadcast, transposes that keep
/// the last axis) reduce to few, long rows. The output is walked in rows of [`Strided::inner`]
/// elements; for each row, the start offset of every operand is given.
#[derive(Debug, Clone)]
pub struct Strided<const K: usize> {
    /// Lengths of the outer (row-indexing) axes.
    outer: Vec<usize>,
    /// Strides of the outer axes for each operand.
    outer_strides: Vec<[isize; K]>,
    /// Length of a row.
    pub inner: usize,
    /// Step between consecutive row elements for each operand.
    pub inner_steps: [isize; K],
    /// Offset of element 0 for each operand.
    base: [isize; K],
}

impl<const K: usize> Strided<K> {
    /// Builds the iteration for an output of shape `shape`; operand `k` reads element
    /// `base[k] + Σ coord[i] * strides[k][i]`.
    pub fn new(shape: &[usize], strides: [&[isize]; K], base: [isize; K]) -> Strided<K> {
        // Keep the axes longer than 1.
        let mut dims: Vec<(usize, [isize; K])> = Vec::with_capacity(shape.len());
        for (i, &d) in shape.iter().enumerate() {
            if d != 1 {
                dims.push((d, std::array::from_fn(|k| strides[k][i])));
            }
        }
        // Merge an axis into the previous one when every operand walks them contiguously.
        let mut merged: Vec<(usize, [isize; K])> = Vec::with_capacity(dims.len());
        for (d, s) in dims {
            if let Some((pd, ps)) = merged.last_mut() {
                if (0..K).all(|k| ps[k] == s[k] * d as isize) {
                    *pd *= d;
                    *ps = s;
                    continue;
                }
            }
            merged.push((d, s));
        }
        let (inner, inner_steps) = merged.pop().unwrap_or((1, [0; K]));
        let (outer, outer_strides) = merged.into_iter().unzip();
        Strided {
            outer,
            outer_strides,
            inner,
            inner_steps,
            base,
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.outer.iter().product()
    }

    /// Calls `f(row, offsets)` for rows `start..end`, where `offsets[k]` is where operand `k`
    /// starts in that row.
    pub fn for_rows(&self, start: usize, end: usize, mut f: impl FnMut(usize, [isize; K])) {
        if start >= end {
            return;
        }
        let n = self.outer.len();
        let mut coord = vec![0usize; n];
        let mut rem = start;
        for i in (0..n).rev() {
            coord[i] = rem % self.outer[i];
            rem /= self.outer[i];
        }
        let mut off = self.base;
        for (c, st) in coord.iter().zip(&self.outer_strides) {
            for (o, s) in off.iter_mut().zip(st) {
                *o += *c as isize * s;
            }
        }
        for row in start..end {
            f(row, off);
            // Odometer step.
            for i in (0..n).rev() {
                coord[i] += 1;
                let st = &self.outer_strides[i];
                if coord[i] < self.outer[i] {
                    for (k, o) in off.iter_mut().enumerate() {
                        *o += st[k];
                    }
                    break;
                }
                coord[i] = 0;
                for (k, o) in off.iter_mut().enumerate() {
                    *o -= st[k] * (self.outer[i] as isize - 1);
                }
            }
        }
    }
}

/// The taps of one axis of a pooling window that fall inside the input.
///
/// The window of output `o` has the taps `o·stride − pad_before + i·dilation`, `i < kernel`;
/// those in `[0, len)` are `first, first + dilation, …` (`count` of them), and `padded` counts
/// those in `[−pad_before, len + pad_after)` (ONNX: `ceil_mode` windows that run past the
/// padding count only their part inside it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WindowTaps {
    /// Input position of the first tap inside the input (meaningless when `count` is 0).
    pub first: usize,
    /// Number of taps inside the input.
    pub count: usize,
    /// Number of taps inside the padded input.
    pub padded: usize,
}

impl WindowTaps {
    /// The input positions of the taps of a dense window (dilation 1).
    #[inline]
    pub fn dense(&self) -> std::ops::Range<usize> {
        self.first..self.first + self.count
    }

    /// The input positions of the taps of a window with this dilation.
    #[inline]
    pub fn stepped(&self, dilation: usize) -> std::iter::StepBy<std::ops::Range<usize>> {
        let end = if self.count == 0 {
            self.first
        } else {
            self.first + (self.count - 1) * dilation + 1
        };
        (self.first..end).step_by(dilation)
    }
}

/// The [`WindowTaps`] of output `o` along an axis of length `len` (`stride`, `dilation`
/// positive).
#[inline]
pub(crate) fn window_taps(
    o: usize,
    stride: usize,
    kernel: usize,
    dilation: usize,
    pad_before: usize,
    pad_after: usize,
    len: usize,
) -> WindowTaps {
    let start = (o * stride) as isize - pad_before as isize;
    let d = dilation as isize;
    // Number of taps below position `bound`, i.e. with `start + i·d < bound`.
    let below = |bound: isize| -> usize {
        if bound <= start {
            0
        } else {
            (((bound - start) + d - 1) / d).min(kernel as isize) as usize
        }
    };
    let skipped = below(0);
    let inside = below(len as isize).saturating_sub(skipped);
    WindowTaps {
        first: (start + skipped as isize * d).max(0) as usize,
        count: inside,
        padded: below((len + pad_after) as isize) - below(-(pad_before as isize)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_channel_broadcast_coalesces_to_rows_of_channels() {
        let out = [1, 4, 5, 8];
        let a = broadcast_strides(&out, &out);
        let b = broadcast_strides(&[8], &out);
        let s = Strided::new(&out, [&a, &b], [0, 0]);
        assert_eq!(s.inner, 8);
        assert_eq!(s.inner_steps, [1, 1]);
        assert_eq!(s.rows(), 20);
        let mut seen = vec![];
        s.for_rows(0, 3, |r, o| seen.push((r, o)));
        assert_eq!(seen, vec![(0, [0, 0]), (1, [8, 0]), (2, [16, 0])]);
    }

    #[test]
    fn scalar_and_same_shape_become_one_row() {
        let out = [2, 3, 4];
        let a = broadcast_strides(&out, &out);
        let b = broadcast_strides(&[], &out);
        let s = Strided::new(&out, [&a, &b], [0, 0]);
        assert_eq!((s.rows(), s.inner, s.inner_steps), (1, 24, [1, 0]));
    }

    #[test]
    fn odometer_matches_division() {
        let shape = [3, 2, 4];
        let st: Vec<isize> = vec![1, 13, 3];
        let s = Strided::new(&shape, [&st], [5]);
        let mut offs = vec![];
        s.for_rows(0, s.rows(), |_, o| offs.push(o[0]));
        let mut want = vec![];
        for i in 0..3 {
            for j in 0..2 {
                want.push(5 + i + j * 13);
            }
        }
        assert_eq!(offs, want);
        let mut tail = vec![];
        s.for_rows(4, 6, |_, o| tail.push(o[0]));
        assert_eq!(tail, want[4..6].to_vec());
    }

    #[test]
    fn broadcasting_rules() {
        assert_eq!(
            broadcast_all("t", &[&[2, 1, 3], &[4, 1]]).unwrap(),
            vec![2, 4, 3]
        );
        assert!(broadcast_all("t", &[&[2], &[3]]).is_err());
    }

    #[test]
    fn window_taps_match_enumeration() {
        for (len, k, d, s, pb, pa) in [
            (5, 3, 1, 1, 1, 1),
            (7, 3, 2, 2, 2, 1),
            (4, 2, 3, 1, 3, 3),
            (1, 2, 2, 1, 1, 1),
        ] {
            for o in 0..8 {
                let start = (o * s) as isize - pb as isize;
                let taps: Vec<isize> = (0..k).map(|i| start + (i * d) as isize).collect();
                let inside: Vec<usize> = taps
                    .iter()
                    .filter(|&&t| t >= 0 && t < len as isize)
                    .map(|&t| t as usize)
                    .collect();
                let padded = taps
                    .iter()
                    .filter(|&&t| t >= -(pb as isize) && t < (len + pa) as isize)
                    .count();
                let w = window_taps(o, s, k, d, pb, pa, len);
                let got: Vec<usize> = w.stepped(d).collect();
                if d == 1 {
                    assert_eq!(w.dense().collect::<Vec<_>>(), got);
                }
                assert_eq!(got, inside, "len {len} k {k} d {d} o {o}");
                assert_eq!((w.count, w.padded), (inside.len(), padded), "o {o}");
            }
        }
    }
}
