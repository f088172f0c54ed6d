//! The IR's error type.

use thiserror::Error;

/// Errors raised while building, checking or rewriting a graph.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum IrError {
    /// An operator got inputs it cannot work with (wrong count, rank, dtype or shape).
    #[error("{op} node '{node}': {reason}")]
    InvalidNode {
        /// Operator name.
        op: String,
        /// Node name.
        node: String,
        /// What is wrong, in words a user can act on.
        reason: String,
    },
    /// The graph itself is malformed (dangling tensor, cycle, duplicate name).
    #[error("invalid graph: {0}")]
    InvalidGraph(String),
    /// A constant-folding evaluation failed.
    #[error("cannot fold constant node '{node}': {reason}")]
    Fold {
        /// Node name.
        node: String,
        /// Why the evaluator refused.
        reason: String,
    },
}

/// Result alias for the IR.
pub type Result<T> = std::result::Result<T, IrError>;

/// Builds an [`IrError::InvalidNode`] for shape inference code.
pub(crate) fn invalid(op: &str, reason: impl Into<String>) -> IrError {
    IrError::InvalidNode {
        op: op.to_string(),
        node: String::new(),
        reason: reason.into(),
    }
}
