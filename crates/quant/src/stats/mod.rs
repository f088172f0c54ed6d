//! Calibration statistics: what the float model's tensors hold on the calibration images.
//!
//! * Every float **activation** (graph inputs and node outputs; not constants) gets an
//!   [`ActivationStats`]: element count, non-finite count, per-tensor min/max, min/max per
//!   channel along the last axis (NHWC channels), the average over samples of each sample's
//!   min and max (for [`crate::range::RangeMethod::MovingAverage`]), and a [`Histogram`] of the
//!   values.
//! * Every constant **weight** (input 1 of Conv2d, DepthwiseConv2d, TransposeConv2d and
//!   FullyConnected) gets a [`WeightStats`]: min, max and a histogram per output channel
//!   (axis 0 of OHWI and `[N, K]` weights, axis 3 of depthwise `1HWC` weights).
//!
//! [`collect`] runs the float graph on calibration samples, in parallel, and observes every
//! intermediate tensor; [`collect_files`] does the same from `-i` inputs and `-n`
//! preprocessing methods. Every statistic is an integer count, a min or a max, or an
//! exact fixed-point sum, and the histograms merge exactly (see [`histogram`]), so the result
//! is the same for any number of workers and any order of the samples.

mod collect;
pub mod histogram;

pub use collect::{
    collect, collect_files, input_contexts, CollectOptions, OnError, Progress, SampleFailure,
};
pub use histogram::Histogram;

use crate::error::{QuantError, Result};
use ipukit_ir::{DType, Graph, Op, TensorId};

/// Bits after the binary point of the exact sums behind the moving averages.
const FIXED_FRAC_BITS: i32 = 40;
/// Magnitude beyond which a sample's min/max is clamped before summing (2^60).
const FIXED_CLAMP: f64 = 1_152_921_504_606_846_976.0;

/// `x` in fixed point with [`FIXED_FRAC_BITS`] fractional bits (rounded, clamped to ±2^60).
/// Each term is converted on its own, so the integer sum of terms is order-independent.
fn to_fixed(x: f32) -> i128 {
    let v = f64::from(x).clamp(-FIXED_CLAMP, FIXED_CLAMP) * 2f64.powi(FIXED_FRAC_BITS);
    v.round() as i128
}

fn from_fixed(sum: i128, n: u64) -> f64 {
    sum as f64 / 2f64.powi(FIXED_FRAC_BITS) / n as f64
}

/// Statistics of one float activation tensor over the calibration samples.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivationStats {
    tensor: TensorId,
    name: String,
    shape: Vec<usize>,
    count: u64,
    nonfinite: u64,
    min: f32,
    max: f32,
    channel_min: Vec<f32>,
    channel_max: Vec<f32>,
    histogram: Histogram,
    avg_samples: u64,
    sum_min: i128,
    sum_max: i128,
}

impl ActivationStats {
    /// Empty statistics for a tensor of `shape` with `bins_per_side` histogram bins per side.
    pub fn new(
        tensor: TensorId,
        name: &str,
        shape: &[usize],
        bins_per_side: u32,
    ) -> Result<ActivationStats> {
        let channels = shape.last().copied().unwrap_or(1).max(1);
        Ok(ActivationStats {
            tensor,
            name: name.to_string(),
            shape: shape.to_vec(),
            count: 0,
            nonfinite: 0,
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
            channel_min: vec![f32::INFINITY; channels],
            channel_max: vec![f32::NEG_INFINITY; channels],
            histogram: Histogram::new(bins_per_side)?,
            avg_samples: 0,
            sum_min: 0,
            sum_max: 0,
        })
    }

    /// The tensor in the graph the statistics were collected on.
    pub fn tensor(&self) -> TensorId {
        self.tensor
    }

    /// Tensor name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Tensor shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Finite elements observed (over all samples).
    pub fn count(&self) -> u64 {
        self.count
    }

    /// NaN and ±∞ elements observed; they are left out of every other statistic.
    pub fn nonfinite(&self) -> u64 {
        self.nonfinite
    }

    /// Smallest and largest finite value, `None` before any finite value.
    pub fn min_max(&self) -> Option<(f32, f32)> {
        (self.count > 0).then_some((self.min, self.max))
    }

