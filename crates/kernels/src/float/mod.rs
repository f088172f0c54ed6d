//! Float32 kernels (NHWC).
//!
//! Layers with weights come in a *packed* form built once (at session creation) from the IR
//! attributes and constant weights: [`PackedConv`], [`PackedDepthwise`],
//! [`PackedTransposeConv`], [`PackedLinear`]. Their `run` methods allocate nothing; the
//! convolutions take a caller-owned scratch buffer of [`PackedConv::scratch_len`] elements.
//! Every packed layer ends with an [`Epilogue`]: bias, the IR's fused activation, and
//! optionally one more element-wise function (for example SiLU) applied while the output is
//! still in cache.

mod conv;
mod depthwise;
mod epilogue;
mod gemm;
mod igemm;
mod linear;
mod pool;
pub(crate) mod resize;
mod softmax;
#[cfg(test)]
mod testutil;
mod transpose_conv;

pub use conv::PackedConv;
pub use depthwise::PackedDepthwise;
pub use epilogue::{silu, silu_inplace, Epilogue, PostOp};
pub use linear::{matmul, PackedLinear};
pub use pool::pool2d;
pub use resize::resize;
pub use softmax::softmax;
pub use transpose_conv::PackedTransposeConv;
