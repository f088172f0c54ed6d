//! Collects calibration statistics of a float model on real images and reports speed,
//! peak memory and a digest of the statistics (equal digests = identical statistics).
//!
//! ```text
//! cargo run --release -p ipukit-quant --example calibrate -- \
//!     -m /tmp/orinet_float.sim -i .cache/images -n fixtures/models/orinet/preprocess.py \
//!     [--num_process 2] [--memory_saving] [--repeat 1000] [--threads 1] [--shuffle] \
//!     [--baseline] [--ranges] [--skip]
//! ```
//!
//! `--repeat N` cycles through the `-i` inputs until N samples; `--shuffle` reverses and
//! interleaves their order (the digest must not change); `--baseline` also times the same
//! samples run with an observer that does nothing (the cost of the statistics is the
//! difference); `--ranges` prints the range every method picks for a few tensors.

use ipukit_config::InputConfig;
use ipukit_preprocess::{collect_inputs, Preprocessor};
use ipukit_quant::bench::peak_rss_kib;
use ipukit_quant::range::{QuantTarget, RangeMethod};
use ipukit_quant::stats::{collect_files, input_contexts, CollectOptions, OnError};
use ipukit_runtime::{Session, SessionOptions, Value};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

struct Args {
    model: PathBuf,
    images: PathBuf,
    preprocess: String,
    num_process: usize,
    memory_saving: bool,
    repeat: Option<usize>,
    threads: Option<usize>,
    shuffle: bool,
    baseline: bool,
    ranges: bool,
    skip: bool,
}

