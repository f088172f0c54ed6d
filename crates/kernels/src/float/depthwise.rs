//! Depthwise 2-D convolution, NHWC, as a direct loop vectorised over channels.

use super::Epilogue;
use crate::error::{check_len, invalid, Result};
use crate::par;
use crate::simd::{dispatch, madd};
use crate::window::{nhwc_with_channels, ConvGeometry};
use ipukit_ir::ops::DepthwiseConv2d;

/// Channels accumulated together in registers.
const BLOCK: usize = 32;

/// A DepthwiseConv2d with its weights in `[KH, KW, Cout]` order.
#[derive(Debug, Clone)]
pub struct PackedDepthwise {
    geo: ConvGeometry,
    cin: usize,
    mult: usize,
    weights: Vec<f32>,
    bias: Option<Vec<f32>>,
    epilogue: Epilogue,
}

impl PackedDepthwise {
    /// Packs a `[1, KH, KW, Cout]` weight and optional `[Cout]` bias.
    pub fn new(
        attrs: &DepthwiseConv2d,
        weight: &[f32],
        weight_shape: &[usize],
        bias: Option<&[f32]>,
    ) -> Result<PackedDepthwise> {
        const OP: &str = "DepthwiseConv2d";
        let &[1, kh, kw, cout] = weight_shape else {
            return Err(invalid(
                OP,
                format!("weight must be [1, KH, KW, Cout], got {weight_shape:?}"),
            ));
        };
        let mult = attrs.depth_multiplier;
        if mult == 0 || cout % mult != 0 {
            return Err(invalid(
                OP,
                format!("depth multiplier {mult} does not divide {cout} output channels"),
            ));
        }
        check_len(OP, "weight", weight.len(), kh * kw * cout)?;
        if let Some(b) = bias {
            check_len(OP, "bias", b.len(), cout)?;
        }
        let geo = ConvGeometry::new(OP, [kh, kw], attrs.strides, attrs.dilations, attrs.padding)?;
        Ok(Self::from_parts(
            geo,
            cout / mult,
            mult,
            weight.to_vec(),
            bias.map(<[f32]>::to_vec),
            Epilogue::new(attrs.activation),
        ))
    }

    pub(crate) fn from_parts(
        geo: ConvGeometry,
        cin: usize,
        mult: usize,
        weights: Vec<f32>,
        bias: Option<Vec<f32>>,
        epilogue: Epilogue,
    ) -> PackedDepthwise {
        PackedDepthwise {
            geo,
            cin,
            mult,
            weights,
            bias,
            epilogue,
        }
    }

    /// The epilogue applied to the output.
    pub fn epilogue(&self) -> Epilogue {
        self.epilogue
    }

    /// Replaces the epilogue.
    pub fn set_epilogue(&mut self, e: Epilogue) {
        self.epilogue = e;
    }

    /// Output shape for an NHWC input.
    pub fn output_shape(&self, x_shape: &[usize]) -> Result<[usize; 4]> {
        const OP: &str = "DepthwiseConv2d";
        let [n, h, w] = nhwc_with_channels(OP, x_shape, self.cin)?;
        let [oh, ow] = self.geo.out_hw(OP, h, w)?;
        Ok([n, oh, ow, self.cin * self.mult])
    }

    /// Runs the convolution.
    pub fn run(&self, x: &[f32], x_shape: &[usize], out: &mut [f32]) -> Result<()> {
        self.run_with(x, x_shape, out, &self.epilogue)
    }

