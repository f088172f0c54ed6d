//! Quantization levels L1–L5: from calibration statistics to a [`LowerPlan`] and a report of
//! which layers run in 8 and 16 bits and why (docs/calibration.md).
//!
//! | level | activation ranges | weight ranges | 8/16-bit choice |
//! |---|---|---|---|
//! | L1 | min/max | per-channel max | all 8-bit |
//! | L2 | min/max | per-channel, MSE-refined clipping | all 8-bit |
//! | L3 | min/max for INT16; UINT8 copies fitted to the distribution | as L2 | all 8-bit |
//! | L4 | as L3 | as L2 | + [`output_layers`] and layers with 8-bit noise above [`L4_NOISE`] in 16 bits |
//! | L5 | as L3 | as L2 | + output layers and layers above [`L5_NOISE`], then the end-to-end check |
//!
//! `[CONV_CONFIG]` in the ini overrides the choice as the seeds say.

use crate::lower::{int16_headroom, LayerBits, LowerPlan};
use crate::range::{QuantTarget, RangeMethod};
use crate::stats::{weight_axis, CalibrationStats};
use crate::{QuantError, Result};
use ipukit_config::{ConvInputFormat, InputConfig};
use ipukit_ir::passes::ConstEvaluator;
use ipukit_ir::{Graph, Node, Op, TensorData, TensorId};
use ipukit_runtime::{ReferenceEvaluator, Session, SessionOptions, Value};
use std::collections::{HashMap, HashSet};

/// Noise-to-signal ratio of a layer's 8-bit output above which L4 runs it in 16 bits (30 dB).
pub const L4_NOISE: f64 = 1e-3;
/// The L5 threshold (35 dB).
pub const L5_NOISE: f64 = 3.162_277_660_168_379_5e-4;
/// Largest receptive field an 8-bit layer may have: beyond it the INT32 accumulator could
/// overflow (`docs/fixed-point.md` §3).
pub const MAX_INT8_RECEPTIVE_FIELD: usize = 66_311;

/// `--quant_level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum QuantLevel {
    /// Min/max ranges.
    L1,
    /// + refined per-channel weight ranges.
    L2,
    /// + activation ranges fitted to the distribution.
    L3,
    /// + sensitivity analysis promoting the noisiest layers to 16 bits.
    L4,
    /// + a stricter threshold and an end-to-end check (the default).
    #[default]
    L5,
}

impl QuantLevel {
    /// Parses `L1` … `L5` (case-insensitive).
    pub fn parse(s: &str) -> Result<QuantLevel> {
        Ok(match s.trim().to_ascii_uppercase().as_str() {
            "L1" => QuantLevel::L1,
            "L2" => QuantLevel::L2,
            "L3" => QuantLevel::L3,
            "L4" => QuantLevel::L4,
            "L5" => QuantLevel::L5,
            _ => {
                return Err(QuantError::Usage(format!(
                    "--quant_level must be L1, L2, L3, L4 or L5, got '{s}'"
                )))
            }
        })
    }

    /// The spelling users type.
    pub fn as_str(self) -> &'static str {
        match self {
            QuantLevel::L1 => "L1",
            QuantLevel::L2 => "L2",
            QuantLevel::L3 => "L3",
            QuantLevel::L4 => "L4",
            QuantLevel::L5 => "L5",
        }
    }
}

/// Options of [`plan`].
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// The level.
    pub level: QuantLevel,
    /// Range method of the UINT8 copies at L3 and above (the SiMa-style choice); `None`
    /// means MSE.
    pub activation_method: Option<RangeMethod>,
    /// Override of the level's noise threshold.
    pub noise_threshold: Option<f64>,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            level: QuantLevel::L5,
            activation_method: None,
            noise_threshold: None,
        }
    }
}

/// Why a layer has its precision.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerChoice {
    /// Float node name.
    pub node: String,
    /// Operator name.
    pub op: &'static str,
    /// Chosen precision.
    pub bits: LayerBits,
    /// Measured noise-to-signal ratio of the layer's 8-bit output (L4, L5).
    pub noise: Option<f64>,
    /// Why: the rule that decided.
    pub reason: String,
}

/// A plan and its explanation.
#[derive(Debug, Clone)]
pub struct Plan {
    /// What the lowering needs.
    pub lower: LowerPlan,
    /// One entry per weight layer, in graph order.
    pub layers: Vec<LayerChoice>,
}

