//! Max pooling that also reports where each maximum is (ONNX MaxPool's `Indices` output), for
//! every ordered element type.
//!
//! The window is [`Pool2d`]'s (dilations and `ceil_mode` included). The values equal
//! [`crate::float::pool2d`]'s and [`crate::int::max_pool2d`]'s; the index of each is the flat
//! position of the input element in the input seen as NCHW, in the op's [`StorageOrder`]:
//! `((n·C + c)·H + y)·W + x` row-major, `(n·C + c)·H·W + x·H + y` column-major (see
//! [`MaxPool2dWithIndices`]). Taps are visited row by row, so the first maximum in row-major
//! order wins (whatever the storage order); values that are not ordered (NaN) never win, and a
//! window without input elements gives [`MaxPoolElement::LOWEST`] and index −1.

use crate::error::{check_len, invalid, Result};
use crate::shape::window_taps;
use crate::window::nhwc;
use crate::Element;
use ipukit_ir::ops::{MaxPool2dWithIndices, Pool2d, PoolKind, StorageOrder};
use rayon::prelude::*;

/// Element types [`max_pool2d_with_indices`] runs on.
pub trait MaxPoolElement: Element + PartialOrd {
    /// The value of a window without input elements (`f32::MIN` for `f32`, as in the float
    /// pooling kernel; the type's minimum for integers).
    const LOWEST: Self;
}

macro_rules! max_pool_element {
    ($($t:ty),*) => {$(
        impl MaxPoolElement for $t {
            const LOWEST: Self = <$t>::MIN;
        }
    )*};
}
max_pool_element!(f32, i64, i32, i16, u16, i8, u8);

/// Below this many output elements the kernel runs on one thread.
const MIN_PAR_ELEMS: usize = 1 << 13;

