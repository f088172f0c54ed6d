//! The quantization sections of `cargo xtask bench-peers`: ipukit's calibrator against ONNX
//! Runtime's `quantize_static`, and the calibrator's memory as the calibration set grows.
//!
//! **quant** — for each model, on the fixture's `[[calibration]]` images (the list file
//! ipukit's calibrator gets, read by xtask/py/ort_quant.py too) and its `[[eval]]` images:
//!
//! * ONNX Runtime (ort_quant.py): `quantize_static` in QDQ format, per-channel, activations
//!   QUInt8 and weights QInt8, for MinMax, Entropy and Percentile; its wall time; each model's
//!   outputs against the float ONNX model's on the evaluation images (cosine per output).
//! * ipukit: the calibrator library at L1 and L5 (`xtask bench-calibrate`, its own process, as
//!   `ipu-calibrator -m X_float.sim -i LIST -n preprocess.py --quant_level L --num_process N`);
//!   its wall time; the fixed model (read back from its fixed.sim, uint8 inputs) against the
//!   float.sim (float inputs) and against ONNX Runtime's float outputs, on the same images.
//! * Both calibrate on `--calib-threads` threads (ipukit: that many workers; ONNX Runtime: that
//!   many intra-op threads) and both times include running the fixture's preprocess.py on every
//!   calibration image (ipukit: in its persistent Python workers, including their start;
//!   ONNX Runtime: in-process, in the data reader). Neither includes making the model it
//!   starts from (ipukit: the ONNX → float.sim conversion; ONNX Runtime: `quant_pre_process`,
//!   reported apart) nor the Python interpreter's start and imports of the ORT script.
//! * Latency: the fixed.sim (uint8 NHWC input) in `xtask bench-child` against the MinMax QDQ
//!   model in bench_ort.py (float NCHW input; QDQ models quantize their input themselves), each
//!   in its own process, at each `--threads` count; `--rounds` repeats calibration timing and
//!   latency, interleaving the tools, and reports the median over rounds.
//!
//! **memory** — N distinct images of one size (xtask/py/calib_images.py) calibrated at L1 on
//! the first 10 and on all N (default 1,000), with and without `--memory_saving`, each run in
//! its own `xtask bench-calibrate` process reporting its peak resident set (VmHWM). The
//! preprocess.py workers are separate processes, not counted (one image in flight each).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use ipukit_calibrator::{calibrate, CalibrateOptions, Phase};
use ipukit_quant::calibrate::QuantLevel;
use ipukit_runtime::Value;
use serde::Deserialize;

use crate::e2e::{self, EvalItem};
use crate::models::Fixture;
use crate::util::{self, rel};
use crate::{calib_run, ipk, py};

/// Options of the quantization sections.
pub struct QuantOptions {
    /// Inference thread counts of the latency comparison.
    pub threads: Vec<usize>,
    /// Threads (workers) both tools calibrate with, and evaluate with.
    pub calib_threads: usize,
    /// Untimed runs before timing.
    pub warmup: usize,
    /// Timed runs.
    pub runs: usize,
    /// Repetitions of the timed parts.
    pub rounds: usize,
}

/// Options of the memory section.
pub struct MemoryOptions {
    /// Small and large calibration sets.
    pub small: usize,
    /// Images of the large run.
    pub large: usize,
    /// Calibration workers.
    pub calib_threads: usize,
}

/// ort_quant.py's report.
#[derive(Deserialize)]
struct OrtQuant {
    onnxruntime: String,
    prepare: String,
    prepare_s: f64,
    calibration_images: usize,
    eval_images: usize,
    methods: Vec<OrtMethod>,
}

#[derive(Deserialize)]
struct OrtMethod {
    method: String,
    model: PathBuf,
    seconds: f64,
    preprocess_s: f64,
    mean_cosine: Option<f64>,
    min_cosine: Option<f64>,
}

/// `xtask bench-calibrate`'s report.
#[derive(Deserialize)]
struct CalibRun {
    seconds: f64,
    samples: u64,
    max_rss_kb: u64,
    int16: usize,
    layers: usize,
}

/// bench-child's and bench_ort.py's report (the fields used here).
#[derive(Deserialize)]
struct Timing {
    median_ms: f64,
}

