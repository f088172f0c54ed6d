//! Axis permutation.

use super::{check_io, strided_copy};
use crate::error::{invalid, Result};
use crate::shape::{contiguous_strides, Strided};
use crate::{par, Element};

/// Tile edge of the blocked 2-D transpose.
const TILE: usize = 32;

/// Writes `x` with its axes permuted: output axis `i` is input axis `perm[i]`.
///
/// The permutation is first reduced (size-1 axes dropped, axes that stay adjacent merged), so
/// NCHW↔NHWC and other "swap two blocks" permutations become a batched, cache-blocked 2-D
/// transpose, and permutations that keep the last axis become row copies.
pub fn transpose<T: Element>(
    x: &[T],
    x_shape: &[usize],
    perm: &[usize],
    out: &mut [T],
) -> Result<()> {
    const OP: &str = "Transpose";
    if perm.len() != x_shape.len() || !ipukit_ir::ops::Transpose::is_valid_perm(perm) {
        return Err(invalid(
            OP,
            format!("{perm:?} is not a permutation of the axes of {x_shape:?}"),
        ));
    }
    check_io(OP, x.len(), x_shape, out.len(), x.len())?;
    if out.is_empty() {
        return Ok(());
    }
    let (shape, perm) = reduce_perm(x_shape, perm);
    match perm.as_slice() {
        [] | [0] => super::copy(x, out),
        [1, 0] => transpose_2d(x, 1, shape[0], shape[1], out),
        [0, 2, 1] => transpose_2d(x, shape[0], shape[1], shape[2], out),
        _ => {
            let st = contiguous_strides(&shape);
            let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
            let strides: Vec<isize> = perm.iter().map(|&p| st[p] as isize).collect();
            let it = Strided::new(&out_shape, [&strides], [0]);
            strided_copy(x, &it, out);
        }
    }
    Ok(())
}

/// Drops size-1 axes and merges input axes that stay adjacent and in order under `perm`.
fn reduce_perm(shape: &[usize], perm: &[usize]) -> (Vec<usize>, Vec<usize>) {
    // Drop size-1 axes, renumbering the rest.
    let keep: Vec<usize> = (0..shape.len()).filter(|&a| shape[a] != 1).collect();
    let renum = |a: usize| keep.iter().position(|&k| k == a);
    let perm1: Vec<usize> = perm.iter().filter_map(|&p| renum(p)).collect();
    let shape1: Vec<usize> = keep.iter().map(|&a| shape[a]).collect();
    // Group runs p, p+1, … that are consecutive in perm1.
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for &p in &perm1 {
        match groups.last_mut() {
            Some(g) if g.last().is_some_and(|&l| l + 1 == p) => g.push(p),
            _ => groups.push(vec![p]),
        }
    }
    // Input order of groups gives the new input axes.
    let mut order: Vec<usize> = (0..groups.len()).collect();
    order.sort_by_key(|&g| groups[g][0]);
    let new_shape: Vec<usize> = order
        .iter()
        .map(|&g| groups[g].iter().map(|&a| shape1[a]).product())
        .collect();
    let mut new_perm = vec![0; groups.len()];
    for (new_axis, &g) in order.iter().enumerate() {
        new_perm[g] = new_axis;
    }
    (new_shape, new_perm)
}

/// `out[b][c][r] = x[b][r][c]` for `b < batch`, `x` of `rows × cols` per batch.
fn transpose_2d<T: Element>(x: &[T], batch: usize, rows: usize, cols: usize, out: &mut [T]) {
    let per = rows * cols;
    // Parallel over (batch, column tile) stripes of the output.
    let stripe = TILE * rows;
    let work = |b: usize, ct: usize, dst: &mut [T]| {
        let src = &x[b * per..(b + 1) * per];
        let c0 = ct * TILE;
        let c1 = (c0 + TILE).min(cols);
        for r0 in (0..rows).step_by(TILE) {
            let r1 = (r0 + TILE).min(rows);
            for c in c0..c1 {
                let d = &mut dst[(c - c0) * rows..(c - c0 + 1) * rows];
                for r in r0..r1 {
                    d[r] = src[r * cols + c];
                }
            }
        }
    };
    // Output of one batch is `cols × rows`; a column tile is `TILE` output rows.
    if batch * per < par::MIN_PAR_ELEMS {
        for b in 0..batch {
            let ob = &mut out[b * per..(b + 1) * per];
            for (ct, dst) in ob.chunks_mut(stripe).enumerate() {
                work(b, ct, dst);
            }
        }
        return;
    }
    use rayon::prelude::*;
    out.par_chunks_mut(per).enumerate().for_each(|(b, ob)| {
        ob.par_chunks_mut(stripe)
            .enumerate()
            .for_each(|(ct, dst)| work(b, ct, dst));
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive<T: Element>(x: &[T], shape: &[usize], perm: &[usize]) -> Vec<T> {
        let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
        let st = contiguous_strides(shape);
        let n: usize = shape.iter().product();
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let mut rem = i;
            let mut coord = vec![0; out_shape.len()];
            for a in (0..out_shape.len()).rev() {
                coord[a] = rem % out_shape[a];
                rem /= out_shape[a];
            }
            let src: usize = coord.iter().zip(perm).map(|(&c, &p)| c * st[p]).sum();
            out.push(x[src]);
        }
        out
    }

    #[test]
    fn nchw_to_nhwc_and_back() {
        let shape = [2, 3, 40, 37];
        let x: Vec<f32> = (0..shape.iter().product::<usize>())
            .map(|v| v as f32)
            .collect();
        let mut y = vec![0.0; x.len()];
        transpose(&x, &shape, &[0, 2, 3, 1], &mut y).unwrap();
        assert_eq!(y, naive(&x, &shape, &[0, 2, 3, 1]));
        let mut z = vec![0.0; x.len()];
        transpose(&y, &[2, 40, 37, 3], &[0, 3, 1, 2], &mut z).unwrap();
        assert_eq!(z, x);
    }

    #[test]
    fn reduce_perm_merges_adjacent_axes() {
        assert_eq!(
            reduce_perm(&[1, 3, 4, 5], &[0, 2, 3, 1]),
            (vec![3, 20], vec![1, 0])
        );
        assert_eq!(reduce_perm(&[2, 3, 4], &[0, 1, 2]), (vec![24], vec![0]));
    }

    proptest! {
        #[test]
        fn matches_naive(shape in proptest::collection::vec(1usize..5, 1..6), seed in any::<u64>()) {
            let rank = shape.len();
            let mut perm: Vec<usize> = (0..rank).collect();
            let mut s = seed;
            for i in (1..rank).rev() {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                perm.swap(i, (s >> 33) as usize % (i + 1));
            }
            let n: usize = shape.iter().product();
            let x: Vec<i64> = (0..n as i64).collect();
            let mut out = vec![0; n];
            transpose(&x, &shape, &perm, &mut out).unwrap();
            prop_assert_eq!(out, naive(&x, &shape, &perm));
        }
    }
}