    /// [`PackedDepthwise::run`] with another epilogue.
    pub fn run_with(
        &self,
        x: &[f32],
        x_shape: &[usize],
        out: &mut [f32],
        epilogue: &Epilogue,
    ) -> Result<()> {
        const OP: &str = "DepthwiseConv2d";
        let [n, oh, ow, cout] = self.output_shape(x_shape)?;
        check_len(OP, "input", x.len(), x_shape.iter().product())?;
        check_len(OP, "output", out.len(), n * oh * ow * cout)?;
        let row = ow * cout;
        if row == 0 {
            return Ok(());
        }
        let (h, w) = (x_shape[1], x_shape[2]);
        par::for_rows(out, row, 1 << 13, |r0, chunk| {
            for (r, dst) in chunk.chunks_exact_mut(row).enumerate() {
                let (b, oy) = ((r0 + r) / oh, (r0 + r) % oh);
                row_best(self, x, h, w, b, oy, dst);
                epilogue.apply_rows(dst, cout, None);
            }
        });
        Ok(())
    }
}

/// One output row `(b, oy)`, bias included, epilogue not yet applied.
#[inline(always)]
fn dw_row<const FMA: bool>(
    p: &PackedDepthwise,
    x: &[f32],
    h: usize,
    w: usize,
    b: usize,
    oy: usize,
    dst: &mut [f32],
) {
    let g = &p.geo;
    let cin = p.cin;
    let m = p.mult;
    let cout = cin * m;
    let iy0 = (oy * g.strides[0]) as isize - g.padding.top as isize;
    for (ox, acc_out) in dst.chunks_exact_mut(cout).enumerate() {
        let ix0 = (ox * g.strides[1]) as isize - g.padding.left as isize;
        match &p.bias {
            Some(bias) => acc_out.copy_from_slice(bias),
            None => acc_out.fill(0.0),
        }
        // Taps inside the input.
        let taps = (0..g.kh)
            .flat_map(|ky| (0..g.kw).map(move |kx| (ky, kx)))
            .filter_map(|(ky, kx)| {
                let iy = iy0 + (ky * g.dilations[0]) as isize;
                let ix = ix0 + (kx * g.dilations[1]) as isize;
                (iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w).then(|| {
                    (
                        ((b * h + iy as usize) * w + ix as usize) * cin,
                        (ky * g.kw + kx) * cout,
                    )
                })
            });
        if m == 1 {
            let mut c0 = 0;
            while c0 + BLOCK <= cout {
                let mut acc = [0.0f32; BLOCK];
                acc.copy_from_slice(&acc_out[c0..c0 + BLOCK]);
                for (xo, wo) in taps.clone() {
                    let xs = &x[xo + c0..xo + c0 + BLOCK];
                    let ws = &p.weights[wo + c0..wo + c0 + BLOCK];
                    for i in 0..BLOCK {
                        acc[i] = madd::<FMA>(xs[i], ws[i], acc[i]);
                    }
                }
                acc_out[c0..c0 + BLOCK].copy_from_slice(&acc);
                c0 += BLOCK;
            }
            if c0 < cout {
                for (xo, wo) in taps {
                    let xs = &x[xo + c0..xo + cout];
                    let ws = &p.weights[wo + c0..wo + cout];
                    for ((a, &xv), &wv) in acc_out[c0..].iter_mut().zip(xs).zip(ws) {
                        *a = madd::<FMA>(xv, wv, *a);
                    }
                }
            }
        } else {
            for (xo, wo) in taps {
                let xs = &x[xo..xo + cin];
                let ws = &p.weights[wo..wo + cout];
                for (c, &xv) in xs.iter().enumerate() {
                    for j in 0..m {
                        let o = c * m + j;
                        acc_out[o] = madd::<FMA>(xv, ws[o], acc_out[o]);
                    }
                }
            }
        }
    }
}

dispatch!(fn row_best = dw_row(p: &PackedDepthwise, x: &[f32], h: usize, w: usize, b: usize, oy: usize, dst: &mut [f32]));

#[cfg(test)]
mod tests {
    use super::*;
    use crate::float::testutil::{assert_close, data, with_threads};
    use crate::simd;
    use ipukit_ir::ops::{FusedActivation, Padding2d};
    use proptest::prelude::*;

