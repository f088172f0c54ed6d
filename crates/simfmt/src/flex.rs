//! FlexBuffers: custom operator options and ipukit's graph metadata.
//!
//! Writing uses the `flexbuffers` crate's builder. Reading uses the small decoder below instead
//! of the crate's reader, because the reader must never panic or blow up on a corrupt file: every
//! address is bounds-checked, nesting is limited and the number of decoded values is capped (a
//! flexbuffer is a DAG, so a small buffer can reference the same vector many times).

use flexbuffers::{Builder, MapBuilder};

/// A decoded flexbuffer value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Int(i64),
    UInt(u64),
    Float(f64),
    Bool(bool),
    Str(String),
    Blob(Vec<u8>),
    Vector(Vec<Value>),
    Map(Vec<(String, Value)>),
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Int(_) | Value::UInt(_) => "integer",
            Value::Float(_) => "float",
            Value::Bool(_) => "bool",
            Value::Str(_) => "string",
            Value::Blob(_) => "blob",
            Value::Vector(_) => "vector",
            Value::Map(_) => "map",
        }
    }

    pub(crate) fn as_i64(&self) -> Result<i64, String> {
        match *self {
            Value::Int(v) => Ok(v),
            Value::UInt(v) => i64::try_from(v).map_err(|_| format!("integer {v} too large")),
            Value::Bool(b) => Ok(b as i64),
            _ => Err(format!("expected an integer, found a {}", self.kind())),
        }
    }

    pub(crate) fn as_f64(&self) -> Result<f64, String> {
        match *self {
            Value::Float(v) => Ok(v),
            Value::Int(v) => Ok(v as f64),
            Value::UInt(v) => Ok(v as f64),
            _ => Err(format!("expected a number, found a {}", self.kind())),
        }
    }

    pub(crate) fn as_bool(&self) -> Result<bool, String> {
        match *self {
            Value::Bool(b) => Ok(b),
            Value::Int(v) => Ok(v != 0),
            Value::UInt(v) => Ok(v != 0),
            _ => Err(format!("expected a bool, found a {}", self.kind())),
        }
    }

    pub(crate) fn as_str(&self) -> Result<&str, String> {
        match self {
            Value::Str(s) => Ok(s),
            _ => Err(format!("expected a string, found a {}", self.kind())),
        }
    }

    pub(crate) fn as_vec(&self) -> Result<&[Value], String> {
        match self {
            Value::Vector(v) => Ok(v),
            _ => Err(format!("expected a vector, found a {}", self.kind())),
        }
    }

    pub(crate) fn as_map(&self) -> Result<&[(String, Value)], String> {
        match self {
            Value::Map(m) => Ok(m),
            _ => Err(format!("expected a map, found a {}", self.kind())),
        }
    }
}

/// Looks up `key` in a decoded map.
pub(crate) fn get<'a>(map: &'a [(String, Value)], key: &str) -> Option<&'a Value> {
    map.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

const MAX_DEPTH: usize = 32;
const MAX_VALUES: usize = 1 << 22;

/// Decodes a whole flexbuffer.
pub(crate) fn decode(buf: &[u8]) -> Result<Value, String> {
    let n = buf.len();
    if n < 3 {
        return Err(format!("flexbuffer of {n} bytes is too short"));
    }
    let root_width = buf[n - 1] as usize;
    if !matches!(root_width, 1 | 2 | 4 | 8) {
        return Err(format!("bad root width {root_width}"));
    }
    let packed = buf[n - 2];
    let addr = (n - 2)
        .checked_sub(root_width)
        .ok_or("flexbuffer root does not fit")?;
    let mut d = Decoder {
        buf,
        budget: MAX_VALUES,
    };
    d.value(addr, root_width, packed, 0)
}

struct Decoder<'a> {
    buf: &'a [u8],
    budget: usize,
}

fn width_of(packed: u8) -> usize {
    1 << (packed & 3)
}

