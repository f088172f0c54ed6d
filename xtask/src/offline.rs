//! The offline stage of `cargo xtask e2e`: compile a fixture's fixed.sim into offline images
//! (batch 1, an `n_buf` batch and `one_buf` batches), check that every output is bit-identical
//! to the fixed model's on the real evaluation inputs, that compiling twice gives the same
//! bytes, and time the image against the fixed model.

use std::path::Path;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use ipukit_offline_img::{compile, BatchMode, CompileOptions, LoadOptions, OfflineModel};
use ipukit_runtime::Value;
use ipukit_simulator::batch::{split, stack, BatchSizes};

use crate::ipk;

/// The batch configurations every image is checked in: (mode, `-b` sizes).
const CONFIGS: [(BatchMode, &[usize]); 3] = [
    (BatchMode::NBuf, &[1]),
    (BatchMode::NBuf, &[4]),
    (BatchMode::OneBuf, &[2, 4]),
];

/// The result for one fixed model.
#[derive(Debug, Clone)]
pub struct OfflineRow {
    /// Fixture name.
    pub model: String,
    /// The fixed model's file name.
    pub fixed: String,
    /// Evaluation inputs compared.
    pub inputs: usize,
    /// Image size in bytes (batch 1).
    pub image_bytes: usize,
    /// Arena bytes and the sum of all activation tensors (batch 1).
    pub arena: (u64, u64),
    /// Median milliseconds per input: the fixed model, then the image (batch 1).
    pub ms: (f64, f64),
    /// Median over interleaved pairs of runs (same input, back to back, alternating which
    /// goes first) of fixed time / image time.
    pub speed: f64,
    /// Whatever failed (empty: bit-exact in every configuration, deterministic).
    pub problems: Vec<String>,
}

impl OfflineRow {
    /// A row for a model whose check could not run.
    pub fn failed(model: &str, fixed: &Path, problem: String) -> OfflineRow {
        OfflineRow {
            model: model.to_string(),
            fixed: fixed
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            inputs: 0,
            image_bytes: 0,
            arena: (0, 0),
            ms: (f64::NAN, f64::NAN),
            speed: f64::NAN,
            problems: vec![problem],
        }
    }

