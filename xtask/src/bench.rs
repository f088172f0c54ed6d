//! `cargo xtask bench-peers`: ipukit against ONNX Runtime on the same models and inputs, in
//! three sections (`--section`, all by default):
//!
//! * **float** — for each model, the first evaluation image is preprocessed once; then for
//!   each thread count both runtimes run `warmup` + `runs` inferences in their own process:
//!   ONNX Runtime through xtask/py/bench_ort.py, ipukit through `xtask bench-child` (this
//!   binary), which loads the float.sim `cargo xtask e2e`-style conversion wrote. Each prints
//!   its median latency and its process's peak resident set size, so the memory figures are
//!   per run, not for xtask.
//! * **quant** — ipukit's calibrator (L1, L5) against ONNX Runtime's `quantize_static` (QDQ,
//!   MinMax / Entropy / Percentile): calibration time, accuracy against float, int8 latency
//!   (bench_quant.rs).
//! * **memory** — the calibrator's peak resident set on 10 and on 1,000 images, with and
//!   without `--memory_saving` (bench_quant.rs).
//!
//! The acceptance checks of the quant and memory sections are printed at the end (`--strict`
//! makes a failed one an error).

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use ipukit_ir::DType;
use serde::Deserialize;

use crate::bench_quant::{self, MemoryOptions, QuantOptions, Verdict};
use crate::models::{self, Fixture};
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
    /// Sections to run: `float`, `quant`, `memory`.
    pub sections: Vec<String>,
    /// Threads (workers) both tools calibrate with.
    pub calib_threads: usize,
    /// Repetitions of the timed parts of the quant section.
    pub rounds: usize,
    /// Calibration images of the memory section's small and large runs.
    pub memory_images: (usize, usize),
    /// Fail when an acceptance check fails.
    pub strict: bool,
}

/// The sections of the benchmark.
pub const SECTIONS: [&str; 3] = ["float", "quant", "memory"];

/// The models benchmarked by default.
const DEFAULT_MODELS: [&str; 2] = ["orinet", "yolov8n_nudenet"];

#[derive(Deserialize)]
struct Timing {
    median_ms: f64,
    mean_ms: f64,
    max_rss_kb: u64,
}

/// Runs the sections asked for and prints their tables and the acceptance checks.
pub fn run(opts: &Options) -> Result<()> {
    for s in &opts.sections {
        if !SECTIONS.contains(&s.as_str()) {
            bail!("unknown --section {s:?}: one of {}", SECTIONS.join(", "));
        }
    }
    let python = py::venv()?;
    let names: Vec<String> = if opts.all {
        vec![]
    } else if opts.models.is_empty() {
        DEFAULT_MODELS.iter().map(|s| s.to_string()).collect()
    } else {
        opts.models.clone()
    };
    let fixtures = models::load_all(&names)?;
    let has = |s: &str| opts.sections.iter().any(|x| x == s);
    println!(
        "bench: {} on {} ({} cores), load average {}",
        opts.sections.join(", "),
        cpu_name(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        fs::read_to_string("/proc/loadavg")
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|_| "?".into())
    );
    if has("float") {
        run_float(&python, &fixtures, opts)?;
    }
    let mut verdicts = vec![];
    if has("quant") {
        let qopts = QuantOptions {
            threads: opts.threads.clone(),
            calib_threads: opts.calib_threads,
            warmup: opts.warmup,
            runs: opts.runs,
            rounds: opts.rounds,
        };
        let (reports, failed) = each_fixture(&fixtures, "quant", |f| {
            bench_quant::run_quant(&python, f, &qopts)
        });
        verdicts.extend(bench_quant::print_quant(&reports, &qopts));
        verdicts.extend(failed);
    }
    if has("memory") {
        let mopts = MemoryOptions {
            small: opts.memory_images.0,
            large: opts.memory_images.1,
            calib_threads: opts.calib_threads,
        };
        let (reports, failed) = each_fixture(&fixtures, "memory", |f| {
            bench_quant::run_memory(&python, f, &mopts)
        });
        verdicts.extend(bench_quant::print_memory(&reports));
        verdicts.extend(failed);
    }
    if !verdicts.is_empty() {
        println!("\nAcceptance checks:");
        for v in &verdicts {
            println!(
                "  {} {}: {}",
                if v.pass { "PASS" } else { "FAIL" },
                v.what,
                v.detail
            );
        }
        let failed = verdicts.iter().filter(|v| !v.pass).count();
        println!(
            "bench: {} of {} acceptance checks pass (timings on a shared machine are noisy: \
             repeat with --rounds)",
            verdicts.len() - failed,
            verdicts.len()
        );
        if failed > 0 && opts.strict {
            bail!("{failed} acceptance check(s) failed");
        }
    }
    Ok(())
}

