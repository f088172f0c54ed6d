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
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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
/// Every worker is woken at once, together with the one that takes `f`: waking the one for
/// `f` first and letting it wake the others would put two wake-ups of tens of microseconds
/// in a row at the start of every inference.
pub fn install_awake<R: Send>(pool: &ThreadPool, f: impl FnOnce() -> R + Send) -> R {
    if pool.current_num_threads() <= 1 {
        return pool.install(f);
    }
    let keep = Arc::new(Keep {
        done: AtomicBool::new(false),
        owner: AtomicUsize::new(usize::MAX),
    });
    let keepers = keep.clone();
    pool.spawn_broadcast(move |ctx| keepers.stay_awake(ctx.index()));
    pool.install(|| {
        // Set on return and on unwinding alike: a panic in `f` must reach the caller and
        // release the keepers.
        let _stop = StopOnDrop(&keep.done);
        if let Some(i) = rayon::current_thread_index() {
            keep.owner.store(i, Ordering::Release);
        }
        f()
    })
}

/// What the keepers of one inference share.
struct Keep {
    /// The inference has returned.
    done: AtomicBool,
    /// The worker running the inference (`usize::MAX` until it starts).
    owner: AtomicUsize,
}

impl Keep {
    /// Runs pending pool work until `done`. The keeper of the worker running the inference
    /// returns at once when it starts there while the inference waits on a stolen job:
    /// spinning there would block the inference beneath it forever. (One that starts there
    /// first is fine: the inference then runs beneath it, from its `yield_now`.)
    fn stay_awake(&self, me: usize) {
        while !self.done.load(Ordering::Acquire) {
            if self.owner.load(Ordering::Acquire) == me {
                return;
            }
            if rayon::yield_now() != Some(Yield::Executed) {
                std::hint::spin_loop();
            }
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
        let keep = Keep {
            done: AtomicBool::new(false),
            owner: AtomicUsize::new(usize::MAX),
        };
        // Without the owner check this spins forever: `done` is never set.
        pool.install(|| {
            let me = rayon::current_thread_index().unwrap();
            keep.owner.store(me, Ordering::Release);
            keep.stay_awake(me);
        });
    }

    #[test]
    fn back_to_back_inferences_on_one_pool_all_complete() {
        let (pool, _) = thread_pool(Some(2), "test").unwrap();
        for round in 0..500u64 {
            let sum = install_awake(&pool, || {
                (0..64u64).into_par_iter().map(|i| i + round).sum::<u64>()
            });
            assert_eq!(sum, 2016 + 64 * round);
        }
    }
}
