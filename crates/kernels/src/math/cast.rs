//! Element type conversion.
//!
//! Numeric conversions follow Rust's `as`: float → integer truncates toward zero and saturates
//! (NaN → 0), integer → narrower integer wraps, integer → float rounds to nearest. Bool is
//! `x != 0` one way and `0`/`1` the other.

use crate::error::{check_len, Result};
use crate::{par, Element};

/// Conversion from `S`, for every pair of element types.
pub trait CastFrom<S>: Element {
    /// Converts one value.
    fn cast_from(v: S) -> Self;
}

macro_rules! cast_numeric {
    ($d:ty; $($s:ty),*) => {$(
        impl CastFrom<$s> for $d {
            #[inline(always)]
            fn cast_from(v: $s) -> $d {
                v as $d
            }
        }
    )*
        impl CastFrom<bool> for $d {
            #[inline(always)]
            fn cast_from(v: bool) -> $d {
                v as u8 as $d
            }
        }
        impl CastFrom<$d> for bool {
            #[inline(always)]
            #[allow(clippy::float_cmp)]
            fn cast_from(v: $d) -> bool {
                v != (0 as $d)
            }
        }
    };
}

cast_numeric!(f32; f32, i64, i32, i16, u16, i8, u8);
cast_numeric!(i64; f32, i64, i32, i16, u16, i8, u8);
cast_numeric!(i32; f32, i64, i32, i16, u16, i8, u8);
cast_numeric!(i16; f32, i64, i32, i16, u16, i8, u8);
cast_numeric!(u16; f32, i64, i32, i16, u16, i8, u8);
cast_numeric!(i8; f32, i64, i32, i16, u16, i8, u8);
cast_numeric!(u8; f32, i64, i32, i16, u16, i8, u8);

impl CastFrom<bool> for bool {
    #[inline(always)]
    fn cast_from(v: bool) -> bool {
        v
    }
}

/// Converts every element of `src` into `dst`.
pub fn cast<S: Copy + Sync, D: CastFrom<S>>(src: &[S], dst: &mut [D]) -> Result<()> {
    check_len("Cast", "output", dst.len(), src.len())?;
    par::for_rows(dst, 1, par::MIN_PAR_ELEMS, |start, chunk| {
        for (d, &s) in chunk.iter_mut().zip(&src[start..]) {
            *d = D::cast_from(s);
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions() {
        let mut i = [0i64; 4];
        cast(&[1.9f32, -1.9, f32::NAN, 1e30], &mut i).unwrap();
        assert_eq!(i, [1, -1, 0, i64::MAX]);
        let mut b = [false; 3];
        cast(&[0.0f32, -0.5, 2.0], &mut b).unwrap();
        assert_eq!(b, [false, true, true]);
        let mut u = [0u8; 2];
        cast(&[256i32, -1], &mut u).unwrap();
        assert_eq!(u, [0, 255]);
        let mut f = [0.0f32; 2];
        cast(&[true, false], &mut f).unwrap();
        assert_eq!(f, [1.0, 0.0]);
    }
}
