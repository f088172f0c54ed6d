//! `cargo xtask quant-debug`: why a fixture's fixed model departs from its float model.
//!
//! Works on what `cargo xtask e2e` left in `.cache/e2e/<model>/` (the float.sim, the
//! calibration list, the evaluation inputs): calibrates the float.sim again at one level,
//! prints the plan (every weight layer's precision, 8-bit SQNR and reason), then runs the float
//! and the fixed model on evaluation images with an observer and prints, for every activation
//! both graphs hold (the fixed graph keeps the float tensors' names), the cosine of the
//! dequantized fixed tensor with the float one (a UINT8 copy that an 8-bit layer reads, with
//! its INT16 tensor's float values), the float tensor's range on that image, the range the
//! fixed tensor can represent, and the share of float values outside it.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{anyhow, bail, Result};
use ipukit_calibrator::{calibrate, CalibrateOptions};
use ipukit_ir::{DType, Graph};
use ipukit_quant::calibrate::QuantLevel;
use ipukit_runtime::{Session, SessionOptions};

use crate::models;
use crate::util::{self, rel};
use crate::{ipk, py};

/// Options of the subcommand.
#[derive(clap::Args)]
pub struct Options {
    /// The fixture.
    #[arg(long = "model", value_name = "NAME")]
    pub model: String,
    /// Quantization level.
    #[arg(long, default_value = "L5", value_parser = crate::fixed::parse_level)]
    pub level: QuantLevel,
    /// Evaluation image ids (default: every one with inputs in the cache).
    #[arg(long = "image", value_name = "ID")]
    pub images: Vec<String>,
    /// Only tensors whose name contains this.
    #[arg(long)]
    pub filter: Option<String>,
    /// Print every tensor, not only those below `--below` and their neighbours.
    #[arg(long)]
    pub all: bool,
    /// Tensors below this cosine are printed (and the next one).
    #[arg(long, default_value_t = 0.999)]
    pub below: f64,
    /// Calibrate on these images (an image, folder or list file) instead of the fixture's
    /// `[[calibration]]` list: to test whether a calibration set is the cause.
    #[arg(long)]
    pub calibration: Option<std::path::PathBuf>,
    /// Calibrate with this input_config.ini instead of the one in the float.sim (to try a
    /// `[CONV_CONFIG]`, such as `input_format=ALL_INT16`).
    #[arg(long)]
    pub input_config: Option<std::path::PathBuf>,
    /// Also write each compared tensor, float and fixed (dequantized), as .npy files to
    /// `.cache/e2e/<model>/<image>/debug/`.
    #[arg(long)]
    pub dump: bool,
}

/// Every tensor a run produces, by name, as real numbers (with the representable range of
/// quantized ones).
type Observed = Vec<(String, String, Vec<f64>, Option<(f64, f64)>)>;

fn observe(
    graph: &Graph,
    inputs: Vec<ipukit_runtime::Value>,
    filter: Option<&str>,
) -> Result<Observed> {
    let mut s = Session::new(graph.clone(), SessionOptions { threads: Some(2) })
        .map_err(|e| anyhow!("cannot create a session: {e}"))?;
    for (i, v) in inputs.into_iter().enumerate() {
        s.set_input(i, v).map_err(|e| anyhow!("{e}"))?;
    }
    let mut out: Observed = vec![];
    let mut obs =
        |node: &ipukit_ir::Node, t: ipukit_ir::TensorId, v: ipukit_runtime::ValueView<'_>| {
            let tensor = graph.tensor(t);
            if filter.is_some_and(|f| !tensor.name.contains(f)) {
                return;
            }
            let raw: Vec<f64> = v
                .data
                .to_owned()
                .to_f32_vec()
                .into_iter()
                .map(f64::from)
                .collect();
            let (real, range) = match (&tensor.quant, v.dtype()) {
                (Some(q), dt) if dt != DType::F32 && q.scale.len() == 1 => {
                    let (sc, zp) = (q.scale[0] as f64, q.zero_point[0] as f64);
                    let (lo, hi) = match dt {
                        DType::I16 => (-32768.0, 32767.0),
                        DType::U8 => (0.0, 255.0),
                        DType::I8 => (-128.0, 127.0),
                        DType::U16 => (0.0, 65535.0),
                        _ => (f64::NAN, f64::NAN),
                    };
                    (
                        raw.iter().map(|&x| (x - zp) * sc).collect(),
                        Some(((lo - zp) * sc, (hi - zp) * sc)),
                    )
                }
                _ => (raw, None),
            };
            out.push((tensor.name.clone(), node.op.name().to_string(), real, range));
        };
    ipk::catch(|| s.invoke_with_observer(&mut obs))?.map_err(|e| anyhow!("inference: {e}"))?;
    Ok(out)
}