/// Cosines of one ipukit level.
struct LevelResult {
    level: QuantLevel,
    /// Calibration time inside the process, and of the whole process.
    call_s: f64,
    wall_s: f64,
    int16: usize,
    layers: usize,
    /// Mean and minimum against ipukit's float.sim.
    vs_float: (f64, f64),
    /// Mean and minimum against ONNX Runtime's float model.
    vs_ort_float: (f64, f64),
    sim: PathBuf,
}

/// One latency row.
struct Latency {
    threads: usize,
    ort_qdq: Vec<f64>,
    ipukit: Vec<(QuantLevel, Vec<f64>)>,
}

/// Calibration times of the rounds: (inside the process, whole process) each.
#[derive(Default)]
struct CalibTiming {
    ort: Vec<(f64, f64)>,
    ipukit: Vec<(f64, f64)>,
}

/// The quantization comparison of one model.
pub struct QuantReport {
    model: String,
    ort: OrtQuant,
    /// MinMax (ORT) and L1 (ipukit) calibration times of every round.
    timing: CalibTiming,
    levels: Vec<LevelResult>,
    /// Levels ipukit could not calibrate (or run), with the error.
    failures: Vec<(QuantLevel, String)>,
    latency: Vec<Latency>,
    calib_threads: usize,
}

