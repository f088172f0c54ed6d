//! A growable buffer whose first element sits on a 64-byte cache-line boundary.
//!
//! The AMX and AVX-512 kernels load 64-byte rows of weights, im2col rows and tiles. From a
//! plain `Vec` (16-byte aligned from the system allocator) every such row straddles two cache
//! lines, and which buffers did depended on where the allocator put them: OriNet took 4.9 to
//! 6.4 ms on two threads from one fresh session to the next, and 4.2 to 4.5 ms with its
//! buffers on cache lines.

use bytemuck::{Pod, Zeroable};
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

/// One cache line of storage.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

// SAFETY: `Line` is a 64-byte array with the array's size and a larger alignment, so it has no
// padding, and every bit pattern is a valid `[u8; 64]`; all zeroes included.
unsafe impl Zeroable for Line {}
// SAFETY: as above; `Line` is `Copy`, `'static` and `repr(C)`.
unsafe impl Pod for Line {}

const LINE: usize = size_of::<Line>();

/// A `Vec`-like buffer of plain values, 64-byte aligned, for the kernels' hot data (packed
/// weights, arenas, scratch). New elements are zero unless [`AlignedVec::resize`] says
/// otherwise.
pub struct AlignedVec<T> {
    lines: Vec<Line>,
    len: usize,
    elem: PhantomData<T>,
}

impl<T: Pod> AlignedVec<T> {
    // Element sizes that tile a line exactly: the casts below cannot fail.
    const FITS: () = assert!(size_of::<T>() > 0 && LINE.is_multiple_of(size_of::<T>()));

    /// An empty buffer (no allocation).
    pub fn new() -> Self {
        let () = Self::FITS;
        AlignedVec {
            lines: Vec::new(),
            len: 0,
            elem: PhantomData,
        }
    }

    /// `len` zeroes.
    pub fn zeroed(len: usize) -> Self {
        let mut v = Self::new();
        v.resize(len, T::zeroed());
        v
    }

    /// A copy of `values`.
    pub fn from_slice(values: &[T]) -> Self {
        let mut v = Self::zeroed(values.len());
        v.copy_from_slice(values);
        v
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer holds no element.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Drops every element, keeping the allocation.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Sets the length to `len`: elements past the old length are `value`, the others keep
    /// their values.
    pub fn resize(&mut self, len: usize, value: T) {
        let lines = (len * size_of::<T>()).div_ceil(LINE);
        if self.lines.len() < lines {
            self.lines.resize(lines, Line([0; LINE]));
        }
        let old = self.len;
        self.len = len;
        if len > old {
            self[old..].fill(value);
        }
    }

    /// Sets the length to `len` without writing: elements past the old length keep what the
    /// storage last held (zero if never written). For scratch written before it is read,
    /// where [`AlignedVec::resize`]'s fill would be a wasted pass.
    pub fn resize_unspecified(&mut self, len: usize) {
        let lines = (len * size_of::<T>()).div_ceil(LINE);
        if self.lines.len() < lines {
            self.lines.resize(lines, Line([0; LINE]));
        }
        self.len = len;
    }
}

impl<T: Pod> Default for AlignedVec<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Pod> Clone for AlignedVec<T> {
    fn clone(&self) -> Self {
        AlignedVec {
            lines: self.lines.clone(),
            len: self.len,
            elem: PhantomData,
        }
    }
}

impl<T: Pod> Deref for AlignedVec<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &bytemuck::cast_slice::<Line, T>(&self.lines)[..self.len]
    }
}

impl<T: Pod> DerefMut for AlignedVec<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut bytemuck::cast_slice_mut::<Line, T>(&mut self.lines)[..self.len]
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for AlignedVec<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<T: Pod + PartialEq> PartialEq for AlignedVec<T> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_start_on_a_cache_line_and_behave_like_a_vec() {
        let mut v = AlignedVec::<i16>::zeroed(5);
        assert_eq!(v.as_ptr() as usize % 64, 0);
        assert_eq!(&*v, &[0; 5]);
        v[4] = 7;
        v.resize(40, 3);
        assert_eq!(v.len(), 40);
        assert_eq!(v[4], 7);
        assert!(v[5..].iter().all(|&x| x == 3));
        v.resize_unspecified(10);
        assert_eq!((v.len(), v[4], v[9]), (10, 7, 3));
        v.resize_unspecified(100);
        assert_eq!((v.len(), v[39], v[99]), (100, 3, 0));
        assert_eq!(v.as_ptr() as usize % 64, 0);
        v.resize(2, 9);
        assert_eq!(&*v, &[0, 0]);
        v.clear();
        assert!(v.is_empty());
        v.resize(3, 1);
        assert_eq!(&*v, &[1, 1, 1]);
        let w = v.clone();
        assert_eq!(w, v);
        assert_eq!(w.as_ptr() as usize % 64, 0);
        assert!(AlignedVec::<u64>::new().is_empty());
        let c = AlignedVec::from_slice(&[1u8, 2, 3]);
        assert_eq!((&*c, c.as_ptr() as usize % 64), (&[1u8, 2, 3][..], 0));
    }
}
