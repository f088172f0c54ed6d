//! Gather along one axis.

use super::check_io;
use crate::error::{check_len, invalid, Result};
use crate::shape::numel;
use crate::{par, Element};

/// Normalises gather indices (negative counts from the end) against an axis of length `dim`.
pub fn gather_indices<I: Copy + Into<i64>>(indices: &[I], dim: usize) -> Result<Vec<usize>> {
    indices
        .iter()
        .map(|&i| {
            let v: i64 = i.into();
            let n = if v < 0 { v + dim as i64 } else { v };
            if n < 0 || n >= dim as i64 {
                Err(invalid(
                    "Gather",
                    format!("index {v} is out of range for an axis of length {dim}"),
                ))
            } else {
                Ok(n as usize)
            }
        })
        .collect()
}

/// `out[o, j.., i] = x[o, indices[j..], i]` along `axis`; `indices` are already normalised
/// (see [`gather_indices`]) and `idx_shape` is their shape.
pub fn gather<T: Element>(
    x: &[T],
    x_shape: &[usize],
    axis: usize,
    indices: &[usize],
    idx_shape: &[usize],
    out: &mut [T],
) -> Result<()> {
    const OP: &str = "Gather";
    if axis >= x_shape.len() {
        return Err(invalid(
            OP,
            format!("axis {axis} out of range for {x_shape:?}"),
        ));
    }
    check_len(OP, "indices", indices.len(), numel(idx_shape))?;
    let dim = x_shape[axis];
    if let Some(&bad) = indices.iter().find(|&&i| i >= dim) {
        return Err(invalid(
            OP,
            format!("index {bad} is out of range for an axis of length {dim}"),
        ));
    }
    let outer: usize = x_shape[..axis].iter().product();
    let inner: usize = x_shape[axis + 1..].iter().product();
    check_io(
        OP,
        x.len(),
        x_shape,
        out.len(),
        outer * indices.len() * inner,
    )?;
    let out_block = indices.len() * inner;
    if out_block == 0 {
        return Ok(());
    }
    par::for_rows(out, out_block, par::MIN_PAR_ELEMS, |o0, chunk| {
        for (r, dst) in chunk.chunks_exact_mut(out_block).enumerate() {
            let src = &x[(o0 + r) * dim * inner..(o0 + r + 1) * dim * inner];
            for (j, &i) in indices.iter().enumerate() {
                dst[j * inner..(j + 1) * inner].copy_from_slice(&src[i * inner..(i + 1) * inner]);
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_indices_count_from_the_end() {
        let x: Vec<f32> = (0..6).map(|v| v as f32).collect(); // [2, 3]
        let idx = gather_indices(&[-1i64, 0], 3).unwrap();
        let mut out = vec![0.0; 4];
        gather(&x, &[2, 3], 1, &idx, &[2], &mut out).unwrap();
        assert_eq!(out, vec![2.0, 0.0, 5.0, 3.0]);
        assert!(gather_indices(&[3i32], 3).is_err());
        assert!(gather_indices(&[-4i32], 3).is_err());
    }

    #[test]
    fn scalar_index_drops_the_axis() {
        let x: Vec<i64> = vec![10, 20, 30];
        let idx = gather_indices(&[1i64], 3).unwrap();
        let mut out = vec![0];
        gather(&x, &[3], 0, &idx, &[], &mut out).unwrap();
        assert_eq!(out, vec![20]);
    }
}
