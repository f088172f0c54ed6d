//! Quantized transposed convolution (`QTransposeConv2d`, `docs/fixed-point.md` §3), NHWC.
//!
//! Output pixel `(oy, ox)` receives the input pixels `(iy, ix)` with
//! `iy·s_h + ky·d_h − pad_top = oy` and `ix·s_w + kx·d_w − pad_left = ox` (the float
//! definition). The kernel gathers them per output pixel: for every such tap it adds, for each
//! output channel, the dot product of the tap's weights with the input pixel's channels of the
//! group. The input is first converted once to INT16 `x − z_in` (8-bit mode; INT32 dot products,
//! exact by the bound checked at packing) or kept as INT16 (16-bit mode; INT64 sums). The dot
//! products are compiled for AVX-512BW, AVX2 and the baseline (`vpmaddwd`-shaped loops).

use super::arith::QInt;
use super::conv::{check_layer_out, LayerInput, QWeights};
use super::epilogue::ChannelRequant;
use super::gemm::{check_int32_bound, Mode};
use super::isa::{multiversion, Isa};
use crate::error::{check_len, invalid, Result};
use crate::par;
use crate::window::nhwc_with_channels;
use ipukit_ir::ops::fixed::QTransposeConv2d;
use ipukit_ir::ops::{FusedActivation, TransposeConv2d};
use ipukit_ir::DType;

/// A [`QTransposeConv2d`] with its weights in `[KH·KW][Cout][Cin/groups]` order.
#[derive(Debug, Clone)]
pub struct PackedQTransposeConv {
    attrs: TransposeConv2d,
    kh: usize,
    kw: usize,
    cin: usize,
    cout: usize,
    mode: Mode,
    zin: i32,
    /// `[tap][cout][cin_g]`.
    weights: Vec<i16>,
    rq: ChannelRequant,
    out_dtype: DType,
    isa: Isa,
}

impl PackedQTransposeConv {
    /// Packs a `[Cout, KH, KW, Cin/groups]` weight and the bias for the best instruction set.
    pub fn new(
        attrs: &QTransposeConv2d,
        weights: QWeights<'_>,
        weight_shape: &[usize],
    ) -> Result<PackedQTransposeConv> {
        Self::with_isa(Isa::detect(), attrs, weights, weight_shape)
    }

    /// Packs for `isa` (clamped to the CPU); all levels give identical results.
    pub fn with_isa(
        isa: Isa,
        attrs: &QTransposeConv2d,
        weights: QWeights<'_>,
        weight_shape: &[usize],
    ) -> Result<PackedQTransposeConv> {
        const OP: &str = "QTransposeConv2d";
        let c = &attrs.conv;
        if c.activation != FusedActivation::None {
            return Err(invalid(
                OP,
                "fused activations are expressed by the output range",
            ));
        }
        let &[cout, kh, kw, cin_g] = weight_shape else {
            return Err(invalid(
                OP,
                format!("weight must be 4-D, got {weight_shape:?}"),
            ));
        };
        let groups = c.groups;
        if groups == 0 || cout % groups != 0 {
            return Err(invalid(
                OP,
                format!("{groups} groups do not divide {cout} output channels"),
            ));
        }
        if kh == 0 || kw == 0 || c.strides.contains(&0) || c.dilations.contains(&0) {
            return Err(invalid(
                OP,
                "kernel, strides and dilations must be positive",
            ));
        }
        let layer = &attrs.layer;
        weights.check(OP, cout * kh * kw * cin_g, cout, layer)?;
        let mode = weights.mode();
        let k = kh * kw * cin_g;
        if mode == Mode::Bits8 {
            for o in 0..cout {
                check_int32_bound(
                    OP,
                    o,
                    (0..k).map(|i| weights.get(o * k + i)),
                    layer.input_zero_point,
                )?;
            }
        }
        let taps = kh * kw;
        let mut w = vec![0i16; taps * cout * cin_g];
        for o in 0..cout {
            for t in 0..taps {
                for i in 0..cin_g {
                    w[(t * cout + o) * cin_g + i] = weights.get((o * taps + t) * cin_g + i) as i16;
                }
            }
        }
        Ok(PackedQTransposeConv {
            attrs: c.clone(),
            kh,
            kw,
            cin: cin_g * groups,
            cout,
            mode,
            zin: layer.input_zero_point,
            weights: w,
            rq: ChannelRequant::new(cout, weights.bias(0..cout), &layer.requant, layer.out),
            out_dtype: layer.out_dtype,
            isa: isa.clamp(),
        })
    }

