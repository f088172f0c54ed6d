//! Quantized fully-connected layer (`QFullyConnected`) and matrix product of two INT16
//! activations (`QMatMul`), `docs/fixed-point.md` §3.
//!
//! A fully-connected layer is a 1×1 convolution over the rows of its input, so it runs on
//! [`PackedQConv`] (same packing, same micro-kernels). `QMatMul` packs its second operand at
//! run time (it is an activation) in the 16-bit scheme and accumulates in INT64.

use super::arith::QInt;
use super::conv::{LayerInput, PackedQConv, QWeights};
use super::epilogue::{Bias, ChannelRequant};
use super::gemm::{gemm_rows, Mode, PackedB, TileBuf};
use super::isa::Isa;
use crate::error::{check_len, invalid, Result};
use crate::shape::{broadcast_all, broadcast_strides, numel, Strided};
use ipukit_ir::ops::fixed::{QConv2d, QFullyConnected, QMatMul};
use ipukit_ir::ops::{Conv2d, FusedActivation, Padding2d};
use ipukit_ir::DType;
use rayon::prelude::*;

/// A [`QFullyConnected`] with its `[N, K]` weights packed.
#[derive(Debug, Clone)]
pub struct PackedQFullyConnected {
    conv: PackedQConv,
    k: usize,
    n: usize,
}

impl PackedQFullyConnected {
    /// Packs `[N, K]` weights and the bias for the best instruction set.
    pub fn new(
        attrs: &QFullyConnected,
        weights: QWeights<'_>,
        weight_shape: &[usize],
    ) -> Result<PackedQFullyConnected> {
        Self::with_isa(Isa::detect(), attrs, weights, weight_shape)
    }

    /// Packs for `isa` (clamped to the CPU); all levels give identical results.
    pub fn with_isa(
        isa: Isa,
        attrs: &QFullyConnected,
        weights: QWeights<'_>,
        weight_shape: &[usize],
    ) -> Result<PackedQFullyConnected> {
        let &[n, k] = weight_shape else {
            return Err(invalid(
                "QFullyConnected",
                format!("weight must be [N, K], got {weight_shape:?}"),
            ));
        };
        let conv = QConv2d {
            conv: Conv2d {
                strides: [1, 1],
                dilations: [1, 1],
                padding: Padding2d::ZERO,
                groups: 1,
                activation: FusedActivation::None,
            },
            layer: attrs.layer.clone(),
        };
        let conv = PackedQConv::with_isa(isa, &conv, weights, &[n, 1, 1, k])?;
        Ok(PackedQFullyConnected { conv, k, n })
    }

    /// The instruction set the weights were packed for.
    pub fn isa(&self) -> Isa {
        self.conv.isa()
    }

    /// Output shape: the input's with the last axis `K` replaced by `N`.
    pub fn output_shape(&self, x_shape: &[usize]) -> Result<Vec<usize>> {
        match x_shape.split_last() {
            Some((&k, rest)) if k == self.k => {
                let mut s = rest.to_vec();
                s.push(self.n);
                Ok(s)
            }
            _ => Err(invalid(
                "QFullyConnected",
                format!("input {x_shape:?} must end with {} features", self.k),
            )),
        }
    }

    /// `out = requant(x · Wᵀ + b)` over the last axis (`u8` input in 8-bit mode, `i16` in
    /// 16-bit mode).
    pub fn run<X: LayerInput, O: QInt>(
        &self,
        x: &[X],
        x_shape: &[usize],
        out: &mut [O],
    ) -> Result<()> {
        let os = self.output_shape(x_shape)?;
        check_len("QFullyConnected", "input", x.len(), numel(x_shape))?;
        check_len("QFullyConnected", "output", out.len(), numel(&os))?;
        let m = numel(&x_shape[..x_shape.len() - 1]);
        self.conv.run(x, &[1, 1, m, self.k], out)
    }
}

