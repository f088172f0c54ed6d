//! Values passed in and out of a session.

use crate::error::{Result, RuntimeError};
use ipukit_ir::{DType, TensorData};

/// A tensor value: a shape and its elements (row-major).
#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    /// Shape (NHWC for 4-D activations).
    pub shape: Vec<usize>,
    /// Elements; `data.len()` equals the product of `shape`.
    pub data: TensorData,
}

impl Value {
    /// A value, checking that `data` fills `shape`.
    pub fn new(shape: Vec<usize>, data: impl Into<TensorData>) -> Result<Value> {
        let data = data.into();
        let expected: usize = shape.iter().product();
        if data.len() != expected {
            return Err(RuntimeError::ValueLength {
                got: data.len(),
                expected,
                shape,
            });
        }
        Ok(Value { shape, data })
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }

    /// The `f32` elements, if the value is `FLOAT32`.
    pub fn as_f32(&self) -> Option<&[f32]> {
        self.data.as_f32()
    }

    /// A borrowed view.
    pub fn view(&self) -> ValueView<'_> {
        ValueView {
            shape: &self.shape,
            data: DataRef::from(&self.data),
        }
    }
}

/// Borrowed elements of any element type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DataRef<'a> {
    /// `f32` elements.
    F32(&'a [f32]),
    /// `i64` elements.
    I64(&'a [i64]),
    /// `i32` elements.
    I32(&'a [i32]),
    /// `i16` elements.
    I16(&'a [i16]),
    /// `u16` elements.
    U16(&'a [u16]),
    /// `i8` elements.
    I8(&'a [i8]),
    /// `u8` elements.
    U8(&'a [u8]),
    /// `bool` elements.
    Bool(&'a [bool]),
}

impl<'a> From<&'a TensorData> for DataRef<'a> {
    fn from(d: &'a TensorData) -> DataRef<'a> {
        match d {
            TensorData::F32(v) => DataRef::F32(v),
            TensorData::I64(v) => DataRef::I64(v),
            TensorData::I32(v) => DataRef::I32(v),
            TensorData::I16(v) => DataRef::I16(v),
            TensorData::U16(v) => DataRef::U16(v),
            TensorData::I8(v) => DataRef::I8(v),
            TensorData::U8(v) => DataRef::U8(v),
            TensorData::Bool(v) => DataRef::Bool(v),
        }
    }
}

impl DataRef<'_> {
    /// The element type.
    pub fn dtype(&self) -> DType {
        match self {
            DataRef::F32(_) => DType::F32,
            DataRef::I64(_) => DType::I64,
            DataRef::I32(_) => DType::I32,
            DataRef::I16(_) => DType::I16,
            DataRef::U16(_) => DType::U16,
            DataRef::I8(_) => DType::I8,
            DataRef::U8(_) => DType::U8,
            DataRef::Bool(_) => DType::Bool,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            DataRef::F32(v) => v.len(),
            DataRef::I64(v) => v.len(),
            DataRef::I32(v) => v.len(),
            DataRef::I16(v) => v.len(),
            DataRef::U16(v) => v.len(),
            DataRef::I8(v) => v.len(),
            DataRef::U8(v) => v.len(),
            DataRef::Bool(v) => v.len(),
        }
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `f32` elements, if the type is `FLOAT32`.
    pub fn as_f32(&self) -> Option<&[f32]> {
        match self {
            DataRef::F32(v) => Some(v),
            _ => None,
        }
    }

    /// An owned copy.
    pub fn to_owned(&self) -> TensorData {
        match *self {
            DataRef::F32(v) => v.to_vec().into(),
            DataRef::I64(v) => v.to_vec().into(),
            DataRef::I32(v) => v.to_vec().into(),
            DataRef::I16(v) => v.to_vec().into(),
            DataRef::U16(v) => v.to_vec().into(),
            DataRef::I8(v) => v.to_vec().into(),
            DataRef::U8(v) => v.to_vec().into(),
            DataRef::Bool(v) => v.to_vec().into(),
        }
    }
}

/// A borrowed tensor: shape and elements.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValueView<'a> {
    /// Shape.
    pub shape: &'a [usize],
    /// Elements.
    pub data: DataRef<'a>,
}

impl ValueView<'_> {
    /// An owned copy.
    pub fn to_value(&self) -> Value {
        Value {
            shape: self.shape.to_vec(),
            data: self.data.to_owned(),
        }
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }
}
