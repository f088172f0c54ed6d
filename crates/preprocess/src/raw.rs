//! Raw tensor inputs for `RAWDATA_*` formats: `.npy` files (any dtype and shape) and `.bin`
//! files (little-endian elements of the input's dtype, in the input's shape).

use crate::error::{PreprocessError, Result};
use crate::sample::Sample;
use crate::InputContext;
use ipukit_ir::{DType, TensorData};
use std::path::Path;

/// Loads one raw input file: `.npy` as stored, anything else as raw little-endian bytes of
/// `ctx.raw_dtype` (default: the element type of the RAWDATA format) in `ctx.shape`.
pub fn load(path: &Path, ctx: &InputContext) -> Result<Sample> {
    let err = |message: String| PreprocessError::Raw {
        path: path.to_path_buf(),
        message,
    };
    let bytes = std::fs::read(path).map_err(|source| PreprocessError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let is_npy = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"))
        || bytes.starts_with(b"\x93NUMPY");
    let want = ctx
        .shape
        .as_ref()
        .filter(|s| s.iter().product::<usize>() > 0);
    if is_npy {
        let s = Sample::from_npy(&bytes).map_err(err)?;
        if let Some(want) = want {
            let n: usize = want.iter().product();
            if s.data.len() != n {
                return Err(err(format!(
                    "the array has shape {:?} ({} elements) but input \"{}\" expects {:?} ({n})",
                    s.shape,
                    s.data.len(),
                    ctx.name,
                    want
                )));
            }
        }
        return Ok(s);
    }
    let dtype = ctx.raw_dtype.or_else(|| ctx.format.and_then(rawdata_dtype)).ok_or_else(|| {
        err(format!(
            "a .bin file needs the element type, but input \"{}\" is not a RAWDATA_* input; use a .npy file",
            ctx.name
        ))
    })?;
    let shape = want.cloned().ok_or_else(|| {
        err(format!(
            "a .bin file needs the input's shape, which is unknown for \"{}\"; use a .npy file",
            ctx.name
        ))
    })?;
    let need = shape.iter().product::<usize>() * dtype.size();
    if bytes.len() != need {
        return Err(err(format!(
            "{} bytes, but input \"{}\" expects shape {:?} of {} = {need} bytes",
            bytes.len(),
            ctx.name,
            shape,
            dtype.name()
        )));
    }
    let data = TensorData::from_le_bytes(dtype, &bytes)
        .ok_or_else(|| err(format!("cannot read {} elements", dtype.name())))?;
    Sample::new(shape, data).map_err(err)
}

/// The element type of a RAWDATA format.
pub fn rawdata_dtype(f: ipukit_config::InputFormat) -> Option<DType> {
    use ipukit_config::InputFormat as F;
    match f {
        F::RawdataU8Nhwc => Some(DType::U8),
        F::RawdataS16Nhwc => Some(DType::I16),
        F::RawdataU16Nhwc => Some(DType::U16),
        F::RawdataF32Nhwc => Some(DType::F32),
        _ => None,
    }
}
