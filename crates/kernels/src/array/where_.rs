//! Where (select with broadcasting).

use crate::error::{check_len, Result};
use crate::shape::{broadcast_all, broadcast_strides, numel, Strided};
use crate::{par, Element};

/// `out = cond ? a : b` with numpy broadcasting of the three inputs.
pub fn where_select<T: Element>(
    cond: (&[bool], &[usize]),
    a: (&[T], &[usize]),
    b: (&[T], &[usize]),
    out: &mut [T],
) -> Result<()> {
    const OP: &str = "Where";
    let shape = broadcast_all(OP, &[cond.1, a.1, b.1])?;
    check_len(OP, "condition", cond.0.len(), numel(cond.1))?;
    check_len(OP, "first input", a.0.len(), numel(a.1))?;
    check_len(OP, "second input", b.0.len(), numel(b.1))?;
    check_len(OP, "output", out.len(), numel(&shape))?;
    if out.is_empty() {
        return Ok(());
    }
    let sc = broadcast_strides(cond.1, &shape);
    let sa = broadcast_strides(a.1, &shape);
    let sb = broadcast_strides(b.1, &shape);
    let it = Strided::new(&shape, [&sc, &sa, &sb], [0, 0, 0]);
    let inner = it.inner;
    let [stc, sta, stb] = it.inner_steps;
    par::for_rows(out, inner, par::MIN_PAR_ELEMS, |r0, chunk| {
        it.for_rows(r0, r0 + chunk.len() / inner, |r, [oc, oa, ob]| {
            let dst = &mut chunk[(r - r0) * inner..(r - r0 + 1) * inner];
            for (i, d) in dst.iter_mut().enumerate() {
                let i = i as isize;
                *d = if cond.0[(oc + i * stc) as usize] {
                    a.0[(oa + i * sta) as usize]
                } else {
                    b.0[(ob + i * stb) as usize]
                };
            }
        });
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasts_all_three() {
        let c = [true, false];
        let a = [1.0f32, 2.0, 3.0];
        let b = [-1.0f32];
        let mut out = [0.0; 6];
        where_select((&c, &[2, 1]), (&a, &[3]), (&b, &[]), &mut out).unwrap();
        assert_eq!(out, [1.0, 2.0, 3.0, -1.0, -1.0, -1.0]);
    }
}