impl Decoder<'_> {
    fn bytes(&self, addr: usize, len: usize) -> Result<&[u8], String> {
        addr.checked_add(len)
            .and_then(|end| self.buf.get(addr..end))
            .ok_or_else(|| format!("flexbuffer read of {len} bytes at {addr} is out of bounds"))
    }

    fn uint(&self, addr: usize, width: usize) -> Result<u64, String> {
        let b = self.bytes(addr, width)?;
        let mut a = [0u8; 8];
        a[..width].copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn int(&self, addr: usize, width: usize) -> Result<i64, String> {
        let u = self.uint(addr, width)?;
        let shift = 64 - 8 * width as u32;
        Ok(((u << shift) as i64) >> shift)
    }

    fn float(&self, addr: usize, width: usize) -> Result<f64, String> {
        let u = self.uint(addr, width)?;
        match width {
            4 => Ok(f32::from_bits(u as u32) as f64),
            8 => Ok(f64::from_bits(u)),
            w => Err(format!("unsupported float width {w}")),
        }
    }

    /// Follows the offset stored at `addr` (of `width` bytes) backwards.
    fn deref(&self, addr: usize, width: usize) -> Result<usize, String> {
        let off = self.uint(addr, width)?;
        usize::try_from(off)
            .ok()
            .and_then(|o| addr.checked_sub(o))
            .ok_or_else(|| format!("flexbuffer offset {off} at {addr} points before the buffer"))
    }

    /// Length prefix of a vector/string at `target` with element width `width`, checked so that
    /// `len * elem_bytes` fits in the buffer after `target`.
    fn len_at(&self, target: usize, width: usize, elem_bytes: usize) -> Result<usize, String> {
        let at = target
            .checked_sub(width)
            .ok_or("flexbuffer length before the buffer")?;
        let len = self.uint(at, width)?;
        let len = usize::try_from(len).map_err(|_| format!("length {len} too large"))?;
        let total = len
            .checked_mul(elem_bytes)
            .ok_or_else(|| format!("length {len} too large"))?;
        self.bytes(target, total)?;
        Ok(len)
    }

    fn cstr(&self, addr: usize) -> Result<String, String> {
        let rest = self.buf.get(addr..).ok_or("flexbuffer key out of bounds")?;
        let end = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or("flexbuffer key is not terminated")?;
        String::from_utf8(rest[..end].to_vec()).map_err(|_| "flexbuffer key is not UTF-8".into())
    }

    fn value(
        &mut self,
        addr: usize,
        parent_width: usize,
        packed: u8,
        depth: usize,
    ) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err("flexbuffer nesting too deep".into());
        }
        self.budget = self
            .budget
            .checked_sub(1)
            .ok_or("flexbuffer holds too many values")?;
        let ty = packed >> 2;
        let w = width_of(packed);
        match ty {
            0 => Ok(Value::Null),
            1 => Ok(Value::Int(self.int(addr, parent_width)?)),
            2 => Ok(Value::UInt(self.uint(addr, parent_width)?)),
            3 => Ok(Value::Float(self.float(addr, parent_width)?)),
            26 => Ok(Value::Bool(self.uint(addr, parent_width)? != 0)),
            4 => {
                let t = self.deref(addr, parent_width)?;
                Ok(Value::Str(self.cstr(t)?))
            }
            5 | 25 => {
                let t = self.deref(addr, parent_width)?;
                let len = self.len_at(t, w, 1)?;
                let b = self.bytes(t, len)?.to_vec();
                if ty == 5 {
                    String::from_utf8(b)
                        .map(Value::Str)
                        .map_err(|_| "flexbuffer string is not UTF-8".into())
                } else {
                    Ok(Value::Blob(b))
                }
            }
            6 => {
                let t = self.deref(addr, parent_width)?;
                Ok(Value::Int(self.int(t, w)?))
            }
            7 => {
                let t = self.deref(addr, parent_width)?;
                Ok(Value::UInt(self.uint(t, w)?))
            }
            8 => {
                let t = self.deref(addr, parent_width)?;
                Ok(Value::Float(self.float(t, w)?))
            }
            9 | 10 => {
                let t = self.deref(addr, parent_width)?;
                let len = self.len_at(t, w, w + 1)?;
                let mut values = Vec::with_capacity(len);
                for i in 0..len {
                    let child_packed = self.bytes(t + len * w + i, 1)?[0];
                    values.push(self.value(t + i * w, w, child_packed, depth + 1)?);
                }
                if ty == 10 {
                    return Ok(Value::Vector(values));
                }
                let keys_ref = t.checked_sub(3 * w).ok_or("map keys before the buffer")?;
                let keys = self.deref(keys_ref, w)?;
                let kw = self.uint(t - 2 * w, w)? as usize;
                if !matches!(kw, 1 | 2 | 4 | 8) {
                    return Err(format!("bad map key width {kw}"));
                }
                let klen = self.len_at(keys, kw, kw)?;
                if klen != len {
                    return Err(format!("map has {len} values but {klen} keys"));
                }
                let mut out = Vec::with_capacity(len);
                for (i, v) in values.into_iter().enumerate() {
                    let k = self.deref(keys + i * kw, kw)?;
                    out.push((self.cstr(k)?, v));
                }
                Ok(Value::Map(out))
            }
            11..=14 | 36 => {
                // Typed vectors: Int, UInt, Float, Key, Bool.
                let t = self.deref(addr, parent_width)?;
                let len = self.len_at(t, w, w)?;
                let elem = match ty {
                    11 => 1,
                    12 => 2,
                    13 => 3,
                    14 => 4,
                    _ => 26,
                };
                self.typed(t, len, w, elem, depth)
            }
            16..=24 => {
                let t = self.deref(addr, parent_width)?;
                let n = (ty as usize - 16) / 3 + 2;
                let elem = (ty - 16) % 3 + 1;
                self.bytes(t, n * w)?;
                self.typed(t, n, w, elem, depth)
            }
            other => Err(format!("unsupported flexbuffer type {other}")),
        }
    }

    fn typed(
        &mut self,
        t: usize,
        len: usize,
        w: usize,
        elem: u8,
        depth: usize,
    ) -> Result<Value, String> {
        let mut values = Vec::with_capacity(len);
        for i in 0..len {
            values.push(self.value(t + i * w, w, elem << 2, depth + 1)?);
        }
        Ok(Value::Vector(values))
    }
}