/// Runs a section on every fixture: the reports of those it ran on, and a failed check for
/// each of the others.
fn each_fixture<R>(
    fixtures: &[Fixture],
    section: &str,
    run: impl Fn(&Fixture) -> Result<R>,
) -> (Vec<R>, Vec<Verdict>) {
    let mut reports = vec![];
    let mut failed = vec![];
    for f in fixtures {
        match run(f) {
            Ok(r) => reports.push(r),
            Err(e) => failed.push(could_not_run(f, section, e)),
        }
    }
    (reports, failed)
}

/// A section that could not run on a model: reported, and counted as a failed check.
fn could_not_run(f: &Fixture, section: &str, e: anyhow::Error) -> Verdict {
    println!(
        "bench: {}: the {section} section failed: {e:#}",
        f.toml.name
    );
    Verdict {
        what: format!("{}: the {section} section runs", f.toml.name),
        pass: false,
        detail: format!("{e:#}")
            .lines()
            .last()
            .unwrap_or_default()
            .to_string(),
    }
}

/// The CPU's model name (/proc/cpuinfo).
fn cpu_name() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// The float section: ipukit's float.sim against the ONNX model in ONNX Runtime.
fn run_float(python: &Path, fixtures: &[Fixture], opts: &Options) -> Result<()> {
    let python = python.to_path_buf();
    let exe = std::env::current_exe().context("cannot find xtask's own executable")?;
    let mut rows = vec![];
    for f in fixtures {
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

/// `xtask bench-child`: loads a float.sim or fixed.sim, times it, prints JSON (one line).
///
/// With `profile`, `runs` more inferences run node by node (unfused, with an observer) and the
/// time between consecutive nodes is summed per operator and input type: where the time goes,
/// not the latency itself.
pub fn child(
    sim: &Path,
    input: &Path,
    threads: usize,
    warmup: usize,
    runs: usize,
    profile: bool,
) -> Result<()> {
    if runs == 0 {
        bail!("--runs must be at least 1");
    }
    let (graph, _) = ipukit_simfmt::read_sim_file(sim)
        .map_err(|e| anyhow!("cannot read {}: {e}", sim.display()))?;
    let types: Vec<DType> = graph
        .nodes
        .iter()
        .map(|n| {
            n.inputs
                .first()
                .map_or(DType::F32, |&t| graph.tensor(t).dtype)
        })
        .collect();
    let names: Vec<String> = graph.nodes.iter().map(|n| n.name.clone()).collect();
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
            "max_rss_kb": ipukit_quant::bench::peak_rss_kib()
                .ok_or_else(|| anyhow!("no VmHWM in /proc/self/status"))?,
            "profile": if profile {
                profile_nodes(&mut session, &inputs, &names, &types, runs)?
            } else {
                serde_json::Value::Null
            },
        })
    );
    Ok(())
}

/// Per operator and input type: milliseconds per inference and node count, from `runs`
/// observed (unfused) inferences, the most expensive first.
fn profile_nodes(
    session: &mut ipukit_runtime::Session,
    inputs: &[ipukit_runtime::Value],
    names: &[String],
    types: &[DType],
    runs: usize,
) -> Result<serde_json::Value> {
    let mut per_node: HashMap<String, (String, f64)> = HashMap::new();
    let mut total = 0.0;
    for _ in 0..runs {
        for (i, v) in inputs.iter().enumerate() {
            session
                .set_input(i, v.clone())
                .map_err(|e| anyhow!("{e}"))?;
        }
        let start = Instant::now();
        let mut last = Instant::now();
        let mut last_node = String::new();
        session
            .invoke_with_observer(&mut |node, _, _| {
                if node.name == last_node {
                    return; // another output of the same node
                }
                let now = Instant::now();
                let k = names.iter().position(|n| *n == node.name).unwrap_or(0);
                let key = format!(
                    "{} {}",
                    node.op.name(),
                    types.get(k).map_or("?", |t| t.name())
                );
                per_node.entry(node.name.clone()).or_insert((key, 0.0)).1 +=
                    (now - last).as_secs_f64() * 1e3;
                last = now;
                last_node.clone_from(&node.name);
            })
            .map_err(|e| anyhow!("inference failed: {e}"))?;
        total += start.elapsed().as_secs_f64() * 1e3;
    }
    let mut per_op: HashMap<String, (f64, usize)> = HashMap::new();
    for (key, ms) in per_node.into_values() {
        let e = per_op.entry(key).or_insert((0.0, 0));
        e.0 += ms / runs as f64;
        e.1 += 1;
    }
    let mut rows: Vec<(String, f64, usize)> =
        per_op.into_iter().map(|(k, (ms, n))| (k, ms, n)).collect();
    rows.sort_by(|a, b| b.1.total_cmp(&a.1));
    Ok(serde_json::json!({
        "unfused_ms": total / runs as f64,
        "ops": rows
            .iter()
            .map(|(k, ms, n)| serde_json::json!({"op": k, "ms": ms, "nodes": n}))
            .collect::<Vec<_>>(),
    }))
}
