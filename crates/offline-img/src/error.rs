//! The crate's error type.

use ipukit_ir::IrError;
use ipukit_runtime::RuntimeError;
use ipukit_soc::SocError;
use thiserror::Error;

/// Everything that can go wrong compiling, loading or running an offline image.
#[derive(Debug, Error)]
pub enum ImgError {
    /// A header field failed its check; the text is the seeds' ("Image Header Input 0 Width
    /// alignment check failed", "Image Header Batch mode check failed", …) with the detail.
    #[error("Errors happened in Image Header {check}: {detail}; the offline image is damaged or was not made by this ipukit, please re-convert the model")]
    Header {
        /// The failed check as the seeds word it (`Input 0 Width alignment check failed`,
        /// `BufferSize Check Failed`, …).
        check: String,
        /// What was found and what was expected.
        detail: String,
    },
    /// The file is not an ipukit offline image (the seeds' "Not recognized model").
    #[error("Not recognized model: {0}")]
    NotRecognized(String),
    /// A section's stored CRC32 differs from its content's.
    #[error("Section {section} CRC mismatch (stored {stored:#010x}, computed {computed:#010x}): the offline image is damaged, please re-convert the model")]
    Crc {
        /// Section name (`header`, `program`, `memory plan`, `weights`, `metadata`).
        section: &'static str,
        /// CRC stored in the image.
        stored: u32,
        /// CRC of the bytes read.
        computed: u32,
    },
    /// A section is truncated or holds impossible values.
    #[error("Section {section} is corrupted: {reason}; please re-convert the model")]
    Corrupt {
        /// Section name.
        section: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The model cannot be compiled into an offline image.
    #[error("cannot compile the model: {0}")]
    Unsupported(String),
    /// The model exceeds what the SoC profile supports (one line per violation).
    #[error(transparent)]
    Soc(#[from] SocError),
    /// The fixed graph (or the graph an image describes) is malformed.
    #[error(transparent)]
    Graph(#[from] IrError),
    /// Running the model failed (bad input type or shape, kernel error).
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// A `.sim` file could not be read.
    #[error(transparent)]
    Sim(#[from] ipukit_simfmt::SimError),
    /// Batch sizes or the batch mode of a compile request or of a run are not allowed.
    #[error("{0}")]
    Batch(String),
    /// Wrong use of the API (index out of range, output before invoke, …).
    #[error("{0}")]
    Usage(String),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Result alias.
pub type Result<T> = std::result::Result<T, ImgError>;

/// A header check failure.
pub(crate) fn header(check: impl Into<String>, detail: impl Into<String>) -> ImgError {
    ImgError::Header {
        check: check.into(),
        detail: detail.into(),
    }
}

/// A corrupted section.
pub(crate) fn corrupt(section: &'static str, reason: impl Into<String>) -> ImgError {
    ImgError::Corrupt {
        section,
        reason: reason.into(),
    }
}
