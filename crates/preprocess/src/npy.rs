//! Reading and writing NumPy `.npy` data.
//!
//! Written here rather than taken from `npyz`: npyz parses the header with a full Python-literal
//! grammar (pest, num-bigint), a large dependency for a header that is one short dict
//! (`{'descr': '<f4', 'fortran_order': False, 'shape': (1, 224, 224, 3), }`). This reader
//! accepts versions 1–3, every little-/big-endian boolean, integer and float dtype, and Fortran
//! order (transposed to C order). Types `ipukit_ir::TensorData` lacks are widened: float64 and
//! float16 to float32, uint32 to int64, uint64 to int64 when every value fits.

use crate::sample::Sample;
use ipukit_ir::TensorData;

const MAGIC: &[u8] = b"\x93NUMPY";

/// Parses `.npy` bytes; the error says what is wrong with them.
pub fn read_npy(bytes: &[u8]) -> Result<Sample, String> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err("not a .npy file (no \\x93NUMPY magic)".to_string());
    }
    let major = bytes[6];
    let (header_len, start): (usize, usize) = match major {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err("truncated .npy header".to_string());
            }
            let n = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
            (n as usize, 12)
        }
        v => return Err(format!("unsupported .npy format version {v}")),
    };
    let end = start
        .checked_add(header_len)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| "truncated .npy header".to_string())?;
    let header = std::str::from_utf8(&bytes[start..end])
        .map_err(|_| "the .npy header is not text".to_string())?;
    let descr = dict_str(header, "descr")?;
    let fortran = match dict_raw(header, "fortran_order")? {
        r if r.starts_with("True") => true,
        r if r.starts_with("False") => false,
        _ => return Err("bad fortran_order in the .npy header".to_string()),
    };
    let shape = dict_shape(header)?;
    let count = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| "the .npy shape is too large".to_string())?;

    let (endian, kind) = match descr.as_bytes() {
        [e @ (b'<' | b'>' | b'|' | b'='), rest @ ..] => {
            (*e, std::str::from_utf8(rest).unwrap_or(""))
        }
        _ => (b'=', descr.as_str()),
    };
    let big = endian == b'>';
    let size: usize = kind
        .get(1..)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("unsupported dtype '{descr}'"))?;
    let body = &bytes[end..];
    let need = count
        .checked_mul(size)
        .ok_or_else(|| "the .npy shape is too large".to_string())?;
    if body.len() < need {
        return Err(format!(
            "the .npy data is truncated: shape {shape:?} of '{descr}' needs {need} bytes, the file has {}",
            body.len()
        ));
    }
    let body = &body[..need];
    macro_rules! decode {
        ($t:ty, $n:literal) => {{
            body.chunks_exact($n)
                .map(|c| {
                    let mut a = [0u8; $n];
                    a.copy_from_slice(c);
                    if big {
                        <$t>::from_be_bytes(a)
                    } else {
                        <$t>::from_le_bytes(a)
                    }
                })
                .collect::<Vec<$t>>()
        }};
    }
    let data: TensorData = match (kind.as_bytes().first(), size) {
        (Some(b'f'), 4) => decode!(f32, 4).into(),
        (Some(b'f'), 8) => decode!(f64, 8)
            .into_iter()
            .map(|v| v as f32)
            .collect::<Vec<_>>()
            .into(),
        (Some(b'f'), 2) => decode!(u16, 2)
            .into_iter()
            .map(f16_to_f32)
            .collect::<Vec<_>>()
            .into(),
        (Some(b'i'), 1) => body.iter().map(|&b| b as i8).collect::<Vec<_>>().into(),
        (Some(b'u'), 1) => body.to_vec().into(),
        (Some(b'b'), 1) => body.iter().map(|&b| b != 0).collect::<Vec<_>>().into(),
        (Some(b'i'), 2) => decode!(i16, 2).into(),
        (Some(b'u'), 2) => decode!(u16, 2).into(),
        (Some(b'i'), 4) => decode!(i32, 4).into(),
        (Some(b'u'), 4) => decode!(u32, 4)
            .into_iter()
            .map(i64::from)
            .collect::<Vec<_>>()
            .into(),
        (Some(b'i'), 8) => decode!(i64, 8).into(),
        (Some(b'u'), 8) => decode!(u64, 8)
            .into_iter()
            .map(|v| i64::try_from(v).map_err(|_| "uint64 value too large for int64".to_string()))
            .collect::<Result<Vec<_>, _>>()?
            .into(),
        _ => {
            return Err(format!(
                "unsupported dtype '{descr}': use bool, (u)int8/16/32/64, float16/32/64"
            ))
        }
    };
    let mut sample = Sample::new(shape, data).map_err(|e| e.to_string())?;
    if fortran {
        sample = fortran_to_c(sample);
    }
    Ok(sample)
}

fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let frac = u32::from(h & 0x3ff);
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, f) => {
            // Subnormal: normalise.
            let mut e = 127 - 15 + 1;
            let mut f = f;
            while f & 0x400 == 0 {
                f <<= 1;
                e -= 1;
            }
            sign | (e << 23) | ((f & 0x3ff) << 13)
        }
        (0x1f, f) => sign | 0x7f80_0000 | (f << 13),
        (e, f) => sign | ((e + 127 - 15) << 23) | (f << 13),
    };
    f32::from_bits(bits)
}