/// `QMatMul`: `y = sat_out(z_out + requant(Σ_k a[.., i, k] · b[.., k, j], M))` for INT16 `a`
/// (`[..., M, K]`) and `b` (`[..., K, N]`), batch axes broadcast as in numpy, INT64 sums.
pub fn qmatmul(
    attrs: &QMatMul,
    a: &[i16],
    a_shape: &[usize],
    b: &[i16],
    b_shape: &[usize],
    out: &mut [i16],
) -> Result<()> {
    qmatmul_isa(Isa::detect(), attrs, a, a_shape, b, b_shape, out)
}

/// [`qmatmul`] on a chosen instruction set (clamped to the CPU).
pub fn qmatmul_isa(
    isa: Isa,
    attrs: &QMatMul,
    a: &[i16],
    a_shape: &[usize],
    b: &[i16],
    b_shape: &[usize],
    out: &mut [i16],
) -> Result<()> {
    const OP: &str = "QMatMul";
    super::arith::check_requant(OP, attrs.requant)?;
    super::arith::check_out::<i16>(OP, Some(DType::I16), &attrs.out)?;
    let (ra, rb) = (a_shape.len(), b_shape.len());
    if ra < 2 || rb < 2 || a_shape[ra - 1] != b_shape[rb - 2] {
        return Err(invalid(
            OP,
            format!("shapes {a_shape:?} and {b_shape:?} cannot be multiplied"),
        ));
    }
    let (m, k, n) = (a_shape[ra - 2], a_shape[ra - 1], b_shape[rb - 1]);
    let (ba, bb) = (&a_shape[..ra - 2], &b_shape[..rb - 2]);
    let batch = broadcast_all(OP, &[ba, bb])?;
    check_len(OP, "first input", a.len(), numel(a_shape))?;
    check_len(OP, "second input", b.len(), numel(b_shape))?;
    let nb = numel(&batch);
    check_len(OP, "output", out.len(), nb * m * n)?;
    if out.is_empty() {
        return Ok(());
    }
    let rq = ChannelRequant::new(n, Bias::None, &[attrs.requant], attrs.out);
    let mut sa: Vec<isize> = broadcast_strides(ba, &batch);
    let mut sb: Vec<isize> = broadcast_strides(bb, &batch);
    sa.iter_mut().for_each(|s| *s *= (m * k) as isize);
    sb.iter_mut().for_each(|s| *s *= (k * n) as isize);
    let it = Strided::new(&batch, [&sa, &sb], [0, 0]);
    let mut offs = Vec::with_capacity(nb);
    it.for_rows(0, it.rows(), |_, [oa, ob]| {
        for i in 0..it.inner as isize {
            offs.push((
                (oa + i * it.inner_steps[0]) as usize,
                (ob + i * it.inner_steps[1]) as usize,
            ));
        }
    });
    // Rows of `a` padded to the scheme's even K.
    let kpad = k.next_multiple_of(2);
    let a_pad: Option<Vec<i16>> = (kpad != k).then(|| {
        let mut v = vec![0i16; numel(ba).max(1) * m * kpad];
        for (d, s) in v.chunks_exact_mut(kpad).zip(a.chunks_exact(k.max(1))) {
            d[..k].copy_from_slice(s);
        }
        v
    });
    let (a_rows, lda) = match &a_pad {
        Some(p) => (p.as_slice(), kpad),
        None => (a, k),
    };
    // Batches that share `b` share its packing.
    let mut packs: Vec<(usize, PackedB)> = Vec::new();
    let mut which = Vec::with_capacity(nb);
    for &(_, ob) in &offs {
        let i = match packs.iter().position(|(o, _)| *o == ob) {
            Some(i) => i,
            None => {
                packs.push((
                    ob,
                    PackedB::pack(isa, Mode::Bits16, n, k, |j, kk| b[ob + kk * n + j] as i32),
                ));
                packs.len() - 1
            }
        };
        which.push(i);
    }
    let threads = rayon::current_num_threads();
    let row_block = if threads > 1 && m * n * k >= 1 << 18 {
        m.div_ceil(threads * 2).max(12)
    } else {
        m.max(1)
    };
    let jobs: Vec<(usize, usize)> = (0..nb)
        .flat_map(|bi| (0..m).step_by(row_block).map(move |r| (bi, r)))
        .collect();
    let mut outs: Vec<&mut [i16]> = Vec::with_capacity(jobs.len());
    for o in out.chunks_mut(m * n) {
        outs.extend(o.chunks_mut(row_block * n));
    }
    let run = |((bi, r0), o): ((usize, usize), &mut [i16])| {
        let pb = &packs[which[bi]].1;
        let oa = offs[bi].0 / k.max(1) * lda;
        let rows: Vec<&[i16]> = (r0..r0 + o.len() / n.max(1))
            .map(|r| &a_rows[oa + r * lda..oa + r * lda + kpad])
            .collect();
        let mut buf = TileBuf::new();
        gemm_rows(pb, &rq, &rows, o, n, 0, &mut buf);
    };
    if jobs.len() > 1 && threads > 1 && m * n * k * nb >= 1 << 16 {
        jobs.into_par_iter().zip(outs).for_each(run);
    } else {
        jobs.into_iter().zip(outs).for_each(run);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::int::testutil::{requant_def, with_threads, Rng};
    use ipukit_ir::ops::fixed::{OutRange, QLayer, Requant};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]
        #[test]
        fn fully_connected_matches_definition(seed in any::<u64>(), lead in proptest::collection::vec(1usize..4, 0..3), k in 1usize..70, n in 1usize..40, bits16 in any::<bool>(), threads in 1usize..3) {
            let mut rng = Rng::new(seed);
            let m: usize = lead.iter().product();
            let u8_out = rng.below(2) == 0;
            let (out_dtype, out) = rng.out_range(u8_out);
            let layer = QLayer {
                input_zero_point: if bits16 { 0 } else { rng.extreme(0, 255) },
                requant: (0..n).map(|_| rng.requant(if bits16 { 33 } else { 19 })).collect(),
                out_dtype,
                out,
            };
            let attrs = QFullyConnected { layer };
            let (x8, x16): (Vec<u8>, Vec<i16>) = (rng.vec(m * k), rng.vec(m * k));
            let (w8, w16): (Vec<i8>, Vec<i16>) = (rng.vec(n * k), rng.vec(n * k));
            let b32: Vec<i32> = (0..n).map(|_| rng.extreme(i32::MIN, i32::MAX) >> 8).collect();
            let b64: Vec<i64> = (0..n).map(|_| rng.extreme(i32::MIN, i32::MAX) as i64 * 1000).collect();
            let z = attrs.layer.input_zero_point as i128;
            let mut want = vec![];
            for r in 0..m {
                for j in 0..n {
                    let mut acc: i128 = if bits16 { b64[j] as i128 } else { b32[j] as i128 };
                    for kk in 0..k {
                        acc += if bits16 {
                            w16[j * k + kk] as i128 * x16[r * k + kk] as i128
                        } else {
                            w8[j * k + kk] as i128 * (x8[r * k + kk] as i128 - z)
                        };
                    }
                    want.push(requant_def(acc, attrs.layer.requant[j], &attrs.layer.out));
                }
            }
            let mut xs = lead.clone();
            xs.push(k);
            let weights = if bits16 { QWeights::Bits16 { weight: &w16, bias: Some(&b64) } } else { QWeights::Bits8 { weight: &w8, bias: Some(&b32) } };
            for isa in Isa::supported() {
                let p = PackedQFullyConnected::with_isa(isa, &attrs, weights, &[n, k]).unwrap();
                let mut os = lead.clone();
                os.push(n);
                prop_assert_eq!(p.output_shape(&xs).unwrap(), os);
                let got: Vec<i32> = with_threads(threads, || match (bits16, out_dtype) {
                    (false, DType::U8) => { let mut o = vec![0u8; m * n]; p.run(&x8, &xs, &mut o).unwrap(); o.iter().map(|&v| v as i32).collect() }
                    (false, _) => { let mut o = vec![0i16; m * n]; p.run(&x8, &xs, &mut o).unwrap(); o.iter().map(|&v| v as i32).collect() }
                    (true, DType::U8) => { let mut o = vec![0u8; m * n]; p.run(&x16, &xs, &mut o).unwrap(); o.iter().map(|&v| v as i32).collect() }
                    (true, _) => { let mut o = vec![0i16; m * n]; p.run(&x16, &xs, &mut o).unwrap(); o.iter().map(|&v| v as i32).collect() }
                });
                prop_assert_eq!(&got, &want, "{}", isa);
            }
        }

        #[test]
        fn matmul_matches_definition(seed in any::<u64>(), ba in proptest::collection::vec(1usize..3, 0..3), bb_mask in 0u32..8, m in 1usize..20, k in 0usize..40, n in 1usize..40, threads in 1usize..3) {
            let mut rng = Rng::new(seed);
            // b's batch axes: a's, some set to 1, possibly fewer.
            let bb: Vec<usize> = ba.iter().enumerate().map(|(i, &d)| if bb_mask >> i & 1 == 1 { 1 } else { d }).skip((bb_mask >> 3) as usize % 2).collect();
            let mut sa = ba.clone();
            sa.extend([m, k]);
            let mut sb = bb.clone();
            sb.extend([k, n]);
            let a: Vec<i16> = rng.vec(numel(&sa));
            let b: Vec<i16> = rng.vec(numel(&sb));
            let attrs = QMatMul { requant: rng.requant(30 + (k.max(1) as f64).log2() as u32 / 2), out: OutRange::full(DType::I16, 0) };
            let batch = broadcast_all("t", &[&ba, &bb]).unwrap();
            let nb = numel(&batch);
            let mut want = vec![];
            for bi in 0..nb {
                // Coordinates of batch bi, mapped to a's and b's batches.
                let mut coord = vec![0; batch.len()];
                let mut r = bi;
                for d in (0..batch.len()).rev() {
                    coord[d] = r % batch[d];
                    r /= batch[d];
                }
                let lin = |s: &[usize]| -> usize {
                    let off = batch.len() - s.len();
                    s.iter().enumerate().fold(0, |acc, (d, &len)| acc * len + if len == 1 { 0 } else { coord[off + d] })
                };
                let (ia, ib) = (lin(&ba), lin(&bb));
                for i in 0..m {
                    for j in 0..n {
                        let acc: i128 = (0..k).map(|kk| a[(ia * m + i) * k + kk] as i128 * b[(ib * k + kk) * n + j] as i128).sum();
                        want.push(requant_def(acc, attrs.requant, &attrs.out) as i16);
                    }
                }
            }
            for isa in Isa::supported() {
                let mut got = vec![0i16; want.len()];
                with_threads(threads, || qmatmul_isa(isa, &attrs, &a, &sa, &b, &sb, &mut got)).unwrap();
                prop_assert_eq!(&got, &want, "{}", isa);
            }
        }
    }

    #[test]
    fn matmul_large_and_extreme() {
        // −32768 everywhere: Σ = K·2^30 needs INT64.
        let (m, k, n) = (30, 600, 50);
        let a = vec![-32768i16; m * k];
        let b = vec![-32768i16; k * n];
        let attrs = QMatMul {
            requant: Requant {
                multiplier: 1 << 30,
                shift: 54,
            },
            out: OutRange::full(DType::I16, 0),
        };
        for isa in Isa::supported() {
            let mut o = vec![0i16; m * n];
            with_threads(2, || {
                qmatmul_isa(isa, &attrs, &a, &[m, k], &b, &[k, n], &mut o)
            })
            .unwrap();
            // 600 · 2^30 · 2^30 / 2^54 = 600 · 64 = 38400 → saturates.
            assert!(o.iter().all(|&v| v == 32767), "{isa}");
        }
        let attrs = QMatMul {
            requant: Requant {
                multiplier: 1 << 30,
                shift: 56,
            },
            ..attrs
        };
        let mut o = vec![0i16; m * n];
        qmatmul(&attrs, &a, &[m, k], &b, &[k, n], &mut o).unwrap();
        assert!(o.iter().all(|&v| v == 9600));
        assert!(qmatmul(&attrs, &a, &[m, k], &b, &[k + 1, n], &mut o).is_err());
    }
}
