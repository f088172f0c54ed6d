//! Element-wise arithmetic with numpy broadcasting, casts, reductions, and max pooling with
//! the position of each maximum.
//!
//! Arithmetic runs on `f32` and on the integer types shape arithmetic needs (`i64`, `i32`);
//! integer `Add`/`Sub`/`Mul` wrap, `Div` truncates toward zero and fails on a zero divisor.

mod binary;
mod cast;
mod pool;
mod reduce;
mod unary;
pub(crate) mod vecmath;

pub use binary::{binary, binary_inplace, compare, logical, BinaryElement, Side};
pub use cast::{cast, CastFrom};
pub use pool::{max_pool2d_with_indices, MaxPoolElement};
pub use reduce::{arg_reduce, reduce, ReduceElement};
pub use unary::{not, unary_f32, unary_f32_inplace, unary_int, IntUnaryElement};