    /// Per-channel minimum along the last axis (`+∞` for a channel never seen).
    pub fn channel_min(&self) -> &[f32] {
        &self.channel_min
    }

    /// Per-channel maximum along the last axis (`-∞` for a channel never seen).
    pub fn channel_max(&self) -> &[f32] {
        &self.channel_max
    }

    /// The histogram of every finite value.
    pub fn histogram(&self) -> &Histogram {
        &self.histogram
    }

    /// Samples (invocations) that contributed to the moving averages.
    pub fn samples(&self) -> u64 {
        self.avg_samples
    }

    /// Mean over samples of each sample's minimum and maximum (the cumulative moving average
    /// of the per-sample range), `None` before any sample.
    pub fn mean_min_max(&self) -> Option<(f64, f64)> {
        (self.avg_samples > 0).then(|| {
            (
                from_fixed(self.sum_min, self.avg_samples),
                from_fixed(self.sum_max, self.avg_samples),
            )
        })
    }

    /// Adds one sample of the tensor (its elements in row-major order).
    pub fn observe(&mut self, data: &[f32]) {
        let c = self.channel_min.len();
        let c = if data.len().is_multiple_of(c) { c } else { 1 };
        // Exponent bits all ones: ±∞ or NaN (an integer test that vectorises).
        let nonfinite = data.iter().fold(0usize, |n, x| {
            n + usize::from(x.to_bits() & 0x7f80_0000 == 0x7f80_0000)
        });
        let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
        if c == 1 {
            if nonfinite == 0 {
                for &x in data {
                    lo = lo.min(x);
                    hi = hi.max(x);
                }
            } else {
                for &x in data.iter().filter(|x| x.is_finite()) {
                    lo = lo.min(x);
                    hi = hi.max(x);
                }
            }
            if self.channel_min.len() == 1 {
                self.channel_min[0] = self.channel_min[0].min(lo);
                self.channel_max[0] = self.channel_max[0].max(hi);
            }
        } else {
            let mut cmin = vec![f32::INFINITY; c];
            let mut cmax = vec![f32::NEG_INFINITY; c];
            if nonfinite == 0 {
                for chunk in data.chunks_exact(c) {
                    for ((m, n), &x) in cmin.iter_mut().zip(cmax.iter_mut()).zip(chunk) {
                        *m = m.min(x);
                        *n = n.max(x);
                    }
                }
            } else {
                for chunk in data.chunks_exact(c) {
                    for ((m, n), &x) in cmin.iter_mut().zip(cmax.iter_mut()).zip(chunk) {
                        if x.is_finite() {
                            *m = m.min(x);
                            *n = n.max(x);
                        }
                    }
                }
            }
            for (k, (&m, &n)) in cmin.iter().zip(&cmax).enumerate() {
                lo = lo.min(m);
                hi = hi.max(n);
                self.channel_min[k] = self.channel_min[k].min(m);
                self.channel_max[k] = self.channel_max[k].max(n);
            }
        }
        // `min`/`max` may pick either of -0.0 and +0.0 depending on the order of the
        // elements; make zero positive so the results are bit-identical for any order.
        for v in self
            .channel_min
            .iter_mut()
            .chain(self.channel_max.iter_mut())
        {
            *v += 0.0;
        }
        let (lo, hi) = (lo + 0.0, hi + 0.0);
        let finite = data.len() - nonfinite;
        self.nonfinite += nonfinite as u64;
        if finite == 0 {
            return;
        }
        self.count += finite as u64;
        self.min = self.min.min(lo);
        self.max = self.max.max(hi);
        self.avg_samples += 1;
        self.sum_min += to_fixed(lo);
        self.sum_max += to_fixed(hi);
        self.histogram
            .grow_to(Histogram::exp_for(lo.abs().max(hi.abs())));
        if nonfinite == 0 {
            self.histogram.add_finite(data);
        } else {
            self.histogram.add(data);
        }
    }

