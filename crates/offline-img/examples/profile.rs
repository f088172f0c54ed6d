//! Measured time of every step of an offline image, averaged over repeated runs:
//!
//! ```text
//! cargo run --release -p ipukit-offline-img --example profile -- MODEL.img INPUT.npy [RUNS] [THREADS]
//! ```
//!
//! The measured counterpart of `ipu-compiler --report`'s estimated cycles.

#![allow(missing_docs)]

use ipukit_ir::TensorData;
use ipukit_offline_img::{LoadOptions, OfflineModel, StepTime};
use ipukit_runtime::Value;
use std::time::Duration;

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [img, npy, rest @ ..] = args.as_slice() else {
        return Err("usage: profile MODEL.img INPUT.npy [RUNS] [THREADS]".into());
    };
    let runs: usize = rest
        .first()
        .map_or(Ok(50), |r| r.parse())
        .map_err(|e| format!("RUNS: {e}"))?
        .max(1);
    let threads = rest
        .get(1)
        .map(|t| t.parse().map_err(|e| format!("THREADS: {e}")))
        .transpose()?;
    let mut m =
        OfflineModel::load_with(img, &LoadOptions { threads }).map_err(|e| e.to_string())?;
    let bytes = std::fs::read(npy).map_err(|e| format!("{npy}: {e}"))?;
    let sample = ipukit_preprocess::npy::read_npy(&bytes).map_err(|e| format!("{npy}: {e}"))?;
    let (shape, data): (Vec<usize>, TensorData) = sample.into_parts();
    let input = Value::new(shape, data).map_err(|e| e.to_string())?;
    let mut total: Vec<StepTime> = Vec::new();
    for run in 0..=runs {
        m.set_input(0, input.clone()).map_err(|e| e.to_string())?;
        let steps = m.invoke_profiled().map_err(|e| e.to_string())?;
        if run == 0 {
            // Warm-up: weights and arena into cache, thread pool started.
            total = steps
                .into_iter()
                .map(|s| StepTime {
                    time: Duration::ZERO,
                    ..s
                })
                .collect();
            continue;
        }
        for (t, s) in total.iter_mut().zip(steps) {
            t.time += s.time;
        }
    }
    let sum: Duration = total.iter().map(|s| s.time).sum();
    println!("{:>4}  {:>9}  {:>5}  step", "#", "µs", "%");
    for (i, s) in total.iter().enumerate() {
        let us = s.time.as_secs_f64() * 1e6 / runs as f64;
        let pct = 100.0 * s.time.as_secs_f64() / sum.as_secs_f64().max(1e-12);
        let name = if s.first == s.last {
            s.first.clone()
        } else {
            format!("{} .. {}", s.first, s.last)
        };
        println!(
            "{i:>4}  {us:>9.1}  {pct:>5.1}  {name} [{}]",
            s.ops.join("+")
        );
    }
    println!(
        "total {:.3} ms per run over {runs} runs",
        sum.as_secs_f64() * 1e3 / runs as f64
    );
    Ok(())
}
