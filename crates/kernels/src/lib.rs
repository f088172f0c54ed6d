//! ipukit compute kernels.
//!
//! Kernels take plain slices, shapes and the IR's attribute structs; they know nothing about
//! graphs. Tensors are NHWC as in the IR.
//!
//! * [`array`] — data movement (concat, split, slice, transpose, gather, pad, …), generic over
//!   the element type so that constant folding can run them on `i64` shape arithmetic.
//! * [`math`] — element-wise arithmetic with numpy broadcasting, casts, reductions; for `f32`
//!   and the integer types shape arithmetic needs.
//! * [`float`] — float32 compute kernels: convolutions and matrix products on GEMM with
//!   prepacked weights, depthwise, pooling, resize, softmax.
//!
//! * [`int`] — the fixed-point kernels: integer GEMM (AVX2, AVX-512 VNNI, AMX) under
//!   convolutions and matrix products, depthwise, pooling, tables, requantization.
//!
//! Hot buffers (packed weights, scratch, arenas) are [`AlignedVec`]s, on cache lines.
//!
//! Parallel kernels use the *current* rayon thread pool (call them inside
//! `ThreadPool::install` to pick the number of threads).

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod aligned;
pub mod array;
pub mod element;
pub mod error;
pub mod float;
pub mod int;
pub mod math;
pub(crate) mod par;
pub mod shape;
pub(crate) mod simd;
pub(crate) mod window;

pub use aligned::AlignedVec;
pub use element::Element;
pub use error::{KernelError, Result};
