//! Decoding of `TensorProto` into IR constant data.

use crate::error::{OnnxError, Result};
use crate::proto::{tensor_proto::DataType, TensorProto, TypeProto};
use ipukit_ir::{DType, TensorData};

/// Element count of a shape, failing on negative dimensions or overflow.
pub(crate) fn checked_numel(dims: &[i64], what: &str) -> Result<(Vec<usize>, usize)> {
    let mut shape = Vec::with_capacity(dims.len());
    let mut n: usize = 1;
    for &d in dims {
        let d = usize::try_from(d).map_err(|_| {
            OnnxError::Invalid(format!("{what} has a negative dimension in {dims:?}"))
        })?;
        n = n
            .checked_mul(d)
            .filter(|&n| n <= 1 << 34)
            .ok_or_else(|| OnnxError::Invalid(format!("{what} has an absurd shape {dims:?}")))?;
        shape.push(d);
    }
    Ok((shape, n))
}

/// The IR dtype ipukit uses for an ONNX element type (floats of every width become F32).
pub(crate) fn ir_dtype(onnx_type: i32, what: &str) -> Result<DType> {
    let t = DataType::try_from(onnx_type).unwrap_or(DataType::Undefined);
    Ok(match t {
        DataType::Float | DataType::Double | DataType::Float16 | DataType::Bfloat16 => DType::F32,
        DataType::Int64 | DataType::Uint32 | DataType::Uint64 => DType::I64,
        DataType::Int32 => DType::I32,
        DataType::Int16 => DType::I16,
        DataType::Uint16 => DType::U16,
        DataType::Int8 => DType::I8,
        DataType::Uint8 => DType::U8,
        DataType::Bool => DType::Bool,
        other => {
            return Err(OnnxError::Unsupported(format!(
                "{what}: ONNX element type {} is not supported",
                other.as_str_name()
            )))
        }
    })
}

fn fixed<const N: usize, T>(
    raw: &[u8],
    n: usize,
    what: &str,
    f: impl Fn([u8; N]) -> T,
) -> Result<Vec<T>> {
    if raw.len() != n * N {
        return Err(OnnxError::Invalid(format!(
            "{what}: raw_data has {} bytes, expected {} for {n} elements",
            raw.len(),
            n * N
        )));
    }
    Ok(raw
        .chunks_exact(N)
        .map(|c| {
            let mut a = [0u8; N];
            a.copy_from_slice(c);
            f(a)
        })
        .collect())
}

fn count_check<T>(v: Vec<T>, n: usize, what: &str) -> Result<Vec<T>> {
    if v.len() != n {
        return Err(OnnxError::Invalid(format!(
            "{what}: holds {} values but its shape needs {n}",
            v.len()
        )));
    }
    Ok(v)
}

/// Decodes a tensor into its shape and data.
pub fn decode_tensor(t: &TensorProto) -> Result<(Vec<usize>, TensorData)> {
    let name = t.name.clone().unwrap_or_default();
    let what = format!("tensor '{name}'");
    if t.data_location == Some(1) || !t.external_data.is_empty() {
        return Err(OnnxError::Unsupported(format!(
            "{what} keeps its data in an external file, which is not supported; save the model with all tensors inside the .onnx file"
        )));
    }
    let (shape, n) = checked_numel(&t.dims, &what)?;
    let dt = t.data_type.unwrap_or(0);
    let ty = DataType::try_from(dt).unwrap_or(DataType::Undefined);
    let raw = t.raw_data.as_deref().filter(|r| !r.is_empty() || n == 0);
    let data: TensorData = match ty {
        DataType::Float => match raw {
            Some(r) => fixed(r, n, &what, f32::from_le_bytes)?.into(),
            None => count_check(t.float_data.clone(), n, &what)?.into(),
        },
        DataType::Double => match raw {
            Some(r) => fixed(r, n, &what, |b| f64::from_le_bytes(b) as f32)?.into(),
            None => {
                count_check(t.double_data.iter().map(|&v| v as f32).collect(), n, &what)?.into()
            }
        },
        DataType::Float16 | DataType::Bfloat16 => {
            let bits: Vec<u16> = match raw {
                Some(r) => fixed(r, n, &what, u16::from_le_bytes)?,
                None => count_check(t.int32_data.iter().map(|&v| v as u16).collect(), n, &what)?,
            };
            let conv = |b: u16| {
                if ty == DataType::Float16 {
                    half::f16::from_bits(b).to_f32()
                } else {
                    half::bf16::from_bits(b).to_f32()
                }
            };
            bits.into_iter().map(conv).collect::<Vec<f32>>().into()
        }
        DataType::Int64 => match raw {
            Some(r) => fixed(r, n, &what, i64::from_le_bytes)?.into(),
            None => count_check(t.int64_data.clone(), n, &what)?.into(),
        },
        DataType::Uint64 => match raw {
            Some(r) => fixed(r, n, &what, |b| u64::from_le_bytes(b) as i64)?.into(),
            None => {
                count_check(t.uint64_data.iter().map(|&v| v as i64).collect(), n, &what)?.into()
            }
        },
        DataType::Uint32 => match raw {
            Some(r) => fixed(r, n, &what, |b| u32::from_le_bytes(b) as i64)?.into(),
            None => {
                count_check(t.uint64_data.iter().map(|&v| v as i64).collect(), n, &what)?.into()
            }
        },
        DataType::Int32 => match raw {
            Some(r) => fixed(r, n, &what, i32::from_le_bytes)?.into(),
            None => count_check(t.int32_data.clone(), n, &what)?.into(),
        },
        DataType::Int16 => match raw {
            Some(r) => fixed(r, n, &what, i16::from_le_bytes)?.into(),
            None => count_check(t.int32_data.iter().map(|&v| v as i16).collect(), n, &what)?.into(),
        },
        DataType::Uint16 => match raw {
            Some(r) => fixed(r, n, &what, u16::from_le_bytes)?.into(),
            None => count_check(t.int32_data.iter().map(|&v| v as u16).collect(), n, &what)?.into(),
        },
        DataType::Int8 => match raw {
            Some(r) => fixed(r, n, &what, |b: [u8; 1]| b[0] as i8)?.into(),
            None => count_check(t.int32_data.iter().map(|&v| v as i8).collect(), n, &what)?.into(),
        },
        DataType::Uint8 => match raw {
            Some(r) => fixed(r, n, &what, |b: [u8; 1]| b[0])?.into(),
            None => count_check(t.int32_data.iter().map(|&v| v as u8).collect(), n, &what)?.into(),
        },
        DataType::Bool => match raw {
            Some(r) => fixed(r, n, &what, |b: [u8; 1]| b[0] != 0)?.into(),
            None => count_check(t.int32_data.iter().map(|&v| v != 0).collect(), n, &what)?.into(),
        },
        other => {
            return Err(OnnxError::Unsupported(format!(
                "{what}: ONNX element type {} is not supported",
                other.as_str_name()
            )))
        }
    };
    Ok((shape, data))
}

