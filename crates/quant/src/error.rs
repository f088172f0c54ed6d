//! The error type of this crate.

use std::path::PathBuf;
use thiserror::Error;

/// Errors of calibration, range selection and quantization-parameter files.
#[derive(Debug, Error)]
pub enum QuantError {
    /// Running the float graph failed (including `set_input` type and shape errors).
    #[error(transparent)]
    Runtime(#[from] ipukit_runtime::RuntimeError),
    /// Preprocessing an input failed.
    #[error(transparent)]
    Preprocess(#[from] ipukit_preprocess::PreprocessError),
    /// A sample given to [`crate::stats::collect`] was an error.
    #[error("{0}")]
    Sample(String),
    /// An error about one calibration sample, with its files (or `sample #<index>`).
    #[error("{input}: {source}")]
    Input {
        /// The sample's files, comma-separated, or `sample #<index>`.
        input: String,
        /// The cause.
        source: Box<QuantError>,
    },
    /// No sample could be used.
    #[error("no calibration statistics: {0}")]
    NoSamples(String),
    /// A request that does not fit (mismatched histograms, bad options, wrong input count).
    #[error("{0}")]
    Usage(String),
    /// A quantization-parameter file is not a JSON list of entries.
    #[error("{path}: {message}")]
    Json {
        /// The file (or `<string>`).
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A float operator that cannot be turned into fixed-point operators.
    #[error("cannot quantize node '{node}' ({op}): {message}")]
    Lower {
        /// The float node.
        node: String,
        /// Its operator.
        op: String,
        /// Why, and what to do.
        message: String,
    },
    /// Building the fixed graph failed (an internal inconsistency, reported with its node).
    #[error(transparent)]
    Ir(#[from] ipukit_ir::IrError),
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// Result alias.
pub type Result<T> = std::result::Result<T, QuantError>;