    /// The instruction set the kernel runs on.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// Output shape for an NHWC input.
    pub fn output_shape(&self, x_shape: &[usize]) -> Result<[usize; 4]> {
        const OP: &str = "QTransposeConv2d";
        let [n, h, w] = nhwc_with_channels(OP, x_shape, self.cin)?;
        let [oh, ow] = self.attrs.out_hw(h, w, self.kh, self.kw).ok_or_else(|| {
            invalid(
                OP,
                format!("padding {:?} removes the whole output", self.attrs.padding),
            )
        })?;
        Ok([n, oh, ow, self.cout])
    }

    /// Runs the transposed convolution (`u8` input in 8-bit mode, `i16` in 16-bit mode).
    pub fn run<X: LayerInput, O: QInt>(
        &self,
        x: &[X],
        x_shape: &[usize],
        out: &mut [O],
    ) -> Result<()> {
        const OP: &str = "QTransposeConv2d";
        check_layer_out::<O>(OP, self.out_dtype, &self.rq.out)?;
        let [n, oh, ow, cout] = self.output_shape(x_shape)?;
        check_len(OP, "input", x.len(), x_shape.iter().product())?;
        check_len(OP, "output", out.len(), n * oh * ow * cout)?;
        let xd: Vec<i16> = match (self.mode, X::as_u8(x), X::as_i16(x)) {
            (Mode::Bits8, Some(x), _) => {
                let z = self.zin as i16;
                x.iter().map(|&v| v as i16 - z).collect()
            }
            (Mode::Bits16, _, Some(x)) => x.to_vec(),
            _ => {
                return Err(invalid(
                    OP,
                    format!("{} input for a layer in {:?} mode", X::DTYPE, self.mode),
                ))
            }
        };
        let row = ow * cout;
        if row == 0 || n * oh == 0 {
            return Ok(());
        }
        let geo = Geo {
            h: x_shape[1],
            w: x_shape[2],
            oh,
        };
        let isa = self.isa;
        match self.mode {
            Mode::Bits8 => par::for_rows(out, row, 1 << 12, |r0, chunk| {
                let mut acc = vec![0i32; row];
                for (r, dst) in chunk.chunks_exact_mut(row).enumerate() {
                    tconv_row8(isa, self, &xd, geo, r0 + r, &mut acc);
                    for (a, o) in acc.chunks_exact(cout).zip(dst.chunks_exact_mut(cout)) {
                        self.rq.row_i32(isa, 0, a, o);
                    }
                }
            }),
            Mode::Bits16 => par::for_rows(out, row, 1 << 12, |r0, chunk| {
                let mut acc = vec![0i64; row];
                for (r, dst) in chunk.chunks_exact_mut(row).enumerate() {
                    tconv_row16(isa, self, &xd, geo, r0 + r, &mut acc);
                    for (a, o) in acc.chunks_exact(cout).zip(dst.chunks_exact_mut(cout)) {
                        self.rq.row_i64(isa, 0, a, o);
                    }
                }
            }),
        }
        Ok(())
    }

    /// Input index `i` and tap `k` pairs that reach output index `o` along one axis.
    #[inline(always)]
    fn sources(
        o: usize,
        pad: usize,
        k: usize,
        s: usize,
        d: usize,
        len: usize,
    ) -> impl Iterator<Item = (usize, usize)> + Clone {
        (0..k).filter_map(move |t| {
            let v = (o + pad) as isize - (t * d) as isize;
            (v >= 0 && (v as usize).is_multiple_of(s) && (v as usize / s) < len)
                .then(|| (v as usize / s, t))
        })
    }
}

#[derive(Debug, Clone, Copy)]
struct Geo {
    h: usize,
    w: usize,
    oh: usize,
}

