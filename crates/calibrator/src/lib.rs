//! The calibrator: quantizes a float model (`*_float.sim`) into a fixed-point model
//! (`*_fixed.sim`) on calibration images, as the seeds' `calibrator` does.
//!
//! [`calibrate`] runs the float model over the `-i` inputs preprocessed by the `-n` methods
//! (`norm=True`), collects statistics ([`ipukit_quant::stats`]), builds the plan of the
//! quantization level ([`ipukit_quant::calibrate`]), merges an imported quantization-parameter
//! file, lowers the graph ([`ipukit_quant::lower`]), and — at L5 — checks the fixed model
//! against the float one on a few calibration inputs, moving more layers to 16 bits until the
//! outputs agree. The result is written atomically with the input config in its metadata.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod check;
#[cfg(feature = "cli")]
pub mod cli;
mod overrides;
pub mod segments;

pub use check::{cosine, max_abs_difference, probability_outputs, OutputAgreement};

use ipukit_config::InputConfig;
use ipukit_ir::Graph;
use ipukit_preprocess::{collect_inputs, InputContext, Preprocessor};
use ipukit_quant::calibrate::{plan, Plan, PlanOptions, QuantLevel};
use ipukit_quant::json::{ExportOptions, ImportReport};
use ipukit_quant::lower::{lower, LayerBits};
use ipukit_quant::range::RangeMethod;
use ipukit_quant::stats::{collect_files, input_contexts, CollectOptions, Progress};
use ipukit_runtime::Value;
use ipukit_simfmt::{read_sim_file, write_sim_file, SimMetadata, Stage};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Errors of the calibrator.
#[derive(Debug, Error)]
pub enum CalibratorError {
    /// Reading or writing a .sim failed.
    #[error(transparent)]
    Sim(#[from] ipukit_simfmt::SimError),
    /// The input config is invalid.
    #[error(transparent)]
    Config(#[from] ipukit_config::ConfigError),
    /// Collecting inputs or preprocessing failed.
    #[error(transparent)]
    Preprocess(#[from] ipukit_preprocess::PreprocessError),
    /// Statistics, planning or lowering failed.
    #[error(transparent)]
    Quant(#[from] ipukit_quant::QuantError),
    /// Running a model failed.
    #[error(transparent)]
    Runtime(#[from] ipukit_runtime::RuntimeError),
    /// Unknown SoC.
    #[error(transparent)]
    Soc(#[from] ipukit_soc::SocError),
    /// A request that does not fit the model.
    #[error("{0}")]
    Usage(String),
}

/// Result alias.
pub type Result<T> = std::result::Result<T, CalibratorError>;

/// The L5 check's bound on [`OutputAgreement::max_error`]: no probability output is off by
/// more than 0.01 on the calibration inputs.
pub const L5_MAX_ERROR: f64 = 0.01;

/// What to calibrate and how.
#[derive(Debug, Clone)]
pub struct CalibrateOptions {
    /// `-m`: the float model.
    pub model: PathBuf,
    /// `--input_config`: overrides the ini stored in the model.
    pub input_config: Option<PathBuf>,
    /// `-i`: an image, a folder or a list file.
    pub images: PathBuf,
    /// `-n`: preprocessing methods, comma-separated per input.
    pub preprocess: String,
    /// `-o`: output path (default: next to the model, `_float` → `_fixed`).
    pub output: Option<PathBuf>,
    /// `--num_process`.
    pub num_process: usize,
    /// `--quant_level`.
    pub level: QuantLevel,
    /// `--memory_saving`.
    pub memory_saving: bool,
    /// `--soc_version`.
    pub soc_version: String,
    /// `--quant_param`: a quantization-parameter JSON to merge (imported values win).
    pub quant_param: Option<PathBuf>,
    /// Range method of the UINT8 copies (L3 and above).
    pub activation_method: Option<RangeMethod>,
    /// Calibration inputs used by the sensitivity analysis and the L5 check.
    pub check_samples: usize,
    /// Smallest output cosine (fixed vs float) the L5 check accepts.
    pub target_cosine: f64,
    /// Largest relative output error ([`OutputAgreement::max_error`]) the L5 check accepts.
    pub target_max_error: f64,
}

impl Default for CalibrateOptions {
    fn default() -> Self {
        CalibrateOptions {
            model: PathBuf::new(),
            input_config: None,
            images: PathBuf::new(),
            preprocess: String::new(),
            output: None,
            num_process: 1,
            level: QuantLevel::L5,
            memory_saving: false,
            soc_version: "generic".into(),
            quant_param: None,
            activation_method: None,
            check_samples: 4,
            target_cosine: 0.999,
            target_max_error: L5_MAX_ERROR,
        }
    }
}

/// A step of the calibration, for progress displays.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Phase {
    /// Running the float model over the calibration set.
    Statistics(Progress),
    /// Measuring each layer's 8-bit noise.
    Sensitivity,
    /// Comparing the fixed model with the float one (round number, from 1).
    Check(usize),
    /// The result of a comparison: round, layers in 16 bits, agreement.
    Checked(usize, usize, OutputAgreement),
}

/// What [`calibrate`] produced.
#[derive(Debug)]
pub struct Calibration {
    /// The fixed model's path.
    pub output: PathBuf,
    /// The fixed graph.
    pub graph: Graph,
    /// Per-layer precision and reasons.
    pub plan: Plan,
    /// Calibration samples used for statistics.
    pub samples: u64,
    /// The imported quantization parameters, accepted and rejected.
    pub imported: Option<ImportReport>,
    /// The last fixed-vs-float comparison (L5, or any level with check samples).
    pub agreement: Option<OutputAgreement>,
    /// Every comparison made, with the number of 16-bit layers at that point.
    pub rounds: Vec<(usize, OutputAgreement)>,
}

impl Calibration {
    /// The report the tools print: one line per layer (precision, measured 8-bit SQNR, why),
    /// the totals, the imported parameters and the fixed-vs-float check.
    pub fn summary(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        if let Some(rep) = &self.imported {
            let n = rep.accepted.len();
            let _ = writeln!(
                s,
                "quant_param: {n} entr{} imported",
                if n == 1 { "y" } else { "ies" }
            );
            for r in &rep.rejected {
                let _ = writeln!(s, "quant_param {r}");
            }
        }
        let _ = writeln!(
            s,
            "{:<40} {:<18} {:>4} {:>8}  reason",
            "layer", "op", "bits", "SQNR dB"
        );
        for l in &self.plan.layers {
            let bits = match l.bits {
                LayerBits::Int8 => "8",
                LayerBits::Int16 => "16",
            };
            let sqnr = match l.noise {
                Some(n) if n > 0.0 => format!("{:.1}", -10.0 * n.log10()),
                Some(_) => "inf".into(),
                None => "-".into(),
            };
            let _ = writeln!(
                s,
                "{:<40} {:<18} {:>4} {:>8}  {}",
                l.node, l.op, bits, sqnr, l.reason
            );
        }
        let n16 = self.plan.int16_count();
        let _ = writeln!(
            s,
            "{} layers: {} in 8-bit mode, {n16} in 16-bit mode",
            self.plan.layers.len(),
            self.plan.layers.len() - n16
        );
        if let Some(a) = self.agreement {
            let _ = writeln!(
                s,
                "fixed vs float on {} calibration input(s): output cosine min {:.6}, mean {:.6}, largest probability error {:.4}",
                a.inputs, a.min_cosine, a.mean_cosine, a.max_error
            );
        }
        s
    }
}

/// Writes the quantization parameters of the fixed model at `model` to `out` (the seeds'
/// `save_quant_param.py` JSON) and returns the number of entries.
pub fn save_quant_param(model: &Path, out: &Path, options: ExportOptions) -> Result<usize> {
    let (graph, meta) = read_sim_file(model)?;
    if meta.stage != Stage::Fixed {
        return Err(CalibratorError::Usage(format!(
            "{} is a {} model; quantization parameters come from a fixed model (*_fixed.sim)",
            model.display(),
            meta.stage.as_str()
        )));
    }
    let entries = ipukit_quant::json::export_fixed(&graph, options);
    ipukit_quant::json::write_json(out, &entries)?;
    Ok(entries.len())
}

/// Writes a fixed model with the float model's provenance, the input config and the level.
fn write_fixed(
    output: &Path,
    graph: &Graph,
    float_meta: &SimMetadata,
    config: &InputConfig,
    level: QuantLevel,
) -> Result<()> {
    let mut meta = SimMetadata::new(
        Stage::Fixed,
        format!("ipu-calibrator {}", env!("CARGO_PKG_VERSION")),
    );
    meta.source_sha256 = float_meta.source_sha256.clone();
    meta.input_config = Some(config.to_json());
    meta.extra.insert(
        "ipukit_quant_level".into(),
        level.as_str().as_bytes().to_vec(),
    );
    write_sim_file(output, graph, &meta)?;
    Ok(())
}

/// The default output path: `<dir>/<stem without _float>_fixed.sim`.
pub fn default_output(model: &Path) -> PathBuf {
    let stem = model
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    let base = stem.strip_suffix("_float").unwrap_or(&stem);
    model.with_file_name(format!("{base}_fixed.sim"))
}

/// The input config of a float model: `--input_config` if given, else the one stored in it.
fn model_config(meta: &SimMetadata, ini: Option<&Path>) -> Result<InputConfig> {
    if let Some(path) = ini {
        return Ok(InputConfig::from_file(path, (1, 1))?);
    }
    let json = meta.input_config.as_deref().ok_or_else(|| {
        CalibratorError::Usage(
            "the model carries no input config; pass --input_config input_config.ini".into(),
        )
    })?;
    Ok(InputConfig::from_json(json)?)
}

/// Preprocesses one row of inputs.
fn sample(
    methods: &[Preprocessor],
    contexts: &[InputContext],
    row: &[PathBuf],
    norm: bool,
) -> Result<Vec<Value>> {
    row.iter()
        .enumerate()
        .map(|(i, path)| {
            let (shape, data) = methods[i].run(path, norm, &contexts[i])?.into_parts();
            Ok(Value::new(shape, data)?)
        })
        .collect()
}

/// Calibrates and writes the fixed model.
pub fn calibrate(
    opts: &CalibrateOptions,
    progress: &(dyn Fn(Phase) + Sync),
) -> Result<Calibration> {
    ipukit_soc::profile(&opts.soc_version)?;
    let (mut float, meta) = read_sim_file(&opts.model)?;
    if meta.stage != Stage::Float {
        return Err(CalibratorError::Usage(format!(
            "{} is a {} model; the calibrator takes a float model (*_float.sim)",
            opts.model.display(),
            meta.stage.as_str()
        )));
    }
    let config = model_config(&meta, opts.input_config.as_deref())?;
    let n_inputs = float.inputs.len();
    let items = collect_inputs(&opts.images, n_inputs)?;
    let methods = Preprocessor::from_args(&opts.preprocess, n_inputs)?;
    let contexts = input_contexts(&float, Some(&config));

    let imported = match &opts.quant_param {
        Some(p) => Some(ipukit_quant::json::import_file(p, &float)?),
        None => None,
    };
    if let Some(rep) = &imported {
        overrides::replace_weights(&mut float, &rep.accepted)?;
    }

    let collect_opts = CollectOptions {
        num_process: opts.num_process.max(1),
        memory_saving: opts.memory_saving,
        ..CollectOptions::default()
    };
    let stats = collect_files(&float, &items, &methods, &contexts, &collect_opts, &|p| {
        progress(Phase::Statistics(p))
    })?;

    let k = opts.check_samples.min(items.len());
    let float_samples = items[..k]
        .iter()
        .map(|row| sample(&methods, &contexts, row, true))
        .collect::<Result<Vec<_>>>()?;
    let fixed_samples = items[..k]
        .iter()
        .map(|row| sample(&methods, &contexts, row, false))
        .collect::<Result<Vec<_>>>()?;

    if opts.level >= QuantLevel::L4 {
        progress(Phase::Sensitivity);
    }
    let plan_opts = PlanOptions {
        level: opts.level,
        activation_method: opts.activation_method,
        noise_threshold: None,
    };
    let mut plan = plan(&float, &stats, &config, &float_samples, &plan_opts)?;
    if let Some(rep) = &imported {
        overrides::apply(&float, &mut plan, &rep.accepted);
    }

    let mut graph = lower(&float, &config, &plan.lower)?;
    let mut agreement = None;
    let mut rounds = Vec::new();
    if k > 0 {
        let reference = check::run_float(&float, &float_samples)?;
        let probability = probability_outputs(&float);
        let mut round = 1;
        loop {
            progress(Phase::Check(round));
            let a = check::compare(&graph, &fixed_samples, &reference, &probability)?;
            rounds.push((plan.int16_count(), a));
            progress(Phase::Checked(round, plan.int16_count(), a));
            let done = opts.level < QuantLevel::L5
                || (a.min_cosine >= opts.target_cosine && a.max_error <= opts.target_max_error)
                || plan.int16_count() == plan.layers.len()
                || round >= 6;
            agreement = Some(a);
            if done {
                break;
            }
            promote_noisiest(&mut plan, round);
            graph = lower(&float, &config, &plan.lower)?;
            round += 1;
        }
    }

    let output = opts
        .output
        .clone()
        .unwrap_or_else(|| default_output(&opts.model));
    write_fixed(&output, &graph, &meta, &config, opts.level)?;
    Ok(Calibration {
        output,
        graph,
        plan,
        samples: stats.samples(),
        imported,
        agreement,
        rounds,
    })
}

/// Moves the noisiest remaining 8-bit layers to 16 bits: a quarter of them (at least one),
/// growing with each round.
fn promote_noisiest(plan: &mut Plan, round: usize) {
    let mut eight: Vec<(String, f64)> = plan
        .layers
        .iter()
        .filter(|l| l.bits == LayerBits::Int8 && !l.reason.starts_with("[CONV_CONFIG]"))
        .map(|l| (l.node.clone(), l.noise.unwrap_or(0.0)))
        .collect();
    eight.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let n = (eight.len() * round).div_ceil(4).max(1).min(eight.len());
    for (node, _) in eight.into_iter().take(n) {
        plan.promote(
            &node,
            &format!("L5 check round {round}: among the noisiest 8-bit layers"),
        );
    }
}
