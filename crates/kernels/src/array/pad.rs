//! Padding with a constant, by reflection or by edge replication.

use super::check_io;
use crate::error::{invalid, Result};
use crate::shape::contiguous_strides;
use crate::{par, Element};
use ipukit_ir::ops::PadMode;

/// Source index along one axis for output index `o`, or `None` for a constant fill.
#[inline]
fn source(o: usize, before: usize, len: usize, mode: PadMode) -> Option<usize> {
    let i = o as i64 - before as i64;
    let n = len as i64;
    if (0..n).contains(&i) {
        return Some(i as usize);
    }
    match mode {
        PadMode::Constant(_) => None,
        PadMode::Edge => Some(i.clamp(0, n - 1) as usize),
        PadMode::Wrap => Some(i.rem_euclid(n) as usize),
        PadMode::Reflect => {
            if n == 1 {
                return Some(0);
            }
            // Mirror without repeating the edge; fold until inside (periodic with 2(n-1)).
            let period = 2 * (n - 1);
            let mut m = i.rem_euclid(period);
            if m >= n {
                m = period - m;
            }
            Some(m as usize)
        }
    }
}

/// Pads `x` by `pads[axis] = [before, after]` elements.
pub fn pad<T: Element>(
    x: &[T],
    x_shape: &[usize],
    pads: &[[usize; 2]],
    mode: PadMode,
    out: &mut [T],
) -> Result<()> {
    const OP: &str = "Pad";
    if pads.len() != x_shape.len() {
        return Err(invalid(
            OP,
            format!("{} pad pairs for input {x_shape:?}", pads.len()),
        ));
    }
    let out_shape: Vec<usize> = x_shape
        .iter()
        .zip(pads)
        .map(|(&d, p)| d + p[0] + p[1])
        .collect();
    check_io(OP, x.len(), x_shape, out.len(), out_shape.iter().product())?;
    if out.is_empty() {
        return Ok(());
    }
    if !matches!(mode, PadMode::Constant(_))
        && x_shape
            .iter()
            .zip(pads)
            .any(|(&d, p)| d == 0 && p[0] + p[1] > 0)
    {
        return Err(invalid(
            OP,
            format!("cannot {mode:?}-pad an empty axis of {x_shape:?}"),
        ));
    }
    let fill = match mode {
        PadMode::Constant(v) => T::from_f32(v),
        _ => T::default(),
    };
    let rank = x_shape.len();
    if rank == 0 {
        out.copy_from_slice(x);
        return Ok(());
    }
    let last = rank - 1;
    let row = out_shape[last];
    let in_row = x_shape[last];
    let in_st = contiguous_strides(x_shape);
    let outer = &out_shape[..last];
    par::for_rows(out, row, par::MIN_PAR_ELEMS, |r0, chunk| {
        for (r, dst) in chunk.chunks_exact_mut(row).enumerate() {
            // Decompose the row index into outer coordinates and map each to the input.
            let mut rem = r0 + r;
            let mut src_off = Some(0usize);
            for a in (0..last).rev() {
                let o = rem % outer[a];
                rem /= outer[a];
                src_off = match (src_off, source(o, pads[a][0], x_shape[a], mode)) {
                    (Some(s), Some(i)) => Some(s + i * in_st[a]),
                    _ => None,
                };
            }
            let Some(s) = src_off else {
                dst.fill(fill);
                continue;
            };
            let src = &x[s..s + in_row];
            let (before, _) = (pads[last][0], pads[last][1]);
            dst[before..before + in_row].copy_from_slice(src);
            for (o, d) in dst.iter_mut().enumerate() {
                if o < before || o >= before + in_row {
                    *d = source(o, before, in_row, mode).map_or(fill, |i| src[i]);
                }
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn onnx_reflect_example() {
        // ONNX Pad docs, mode=reflect: pads = [0, 2, 0, 0].
        let x = [1.0f32, 1.2, 2.3, 3.4, 4.5, 5.7];
        let mut out = [0.0; 12];
        pad(&x, &[3, 2], &[[0, 0], [2, 0]], PadMode::Reflect, &mut out).unwrap();
        assert_eq!(
            out,
            [1.0, 1.2, 1.0, 1.2, 2.3, 3.4, 2.3, 3.4, 4.5, 5.7, 4.5, 5.7]
        );
    }

    #[test]
    fn onnx_edge_and_constant_examples() {
        let x = [1.0f32, 1.2, 2.3, 3.4, 4.5, 5.7];
        let mut out = [0.0; 12];
        pad(&x, &[3, 2], &[[0, 0], [2, 0]], PadMode::Edge, &mut out).unwrap();
        assert_eq!(
            out,
            [1.0, 1.0, 1.0, 1.2, 2.3, 2.3, 2.3, 3.4, 4.5, 4.5, 4.5, 5.7]
        );
        let mut out = [9.0; 12];
        pad(
            &x,
            &[3, 2],
            &[[0, 0], [2, 0]],
            PadMode::Constant(0.0),
            &mut out,
        )
        .unwrap();
        assert_eq!(
            out,
            [0.0, 0.0, 1.0, 1.2, 0.0, 0.0, 2.3, 3.4, 0.0, 0.0, 4.5, 5.7]
        );
    }

    #[test]
    fn reflect_on_outer_axes_and_both_sides() {
        // [[1,2,3],[4,5,6],[7,8,9]] reflect-padded by 1 everywhere.
        let x: Vec<i64> = (1..=9).collect();
        let mut out = vec![0; 25];
        pad(&x, &[3, 3], &[[1, 1], [1, 1]], PadMode::Reflect, &mut out).unwrap();
        assert_eq!(
            out,
            vec![5, 4, 5, 6, 5, 2, 1, 2, 3, 2, 5, 4, 5, 6, 5, 8, 7, 8, 9, 8, 5, 4, 5, 6, 5]
        );
    }
}
