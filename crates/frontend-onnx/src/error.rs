//! The importer's error type.

use thiserror::Error;

/// Errors raised while reading or converting an ONNX model.
#[derive(Debug, Error)]
pub enum OnnxError {
    /// The model file does not exist (the seeds' ConvertTool message).
    #[error("Input graph file {0} does not exist!")]
    NotFound(String),
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// Path of the file.
        path: String,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The bytes are not a valid ONNX protobuf.
    #[error("{path} is not a valid ONNX model (protobuf decoding failed: {reason}); check that --model_file is an .onnx file")]
    Decode {
        /// Path or description of the input.
        path: String,
        /// Decoder message.
        reason: String,
    },
    /// The model uses a feature outside what ipukit supports.
    #[error("{0}")]
    Unsupported(String),
    /// The model is malformed or inconsistent.
    #[error("{0}")]
    Invalid(String),
    /// A node failed to import; wraps the cause with the node's name and type.
    #[error("node '{node}' ({op_type}): {reason}")]
    Node {
        /// Node name.
        node: String,
        /// ONNX operator type.
        op_type: String,
        /// What went wrong.
        reason: String,
    },
    /// An IR-level error (shape inference, passes).
    #[error(transparent)]
    Ir(#[from] ipukit_ir::IrError),
}

/// Result alias for the importer.
pub type Result<T> = std::result::Result<T, OnnxError>;
