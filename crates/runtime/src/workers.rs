//! The thread pool an inference runs on, and keeping its workers awake for one inference.
//!
//! A quantized model is a long chain of short steps; most are too small to split, a few are
//! large enough to run on every thread. Between two parallel steps rayon's idle workers go to
//! sleep after a few dozen yields, and waking them again costs tens of microseconds — more
//! than a whole small step (measured on PP-LCNet: a 1×1 convolution took 115 µs on two
//! threads after a run of serial steps and 37 µs with its worker awake). So for the length
//! of one inference the other workers spin, looking for work, like ONNX Runtime's
//! intra-op pool does by default.

use crate::error::{Result, RuntimeError};
use rayon::{ThreadPool, ThreadPoolBuilder, Yield};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Builds a pool of `threads` threads (all available cores when `None`) whose threads are
/// named `<prefix>-<index>`, and returns it with its size.
pub fn thread_pool(threads: Option<usize>, prefix: &str) -> Result<(ThreadPool, usize)> {
    let threads = threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let prefix = prefix.to_owned();
    let pool = ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(move |i| format!("{prefix}-{i}"))
        .build()
        .map_err(|e| RuntimeError::ThreadPool {
            threads,
            reason: e.to_string(),
        })?;
    Ok((pool, threads))
}

/// Runs `f` on `pool` while the pool's other workers stay awake: they run whatever work `f`
/// splits off and spin between pieces instead of sleeping. They go back to rayon's usual
/// idling when `f` returns. On a one-thread pool this is `pool.install(f)`.
///
/// Every worker is woken at once, together with the one that takes `f`, and waits for `f` to
/// start: waking the one for `f` first and letting it wake the others would put two wake-ups
/// of tens of microseconds in a row at the start of every inference.
pub fn install_awake<R: Send>(pool: &ThreadPool, f: impl FnOnce() -> R + Send) -> R {
    let others = pool.current_num_threads().saturating_sub(1);
    if others == 0 {
        return pool.install(f);
    }
    let started = Arc::new(AtomicBool::new(false));
    let waiting = started.clone();
    pool.spawn_broadcast(move |_| wait_for_start(&waiting));
    pool.install(|| {
        started.store(true, Ordering::Release);
        let done = AtomicBool::new(false);
        let owner = rayon::current_thread_index();
        rayon::scope(|s| {
            // The oldest jobs of the scope: an idle worker steals a keeper before any piece
            // of `f`, so no keeper starts beneath a piece it would then block.
            for _ in 0..others {
                s.spawn(|_| stay_awake(&done, owner));
            }
            // Set on return and on unwinding alike: a panic in `f` must reach the caller, not
            // leave the scope waiting for keepers that never stop.
            let _stop = StopOnDrop(&done);
            f()
        })
    })
}

/// Spins (running pool work, `f` itself included) until the inference has started. Safe
/// wherever it runs: no work of the inference exists before it starts, so it cannot sit
/// beneath a piece of it.
fn wait_for_start(started: &AtomicBool) {
    while !started.load(Ordering::Acquire) {
        if rayon::yield_now() != Some(Yield::Executed) {
            std::hint::spin_loop();
        }
    }
}

/// Sets its flag when dropped.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Runs pending pool work until `done`. A keeper that lands on the thread running the
/// inference (`owner`, which may pick it up while waiting on a stolen job) returns at once:
/// spinning there would block the inference beneath it forever.
fn stay_awake(done: &AtomicBool, owner: Option<usize>) {
    if rayon::current_thread_index() == owner {
        return;
    }
    while !done.load(Ordering::Acquire) {
        if rayon::yield_now() != Some(Yield::Executed) {
            std::hint::spin_loop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;

    #[test]
    fn parallel_work_inside_is_complete_and_the_call_returns() {
        for threads in [1, 2, 3] {
            let (pool, n) = thread_pool(Some(threads), "test").unwrap();
            assert_eq!(n, threads);
            let sum = install_awake(&pool, || {
                // Many small parallel steps separated by serial ones, like an inference.
                (0..200u64)
                    .map(|step| (0..1000u64).into_par_iter().map(|i| i * step).sum::<u64>())
                    .sum::<u64>()
            });
            assert_eq!(sum, 499_500 * 19_900);
        }
    }

    #[test]
    fn a_panic_inside_reaches_the_caller() {
        let (pool, _) = thread_pool(Some(2), "test").unwrap();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            install_awake(&pool, || panic!("inside"))
        }));
        assert!(caught.is_err());
        // The pool still works afterwards.
        assert_eq!(install_awake(&pool, || 7), 7);
    }

    #[test]
    fn a_keeper_on_the_inference_thread_returns_at_once() {
        let (pool, _) = thread_pool(Some(2), "test").unwrap();
        let done = AtomicBool::new(false);
        // Without the owner check this spins forever: `done` is never set.
        pool.install(|| stay_awake(&done, rayon::current_thread_index()));
    }

    /// Many inferences in a row, each with nested parallel splits (the pieces themselves
    /// split again, so a worker waits inside a stolen piece): the call always returns.
    #[test]
    fn back_to_back_inferences_with_nested_splits_all_complete() {
        for threads in [2, 3] {
            let (pool, _) = thread_pool(Some(threads), "test").unwrap();
            for round in 0..300u64 {
                let sum = install_awake(&pool, || {
                    (0..64usize)
                        .into_par_iter()
                        .with_max_len(1)
                        .map(|i| {
                            (0..64usize)
                                .into_par_iter()
                                .with_max_len(1)
                                .map(|j| (i * j) as u64 + round)
                                .sum::<u64>()
                        })
                        .sum::<u64>()
                });
                assert_eq!(sum, 2016 * 2016 + 64 * 64 * round);
            }
        }
    }
}
