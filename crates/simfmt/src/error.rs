//! The crate's error type.

use std::path::PathBuf;
use thiserror::Error;

/// Errors from reading or writing a `.sim` file.
#[derive(Debug, Error)]
pub enum SimError {
    /// The bytes are not a TFLite flatbuffer at all (wrong or missing `TFL3` identifier).
    #[error("Not recognized model: {0}")]
    NotRecognized(String),
    /// The file claims to be a `.sim` but its content is broken (truncated, out-of-range index,
    /// inconsistent shapes, undecodable options…).
    #[error("corrupt .sim file: {0}")]
    Corrupt(String),
    /// A well-formed TFLite file uses something ipukit does not support (several subgraphs,
    /// an unknown operator, a string tensor…).
    #[error("unsupported .sim content: {0}")]
    Unsupported(String),
    /// The graph cannot be written: it is invalid, or a value does not fit the format (a
    /// dimension larger than `i32::MAX`, a reserved metadata key…).
    #[error("cannot write .sim: {0}")]
    Unwritable(String),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A read error, with the file it is about.
    #[error("{path}: {source}")]
    InFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: Box<SimError>,
    },
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, SimError>;

pub(crate) fn corrupt(msg: impl Into<String>) -> SimError {
    SimError::Corrupt(msg.into())
}

pub(crate) fn unsupported(msg: impl Into<String>) -> SimError {
    SimError::Unsupported(msg.into())
}

pub(crate) fn unwritable(msg: impl Into<String>) -> SimError {
    SimError::Unwritable(msg.into())
}
