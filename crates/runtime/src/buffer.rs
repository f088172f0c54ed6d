//! Typed activation buffers.

use crate::value::DataRef;
use ipukit_ir::DType;

/// Mutable elements of any element type (the output side of [`crate::DataRef`]).
#[derive(Debug)]
pub enum DataMut<'a> {
    /// FLOAT32.
    F32(&'a mut [f32]),
    /// INT64.
    I64(&'a mut [i64]),
    /// INT32.
    I32(&'a mut [i32]),
    /// INT16.
    I16(&'a mut [i16]),
    /// UINT16.
    U16(&'a mut [u16]),
    /// INT8.
    I8(&'a mut [i8]),
    /// UINT8.
    U8(&'a mut [u8]),
    /// BOOL.
    Bool(&'a mut [bool]),
}

impl DataMut<'_> {
    /// A shorter-lived view of the same elements.
    pub fn reborrow(&mut self) -> DataMut<'_> {
        match self {
            DataMut::F32(v) => DataMut::F32(v),
            DataMut::I64(v) => DataMut::I64(v),
            DataMut::I32(v) => DataMut::I32(v),
            DataMut::I16(v) => DataMut::I16(v),
            DataMut::U16(v) => DataMut::U16(v),
            DataMut::I8(v) => DataMut::I8(v),
            DataMut::U8(v) => DataMut::U8(v),
            DataMut::Bool(v) => DataMut::Bool(v),
        }
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        match self {
            DataMut::F32(_) => DType::F32,
            DataMut::I64(_) => DType::I64,
            DataMut::I32(_) => DType::I32,
            DataMut::I16(_) => DType::I16,
            DataMut::U16(_) => DType::U16,
            DataMut::I8(_) => DType::I8,
            DataMut::U8(_) => DType::U8,
            DataMut::Bool(_) => DType::Bool,
        }
    }
}

/// An owned buffer, zero-initialised (allocated zeroed, so untouched pages cost no memory).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Buffer {
    F32(Vec<f32>),
    I64(Vec<i64>),
    I32(Vec<i32>),
    I16(Vec<i16>),
    U16(Vec<u16>),
    I8(Vec<i8>),
    U8(Vec<u8>),
    Bool(Vec<bool>),
}

impl Default for Buffer {
    fn default() -> Buffer {
        Buffer::F32(Vec::new())
    }
}

impl Buffer {
    pub(crate) fn zeroed(dtype: DType, len: usize) -> Buffer {
        match dtype {
            DType::F32 => Buffer::F32(vec![0.0; len]),
            DType::I64 => Buffer::I64(vec![0; len]),
            DType::I32 => Buffer::I32(vec![0; len]),
            DType::I16 => Buffer::I16(vec![0; len]),
            DType::U16 => Buffer::U16(vec![0; len]),
            DType::I8 => Buffer::I8(vec![0; len]),
            DType::U8 => Buffer::U8(vec![0; len]),
            DType::Bool => Buffer::Bool(vec![false; len]),
        }
    }

    /// The first `len` elements (`len` is at most the buffer's length, as planned).
    pub(crate) fn view(&self, len: usize) -> DataRef<'_> {
        match self {
            Buffer::F32(v) => DataRef::F32(&v[..len]),
            Buffer::I64(v) => DataRef::I64(&v[..len]),
            Buffer::I32(v) => DataRef::I32(&v[..len]),
            Buffer::I16(v) => DataRef::I16(&v[..len]),
            Buffer::U16(v) => DataRef::U16(&v[..len]),
            Buffer::I8(v) => DataRef::I8(&v[..len]),
            Buffer::U8(v) => DataRef::U8(&v[..len]),
            Buffer::Bool(v) => DataRef::Bool(&v[..len]),
        }
    }

    /// The first `len` elements, mutably.
    pub(crate) fn view_mut(&mut self, len: usize) -> DataMut<'_> {
        match self {
            Buffer::F32(v) => DataMut::F32(&mut v[..len]),
            Buffer::I64(v) => DataMut::I64(&mut v[..len]),
            Buffer::I32(v) => DataMut::I32(&mut v[..len]),
            Buffer::I16(v) => DataMut::I16(&mut v[..len]),
            Buffer::U16(v) => DataMut::U16(&mut v[..len]),
            Buffer::I8(v) => DataMut::I8(&mut v[..len]),
            Buffer::U8(v) => DataMut::U8(&mut v[..len]),
            Buffer::Bool(v) => DataMut::Bool(&mut v[..len]),
        }
    }

    /// Takes the first `len` elements as owned data (the buffer keeps nothing).
    pub(crate) fn into_data(self, len: usize) -> ipukit_ir::TensorData {
        fn cut<T>(mut v: Vec<T>, len: usize) -> Vec<T> {
            v.truncate(len);
            v
        }
        match self {
            Buffer::F32(v) => cut(v, len).into(),
            Buffer::I64(v) => cut(v, len).into(),
            Buffer::I32(v) => cut(v, len).into(),
            Buffer::I16(v) => cut(v, len).into(),
            Buffer::U16(v) => cut(v, len).into(),
            Buffer::I8(v) => cut(v, len).into(),
            Buffer::U8(v) => cut(v, len).into(),
            Buffer::Bool(v) => cut(v, len).into(),
        }
    }
}
