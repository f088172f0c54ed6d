//! What a layer applies to its output before storing it: bias, clamp, and one optional
//! element-wise function.

use crate::math::vecmath;
use crate::simd::dispatch;
use crate::{error::check_len, par, Result};
use ipukit_ir::ops::{FusedActivation, UnaryOp};

/// An element-wise function applied after the bias and clamp.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum PostOp {
    /// Nothing.
    #[default]
    None,
    /// A unary operator (its [`UnaryOp::apply_f32`] semantics).
    Unary(UnaryOp),
    /// `x · sigmoid(x)` (the `Sigmoid` + `Mul` pair of SiLU / Swish).
    Silu,
}

/// Bias, fused activation and post-operation of a layer, in that order.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Epilogue {
    /// The IR's fused activation (a clamp).
    pub activation: FusedActivation,
    /// Applied after the activation.
    pub post: PostOp,
}

impl Epilogue {
    /// Only the fused activation.
    pub fn new(activation: FusedActivation) -> Epilogue {
        Epilogue {
            activation,
            post: PostOp::None,
        }
    }

    /// The same epilogue followed by `post`; `None` if it already has a post-operation.
    pub fn then(self, post: PostOp) -> Option<Epilogue> {
        (self.post == PostOp::None).then_some(Epilogue { post, ..self })
    }

    /// The scalar semantics: `post(activation(x))` (bias already added).
    pub fn apply(&self, x: f32) -> f32 {
        let y = self.activation.apply(x);
        match self.post {
            PostOp::None => y,
            PostOp::Unary(op) => op.apply_f32(y),
            PostOp::Silu => y * UnaryOp::Sigmoid.apply_f32(y),
        }
    }

    /// Adds `bias` (one value per column; rows are `bias.len()` long, or `cols` long when
    /// `bias` is `None`) and applies the epilogue to `out` in place. Single-threaded: callers
    /// run it on the chunk they just computed, while it is in cache.
    pub(crate) fn apply_rows(&self, out: &mut [f32], cols: usize, bias: Option<&[f32]>) {
        if cols == 0 {
            return;
        }
        if bias.is_none() && *self == Epilogue::default() {
            return;
        }
        epilogue_best(self, out, cols, bias);
    }

    /// [`Epilogue::apply_rows`] over a large buffer, in parallel.
    pub(crate) fn apply_rows_par(&self, out: &mut [f32], cols: usize, bias: Option<&[f32]>) {
        if cols == 0 || (bias.is_none() && *self == Epilogue::default()) {
            return;
        }
        par::for_rows(out, cols, 1 << 14, |_, chunk| {
            self.apply_rows(chunk, cols, bias);
        });
    }
}

#[inline(always)]
fn epilogue_rows<const FMA: bool>(
    e: &Epilogue,
    out: &mut [f32],
    cols: usize,
    bias: Option<&[f32]>,
) {
    let (lo, hi) = e.activation.range();
    let clamp = e.activation != FusedActivation::None;
    macro_rules! go {
        ($post:expr) => {{
            let post = $post;
            for row in out.chunks_exact_mut(cols) {
                match bias {
                    Some(b) => {
                        for (v, &bv) in row.iter_mut().zip(b) {
                            let mut y = *v + bv;
                            if clamp {
                                y = y.max(lo).min(hi);
                            }
                            *v = post(y);
                        }
                    }
                    None => {
                        for v in row.iter_mut() {
                            let mut y = *v;
                            if clamp {
                                y = y.max(lo).min(hi);
                            }
                            *v = post(y);
                        }
                    }
                }
            }
        }};
    }
    match e.post {
        PostOp::None => go!(|y: f32| y),
        PostOp::Silu => go!(|y: f32| y * vecmath::sigmoid(y)),
        PostOp::Unary(UnaryOp::Sigmoid) => go!(vecmath::sigmoid),
        PostOp::Unary(UnaryOp::Relu) => go!(|y: f32| if y > 0.0 { y } else { 0.0 }),
        PostOp::Unary(UnaryOp::LeakyRelu(a)) => go!(|y: f32| if y < 0.0 { a * y } else { y }),
        PostOp::Unary(UnaryOp::Clip(l, h)) => go!(|y: f32| y.max(l).min(h)),
        PostOp::Unary(UnaryOp::HardSwish) => go!(|y: f32| y * (y / 6.0 + 0.5).clamp(0.0, 1.0)),
        PostOp::Unary(UnaryOp::HardSigmoid(a, b)) => go!(|y: f32| (a * y + b).clamp(0.0, 1.0)),
        PostOp::Unary(op) => go!(|y: f32| op.apply_f32(y)),
    }
}

dispatch!(fn epilogue_best = epilogue_rows(e: &Epilogue, out: &mut [f32], cols: usize, bias: Option<&[f32]>));

#[inline(always)]
fn silu_kernel<const FMA: bool>(src: Option<&[f32]>, dst: &mut [f32]) {
    match src {
        Some(s) => {
            for (d, &x) in dst.iter_mut().zip(s) {
                *d = x * vecmath::sigmoid(x);
            }
        }
        None => {
            for d in dst.iter_mut() {
                *d *= vecmath::sigmoid(*d);
            }
        }
    }
}

dispatch!(fn silu_best = silu_kernel(src: Option<&[f32]>, dst: &mut [f32]));

/// `out = x · sigmoid(x)`.
pub fn silu(x: &[f32], out: &mut [f32]) -> Result<()> {
    check_len("Silu", "output", out.len(), x.len())?;
    par::for_rows(out, 1, 1 << 14, |start, chunk| {
        silu_best(Some(&x[start..start + chunk.len()]), chunk);
    });
    Ok(())
}

/// `x = x · sigmoid(x)` in place.
pub fn silu_inplace(x: &mut [f32]) {
    par::for_rows(x, 1, 1 << 14, |_, chunk| silu_best(None, chunk));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_match_scalar_semantics() {
        let cols = 7;
        let x: Vec<f32> = (0..70).map(|i| (i as f32 - 35.0) * 0.23).collect();
        let bias: Vec<f32> = (0..cols).map(|c| c as f32 * 0.1 - 0.3).collect();
        let posts = [
            PostOp::None,
            PostOp::Silu,
            PostOp::Unary(UnaryOp::Sigmoid),
            PostOp::Unary(UnaryOp::Tanh),
            PostOp::Unary(UnaryOp::HardSwish),
        ];
        for act in [
            FusedActivation::None,
            FusedActivation::Relu,
            FusedActivation::Relu6,
        ] {
            for post in posts {
                let e = Epilogue {
                    activation: act,
                    post,
                };
                let mut out = x.clone();
                e.apply_rows(&mut out, cols, Some(&bias));
                for (i, &v) in out.iter().enumerate() {
                    let want = e.apply(x[i] + bias[i % cols]);
                    assert!(
                        (v - want).abs() <= 1e-6 * want.abs().max(1.0),
                        "{e:?}: {v} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn silu_forms_agree() {
        let x: Vec<f32> = (0..50_000).map(|i| (i as f32 - 25_000.0) * 1e-3).collect();
        let mut a = vec![0.0; x.len()];
        silu(&x, &mut a).unwrap();
        let mut b = x.clone();
        silu_inplace(&mut b);
        for i in 0..x.len() {
            let want = x[i] / (1.0 + (-x[i]).exp());
            assert!((a[i] - want).abs() <= 1e-6 * want.abs().max(1e-3));
            assert_eq!(a[i].to_bits(), b[i].to_bits());
        }
    }
}
