//! Data-movement kernels, generic over the element type.
//!
//! Every kernel writes a contiguous output; the caller allocates it with the shape the IR's
//! shape inference gives.

mod concat;
mod depth_space;
mod expand;
mod gather;
mod pad;
mod slice;
mod transpose;
mod where_;

pub use concat::{concat, split};
pub use depth_space::{depth_to_space, space_to_depth};
pub use expand::{expand, tile};
pub use gather::{gather, gather_indices};
pub use pad::pad;
pub use slice::slice;
pub use transpose::transpose;
pub use where_::where_select;

use crate::error::{check_len, Result};
use crate::shape::{numel, Strided};
use crate::{par, Element};

/// Reshape: the elements are copied unchanged (the runtime avoids the copy when it can).
pub fn reshape<T: Element>(x: &[T], out: &mut [T]) -> Result<()> {
    check_len("Reshape", "output", out.len(), x.len())?;
    copy(x, out);
    Ok(())
}

/// Copies `x` into `out` (same length), in parallel when large.
pub fn copy<T: Element>(x: &[T], out: &mut [T]) {
    par::for_rows(out, 1, par::MIN_PAR_ELEMS * 4, |start, chunk| {
        chunk.copy_from_slice(&x[start..start + chunk.len()]);
    });
}

/// Fills the contiguous `out` from `src` walked by a one-operand [`Strided`] iteration.
///
/// The offsets the iteration produces must stay inside `src`; callers derive them from shapes
/// they checked.
pub(crate) fn strided_copy<T: Element>(src: &[T], it: &Strided<1>, out: &mut [T]) {
    let inner = it.inner;
    if out.is_empty() {
        return;
    }
    let step = it.inner_steps[0];
    par::for_rows(out, inner, par::MIN_PAR_ELEMS, |row0, chunk| {
        let rows = chunk.len() / inner;
        it.for_rows(row0, row0 + rows, |r, [off]| {
            let dst = &mut chunk[(r - row0) * inner..(r - row0 + 1) * inner];
            let off = off as usize;
            match step {
                1 => dst.copy_from_slice(&src[off..off + inner]),
                0 => dst.fill(src[off]),
                _ => {
                    for (i, d) in dst.iter_mut().enumerate() {
                        *d = src[(off as isize + i as isize * step) as usize];
                    }
                }
            }
        });
    });
}

/// Checks the input and output buffer lengths of a one-input kernel.
pub(crate) fn check_io(
    op: &'static str,
    x_len: usize,
    x_shape: &[usize],
    out_len: usize,
    out_numel: usize,
) -> Result<()> {
    check_len(op, "input", x_len, numel(x_shape))?;
    check_len(op, "output", out_len, out_numel)
}