    /// Bit-exact everywhere and deterministic.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

fn bytes_of(values: &[Value]) -> Vec<Vec<u8>> {
    values.iter().map(|v| v.data.to_le_bytes()).collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Runs `inputs` (`[item][input]`) through `image` in groups of the image's batch, returning
/// each item's outputs.
fn run_batched(model: &mut OfflineModel, inputs: &[Vec<Value>]) -> Result<Vec<Vec<Value>>> {
    let sizes = BatchSizes::of_image(model);
    let n_outputs = model.output_details().len();
    let mut out = Vec::with_capacity(inputs.len());
    for chunk in inputs.chunks(sizes.group()) {
        let size = sizes
            .run_size(chunk.len())
            .ok_or_else(|| anyhow!("no batch size holds {} items", chunk.len()))?;
        for i in 0..chunk[0].len() {
            let column: Vec<&Value> = chunk.iter().map(|v| &v[i]).collect();
            let batch = stack(&column, size).map_err(|e| anyhow!("{e}"))?;
            model.set_input(i, batch).map_err(|e| anyhow!("{e}"))?;
        }
        model.invoke().map_err(|e| anyhow!("{e}"))?;
        let mut items = vec![Vec::with_capacity(n_outputs); chunk.len()];
        for o in 0..n_outputs {
            let v = model.output(o).map_err(|e| anyhow!("{e}"))?;
            for (item, part) in items
                .iter_mut()
                .zip(split(&v, chunk.len()).map_err(|e| anyhow!("{e}"))?)
            {
                item.push(part);
            }
        }
        out.extend(items);
    }
    Ok(out)
}

/// Checks the fixed model `fixed_sim` against its offline images on `input_files` (one list of
/// `.npy` model inputs per evaluation item).
pub fn check_model(
    model: &str,
    fixed_sim: &Path,
    input_files: &[Vec<std::path::PathBuf>],
    threads: usize,
) -> Result<OfflineRow> {
    let (graph, meta) = ipk::catch(|| ipukit_simfmt::read_sim_file(fixed_sim))?
        .map_err(|e| anyhow!("reading {}: {e}", fixed_sim.display()))?;
    let inputs: Vec<Vec<Value>> = input_files
        .iter()
        .map(|files| {
            let refs: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
            ipk::read_inputs(&refs)
        })
        .collect::<Result<_>>()?;
    if inputs.is_empty() {
        bail!("no evaluation inputs");
    }
    let mut session = ipk::session(graph.clone(), threads)?;
    // One untimed run on each side first: buffers, pools and pages are set up on first use.
    ipk::run(&mut session, inputs[0].clone()).context("the fixed model")?;
    let mut want = Vec::with_capacity(inputs.len());
    for v in &inputs {
        let outs = ipk::run(&mut session, v.clone()).context("the fixed model")?;
        want.push(bytes_of(&outs));
    }

    let mut row = OfflineRow {
        model: model.to_string(),
        fixed: fixed_sim
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        inputs: inputs.len(),
        image_bytes: 0,
        arena: (0, 0),
        ms: (f64::NAN, f64::NAN),
        speed: f64::NAN,
        problems: vec![],
    };
    for (mode, sizes) in CONFIGS {
        let label = format!("{} -b {:?}", mode.as_str(), sizes);
        let opts = CompileOptions {
            batch_mode: mode,
            batch_sizes: sizes.to_vec(),
            source: row.fixed.clone(),
            ..CompileOptions::default()
        };
        let compiled = ipk::catch(|| compile(&graph, &meta, &opts))?
            .map_err(|e| anyhow!("compiling ({label}): {e}"))?;
        let again = ipk::catch(|| compile(&graph, &meta, &opts))?
            .map_err(|e| anyhow!("compiling again ({label}): {e}"))?;
        if again.bytes != compiled.bytes {
            row.problems
                .push(format!("{label}: compiling twice gave different images"));
        }
        let load = LoadOptions {
            threads: Some(threads),
        };
        let mut offline = ipk::catch(|| OfflineModel::from_bytes(&compiled.bytes, &load))?
            .map_err(|e| anyhow!("loading the image ({label}): {e}"))?;
        let got = if sizes == [1] {
            row.image_bytes = compiled.bytes.len();
            row.arena = (compiled.report.arena_bytes, compiled.report.naive_bytes);
            let got = inputs
                .iter()
                .map(|v| offline.run(v.clone()).map_err(|e| anyhow!("{label}: {e}")))
                .collect::<Result<Vec<_>>>()?;
            (row.ms, row.speed) =
                time_pairs(&mut session, &mut offline, &inputs).with_context(|| label.clone())?;
            got
        } else {
            run_batched(&mut offline, &inputs).with_context(|| label.clone())?
        };
        let differing = got
            .iter()
            .zip(&want)
            .filter(|(g, w)| bytes_of(g) != **w)
            .count();
        if differing > 0 {
            row.problems.push(format!(
                "{label}: {differing} of {} input(s) differ from the fixed model",
                inputs.len()
            ));
        }
    }
    Ok(row)
}

/// Runs of each side timed (at least this many, cycling through the inputs).
const TIMED_RUNS: usize = 24;
/// Small models get more pairs, until this much time is spent timing (at most
/// [`MAX_TIMED_RUNS`]): one scheduler hiccup weighs on a 0.2 ms run, and the median of a few
/// dozen pairs still moved by ±10% on a busy machine.
const TIMING_BUDGET: std::time::Duration = std::time::Duration::from_millis(1500);
/// Upper bound on the timed pairs of one model.
const MAX_TIMED_RUNS: usize = 1000;

/// Times the fixed model and the image on the same inputs in interleaved pairs (back to back,
/// alternating which goes first), so that both see the same machine state: the medians of
/// each side, and the median of the pairs' ratios (fixed / image), which drift between the
/// two sides' runs does not bias.
fn time_pairs(
    session: &mut ipukit_runtime::Session,
    offline: &mut OfflineModel,
    inputs: &[Vec<Value>],
) -> Result<((f64, f64), f64)> {
    let (mut fixed, mut image, mut ratio) = (vec![], vec![], vec![]);
    let start = Instant::now();
    let min_runs = TIMED_RUNS.max(inputs.len());
    for k in 0.. {
        let more = k < min_runs || (k < MAX_TIMED_RUNS && start.elapsed() < TIMING_BUDGET);
        if !more {
            break;
        }
        let v = &inputs[k % inputs.len()];
        let mut fixed_ms = || -> Result<f64> {
            let t = Instant::now();
            ipk::run(session, v.clone()).context("the fixed model")?;
            Ok(t.elapsed().as_secs_f64() * 1e3)
        };
        let mut image_ms = || -> Result<f64> {
            let t = Instant::now();
            offline.run(v.clone()).map_err(|e| anyhow!("{e}"))?;
            Ok(t.elapsed().as_secs_f64() * 1e3)
        };
        let (f, i) = if k % 2 == 0 {
            let f = fixed_ms()?;
            (f, image_ms()?)
        } else {
            let i = image_ms()?;
            (fixed_ms()?, i)
        };
        fixed.push(f);
        image.push(i);
        ratio.push(f / i);
    }
    Ok(((median(fixed), median(image)), median(ratio)))
}

/// Prints the offline stage's table.
pub fn print_table(rows: &[OfflineRow]) {
    println!(
        "\n{:<16} {:<28} {:>6} {:>10} {:>21} {:>9} {:>9} {:>6}  result",
        "model",
        "fixed model",
        "inputs",
        "image",
        "arena / all tensors",
        "fixed ms",
        "img ms",
        "speed"
    );
    for r in rows {
        println!(
            "{:<16} {:<28} {:>6} {:>10} {:>10} / {:>8} {:>9.2} {:>9.2} {:>5.2}x  {}",
            r.model,
            r.fixed,
            r.inputs,
            r.image_bytes,
            r.arena.0,
            r.arena.1,
            r.ms.0,
            r.ms.1,
            r.speed,
            if r.ok() {
                "bit-exact (n_buf 1, n_buf 4, one_buf 2,4), deterministic".to_string()
            } else {
                r.problems.join("; ")
            }
        );
    }
}