    /// Adds the statistics of the same tensor gathered elsewhere (another worker).
    pub fn merge(&mut self, other: &ActivationStats) -> Result<()> {
        if other.tensor != self.tensor || other.channel_min.len() != self.channel_min.len() {
            return Err(QuantError::Usage(format!(
                "cannot merge statistics of '{}' and '{}'",
                self.name, other.name
            )));
        }
        self.histogram.merge(&other.histogram)?;
        self.count += other.count;
        self.nonfinite += other.nonfinite;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        for (a, &b) in self.channel_min.iter_mut().zip(&other.channel_min) {
            *a = a.min(b);
        }
        for (a, &b) in self.channel_max.iter_mut().zip(&other.channel_max) {
            *a = a.max(b);
        }
        self.avg_samples += other.avg_samples;
        self.sum_min += other.sum_min;
        self.sum_max += other.sum_max;
        Ok(())
    }
}

/// Statistics of one output channel of a weight tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelStats {
    /// Smallest finite weight of the channel (`+∞` if it has none).
    pub min: f32,
    /// Largest finite weight of the channel (`-∞` if it has none).
    pub max: f32,
    /// Histogram of the channel's finite weights.
    pub histogram: Histogram,
}

/// Statistics of a constant weight tensor, per output channel.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightStats {
    tensor: TensorId,
    name: String,
    shape: Vec<usize>,
    axis: usize,
    op: &'static str,
    nonfinite: u64,
    channels: Vec<ChannelStats>,
}

impl WeightStats {
    /// The weight tensor in the graph.
    pub fn tensor(&self) -> TensorId {
        self.tensor
    }

    /// Tensor name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Tensor shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The output-channel axis (0 for OHWI and `[N, K]`, 3 for depthwise `1HWC`).
    pub fn axis(&self) -> usize {
        self.axis
    }

    /// The operator the weight feeds (`Conv2d`, `DepthwiseConv2d`, …).
    pub fn op(&self) -> &'static str {
        self.op
    }

    /// NaN and ±∞ weights (left out of the statistics).
    pub fn nonfinite(&self) -> u64 {
        self.nonfinite
    }

    /// Per-output-channel statistics.
    pub fn channels(&self) -> &[ChannelStats] {
        &self.channels
    }

    /// Smallest and largest finite weight over all channels.
    pub fn min_max(&self) -> Option<(f32, f32)> {
        let lo = self
            .channels
            .iter()
            .map(|c| c.min)
            .fold(f32::INFINITY, f32::min);
        let hi = self
            .channels
            .iter()
            .map(|c| c.max)
            .fold(f32::NEG_INFINITY, f32::max);
        (lo <= hi).then_some((lo, hi))
    }

    /// The histogram of the whole tensor (the channels' histograms merged, exactly).
    pub fn tensor_histogram(&self) -> Result<Histogram> {
        let bins = self
            .channels
            .first()
            .map_or(2, |c| c.histogram.bins_per_side() as u32);
        let mut h = Histogram::new(bins)?;
        for c in &self.channels {
            h.merge(&c.histogram)?;
        }
        Ok(h)
    }
}

/// The weight input of a layer and its output-channel axis, if `op` has one.
pub fn weight_axis(op: &Op) -> Option<usize> {
    match op {
        Op::Conv2d(_) | Op::TransposeConv2d(_) | Op::FullyConnected(_) => Some(0),
        Op::DepthwiseConv2d(_) => Some(3),
        _ => None,
    }
}

/// Per-output-channel statistics of every constant float weight of the graph's convolutions
/// and fully-connected layers, in tensor order. A weight shared by several layers is listed
/// once (with the first layer's axis).
pub fn weight_stats(graph: &Graph, bins_per_side: u32) -> Result<Vec<WeightStats>> {
    let mut seen = vec![false; graph.tensors.len()];
    let mut out = Vec::new();
    for node in &graph.nodes {
        let Some(axis) = weight_axis(&node.op) else {
            continue;
        };
        let Some(&w) = node.inputs.get(1) else {
            continue;
        };
        let t = graph.tensor(w);
        let Some(data) = t.data.as_ref().and_then(|d| d.as_f32()) else {
            continue;
        };
        if seen[w.0] || axis >= t.shape.len() {
            continue;
        }
        seen[w.0] = true;
        let n = t.shape[axis];
        let inner: usize = t.shape[axis + 1..].iter().product();
        let mut channels = Vec::with_capacity(n);
        let mut nonfinite = 0u64;
        let mut buf = Vec::new();
        for c in 0..n {
            // Gather channel c: for every outer index, the `inner` elements at c.
            buf.clear();
            if inner > 0 {
                for block in data.chunks_exact(n * inner) {
                    buf.extend_from_slice(&block[c * inner..(c + 1) * inner]);
                }
            }
            let mut h = Histogram::new(bins_per_side)?;
            h.add(&buf);
            let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
            for &x in &buf {
                if x.is_finite() {
                    lo = lo.min(x);
                    hi = hi.max(x);
                } else {
                    nonfinite += 1;
                }
            }
            channels.push(ChannelStats {
                min: lo + 0.0,
                max: hi + 0.0,
                histogram: h,
            });
        }
        out.push(WeightStats {
            tensor: w,
            name: t.name.clone(),
            shape: t.shape.clone(),
            axis,
            op: node.op.name(),
            nonfinite,
            channels,
        });
    }
    out.sort_by_key(|w| w.tensor);
    Ok(out)
}

