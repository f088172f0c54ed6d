//! Strided slice (negative steps walk backwards).

use super::{check_io, strided_copy};
use crate::error::{invalid, Result};
use crate::shape::{contiguous_strides, Strided};
use crate::Element;
use ipukit_ir::ops::SliceAxis;

/// Takes `axes[i]` of every axis of `x` (one entry per axis).
pub fn slice<T: Element>(
    x: &[T],
    x_shape: &[usize],
    axes: &[SliceAxis],
    out: &mut [T],
) -> Result<()> {
    const OP: &str = "Slice";
    if axes.len() != x_shape.len() {
        return Err(invalid(
            OP,
            format!("{} axes for input {x_shape:?}", axes.len()),
        ));
    }
    for (a, &d) in axes.iter().zip(x_shape) {
        let last = a.start as i64 + (a.len as i64 - 1) * a.step;
        if a.step == 0 || (a.len > 0 && (a.start >= d || last < 0 || last >= d as i64)) {
            return Err(invalid(
                OP,
                format!("{a:?} is out of range for axis length {d}"),
            ));
        }
    }
    let out_shape: Vec<usize> = axes.iter().map(|a| a.len).collect();
    check_io(OP, x.len(), x_shape, out.len(), out_shape.iter().product())?;
    if out.is_empty() {
        return Ok(());
    }
    let st = contiguous_strides(x_shape);
    let strides: Vec<isize> = st
        .iter()
        .zip(axes)
        .map(|(&s, a)| s as isize * a.step as isize)
        .collect();
    let base: isize = st
        .iter()
        .zip(axes)
        .map(|(&s, a)| (s * a.start) as isize)
        .sum();
    let it = Strided::new(&out_shape, [&strides], [base]);
    strided_copy(x, &it, out);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipukit_ir::ops::Slice;

    #[test]
    fn reverse_and_step() {
        let x: Vec<i32> = (0..12).collect(); // [3, 4]
        let a0 = Slice::axis_from_range(-1, i64::MIN, -1, 3).unwrap();
        let a1 = Slice::axis_from_range(0, 4, 2, 4).unwrap();
        let mut out = vec![0; 6];
        slice(&x, &[3, 4], &[a0, a1], &mut out).unwrap();
        assert_eq!(out, vec![8, 10, 4, 6, 0, 2]);
    }

    #[test]
    fn out_of_range_is_an_error() {
        let x = [0u8; 4];
        let bad = SliceAxis {
            start: 3,
            step: 1,
            len: 2,
        };
        let mut out = [0u8; 2];
        assert!(slice(&x, &[4], &[bad], &mut out).is_err());
    }
}
