//! Quantized depthwise convolution (`QDepthwiseConv2d`, `docs/fixed-point.md` §3), NHWC, as a
//! direct loop vectorised over channels.
//!
//! For each output pixel and block of channels the accumulators stay in registers while the
//! taps inside the input are added (taps in the padding contribute 0 in both modes, so they
//! are skipped): INT32 `w·(x − z_in)` in 8-bit mode (exact: the sum is bounded at packing),
//! INT64 `w·x` in 16-bit mode (each product fits INT32). The row is then requantized by the
//! shared epilogue. The loops are compiled for AVX-512BW, AVX2 and the baseline.

use super::arith::QInt;
use super::conv::{check_layer_out, LayerInput, QWeights};
use super::epilogue::ChannelRequant;
use super::gemm::{check_int32_bound, Mode, TileBuf};
use super::isa::{multiversion, Isa};
use super::tail::{add_channel_sums, check_tail_fits, FirstError, Tail, TailFn, TailScratch};
use crate::error::{check_len, invalid, Result};
use crate::par;
use crate::window::{nhwc_with_channels, ConvGeometry};
use crate::AlignedVec;
use ipukit_ir::ops::fixed::QDepthwiseConv2d;
use ipukit_ir::ops::FusedActivation;
use ipukit_ir::DType;
use std::sync::Mutex;

/// Channels accumulated together in registers.
const BLOCK: usize = 32;
/// Taps listed per pixel on the fast path (larger kernels take the general loop).
const MAX_TAPS: usize = 64;
/// The operator's name in errors.
const OP: &str = "QDepthwiseConv2d";

/// A [`QDepthwiseConv2d`] with its weights in `[KH, KW, Cout]` order.
#[derive(Debug, Clone)]
pub struct PackedQDepthwise {
    geo: ConvGeometry,
    cin: usize,
    mult: usize,
    mode: Mode,
    zin: i32,
    /// `[KH·KW][Cout]`, widened.
    weights: AlignedVec<i32>,
    rq: ChannelRequant,
    out_dtype: DType,
    isa: Isa,
}

impl PackedQDepthwise {
    /// Packs a `[1, KH, KW, Cout]` weight and the bias for the best instruction set.
    pub fn new(
        attrs: &QDepthwiseConv2d,
        weights: QWeights<'_>,
        weight_shape: &[usize],
    ) -> Result<PackedQDepthwise> {
        Self::with_isa(Isa::detect(), attrs, weights, weight_shape)
    }

    /// Packs for `isa` (clamped to the CPU); all levels give identical results.
    pub fn with_isa(
        isa: Isa,
        attrs: &QDepthwiseConv2d,
        weights: QWeights<'_>,
        weight_shape: &[usize],
    ) -> Result<PackedQDepthwise> {
        let c = &attrs.conv;
        if c.activation != FusedActivation::None {
            return Err(invalid(
                OP,
                "fused activations are expressed by the output range",
            ));
        }
        let &[1, kh, kw, cout] = weight_shape else {
            return Err(invalid(
                OP,
                format!("weight must be [1, KH, KW, Cout], got {weight_shape:?}"),
            ));
        };
        let mult = c.depth_multiplier;
        if mult == 0 || cout % mult != 0 {
            return Err(invalid(
                OP,
                format!("depth multiplier {mult} does not divide {cout} output channels"),
            ));
        }
        let layer = &attrs.layer;
        weights.check(OP, kh * kw * cout, cout, layer)?;
        let geo = ConvGeometry::new(OP, [kh, kw], c.strides, c.dilations, c.padding)?;
        let w: Vec<i32> = (0..kh * kw * cout).map(|i| weights.get(i)).collect();
        let rq = ChannelRequant::new(cout, weights.bias(0..cout), &layer.requant, layer.out);
        let d = Self::from_parts(
            isa,
            geo,
            cout / mult,
            mult,
            weights.mode(),
            layer.input_zero_point,
            w,
            rq,
            layer.out_dtype,
        );
        d.check_bound()?;
        Ok(d)
    }

