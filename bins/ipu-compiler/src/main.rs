//! `ipu-compiler`: the seeds' `compiler.py` — a fixed model (`*_fixed.sim`) to an offline
//! image (`*.img`).
//!
//! `ipu-compiler -m X_fixed.sim [--soc_version S] [-b N | -b 1,2,4 --batch_mode n_buf|one_buf]
//! [-c Classification|Detection|Unknown] [-o PATH] [--report]`

use anyhow::{anyhow, Result};
use clap::Parser;
use ipukit_offline_img::{compile_file, default_output, BatchMode, Category, CompileOptions};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(Parser)]
#[command(
    name = "ipu-compiler",
    version,
    about = "Compile an ipukit fixed-point model (*_fixed.sim) into an offline image (*.img)"
)]
struct Cli {
    /// The fixed model (*_fixed.sim).
    #[arg(short = 'm', long = "model")]
    model: PathBuf,
    /// Target SoC profile (see `ipu-convert show_sdk_info`).
    #[arg(long = "soc_version", default_value = "generic")]
    soc_version: String,
    /// Batch: the maximum batch for n_buf, or up to 10 comma-separated sizes for one_buf.
    #[arg(short = 'b', long = "batch", default_value = "1")]
    batch: String,
    /// Multi-batch mode: n_buf (independent buffers per item) or one_buf (items stacked in one buffer).
    #[arg(long = "batch_mode", default_value = "n_buf")]
    batch_mode: String,
    /// Model category: Classification, Detection or Unknown.
    #[arg(short = 'c', long = "category", default_value = "Unknown")]
    category: String,
    /// Output: a folder (the image is named <model file name>_sgsimg.img there) or a file path; default next to the model.
    #[arg(short = 'o', long = "output")]
    output: Option<PathBuf>,
    /// Print the per-layer report (fused op, precision, MACs, weights, arena, cycles).
    #[arg(long = "report")]
    report: bool,
}

fn parse_batch(text: &str) -> Result<Vec<usize>> {
    text.split(',')
        .map(|s| {
            s.trim().parse::<usize>().map_err(|_| {
                anyhow!(
                    "-b/--batch: '{}' is not a batch size (use N or 1,2,4)",
                    s.trim()
                )
            })
        })
        .collect()
}

fn run(cli: Cli) -> Result<()> {
    let batch_mode: BatchMode = cli.batch_mode.parse()?;
    let category: Category = cli.category.parse()?;
    let opts = CompileOptions {
        soc: cli.soc_version,
        batch_mode,
        batch_sizes: parse_batch(&cli.batch)?,
        category,
        producer: format!("ipu-compiler {}", env!("CARGO_PKG_VERSION")),
        source: String::new(),
    };
    let out = default_output(&cli.model, cli.output.as_deref());
    eprintln!("compiling {} ...", cli.model.display());
    let start = Instant::now();
    let compiled = compile_file(&cli.model, &opts)?;
    compiled.write(&out)?;
    let r = &compiled.report;
    if cli.report {
        println!("{r}");
    } else {
        println!(
            "{} nodes -> {} steps; {} MACs; arena {} bytes (naive sum {}); estimated {:.3} ms on {}",
            r.nodes_in,
            r.steps,
            r.total_macs,
            r.arena_bytes,
            r.naive_bytes,
            r.estimated_ms(),
            r.soc
        );
    }
    println!(
        "compiled in {:.2} s; wrote {} ({} bytes, {} batch {:?})",
        start.elapsed().as_secs_f64(),
        out.display(),
        compiled.bytes.len(),
        batch_mode.as_str(),
        compiled.image.header.batch_sizes
    );
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: multi-line causes (SoC limit violations) are joined.
            let msg = format!("{e}")
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join("; ");
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}