impl Plan {
    /// Number of layers in 16-bit mode.
    pub fn int16_count(&self) -> usize {
        self.layers
            .iter()
            .filter(|l| l.bits == LayerBits::Int16)
            .count()
    }

    /// Moves `node` to 16 bits with `reason` (no-op if it is already).
    pub fn promote(&mut self, node: &str, reason: &str) {
        if let Some(l) = self.layers.iter_mut().find(|l| l.node == node) {
            if l.bits == LayerBits::Int8 {
                l.bits = LayerBits::Int16;
                l.reason = reason.to_string();
                self.lower.int16_layers.insert(node.to_string());
            }
        }
    }
}

/// Builds the plan of `level` for `float` from `stats`; `samples` (a few preprocessed
/// calibration inputs) feed the sensitivity analysis of L4 and L5.
pub fn plan(
    float: &Graph,
    stats: &CalibrationStats,
    config: &InputConfig,
    samples: &[Vec<Value>],
    options: &PlanOptions,
) -> Result<Plan> {
    let level = options.level;
    let mut lower = LowerPlan::default();
    for a in stats.activations() {
        if let Some(r) = a.min_max() {
            lower.ranges.insert(a.tensor(), r);
            if let Some((lo, hi)) = a.mean_min_max() {
                let largest = f64::from(r.0.abs().max(r.1.abs()));
                let h = int16_headroom(largest, lo.abs().max(hi.abs()), a.samples(), a.shape());
                lower.headroom.insert(a.tensor(), h);
            }
        }
        if level >= QuantLevel::L3 {
            let method = options.activation_method.unwrap_or(RangeMethod::Mse);
            if let Ok(r) = a.range(method, QuantTarget::UINT8) {
                lower.uint8_ranges.insert(a.tensor(), (r.min, r.max));
            }
        }
    }
    if level >= QuantLevel::L2 {
        for w in stats.weights() {
            let ranges = w.channel_ranges(RangeMethod::Mse, QuantTarget::INT8)?;
            lower
                .weight_clip
                .insert(w.tensor(), ranges.iter().map(|r| r.abs_max()).collect());
        }
    }

    let conv = &config.conv;
    let forced: HashSet<&str> = conv.tensor_arrays.iter().map(String::as_str).collect();
    let mut layers = Vec::new();
    for node in float.nodes.iter().filter(|n| weight_axis(&n.op).is_some()) {
        let first_input = float.tensor(node.inputs[0]).name.as_str();
        let is_dw = matches!(node.op, Op::DepthwiseConv2d(_));
        let is_conv = matches!(node.op, Op::Conv2d(_));
        let rule = if forced.contains(first_input) {
            Some((LayerBits::Int16, "[CONV_CONFIG] tensor_arrays"))
        } else {
            match conv.input_format {
                Some(ConvInputFormat::AllInt16) => {
                    Some((LayerBits::Int16, "[CONV_CONFIG] ALL_INT16"))
                }
                Some(ConvInputFormat::AllUint8) => {
                    Some((LayerBits::Int8, "[CONV_CONFIG] ALL_UINT8"))
                }
                Some(ConvInputFormat::Conv2dInt16) if is_conv => {
                    Some((LayerBits::Int16, "[CONV_CONFIG] CONV2D_INT16"))
                }
                Some(ConvInputFormat::DepthwiseInt16) if is_dw => {
                    Some((LayerBits::Int16, "[CONV_CONFIG] DEPTHWISE_INT16"))
                }
                _ => None,
            }
        };
        let field = receptive_field(float, node);
        let (bits, reason) = match rule {
            Some((b, why)) => (b, why.to_string()),
            None if field > MAX_INT8_RECEPTIVE_FIELD => (
                LayerBits::Int16,
                format!("receptive field {field} too large for an INT32 accumulator"),
            ),
            None => (LayerBits::Int8, format!("{} default", level.as_str())),
        };
        if bits == LayerBits::Int16 {
            lower.int16_layers.insert(node.name.clone());
        }
        layers.push(LayerChoice {
            node: node.name.clone(),
            op: node.op.name(),
            bits,
            noise: None,
            reason,
        });
    }
    let mut plan = Plan { lower, layers };

    let overridden = matches!(
        conv.input_format,
        Some(ConvInputFormat::AllInt16 | ConvInputFormat::AllUint8)
    );
    if level >= QuantLevel::L4 && !overridden && !samples.is_empty() {
        let threshold = options
            .noise_threshold
            .unwrap_or(if level == QuantLevel::L4 {
                L4_NOISE
            } else {
                L5_NOISE
            });
        // A layer whose output is a model output (through operators that only reshape or
        // map each value) runs in 16 bits: nothing after it averages its error away, and its
        // input's largest values, which a UINT8 copy fitted to the calibration images clips
        // first, are the ones that decide a classifier's answer. They are small layers.
        let outputs = output_layers(float);
        let by_ini: HashSet<String> = plan
            .layers
            .iter()
            .filter(|l| l.reason.starts_with("[CONV_CONFIG]"))
            .map(|l| l.node.clone())
            .collect();
        for node in outputs.iter().filter(|n| !by_ini.contains(*n)) {
            plan.promote(node, "produces a model output");
        }
        let noise = layer_noise(float, &plan.lower, samples)?;
        for l in &mut plan.layers {
            l.noise = noise.get(&l.node).copied();
        }
        let decided_by_ini: HashSet<String> = plan
            .layers
            .iter()
            .filter(|l| l.reason.starts_with("[CONV_CONFIG]"))
            .map(|l| l.node.clone())
            .collect();
        let noisy: Vec<(String, f64)> = plan
            .layers
            .iter()
            .filter(|l| l.bits == LayerBits::Int8 && !decided_by_ini.contains(&l.node))
            .filter_map(|l| {
                l.noise
                    .filter(|&n| n > threshold)
                    .map(|n| (l.node.clone(), n))
            })
            .collect();
        for (node, n) in noisy {
            plan.promote(
                &node,
                &format!(
                    "8-bit noise {:.1} dB below the {} threshold {:.1} dB",
                    -10.0 * n.log10(),
                    level.as_str(),
                    -10.0 * threshold.log10()
                ),
            );
        }
    }
    Ok(plan)
}

