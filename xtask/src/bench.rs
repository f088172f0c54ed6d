//! `cargo xtask bench-peers`: ipukit's float inference against ONNX Runtime on the same input.
//!
//! For each model, the first evaluation image is preprocessed once; then for each thread count
//! both runtimes run `warmup` + `runs` inferences in their own process: ONNX Runtime through
//! xtask/py/bench_ort.py, ipukit through `xtask bench-child` (this binary), which loads the
//! float.sim `cargo xtask e2e`-style conversion wrote. Each prints its median latency and its
//! process's peak resident set size, so the memory figures are per run, not for xtask.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;

use crate::models;
use crate::util::{self, rel};
use crate::{e2e, ipk, py};

/// Options of the subcommand.
pub struct Options {
    /// Fixtures to benchmark (empty: the default set).
    pub models: Vec<String>,
    /// Every fixture.
    pub all: bool,
    /// Thread counts.
    pub threads: Vec<usize>,
    /// Untimed runs first.
    pub warmup: usize,
    /// Timed runs.
    pub runs: usize,
}

/// The models benchmarked by default.
const DEFAULT_MODELS: [&str; 2] = ["orinet", "yolov8n_nudenet"];

#[derive(Deserialize)]
struct Timing {
    median_ms: f64,
    mean_ms: f64,
    max_rss_kb: u64,
}

/// Runs the comparison and prints a table.
pub fn run(opts: &Options) -> Result<()> {
    let python = py::venv()?;
    let names: Vec<String> = if opts.all {
        vec![]
    } else if opts.models.is_empty() {
        DEFAULT_MODELS.iter().map(|s| s.to_string()).collect()
    } else {
        opts.models.clone()
    };
    let fixtures = models::load_all(&names)?;
    let exe = std::env::current_exe().context("cannot find xtask's own executable")?;
    let mut rows = vec![];
    for f in &fixtures {
        let dir = util::cache_dir().join("bench").join(&f.toml.name);
        fs::create_dir_all(&dir)?;
        let onnx = f.onnx_path()?;
        let items = e2e::eval_images(&python, f, &dir.join("images"))?;
        let first = items
            .first()
            .ok_or_else(|| anyhow!("{} has no [[eval]] image", f.toml.name))?;
        let input = dir.join("input.npy");
        e2e::preprocess(&python, f, &[(first.path.clone(), input.clone())])?;
        let sim = dir.join(format!("{}_float.sim", f.toml.name));
        let t = Instant::now();
        ipk::convert(f, &sim)?;
        println!(
            "bench: {}: input {} ({}), float.sim written in {:.2} s",
            f.toml.name,
            first.id,
            rel(&input),
            t.elapsed().as_secs_f64()
        );
        for &threads in &opts.threads {
            let mut cmd = py::script(&python, "bench_ort.py");
            cmd.arg(&onnx)
                .arg("--input")
                .arg(&input)
                .args(["--threads", &threads.to_string()])
                .args(["--warmup", &opts.warmup.to_string()])
                .args(["--runs", &opts.runs.to_string()])
                .arg("--model-dir")
                .arg(&f.dir);
            let ort: Timing = parse_last_json(&py::run(cmd)?)?;
            let mut child = Command::new(&exe);
            child
                .arg("bench-child")
                .arg("--sim")
                .arg(&sim)
                .arg("--input")
                .arg(&input)
                .args(["--threads", &threads.to_string()])
                .args(["--warmup", &opts.warmup.to_string()])
                .args(["--runs", &opts.runs.to_string()]);
            let (ok, out, err) = util::run_capture(&mut child)?;
            if !ok {
                bail!("ipukit benchmark of {} failed: {}", f.toml.name, err.trim());
            }
            let ipk: Timing = parse_last_json(&out)?;
            println!(
                "bench: {} threads={threads}: ipukit {:.2} ms, ONNX Runtime {:.2} ms",
                f.toml.name, ipk.median_ms, ort.median_ms
            );
            rows.push((f.toml.name.clone(), threads, ipk, ort));
        }
    }
    println!(
        "\n{:<16} {:>7} {:>12} {:>12} {:>9} {:>12} {:>12}",
        "model", "threads", "ipukit ms", "ORT ms", "ratio", "ipukit MiB", "ORT MiB"
    );
    for (m, t, i, o) in &rows {
        println!(
            "{:<16} {:>7} {:>12.2} {:>12.2} {:>8.2}x {:>12.1} {:>12.1}",
            m,
            t,
            i.median_ms,
            o.median_ms,
            i.median_ms / o.median_ms,
            i.max_rss_kb as f64 / 1024.0,
            o.max_rss_kb as f64 / 1024.0
        );
    }
    println!(
        "\n(median of {} runs after {} warm-up runs; ratio = ipukit / ONNX Runtime, below 1 is faster; \
         MiB = peak resident set of each process; means: {})",
        opts.runs,
        opts.warmup,
        rows.iter()
            .map(|(m, t, i, o)| format!("{m}/{t}t {:.2} vs {:.2}", i.mean_ms, o.mean_ms))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

fn parse_last_json(out: &str) -> Result<Timing> {
    let line = out
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .ok_or_else(|| anyhow!("no JSON in the benchmark's output: {out}"))?;
    Ok(serde_json::from_str(line)?)
}

/// `xtask bench-child`: loads a float.sim, times it, prints JSON (one line).
pub fn child(sim: &Path, input: &Path, threads: usize, warmup: usize, runs: usize) -> Result<()> {
    if runs == 0 {
        bail!("--runs must be at least 1");
    }
    let (graph, _) = ipukit_simfmt::read_sim_file(sim)
        .map_err(|e| anyhow!("cannot read {}: {e}", sim.display()))?;
    let mut session = ipk::session(graph, threads)?;
    let inputs = ipk::read_inputs(&[input])?;
    for _ in 0..warmup {
        ipk::run(&mut session, inputs.clone())?;
    }
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        let out = ipk::run(&mut session, inputs.clone())?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
        drop(out);
    }
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    times.sort_by(f64::total_cmp);
    let n = times.len();
    let median = if n % 2 == 1 {
        times[n / 2]
    } else {
        (times[n / 2 - 1] + times[n / 2]) / 2.0
    };
    println!(
        "{}",
        serde_json::json!({
            "median_ms": median,
            "mean_ms": mean,
            "min_ms": times[0],
            "max_ms": times[n - 1],
            "runs": runs,
            "warmup": warmup,
            "threads": threads,
            "max_rss_kb": peak_rss_kb()?,
        })
    );
    Ok(())
}

/// This process's peak resident set size (VmHWM of /proc/self/status), in kB.
fn peak_rss_kb() -> Result<u64> {
    let status =
        fs::read_to_string("/proc/self/status").context("cannot read /proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow!("no VmHWM in /proc/self/status"))
}