/// Data stored in Fortran order has the reversed shape in C order; transpose it back.
fn fortran_to_c(s: Sample) -> Sample {
    let shape = s.shape.clone();
    let rank = shape.len();
    if rank < 2 {
        return s;
    }
    // Element at C index (i0..in) is at Fortran offset sum(i_k * stride_k), stride_0 = 1.
    let mut fstride = vec![1usize; rank];
    for k in 1..rank {
        fstride[k] = fstride[k - 1] * shape[k - 1];
    }
    let n: usize = shape.iter().product();
    let mut order = Vec::with_capacity(n);
    let mut idx = vec![0usize; rank];
    for _ in 0..n {
        order.push(idx.iter().zip(&fstride).map(|(i, s)| i * s).sum::<usize>());
        for k in (0..rank).rev() {
            idx[k] += 1;
            if idx[k] < shape[k] {
                break;
            }
            idx[k] = 0;
        }
    }
    fn gather<T: Copy>(v: &[T], order: &[usize]) -> Vec<T> {
        order.iter().map(|&i| v[i]).collect()
    }
    let data = match &s.data {
        TensorData::F32(v) => gather(v, &order).into(),
        TensorData::I64(v) => gather(v, &order).into(),
        TensorData::I32(v) => gather(v, &order).into(),
        TensorData::I16(v) => gather(v, &order).into(),
        TensorData::U16(v) => gather(v, &order).into(),
        TensorData::I8(v) => gather(v, &order).into(),
        TensorData::U8(v) => gather(v, &order).into(),
        TensorData::Bool(v) => gather(v, &order).into(),
    };
    Sample { shape, data }
}

/// The raw text after `'key':` in the header dict.
fn dict_raw<'a>(header: &'a str, key: &str) -> Result<&'a str, String> {
    for q in ['\'', '"'] {
        let pat = format!("{q}{key}{q}");
        if let Some(pos) = header.find(&pat) {
            let rest = header[pos + pat.len()..].trim_start();
            if let Some(rest) = rest.strip_prefix(':') {
                return Ok(rest.trim_start());
            }
        }
    }
    Err(format!("the .npy header has no '{key}'"))
}

fn dict_str(header: &str, key: &str) -> Result<String, String> {
    let raw = dict_raw(header, key)?;
    let q = raw
        .chars()
        .next()
        .filter(|c| *c == '\'' || *c == '"')
        .ok_or_else(|| {
            format!(
                "unsupported dtype in the .npy header ({}): use a plain numeric dtype",
                raw.split('}').next().unwrap_or(raw)
            )
        })?;
    let rest = &raw[1..];
    let end = rest.find(q).ok_or_else(|| "bad .npy header".to_string())?;
    Ok(rest[..end].to_string())
}

fn dict_shape(header: &str) -> Result<Vec<usize>, String> {
    let raw = dict_raw(header, "shape")?;
    let inner = raw
        .strip_prefix('(')
        .and_then(|r| r.find(')').map(|e| &r[..e]))
        .ok_or_else(|| "bad shape in the .npy header".to_string())?;
    inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.trim_end_matches('L')
                .parse::<usize>()
                .map_err(|_| format!("bad shape dimension '{s}' in the .npy header"))
        })
        .collect()
}

/// Serializes a sample as `.npy` (version 1, little-endian, C order).
pub fn write_npy(s: &Sample) -> Vec<u8> {
    let descr = match &s.data {
        TensorData::F32(_) => "<f4",
        TensorData::I64(_) => "<i8",
        TensorData::I32(_) => "<i4",
        TensorData::I16(_) => "<i2",
        TensorData::U16(_) => "<u2",
        TensorData::I8(_) => "|i1",
        TensorData::U8(_) => "|u1",
        TensorData::Bool(_) => "|b1",
    };
    let shape = match s.shape.len() {
        1 => format!("({},)", s.shape[0]),
        _ => format!(
            "({})",
            s.shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    let total = MAGIC.len() + 4 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + s.data.len() * 4);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&s.data.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for s in [
            Sample::new(
                vec![1, 2, 3],
                TensorData::from(vec![1.5f32, 2.0, -3.0, 4.0, 5.0, 6.0]),
            )
            .unwrap(),
            Sample::new(vec![4], TensorData::from(vec![1i16, -2, 3, 4])).unwrap(),
            Sample::new(vec![], TensorData::from(vec![7u8])).unwrap(),
        ] {
            assert_eq!(read_npy(&write_npy(&s)).unwrap(), s);
        }
    }

    #[test]
    fn fortran_and_big_endian() {
        let mut bytes = Vec::from(MAGIC);
        let header = "{'descr': '>i2', 'fortran_order': True, 'shape': (2, 3), }\n";
        bytes.extend_from_slice(&[1, 0]);
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        // Fortran order of [[1,2,3],[4,5,6]] is 1,4,2,5,3,6.
        for v in [1i16, 4, 2, 5, 3, 6] {
            bytes.extend_from_slice(&v.to_be_bytes());
        }
        let s = read_npy(&bytes).unwrap();
        assert_eq!(s.shape, vec![2, 3]);
        assert_eq!(s.data.as_i16().unwrap(), &[1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn half_floats() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
    }

    #[test]
    fn garbage_never_panics() {
        let good = write_npy(
            &Sample::new(vec![2, 2], TensorData::from(vec![1f32, 2.0, 3.0, 4.0])).unwrap(),
        );
        for cut in 0..good.len() {
            let _ = read_npy(&good[..cut]);
        }
        for i in 0..good.len() {
            for b in [0u8, 0xff, b'(', b',', b'\''] {
                let mut g = good.clone();
                g[i] = b;
                let _ = read_npy(&g);
            }
        }
    }
}
