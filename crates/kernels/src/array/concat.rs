//! Concat and Split.

use crate::error::{check_len, invalid, Result};
use crate::shape::numel;
use crate::{par, Element};

/// Concatenates `inputs` (each `(data, shape)`) along `axis` into `out`.
pub fn concat<T: Element>(inputs: &[(&[T], &[usize])], axis: usize, out: &mut [T]) -> Result<()> {
    const OP: &str = "Concat";
    let Some(&(_, first)) = inputs.first() else {
        return Err(invalid(OP, "no inputs"));
    };
    if axis >= first.len() {
        return Err(invalid(
            OP,
            format!("axis {axis} out of range for {first:?}"),
        ));
    }
    let mut out_axis = 0;
    for &(d, s) in inputs {
        let same_rest = s.len() == first.len()
            && s.iter()
                .zip(first)
                .enumerate()
                .all(|(i, (a, b))| i == axis || a == b);
        if !same_rest {
            return Err(invalid(OP, format!("input {s:?} does not match {first:?}")));
        }
        check_len(OP, "input", d.len(), numel(s))?;
        out_axis += s[axis];
    }
    let outer: usize = first[..axis].iter().product();
    let inner: usize = first[axis + 1..].iter().product();
    let out_block = out_axis * inner;
    check_len(OP, "output", out.len(), outer * out_block)?;
    par::for_rows(out, out_block, par::MIN_PAR_ELEMS, |o0, chunk| {
        for (r, dst) in chunk.chunks_exact_mut(out_block).enumerate() {
            let o = o0 + r;
            let mut at = 0;
            for &(d, s) in inputs {
                let b = s[axis] * inner;
                dst[at..at + b].copy_from_slice(&d[o * b..(o + 1) * b]);
                at += b;
            }
        }
    });
    Ok(())
}

/// Splits `x` along `axis` into `outputs`, whose lengths along `axis` are `sizes`.
pub fn split<T: Element>(
    x: &[T],
    x_shape: &[usize],
    axis: usize,
    sizes: &[usize],
    outputs: &mut [&mut [T]],
) -> Result<()> {
    const OP: &str = "Split";
    if axis >= x_shape.len() || sizes.iter().sum::<usize>() != x_shape[axis] {
        return Err(invalid(
            OP,
            format!("sizes {sizes:?} along axis {axis} do not split {x_shape:?}"),
        ));
    }
    if outputs.len() != sizes.len() {
        return Err(invalid(
            OP,
            format!("{} outputs for {} sizes", outputs.len(), sizes.len()),
        ));
    }
    check_len(OP, "input", x.len(), numel(x_shape))?;
    let outer: usize = x_shape[..axis].iter().product();
    let inner: usize = x_shape[axis + 1..].iter().product();
    let in_block = x_shape[axis] * inner;
    let mut at = 0;
    for (o, &n) in outputs.iter_mut().zip(sizes) {
        let b = n * inner;
        check_len(OP, "output", o.len(), outer * b)?;
        if b > 0 {
            par::for_rows(o, b, par::MIN_PAR_ELEMS, |r0, chunk| {
                for (r, dst) in chunk.chunks_exact_mut(b).enumerate() {
                    let src = (r0 + r) * in_block + at;
                    dst.copy_from_slice(&x[src..src + b]);
                }
            });
        }
        at += b;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concat_then_split_round_trips() {
        let a: Vec<i64> = (0..12).collect();
        let b: Vec<i64> = (100..108).collect();
        let mut out = vec![0; 20];
        concat(&[(&a, &[2, 3, 2]), (&b, &[2, 2, 2])], 1, &mut out).unwrap();
        assert_eq!(
            out,
            vec![0, 1, 2, 3, 4, 5, 100, 101, 102, 103, 6, 7, 8, 9, 10, 11, 104, 105, 106, 107]
        );
        let mut a2 = vec![0; 12];
        let mut b2 = vec![0; 8];
        split(&out, &[2, 5, 2], 1, &[3, 2], &mut [&mut a2, &mut b2]).unwrap();
        assert_eq!((a2, b2), (a, b));
    }

    #[test]
    fn concat_rejects_mismatch() {
        let a = [0f32; 4];
        let mut out = [0f32; 8];
        assert!(concat(&[(&a, &[2, 2]), (&a, &[4, 1])], 0, &mut out).is_err());
    }
}