/// The weight layers whose output reaches a graph output through operators that only map
/// each value or move values (activations, softmax, an operation with a constant, reshapes,
/// transposes): the model's last layers.
pub fn output_layers(g: &Graph) -> HashSet<String> {
    let consumers = g.consumers();
    let is_const = |t: &TensorId| g.tensor(*t).data.is_some();
    let passes = |n: &Node, t: TensorId| {
        let per_value = matches!(
            n.op,
            Op::Unary(_)
                | Op::Softmax(_)
                | Op::LogSoftmax(_)
                | Op::Binary(_)
                | Op::Reshape(_)
                | Op::Transpose(_)
                | Op::Cast(_)
                | Op::Identity
        );
        per_value && n.outputs.len() == 1 && n.inputs.iter().all(|i| *i == t || is_const(i))
    };
    let mut out = HashSet::new();
    for node in g.nodes.iter().filter(|n| weight_axis(&n.op).is_some()) {
        let mut t = node.outputs[0];
        // Each step moves to a later node, so the walk ends.
        loop {
            if g.outputs.contains(&t) {
                out.insert(node.name.clone());
                break;
            }
            match consumers.get(&t).map(Vec::as_slice) {
                Some([only]) if passes(&g.nodes[only.0], t) => t = g.nodes[only.0].outputs[0],
                _ => break,
            }
        }
    }
    out
}

/// Number of products summed for one output of a layer.
fn receptive_field(g: &Graph, node: &Node) -> usize {
    let w = &g.tensor(node.inputs[1]).shape;
    match &node.op {
        Op::Conv2d(_) | Op::TransposeConv2d(_) => w.iter().skip(1).product(),
        Op::DepthwiseConv2d(_) => w[1] * w[2],
        Op::FullyConnected(_) => w.get(1).copied().unwrap_or(1),
        _ => 0,
    }
}

/// Rounds `x` to the grid of `[lo, hi]` with `levels` steps (asymmetric, containing 0).
fn fake_quant_asym(x: &[f32], lo: f32, hi: f32) -> Vec<f32> {
    let a = crate::lower::Affine::uint8(lo, hi);
    x.iter()
        .map(|&v| a.scale * (a.quantize(v) - a.zero_point) as f32)
        .collect()
}

