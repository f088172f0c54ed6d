//! Multi-segment networks: the Rust counterpart of the seeds' `calibrator_custom.SIM_Calibrator`.
//!
//! A network that ipukit cannot convert in one piece (an unsupported layer in the middle, a
//! cascade with custom code between stages) is converted as several float models. The user
//! writes [`Forward::forward`]: run segment 0, do whatever custom computation, feed segment 1,
//! and so on. [`SimCalibrator::convert`] runs that forward over the calibration samples with
//! the float segments, records what each segment received, and calibrates every segment on
//! its own inputs, writing one fixed model per segment.
//!
//! Memory: every input each segment receives is kept until the end of the pass (calibration
//! sets of tens to hundreds of samples), unlike [`crate::calibrate`], whose memory does not
//! grow with the number of samples. The L5 check loop needs the board-side (`norm=False`)
//! inputs of every segment, which a float forward does not produce; segments use the level's
//! sensitivity thresholds without it.

use crate::{write_fixed, CalibratorError, Result};
use ipukit_config::InputConfig;
use ipukit_ir::Graph;
use ipukit_quant::calibrate::{plan, Plan, PlanOptions, QuantLevel};
use ipukit_quant::lower::lower;
use ipukit_quant::stats::{collect, CollectOptions};
use ipukit_runtime::{Session, SessionOptions, Value};
use ipukit_simfmt::{read_sim_file, SimMetadata, Stage};
use std::convert::Infallible;
use std::path::{Path, PathBuf};

/// One float segment.
pub struct Segment {
    path: PathBuf,
    graph: Graph,
    meta: SimMetadata,
    config: InputConfig,
}

impl Segment {
    /// Opens a float model with its stored input config.
    pub fn open(path: &Path) -> Result<Segment> {
        let (graph, meta) = read_sim_file(path)?;
        if meta.stage != Stage::Float {
            return Err(CalibratorError::Usage(format!(
                "{} is a {} model; segments are float models (*_float.sim)",
                path.display(),
                meta.stage.as_str()
            )));
        }
        let json = meta.input_config.as_deref().ok_or_else(|| {
            CalibratorError::Usage(format!(
                "{} carries no input config; convert it with ipu-convert",
                path.display()
            ))
        })?;
        let config = InputConfig::from_json(json)?;
        Ok(Segment {
            path: path.to_path_buf(),
            graph,
            meta,
            config,
        })
    }

    /// The float graph.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }
}

/// Runs float segments for [`Forward::forward`] and records their inputs.
pub struct SegmentRunner<'a> {
    segments: &'a [Segment],
    sessions: Vec<Session>,
    recorded: Vec<Vec<Vec<Value>>>,
}

impl SegmentRunner<'_> {
    /// Runs segment `index` on `inputs` (one value per model input, `norm=True` data) and
    /// returns its outputs.
    pub fn run(&mut self, index: usize, inputs: Vec<Value>) -> Result<Vec<Value>> {
        let n = self.segments.len();
        let session = self.sessions.get_mut(index).ok_or_else(|| {
            CalibratorError::Usage(format!("forward ran segment {index}, but there are {n}"))
        })?;
        let outputs = session.run(inputs.clone())?;
        self.recorded[index].push(inputs);
        Ok(outputs)
    }

    /// Number of segments.
    pub fn len(&self) -> usize {
        self.segments.len()
    }

    /// True when there is no segment.
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }
}

/// The user's network over the segments.
pub trait Forward {
    /// Runs the whole network on one calibration sample, calling `net.run(i, …)` for
    /// segment `i` and doing the custom work in between.
    fn forward(&mut self, net: &mut SegmentRunner<'_>, sample: &[Value]) -> Result<()>;
}

/// What was written for one segment.
#[derive(Debug)]
pub struct SegmentCalibration {
    /// The fixed model.
    pub output: PathBuf,
    /// Per-layer precision and reasons.
    pub plan: Plan,
    /// Inputs the segment was calibrated on.
    pub samples: u64,
}

/// Calibrates several float segments together.
pub struct SimCalibrator {
    segments: Vec<Segment>,
}

impl SimCalibrator {
    /// Opens the float segments, in the order `forward` numbers them.
    pub fn open(paths: &[PathBuf]) -> Result<SimCalibrator> {
        let segments = paths
            .iter()
            .map(|p| Segment::open(p))
            .collect::<Result<_>>()?;
        Ok(SimCalibrator { segments })
    }

    /// The segments.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Runs `net` on every sample, then calibrates each segment at `level` on what it
    /// received and writes it to the matching `outputs` path.
    pub fn convert<F: Forward>(
        &self,
        net: &mut F,
        samples: impl IntoIterator<Item = Vec<Value>>,
        outputs: &[PathBuf],
        level: QuantLevel,
    ) -> Result<Vec<SegmentCalibration>> {
        if outputs.len() != self.segments.len() {
            return Err(CalibratorError::Usage(format!(
                "{} output paths for {} segments",
                outputs.len(),
                self.segments.len()
            )));
        }
        let sessions = self
            .segments
            .iter()
            .map(|s| Session::new(s.graph.clone(), SessionOptions::default()))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let mut runner = SegmentRunner {
            segments: &self.segments,
            sessions,
            recorded: vec![Vec::new(); self.segments.len()],
        };
        for sample in samples {
            net.forward(&mut runner, &sample)?;
        }
        let mut done = Vec::with_capacity(self.segments.len());
        for ((seg, inputs), out) in self.segments.iter().zip(runner.recorded).zip(outputs) {
            if inputs.is_empty() {
                return Err(CalibratorError::Usage(format!(
                    "forward never ran segment {}",
                    seg.path.display()
                )));
            }
            let stats = collect(
                &seg.graph,
                inputs.iter().cloned().map(Ok::<_, Infallible>),
                &CollectOptions::default(),
                &|_| {},
            )?;
            let check = &inputs[..inputs.len().min(4)];
            let p = plan(
                &seg.graph,
                &stats,
                &seg.config,
                check,
                &PlanOptions {
                    level,
                    ..PlanOptions::default()
                },
            )?;
            let fixed = lower(&seg.graph, &seg.config, &p.lower)?;
            write_fixed(out, &fixed, &seg.meta, &seg.config, level)?;
            done.push(SegmentCalibration {
                output: out.clone(),
                plan: p,
                samples: stats.samples(),
            });
        }
        Ok(done)
    }
}
