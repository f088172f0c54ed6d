//! Expand (broadcast) and Tile.

use super::{check_io, strided_copy};
use crate::error::{invalid, Result};
use crate::shape::{broadcast_all, broadcast_strides, contiguous_strides, Strided};
use crate::{par, Element};

/// Broadcasts `x` to `out_shape` (numpy rules; `out_shape` is the broadcast of `x_shape` and
/// the Expand's target shape).
pub fn expand<T: Element>(
    x: &[T],
    x_shape: &[usize],
    out_shape: &[usize],
    out: &mut [T],
) -> Result<()> {
    const OP: &str = "Expand";
    let b = broadcast_all(OP, &[x_shape, out_shape])?;
    if b != out_shape {
        return Err(invalid(
            OP,
            format!("{x_shape:?} does not broadcast to {out_shape:?}"),
        ));
    }
    check_io(OP, x.len(), x_shape, out.len(), out_shape.iter().product())?;
    if out.is_empty() {
        return Ok(());
    }
    let st = broadcast_strides(x_shape, out_shape);
    let it = Strided::new(out_shape, [&st], [0]);
    strided_copy(x, &it, out);
    Ok(())
}

/// Repeats `x` `repeats[axis]` times along each axis.
pub fn tile<T: Element>(
    x: &[T],
    x_shape: &[usize],
    repeats: &[usize],
    out: &mut [T],
) -> Result<()> {
    const OP: &str = "Tile";
    if repeats.len() != x_shape.len() {
        return Err(invalid(
            OP,
            format!("{} repeats for input {x_shape:?}", repeats.len()),
        ));
    }
    let out_shape: Vec<usize> = x_shape.iter().zip(repeats).map(|(a, b)| a * b).collect();
    check_io(OP, x.len(), x_shape, out.len(), out_shape.iter().product())?;
    if out.is_empty() {
        return Ok(());
    }
    let rank = x_shape.len();
    if rank == 0 {
        out.copy_from_slice(x);
        return Ok(());
    }
    let last = rank - 1;
    let row = out_shape[last];
    let in_row = x_shape[last];
    let st = contiguous_strides(x_shape);
    par::for_rows(out, row, par::MIN_PAR_ELEMS, |r0, chunk| {
        for (r, dst) in chunk.chunks_exact_mut(row).enumerate() {
            let mut rem = r0 + r;
            let mut off = 0;
            for a in (0..last).rev() {
                let o = rem % out_shape[a];
                rem /= out_shape[a];
                off += (o % x_shape[a]) * st[a];
            }
            let src = &x[off..off + in_row];
            for d in dst.chunks_exact_mut(in_row) {
                d.copy_from_slice(src);
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expand_column_to_matrix() {
        let x = [1i64, 2, 3];
        let mut out = [0; 6];
        expand(&x, &[3, 1], &[3, 2], &mut out).unwrap();
        assert_eq!(out, [1, 1, 2, 2, 3, 3]);
        let mut out = [0; 12];
        expand(&x, &[3, 1], &[2, 3, 2], &mut out).unwrap();
        assert_eq!(out, [1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3]);
    }

    #[test]
    fn tile_matches_numpy() {
        // np.tile([[1, 2], [3, 4]], (2, 3))
        let x = [1u8, 2, 3, 4];
        let mut out = [0; 24];
        tile(&x, &[2, 2], &[2, 3], &mut out).unwrap();
        assert_eq!(
            out,
            [1, 2, 1, 2, 1, 2, 3, 4, 3, 4, 3, 4, 1, 2, 1, 2, 1, 2, 3, 4, 3, 4, 3, 4]
        );
    }
}