/// The float activations statistics are collected for: graph inputs and node outputs of type
/// `FLOAT32` (constants excluded), in tensor order.
pub fn activation_tensors(graph: &Graph) -> Vec<TensorId> {
    let mut is_act = vec![false; graph.tensors.len()];
    for &t in &graph.inputs {
        is_act[t.0] = true;
    }
    for n in &graph.nodes {
        for &t in &n.outputs {
            is_act[t.0] = true;
        }
    }
    (0..graph.tensors.len())
        .filter(|&i| {
            let t = &graph.tensors[i];
            is_act[i] && t.dtype == DType::F32 && t.data.is_none()
        })
        .map(TensorId)
        .collect()
}

/// Everything calibration learned about a graph.
#[derive(Debug, Clone, PartialEq)]
pub struct CalibrationStats {
    samples: u64,
    activations: Vec<ActivationStats>,
    slot: Vec<Option<usize>>,
    weights: Vec<WeightStats>,
    failures: Vec<SampleFailure>,
}

impl CalibrationStats {
    /// Empty activation statistics for every float activation of `graph`, and the weight
    /// statistics of its layers.
    pub fn new(graph: &Graph, bins_per_side: u32, weight_bins_per_side: u32) -> Result<Self> {
        let mut s = Self::activations_only(graph, bins_per_side)?;
        s.weights = weight_stats(graph, weight_bins_per_side)?;
        Ok(s)
    }

    /// Like [`CalibrationStats::new`] without weight statistics (for workers).
    pub(crate) fn activations_only(graph: &Graph, bins_per_side: u32) -> Result<Self> {
        let ids = activation_tensors(graph);
        let mut slot = vec![None; graph.tensors.len()];
        let mut activations = Vec::with_capacity(ids.len());
        for (k, &id) in ids.iter().enumerate() {
            let t = graph.tensor(id);
            slot[id.0] = Some(k);
            activations.push(ActivationStats::new(id, &t.name, &t.shape, bins_per_side)?);
        }
        Ok(CalibrationStats {
            samples: 0,
            activations,
            slot,
            weights: Vec::new(),
            failures: Vec::new(),
        })
    }

    /// Calibration samples run.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// Statistics of every float activation, in tensor order.
    pub fn activations(&self) -> &[ActivationStats] {
        &self.activations
    }

    /// Statistics of one activation.
    pub fn activation(&self, id: TensorId) -> Option<&ActivationStats> {
        self.slot
            .get(id.0)
            .copied()
            .flatten()
            .map(|k| &self.activations[k])
    }

    /// Statistics of the activation named `name`.
    pub fn activation_by_name(&self, name: &str) -> Option<&ActivationStats> {
        self.activations.iter().find(|a| a.name == name)
    }

    /// Mutable statistics of one activation.
    pub(crate) fn activation_mut(&mut self, id: TensorId) -> Option<&mut ActivationStats> {
        match self.slot.get(id.0).copied().flatten() {
            Some(k) => self.activations.get_mut(k),
            None => None,
        }
    }

    /// Statistics of every weight, in tensor order.
    pub fn weights(&self) -> &[WeightStats] {
        &self.weights
    }

    /// Statistics of one weight tensor.
    pub fn weight(&self, id: TensorId) -> Option<&WeightStats> {
        self.weights
            .binary_search_by_key(&id, |w| w.tensor)
            .ok()
            .map(|k| &self.weights[k])
    }