/// Max pooling of `x` (NHWC) into `out` and `indices` (both NHWC of `attrs.pool.out_hw`).
pub fn max_pool2d_with_indices<T: MaxPoolElement>(
    attrs: &MaxPool2dWithIndices,
    x: &[T],
    x_shape: &[usize],
    out: &mut [T],
    indices: &mut [i64],
) -> Result<()> {
    const OP: &str = "MaxPool2dWithIndices";
    let a: &Pool2d = &attrs.pool;
    if a.kind != PoolKind::Max {
        return Err(invalid(OP, "pool kind must be max"));
    }
    let [n, h, w, c] = nhwc(OP, x_shape)?;
    if a.strides.contains(&0) || a.kernel.contains(&0) || a.dilations.contains(&0) {
        return Err(invalid(
            OP,
            "kernel, strides and dilations must be positive",
        ));
    }
    let [oh, ow] = a.out_hw(h, w).ok_or_else(|| {
        invalid(
            OP,
            format!("window {:?} does not fit input {x_shape:?}", a.kernel),
        )
    })?;
    check_len(OP, "input", x.len(), n * h * w * c)?;
    check_len(OP, "output", out.len(), n * oh * ow * c)?;
    check_len(OP, "indices", indices.len(), n * oh * ow * c)?;
    let numel = n * h * w * c;
    if i64::try_from(numel).is_err() {
        return Err(invalid(OP, "the input is too large for INT64 indices"));
    }
    let row = ow * c;
    if row == 0 {
        return Ok(());
    }
    let p = a.padding;
    let [kh, kw] = a.kernel;
    let [sh, sw] = a.strides;
    let [dh, dw] = a.dilations;
    let plane = h * w;
    // Position of (y, x) inside its (n, c) plane.
    let (y_step, x_step) = match attrs.storage_order {
        StorageOrder::RowMajor => (w, 1),
        StorageOrder::ColumnMajor => (1, h),
    };
    let do_row = |r: usize, (vals, idx): (&mut [T], &mut [i64])| {
        let (b, oy) = (r / oh, r % oh);
        let ys = window_taps(oy, sh, kh, dh, p.top, p.bottom, h);
        for (ox, (pv, pi)) in vals
            .chunks_exact_mut(c)
            .zip(idx.chunks_exact_mut(c))
            .enumerate()
        {
            let xs = window_taps(ox, sw, kw, dw, p.left, p.right, w);
            pv.fill(T::LOWEST);
            pi.fill(-1);
            for y in ys.stepped(dh) {
                for xx in xs.stepped(dw) {
                    let src = &x[((b * h + y) * w + xx) * c..][..c];
                    // NCHW position of channel 0; channel `ch` adds `ch · H · W`.
                    let base = (b * c * plane + y * y_step + xx * x_step) as i64;
                    for (ch, ((d, i), &v)) in pv.iter_mut().zip(pi.iter_mut()).zip(src).enumerate()
                    {
                        if v > *d || (*i < 0 && v == *d) {
                            *d = v;
                            *i = base + (ch * plane) as i64;
                        }
                    }
                }
            }
        }
    };
    if out.len() < MIN_PAR_ELEMS || rayon::current_num_threads() <= 1 {
        out.chunks_exact_mut(row)
            .zip(indices.chunks_exact_mut(row))
            .enumerate()
            .for_each(|(r, pair)| do_row(r, pair));
    } else {
        out.par_chunks_exact_mut(row)
            .zip(indices.par_chunks_exact_mut(row))
            .enumerate()
            .for_each(|(r, pair)| do_row(r, pair));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::float::pool2d;
    use ipukit_ir::ops::Padding2d;
    use proptest::prelude::*;

    /// ONNX Runtime's MaxPool-with-indices loop (`pool_functors.h`, `MaxPool2DTask`) on an
    /// NCHW tensor, with the window's taps enumerated one by one.
    fn naive_nchw<T: MaxPoolElement>(
        a: &Pool2d,
        order: StorageOrder,
        x: &[T],
        xs: [usize; 4],
    ) -> (Vec<T>, Vec<i64>) {
        let [n, c, h, w] = xs;
        let [oh, ow] = a.out_hw(h, w).unwrap();
        let p = a.padding;
        let mut vals = vec![T::LOWEST; n * c * oh * ow];
        let mut idx = vec![-1i64; n * c * oh * ow];
        for nc in 0..n * c {
            for oy in 0..oh {
                for ox in 0..ow {
                    let hs = (oy * a.strides[0]) as i64 - p.top as i64;
                    let ws = (ox * a.strides[1]) as i64 - p.left as i64;
                    let o = (nc * oh + oy) * ow + ox;
                    let mut found = false;
                    for i in 0..a.kernel[0] {
                        let y = hs + (i * a.dilations[0]) as i64;
                        if y < 0 || y >= h as i64 {
                            continue;
                        }
                        for j in 0..a.kernel[1] {
                            let xx = ws + (j * a.dilations[1]) as i64;
                            if xx < 0 || xx >= w as i64 {
                                continue;
                            }
                            let (y, xx) = (y as usize, xx as usize);
                            let flat = nc * h * w + y * w + xx;
                            if !found || x[flat] > vals[o] {
                                vals[o] = x[flat];
                                idx[o] = match order {
                                    StorageOrder::RowMajor => flat,
                                    StorageOrder::ColumnMajor => nc * h * w + xx * h + y,
                                } as i64;
                                found = true;
                            }
                        }
                    }
                }
            }
        }
        (vals, idx)
    }

    /// NCHW → NHWC.
    fn to_nhwc<T: Copy>(x: &[T], [n, c, h, w]: [usize; 4]) -> Vec<T> {
        let mut out = Vec::with_capacity(x.len());
        for b in 0..n {
            for y in 0..h {
                for xx in 0..w {
                    for ch in 0..c {
                        out.push(x[((b * c + ch) * h + y) * w + xx]);
                    }
                }
            }
        }
        out
    }

    fn run<T: MaxPoolElement>(
        a: &Pool2d,
        order: StorageOrder,
        x_nchw: &[T],
        xs: [usize; 4],
    ) -> (Vec<T>, Vec<i64>) {
        let [n, c, h, w] = xs;
        let [oh, ow] = a.out_hw(h, w).unwrap();
        let len = n * oh * ow * c;
        let (mut vals, mut idx) = (vec![T::default(); len], vec![0i64; len]);
        let op = MaxPool2dWithIndices {
            pool: a.clone(),
            storage_order: order,
        };
        let x = to_nhwc(x_nchw, xs);
        max_pool2d_with_indices(&op, &x, &[n, h, w, c], &mut vals, &mut idx).unwrap();
        (vals, idx)
    }

    prop_compose! {
        fn pool_case()(kh in 1usize..4, kw in 1usize..4, sh in 1usize..4, sw in 1usize..4,
                       dh in 1usize..3, dw in 1usize..3,
                       pads in proptest::array::uniform4(0usize..3), ceil in any::<bool>(),
                       n in 1usize..3, c in 1usize..6, h in 1usize..9, w in 1usize..9)
            -> (Pool2d, [usize; 4]) {
            let span = [(kh - 1) * dh + 1, (kw - 1) * dw + 1];
            let padding = Padding2d {
                top: pads[0].min(span[0] - 1),
                left: pads[1].min(span[1] - 1),
                bottom: pads[2].min(span[0] - 1),
                right: pads[3].min(span[1] - 1),
            };
            let pool = Pool2d {
                kind: PoolKind::Max,
                kernel: [kh, kw],
                strides: [sh, sw],
                dilations: [dh, dw],
                padding,
                ceil_mode: ceil,
            };
            (pool, [n, c, h.max(span[0]), w.max(span[1])])
        }
    }

    proptest! {
        #[test]
        fn matches_onnx_runtime_loop((pool, xs) in pool_case(), column_major in any::<bool>(), seed in any::<u64>(), threads in 1usize..3) {
            let order = if column_major { StorageOrder::ColumnMajor } else { StorageOrder::RowMajor };
            let len: usize = xs.iter().product();
            // Few distinct values, so that windows hold ties.
            let mut s = seed | 1;
            let mut next = || { s ^= s << 13; s ^= s >> 7; s ^= s << 17; (s >> 40) % 5 };
            let xu: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let xf: Vec<f32> = (0..len).map(|_| next() as f32 - 2.5).collect();
            let pool_ = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let (gu, gf) = pool_.install(|| (run(&pool, order, &xu, xs), run(&pool, order, &xf, xs)));
            let [n, c, h, w] = xs;
            let [oh, ow] = pool.out_hw(h, w).unwrap();
            for (got, want) in [(gu.1.clone(), naive_nchw(&pool, order, &xu, xs).1), (gf.1.clone(), naive_nchw(&pool, order, &xf, xs).1)] {
                prop_assert_eq!(got, to_nhwc(&want, [n, c, oh, ow]));
            }
            prop_assert_eq!(gu.0, to_nhwc(&naive_nchw(&pool, order, &xu, xs).0, [n, c, oh, ow]));
            // The values are those of the plain float kernel.
            let mut plain = vec![0f32; gf.0.len()];
            pool2d(&pool, &to_nhwc(&xf, xs), &[n, h, w, c], &mut plain).unwrap();
            prop_assert_eq!(gf.0, plain);
        }
    }

    /// ONNX Runtime 1.31 (opset 12) on x[i] = (7·i mod 11) − 5, shape 1×2×4×5, kernel 3×2,
    /// pads (1, 0, 1, 1), strides (2, 1), both storage orders.
    #[test]
    fn onnx_runtime_example() {
        let xs = [1, 2, 4, 5];
        let x: Vec<f32> = (0..40).map(|i| ((7 * i) % 11) as f32 - 5.0).collect();
        let pool = Pool2d {
            kind: PoolKind::Max,
            kernel: [3, 2],
            strides: [2, 1],
            dilations: [1, 1],
            padding: Padding2d {
                top: 1,
                left: 0,
                bottom: 1,
                right: 1,
            },
            ceil_mode: false,
        };
        let (_, idx) = run(&pool, StorageOrder::RowMajor, &x, xs);
        assert_eq!(idx, to_nhwc(&ORT_EXAMPLE, [1, 2, 2, 5]));
        let (_, idx) = run(&pool, StorageOrder::ColumnMajor, &x, xs);
        assert_eq!(idx, to_nhwc(&ORT_EXAMPLE_COLUMN_MAJOR, [1, 2, 2, 5]));
    }

    /// ONNX Runtime's `Indices` (NCHW) for [`onnx_runtime_example`], `storage_order` 0.
    const ORT_EXAMPLE: [i64; 20] = [
        6, 6, 3, 3, 9, 6, 6, 17, 14, 14, 25, 26, 28, 28, 29, 25, 36, 28, 28, 39,
    ];

    /// The same with `storage_order` 1.
    const ORT_EXAMPLE_COLUMN_MAJOR: [i64; 20] = [
        5, 5, 12, 12, 17, 5, 5, 11, 18, 18, 21, 25, 33, 33, 37, 21, 27, 33, 33, 39,
    ];

    #[test]
    fn bad_attributes_are_errors() {
        let mut op = MaxPool2dWithIndices {
            storage_order: StorageOrder::RowMajor,
            pool: Pool2d {
                kind: PoolKind::Average {
                    count_include_pad: false,
                },
                kernel: [2, 2],
                strides: [1, 1],
                dilations: [1, 1],
                padding: Padding2d::ZERO,
                ceil_mode: false,
            },
        };
        let (mut v, mut i) = ([0u8; 1], [0i64; 1]);
        assert!(max_pool2d_with_indices(&op, &[0u8; 4], &[1, 2, 2, 1], &mut v, &mut i).is_err());
        op.pool.kind = PoolKind::Max;
        assert!(max_pool2d_with_indices(&op, &[0u8; 4], &[1, 2, 2, 1], &mut v, &mut i).is_ok());
        assert_eq!((v, i), ([0], [0]));
        assert!(max_pool2d_with_indices(&op, &[0u8; 4], &[1, 2, 2], &mut v, &mut i).is_err());
        op.pool.dilations = [2, 1];
        assert!(max_pool2d_with_indices(&op, &[0u8; 4], &[1, 2, 2, 1], &mut v, &mut i).is_err());
    }
}
