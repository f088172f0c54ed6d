//! Tensors, constant data and quantization parameters.

use crate::DType;
use std::sync::Arc;

/// Constant element data, shared so that cloning a graph never copies weights.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    /// `f32` elements.
    F32(Arc<[f32]>),
    /// `i64` elements.
    I64(Arc<[i64]>),
    /// `i32` elements.
    I32(Arc<[i32]>),
    /// `i16` elements.
    I16(Arc<[i16]>),
    /// `u16` elements.
    U16(Arc<[u16]>),
    /// `i8` elements.
    I8(Arc<[i8]>),
    /// `u8` elements.
    U8(Arc<[u8]>),
    /// `bool` elements.
    Bool(Arc<[bool]>),
}

macro_rules! data_accessors {
    ($($variant:ident, $ty:ty, $as_fn:ident);* $(;)?) => {
        impl TensorData {
            $(
                /// The elements if the data has this type.
                pub fn $as_fn(&self) -> Option<&[$ty]> {
                    match self {
                        TensorData::$variant(v) => Some(v),
                        _ => None,
                    }
                }
            )*
        }
        $(
            impl From<Vec<$ty>> for TensorData {
                fn from(v: Vec<$ty>) -> Self {
                    TensorData::$variant(v.into())
                }
            }
        )*
    };
}

data_accessors! {
    F32, f32, as_f32;
    I64, i64, as_i64;
    I32, i32, as_i32;
    I16, i16, as_i16;
    U16, u16, as_u16;
    I8, i8, as_i8;
    U8, u8, as_u8;
    Bool, bool, as_bool;
}

