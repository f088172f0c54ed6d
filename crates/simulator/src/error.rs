//! The simulator's error type.

use std::path::PathBuf;
use thiserror::Error;

/// Errors of loading and running models.
#[derive(Debug, Error)]
pub enum SimError {
    /// The model path does not exist.
    #[error("No such model: {0}")]
    NoSuchModel(PathBuf),
    /// The file is not a model ipukit can run.
    #[error("Not recognized model: {path}: {why}")]
    NotRecognized {
        /// The file.
        path: PathBuf,
        /// What it is instead.
        why: String,
    },
    /// Reading a file failed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The .sim file is corrupt.
    #[error(transparent)]
    Sim(#[from] ipukit_simfmt::SimError),
    /// The offline image cannot be loaded or run (header checks, CRC, batch sizes, …).
    #[error("{path}: {source}")]
    Offline {
        /// The image.
        path: PathBuf,
        /// Cause.
        source: ipukit_offline_img::ImgError,
    },
    /// The model's stored input config is unreadable.
    #[error("the input config stored in {path} is unreadable: {source}")]
    Config {
        /// The model.
        path: PathBuf,
        /// Cause.
        source: ipukit_config::ConfigError,
    },
    /// Running the model failed (including `set_input` shape and dtype errors).
    #[error(transparent)]
    Runtime(#[from] ipukit_runtime::RuntimeError),
    /// Preprocessing failed.
    #[error(transparent)]
    Preprocess(#[from] ipukit_preprocess::PreprocessError),
    /// An error about one input item, with its files (shown once: not repeated when the
    /// cause's message already starts with them).
    #[error("{}", with_input(input, source))]
    Item {
        /// The input files of the item.
        input: String,
        /// Cause.
        source: Box<SimError>,
    },
    /// The request does not fit the model (category, number of preprocess methods, …).
    #[error("{0}")]
    Usage(String),
    /// Writing results failed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

fn with_input(input: &str, source: &SimError) -> String {
    let message = source.to_string();
    match message.strip_prefix(input) {
        Some(rest) if rest.starts_with(':') => message,
        _ => format!("{input}: {message}"),
    }
}

/// Result alias.
pub type Result<T> = std::result::Result<T, SimError>;