    /// Samples that failed and were skipped ([`OnError::Skip`]), by sample index.
    pub fn failures(&self) -> &[SampleFailure] {
        &self.failures
    }

    /// Adds the activation statistics of `other` (same graph) into these.
    pub fn merge(&mut self, other: &CalibrationStats) -> Result<()> {
        if other.activations.len() != self.activations.len() {
            return Err(QuantError::Usage(
                "cannot merge statistics of different graphs".into(),
            ));
        }
        for (a, b) in self.activations.iter_mut().zip(&other.activations) {
            a.merge(b)?;
        }
        self.samples += other.samples;
        self.failures.extend(other.failures.iter().cloned());
        self.failures.sort_by_key(|f| f.index);
        Ok(())
    }

    /// Bytes of heap the statistics hold (histogram counts, per-channel vectors, names):
    /// `O(activations × bins + Σ channels)` for activations plus `O(weight channels × weight
    /// bins)` for weights. It does not depend on the number of samples.
    pub fn heap_bytes(&self) -> usize {
        let act: usize = self
            .activations
            .iter()
            .map(|a| {
                a.histogram.counts().len() * 8
                    + (a.channel_min.capacity() + a.channel_max.capacity()) * 4
                    + a.name.capacity()
                    + a.shape.capacity() * 8
            })
            .sum();
        let w: usize = self
            .weights
            .iter()
            .map(|w| {
                w.channels
                    .iter()
                    .map(|c| c.histogram.counts().len() * 8 + std::mem::size_of::<ChannelStats>())
                    .sum::<usize>()
                    + w.name.capacity()
            })
            .sum();
        act + w
            + self.slot.capacity() * std::mem::size_of::<Option<usize>>()
            + self
                .failures
                .iter()
                .map(|f| f.input.len() + f.error.len())
                .sum::<usize>()
    }

    /// A 64-bit FNV-1a digest of every statistic (bit patterns of the floats included):
    /// equal digests mean identical statistics, e.g. across `num_process` values.
    pub fn digest(&self) -> u64 {
        let mut h = Fnv(0xcbf2_9ce4_8422_2325);
        h.u64(self.samples);
        for a in &self.activations {
            h.bytes(a.name.as_bytes());
            h.u64(a.count);
            h.u64(a.nonfinite);
            h.f32s(&[a.min, a.max]);
            h.f32s(&a.channel_min);
            h.f32s(&a.channel_max);
            h.hist(&a.histogram);
            h.u64(a.avg_samples);
            h.bytes(&a.sum_min.to_le_bytes());
            h.bytes(&a.sum_max.to_le_bytes());
        }
        for w in &self.weights {
            h.bytes(w.name.as_bytes());
            h.u64(w.nonfinite);
            for c in &w.channels {
                h.f32s(&[c.min, c.max]);
                h.hist(&c.histogram);
            }
        }
        for f in &self.failures {
            h.u64(f.index as u64);
        }
        h.0
    }

    /// Counts one more sample run.
    pub(crate) fn add_sample(&mut self) {
        self.samples += 1;
    }

    pub(crate) fn set_weights(&mut self, weights: Vec<WeightStats>) {
        self.weights = weights;
    }

    pub(crate) fn push_failure(&mut self, f: SampleFailure) {
        self.failures.push(f);
        self.failures.sort_by_key(|f| f.index);
    }
}

/// FNV-1a, 64 bits.
struct Fnv(u64);