/// Decodes a serialized `TensorProto` (the `.pb` files of ONNX's test data): name, shape, data.
pub fn read_tensor_proto(bytes: &[u8]) -> Result<(String, Vec<usize>, TensorData)> {
    use prost::Message;
    let t = TensorProto::decode(bytes).map_err(|e| OnnxError::Decode {
        path: "TensorProto".into(),
        reason: e.to_string(),
    })?;
    let (shape, data) = decode_tensor(&t)?;
    Ok((t.name.unwrap_or_default(), shape, data))
}

/// Element type and dimensions (`None` for symbolic or missing ones) of a value's type.
pub(crate) fn tensor_type(
    ty: Option<&TypeProto>,
    what: &str,
) -> Result<(DType, Option<Vec<Option<i64>>>)> {
    use crate::proto::type_proto::Value;
    match ty.and_then(|t| t.value.as_ref()) {
        Some(Value::TensorType(tt)) => {
            let elem = tt.elem_type.unwrap_or(0);
            // Inside the model these widen to FLOAT32 / INT64, but data fed to or read from the
            // model would not match its declared type.
            let t = DataType::try_from(elem).unwrap_or(DataType::Undefined);
            if matches!(t, DataType::Float16 | DataType::Bfloat16 | DataType::Double | DataType::Uint32 | DataType::Uint64) {
                return Err(OnnxError::Unsupported(format!(
                    "{what}: {} graph inputs and outputs are not supported; export the model with FLOAT32 (or INT64) ones",
                    t.as_str_name()
                )));
            }
            let dt = ir_dtype(elem, what)?;
            let dims = tt.shape.as_ref().map(|s| {
                s.dim
                    .iter()
                    .map(|d| match d.value {
                        Some(crate::proto::tensor_shape_proto::dimension::Value::DimValue(v)) if v >= 0 => Some(v),
                        _ => None,
                    })
                    .collect()
            });
            Ok((dt, dims))
        }
        _ => Err(OnnxError::Unsupported(format!(
            "{what}: sequence, map and optional types are not supported (graph inputs and outputs must be tensors)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_raw_and_typed_fields() {
        let t = TensorProto {
            dims: vec![2],
            data_type: Some(DataType::Float as i32),
            raw_data: Some([1.0f32.to_le_bytes(), 2.5f32.to_le_bytes()].concat()),
            ..Default::default()
        };
        let (s, d) = decode_tensor(&t).unwrap();
        assert_eq!(s, vec![2]);
        assert_eq!(d.as_f32().unwrap(), &[1.0, 2.5]);
        let t = TensorProto {
            dims: vec![3],
            data_type: Some(DataType::Int64 as i32),
            int64_data: vec![1, -2, 3],
            ..Default::default()
        };
        assert_eq!(decode_tensor(&t).unwrap().1.as_i64().unwrap(), &[1, -2, 3]);
    }

    #[test]
    fn rejects_length_mismatch_and_absurd_shapes() {
        let t = TensorProto {
            dims: vec![3],
            data_type: Some(DataType::Float as i32),
            raw_data: Some(vec![0; 8]),
            ..Default::default()
        };
        assert!(decode_tensor(&t).is_err());
        let t = TensorProto {
            dims: vec![i64::MAX, 4],
            data_type: Some(DataType::Float as i32),
            ..Default::default()
        };
        assert!(decode_tensor(&t).is_err());
    }
}
