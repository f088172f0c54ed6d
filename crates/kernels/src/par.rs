//! Parallel helpers on the current rayon pool.

use rayon::prelude::*;

/// Below this many output elements a memory-bound kernel runs on one thread.
///
/// This and the kernels' other thresholds assume the pool's other workers are awake, as
/// `ipukit_runtime` keeps them during an inference: splitting then costs about a microsecond.
/// Waking a sleeping worker costs tens, and the thresholds were 4 to 16 times higher before
/// (PP-LCNet on two threads: 1.72 → 1.40 ms per inference with these).
pub(crate) const MIN_PAR_ELEMS: usize = 1 << 13;

/// Splits `out` into chunks of whole rows of `row_len` elements and calls `f(first_row, chunk)`
/// on each, in parallel when `out` has at least `min_elems` elements and the pool has more than
/// one thread.
pub(crate) fn for_rows<T: Send>(
    out: &mut [T],
    row_len: usize,
    min_elems: usize,
    f: impl Fn(usize, &mut [T]) + Sync,
) {
    if out.is_empty() || row_len == 0 {
        return;
    }
    let rows = out.len() / row_len;
    let threads = rayon::current_num_threads();
    if threads <= 1 || out.len() < min_elems || rows < 2 {
        f(0, out);
        return;
    }
    // A few chunks per thread for balance, but not so many that the overhead shows.
    let chunks = (threads * 4).min(rows);
    let rows_per_chunk = rows.div_ceil(chunks);
    out.par_chunks_mut(rows_per_chunk * row_len)
        .enumerate()
        .for_each(|(i, c)| f(i * rows_per_chunk, c));
}