/// Builds a flexbuffer map; keys are sorted by the builder, so the bytes are deterministic.
pub(crate) struct MapWriter {
    entries: Vec<(String, Entry)>,
}

enum Entry {
    Int(i64),
    Float(f32),
    Bool(bool),
    Str(String),
    Ints(Vec<i64>),
    Floats(Vec<f32>),
    Maps(Vec<MapWriter>),
}

impl MapWriter {
    pub(crate) fn new() -> MapWriter {
        MapWriter {
            entries: Vec::new(),
        }
    }

    pub(crate) fn int(mut self, k: &str, v: impl Into<i64>) -> Self {
        self.entries.push((k.into(), Entry::Int(v.into())));
        self
    }

    pub(crate) fn uint(self, k: &str, v: usize) -> Self {
        self.int(k, v as i64)
    }

    pub(crate) fn float(mut self, k: &str, v: f32) -> Self {
        self.entries.push((k.into(), Entry::Float(v)));
        self
    }

    pub(crate) fn bool(mut self, k: &str, v: bool) -> Self {
        self.entries.push((k.into(), Entry::Bool(v)));
        self
    }

    pub(crate) fn str(mut self, k: &str, v: &str) -> Self {
        self.entries.push((k.into(), Entry::Str(v.into())));
        self
    }

