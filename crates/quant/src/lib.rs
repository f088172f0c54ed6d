//! ipukit quantization: the statistics half of the calibrator.
//!
//! * [`stats`] runs the float model on calibration samples (in parallel, deterministically)
//!   and gathers, for every float activation, min/max per tensor and per channel, counts,
//!   per-sample range averages and a mergeable histogram; and per-output-channel min/max and
//!   histograms of the weights.
//! * [`range`] turns statistics into clipping ranges for a bit width and scheme: MinMax,
//!   moving average, percentile, MSE and entropy (KL).
//! * [`json`] reads and writes quantization-parameter files in the seeds'
//!   `save_quant_param.py` JSON format, with per-entry validation.
//! * [`bench`](mod@bench) measures calibration speed and peak memory.
//!
//! docs/calibration.md describes the methods, their formulas, determinism and memory.
//!
//! ```
//! use ipukit_ir::{DType, Graph, Op, ops::UnaryOp};
//! use ipukit_quant::range::{QuantTarget, RangeMethod};
//! use ipukit_quant::stats::{collect, CollectOptions};
//! use ipukit_runtime::Value;
//!
//! let mut g = Graph::new();
//! let x = g.add_input("x", DType::F32, vec![1, 4]);
//! let y = g.add_node("relu", Op::Unary(UnaryOp::Relu), vec![x], &["y"]).unwrap()[0];
//! g.outputs.push(y);
//! let samples = (0..3).map(|i| Value::new(vec![1, 4], vec![-1.0f32, 0.5, 2.0, i as f32]).map(|v| vec![v]));
//! let stats = collect(&g, samples, &CollectOptions::default(), &|_| {}).unwrap();
//! let y_stats = stats.activation_by_name("y").unwrap();
//! assert_eq!(y_stats.min_max(), Some((0.0, 2.0)));
//! let r = y_stats.range(RangeMethod::MinMax, QuantTarget::INT16).unwrap();
//! assert_eq!((r.min, r.max), (0.0, 2.0));
//! ```

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod bench;
pub mod calibrate;
pub mod error;
pub mod json;
pub mod lower;
pub mod range;
pub mod stats;

pub use error::{QuantError, Result};
