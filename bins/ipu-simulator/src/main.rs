//! `ipu-simulator`: the seeds' `simulator.py`.
//!
//! `ipu-simulator -i images/ -m model_float.sim -n preprocess.py -c Classification --num_process 2`

use anyhow::Result;
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use ipukit_preprocess::{collect_inputs, Preprocessor};
use ipukit_simulator::{run_dataset, Category, OpenOptions, RunOptions, SimModel};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(Parser)]
#[command(
    name = "ipu-simulator",
    version,
    about = "Run an ipukit float, fixed or offline model on images, folders or list files"
)]
struct Cli {
    /// An image, a folder of images, or a list file (one inference per line, comma-separated for multi-input models).
    #[arg(short = 'i', long = "image")]
    image: PathBuf,
    /// The model: *_float.sim, *_fixed.sim or an offline .img (the type is read from the file).
    #[arg(short = 'm', long = "model")]
    model: PathBuf,
    /// Preprocessing per input: a .py with image_preprocess(path, norm), a .toml pipeline, an inline pipeline, or raw; comma-separated for multi-input models.
    #[arg(short = 'n', long = "preprocess")]
    preprocess: String,
    /// Classification (top-5), Detection (TFLite_Detection_PostProcess outputs) or Unknown (every output tensor).
    #[arg(short = 'c', long = "category", default_value = "Unknown")]
    category: String,
    /// Target SoC profile.
    #[arg(long = "soc_version", default_value = "generic")]
    soc_version: String,
    /// Inferences run in parallel.
    #[arg(long = "num_process", default_value_t = 1)]
    num_process: usize,
    /// Save each model input as <image name>.bin in the current directory.
    #[arg(long = "dump_rawdata")]
    dump_rawdata: bool,
    /// Skip inputs whose results are already in ./log/output.
    #[arg(long = "continue_run")]
    continue_run: bool,
    /// Also write every output as ./log/output/<image stem>_<output index>.npy.
    #[arg(long = "output_npy")]
    output_npy: bool,
    /// Deprecated: the model type is read from the file.
    #[arg(short = 't', long = "type", hide = true)]
    model_type: Option<String>,
}

fn run(cli: Cli) -> Result<()> {
    ipukit_soc::profile(&cli.soc_version)?;
    if cli.model_type.is_some() {
        eprintln!(
            "warning: -t/--type is deprecated and ignored; the model type is read from the file"
        );
    }
    let category: Category = cli.category.parse()?;
    let mut model = SimModel::open(&cli.model, &OpenOptions { threads: None })?;
    let n_inputs = model.input_details().len();
    let items = collect_inputs(&cli.image, n_inputs)?;
    let methods = Preprocessor::from_args(&cli.preprocess, n_inputs)?;
    let opts = RunOptions {
        category,
        num_process: cli.num_process.max(1),
        dump_rawdata: cli.dump_rawdata,
        continue_run: cli.continue_run,
        output_npy: cli.output_npy,
        ..RunOptions::default()
    };
    let bar = if items.len() > 1 {
        let b = ProgressBar::new(items.len() as u64);
        b.set_style(
            ProgressStyle::with_template(
                "{bar:40} {pos}/{len} [{elapsed_precise}<{eta_precise}] {per_sec}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    } else {
        ProgressBar::hidden()
    };
    let start = Instant::now();
    let summary = run_dataset(&mut model, &items, &methods, &opts, &|| bar.inc(1))?;
    bar.finish_and_clear();
    let elapsed = start.elapsed();
    let skipped = summary.items.iter().filter(|r| r.skipped).count();
    for r in summary.items.iter().filter(|r| !r.skipped) {
        let name = r
            .inputs
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(",");
        match category {
            Category::Classification => {
                let top: Vec<String> = r
                    .top5
                    .iter()
                    .map(|(i, s)| format!("{i} ({s:.6})"))
                    .collect();
                println!("{name}: top-5 {}", top.join(", "));
            }
            Category::Detection => print!("{name}:\n{}", r.detections),
            Category::Unknown => {}
        }
    }
    let done = summary.items.len() - skipped;
    println!(
        "{} model {}: {done} input(s) in {:.2} s ({:.1}/s){}; results in {}",
        model.stage.as_str(),
        cli.model.display(),
        elapsed.as_secs_f64(),
        done as f64 / elapsed.as_secs_f64().max(1e-9),
        if skipped > 0 {
            format!(", {skipped} already done")
        } else {
            String::new()
        },
        opts.out_dir.display()
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
