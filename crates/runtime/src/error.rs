//! The runtime's error type.

use ipukit_ir::{DType, IrError};
use ipukit_kernels::KernelError;
use thiserror::Error;

/// Errors of sessions and the reference evaluator.
///
/// The `set_input` messages are the seeds' (`calibrator_custom.simulator`), word for word.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum RuntimeError {
    /// The graph is malformed.
    #[error(transparent)]
    Graph(#[from] IrError),
    /// `set_input` got a value of the wrong element type.
    #[error(
        "Cannot set input tensor: Got tensor of type {got} but expected type {expected} for input {index}, name: {name}"
    )]
    InputType {
        /// Element type of the value.
        got: DType,
        /// Element type of the input.
        expected: DType,
        /// Input index.
        index: usize,
        /// Input name.
        name: String,
    },
    /// `set_input` got a value whose rank differs from the input's.
    #[error(
        "Cannot set tensor: Dimension mismatch. Got {got} dimensions but expected {expected} for input {index}, name: {name}"
    )]
    InputRank {
        /// Rank of the value.
        got: usize,
        /// Rank of the input.
        expected: usize,
        /// Input index.
        index: usize,
        /// Input name.
        name: String,
    },
    /// `set_input` got a value with a different length along some dimension.
    #[error(
        "Cannot set tensor: Dimension mismatch. Got {got} but expected {expected} for dimension {dim} of input {index}, name: {name}"
    )]
    InputDim {
        /// Length in the value.
        got: usize,
        /// Length of the input.
        expected: usize,
        /// The first dimension that differs.
        dim: usize,
        /// Input index.
        index: usize,
        /// Input name.
        name: String,
    },
    /// A [`crate::Value`] whose data does not fill its shape.
    #[error("value has {got} elements but its shape {shape:?} holds {expected}")]
    ValueLength {
        /// Number of elements in the data.
        got: usize,
        /// Number of elements the shape holds.
        expected: usize,
        /// The shape.
        shape: Vec<usize>,
    },
    /// An input index past the model's inputs.
    #[error("input index {index} is out of range: the model has {count} input(s)")]
    InputIndex {
        /// The index asked for.
        index: usize,
        /// Number of model inputs.
        count: usize,
    },
    /// An output index past the model's outputs.
    #[error("output index {index} is out of range: the model has {count} output(s)")]
    OutputIndex {
        /// The index asked for.
        index: usize,
        /// Number of model outputs.
        count: usize,
    },
    /// `run` got the wrong number of inputs.
    #[error("got {got} input(s) but the model has {expected}")]
    InputCount {
        /// Number of values given.
        got: usize,
        /// Number of model inputs.
        expected: usize,
    },
    /// `invoke` before every input was set.
    #[error("input {index} (name: {name}) has not been set: call set_input before invoke")]
    InputNotSet {
        /// Input index.
        index: usize,
        /// Input name.
        name: String,
    },
    /// Outputs asked for before `invoke`.
    #[error("no output is available: call invoke first")]
    NotInvoked,
    /// A kernel refused its inputs.
    #[error("node '{node}' ({op}): {source}")]
    Kernel {
        /// Node name.
        node: String,
        /// Operator name.
        op: &'static str,
        /// What the kernel said.
        #[source]
        source: KernelError,
    },
    /// The thread pool could not be created.
    #[error("cannot create a pool of {threads} thread(s): {reason}")]
    ThreadPool {
        /// Threads asked for.
        threads: usize,
        /// The system's reason.
        reason: String,
    },
}

/// Result alias for the runtime.
pub type Result<T> = std::result::Result<T, RuntimeError>;
