//! Measuring calibration speed and memory, for `cargo xtask` and docs/calibration.md.
//!
//! [`memory_scaling`] runs [`collect`] on a few samples, then on many, in this process, and
//! reports the peak resident set size (Linux `VmHWM`) of each run; the peak is reset between
//! the runs (`/proc/self/clear_refs`), so the second figure is the larger of what the
//! second run needed and what the allocator kept from the first. With streaming statistics
//! the ratio stays near 1 whatever the number of samples; the requirement for
//! `memory_saving` is a ratio of at most 1.2 between 1,000 and 10 images. The numbers are
//! cleanest in separate processes (`examples/calibrate.rs` prints them).

use crate::error::Result;
use crate::stats::{collect, CalibrationStats, CollectOptions};
use ipukit_ir::Graph;
use ipukit_runtime::Value;
use std::time::Instant;

fn status_kib(key: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// This process's peak resident set size in KiB (`VmHWM`), where the system reports it.
pub fn peak_rss_kib() -> Option<u64> {
    status_kib("VmHWM:")
}

/// This process's resident set size in KiB (`VmRSS`), where the system reports it.
pub fn current_rss_kib() -> Option<u64> {
    status_kib("VmRSS:")
}

/// Resets the peak resident set size to the current one (Linux: `5` into
/// `/proc/self/clear_refs`); false where that is not possible.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// One measured calibration run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunMeasurement {
    /// Samples run.
    pub samples: usize,
    /// Wall time in seconds.
    pub seconds: f64,
    /// Peak resident set size during the run, KiB (0 if unknown).
    pub peak_rss_kib: u64,
}

impl RunMeasurement {
    /// Samples per second.
    pub fn rate(&self) -> f64 {
        self.samples as f64 / self.seconds.max(1e-9)
    }
}

/// Two runs of different lengths.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MemoryScaling {
    /// The short run.
    pub small: RunMeasurement,
    /// The long run.
    pub large: RunMeasurement,
}

impl MemoryScaling {
    /// Peak RSS of the long run over the short one's.
    pub fn ratio(&self) -> f64 {
        self.large.peak_rss_kib as f64 / (self.small.peak_rss_kib.max(1)) as f64
    }
}

/// Runs [`collect`] on samples `0..n` made by `sample` and measures it (the peak RSS is reset
/// first where possible).
pub fn measure(
    graph: &Graph,
    sample: &(dyn Fn(usize) -> Result<Vec<Value>> + Sync),
    n: usize,
    opts: &CollectOptions,
) -> Result<(CalibrationStats, RunMeasurement)> {
    reset_peak_rss();
    let start = Instant::now();
    let stats = collect(graph, (0..n).map(sample), opts, &|_| {})?;
    let seconds = start.elapsed().as_secs_f64();
    Ok((
        stats,
        RunMeasurement {
            samples: n,
            seconds,
            peak_rss_kib: peak_rss_kib().unwrap_or(0),
        },
    ))
}

/// Measures a run of `small` samples, then one of `large` samples, with the same options.
pub fn memory_scaling(
    graph: &Graph,
    sample: &(dyn Fn(usize) -> Result<Vec<Value>> + Sync),
    small: usize,
    large: usize,
    opts: &CollectOptions,
) -> Result<MemoryScaling> {
    let (_, s) = measure(graph, sample, small, opts)?;
    let (_, l) = measure(graph, sample, large, opts)?;
    Ok(MemoryScaling { small: s, large: l })
}