    pub(crate) fn uints(mut self, k: &str, v: &[usize]) -> Self {
        self.entries
            .push((k.into(), Entry::Ints(v.iter().map(|&x| x as i64).collect())));
        self
    }

    pub(crate) fn ints(mut self, k: &str, v: &[i64]) -> Self {
        self.entries.push((k.into(), Entry::Ints(v.to_vec())));
        self
    }

    pub(crate) fn floats(mut self, k: &str, v: &[f32]) -> Self {
        self.entries.push((k.into(), Entry::Floats(v.to_vec())));
        self
    }

    pub(crate) fn maps(mut self, k: &str, v: Vec<MapWriter>) -> Self {
        self.entries.push((k.into(), Entry::Maps(v)));
        self
    }

    fn fill(&self, m: &mut MapBuilder<'_>) {
        for (k, v) in &self.entries {
            match v {
                Entry::Int(x) => m.push(k, *x),
                Entry::Float(x) => m.push(k, *x),
                Entry::Bool(x) => m.push(k, *x),
                Entry::Str(x) => m.push(k, x.as_str()),
                Entry::Ints(x) => m.push(k, x.as_slice()),
                Entry::Floats(x) => m.push(k, x.as_slice()),
                Entry::Maps(x) => {
                    let mut v = m.start_vector(k);
                    for sub in x {
                        let mut sm = v.start_map();
                        sub.fill(&mut sm);
                        sm.end_map();
                    }
                    v.end_vector();
                }
            }
        }
    }

    /// The encoded flexbuffer.
    pub(crate) fn finish(&self) -> Vec<u8> {
        let mut b = Builder::default();
        let mut m = b.start_map();
        self.fill(&mut m);
        m.end_map();
        b.take_buffer()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_what_the_builder_writes() {
        let bytes = MapWriter::new()
            .int("a", -5)
            .float("f", 0.25)
            .float("inf", f32::INFINITY)
            .bool("b", true)
            .str("s", "hello")
            .uints("v", &[1, 2, 300_000])
            .floats("fv", &[1.5, -2.0])
            .maps(
                "ops",
                vec![MapWriter::new().str("name", "x"), MapWriter::new()],
            )
            .finish();
        let v = decode(&bytes).unwrap();
        let m = v.as_map().unwrap();
        assert_eq!(get(m, "a").unwrap().as_i64().unwrap(), -5);
        assert_eq!(get(m, "f").unwrap().as_f64().unwrap(), 0.25);
        assert_eq!(get(m, "inf").unwrap().as_f64().unwrap(), f64::INFINITY);
        assert!(get(m, "b").unwrap().as_bool().unwrap());
        assert_eq!(get(m, "s").unwrap().as_str().unwrap(), "hello");
        let vs: Vec<i64> = get(m, "v")
            .unwrap()
            .as_vec()
            .unwrap()
            .iter()
            .map(|x| x.as_i64().unwrap())
            .collect();
        assert_eq!(vs, vec![1, 2, 300_000]);
        let fv = get(m, "fv").unwrap().as_vec().unwrap();
        assert_eq!(fv[0].as_f64().unwrap(), 1.5);
        let ops = get(m, "ops").unwrap().as_vec().unwrap();
        assert_eq!(ops.len(), 2);
        assert_eq!(
            get(ops[0].as_map().unwrap(), "name")
                .unwrap()
                .as_str()
                .unwrap(),
            "x"
        );
        assert!(ops[1].as_map().unwrap().is_empty());
    }

    #[test]
    fn never_panics_on_mutations() {
        let bytes = MapWriter::new()
            .int("a", 7)
            .uints("v", &[1, 2, 3])
            .str("s", "abc")
            .maps("m", vec![MapWriter::new().float("x", 1.0)])
            .finish();
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[i] ^= 1 << bit;
                let _ = decode(&b);
            }
            let _ = decode(&bytes[..i]);
            let _ = decode(&bytes[i..]);
        }
    }
}