    /// From checked parts (also used by grouped convolutions with one channel per group).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn from_parts(
        isa: Isa,
        geo: ConvGeometry,
        cin: usize,
        mult: usize,
        mode: Mode,
        zin: i32,
        weights: Vec<i32>,
        rq: ChannelRequant,
        out_dtype: DType,
    ) -> PackedQDepthwise {
        PackedQDepthwise {
            geo,
            cin,
            mult,
            mode,
            zin,
            weights: AlignedVec::from_slice(&weights),
            rq,
            out_dtype,
            isa: isa.clamp(),
        }
    }

    /// Checks the 8-bit accumulator bound (every channel's `Σ|w|`).
    fn check_bound(&self) -> Result<()> {
        if self.mode == Mode::Bits8 {
            let cout = self.cin * self.mult;
            let taps = self.geo.kh * self.geo.kw;
            for o in 0..cout {
                check_int32_bound(
                    "QDepthwiseConv2d",
                    o,
                    (0..taps).map(|t| self.weights[t * cout + o]),
                    self.zin,
                )?;
            }
        }
        Ok(())
    }

    /// The instruction set the kernel runs on.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// Output shape for an NHWC input.
    pub fn output_shape(&self, x_shape: &[usize]) -> Result<[usize; 4]> {
        let [n, h, w] = nhwc_with_channels(OP, x_shape, self.cin)?;
        let [oh, ow] = self.geo.out_hw(OP, h, w)?;
        Ok([n, oh, ow, self.cin * self.mult])
    }

    /// Runs the convolution (`u8` input in 8-bit mode, `i16` in 16-bit mode).
    pub fn run<X: LayerInput, O: QInt>(
        &self,
        x: &[X],
        x_shape: &[usize],
        out: &mut [O],
    ) -> Result<()> {
        check_layer_out::<O>(OP, self.out_dtype, &self.rq.out)?;
        self.run_inner::<X, O, O>(x, x_shape, out, None)
    }

    /// Runs the convolution followed by `tail` (built for this layer's output type and
    /// channel count): `out` has the output shape and the tail's output type, and holds
    /// exactly what [`PackedQDepthwise::run`] then each operator of the tail would give. The
    /// layer's output is only ever held a chunk of rows at a time.
    pub fn run_tail<X: LayerInput, O: LayerInput>(
        &self,
        x: &[X],
        x_shape: &[usize],
        tail: &Tail,
        out: &mut [O],
    ) -> Result<()> {
        self.run_tail_summing(x, x_shape, tail, out, None)
    }

    /// [`PackedQDepthwise::run_tail`] on one image (`x_shape[0] = 1`) that also adds each
    /// channel of its output into `sums` (one per channel) while the rows are in cache: the
    /// plain sums a global average pool of `out` starts from
    /// ([`super::qreduce_sums`]).
    pub fn run_tail_sums<X: LayerInput, O: LayerInput>(
        &self,
        x: &[X],
        x_shape: &[usize],
        tail: &Tail,
        out: &mut [O],
        sums: &mut [i64],
    ) -> Result<()> {
        let channels = self.cin * self.mult;
        if x_shape.first() != Some(&1) || sums.len() != channels {
            return Err(invalid(
                OP,
                format!(
                    "channel sums of input {x_shape:?} into {} values (one image, {channels} channels)",
                    sums.len()
                ),
            ));
        }
        let total = Mutex::new(vec![0i64; channels]);
        self.run_tail_summing(x, x_shape, tail, out, Some(&total))?;
        let total = total
            .into_inner()
            .map_err(|_| invalid(OP, "a channel-sum task panicked"))?;
        sums.copy_from_slice(&total);
        Ok(())
    }

    /// [`PackedQDepthwise::run_tail`], adding each chunk's output channels into `sums`.
    fn run_tail_summing<X: LayerInput, O: LayerInput>(
        &self,
        x: &[X],
        x_shape: &[usize],
        tail: &Tail,
        out: &mut [O],
        sums: Option<&Mutex<Vec<i64>>>,
    ) -> Result<()> {
        let channels = self.cin * self.mult;
        check_tail_fits(OP, tail, channels, O::DTYPE)?;
        let isa = self.isa;
        let sum = |o: &[O]| {
            if let Some(sums) = sums {
                add_channel_sums(o, channels, sums);
            }
        };
        match self.out_dtype {
            DType::U8 => {
                let f = |m: &[u8], o: &mut [O], s: &mut TailScratch| {
                    tail.run_rows(isa, m, o, s).map(|()| sum(o))
                };
                self.run_inner::<X, u8, O>(x, x_shape, out, Some(&f))
            }
            DType::I16 => {
                let f = |m: &[i16], o: &mut [O], s: &mut TailScratch| {
                    tail.run_rows(isa, m, o, s).map(|()| sum(o))
                };
                self.run_inner::<X, i16, O>(x, x_shape, out, Some(&f))
            }
            d => Err(invalid(OP, format!("a tail after a {d} output"))),
        }
    }

    /// [`PackedQDepthwise::run`] (no tail, `M` = `O`) or [`PackedQDepthwise::run_tail`] (`M`
    /// the layer's output type): each parallel chunk of output rows is computed into `M`
    /// and, with a tail, goes through it into `out` while in cache.
    pub(crate) fn run_inner<X: LayerInput, M: QInt, O: QInt>(
        &self,
        x: &[X],
        x_shape: &[usize],
        out: &mut [O],
        tail: Option<&TailFn<'_, M, O>>,
    ) -> Result<()> {
        check_layer_out::<M>(OP, self.out_dtype, &self.rq.out)?;
        let [n, oh, ow, cout] = self.output_shape(x_shape)?;
        check_len(OP, "input", x.len(), x_shape.iter().product())?;
        check_len(OP, "output", out.len(), n * oh * ow * cout)?;
        match (self.mode, X::as_u8(x), X::as_i16(x)) {
            (Mode::Bits8, Some(_), _) | (Mode::Bits16, _, Some(_)) => {}
            _ => {
                return Err(invalid(
                    OP,
                    format!("{} input for a layer in {:?} mode", X::DTYPE, self.mode),
                ))
            }
        }
        if ow * cout == 0 || n * oh == 0 {
            return Ok(());
        }
        let errors = FirstError::default();
        // Each output costs KH·KW multiply-adds and a requantization: worth splitting from 2K
        // outputs on, with the pool's workers awake (`ipukit_runtime::install_awake`). Chunks
        // are whole pixels, not whole rows: the late layers of a network have fewer rows
        // than a balanced split needs (3 rows on 2 threads is a 2 : 1 split).
        par::for_rows(out, cout, 1 << 11, |p0, chunk| match tail {
            None => self.pixels(x, x_shape, [oh, ow], p0, chunk),
            Some(tail) => {
                let mut buf = TileBuf::take();
                let mut tiles = std::mem::take(&mut buf.tail);
                let mut store = tiles.take_layer::<M>(chunk.len());
                let all: &mut [M] = bytemuck::cast_slice_mut(&mut store[..]);
                let mid = &mut all[..chunk.len()];
                self.pixels(x, x_shape, [oh, ow], p0, mid);
                errors.keep(tail(mid, chunk, &mut tiles));
                tiles.restore_layer(store);
                buf.tail = tiles;
                TileBuf::recycle(buf);
            }
        });
        errors.into_result()
    }

    /// Output pixels `p0..` (of `cout` elements; `ow` per row, `oh` rows per image) into
    /// `dst`, one segment of a row at a time; the input's type was checked against the mode.
    fn pixels<X: LayerInput, T: QInt>(
        &self,
        x: &[X],
        x_shape: &[usize],
        [oh, ow]: [usize; 2],
        p0: usize,
        dst: &mut [T],
    ) {
        let (h, w) = (x_shape[1], x_shape[2]);
        let cout = self.cin * self.mult;
        let isa = self.isa;
        let (mut p, mut dst) = (p0, dst);
        let mut acc8 = Vec::new();
        let mut acc16 = Vec::new();
        while !dst.is_empty() {
            let (r, ox0) = (p / ow, p % ow);
            let (b, oy) = (r / oh, r % oh);
            let seg = (ow - ox0).min(dst.len() / cout);
            if seg == 0 {
                // Less than a pixel left: callers pass whole pixels, so nothing to compute.
                break;
            }
            let (out, rest) = std::mem::take(&mut dst).split_at_mut(seg * cout);
            // The segment's pixels as rows of `cout` channels.
            if let Some(x) = X::as_u8(x) {
                acc8.resize(seg * cout, 0i32);
                dw_row8(isa, self, x, h, w, [b, oy, ox0], &mut acc8);
                self.rq.block_i32(isa, 0, &acc8, cout, seg, cout, out, cout);
            } else if let Some(x) = X::as_i16(x) {
                acc16.resize(seg * cout, 0i64);
                dw_row16(isa, self, x, h, w, [b, oy, ox0], &mut acc16);
                self.rq
                    .block_i64(isa, 0, &acc16, cout, seg, cout, out, cout);
            }
            (p, dst) = (p + seg, rest);
        }
    }
}

