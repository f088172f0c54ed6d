//! Transposed 2-D convolution, NHWC, as GEMM followed by a scatter (col2im).
//!
//! Every input pixel contributes `x[p, :] · W[:, (kh, kw, co)]` to output pixel
//! `(ih·s + kh·d − pad, iw·s + kw·d − pad)`. The product is computed for a chunk of input
//! pixels at a time into scratch, then added into the output, which starts as the bias.

use super::gemm::sgemm;
use super::Epilogue;
use crate::error::{check_len, invalid, Result};
use crate::window::nhwc_with_channels;
use ipukit_ir::ops::TransposeConv2d;

/// Scratch budget (floats) for one chunk of the GEMM result.
const CHUNK_FLOATS: usize = 256 * 1024;

/// A TransposeConv2d with its weights packed per group as `[Cin/groups, KH·KW·Cout/groups]`.
#[derive(Debug, Clone)]
pub struct PackedTransposeConv {
    attrs: TransposeConv2d,
    kh: usize,
    kw: usize,
    cin: usize,
    cout: usize,
    weights: Vec<f32>,
    bias: Option<Vec<f32>>,
    epilogue: Epilogue,
}

impl PackedTransposeConv {
    /// Packs a `[Cout, KH, KW, Cin/groups]` weight and optional `[Cout]` bias.
    pub fn new(
        attrs: &TransposeConv2d,
        weight: &[f32],
        weight_shape: &[usize],
        bias: Option<&[f32]>,
    ) -> Result<PackedTransposeConv> {
        const OP: &str = "TransposeConv2d";
        let &[cout, kh, kw, cin_g] = weight_shape else {
            return Err(invalid(
                OP,
                format!("weight must be 4-D, got {weight_shape:?}"),
            ));
        };
        let groups = attrs.groups;
        if groups == 0 || cout % groups != 0 {
            return Err(invalid(
                OP,
                format!("{groups} groups do not divide {cout} output channels"),
            ));
        }
        if attrs.strides.contains(&0) || attrs.dilations.contains(&0) {
            return Err(invalid(OP, "strides and dilations must be positive"));
        }
        check_len(OP, "weight", weight.len(), cout * kh * kw * cin_g)?;
        if let Some(b) = bias {
            check_len(OP, "bias", b.len(), cout)?;
        }
        let cout_g = cout / groups;
        let cols = kh * kw * cout_g;
        let mut packed = vec![0.0; groups * cin_g * cols];
        for g in 0..groups {
            for o in 0..cout_g {
                for t in 0..kh * kw {
                    for i in 0..cin_g {
                        let src = (((g * cout_g + o) * kh * kw) + t) * cin_g + i;
                        packed[(g * cin_g + i) * cols + t * cout_g + o] = weight[src];
                    }
                }
            }
        }
        Ok(PackedTransposeConv {
            attrs: attrs.clone(),
            kh,
            kw,
            cin: cin_g * groups,
            cout,
            weights: packed,
            bias: bias.map(<[f32]>::to_vec),
            epilogue: Epilogue::new(attrs.activation),
        })
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
        const OP: &str = "TransposeConv2d";
        let [n, h, w] = nhwc_with_channels(OP, x_shape, self.cin)?;
        let [oh, ow] = self.attrs.out_hw(h, w, self.kh, self.kw).ok_or_else(|| {
            invalid(
                OP,
                format!("padding {:?} removes the whole output", self.attrs.padding),
            )
        })?;
        Ok([n, oh, ow, self.cout])
    }

    fn chunk_rows(&self) -> usize {
        let cols = self.kh * self.kw * self.cout / self.attrs.groups;
        (CHUNK_FLOATS / cols.max(1)).max(1)
    }

    /// Scratch elements [`PackedTransposeConv::run`] needs for this input.
    pub fn scratch_len(&self, x_shape: &[usize]) -> usize {
        let m: usize = x_shape.iter().take(3).product();
        let cols = self.kh * self.kw * self.cout / self.attrs.groups;
        self.chunk_rows().min(m) * cols
    }

    /// Runs the transposed convolution; `scratch` holds at least
    /// [`PackedTransposeConv::scratch_len`] elements.
    pub fn run(
        &self,
        x: &[f32],
        x_shape: &[usize],
        out: &mut [f32],
        scratch: &mut [f32],
    ) -> Result<()> {
        self.run_with(x, x_shape, out, scratch, &self.epilogue)
    }