impl TensorData {
    /// The element type.
    pub fn dtype(&self) -> DType {
        match self {
            TensorData::F32(_) => DType::F32,
            TensorData::I64(_) => DType::I64,
            TensorData::I32(_) => DType::I32,
            TensorData::I16(_) => DType::I16,
            TensorData::U16(_) => DType::U16,
            TensorData::I8(_) => DType::I8,
            TensorData::U8(_) => DType::U8,
            TensorData::Bool(_) => DType::Bool,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            TensorData::F32(v) => v.len(),
            TensorData::I64(v) => v.len(),
            TensorData::I32(v) => v.len(),
            TensorData::I16(v) => v.len(),
            TensorData::U16(v) => v.len(),
            TensorData::I8(v) => v.len(),
            TensorData::U8(v) => v.len(),
            TensorData::Bool(v) => v.len(),
        }
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// All elements converted to `i64` (floats are truncated toward zero); used for shape-like
    /// constants (Reshape shapes, Slice starts, axes) that ONNX may store as any integer type.
    pub fn to_i64_vec(&self) -> Vec<i64> {
        match self {
            TensorData::F32(v) => v.iter().map(|&x| x as i64).collect(),
            TensorData::I64(v) => v.to_vec(),
            TensorData::I32(v) => v.iter().map(|&x| x as i64).collect(),
            TensorData::I16(v) => v.iter().map(|&x| x as i64).collect(),
            TensorData::U16(v) => v.iter().map(|&x| x as i64).collect(),
            TensorData::I8(v) => v.iter().map(|&x| x as i64).collect(),
            TensorData::U8(v) => v.iter().map(|&x| x as i64).collect(),
            TensorData::Bool(v) => v.iter().map(|&x| x as i64).collect(),
        }
    }

    /// All elements converted to `f32`.
    pub fn to_f32_vec(&self) -> Vec<f32> {
        match self {
            TensorData::F32(v) => v.to_vec(),
            TensorData::I64(v) => v.iter().map(|&x| x as f32).collect(),
            TensorData::I32(v) => v.iter().map(|&x| x as f32).collect(),
            TensorData::I16(v) => v.iter().map(|&x| x as f32).collect(),
            TensorData::U16(v) => v.iter().map(|&x| x as f32).collect(),
            TensorData::I8(v) => v.iter().map(|&x| x as f32).collect(),
            TensorData::U8(v) => v.iter().map(|&x| x as f32).collect(),
            TensorData::Bool(v) => v.iter().map(|&x| x as u8 as f32).collect(),
        }
    }

    /// Little-endian bytes of the elements (the .sim buffer encoding).
    pub fn to_le_bytes(&self) -> Vec<u8> {
        fn le<T: Copy, const N: usize>(v: &[T], f: impl Fn(T) -> [u8; N]) -> Vec<u8> {
            v.iter().flat_map(|&x| f(x)).collect()
        }
        match self {
            TensorData::F32(v) => le(v, f32::to_le_bytes),
            TensorData::I64(v) => le(v, i64::to_le_bytes),
            TensorData::I32(v) => le(v, i32::to_le_bytes),
            TensorData::I16(v) => le(v, i16::to_le_bytes),
            TensorData::U16(v) => le(v, u16::to_le_bytes),
            TensorData::I8(v) => le(v, i8::to_le_bytes),
            TensorData::U8(v) => v.to_vec(),
            TensorData::Bool(v) => v.iter().map(|&b| b as u8).collect(),
        }
    }

    /// Decodes little-endian bytes; `None` if the length is not a whole number of elements.
    pub fn from_le_bytes(dtype: DType, bytes: &[u8]) -> Option<TensorData> {
        fn de<T, const N: usize>(bytes: &[u8], f: impl Fn([u8; N]) -> T) -> Option<Vec<T>> {
            if !bytes.len().is_multiple_of(N) {
                return None;
            }
            Some(
                bytes
                    .chunks_exact(N)
                    .map(|c| {
                        let mut a = [0u8; N];
                        a.copy_from_slice(c);
                        f(a)
                    })
                    .collect(),
            )
        }
        Some(match dtype {
            DType::F32 => de(bytes, f32::from_le_bytes)?.into(),
            DType::I64 => de(bytes, i64::from_le_bytes)?.into(),
            DType::I32 => de(bytes, i32::from_le_bytes)?.into(),
            DType::I16 => de(bytes, i16::from_le_bytes)?.into(),
            DType::U16 => de(bytes, u16::from_le_bytes)?.into(),
            DType::I8 => de(bytes, i8::from_le_bytes)?.into(),
            DType::U8 => bytes.to_vec().into(),
            DType::Bool => bytes.iter().map(|&b| b != 0).collect::<Vec<bool>>().into(),
        })
    }
}

/// Quantization parameters of a tensor, as TFLite's `QuantizationParameters` holds them.
///
/// A real value `r` and its stored integer `q` relate by `r = scale * (q - zero_point)`.
/// Per-channel parameters have one entry per index of `quantized_dimension`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QuantParams {
    /// Scale per channel (or one entry for per-tensor).
    pub scale: Vec<f32>,
    /// Zero point per channel (or one entry).
    pub zero_point: Vec<i64>,
    /// Calibrated minimum per channel (may be empty).
    pub min: Vec<f32>,
    /// Calibrated maximum per channel (may be empty).
    pub max: Vec<f32>,
    /// The axis the per-channel entries run along.
    pub quantized_dimension: usize,
}

/// A tensor of the graph: an activation, a graph input, or a constant.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Unique name (the name users see in reports, dumps and ini files).
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Concrete shape; 4-D activations are NHWC.
    pub shape: Vec<usize>,
    /// Constant data, `None` for activations and inputs.
    pub data: Option<TensorData>,
    /// Quantization parameters, present in fixed-point graphs.
    pub quant: Option<QuantParams>,
}

impl Tensor {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// True when the tensor holds constant data.
    pub fn is_const(&self) -> bool {
        self.data.is_some()
    }
}

/// Number of elements of a shape.
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn le_bytes_round_trip_every_dtype() {
        let all: Vec<TensorData> = vec![
            vec![1.5f32, -2.0].into(),
            vec![i64::MIN, 7].into(),
            vec![i32::MAX, -1].into(),
            vec![-300i16, 12].into(),
            vec![65535u16, 0].into(),
            vec![-128i8, 127].into(),
            vec![0u8, 255].into(),
            vec![true, false].into(),
        ];
        for d in all {
            let back = TensorData::from_le_bytes(d.dtype(), &d.to_le_bytes());
            assert_eq!(back.as_ref(), Some(&d));
        }
    }

    #[test]
    fn from_le_bytes_rejects_ragged_length() {
        assert!(TensorData::from_le_bytes(DType::F32, &[0, 0, 0]).is_none());
    }
}