/// Runs the subcommand.
pub fn run(opts: &Options) -> Result<()> {
    let python = py::venv()?;
    if std::env::var_os("IPUKIT_PYTHON").is_none() {
        std::env::set_var("IPUKIT_PYTHON", &python);
    }
    let fixtures = models::load_all(std::slice::from_ref(&opts.model))?;
    let f = &fixtures[0];
    let name = &f.toml.name;
    let dir = util::cache_dir().join("e2e").join(name);
    let float_sim = dir.join(format!("{name}_float.sim"));
    let list = opts
        .calibration
        .clone()
        .unwrap_or_else(|| dir.join("calibration/list.txt"));
    if !float_sim.is_file() || !list.is_file() {
        bail!(
            "{} has no float.sim or calibration list: run `cargo xtask e2e --model {name}` first",
            rel(&dir)
        );
    }
    let lv = opts.level.as_str();
    let output = dir.join(format!("{name}_fixed_{lv}_debug.sim"));
    let cal = ipk::catch(|| {
        calibrate(
            &CalibrateOptions {
                model: float_sim.clone(),
                images: list.clone(),
                input_config: opts.input_config.clone(),
                preprocess: f.dir.join("preprocess.py").display().to_string(),
                output: Some(output.clone()),
                num_process: 2,
                level: opts.level,
                ..Default::default()
            },
            &|_| {},
        )
    })?
    .map_err(|e| anyhow!("calibrating at {lv}: {e}"))?;
    println!("plan at {lv} (calibrated on {}):", rel(&list));
    println!(
        "{:<48} {:<16} {:>4} {:>8}  reason",
        "layer", "op", "bits", "SQNR dB"
    );
    for l in &cal.plan.layers {
        let sqnr = l
            .noise
            .filter(|n| *n > 0.0)
            .map(|n| format!("{:.1}", -10.0 * n.log10()))
            .unwrap_or_else(|| "-".into());
        let bits = match l.bits {
            ipukit_quant::lower::LayerBits::Int8 => 8,
            ipukit_quant::lower::LayerBits::Int16 => 16,
        };
        println!(
            "{:<48} {:<16} {:>4} {:>8}  {}",
            l.node, l.op, bits, sqnr, l.reason
        );
    }
    for (n, a) in &cal.rounds {
        println!(
            "L5 check with {n} 16-bit layer(s): calibration cosine min {:.6}, mean {:.6}, largest probability error {:.4}",
            a.min_cosine, a.mean_cosine, a.max_error
        );
    }
    let (float, _) = ipukit_simfmt::read_sim_file(&float_sim)
        .map_err(|e| anyhow!("reading {}: {e}", rel(&float_sim)))?;
    let (fixed, _) = ipukit_simfmt::read_sim_file(&output)
        .map_err(|e| anyhow!("reading {}: {e}", rel(&output)))?;

    let mut ids: Vec<String> = opts.images.clone();
    if ids.is_empty() {
        let mut entries: Vec<String> = std::fs::read_dir(&dir)?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join("input_u8.npy").is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        entries.sort();
        ids = entries;
    }
    for id in &ids {
        let case = dir.join(id);
        compare_image(&float, &fixed, &case, id, opts)?;
    }
    Ok(())
}

fn compare_image(
    float: &Graph,
    fixed: &Graph,
    case: &Path,
    id: &str,
    opts: &Options,
) -> Result<()> {
    let fin = ipk::read_inputs(&[&case.join("input.npy")])?;
    let xin = ipk::read_inputs(&[&case.join("input_u8.npy")])?;
    let filter = opts.filter.as_deref();
    let f_obs = observe(float, fin, filter)?;
    let x_obs = observe(fixed, xin, filter)?;
    let by_name: HashMap<&str, &Vec<f64>> =
        f_obs.iter().map(|(n, _, v, _)| (n.as_str(), v)).collect();
    println!("\n{id}:");
    println!(
        "{:<56} {:<18} {:>10} {:>23} {:>23} {:>8}",
        "tensor", "fixed op", "cosine", "float range", "fixed range", "clipped"
    );
    let mut prev_ok = true;
    for (name, op, x, range) in &x_obs {
        // A UINT8 copy for an 8-bit layer (`<tensor>_uint8`) is compared with its tensor.
        let float_name = name.strip_suffix("_uint8").unwrap_or(name);
        let Some(fv) = by_name.get(float_name) else {
            continue;
        };
        if fv.len() != x.len() {
            continue;
        }
        let cos = ipukit_calibrator::cosine(fv, x);
        let (lo, hi) = fv
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        let (range_s, clipped) = match range {
            Some((rl, rh)) => {
                // Beyond the range by more than a step of an INT16 tensor.
                let tol = (rh - rl) / 65535.0;
                let out = fv.iter().filter(|&&v| v < rl - tol || v > rh + tol).count();
                (
                    format!("[{rl:.3}, {rh:.3}]"),
                    format!("{:.2}%", 100.0 * out as f64 / fv.len().max(1) as f64),
                )
            }
            None => ("float".into(), "-".into()),
        };
        if opts.dump {
            let d = case.join("debug");
            std::fs::create_dir_all(&d)?;
            let shape = [fv.len()];
            let base = ipk::sanitize(name);
            for (tag, v) in [("float", *fv), ("fixed", x)] {
                let data: Vec<f32> = v.iter().map(|&x| x as f32).collect();
                crate::npy::write(
                    &d.join(format!("{base}.{tag}.npy")),
                    &shape,
                    &ipukit_ir::TensorData::F32(data.into()),
                )?;
            }
        }
        let bad = cos < opts.below;
        if opts.all || bad || !prev_ok {
            println!(
                "{:<56} {:<18} {:>10.6} {:>23} {:>23} {:>8}{}",
                name,
                op,
                cos,
                format!("[{lo:.3}, {hi:.3}]"),
                range_s,
                clipped,
                if bad { "  <" } else { "" }
            );
        }
        prev_ok = !bad;
    }
    Ok(())
}
