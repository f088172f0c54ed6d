//! FullyConnected (prepacked weights) and batched MatMul with broadcasting.

use super::gemm::sgemm;
use super::Epilogue;
use crate::error::{check_len, invalid, Result};
use crate::shape::{broadcast_all, broadcast_strides, numel, Strided};
use ipukit_ir::ops::FullyConnected;
use rayon::prelude::*;

/// Fewest rows worth a task of their own.
const MIN_TASK_ROWS: usize = 32;
/// Rows per GEMM call inside a task (bias and activation follow while they are in cache).
const CHUNK_ROWS: usize = 256;

/// `out[m×n] = epilogue(a[m×k] · w[k×n] + bias)`, `a` rows every `lda` elements; parallel
/// over row blocks when there are enough rows, otherwise inside the GEMM.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_rows(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    lda: usize,
    w: &[f32],
    bias: Option<&[f32]>,
    epilogue: &Epilogue,
    out: &mut [f32],
) {
    if m == 0 || n == 0 {
        return;
    }
    let threads = rayon::current_num_threads();
    if threads <= 1 || m < 2 * MIN_TASK_ROWS {
        sgemm(m, n, k, a, lda, w, n, out, n, false, threads > 1);
        epilogue.apply_rows_par(out, n, bias);
        return;
    }
    let tasks = threads.min(m / MIN_TASK_ROWS);
    let task_rows = m.div_ceil(tasks);
    out.par_chunks_mut(task_rows * n)
        .enumerate()
        .for_each(|(t, o)| {
            let r0 = t * task_rows;
            for (c, dst) in o.chunks_mut(CHUNK_ROWS * n).enumerate() {
                let rows = dst.len() / n;
                let row = r0 + c * CHUNK_ROWS;
                sgemm(rows, n, k, &a[row * lda..], lda, w, n, dst, n, false, false);
                epilogue.apply_rows(dst, n, bias);
            }
        });
}

/// A FullyConnected (or a MatMul by a constant matrix) with its weight packed as `[K, N]`.
#[derive(Debug, Clone)]
pub struct PackedLinear {
    k: usize,
    n: usize,
    weights: Vec<f32>,
    bias: Option<Vec<f32>>,
    epilogue: Epilogue,
}

impl PackedLinear {
    /// Packs a FullyConnected weight `[N, K]` and optional `[N]` bias.
    pub fn new(
        attrs: &FullyConnected,
        weight: &[f32],
        weight_shape: &[usize],
        bias: Option<&[f32]>,
    ) -> Result<PackedLinear> {
        const OP: &str = "FullyConnected";
        let &[n, k] = weight_shape else {
            return Err(invalid(
                OP,
                format!("weight must be [N, K], got {weight_shape:?}"),
            ));
        };
        check_len(OP, "weight", weight.len(), n * k)?;
        if let Some(b) = bias {
            check_len(OP, "bias", b.len(), n)?;
        }
        let mut packed = vec![0.0; k * n];
        for j in 0..n {
            for p in 0..k {
                packed[p * n + j] = weight[j * k + p];
            }
        }
        Ok(PackedLinear {
            k,
            n,
            weights: packed,
            bias: bias.map(<[f32]>::to_vec),
            epilogue: Epilogue::new(attrs.activation),
        })
    }

