//! Element types the generic kernels work on.

use ipukit_ir::DType;

/// An element type of a tensor; every [`DType`] has one.
pub trait Element: Copy + Default + PartialEq + Send + Sync + std::fmt::Debug + 'static {
    /// The matching [`DType`].
    const DTYPE: DType;
    /// Conversion from `f32` with Rust `as` semantics (truncation toward zero, saturation);
    /// used for fill values such as the constant of a Pad.
    fn from_f32(v: f32) -> Self;
}

macro_rules! element {
    ($($t:ty => $d:ident),* $(,)?) => {$(
        impl Element for $t {
            const DTYPE: DType = DType::$d;
            #[inline]
            fn from_f32(v: f32) -> Self {
                v as $t
            }
        }
    )*};
}

element! {
    f32 => F32,
    i64 => I64,
    i32 => I32,
    i16 => I16,
    u16 => U16,
    i8 => I8,
    u8 => U8,
}

impl Element for bool {
    const DTYPE: DType = DType::Bool;
    #[inline]
    fn from_f32(v: f32) -> Self {
        v != 0.0
    }
}
