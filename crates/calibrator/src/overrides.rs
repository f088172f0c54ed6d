//! Merging an imported quantization-parameter file (`--quant_param`) into the plan: imported
//! values win over computed ones (the import already rejected invalid entries, with reasons).

use crate::Result;
use ipukit_ir::{Graph, TensorData};
use ipukit_quant::calibrate::Plan;
use ipukit_quant::json::QuantOverrides;
use ipukit_quant::stats::weight_axis;

/// Replaces constant data given in the file (weights the user re-trained or edited).
pub(crate) fn replace_weights(float: &mut Graph, accepted: &QuantOverrides) -> Result<()> {
    for o in accepted.values() {
        if let Some(data) = &o.data {
            let t = float.tensor_mut(o.tensor);
            if t.data.is_some() && t.shape.iter().product::<usize>() == data.len() {
                t.data = Some(TensorData::from(data.clone()));
            }
        }
    }
    Ok(())
}

/// Applies imported ranges and bit widths: activation ranges replace the calibrated ones,
/// weight ranges replace the per-channel clipping, and `bit: 16` on a layer's input or weight
/// moves the layer to 16 bits.
pub(crate) fn apply(float: &Graph, plan: &mut Plan, accepted: &QuantOverrides) {
    for o in accepted.values() {
        let lo = o.min.iter().copied().fold(f32::INFINITY, f32::min);
        let hi = o.max.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let is_const = float.tensor(o.tensor).data.is_some();
        if is_const {
            let clip: Vec<f32> = o
                .min
                .iter()
                .zip(&o.max)
                .map(|(a, b)| a.abs().max(b.abs()))
                .collect();
            plan.lower.weight_clip.insert(o.tensor, clip);
        } else if lo <= hi {
            plan.lower.ranges.insert(o.tensor, (lo, hi));
            plan.lower.uint8_ranges.insert(o.tensor, (lo, hi));
        }
        if o.bit == 16 {
            let layers: Vec<String> = float
                .nodes
                .iter()
                .filter(|n| weight_axis(&n.op).is_some())
                .filter(|n| {
                    n.inputs.first() == Some(&o.tensor) || n.inputs.get(1) == Some(&o.tensor)
                })
                .map(|n| n.name.clone())
                .collect();
            for node in layers {
                plan.promote(&node, "--quant_param bit 16");
            }
        }
    }
}
