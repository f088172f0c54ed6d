//! Fixed-versus-float agreement on calibration inputs.

use crate::Result;
use ipukit_ir::ops::UnaryOp;
use ipukit_ir::{DType, Graph, Node, Op, TensorId};
use ipukit_runtime::{Session, SessionOptions, Value};
use std::collections::HashMap;

/// How closely a fixed model follows its float model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutputAgreement {
    /// Smallest cosine over every output of every input.
    pub min_cosine: f64,
    /// Mean of the per-input, per-output cosines.
    pub mean_cosine: f64,
    /// Largest `|fixed − float|` of any element of an output that is a probability (made by
    /// a softmax or a sigmoid, see [`probability_outputs`]); 0 when no output is. Thresholded
    /// decisions on a score map feel this, which a cosine averages away.
    pub max_error: f64,
    /// Inputs compared.
    pub inputs: usize,
}

/// Cosine similarity of two equally long vectors (1 when both are zero).
pub fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa == 0.0 && bb == 0.0 {
        1.0
    } else if aa == 0.0 || bb == 0.0 {
        0.0
    } else {
        ab / (aa.sqrt() * bb.sqrt())
    }
}

/// The outputs of `graph` on each sample, as real numbers (integer outputs dequantized with
/// their tensor's scale and zero point).
pub(crate) fn outputs(graph: &Graph, samples: &[Vec<Value>]) -> Result<Vec<Vec<Vec<f64>>>> {
    let mut s = Session::new(graph.clone(), SessionOptions::default())?;
    let mut all = Vec::with_capacity(samples.len());
    for sample in samples {
        let outs = s.run(sample.clone())?;
        let reals = outs
            .iter()
            .zip(&graph.outputs)
            .map(|(v, &t)| {
                let q = graph.tensor(t).quant.as_ref();
                let (scale, zp) = match (v.dtype(), q) {
                    (DType::F32, _) | (_, None) => (1.0, 0.0),
                    (_, Some(q)) => (
                        q.scale.first().copied().unwrap_or(1.0) as f64,
                        q.zero_point.first().copied().unwrap_or(0) as f64,
                    ),
                };
                v.data
                    .to_f32_vec()
                    .into_iter()
                    .map(|x| (x as f64 - zp) * scale)
                    .collect()
            })
            .collect();
        all.push(reals);
    }
    Ok(all)
}

/// The float model's outputs on `samples` (normalised inputs).
pub(crate) fn run_float(float: &Graph, samples: &[Vec<Value>]) -> Result<Vec<Vec<Vec<f64>>>> {
    outputs(float, samples)
}

/// Which outputs of `float` are probabilities: made by a softmax or a sigmoid, through
/// operators that only move values (reshape, transpose, identity).
pub fn probability_outputs(float: &Graph) -> Vec<bool> {
    let producer: HashMap<TensorId, &Node> = float
        .nodes
        .iter()
        .flat_map(|n| n.outputs.iter().map(move |&t| (t, n)))
        .collect();
    float
        .outputs
        .iter()
        .map(|&t| {
            let mut t = t;
            // Each step moves to an earlier node, so the walk ends.
            while let Some(n) = producer.get(&t) {
                match &n.op {
                    Op::Softmax(_) | Op::Unary(UnaryOp::Sigmoid) => return true,
                    Op::Reshape(_) | Op::Transpose(_) | Op::Identity => t = n.inputs[0],
                    _ => return false,
                }
            }
            false
        })
        .collect()
}

/// Compares `fixed` on `samples` (board inputs) with `reference`; `probability` marks the
/// outputs whose largest error is [`OutputAgreement::max_error`].
pub(crate) fn compare(
    fixed: &Graph,
    samples: &[Vec<Value>],
    reference: &[Vec<Vec<f64>>],
    probability: &[bool],
) -> Result<OutputAgreement> {
    let got = outputs(fixed, samples)?;
    let mut cos = Vec::new();
    let mut max_error = 0.0f64;
    for (g, r) in got.iter().zip(reference) {
        for (i, (a, b)) in g.iter().zip(r).enumerate() {
            cos.push(cosine(a, b));
            if probability.get(i).copied().unwrap_or(false) {
                max_error = max_error.max(max_abs_difference(a, b));
            }
        }
    }
    let min_cosine = cos.iter().copied().fold(1.0f64, f64::min);
    let mean_cosine = if cos.is_empty() {
        1.0
    } else {
        cos.iter().sum::<f64>() / cos.len() as f64
    };
    Ok(OutputAgreement {
        min_cosine,
        mean_cosine,
        max_error,
        inputs: samples.len(),
    })
}

/// `max |a − b|` over two equally long vectors (NaN counts as infinitely far).
pub fn max_abs_difference(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).fold(0.0f64, |m, (x, y)| {
        let d = (x - y).abs();
        if d.is_nan() {
            f64::INFINITY
        } else {
            m.max(d)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_edges() {
        assert_eq!(cosine(&[0.0, 0.0], &[0.0, 0.0]), 1.0);
        assert_eq!(cosine(&[1.0, 0.0], &[0.0, 0.0]), 0.0);
        assert!((cosine(&[1.0, 2.0], &[2.0, 4.0]) - 1.0).abs() < 1e-12);
        assert!((cosine(&[1.0, 0.0], &[0.0, 1.0])).abs() < 1e-12);
    }

    #[test]
    fn max_abs_difference_edges() {
        assert_eq!(max_abs_difference(&[0.0, 0.0], &[0.0, 0.0]), 0.0);
        assert_eq!(max_abs_difference(&[f64::NAN], &[0.0]), f64::INFINITY);
        assert!((max_abs_difference(&[0.5, 0.91], &[0.5, 1.0]) - 0.09).abs() < 1e-12);
        assert!((max_abs_difference(&[-2.1, 1.0], &[-2.0, 1.0]) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn probability_outputs_follow_moves_back_to_a_softmax_or_sigmoid() {
        use ipukit_ir::ops::{Softmax, Transpose};
        let mut g = Graph::new();
        let x = g.add_input("x", DType::F32, vec![1, 4]);
        let s = g
            .add_node("softmax", Op::Softmax(Softmax { axis: 1 }), vec![x], &["s"])
            .unwrap()[0];
        let t = g
            .add_node(
                "move",
                Op::Transpose(Transpose { perm: vec![1, 0] }),
                vec![s],
                &["t"],
            )
            .unwrap()[0];
        let r = g
            .add_node("relu", Op::Unary(UnaryOp::Relu), vec![x], &["r"])
            .unwrap()[0];
        let q = g
            .add_node("sigmoid", Op::Unary(UnaryOp::Sigmoid), vec![r], &["q"])
            .unwrap()[0];
        g.outputs = vec![t, r, x, q];
        assert_eq!(probability_outputs(&g), vec![true, false, false, true]);
    }
}