fn parse() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut a = Args {
        model: PathBuf::new(),
        images: PathBuf::new(),
        preprocess: String::new(),
        num_process: 1,
        memory_saving: false,
        repeat: None,
        threads: None,
        shuffle: false,
        baseline: false,
        ranges: false,
        skip: false,
    };
    while let Some(k) = it.next() {
        let mut val = || it.next().ok_or(format!("{k} needs a value"));
        match k.as_str() {
            "-m" | "--model" => a.model = val()?.into(),
            "-i" | "--image" => a.images = val()?.into(),
            "-n" | "--preprocess" => a.preprocess = val()?,
            "--num_process" => a.num_process = val()?.parse().map_err(|e| format!("{e}"))?,
            "--repeat" => a.repeat = Some(val()?.parse().map_err(|e| format!("{e}"))?),
            "--threads" => a.threads = Some(val()?.parse().map_err(|e| format!("{e}"))?),
            "--memory_saving" => a.memory_saving = true,
            "--shuffle" => a.shuffle = true,
            "--baseline" => a.baseline = true,
            "--ranges" => a.ranges = true,
            "--skip" => a.skip = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.model.as_os_str().is_empty() || a.images.as_os_str().is_empty() || a.preprocess.is_empty()
    {
        return Err("usage: calibrate -m model_float.sim -i images -n preprocess [options]".into());
    }
    Ok(a)
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse()?;
    let (graph, meta) = ipukit_simfmt::read_sim_file(&args.model)?;
    let config = meta
        .input_config
        .as_deref()
        .map(InputConfig::from_json)
        .transpose()?;
    let n_inputs = graph.inputs.len();
    let mut items = collect_inputs(&args.images, n_inputs)?;
    if let Some(n) = args.repeat {
        let base = items.clone();
        items = (0..n).map(|i| base[i % base.len()].clone()).collect();
    }
    if args.shuffle {
        items.reverse();
        let (a, b) = items.split_at(items.len() / 2);
        items = a
            .iter()
            .zip(b)
            .flat_map(|(x, y)| [y.clone(), x.clone()])
            .collect();
    }
    let methods = Preprocessor::from_args(&args.preprocess, n_inputs)?;
    let contexts = input_contexts(&graph, config.as_ref());
    let opts = CollectOptions {
        num_process: args.num_process,
        intra_op_threads: args.threads,
        memory_saving: args.memory_saving,
        on_error: if args.skip {
            OnError::Skip
        } else {
            OnError::Stop
        },
        ..CollectOptions::default()
    };
    let rss_before = peak_rss_kib().unwrap_or(0);
    let start = Instant::now();
    let stats = collect_files(&graph, &items, &methods, &contexts, &opts, &|_| {})?;
    let secs = start.elapsed().as_secs_f64();
    let hist_kib = stats
        .activations()
        .iter()
        .map(|a| a.histogram().counts().len() * 8)
        .sum::<usize>()
        / 1024;
    let weight_kib = stats
        .weights()
        .iter()
        .flat_map(|w| w.channels())
        .map(|c| c.histogram.counts().len() * 8)
        .sum::<usize>()
        / 1024;
    println!(
        "{}: {} samples, num_process {}, memory_saving {}: {:.2} s, {:.2} samples/s, peak RSS {} MiB (before: {} MiB), {} activations ({} KiB of histograms), {} weights ({} KiB), digest {:016x}",
        args.model.display(),
        stats.samples(),
        args.num_process,
        args.memory_saving,
        secs,
        stats.samples() as f64 / secs,
        peak_rss_kib().unwrap_or(0) / 1024,
        rss_before / 1024,
        stats.activations().len(),
        hist_kib,
        stats.weights().len(),
        weight_kib,
        stats.digest()
    );
    let elements: u64 = stats
        .activations()
        .iter()
        .map(|a| a.count() + a.nonfinite())
        .sum();
    println!(
        "  {:.1} M activation elements per sample ({:.1} ns per element per core at {:.2} s)",
        elements as f64 / stats.samples().max(1) as f64 / 1e6,
        secs * 1e9 / elements.max(1) as f64,
        secs
    );
    for f in stats.failures() {
        println!("skipped {}: {}", f.input, f.error);
    }
    if args.ranges {
        let t0 = Instant::now();
        let methods = [
            RangeMethod::MinMax,
            RangeMethod::MovingAverage,
            RangeMethod::Percentile(99.99),
            RangeMethod::Mse,
            RangeMethod::Entropy,
        ];
        for target in [QuantTarget::INT16, QuantTarget::UINT8] {
            let t = Instant::now();
            for m in methods {
                for a in stats.activations() {
                    a.range(m, target)?;
                }
            }
            println!(
                "ranges of every activation, 5 methods, {target:?}: {:.2} s",
                t.elapsed().as_secs_f64()
            );
        }
        let step = (stats.activations().len() / 6).max(1);
        for a in stats.activations().iter().step_by(step) {
            let r: Vec<String> = methods
                .iter()
                .map(|&m| {
                    a.range(m, QuantTarget::UINT8)
                        .map(|r| format!("{m:?} [{:.3}, {:.3}]", r.min, r.max))
                        .unwrap_or_else(|e| e.to_string())
                })
                .collect();
            println!("  {} UINT8: {}", a.name(), r.join("; "));
        }
        let t = Instant::now();
        for w in stats.weights() {
            for m in methods {
                w.channel_ranges(m, QuantTarget::INT8)?;
            }
        }
        println!(
            "weight channel ranges, 5 methods, INT8: {:.2} s (all ranges {:.2} s)",
            t.elapsed().as_secs_f64(),
            t0.elapsed().as_secs_f64()
        );
    }
    if args.baseline {
        // The same samples through one session with a no-op observer.
        let threads = args
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let mut s = Session::new(
            graph.clone(),
            SessionOptions {
                threads: Some(threads),
            },
        )?;
        let mut pre = 0.0;
        let start = Instant::now();
        for item in &items {
            let t = Instant::now();
            let values: Vec<Value> = item
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let (shape, data) = methods[i].run(p, true, &contexts[i])?.into_parts();
                    Ok::<_, Box<dyn std::error::Error>>(Value::new(shape, data)?)
                })
                .collect::<Result<_, _>>()?;
            pre += t.elapsed().as_secs_f64();
            for (i, v) in values.into_iter().enumerate() {
                s.set_input(i, v)?;
            }
            s.invoke_with_observer(&mut |_, _, _| {})?;
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "baseline (1 session, {threads} thread(s), no statistics): {:.2} s, {:.2} samples/s, of which preprocessing {:.2} s",
            secs,
            items.len() as f64 / secs,
            pre
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