    /// [`PackedTransposeConv::run`] with another epilogue.
    pub fn run_with(
        &self,
        x: &[f32],
        x_shape: &[usize],
        out: &mut [f32],
        scratch: &mut [f32],
        epilogue: &Epilogue,
    ) -> Result<()> {
        const OP: &str = "TransposeConv2d";
        let [n, oh, ow, cout] = self.output_shape(x_shape)?;
        check_len(OP, "input", x.len(), x_shape.iter().product())?;
        check_len(OP, "output", out.len(), n * oh * ow * cout)?;
        let (h, w) = (x_shape[1], x_shape[2]);
        let groups = self.attrs.groups;
        let (cin_g, cout_g) = (self.cin / groups, cout / groups);
        let cols = self.kh * self.kw * cout_g;
        let m = n * h * w;
        let chunk = self.chunk_rows().min(m.max(1));
        if scratch.len() < chunk * cols {
            return Err(invalid(
                OP,
                format!(
                    "scratch has {} elements, needs {}",
                    scratch.len(),
                    chunk * cols
                ),
            ));
        }
        match &self.bias {
            Some(b) => out
                .chunks_exact_mut(cout.max(1))
                .for_each(|px| px.copy_from_slice(b)),
            None => out.fill(0.0),
        }
        let [sh, sw] = self.attrs.strides;
        let [dh, dw] = self.attrs.dilations;
        let (pt, pl) = (
            self.attrs.padding.top as isize,
            self.attrs.padding.left as isize,
        );
        let mut p0 = 0;
        while p0 < m {
            let rows = chunk.min(m - p0);
            for g in 0..groups {
                let col = &mut scratch[..rows * cols];
                let wg = &self.weights[g * cin_g * cols..(g + 1) * cin_g * cols];
                sgemm(
                    rows,
                    cols,
                    cin_g,
                    &x[p0 * self.cin + g * cin_g..],
                    self.cin,
                    wg,
                    cols,
                    col,
                    cols,
                    false,
                    true,
                );
                for (i, src) in col.chunks_exact(cols).enumerate() {
                    let p = p0 + i;
                    let (b, iy, ix) = (p / (h * w), (p / w) % h, p % w);
                    for ky in 0..self.kh {
                        let oy = (iy * sh + ky * dh) as isize - pt;
                        if oy < 0 || oy >= oh as isize {
                            continue;
                        }
                        for kx in 0..self.kw {
                            let ox = (ix * sw + kx * dw) as isize - pl;
                            if ox < 0 || ox >= ow as isize {
                                continue;
                            }
                            let o = ((b * oh + oy as usize) * ow + ox as usize) * cout + g * cout_g;
                            let s = &src
                                [(ky * self.kw + kx) * cout_g..(ky * self.kw + kx + 1) * cout_g];
                            for (d, &v) in out[o..o + cout_g].iter_mut().zip(s) {
                                *d += v;
                            }
                        }
                    }
                }
            }
            p0 += rows;
        }
        epilogue.apply_rows_par(out, cout, None);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::float::testutil::{assert_close, data, with_threads};
    use ipukit_ir::ops::{FusedActivation, Padding2d};
    use proptest::prelude::*;

    /// Scatter definition on the full (unpadded) output, then crop the padding.
    fn naive(
        a: &TransposeConv2d,
        x: &[f32],
        xs: [usize; 4],
        w: &[f32],
        ws: [usize; 4],
        bias: Option<&[f32]>,
    ) -> (Vec<usize>, Vec<f32>) {
        let [n, h, wd, cin] = xs;
        let [cout, kh, kw, cin_g] = ws;
        let g = a.groups;
        let cout_g = cout / g;
        let fh = (h - 1) * a.strides[0] + (kh - 1) * a.dilations[0] + 1 + a.output_padding[0];
        let fw = (wd - 1) * a.strides[1] + (kw - 1) * a.dilations[1] + 1 + a.output_padding[1];
        let mut full = vec![0.0f64; n * fh * fw * cout];
        for b in 0..n {
            for iy in 0..h {
                for ix in 0..wd {
                    for o in 0..cout {
                        let grp = o / cout_g;
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let oy = iy * a.strides[0] + ky * a.dilations[0];
                                let ox = ix * a.strides[1] + kx * a.dilations[1];
                                for i in 0..cin_g {
                                    full[((b * fh + oy) * fw + ox) * cout + o] +=
                                        x[((b * h + iy) * wd + ix) * cin + grp * cin_g + i] as f64
                                            * w[((o * kh + ky) * kw + kx) * cin_g + i] as f64;
                                }
                            }
                        }
                    }
                }
            }
        }
        let p = a.padding;
        let (oh, ow) = (fh - p.top - p.bottom, fw - p.left - p.right);
        let mut out = Vec::with_capacity(n * oh * ow * cout);
        for b in 0..n {
            for oy in 0..oh {
                for ox in 0..ow {
                    for o in 0..cout {
                        let v = full[((b * fh + oy + p.top) * fw + ox + p.left) * cout + o]
                            + bias.map_or(0.0, |bb| bb[o]) as f64;
                        out.push(a.activation.apply(v as f32));
                    }
                }
            }
        }
        (vec![n, oh, ow, cout], out)
    }

    proptest! {
        #[test]
        fn matches_naive(
            groups in 1usize..3, cin_g in 1usize..5, cout_g in 1usize..5, kh in 1usize..4, kw in 1usize..4,
            s in 1usize..3, d in 1usize..3, pads in proptest::array::uniform4(0usize..2), op in 0usize..2,
            h in 1usize..6, w in 1usize..6, bias in any::<bool>(),
        ) {
            let a = TransposeConv2d {
                strides: [s, s],
                dilations: [d, d],
                padding: Padding2d { top: pads[0], left: pads[1], bottom: pads[2], right: pads[3] },
                output_padding: [op.min(s - 1), op.min(s - 1)],
                groups,
                activation: FusedActivation::Relu,
            };
            let xs = [2, h + 1, w + 1, cin_g * groups];
            prop_assume!(a.out_hw(xs[1], xs[2], kh, kw).is_some());
            let ws = [cout_g * groups, kh, kw, cin_g];
            let x = data(xs.iter().product(), 3);
            let wt = data(ws.iter().product(), 4);
            let b = data(ws[0], 5);
            let bias = bias.then_some(b.as_slice());
            let (shape, want) = naive(&a, &x, xs, &wt, ws, bias);
            let p = PackedTransposeConv::new(&a, &wt, &ws, bias).unwrap();
            prop_assert_eq!(p.output_shape(&xs).unwrap().to_vec(), shape);
            let mut out = vec![f32::NAN; want.len()];
            let mut scratch = vec![0.0; p.scratch_len(&xs)];
            with_threads(2, || p.run(&x, &xs, &mut out, &mut scratch)).unwrap();
            assert_close(&out, &want, 1e-5).map_err(TestCaseError::fail)?;
        }
    }
}
