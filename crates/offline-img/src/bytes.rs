//! Little-endian writing and bounds-checked reading.

use crate::error::{corrupt, ImgError, Result};

/// Appends little-endian values to a byte vector.
#[derive(Debug, Default, Clone)]
pub(crate) struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Writer {
        Writer::default()
    }
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub fn bool(&mut self, v: bool) {
        self.buf.push(u8::from(v));
    }
    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn f32(&mut self, v: f32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    /// A size or index, stored as `u32`.
    pub fn size(&mut self, v: usize) -> Result<()> {
        let v = u32::try_from(v)
            .map_err(|_| ImgError::Unsupported(format!("value {v} does not fit in 32 bits")))?;
        self.u32(v);
        Ok(())
    }
    /// `u32` count then one `u32` per value.
    pub fn sizes(&mut self, v: &[usize]) -> Result<()> {
        self.size(v.len())?;
        v.iter().try_for_each(|&x| self.size(x))
    }
    /// `u16` byte length then UTF-8.
    pub fn str(&mut self, s: &str) -> Result<()> {
        let n = u16::try_from(s.len())
            .map_err(|_| ImgError::Unsupported(format!("name of {} bytes is too long", s.len())))?;
        self.u16(n);
        self.buf.extend_from_slice(s.as_bytes());
        Ok(())
    }
    pub fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }
    /// Zero bytes up to a multiple of `align`.
    pub fn pad_to(&mut self, align: usize) {
        while !self.buf.len().is_multiple_of(align) {
            self.buf.push(0);
        }
    }
    pub fn len(&self) -> usize {
        self.buf.len()
    }
}

/// Reads little-endian values from a slice; every read is bounds-checked.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    section: &'static str,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8], section: &'static str) -> Reader<'a> {
        Reader {
            buf,
            pos: 0,
            section,
        }
    }
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    pub fn err(&self, reason: impl Into<String>) -> ImgError {
        corrupt(self.section, reason)
    }
    pub fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(self.err(format!(
                "truncated: {n} bytes needed at offset {}, {} left",
                self.pos,
                self.remaining()
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }
    pub fn bool(&mut self) -> Result<bool> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(self.err(format!("boolean {v} at offset {}", self.pos - 1))),
        }
    }
    pub fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    pub fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    pub fn i32(&mut self) -> Result<i32> {
        Ok(i32::from_le_bytes(self.array()?))
    }
    pub fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_le_bytes(self.array()?))
    }
    pub fn f32(&mut self) -> Result<f32> {
        Ok(f32::from_le_bytes(self.array()?))
    }
    pub fn size(&mut self) -> Result<usize> {
        Ok(self.u32()? as usize)
    }
    /// A count of items of at least `min_bytes` each: refuses counts the rest of the buffer
    /// cannot hold, so that no allocation is sized by a corrupted number.
    pub fn count(&mut self, min_bytes: usize) -> Result<usize> {
        let n = self.size()?;
        if n.saturating_mul(min_bytes.max(1)) > self.remaining() {
            return Err(self.err(format!(
                "count {n} at offset {} exceeds the data left",
                self.pos - 4
            )));
        }
        Ok(n)
    }
    pub fn sizes(&mut self) -> Result<Vec<usize>> {
        let n = self.count(4)?;
        (0..n).map(|_| self.size()).collect()
    }
    pub fn str(&mut self) -> Result<String> {
        let n = self.u16()? as usize;
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| self.err("a name is not UTF-8"))
    }
    pub fn expect_end(&self) -> Result<()> {
        if self.remaining() != 0 {
            return Err(self.err(format!("{} unexpected bytes at the end", self.remaining())));
        }
        Ok(())
    }
}

/// `v` rounded up to a multiple of `a` (`a > 0`), `None` on overflow.
pub(crate) fn align_up(v: usize, a: usize) -> Option<usize> {
    v.checked_add(a - 1).map(|x| x / a * a)
}