/// Taps of output pixel `(oy, ox)` that fall inside the input: `(input offset, weight offset)`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn taps(
    p: &PackedQDepthwise,
    h: usize,
    w: usize,
    b: usize,
    oy: usize,
    ox: usize,
) -> impl Iterator<Item = (usize, usize)> + Clone + '_ {
    let g = &p.geo;
    let cout = p.cin * p.mult;
    let iy0 = (oy * g.strides[0]) as isize - g.padding.top as isize;
    let ix0 = (ox * g.strides[1]) as isize - g.padding.left as isize;
    (0..g.kh)
        .flat_map(move |ky| (0..g.kw).map(move |kx| (ky, kx)))
        .filter_map(move |(ky, kx)| {
            let iy = iy0 + (ky * g.dilations[0]) as isize;
            let ix = ix0 + (kx * g.dilations[1]) as isize;
            (iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w).then(|| {
                (
                    ((b * h + iy as usize) * w + ix as usize) * p.cin,
                    (ky * g.kw + kx) * cout,
                )
            })
        })
}

/// The accumulation loop of both modes: `acc[o] += w[o] · d(x[o / mult])`. The taps of a
/// pixel are listed once; blocks of `BLOCK` channels keep their accumulators in registers
/// across the taps.
macro_rules! dw_body {
    ($p:ident, $x:ident, $h:ident, $w:ident, $b:ident, $oy:ident, $ox0:ident, $acc:ident, $t:ty, |$wv:ident, $xv:ident| $prod:expr) => {{
        let p = $p;
        let m = p.mult;
        let cout = p.cin * m;
        let mut list = [(0usize, 0usize); MAX_TAPS];
        for (i, a) in $acc.chunks_exact_mut(cout).enumerate() {
            let ox = $ox0 + i;
            let mut nt = 0;
            for t in taps(p, $h, $w, $b, $oy, ox) {
                if nt < MAX_TAPS {
                    list[nt] = t;
                }
                nt += 1;
            }
            if m == 1 && nt <= MAX_TAPS {
                let list = &list[..nt];
                let mut blocks = a.chunks_exact_mut(BLOCK);
                let mut c0 = 0;
                for blk in &mut blocks {
                    let mut acc: [$t; BLOCK] = [0; BLOCK];
                    for &(xo, wo) in list {
                        let xs = &$x[xo + c0..][..BLOCK];
                        let ws = &p.weights[wo + c0..][..BLOCK];
                        for ((d, &$xv), &$wv) in acc.iter_mut().zip(xs).zip(ws) {
                            *d = d.wrapping_add($prod);
                        }
                    }
                    blk.copy_from_slice(&acc);
                    c0 += BLOCK;
                }
                let rest = blocks.into_remainder();
                rest.fill(0);
                for &(xo, wo) in list {
                    let xs = &$x[xo + c0..xo + cout];
                    let ws = &p.weights[wo + c0..wo + cout];
                    for ((d, &$xv), &$wv) in rest.iter_mut().zip(xs).zip(ws) {
                        *d = d.wrapping_add($prod);
                    }
                }
            } else {
                a.fill(0);
                for (xo, wo) in taps(p, $h, $w, $b, $oy, ox) {
                    let ws = &p.weights[wo..wo + cout];
                    for (o, (d, &$wv)) in a.iter_mut().zip(ws).enumerate() {
                        let $xv = $x[xo + o / m];
                        *d = d.wrapping_add($prod);
                    }
                }
            }
        }
    }};
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn dw_row8_body(
    p: &PackedQDepthwise,
    x: &[u8],
    h: usize,
    w: usize,
    [b, oy, ox0]: [usize; 3],
    acc: &mut [i32],
) {
    let z = p.zin;
    dw_body!(p, x, h, w, b, oy, ox0, acc, i32, |wv, xv| wv
        .wrapping_mul(xv as i32 - z))
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn dw_row16_body(
    p: &PackedQDepthwise,
    x: &[i16],
    h: usize,
    w: usize,
    [b, oy, ox0]: [usize; 3],
    acc: &mut [i64],
) {
    // |w · x| ≤ 2^30: the product is formed in INT32, the sum in INT64.
    dw_body!(p, x, h, w, b, oy, ox0, acc, i64, |wv, xv| (wv * xv as i32)
        as i64)
}

multiversion!(
    /// INT32 sums `Σ w·(x − z_in)` of output pixels `(b, oy, ox0..)` (8-bit mode), as many
    /// as `acc` holds.
    fn dw_row8 = dw_row8_body(p: &PackedQDepthwise, x: &[u8], h: usize, w: usize, at: [usize; 3], acc: &mut [i32])
);
multiversion!(
    /// INT64 sums `Σ w·x` of output pixels `(b, oy, ox0..)` (16-bit mode), as many as `acc`
    /// holds.
    fn dw_row16 = dw_row16_body(p: &PackedQDepthwise, x: &[i16], h: usize, w: usize, at: [usize; 3], acc: &mut [i64])
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::int::testutil::{requant_def, with_threads, LayerData, Rng};
    use ipukit_ir::ops::fixed::{QLayer, Requant};
    use ipukit_ir::ops::{DepthwiseConv2d, Padding2d};
    use proptest::prelude::*;

    #[allow(clippy::too_many_arguments)]
    fn naive(
        a: &QDepthwiseConv2d,
        xs: [usize; 4],
        ws: [usize; 4],
        x: &[i32],
        w: &[i32],
        bias: Option<&[i64]>,
        bits16: bool,
    ) -> Vec<i32> {
        let [n, h, wd, cin] = xs;
        let [_, kh, kw, cout] = ws;
        let m = a.conv.depth_multiplier;
        let p = a.conv.padding;
        let [sh, sw] = a.conv.strides;
        let [dh, dw] = a.conv.dilations;
        let oh = (h + p.top + p.bottom - dh * (kh - 1) - 1) / sh + 1;
        let ow = (wd + p.left + p.right - dw * (kw - 1) - 1) / sw + 1;
        let z = a.layer.input_zero_point as i128;
        let mut out = vec![];
        for b in 0..n {
            for oy in 0..oh {
                for ox in 0..ow {
                    for o in 0..cout {
                        let mut acc = bias.map_or(0, |v| v[o] as i128);
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let iy = (oy * sh + ky * dh) as isize - p.top as isize;
                                let ix = (ox * sw + kx * dw) as isize - p.left as isize;
                                let inside =
                                    iy >= 0 && ix >= 0 && iy < h as isize && ix < wd as isize;
                                let pad = if bits16 { 0 } else { z };
                                let xv = if inside {
                                    x[((b * h + iy as usize) * wd + ix as usize) * cin + o / m]
                                        as i128
                                } else {
                                    pad
                                };
                                acc += w[(ky * kw + kx) * cout + o] as i128 * (xv - z);
                            }
                        }
                        let r = a.layer.requant[if a.layer.requant.len() == 1 { 0 } else { o }];
                        out.push(requant_def(acc, r, &a.layer.out));
                    }
                }
            }
        }
        out
    }

    prop_compose! {
        fn case()(seed in any::<u64>(), cin in 1usize..40, mult in 1usize..4, kh in 1usize..4, kw in 1usize..4,
                  sh in 1usize..3, sw in 1usize..3, dh in 1usize..3, dw in 1usize..3,
                  pads in proptest::array::uniform4(0usize..3), n in 1usize..3, h in 1usize..8, w in 1usize..8,
                  bits16 in any::<bool>(), bias in any::<bool>(), u8_out in any::<bool>(), per_channel in any::<bool>(), threads in 1usize..3)
            -> (u64, DepthwiseConv2d, [usize; 4], [usize; 4], bool, bool, bool, bool, usize) {
            let conv = DepthwiseConv2d {
                strides: [sh, sw], dilations: [dh, dw],
                padding: Padding2d { top: pads[0], left: pads[1], bottom: pads[2], right: pads[3] },
                depth_multiplier: mult, activation: FusedActivation::None,
            };
            let h = h.max(dh * (kh - 1) + 1);
            let w = w.max(dw * (kw - 1) + 1);
            (seed, conv, [n, h, w, cin], [1, kh, kw, cin * mult], bits16, bias, u8_out, per_channel, threads)
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn check(
        seed: u64,
        conv: DepthwiseConv2d,
        xs: [usize; 4],
        ws: [usize; 4],
        bits16: bool,
        bias: bool,
        u8_out: bool,
        per_channel: bool,
        threads: usize,
    ) -> std::result::Result<(), TestCaseError> {
        let mut rng = Rng::new(seed);
        let cout = ws[3];
        let (out_dtype, out) = rng.out_range(u8_out);
        let layer = QLayer {
            input_zero_point: if bits16 { 0 } else { rng.extreme(0, 255) },
            requant: (0..if per_channel { cout } else { 1 })
                .map(|_| rng.requant(if bits16 { 31 } else { 17 }))
                .collect(),
            out_dtype,
            out,
        };
        let attrs = QDepthwiseConv2d { conv, layer };
        let data = LayerData::random(&mut rng, xs.iter().product(), ws.iter().product(), cout);
        let (weights, xi, wi, bi) = data.weights(bits16, bias);
        let want = naive(&attrs, xs, ws, &xi, &wi, bi.as_deref(), bits16);
        for isa in Isa::supported() {
            let p = PackedQDepthwise::with_isa(isa, &attrs, weights, &ws).unwrap();
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
        fn matches_definition((seed, conv, xs, ws, bits16, bias, u8_out, per_channel, threads) in case()) {
            check(seed, conv, xs, ws, bits16, bias, u8_out, per_channel, threads)?;
        }
    }

    #[test]
    fn realistic_shapes() {
        let conv = |s: usize, m: usize| DepthwiseConv2d {
            strides: [s, s],
            dilations: [1, 1],
            padding: Padding2d {
                top: 1,
                left: 1,
                bottom: 1,
                right: 1,
            },
            depth_multiplier: m,
            activation: FusedActivation::None,
        };
        for bits16 in [false, true] {
            check(
                1,
                conv(1, 1),
                [1, 40, 40, 64],
                [1, 3, 3, 64],
                bits16,
                true,
                !bits16,
                true,
                2,
            )
            .unwrap();
            check(
                2,
                conv(2, 1),
                [1, 33, 31, 96],
                [1, 3, 3, 96],
                bits16,
                true,
                false,
                true,
                2,
            )
            .unwrap();
            check(
                3,
                conv(1, 2),
                [1, 16, 16, 8],
                [1, 3, 3, 16],
                bits16,
                false,
                false,
                false,
                2,
            )
            .unwrap();
        }
    }

    /// `run_tail` gives exactly `run` then each operator (MobileNetV3's HardSwish table
    /// and the rescale to UINT8), in chunks of rows on every ISA and thread count, and
    /// refuses a tail that does not fit the layer.
    #[test]
    fn tails_equal_the_operators_one_by_one() {
        use crate::int::{qrescale, PackedQLut, TailOp};
        use ipukit_ir::ops::fixed::{OutRange, QRescale};
        use std::sync::Arc;
        let (xs, ws) = ([2usize, 24, 20, 48], [1usize, 3, 3, 48]);
        let cout = ws[3];
        for bits16 in [false, true] {
            let mut rng = Rng::new(7 + bits16 as u64);
            let attrs = QDepthwiseConv2d {
                conv: DepthwiseConv2d {
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
                },
                layer: QLayer {
                    input_zero_point: if bits16 { 0 } else { 131 },
                    requant: (0..cout)
                        .map(|_| rng.requant(if bits16 { 31 } else { 17 }))
                        .collect(),
                    out_dtype: DType::I16,
                    out: OutRange::full(DType::I16, 0),
                },
            };
            let data = LayerData::random(&mut rng, xs.iter().product(), ws.iter().product(), cout);
            let (weights, ..) = data.weights(bits16, true);
            let lut = Arc::new(PackedQLut::from_outputs(rng.vec(65536)).unwrap());
            let rescale = QRescale {
                input_zero_point: 0,
                positive: vec![rng.requant(2)],
                negative: vec![rng.requant(2)],
                out_dtype: DType::U8,
                out: OutRange {
                    zero_point: 128,
                    min: 0,
                    max: 255,
                },
            };
            let ops = vec![
                TailOp::Lut(0, lut.clone()),
                TailOp::Rescale(1, rescale.clone()),
            ];
            let tail = Tail::new(DType::I16, cout, ops).unwrap();
            for isa in Isa::supported() {
                let p = PackedQDepthwise::with_isa(isa, &attrs, weights, &ws).unwrap();
                let n = xs[0] * xs[1] * xs[2] * cout;
                let mut layer = vec![0i16; n];
                let mut looked = vec![0i16; n];
                let mut want = vec![0u8; n];
                if bits16 {
                    p.run(data.x16(), &xs, &mut layer).unwrap();
                } else {
                    p.run(data.x8(), &xs, &mut layer).unwrap();
                }
                lut.run(&layer, &mut looked).unwrap();
                qrescale(&rescale, &looked, &[n / cout, cout], &mut want).unwrap();
                for threads in [1, 2] {
                    let got = with_threads(threads, || {
                        let mut o = vec![0u8; n];
                        if bits16 {
                            p.run_tail(data.x16(), &xs, &tail, &mut o).unwrap();
                        } else {
                            p.run_tail(data.x8(), &xs, &tail, &mut o).unwrap();
                        }
                        o
                    });
                    assert_eq!(got, want, "16-bit {bits16}, {isa}, {threads} threads");
                }
                // One image, its output channels summed on the way (a global average pool's
                // start): the same output, and the sums of the output's channels.
                let xs1 = [1, xs[1], xs[2], xs[3]];
                let (per_x, per_o) = (xs1.iter().product::<usize>(), n / xs[0]);
                let mut want_sums = vec![0i64; cout];
                for pixel in want[..per_o].chunks_exact(cout) {
                    for (s, &v) in want_sums.iter_mut().zip(pixel) {
                        *s += v as i64;
                    }
                }
                let summed = |shape: &[usize], o: &mut [u8], sums: &mut [i64]| {
                    if bits16 {
                        p.run_tail_sums(&data.x16()[..per_x], shape, &tail, o, sums)
                    } else {
                        p.run_tail_sums(&data.x8()[..per_x], shape, &tail, o, sums)
                    }
                };
                for threads in [1, 2] {
                    let (o, sums) = with_threads(threads, || {
                        let (mut o, mut sums) = (vec![0u8; per_o], vec![0i64; cout]);
                        summed(&xs1, &mut o, &mut sums).unwrap();
                        (o, sums)
                    });
                    assert_eq!(o, want[..per_o], "{isa}, {threads} threads");
                    assert_eq!(sums, want_sums, "{isa}, {threads} threads");
                }
                // Two images, or sums for other channels, are errors.
                let mut o = vec![0u8; per_o];
                assert!(summed(&[2, xs[1] / 2, xs[2], xs[3]], &mut o, &mut [0; 48]).is_err());
                assert!(summed(&xs1, &mut o, &mut [0; 8]).is_err());
                // Written as INT16 where the tail gives UINT8; a tail for other channels.
                let mut wrong = vec![0i16; n];
                let x16 = data.x16();
                let x8 = data.x8();
                let run = |t: &Tail, o: &mut [i16]| {
                    if bits16 {
                        p.run_tail(x16, &xs, t, o)
                    } else {
                        p.run_tail(x8, &xs, t, o)
                    }
                };
                assert!(run(&tail, &mut wrong).is_err());
                let narrow = Tail::new(DType::I16, 8, vec![TailOp::Lut(0, lut.clone())]).unwrap();
                assert!(run(&narrow, &mut wrong).is_err());
            }
        }
    }

    #[test]
    fn bad_layers_are_errors() {
        let attrs = QDepthwiseConv2d {
            conv: DepthwiseConv2d {
                strides: [1, 1],
                dilations: [1, 1],
                padding: Padding2d::ZERO,
                depth_multiplier: 1,
                activation: FusedActivation::None,
            },
            layer: QLayer {
                input_zero_point: 0,
                requant: vec![Requant::IDENTITY],
                out_dtype: DType::I16,
                out: ipukit_ir::ops::fixed::OutRange::full(DType::I16, 0),
            },
        };
        let w = [1i8; 9];
        assert!(PackedQDepthwise::new(
            &attrs,
            QWeights::Bits8 {
                weight: &w,
                bias: None
            },
            &[1, 3, 3, 2]
        )
        .is_err());
        let p = PackedQDepthwise::new(
            &attrs,
            QWeights::Bits8 {
                weight: &w,
                bias: None,
            },
            &[1, 3, 3, 1],
        )
        .unwrap();
        let mut o = [0i16; 1];
        assert!(p.run(&[0i16; 9], &[1, 3, 3, 1], &mut o).is_err());
        assert!(p.run(&[0u8; 9], &[1, 3, 3, 2], &mut o).is_err());
        p.run(&[1u8; 9], &[1, 3, 3, 1], &mut o).unwrap();
        assert_eq!(o, [9]);
    }
}