macro_rules! tconv_body {
    ($p:ident, $xd:ident, $g:ident, $row:ident, $acc:ident, $t:ty, |$a:ident, $b:ident| $prod:expr) => {{
        let p = $p;
        let a = &p.attrs;
        let (b, oy) = ($row / $g.oh, $row % $g.oh);
        let (cout, cin) = (p.cout, p.cin);
        let groups = a.groups;
        let (cin_g, cout_g) = (cin / groups, cout / groups);
        let ys = PackedQTransposeConv::sources(
            oy,
            a.padding.top,
            p.kh,
            a.strides[0],
            a.dilations[0],
            $g.h,
        );
        for (ox, acc) in $acc.chunks_exact_mut(cout).enumerate() {
            acc.fill(0);
            let xs = PackedQTransposeConv::sources(
                ox,
                a.padding.left,
                p.kw,
                a.strides[1],
                a.dilations[1],
                $g.w,
            );
            for (iy, ky) in ys.clone() {
                for (ix, kx) in xs.clone() {
                    let t = ky * p.kw + kx;
                    let px = &$xd[((b * $g.h + iy) * $g.w + ix) * cin..][..cin];
                    let wt = &p.weights[t * cout * cin_g..(t + 1) * cout * cin_g];
                    for (o, (d, wr)) in acc.iter_mut().zip(wt.chunks_exact(cin_g)).enumerate() {
                        let xg = &px[(o / cout_g) * cin_g..][..cin_g];
                        let mut s: $t = 0;
                        for (&$a, &$b) in wr.iter().zip(xg) {
                            s = s.wrapping_add($prod);
                        }
                        *d = d.wrapping_add(s);
                    }
                }
            }
        }
    }};
}

#[inline(always)]
fn tconv_row8_body(p: &PackedQTransposeConv, xd: &[i16], g: Geo, row: usize, acc: &mut [i32]) {
    // |w·(x − z)| ≤ 128·255: INT32 products and sums, exact by the packing bound.
    tconv_body!(p, xd, g, row, acc, i32, |w, x| w as i32 * x as i32)
}

#[inline(always)]
fn tconv_row16_body(p: &PackedQTransposeConv, xd: &[i16], g: Geo, row: usize, acc: &mut [i64]) {
    // |w·x| ≤ 2^30: INT32 products, INT64 sums.
    tconv_body!(p, xd, g, row, acc, i64, |w, x| (w as i32 * x as i32) as i64)
}

