//! `ipu-calibrator`: the seeds' `calibrator`.
//!
//! `ipu-calibrator -m model_float.sim -i images/ -n preprocess.py [--input_config INI] [-o model_fixed.sim]`

use anyhow::Result;
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use ipukit_calibrator::{calibrate, CalibrateOptions, Phase};
use ipukit_quant::calibrate::QuantLevel;
use ipukit_quant::lower::LayerBits;
use ipukit_quant::range::RangeMethod;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Instant;

#[derive(Parser)]
#[command(
    name = "ipu-calibrator",
    version,
    about = "Quantize an ipukit float model (*_float.sim) into a fixed-point model (*_fixed.sim)"
)]
struct Cli {
    /// The float model (*_float.sim).
    #[arg(short = 'm', long = "model")]
    model: PathBuf,
    /// Calibration data: an image, a folder of images, or a list file (comma-separated per line for multi-input models).
    #[arg(short = 'i', long = "image")]
    image: PathBuf,
    /// Preprocessing per input: a .py with image_preprocess(path, norm), a .toml pipeline, an inline pipeline, or raw; comma-separated for multi-input models.
    #[arg(short = 'n', long = "preprocess")]
    preprocess: String,
    /// input_config.ini (default: the one stored in the float model).
    #[arg(long = "input_config")]
    input_config: Option<PathBuf>,
    /// Output fixed model (default: next to the model, _float.sim -> _fixed.sim).
    #[arg(short = 'o', long = "output")]
    output: Option<PathBuf>,
    /// Calibration inputs run in parallel.
    #[arg(long = "num_process", default_value_t = 1)]
    num_process: usize,
    /// Quantization level L1..L5 (docs/tools/ipu-calibrator.md).
    #[arg(long = "quant_level", default_value = "L5")]
    quant_level: String,
    /// Keep one set of statistics shared by all workers (bounded memory).
    #[arg(long = "memory_saving")]
    memory_saving: bool,
    /// Target SoC profile.
    #[arg(long = "soc_version", default_value = "generic")]
    soc_version: String,
    /// Quantization parameters to import (save_quant_param JSON); imported values win.
    #[arg(long = "quant_param")]
    quant_param: Option<PathBuf>,
    /// Range method of 8-bit activations at L3 and above: minmax, moving_average, percentile[:p], mse, entropy.
    #[arg(long = "activation_method")]
    activation_method: Option<String>,
    /// Deprecated: the category does not change calibration.
    #[arg(short = 'c', long = "category", hide = true)]
    category: Option<String>,
}

fn run(cli: Cli) -> Result<()> {
    let opts = CalibrateOptions {
        model: cli.model.clone(),
        input_config: cli.input_config,
        images: cli.image,
        preprocess: cli.preprocess,
        output: cli.output,
        num_process: cli.num_process.max(1),
        level: QuantLevel::parse(&cli.quant_level)?,
        memory_saving: cli.memory_saving,
        soc_version: cli.soc_version,
        quant_param: cli.quant_param,
        activation_method: cli
            .activation_method
            .as_deref()
            .map(RangeMethod::parse)
            .transpose()?,
        ..CalibrateOptions::default()
    };
    let bar = Mutex::new(None::<ProgressBar>);
    let start = Instant::now();
    let progress = |phase: Phase| {
        let Ok(mut bar) = bar.lock() else { return };
        match phase {
            Phase::Statistics(p) => {
                let b = bar.get_or_insert_with(|| {
                    let b = ProgressBar::new(p.total.unwrap_or(0) as u64);
                    b.set_style(
                        ProgressStyle::with_template(
                            "statistics {bar:40} {pos}/{len} [{elapsed_precise}<{eta_precise}] {per_sec}",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                    );
                    b
                });
                b.set_position(p.done as u64);
            }
            Phase::Sensitivity => {
                if let Some(b) = bar.take() {
                    b.finish_and_clear();
                }
                eprintln!("measuring the 8-bit noise of every layer ...");
            }
            Phase::Check(round) => {
                if let Some(b) = bar.take() {
                    b.finish_and_clear();
                }
                eprintln!("checking the fixed model against the float model (round {round}) ...");
            }
            Phase::Checked(round, n16, a) => eprintln!(
                "check {round}: {n16} layer(s) in 16 bits: output cosine min {:.6}, mean {:.6}",
                a.min_cosine, a.mean_cosine
            ),
        }
    };
    let cal = calibrate(&opts, &progress)?;
    if let Ok(mut b) = bar.lock() {
        if let Some(b) = b.take() {
            b.finish_and_clear();
        }
    }
    if let Some(rep) = &cal.imported {
        println!(
            "quant_param: {} entr{} imported",
            rep.accepted.len(),
            if rep.accepted.len() == 1 { "y" } else { "ies" }
        );
        for r in &rep.rejected {
            println!("quant_param {r}");
        }
    }
    println!(
        "{:<40} {:<18} {:>6} {:>9}  reason",
        "layer", "op", "bits", "SQNR dB"
    );
    for l in &cal.plan.layers {
        let bits = match l.bits {
            LayerBits::Int8 => "8",
            LayerBits::Int16 => "16",
        };
        let sqnr = l
            .noise
            .map(|n| {
                if n > 0.0 {
                    format!("{:.1}", -10.0 * n.log10())
                } else {
                    "inf".into()
                }
            })
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<40} {:<18} {:>6} {:>9}  {}",
            l.node, l.op, bits, sqnr, l.reason
        );
    }
    let n16 = cal.plan.int16_count();
    println!(
        "{} layers: {} in 8-bit mode, {n16} in 16-bit mode ({})",
        cal.plan.layers.len(),
        cal.plan.layers.len() - n16,
        opts.level.as_str()
    );
    if let Some(a) = cal.agreement {
        println!(
            "fixed vs float on {} calibration input(s): output cosine min {:.6}, mean {:.6}",
            a.inputs, a.min_cosine, a.mean_cosine
        );
    }
    println!(
        "calibrated on {} input(s) in {:.2} s; wrote {}",
        cal.samples,
        start.elapsed().as_secs_f64(),
        cal.output.display()
    );
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
