//! Reading and writing NumPy `.npy` files (little-endian, C order), the exchange format with
//! xtask's Python scripts.

use std::fs;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use ipukit_ir::{DType, TensorData};

use crate::util;

/// The `descr` NumPy writes for each element type.
fn descr(dtype: DType) -> &'static str {
    match dtype {
        DType::F32 => "<f4",
        DType::I64 => "<i8",
        DType::I32 => "<i4",
        DType::I16 => "<i2",
        DType::U16 => "<u2",
        DType::I8 => "|i1",
        DType::U8 => "|u1",
        DType::Bool => "|b1",
    }
}

fn dtype_of(descr: &str) -> Option<DType> {
    Some(match descr {
        "<f4" => DType::F32,
        "<i8" => DType::I64,
        "<i4" => DType::I32,
        "<i2" => DType::I16,
        "<u2" => DType::U16,
        "|i1" | "<i1" => DType::I8,
        "|u1" | "<u1" => DType::U8,
        "|b1" | "<b1" => DType::Bool,
        _ => return None,
    })
}

/// Encodes a tensor as `.npy` bytes (format 1.0).
pub fn encode(shape: &[usize], data: &TensorData) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_txt = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}",
        descr(data.dtype()),
        shape_txt
    );
    // magic(6) + version(2) + length(2) + header + '\n' is a multiple of 64.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + data.len() * data.dtype().size());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&data.to_le_bytes());
    out
}

/// Decodes `.npy` bytes into (shape, data).
pub fn decode(bytes: &[u8]) -> Result<(Vec<usize>, TensorData)> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        bail!("not a .npy file");
    }
    let (hlen, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            if bytes.len() < 12 {
                bail!("truncated .npy header");
            }
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            )
        }
        v => bail!(".npy format version {v} is not supported"),
    };
    let header = bytes
        .get(start..start + hlen)
        .ok_or_else(|| anyhow!("truncated .npy header"))?;
    let header = std::str::from_utf8(header).context("the .npy header is not text")?;
    let descr = field(header, "descr")?
        .trim()
        .trim_matches(|c| c == '\'' || c == '"')
        .to_string();
    let fortran = field(header, "fortran_order")?.trim().to_string();
    if fortran != "False" {
        bail!("Fortran-order .npy arrays are not supported");
    }
    let shape_txt = field(header, "shape")?;
    let shape_txt = shape_txt
        .trim()
        .trim_start_matches('(')
        .trim_end_matches(')');
    let shape = shape_txt
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .with_context(|| format!("bad dimension {s:?}"))
        })
        .collect::<Result<Vec<_>>>()?;
    let dtype = dtype_of(&descr).ok_or_else(|| {
        anyhow!("element type {descr} is not supported (use float32, integers, uint8 or bool)")
    })?;
    let body = &bytes[start + hlen..];
    let numel: usize = shape.iter().product();
    if body.len() != numel * dtype.size() {
        bail!(
            "the .npy data holds {} bytes, shape {:?} of {} needs {}",
            body.len(),
            shape,
            dtype,
            numel * dtype.size()
        );
    }
    let data = TensorData::from_le_bytes(dtype, body)
        .ok_or_else(|| anyhow!("the .npy data is not a whole number of elements"))?;
    Ok((shape, data))
}

/// The text after `'key':` in a header dict, up to the next top-level comma.
fn field<'a>(header: &'a str, key: &str) -> Result<&'a str> {
    let pat = format!("'{key}':");
    let at = header
        .find(&pat)
        .ok_or_else(|| anyhow!("the .npy header has no {key}"))?;
    let rest = &header[at + pat.len()..];
    let mut depth = 0i32;
    for (i, c) in rest.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' | '}' if depth == 0 => return Ok(&rest[..i]),
            _ => {}
        }
    }
    Ok(rest)
}

/// Reads a `.npy` file.
pub fn read(path: &Path) -> Result<(Vec<usize>, TensorData)> {
    let bytes = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    decode(&bytes).with_context(|| format!("{}", path.display()))
}

/// Writes a `.npy` file atomically.
pub fn write(path: &Path, shape: &[usize], data: &TensorData) -> Result<()> {
    util::write_atomic(path, &encode(shape, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for (shape, data) in [
            (
                vec![2usize, 3],
                TensorData::from(vec![1.5f32, -2.0, 0.0, 3.25, 4.0, 5.0]),
            ),
            (vec![4], TensorData::from(vec![1i64, -2, 3, 4])),
            (vec![], TensorData::from(vec![7u8])),
            (vec![1, 0, 3], TensorData::from(Vec::<f32>::new())),
            (vec![2], TensorData::from(vec![true, false])),
        ] {
            let bytes = encode(&shape, &data);
            assert_eq!(&bytes[..6], b"\x93NUMPY");
            assert_eq!(
                (10 + u16::from_le_bytes([bytes[8], bytes[9]]) as usize) % 64,
                0
            );
            let (s, d) = decode(&bytes).unwrap();
            assert_eq!(s, shape);
            assert_eq!(d, data);
        }
    }

    #[test]
    fn reads_numpy_header_styles() {
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        let h = "{'descr': '<i4', 'fortran_order': False, 'shape': (3,), }          \n";
        b.extend_from_slice(&(h.len() as u16).to_le_bytes());
        b.extend_from_slice(h.as_bytes());
        for v in [1i32, 2, 3] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        let (s, d) = decode(&b).unwrap();
        assert_eq!(s, vec![3]);
        assert_eq!(d, TensorData::from(vec![1i32, 2, 3]));
        assert!(decode(b"nope").is_err());
    }
}
