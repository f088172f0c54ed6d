//! The kernels' error type.

use ipukit_ir::DType;
use thiserror::Error;

/// Errors raised by kernels: inconsistent shapes or attributes, unsupported element types, or
/// data that makes an operation undefined (an index out of range, an integer division by zero).
#[derive(Debug, Error, Clone, PartialEq)]
pub enum KernelError {
    /// Shapes, buffer lengths or attributes do not fit together.
    #[error("{op}: {reason}")]
    Invalid {
        /// Operator name.
        op: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The operator has no kernel for this element type.
    #[error("{op} is not supported for {dtype} tensors")]
    Unsupported {
        /// Operator name.
        op: &'static str,
        /// The element type.
        dtype: DType,
    },
}

/// Result alias for kernels.
pub type Result<T> = std::result::Result<T, KernelError>;

/// Builds a [`KernelError::Invalid`].
pub(crate) fn invalid(op: &'static str, reason: impl Into<String>) -> KernelError {
    KernelError::Invalid {
        op,
        reason: reason.into(),
    }
}

/// Checks that a buffer has exactly `want` elements.
pub(crate) fn check_len(op: &'static str, what: &str, got: usize, want: usize) -> Result<()> {
    if got != want {
        return Err(invalid(
            op,
            format!("{what} has {got} elements, expected {want}"),
        ));
    }
    Ok(())
}
