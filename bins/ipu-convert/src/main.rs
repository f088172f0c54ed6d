//! `ipu-convert`: the seeds' ConvertTool.
//!
//! `ipu-convert onnx --model_file M.onnx --input_config input_config.ini --output_file M_float.sim`

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use ipukit_convert::{convert, parse_input_shapes, ConvertOptions, Platform};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "ipu-convert",
    version,
    about = "Convert a trained model into an ipukit float model (*_float.sim)"
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
    /// Where to write the float model (*_float.sim).
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
        model_file: a.model_file,
        weight_file: a.weight_file,
        input_config: a.input_config,
        soc_version: a.soc_version,
        input_shapes: a
            .input_shapes
            .as_deref()
            .map(parse_input_shapes)
            .transpose()?,
        skip_simplify: a.skip_simplify,
    };
    let model = convert(&opts)?;
    model.write(&a.output_file)?;
    let g = &model.graph;
    println!(
        "{} -> {} ({} operators, soc {})",
        opts.model_file.display(),
        a.output_file.display(),
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
