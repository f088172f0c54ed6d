//! Integer kernels with the fixed-point semantics of `docs/fixed-point.md` (NHWC).
//!
//! Every function computes exactly the integers the document defines; the tests check each
//! kernel against a naive loop transcribed from the document, and every SIMD path against
//! the portable one ([`Isa::Scalar`]). Results never depend on the number of threads.
//!
//! * Layers with weights are packed once ([`PackedQConv`], [`PackedQDepthwise`],
//!   [`PackedQTransposeConv`], [`PackedQFullyConnected`]) for an [`Isa`] and run on `u8`
//!   (8-bit mode) or `i16` (16-bit mode) inputs, writing the layer's output type.
//! * Element-wise and data-dependent operators are plain functions: [`qbinary`],
//!   [`qrescale`], [`qlut`] / [`PackedQLut`], [`qsoftmax`], [`qmatmul`], [`max_pool2d`],
//!   [`qavg_pool2d`], [`qreduce`], [`reduce_extreme`], [`resize_nearest`], [`qresize`],
//!   [`quantize`], [`dequantize`], [`input_normalize`]. The `*_isa` variants take the
//!   instruction set explicitly (the tests and benches compare them).
//! * A convolution may run with a [`Tail`] of element-wise operators applied to each chunk
//!   of its output while in cache ([`PackedQConv::run_tail`]).
//! * [`rshift_round`], [`div_round`], [`requant`] and [`sat_out`] are the rounding rules of §2.

mod amx;
mod arith;
mod binary;
mod conv;
mod depthwise;
mod epilogue;
mod gemm;
mod input;
mod isa;
mod linear;
mod lut;
mod pool;
mod prelu;
mod quantize;
mod reduce;
mod rescale;
mod resize;
mod softmax;
mod tail;
#[cfg(test)]
mod testutil;
mod transpose_conv;

pub use arith::{div_round, requant, requant_i128, rshift_round, rshift_round_i128, sat_out, QInt};
pub use binary::{qbinary, qbinary_isa};
pub use conv::{tiling_window, ChannelScale, LayerInput, PackedQConv, QWeights};
pub use depthwise::PackedQDepthwise;
pub use input::{input_normalize, input_normalize_rescaled, yuv_to_rgb};
pub use isa::Isa;
pub use linear::{qmatmul, qmatmul_isa, PackedQFullyConnected};
pub use lut::{build_lut, lut_value, qlut, PackedQLut};
pub use pool::{max_pool2d, max_pool2d_isa, qavg_pool2d, qavg_pool2d_isa};
pub use prelu::Prelu;
pub use quantize::{dequantize, dequantize_isa, quantize, quantize_isa};
pub use reduce::{qreduce, qreduce_sums, reduce_extreme};
pub use rescale::{qrescale, qrescale_isa};
pub use resize::{qresize, resize_nearest};
pub use softmax::{build_exp_table, qsoftmax};
pub use tail::{Tail, TailOp, TailOperand};
pub use transpose_conv::PackedQTransposeConv;
