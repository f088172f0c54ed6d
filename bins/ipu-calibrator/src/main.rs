//! `ipu-calibrator`: the seeds' `calibrator`.
//!
//! `ipu-calibrator -m model_float.sim -i images/ -n preprocess.py [--input_config INI] [-o model_fixed.sim]`

use anyhow::Result;
use clap::Parser;
use ipukit_calibrator::cli::calibrate_with_progress;
use ipukit_calibrator::{save_quant_param, CalibrateOptions};
use ipukit_quant::calibrate::QuantLevel;
use ipukit_quant::json::ExportOptions;
use ipukit_quant::range::RangeMethod;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
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
    #[arg(
        short = 'i',
        long = "image",
        required_unless_present = "save_quant_param"
    )]
    image: Option<PathBuf>,
    /// Preprocessing per input: a .py with image_preprocess(path, norm), a .toml pipeline, an inline pipeline, or raw; comma-separated for multi-input models.
    #[arg(
        short = 'n',
        long = "preprocess",
        required_unless_present = "save_quant_param"
    )]
    preprocess: Option<String>,
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
    /// Write the fixed model's quantization parameters as JSON (the seeds' save_quant_param.py format). With a fixed model as -m, only exports.
    #[arg(long = "save_quant_param")]
    save_quant_param: Option<PathBuf>,
    /// With --save_quant_param: include constant tensors' (dequantized) data.
    #[arg(long = "with_data")]
    with_data: bool,
    /// Range method of 8-bit activations at L3 and above: minmax, moving_average, percentile[:p], mse, entropy.
    #[arg(long = "activation_method")]
    activation_method: Option<String>,
    /// Deprecated: the category does not change calibration.
    #[arg(short = 'c', long = "category", hide = true)]
    category: Option<String>,
}

fn run(cli: Cli) -> Result<()> {
    let export = ExportOptions {
        include_data: cli.with_data,
    };
    let (Some(images), Some(preprocess)) = (cli.image, cli.preprocess) else {
        // Export only (clap requires -i and -n otherwise).
        let out = cli
            .save_quant_param
            .as_deref()
            .unwrap_or(Path::new("quant_param.json"));
        let n = save_quant_param(&cli.model, out, export)?;
        println!(
            "wrote {n} entries of {} to {}",
            cli.model.display(),
            out.display()
        );
        return Ok(());
    };
    let opts = CalibrateOptions {
        model: cli.model.clone(),
        input_config: cli.input_config,
        images,
        preprocess,
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
    let start = Instant::now();
    let cal = calibrate_with_progress(&opts)?;
    print!("{}", cal.summary());
    if let Some(out) = &cli.save_quant_param {
        let n = save_quant_param(&cal.output, out, export)?;
        println!(
            "wrote {n} quantization parameter entries to {}",
            out.display()
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
