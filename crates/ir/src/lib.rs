//! The ipukit graph IR.
//!
//! A [`Graph`] is a list of [`Tensor`]s and a topologically ordered list of [`Node`]s. Every
//! tensor has a concrete [`DType`] and shape; 4-D activations are NHWC as on the IPU, convolution
//! weights OHWI and depthwise weights `1HWC`. Operators are a closed enum ([`Op`]) with typed
//! attributes, so a pass or a backend that forgets an operator fails to compile rather than at
//! run time.
//!
//! Frontends build graphs with [`Graph::add_tensor`] / [`Graph::add_node`]; [`infer`] computes the
//! output types of a node from its inputs; [`passes`] holds the graph rewrites every frontend
//! shares (constant folding, BatchNorm folding, identity removal, transpose cancellation).

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod dtype;
pub mod error;
pub mod graph;
pub mod infer;
pub mod ops;
pub mod passes;
pub mod tensor;

pub use dtype::DType;
pub use error::{IrError, Result};
pub use graph::{Graph, Node, NodeId, TensorId};
pub use ops::Op;
pub use tensor::{QuantParams, Tensor, TensorData};
