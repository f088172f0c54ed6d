//! The ipukit interpreter.
//!
//! [`Session`] runs an [`ipukit_ir::Graph`] with the `calibrator_custom.simulator` interface the
//! seeds describe: [`Session::input_details`], [`Session::set_input`], [`Session::invoke`],
//! [`Session::output`], [`Session::tensor_details`]. At creation it validates the graph, packs
//! the weights of convolutions and fully-connected layers once, fuses element-wise
//! activations into the layer before them, and plans activation buffers by liveness so that
//! buffers of dead tensors are reused. It runs on its own rayon pool of
//! [`SessionOptions::threads`] threads.
//!
//! Fixed-point models (`docs/fixed-point.md`) run on the integer kernels: the weights of
//! quantized layers and the tables of `QLut` are packed once at creation for the CPU's best
//! instruction set, picked at run time; results are the same integers for any number of
//! threads. A quantized convolution runs the element-wise nodes that only read its output
//! (a change to UINT8, PReLU, SiLU) on each chunk of its output while in cache
//! ([`conv_tail`]); [`Session::fused_nodes`] lists the groups. Their inputs take the model's integer types (UINT8 images in front of
//! `InputNormalize`, INT16 raw data), and [`TensorInfo`] / [`TensorDetails`] report each
//! tensor's scale, zero point and calibrated range.
//!
//! [`NodeKernel`] runs one node on caller-owned buffers with the same packed kernels, for
//! executors that plan their own memory (the offline image).
//!
//! [`ReferenceEvaluator`] implements [`ipukit_ir::passes::ConstEvaluator`] with the same
//! kernels, for constant folding in the frontends.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod buffer;
mod error;
mod evaluator;
mod exec;
mod fixed;
mod node;
mod plan;
mod session;
mod tail;
mod value;
mod workers;

pub use buffer::DataMut;
pub use error::{Result, RuntimeError};
pub use evaluator::ReferenceEvaluator;
pub use node::{NodeKernel, NodeOutput};
pub use session::{Session, SessionOptions, TensorDetails, TensorInfo};
pub use tail::{conv_tail, elementwise_tail, layer_tail, LayerTail};
pub use value::{DataRef, Value, ValueView};
pub use workers::{install_awake, thread_pool};