impl Fnv {
    fn bytes(&mut self, b: &[u8]) {
        for &x in b {
            self.0 ^= u64::from(x);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }
    fn f32s(&mut self, v: &[f32]) {
        for x in v {
            self.bytes(&x.to_bits().to_le_bytes());
        }
    }
    fn hist(&mut self, h: &Histogram) {
        self.u64(h.exp() as u64);
        for &c in h.counts() {
            self.u64(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipukit_ir::ops::{Conv2d, DepthwiseConv2d, FusedActivation, Padding2d};

    #[test]
    fn observe_tracks_channels_and_nonfinite() {
        let mut s = ActivationStats::new(TensorId(0), "t", &[1, 2, 3], 64).unwrap();
        s.observe(&[1.0, -2.0, 3.0, 4.0, f32::NAN, -6.0]);
        assert_eq!(s.count(), 5);
        assert_eq!(s.nonfinite(), 1);
        assert_eq!(s.min_max(), Some((-6.0, 4.0)));
        assert_eq!(s.channel_min(), &[1.0, -2.0, -6.0]);
        assert_eq!(s.channel_max(), &[4.0, -2.0, 3.0]);
        s.observe(&[0.0, 0.0, 0.0, 0.0, 0.0, 10.0]);
        assert_eq!(s.mean_min_max(), Some((-3.0, 7.0)));
        assert_eq!(s.histogram().total(), 11);
    }

    #[test]
    fn merge_equals_sequential() {
        let a: Vec<f32> = (0..60).map(|i| (i as f32 * 0.3).sin() * 3.0).collect();
        let b: Vec<f32> = (0..60).map(|i| (i as f32 * 0.7).cos() * 50.0).collect();
        let mk = || ActivationStats::new(TensorId(1), "x", &[1, 5, 12], 128).unwrap();
        let mut seq = mk();
        seq.observe(&a);
        seq.observe(&b);
        let (mut x, mut y) = (mk(), mk());
        y.observe(&b);
        x.observe(&a);
        y.merge(&x).unwrap();
        assert_eq!(seq, y);
    }

    #[test]
    fn fixed_sums_are_exact_enough() {
        assert_eq!(to_fixed(1.5), 3 << 39);
        assert_eq!(from_fixed(to_fixed(-0.25) * 4, 4), -0.25);
        assert_eq!(to_fixed(f32::MAX), (FIXED_CLAMP * 2f64.powi(40)) as i128);
    }

    #[test]
    fn weight_stats_per_output_channel() {
        let mut g = Graph::new();
        let x = g.add_input("x", DType::F32, vec![1, 4, 4, 2]);
        // OHWI [3, 1, 1, 2]: channel c = [c, -c - 0.5]
        let w: Vec<f32> = (0..3).flat_map(|c| [c as f32, -(c as f32) - 0.5]).collect();
        let w = g.add_const("w", vec![3, 1, 1, 2], w.into()).unwrap();
        let conv = Conv2d {
            strides: [1, 1],
            dilations: [1, 1],
            padding: Padding2d::ZERO,
            groups: 1,
            activation: FusedActivation::None,
        };
        let y = g
            .add_node("conv", Op::Conv2d(conv), vec![x, w], &["y"])
            .unwrap()[0];
        // depthwise 1HWC [1, 1, 2, 3]: channel c = [10c, -c]
        let dw: Vec<f32> = vec![0.0, 10.0, 20.0, -0.0, -1.0, -2.0];
        let dw = g.add_const("dw", vec![1, 1, 2, 3], dw.into()).unwrap();
        let d = DepthwiseConv2d {
            strides: [1, 1],
            dilations: [1, 1],
            padding: Padding2d::ZERO,
            depth_multiplier: 1,
            activation: FusedActivation::None,
        };
        let z = g
            .add_node("dw", Op::DepthwiseConv2d(d), vec![y, dw], &["z"])
            .unwrap()[0];
        g.outputs.push(z);
        let ws = weight_stats(&g, 16).unwrap();
        assert_eq!(ws.len(), 2);
        let mins: Vec<f32> = ws[0].channels().iter().map(|c| c.min).collect();
        let maxs: Vec<f32> = ws[0].channels().iter().map(|c| c.max).collect();
        assert_eq!(mins, [-0.5, -1.5, -2.5]);
        assert_eq!(maxs, [0.0, 1.0, 2.0]);
        assert_eq!(ws[1].axis(), 3);
        let mins: Vec<f32> = ws[1].channels().iter().map(|c| c.min).collect();
        let maxs: Vec<f32> = ws[1].channels().iter().map(|c| c.max).collect();
        assert_eq!(mins, [0.0, -1.0, -2.0]);
        assert!(mins[0].is_sign_positive());
        assert_eq!(maxs, [0.0, 10.0, 20.0]);
        assert_eq!(ws[1].tensor_histogram().unwrap().total(), 6);
        let acts = activation_tensors(&g);
        let names: Vec<&str> = acts.iter().map(|&t| g.tensor(t).name.as_str()).collect();
        assert_eq!(names, ["x", "y", "z"]);
    }
}