    /// A constant right-hand side `[K, N]` of a MatMul (no bias, no activation).
    pub fn from_kn(weight: &[f32], k: usize, n: usize) -> Result<PackedLinear> {
        check_len("MatMul", "weight", weight.len(), k * n)?;
        Ok(PackedLinear {
            k,
            n,
            weights: weight.to_vec(),
            bias: None,
            epilogue: Epilogue::default(),
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

    /// Output shape: the input's with the last axis `K` replaced by `N`.
    pub fn output_shape(&self, x_shape: &[usize]) -> Result<Vec<usize>> {
        match x_shape.split_last() {
            Some((&k, rest)) if k == self.k => {
                let mut s = rest.to_vec();
                s.push(self.n);
                Ok(s)
            }
            _ => Err(invalid(
                "FullyConnected",
                format!("input {x_shape:?} must end with {} features", self.k),
            )),
        }
    }

    /// `out = epilogue(x · W + b)` over the last axis.
    pub fn run(&self, x: &[f32], x_shape: &[usize], out: &mut [f32]) -> Result<()> {
        self.run_with(x, x_shape, out, &self.epilogue)
    }

    /// [`PackedLinear::run`] with another epilogue.
    pub fn run_with(
        &self,
        x: &[f32],
        x_shape: &[usize],
        out: &mut [f32],
        epilogue: &Epilogue,
    ) -> Result<()> {
        let out_shape = self.output_shape(x_shape)?;
        check_len("FullyConnected", "input", x.len(), numel(x_shape))?;
        check_len("FullyConnected", "output", out.len(), numel(&out_shape))?;
        let m = x
            .len()
            .checked_div(self.k)
            .unwrap_or_else(|| numel(&out_shape) / self.n.max(1));
        gemm_rows(
            m,
            self.k,
            self.n,
            x,
            self.k,
            &self.weights,
            self.bias.as_deref(),
            epilogue,
            out,
        );
        Ok(())
    }
}

/// Batched `a @ b` with numpy broadcasting of the batch axes (both ranks ≥ 2).
pub fn matmul(
    a: &[f32],
    a_shape: &[usize],
    b: &[f32],
    b_shape: &[usize],
    out: &mut [f32],
) -> Result<()> {
    const OP: &str = "MatMul";
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
    // b shared by every batch: one tall product over all of a's rows.
    if numel(bb) == 1 && numel(ba) == nb {
        gemm_rows(nb * m, k, n, a, k, b, None, &Epilogue::default(), out);
        return Ok(());
    }
    let mut sa: Vec<isize> = broadcast_strides(ba, &batch);
    let mut sb: Vec<isize> = broadcast_strides(bb, &batch);
    sa.iter_mut().for_each(|s| *s *= (m * k) as isize);
    sb.iter_mut().for_each(|s| *s *= (k * n) as isize);
    let it = Strided::new(&batch, [&sa, &sb], [0, 0]);
    // Offsets of every batch (cheap: one pair per matrix product).
    let mut offs = Vec::with_capacity(nb);
    it.for_rows(0, it.rows(), |_, [oa, ob]| {
        for i in 0..it.inner as isize {
            offs.push((
                (oa + i * it.inner_steps[0]) as usize,
                (ob + i * it.inner_steps[1]) as usize,
            ));
        }
    });
    let threads = rayon::current_num_threads();
    let work = m * n * k;
    if nb >= threads && threads > 1 && work < 1 << 20 {
        out.par_chunks_mut(m * n)
            .zip(offs)
            .for_each(|(o, (oa, ob))| {
                sgemm(m, n, k, &a[oa..], k, &b[ob..], n, o, n, false, false);
            });
    } else {
        for (o, (oa, ob)) in out.chunks_mut(m * n).zip(offs) {
            sgemm(m, n, k, &a[oa..], k, &b[ob..], n, o, n, false, true);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::float::testutil::{assert_close, data, with_threads};
    use ipukit_ir::ops::FusedActivation;
    use proptest::prelude::*;

    fn naive_mm(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut out = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k)
                    .map(|p| a[i * k + p] as f64 * b[p * n + j] as f64)
                    .sum::<f64>() as f32;
            }
        }
        out
    }

    proptest! {
        #[test]
        fn fully_connected_matches_naive(m in 1usize..100, k in 0usize..40, n in 1usize..30, bias in any::<bool>(), threads in 1usize..3) {
            let x = data(m * k, 1);
            let w = data(n * k, 2); // [N, K]
            let b = data(n, 3);
            let bias = bias.then_some(b.as_slice());
            let attrs = FullyConnected { activation: FusedActivation::Relu };
            let p = PackedLinear::new(&attrs, &w, &[n, k], bias).unwrap();
            let mut wt = vec![0.0; k * n];
            for j in 0..n { for q in 0..k { wt[q * n + j] = w[j * k + q]; } }
            let want: Vec<f32> = naive_mm(&x, &wt, m, k, n)
                .iter()
                .enumerate()
                .map(|(i, &v)| (v + bias.map_or(0.0, |bb| bb[i % n])).max(0.0))
                .collect();
            let mut out = vec![f32::NAN; m * n];
            with_threads(threads, || p.run(&x, &[m, k], &mut out)).unwrap();
            assert_close(&out, &want, 1e-5).map_err(TestCaseError::fail)?;
        }

        #[test]
        fn matmul_broadcasts_batches(
            batch_a in proptest::collection::vec(1usize..4, 0..3),
            bmask in any::<u8>(), cut in 0usize..3,
            m in 1usize..9, k in 1usize..9, n in 1usize..9, threads in 1usize..3,
        ) {
            // b's batch: a suffix of a's with some axes set to 1.
            let cut = cut.min(batch_a.len());
            let batch_b: Vec<usize> = batch_a[cut..].iter().enumerate().map(|(i, &d)| if bmask >> i & 1 == 1 { 1 } else { d }).collect();
            let mut sa = batch_a.clone(); sa.extend([m, k]);
            let mut sb = batch_b.clone(); sb.extend([k, n]);
            let a = data(numel(&sa), 4);
            let b = data(numel(&sb), 5);
            let nb = numel(&batch_a);
            // Reference: explicit broadcast index per batch.
            let mut want = Vec::new();
            for bi in 0..nb {
                let mut coord = vec![0; batch_a.len()];
                let mut rem = bi;
                for ax in (0..batch_a.len()).rev() { coord[ax] = rem % batch_a[ax]; rem /= batch_a[ax]; }
                let mut ob = 0;
                for (ax, &d) in batch_b.iter().enumerate() { ob = ob * d + if d == 1 { 0 } else { coord[cut + ax] }; }
                want.extend(naive_mm(&a[bi * m * k..(bi + 1) * m * k], &b[ob * k * n..(ob + 1) * k * n], m, k, n));
            }
            let mut out = vec![f32::NAN; want.len()];
            with_threads(threads, || matmul(&a, &sa, &b, &sb, &mut out)).unwrap();
            assert_close(&out, &want, 1e-5).map_err(TestCaseError::fail)?;
        }
    }

    #[test]
    fn batch_broadcast_on_the_left_operand() {
        // a [1, 3, 2] with b [4, 2, 5] -> [4, 3, 5].
        let a = data(6, 1);
        let b = data(40, 2);
        let mut out = vec![0.0; 60];
        matmul(&a, &[1, 3, 2], &b, &[4, 2, 5], &mut out).unwrap();
        for i in 0..4 {
            assert_close(
                &out[i * 15..(i + 1) * 15],
                &naive_mm(&a, &b[i * 10..(i + 1) * 10], 3, 2, 5),
                1e-6,
            )
            .unwrap();
        }
        assert!(matmul(&a, &[3, 2], &b, &[4, 5, 2], &mut out).is_err());
    }

    #[test]
    fn constant_rhs_packing() {
        let w = data(12, 3); // [K=4, N=3]
        let x = data(8, 4); // [2, 4]
        let p = PackedLinear::from_kn(&w, 4, 3).unwrap();
        let mut out = vec![0.0; 6];
        p.run(&x, &[2, 4], &mut out).unwrap();
        assert_close(&out, &naive_mm(&x, &w, 2, 4, 3), 1e-6).unwrap();
    }
}