    /// out[n,oy,ox,c·m+j] = b + Σ x[n, iy, ix, c] · w[0, ky, kx, c·m+j].
    fn naive(
        a: &DepthwiseConv2d,
        x: &[f32],
        xs: [usize; 4],
        w: &[f32],
        kh: usize,
        kw: usize,
        bias: Option<&[f32]>,
    ) -> Vec<f32> {
        let [n, h, wd, cin] = xs;
        let m = a.depth_multiplier;
        let cout = cin * m;
        let p = a.padding;
        let oh = (h + p.top + p.bottom - a.dilations[0] * (kh - 1) - 1) / a.strides[0] + 1;
        let ow = (wd + p.left + p.right - a.dilations[1] * (kw - 1) - 1) / a.strides[1] + 1;
        let mut out = vec![0.0; n * oh * ow * cout];
        for b in 0..n {
            for oy in 0..oh {
                for ox in 0..ow {
                    for c in 0..cin {
                        for j in 0..m {
                            let o = c * m + j;
                            let mut acc = bias.map_or(0.0, |bb| bb[o]) as f64;
                            for ky in 0..kh {
                                for kx in 0..kw {
                                    let iy = (oy * a.strides[0] + ky * a.dilations[0]) as isize
                                        - p.top as isize;
                                    let ix = (ox * a.strides[1] + kx * a.dilations[1]) as isize
                                        - p.left as isize;
                                    if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < wd
                                    {
                                        acc += x
                                            [((b * h + iy as usize) * wd + ix as usize) * cin + c]
                                            as f64
                                            * w[(ky * kw + kx) * cout + o] as f64;
                                    }
                                }
                            }
                            out[((b * oh + oy) * ow + ox) * cout + o] =
                                a.activation.apply(acc as f32);
                        }
                    }
                }
            }
        }
        out
    }

    proptest! {
        #[test]
        fn matches_naive(
            m in 1usize..3, cin in 1usize..70, kh in 1usize..4, kw in 1usize..4,
            s in 1usize..3, d in 1usize..3, pads in proptest::array::uniform4(0usize..3),
            h in 1usize..8, w in 1usize..8, bias in any::<bool>(), baseline in any::<bool>(),
        ) {
            let a = DepthwiseConv2d {
                strides: [s, s],
                dilations: [d, d],
                padding: Padding2d { top: pads[0], left: pads[1], bottom: pads[2], right: pads[3] },
                depth_multiplier: m,
                activation: FusedActivation::Relu6,
            };
            let xs = [1, h.max(d * (kh - 1) + 1), w.max(d * (kw - 1) + 1), cin];
            let x = data(xs.iter().product(), 7);
            let wt = data(kh * kw * cin * m, 8);
            let b = data(cin * m, 9);
            let bias = bias.then_some(b.as_slice());
            let want = naive(&a, &x, xs, &wt, kh, kw, bias);
            let p = PackedDepthwise::new(&a, &wt, &[1, kh, kw, cin * m], bias).unwrap();
            let mut out = vec![f32::NAN; want.len()];
            if baseline {
                simd::force(Some(simd::Level::Baseline));
            }
            with_threads(2, || p.run(&x, &xs, &mut out)).unwrap();
            simd::force(None);
            assert_close(&out, &want, 1e-5).map_err(TestCaseError::fail)?;
        }
    }

    #[test]
    fn large_image_in_parallel() {
        let a = DepthwiseConv2d {
            strides: [1, 1],
            dilations: [1, 1],
            padding: Padding2d {
                top: 1,
                left: 1,
                bottom: 1,
                right: 1,
            },
            depth_multiplier: 1,
            activation: FusedActivation::None,
        };
        let xs = [1, 30, 30, 96];
        let x = data(xs.iter().product(), 1);
        let wt = data(9 * 96, 2);
        let want = naive(&a, &x, xs, &wt, 3, 3, None);
        let p = PackedDepthwise::new(&a, &wt, &[1, 3, 3, 96], None).unwrap();
        let mut out = vec![0.0; want.len()];
        with_threads(2, || p.run(&x, &xs, &mut out)).unwrap();
        assert_close(&out, &want, 1e-5).unwrap();
    }
}
