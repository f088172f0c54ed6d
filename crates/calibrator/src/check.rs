//! Fixed-versus-float agreement on calibration inputs.

use crate::Result;
use ipukit_ir::{DType, Graph};
use ipukit_runtime::{Session, SessionOptions, Value};

/// How closely a fixed model follows its float model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutputAgreement {
    /// Smallest cosine over every output of every input.
    pub min_cosine: f64,
    /// Mean of the per-input, per-output cosines.
    pub mean_cosine: f64,
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

/// Compares `fixed` on `samples` (board inputs) with `reference`.
pub(crate) fn compare(
    fixed: &Graph,
    samples: &[Vec<Value>],
    reference: &[Vec<Vec<f64>>],
) -> Result<OutputAgreement> {
    let got = outputs(fixed, samples)?;
    let mut cos = Vec::new();
    for (g, r) in got.iter().zip(reference) {
        for (a, b) in g.iter().zip(r) {
            cos.push(cosine(a, b));
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
        inputs: samples.len(),
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
}