/// The noise-to-signal ratio `Σ(y₈ − y)² / Σ y²` of every weight layer run alone in 8-bit
/// mode (UINT8 input on its planned range, INT8 weights on their planned clipping) against
/// its float output, over `samples`.
pub fn layer_noise(
    float: &Graph,
    lower: &LowerPlan,
    samples: &[Vec<Value>],
) -> Result<HashMap<String, f64>> {
    let layer_nodes: Vec<&Node> = float
        .nodes
        .iter()
        .filter(|n| weight_axis(&n.op).is_some())
        .collect();
    let wanted: HashSet<TensorId> = layer_nodes
        .iter()
        .flat_map(|n| [n.inputs[0], n.outputs[0]])
        .collect();
    // Weights quantized once.
    let mut weights: HashMap<TensorId, TensorData> = HashMap::new();
    for n in &layer_nodes {
        let Some(axis) = weight_axis(&n.op) else {
            continue;
        };
        let t = float.tensor(n.inputs[1]);
        let Some(w) = t.data.as_ref().and_then(|d| d.as_f32()) else {
            continue;
        };
        let clip = match lower.weight_clip.get(&n.inputs[1]) {
            Some(c) if c.len() == t.shape[axis] => c.clone(),
            _ => crate::lower::channel_abs_max(w, &t.shape, axis),
        };
        let q = crate::lower::quantize_weights(w, &t.shape, axis, &clip, 127.0);
        let inner: usize = t.shape[axis + 1..].iter().product();
        let channels = t.shape[axis];
        let deq: Vec<f32> = q
            .values
            .iter()
            .enumerate()
            .map(|(i, &v)| v as f32 * q.scales[(i / inner) % channels])
            .collect();
        weights.insert(n.inputs[1], TensorData::from(deq));
    }
    let mut session = Session::new(float.clone(), SessionOptions::default())?;
    let mut acc: HashMap<String, (f64, f64)> = HashMap::new();
    let eval = ReferenceEvaluator::new();
    for sample in samples {
        for (i, v) in sample.iter().enumerate() {
            session.set_input(i, v.clone())?;
        }
        let mut seen: HashMap<TensorId, Value> = HashMap::new();
        for &i in &float.inputs {
            if wanted.contains(&i) {
                if let Some(pos) = float.inputs.iter().position(|&x| x == i) {
                    if let Some(v) = sample.get(pos) {
                        seen.insert(i, v.clone());
                    }
                }
            }
        }
        session.invoke_with_observer(&mut |_, t, v| {
            if wanted.contains(&t) {
                seen.insert(t, v.to_value());
            }
        })?;
        for n in &layer_nodes {
            let (Some(x), Some(y)) = (seen.get(&n.inputs[0]), seen.get(&n.outputs[0])) else {
                continue;
            };
            let (Some(xs), Some(ys)) = (x.as_f32(), y.as_f32()) else {
                continue;
            };
            let Some(w) = weights.get(&n.inputs[1]) else {
                continue;
            };
            let (lo, hi) = match (
                lower.uint8_ranges.get(&n.inputs[0]),
                lower.ranges.get(&n.inputs[0]),
            ) {
                (Some(&r), _) | (None, Some(&r)) => r,
                _ => continue,
            };
            let xq = TensorData::from(fake_quant_asym(xs, lo, hi));
            let wt = float.tensor(n.inputs[1]);
            let mut ins: Vec<(&TensorData, &[usize])> = vec![(&xq, &x.shape), (w, &wt.shape)];
            let bias = n.inputs.get(2).map(|&b| float.tensor(b));
            if let Some(b) = bias.and_then(|b| b.data.as_ref().map(|d| (d, b.shape.as_slice()))) {
                ins.push(b);
            }
            let out = eval
                .eval(n, &ins)
                .map_err(|e| QuantError::Usage(format!("node '{}': {e}", n.name)))?;
            let Some(y8) = out.first().and_then(|d| d.as_f32()) else {
                continue;
            };
            let e = acc.entry(n.name.clone()).or_insert((0.0, 0.0));
            for (&a, &b) in y8.iter().zip(ys) {
                let d = (a - b) as f64;
                e.0 += d * d;
                e.1 += (b as f64) * (b as f64);
            }
        }
    }
    Ok(acc
        .into_iter()
        .map(|(k, (noise, signal))| (k, if signal > 0.0 { noise / signal } else { 0.0 }))
        .collect())
}