/// The memory measurement of one model.
pub struct MemoryReport {
    model: String,
    /// (memory_saving, small run, large run).
    runs: Vec<(bool, CalibRun, CalibRun)>,
    small: usize,
    large: usize,
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

fn parse_json<T: for<'de> Deserialize<'de>>(out: &str) -> Result<T> {
    let line = out
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .ok_or_else(|| anyhow!("no JSON in the output: {out}"))?;
    Ok(serde_json::from_str(line)?)
}

/// Runs the quantization comparison of one fixture.
pub fn run_quant(python: &Path, f: &Fixture, opts: &QuantOptions) -> Result<QuantReport> {
    let name = &f.toml.name;
    let dir = util::cache_dir().join("bench").join(name).join("quant");
    if dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("cannot clear {}", rel(&dir)))?;
    }
    fs::create_dir_all(&dir)?;
    let exe = std::env::current_exe().context("cannot find xtask's own executable")?;
    let preprocess = f.dir.join("preprocess.py");

    // Images: the fixture's calibration set, and its evaluation images that share no pixel
    // with it (listed again for ort_quant.py).
    let all_items = e2e::eval_images(python, f, &dir.join("images"))?;
    let items = calib_run::fixed_eval_items(&all_items);
    if items.is_empty() {
        bail!(
            "{}/model.toml has no [[eval]] image for the fixed-point comparison",
            rel(&f.dir)
        );
    }
    let eval_listing = dir.join("images/eval_fixed.json");
    let listing: Vec<serde_json::Value> = items
        .iter()
        .map(|it| serde_json::json!({"id": it.id, "path": it.path}))
        .collect();
    util::write_atomic(&eval_listing, serde_json::to_string(&listing)?.as_bytes())?;
    let (list, _) = calib_run::calibration_list(python, f, &dir.join("calibration"))?;

    // Float model and inputs.
    let float_sim = dir.join(format!("{name}_float.sim"));
    let float_graph = ipk::convert(f, &float_sim)?;
    let case = |it: &EvalItem| dir.join("eval").join(&it.id);
    let jobs: Vec<(PathBuf, PathBuf)> = items
        .iter()
        .map(|it| (it.path.clone(), case(it).join("input.npy")))
        .collect();
    e2e::preprocess(python, f, &jobs)?;
    let jobs_u8: Vec<(PathBuf, PathBuf)> = items
        .iter()
        .map(|it| (it.path.clone(), case(it).join("input_u8.npy")))
        .collect();
    e2e::preprocess_norm(python, f, &jobs_u8, false)?;

    // ipukit's float outputs (the reference of its fixed outputs).
    let mut session = ipk::session(float_graph, opts.calib_threads)?;
    let mut float_outs = vec![];
    for it in &items {
        let inputs = ipk::read_inputs(&[&case(it).join("input.npy")])?;
        float_outs.push(ipk::run(&mut session, inputs)?);
    }
    drop(session);

    // Accuracy: ONNX Runtime's three methods, ipukit's two levels, on the same images.
    let ort_dir = dir.join("ort");
    let mut cmd = py::script(python, "ort_quant.py");
    cmd.arg(f.onnx_path()?)
        .arg("--model-dir")
        .arg(&f.dir)
        .arg("--calibration")
        .arg(&list)
        .arg("--eval")
        .arg(&eval_listing)
        .arg("--out-dir")
        .arg(&ort_dir)
        .args(["--threads", &opts.calib_threads.to_string()]);
    let ort: OrtQuant = parse_json(&py::run(cmd)?)?;
    println!(
        "bench: {name}: ONNX Runtime {}",
        ort.methods
            .iter()
            .map(|m| format!(
                "{} {:.2} s (cosine mean {:.6})",
                m.method,
                m.seconds,
                m.mean_cosine.unwrap_or(f64::NAN)
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let minmax = ort
        .methods
        .iter()
        .find(|m| m.method == "MinMax")
        .ok_or_else(|| anyhow!("ort_quant.py gave no MinMax result"))?
        .model
        .clone();
    let prepared = ort_dir.join("prepared.onnx");
    let prepared = if prepared.is_file() {
        prepared
    } else {
        f.onnx_path()?
    };
    let mut levels: Vec<LevelResult> = vec![];
    let mut failures = vec![];
    for level in [QuantLevel::L1, QuantLevel::L5] {
        let lv = level.as_str();
        let sim = dir.join(format!("{name}_fixed_{lv}.sim"));
        let result = calibrate_in_child(
            &exe,
            python,
            &float_sim,
            &list,
            &preprocess,
            &sim,
            level,
            opts.calib_threads,
            false,
        )
        .and_then(|(run, wall)| {
            let cos = evaluate_fixed(&sim, &items, &case, &float_outs, &ort_dir, opts)?;
            Ok((run, wall, cos))
        });
        let (run, wall, (vs_float, vs_ort_float)) = match result {
            Ok(r) => r,
            Err(e) => {
                println!("bench: {name}: ipukit {lv} FAILED: {e:#}");
                failures.push((level, format!("{e:#}")));
                continue;
            }
        };
        println!(
            "bench: {name}: ipukit {lv} {:.2} s ({} samples, {}/{} layers 16-bit), cosine mean {:.6}",
            run.seconds, run.samples, run.int16, run.layers, vs_float.0
        );
        levels.push(LevelResult {
            level,
            call_s: run.seconds,
            wall_s: wall,
            int16: run.int16,
            layers: run.layers,
            vs_float,
            vs_ort_float,
            sim,
        });
    }
    let has_l1 = levels.iter().any(|l| l.level == QuantLevel::L1);

    // Timing rounds: MinMax and L1 calibration, then latency; the order of the tools
    // alternates from round to round.
    let mut timing = CalibTiming::default();
    let mut latency: Vec<Latency> = opts
        .threads
        .iter()
        .map(|&threads| Latency {
            threads,
            ort_qdq: vec![],
            ipukit: vec![],
        })
        .collect();
    let first = &items[0];
    for round in 0..opts.rounds.max(1) {
        for tool in 0..2 {
            if (tool + round) % 2 == 0 {
                let mut cmd = py::script(python, "ort_quant.py");
                cmd.arg(&prepared)
                    .args(["--prepared", "--calibrate-only", "--methods", "MinMax"])
                    .arg("--model-dir")
                    .arg(&f.dir)
                    .arg("--calibration")
                    .arg(&list)
                    .arg("--out-dir")
                    .arg(dir.join("ort-timing"))
                    .args(["--threads", &opts.calib_threads.to_string()]);
                let t = Instant::now();
                let out = py::run(cmd)?;
                let wall = t.elapsed().as_secs_f64();
                let rep: OrtQuant = parse_json(&out)?;
                let call = rep
                    .methods
                    .first()
                    .ok_or_else(|| anyhow!("ort_quant.py gave no result"))?
                    .seconds;
                timing.ort.push((call, wall));
            } else if has_l1 {
                let (run, wall) = calibrate_in_child(
                    &exe,
                    python,
                    &float_sim,
                    &list,
                    &preprocess,
                    &dir.join("timing_fixed_L1.sim"),
                    QuantLevel::L1,
                    opts.calib_threads,
                    false,
                )?;
                timing.ipukit.push((run.seconds, wall));
            }
        }
        let (oc, ow) = timing.ort.last().copied().unwrap_or_default();
        let (ic, iw) = timing.ipukit.last().copied().unwrap_or_default();
        println!(
            "bench: {name} round {}: calibration ORT MinMax {oc:.2} s (process {ow:.2} s), ipukit L1 {ic:.2} s (process {iw:.2} s)",
            round + 1
        );
        for lat in &mut latency {
            let mut ort_ms = None;
            let mut ipk_ms = vec![];
            for tool in 0..2 {
                if (tool + round) % 2 == 0 {
                    let mut cmd = py::script(python, "bench_ort.py");
                    cmd.arg(&minmax)
                        .arg("--input")
                        .arg(case(first).join("input.npy"))
                        .args(["--threads", &lat.threads.to_string()])
                        .args(["--warmup", &opts.warmup.to_string()])
                        .args(["--runs", &opts.runs.to_string()])
                        .arg("--model-dir")
                        .arg(&f.dir);
                    let t: Timing = parse_json(&py::run(cmd)?)?;
                    ort_ms = Some(t.median_ms);
                } else {
                    for l in &levels {
                        let t = time_fixed(&exe, &l.sim, &case(first), lat.threads, opts)?;
                        ipk_ms.push((l.level, t));
                    }
                }
            }
            let ort_ms = ort_ms.ok_or_else(|| anyhow!("no ORT latency"))?;
            lat.ort_qdq.push(ort_ms);
            for (lv, t) in &ipk_ms {
                match lat.ipukit.iter_mut().find(|(l, _)| l == lv) {
                    Some((_, v)) => v.push(*t),
                    None => lat.ipukit.push((*lv, vec![*t])),
                }
            }
            println!(
                "bench: {name} round {} threads={}: ORT QDQ {ort_ms:.2} ms, {}",
                round + 1,
                lat.threads,
                ipk_ms
                    .iter()
                    .map(|(lv, t)| format!("ipukit {} {t:.2} ms", lv.as_str()))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    Ok(QuantReport {
        model: name.clone(),
        ort,
        timing,
        levels,
        failures,
        latency,
        calib_threads: opts.calib_threads,
    })
}

/// Median latency of a fixed.sim on `<case>/input_u8.npy` in `xtask bench-child`.
fn time_fixed(
    exe: &Path,
    sim: &Path,
    case: &Path,
    threads: usize,
    opts: &QuantOptions,
) -> Result<f64> {
    let mut child = Command::new(exe);
    child
        .arg("bench-child")
        .arg("--sim")
        .arg(sim)
        .arg("--input")
        .arg(case.join("input_u8.npy"))
        .args(["--threads", &threads.to_string()])
        .args(["--warmup", &opts.warmup.to_string()])
        .args(["--runs", &opts.runs.to_string()]);
    let (ok, out, err) = util::run_capture(&mut child)?;
    if !ok {
        bail!("timing {} failed: {}", rel(sim), err.trim());
    }
    let t: Timing = parse_json(&out)?;
    Ok(t.median_ms)
}

/// Runs `xtask bench-calibrate` and parses its report.
#[allow(clippy::too_many_arguments)]
fn calibrate_in_child(
    exe: &Path,
    python: &Path,
    model: &Path,
    list: &Path,
    preprocess: &Path,
    output: &Path,
    level: QuantLevel,
    num_process: usize,
    memory_saving: bool,
) -> Result<(CalibRun, f64)> {
    let mut child = Command::new(exe);
    child
        .arg("bench-calibrate")
        .arg("--model")
        .arg(model)
        .arg("--images")
        .arg(list)
        .arg("--preprocess")
        .arg(preprocess)
        .arg("--output")
        .arg(output)
        .args(["--level", level.as_str()])
        .args(["--num-process", &num_process.to_string()])
        .env("IPUKIT_PYTHON", python);
    if memory_saving {
        child.arg("--memory-saving");
    }
    let t = Instant::now();
    let (ok, out, err) = util::run_capture(&mut child)?;
    let wall = t.elapsed().as_secs_f64();
    if !ok {
        bail!(
            "calibrating {} at {} failed: {}",
            rel(model),
            level.as_str(),
            err.trim()
        );
    }
    Ok((parse_json(&out)?, wall))
}

/// Runs a fixed.sim on the evaluation images and compares its dequantized outputs with
/// ipukit's float outputs and ONNX Runtime's (`<ort_dir>/eval/<id>/ort_float`): (mean, min)
/// cosine over every output of every image, for each reference.
fn evaluate_fixed(
    sim: &Path,
    items: &[EvalItem],
    case: &dyn Fn(&EvalItem) -> PathBuf,
    float_outs: &[Vec<Value>],
    ort_dir: &Path,
    opts: &QuantOptions,
) -> Result<((f64, f64), (f64, f64))> {
    let (graph, _) = ipk::catch(|| ipukit_simfmt::read_sim_file(sim))?
        .map_err(|e| anyhow!("reading back {}: {e}", rel(sim)))?;
    let mut session = ipk::session(graph.clone(), opts.calib_threads)?;
    let mut vs_float = vec![];
    let mut vs_ort = vec![];
    for (it, float) in items.iter().zip(float_outs) {
        let inputs = ipk::read_inputs(&[&case(it).join("input_u8.npy")])?;
        let outs = calib_run::dequantize(&graph, ipk::run(&mut session, inputs)?)?;
        let ort = calib_run::read_outputs(&ort_dir.join("eval").join(&it.id).join("ort_float"))?;
        if outs.len() != float.len() || outs.len() != ort.len() {
            bail!(
                "{}: the fixed model gives {} output(s), float {}, ONNX Runtime {}",
                it.id,
                outs.len(),
                float.len(),
                ort.len()
            );
        }
        for ((o, f), r) in outs.iter().zip(float).zip(&ort) {
            vs_float.push(cosine(o, f)?);
            vs_ort.push(cosine(o, r)?);
        }
    }
    Ok((mean_min(&vs_float), mean_min(&vs_ort)))
}

fn mean_min(v: &[f64]) -> (f64, f64) {
    let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    (mean, min)
}

/// Cosine similarity of two values of the same shape (1 when both are zero).
fn cosine(a: &Value, b: &Value) -> Result<f64> {
    if a.shape != b.shape {
        bail!("shapes differ: {:?} and {:?}", a.shape, b.shape);
    }
    let (x, y) = (a.data.to_f32_vec(), b.data.to_f32_vec());
    let (mut dot, mut nx, mut ny) = (0.0f64, 0.0f64, 0.0f64);
    for (&p, &q) in x.iter().zip(&y) {
        let (p, q) = (p as f64, q as f64);
        dot += p * q;
        nx += p * p;
        ny += q * q;
    }
    Ok(match (nx == 0.0, ny == 0.0) {
        (true, true) => 1.0,
        (true, false) | (false, true) => 0.0,
        _ => dot / (nx.sqrt() * ny.sqrt()),
    })
}

/// Runs the memory measurement of one fixture on the shared image set.
pub fn run_memory(python: &Path, f: &Fixture, opts: &MemoryOptions) -> Result<MemoryReport> {
    let name = &f.toml.name;
    let exe = std::env::current_exe().context("cannot find xtask's own executable")?;
    let images = util::cache_dir().join("bench/calib-memory");
    let mut cmd = py::script(python, "calib_images.py");
    cmd.arg("--out-dir")
        .arg(&images)
        .args(["--count", &opts.large.to_string()])
        .args(["--lists", &opts.small.to_string()]);
    print!("bench: {}", py::run(cmd)?);
    let dir = util::cache_dir().join("bench").join(name).join("memory");
    fs::create_dir_all(&dir)?;
    let float_sim = dir.join(format!("{name}_float.sim"));
    ipk::convert(f, &float_sim)?;
    let out = dir.join(format!("{name}_fixed.sim"));
    let mut runs = vec![];
    for memory_saving in [true, false] {
        let mut pair = vec![];
        for n in [opts.small, opts.large] {
            let (r, wall) = calibrate_in_child(
                &exe,
                python,
                &float_sim,
                &images.join(format!("list_{n}.txt")),
                &f.dir.join("preprocess.py"),
                &out,
                QuantLevel::L1,
                opts.calib_threads,
                memory_saving,
            )?;
            println!(
                "bench: {name} memory_saving={memory_saving}: {} images, peak RSS {:.1} MiB, {:.1} s",
                r.samples,
                r.max_rss_kb as f64 / 1024.0,
                wall
            );
            pair.push(r);
        }
        let large = pair.pop().ok_or_else(|| anyhow!("no run"))?;
        let small = pair.pop().ok_or_else(|| anyhow!("no run"))?;
        runs.push((memory_saving, small, large));
    }
    Ok(MemoryReport {
        model: name.clone(),
        runs,
        small: opts.small,
        large: opts.large,
    })
}

/// `xtask bench-calibrate`: calibrates with the library in this process and prints JSON (one
/// line) with the wall time and this process's peak resident set.
pub struct ChildArgs {
    /// Float model.
    pub model: PathBuf,
    /// `-i`.
    pub images: PathBuf,
    /// `-n`.
    pub preprocess: String,
    /// `-o`.
    pub output: PathBuf,
    /// `--quant_level`.
    pub level: String,
    /// `--num_process`.
    pub num_process: usize,
    /// `--memory_saving`.
    pub memory_saving: bool,
}

/// Runs `xtask bench-calibrate`.
pub fn calibrate_child(a: &ChildArgs) -> Result<()> {
    let level = QuantLevel::parse(&a.level).map_err(|e| anyhow!("--level: {e}"))?;
    let opts = CalibrateOptions {
        memory_saving: a.memory_saving,
        ..calib_run::calibrate_options(
            &a.model,
            &a.images,
            Path::new(&a.preprocess),
            &a.output,
            level,
            a.num_process,
        )
    };
    // When each phase was reached (seconds from the start): the first and the last
    // statistics sample, the start and end of the fixed-vs-float check.
    let t = Instant::now();
    let marks = Mutex::new(Vec::<(&'static str, f64)>::new());
    let mark = |name: &'static str| {
        if let Ok(mut m) = marks.lock() {
            let now = t.elapsed().as_secs_f64();
            match m.iter_mut().find(|(n, _)| *n == name) {
                Some(e) if name == "last_sample" => e.1 = now,
                Some(_) => {}
                None => m.push((name, now)),
            }
        }
    };
    let cal = calibrate(&opts, &|p| match p {
        Phase::Statistics(_) => {
            mark("first_sample");
            mark("last_sample");
        }
        Phase::Sensitivity => mark("sensitivity"),
        Phase::Check(_) => mark("check"),
        Phase::Checked(..) => mark("checked"),
    })
    .map_err(|e| anyhow!("calibrating: {e}"))?;
    let seconds = t.elapsed().as_secs_f64();
    let phases: serde_json::Map<String, serde_json::Value> = marks
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .map(|(n, s)| (n.to_string(), s.into()))
        .collect();
    println!(
        "{}",
        serde_json::json!({
            "seconds": seconds,
            "samples": cal.samples,
            "max_rss_kb": ipukit_quant::bench::peak_rss_kib()
                .ok_or_else(|| anyhow!("no VmHWM in /proc/self/status"))?,
            "int16": cal.plan.int16_count(),
            "layers": cal.plan.layers.len(),
            "level": level.as_str(),
            "memory_saving": a.memory_saving,
            "phases": phases,
        })
    );
    Ok(())
}

/// An acceptance check's outcome.
pub struct Verdict {
    /// What was checked.
    pub what: String,
    /// Whether it holds.
    pub pass: bool,
    /// The measured figures.
    pub detail: String,
}

fn cell(v: Option<f64>, digits: usize) -> String {
    v.filter(|x| x.is_finite())
        .map_or_else(|| "-".into(), |x| format!("{x:.digits$}"))
}

/// Prints the quantization tables and returns the acceptance verdicts.
pub fn print_quant(reports: &[QuantReport], opts: &QuantOptions) -> Vec<Verdict> {
    let rounds = opts.rounds.max(1);
    println!(
        "\nCalibration and accuracy ({} calibration threads; cosine of each int8 model's outputs with its float model's on the evaluation images)",
        opts.calib_threads
    );
    println!(
        "{:<16} {:<15} {:>6} {:>8} {:>9} {:>7} {:>10} {:>10} {:>19} {:>7}",
        "model",
        "quantizer",
        "images",
        "call s",
        "process s",
        "prep s",
        "mean cos",
        "min cos",
        "vs ORT float",
        "16-bit"
    );
    for r in reports {
        let med = |v: &[(f64, f64)], call: bool| {
            median(
                &v.iter()
                    .map(|&(c, w)| if call { c } else { w })
                    .collect::<Vec<_>>(),
            )
        };
        for m in &r.ort.methods {
            let minmax = m.method == "MinMax";
            println!(
                "{:<16} {:<15} {:>6} {:>8} {:>9} {:>7.2} {:>10} {:>10} {:>19} {:>7}",
                r.model,
                format!("ORT {}", m.method),
                r.ort.calibration_images,
                cell(
                    Some(if minmax {
                        med(&r.timing.ort, true)
                    } else {
                        m.seconds
                    }),
                    2
                ),
                cell(minmax.then(|| med(&r.timing.ort, false)), 2),
                m.preprocess_s,
                cell(m.mean_cosine, 6),
                cell(m.min_cosine, 6),
                "",
                "-"
            );
        }
        for l in &r.levels {
            let l1 = l.level == QuantLevel::L1;
            println!(
                "{:<16} {:<15} {:>6} {:>8} {:>9} {:>7} {:>10.6} {:>10.6} {:>19} {:>7}",
                r.model,
                format!("ipukit {}", l.level.as_str()),
                r.ort.calibration_images,
                cell(
                    Some(if l1 {
                        med(&r.timing.ipukit, true)
                    } else {
                        l.call_s
                    }),
                    2
                ),
                cell(
                    Some(if l1 {
                        med(&r.timing.ipukit, false)
                    } else {
                        l.wall_s
                    }),
                    2
                ),
                "incl.",
                l.vs_float.0,
                l.vs_float.1,
                format!("{:.6}/{:.6}", l.vs_ort_float.0, l.vs_ort_float.1),
                format!("{}/{}", l.int16, l.layers)
            );
        }
        for (lv, e) in &r.failures {
            println!(
                "{:<16} {:<15} FAILED: {}",
                r.model,
                format!("ipukit {}", lv.as_str()),
                e.lines().last().unwrap_or_default()
            );
        }
    }
    println!(
        "(onnxruntime {}: quantize_static, QDQ, per-channel, activations QUInt8, weights QInt8, \
         reduce_range off, on the quant_pre_process'ed model. `call s`: the quantize_static call \
         / ipukit_calibrator::calibrate call, preprocess.py included on both sides (ipukit's \
         includes starting its Python workers); `process s`: the whole process from start to \
         exit (ORT: interpreter start, imports, quantize_static; ipukit: xtask bench-calibrate); \
         `prep s`: of `call s`, the time in preprocess.py (ORT). MinMax and ipukit L1: median \
         of {rounds} round(s); the others: one run. `mean/min cos`: against the tool's own \
         float model (ipukit: float.sim; ORT: the ONNX model); `vs ORT float`: ipukit's \
         fixed outputs against ONNX Runtime's float outputs, mean/min.)",
        reports.first().map_or("?", |r| r.ort.onnxruntime.as_str()),
    );
    for r in reports {
        println!(
            "note: {}: {} evaluation images; ONNX Runtime's preparation ({}) took {:.2} s, counted on neither side (as ipukit's conversion)",
            r.model, r.ort.eval_images, r.ort.prepare, r.ort.prepare_s
        );
    }

    println!(
        "\nInt8 inference latency (median of {} runs after {} warm-up; median over {rounds} round(s); ORT: the MinMax QDQ model, float input; ipukit: the fixed.sim, uint8 input)",
        opts.runs, opts.warmup
    );
    println!(
        "{:<16} {:>7} {:>12} {:>14} {:>14} {:>10} {:>10}",
        "model", "threads", "ORT QDQ ms", "ipukit L1 ms", "ipukit L5 ms", "L1 / ORT", "L5 / ORT"
    );
    for r in reports {
        for lat in &r.latency {
            let ort = median(&lat.ort_qdq);
            let get = |lv: QuantLevel| {
                lat.ipukit
                    .iter()
                    .find(|(l, _)| *l == lv)
                    .map_or(f64::NAN, |(_, v)| median(v))
            };
            let (l1, l5) = (get(QuantLevel::L1), get(QuantLevel::L5));
            println!(
                "{:<16} {:>7} {:>12.2} {:>14.2} {:>14.2} {:>9.2}x {:>9.2}x",
                r.model,
                lat.threads,
                ort,
                l1,
                l5,
                l1 / ort,
                l5 / ort
            );
        }
    }

    let mut verdicts = vec![];
    for r in reports {
        let best_ort = r
            .ort
            .methods
            .iter()
            .filter_map(|m| Some((m, m.mean_cosine?)))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        let l5 = r.levels.iter().find(|l| l.level == QuantLevel::L5);
        let failure = |lv: QuantLevel| {
            r.failures
                .iter()
                .find(|(l, _)| *l == lv)
                .map_or("did not run", |(_, e)| e.lines().last().unwrap_or_default())
                .to_string()
        };
        let what = format!("{}: ipukit L5 mean cosine > every ORT method's", r.model);
        match (best_ort, l5) {
            (Some((best, best_cos)), Some(l5)) => verdicts.push(Verdict {
                what,
                pass: l5.vs_float.0 > best_cos && r.ort.methods.len() == METHODS,
                detail: format!(
                    "L5 {:.6} vs best ORT ({}) {best_cos:.6}: {:+.6}",
                    l5.vs_float.0,
                    best.method,
                    l5.vs_float.0 - best_cos
                ),
            }),
            (_, None) => verdicts.push(Verdict {
                what,
                pass: false,
                detail: format!("L5 failed: {}", failure(QuantLevel::L5)),
            }),
            (None, Some(_)) => verdicts.push(Verdict {
                what,
                pass: false,
                detail: "no ORT result".into(),
            }),
        }
        let (ic, iw) = (
            median(&r.timing.ipukit.iter().map(|t| t.0).collect::<Vec<_>>()),
            median(&r.timing.ipukit.iter().map(|t| t.1).collect::<Vec<_>>()),
        );
        let (oc, ow) = (
            median(&r.timing.ort.iter().map(|t| t.0).collect::<Vec<_>>()),
            median(&r.timing.ort.iter().map(|t| t.1).collect::<Vec<_>>()),
        );
        let what = format!(
            "{}: ipukit L1 calibration time <= ORT MinMax's ({} threads, whole process)",
            r.model, r.calib_threads
        );
        verdicts.push(if r.timing.ipukit.is_empty() {
            Verdict {
                what,
                pass: false,
                detail: format!("L1 failed: {}", failure(QuantLevel::L1)),
            }
        } else {
            Verdict {
                what,
                pass: iw <= ow,
                detail: format!(
                    "{iw:.2} s vs {ow:.2} s: ratio {:.2} (inside the call: {ic:.2} s vs \
                     {oc:.2} s, ratio {:.2})",
                    iw / ow,
                    ic / oc
                ),
            }
        });
        for lat in r.latency.iter().filter(|l| l.threads == 2) {
            let ort = median(&lat.ort_qdq);
            for (lv, v) in &lat.ipukit {
                let m = median(v);
                verdicts.push(Verdict {
                    what: format!(
                        "{}: ipukit fixed.sim ({}) latency <= 2x ORT QDQ, 2 threads",
                        r.model,
                        lv.as_str()
                    ),
                    pass: m <= 2.0 * ort,
                    detail: format!("{m:.2} ms vs {ort:.2} ms: ratio {:.2}", m / ort),
                });
            }
        }
    }
    verdicts
}

/// ONNX Runtime's calibration methods compared.
const METHODS: usize = 3;

/// Prints the memory table and returns the acceptance verdicts.
pub fn print_memory(reports: &[MemoryReport]) -> Vec<Verdict> {
    let mut verdicts = vec![];
    let (small, large) = reports.first().map_or((0, 0), |r| (r.small, r.large));
    println!(
        "\nCalibration memory (L1, peak resident set of the calibrating process; {small} vs {large} distinct images of one size)"
    );
    println!(
        "{:<16} {:<14} {:>12} {:>12} {:>8} {:>12}",
        "model",
        "memory_saving",
        format!("{small} MiB"),
        format!("{large} MiB"),
        "ratio",
        format!("{large} s")
    );
    for r in reports {
        for (ms, s, l) in &r.runs {
            let ratio = l.max_rss_kb as f64 / s.max_rss_kb.max(1) as f64;
            println!(
                "{:<16} {:<14} {:>12.1} {:>12.1} {:>7.3}x {:>12.1}",
                r.model,
                if *ms { "yes" } else { "no" },
                s.max_rss_kb as f64 / 1024.0,
                l.max_rss_kb as f64 / 1024.0,
                ratio,
                l.seconds
            );
            if *ms {
                verdicts.push(Verdict {
                    what: format!(
                        "{}: --memory_saving peak RSS, {large} images <= 1.2x {small} images",
                        r.model
                    ),
                    pass: ratio <= 1.2,
                    detail: format!(
                        "{:.1} MiB vs {:.1} MiB: ratio {ratio:.3}",
                        l.max_rss_kb as f64 / 1024.0,
                        s.max_rss_kb as f64 / 1024.0
                    ),
                });
            }
        }
    }
    verdicts
}