multiversion!(
    /// INT32 sums of output row `row` (8-bit mode).
    fn tconv_row8 = tconv_row8_body(p: &PackedQTransposeConv, xd: &[i16], g: Geo, row: usize, acc: &mut [i32])
);
multiversion!(
    /// INT64 sums of output row `row` (16-bit mode).
    fn tconv_row16 = tconv_row16_body(p: &PackedQTransposeConv, xd: &[i16], g: Geo, row: usize, acc: &mut [i64])
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::int::testutil::{requant_def, with_threads, LayerData, Rng};
    use ipukit_ir::ops::fixed::QLayer;
    use ipukit_ir::ops::Padding2d;
    use proptest::prelude::*;

    /// The float definition (scatter) with §3's arithmetic.
    #[allow(clippy::too_many_arguments)]
    fn naive(
        a: &QTransposeConv2d,
        xs: [usize; 4],
        ws: [usize; 4],
        x: &[i32],
        w: &[i32],
        bias: Option<&[i64]>,
    ) -> Vec<i32> {
        let [n, h, wd, cin] = xs;
        let [cout, kh, kw, cin_g] = ws;
        let g = a.conv.groups;
        let cout_g = cout / g;
        let [oh, ow] = a.conv.out_hw(h, wd, kh, kw).unwrap();
        let z = a.layer.input_zero_point as i128;
        let mut acc = vec![0i128; n * oh * ow * cout];
        for b in 0..n {
            for iy in 0..h {
                for ix in 0..wd {
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let oy = (iy * a.conv.strides[0] + ky * a.conv.dilations[0]) as isize
                                - a.conv.padding.top as isize;
                            let ox = (ix * a.conv.strides[1] + kx * a.conv.dilations[1]) as isize
                                - a.conv.padding.left as isize;
                            if oy < 0 || ox < 0 || oy >= oh as isize || ox >= ow as isize {
                                continue;
                            }
                            for co in 0..cout {
                                let grp = co / cout_g;
                                for ci in 0..cin_g {
                                    let xv = x[((b * h + iy) * wd + ix) * cin + grp * cin_g + ci]
                                        as i128
                                        - z;
                                    acc[((b * oh + oy as usize) * ow + ox as usize) * cout + co] +=
                                        w[((co * kh + ky) * kw + kx) * cin_g + ci] as i128 * xv;
                                }
                            }
                        }
                    }
                }
            }
        }
        acc.iter()
            .enumerate()
            .map(|(i, &v)| {
                let co = i % cout;
                let r = a.layer.requant[if a.layer.requant.len() == 1 { 0 } else { co }];
                requant_def(v + bias.map_or(0, |b| b[co] as i128), r, &a.layer.out)
            })
            .collect()
    }

    prop_compose! {
        fn case()(seed in any::<u64>(), groups in 1usize..3, cin_g in 1usize..6, cout_g in 1usize..6, kh in 1usize..4, kw in 1usize..4,
                  sh in 1usize..4, sw in 1usize..4, dh in 1usize..3, dw in 1usize..3, pads in proptest::array::uniform4(0usize..3),
                  op in proptest::array::uniform2(0usize..2), n in 1usize..3, h in 1usize..6, w in 1usize..6,
                  bits16 in any::<bool>(), bias in any::<bool>(), u8_out in any::<bool>(), threads in 1usize..3)
            -> (u64, TransposeConv2d, [usize; 4], [usize; 4], bool, bool, bool, usize) {
            let conv = TransposeConv2d {
                strides: [sh, sw], dilations: [dh, dw],
                padding: Padding2d { top: pads[0], left: pads[1], bottom: pads[2], right: pads[3] },
                output_padding: [op[0].min(sh - 1), op[1].min(sw - 1)], groups, activation: FusedActivation::None,
            };
            (seed, conv, [n, h, w, cin_g * groups], [cout_g * groups, kh, kw, cin_g], bits16, bias, u8_out, threads)
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn check(
        seed: u64,
        conv: TransposeConv2d,
        xs: [usize; 4],
        ws: [usize; 4],
        bits16: bool,
        bias: bool,
        u8_out: bool,
        threads: usize,
    ) -> std::result::Result<(), TestCaseError> {
        if conv.out_hw(xs[1], xs[2], ws[1], ws[2]).is_none() {
            return Ok(());
        }
        let mut rng = Rng::new(seed);
        let cout = ws[0];
        let (out_dtype, out) = rng.out_range(u8_out);
        let layer = QLayer {
            input_zero_point: if bits16 { 0 } else { rng.extreme(0, 255) },
            requant: (0..cout)
                .map(|_| rng.requant(if bits16 { 32 } else { 18 }))
                .collect(),
            out_dtype,
            out,
        };
        let attrs = QTransposeConv2d { conv, layer };
        let data = LayerData::random(&mut rng, xs.iter().product(), ws.iter().product(), cout);
        let (weights, xi, wi, bi) = data.weights(bits16, bias);
        let want = naive(&attrs, xs, ws, &xi, &wi, bi.as_deref());
        for isa in Isa::supported() {
            let p = PackedQTransposeConv::with_isa(isa, &attrs, weights, &ws).unwrap();
            let got: Vec<i32> = with_threads(threads, || match (bits16, u8_out) {
                (false, true) => {
                    let mut o = vec![0u8; want.len()];
                    p.run(data.x8(), &xs, &mut o).unwrap();
                    o.iter().map(|&v| v as i32).collect()
                }
                (false, false) => {
                    let mut o = vec![0i16; want.len()];
                    p.run(data.x8(), &xs, &mut o).unwrap();
                    o.iter().map(|&v| v as i32).collect()
                }
                (true, true) => {
                    let mut o = vec![0u8; want.len()];
                    p.run(data.x16(), &xs, &mut o).unwrap();
                    o.iter().map(|&v| v as i32).collect()
                }
                (true, false) => {
                    let mut o = vec![0i16; want.len()];
                    p.run(data.x16(), &xs, &mut o).unwrap();
                    o.iter().map(|&v| v as i32).collect()
                }
            });
            prop_assert_eq!(&got, &want, "{}", isa);
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        fn matches_definition((seed, conv, xs, ws, bits16, bias, u8_out, threads) in case()) {
            check(seed, conv, xs, ws, bits16, bias, u8_out, threads)?;
        }
    }

    #[test]
    fn upsampling_shapes() {
        let conv = TransposeConv2d {
            strides: [2, 2],
            dilations: [1, 1],
            padding: Padding2d::ZERO,
            output_padding: [0, 0],
            groups: 1,
            activation: FusedActivation::None,
        };
        for bits16 in [false, true] {
            check(
                4,
                conv.clone(),
                [1, 10, 12, 32],
                [16, 2, 2, 32],
                bits16,
                true,
                false,
                2,
            )
            .unwrap();
            let c3 = TransposeConv2d {
                padding: Padding2d {
                    top: 1,
                    left: 1,
                    bottom: 1,
                    right: 1,
                },
                output_padding: [1, 1],
                ..conv.clone()
            };
            check(5, c3, [2, 7, 5, 8], [8, 3, 3, 8], bits16, true, true, 2).unwrap();
        }
    }
}
