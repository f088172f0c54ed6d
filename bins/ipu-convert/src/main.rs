//! `ipu-convert`: the seeds' ConvertTool.
//!
//! `ipu-convert onnx --model_file M.onnx --input_config input_config.ini --output_file M_float.sim`

use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand};
use ipukit_calibrator::CalibrateOptions;
use ipukit_convert::{convert, parse_input_shapes, ConvertOptions, Platform};
use ipukit_offline_img::{compile_file, CompileOptions};
use ipukit_quant::calibrate::QuantLevel;
use std::path::PathBuf;

mod chain;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "ipu-convert",
    version,
    about = "Convert a trained model into an ipukit float model (*_float.sim); with -i/-n, on to a fixed model or an offline image"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Convert an ONNX model.
    Onnx(ModelArgs),
    /// Convert a Caffe model (.prototxt + .caffemodel).
    Caffe(ModelArgs),
    /// Convert a TFLite model.
    Tflite(ModelArgs),
    /// List the SoC profiles --soc_version accepts.
    #[command(name = "show_sdk_info", alias = "show-sdk-info")]
    ShowSdkInfo,
}

#[derive(Args)]
struct ModelArgs {
    /// The model to convert.
    #[arg(long = "model_file")]
    model_file: PathBuf,
    /// Caffe weights (.caffemodel).
    #[arg(long = "weight_file")]
    weight_file: Option<PathBuf>,
    /// The input_config.ini describing inputs and outputs.
    #[arg(long = "input_config")]
    input_config: PathBuf,
    /// Where to write the float model (*_float.sim); with -i/-n the fixed model
    /// (*_fixed.sim) or the offline image (*.img).
    #[arg(long = "output_file")]
    output_file: PathBuf,
    /// Target SoC profile (see `ipu-convert show_sdk_info`).
    #[arg(long = "soc_version", default_value = "generic")]
    soc_version: String,
    /// Input shapes in the model's own layout: dims separated by ',', inputs by ':'.
    #[arg(long = "input_shapes")]
    input_shapes: Option<String>,
    /// Skip the graph simplification passes.
    #[arg(long = "skip_simplify")]
    skip_simplify: bool,
    /// Calibration data (with -n): continue through calibration and write a fixed model.
    #[arg(short = 'i', long = "image", requires = "preprocess")]
    image: Option<PathBuf>,
    /// Preprocessing per input for calibration (with -i), as ipu-calibrator's -n.
    #[arg(short = 'n', long = "preprocess", requires = "image")]
    preprocess: Option<String>,
    /// With -i/-n: keep the intermediate float model next to the output.
    #[arg(long = "export_models")]
    export_models: bool,
    /// With -i/-n: quantization level L1..L5.
    #[arg(long = "quant_level", default_value = "L5")]
    quant_level: String,
    /// With -i/-n: calibration inputs run in parallel.
    #[arg(long = "num_process", default_value_t = 1)]
    num_process: usize,
    /// With -i/-n: quantization parameters to import (save_quant_param JSON).
    #[arg(long = "quant_param")]
    quant_param: Option<PathBuf>,
}

fn run(cli: Cli) -> Result<()> {
    let (platform, a) = match cli.command {
        Command::ShowSdkInfo => {
            println!(
                "ipukit {} SoC profiles (--soc_version):",
                env!("CARGO_PKG_VERSION")
            );
            for p in ipukit_soc::profiles() {
                println!("{}", p.describe());
            }
            return Ok(());
        }
        Command::Onnx(a) => (Platform::Onnx, a),
        Command::Caffe(a) => (Platform::Caffe, a),
        Command::Tflite(a) => (Platform::Tflite, a),
    };
    let opts = ConvertOptions {
        platform,
        model_file: a.model_file.clone(),
        weight_file: a.weight_file.clone(),
        input_config: a.input_config.clone(),
        soc_version: a.soc_version.clone(),
        input_shapes: a
            .input_shapes
            .as_deref()
            .map(parse_input_shapes)
            .transpose()?,
        skip_simplify: a.skip_simplify,
    };
    let calibration = match (&a.image, &a.preprocess) {
        (Some(images), Some(pre)) => Some((images.clone(), pre.clone())),
        _ => None,
    };
    let paths = chain::ChainPaths::new(&a.output_file, a.export_models);
    if calibration.is_none() && paths.image.is_some() {
        bail!(
            "--output_file {}: an offline image needs calibration data; give -i and -n (or convert to X_float.sim, then run ipu-calibrator and ipu-compiler)",
            a.output_file.display()
        );
    }
    let float_file = match &calibration {
        None => a.output_file.clone(),
        Some(_) => paths.float.clone(),
    };
    let model = convert(&opts)?;
    model.write(&float_file)?;
    let g = &model.graph;
    println!(
        "{} -> {} ({} operators, soc {})",
        opts.model_file.display(),
        float_file.display(),
        g.nodes.len(),
        model.soc.name
    );
    for &i in &g.inputs {
        let t = g.tensor(i);
        println!("  input  {:<24} {} {:?}", t.name, t.dtype, t.shape);
    }
    for &o in &g.outputs {
        let t = g.tensor(o);
        println!("  output {:<24} {} {:?}", t.name, t.dtype, t.shape);
    }
    if let Some((images, preprocess)) = calibration {
        let result = calibrate_and_compile(&a, &opts.soc_version, images, preprocess, &paths);
        if !a.export_models {
            for f in paths.intermediates() {
                let _ = std::fs::remove_file(f);
            }
        }
        result?;
    }
    Ok(())
}

/// Calibrates `paths.float` into `paths.fixed` and, for an `.img` output, compiles it.
fn calibrate_and_compile(
    a: &ModelArgs,
    soc_version: &str,
    images: PathBuf,
    preprocess: String,
    paths: &chain::ChainPaths,
) -> Result<()> {
    let cal = CalibrateOptions {
        model: paths.float.clone(),
        images,
        preprocess,
        output: Some(paths.fixed.clone()),
        num_process: a.num_process.max(1),
        level: QuantLevel::parse(&a.quant_level)?,
        soc_version: soc_version.to_string(),
        quant_param: a.quant_param.clone(),
        ..CalibrateOptions::default()
    };
    let result = ipukit_calibrator::cli::calibrate_with_progress(&cal)?;
    print!("{}", result.summary());
    println!("{} -> {}", paths.float.display(), result.output.display());
    let Some(image) = &paths.image else {
        return Ok(());
    };
    let compile = CompileOptions {
        soc: soc_version.to_string(),
        producer: format!("ipu-convert {}", env!("CARGO_PKG_VERSION")),
        source: paths
            .fixed
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        ..CompileOptions::default()
    };
    let compiled = compile_file(&paths.fixed, &compile)?;
    compiled.write(image)?;
    println!(
        "{} -> {} ({} bytes)",
        paths.fixed.display(),
        image.display(),
        compiled.bytes.len()
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
