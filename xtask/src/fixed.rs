//! The fixed-point stage of `cargo xtask e2e`: each fixture's float.sim (made by the float
//! stage) is calibrated at the requested levels on the fixture's `[[calibration]]` images, the
//! fixed model runs on the `[[eval]]` images not marked `float_only` (disjoint from the
//! calibration ones, checked by models.rs) preprocessed with `norm=False`, and compare.py compares its outputs with the
//! float.sim's on the same images: cosine per output and the decoded results. At L5 every
//! model must reach [`L5_MEAN_COSINE`], [`L5_MIN_COSINE`] and [`L5_DECODED_EQUAL`].
//! `--levels all` over every fixture also writes docs/quantization-accuracy.md.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use ipukit_calibrator::calibrate;
use ipukit_quant::calibrate::QuantLevel;

use crate::e2e::{self, EvalItem};
use crate::models::Fixture;
use crate::util::{self, rel};
use crate::{calib_run, ipk, py};

/// Smallest mean output cosine (fixed vs float over every output of every evaluation image)
/// accepted at L5.
pub const L5_MEAN_COSINE: f64 = 0.999;
/// Smallest output cosine accepted at L5.
pub const L5_MIN_COSINE: f64 = 0.995;
/// Smallest share of evaluation images whose decoded result equals float's at L5.
pub const L5_DECODED_EQUAL: f64 = 0.98;

/// Every level, in order.
pub const ALL_LEVELS: [QuantLevel; 5] = [
    QuantLevel::L1,
    QuantLevel::L2,
    QuantLevel::L3,
    QuantLevel::L4,
    QuantLevel::L5,
];

/// Parses one level (`L1` … `L5`), for clap.
pub fn parse_level(s: &str) -> Result<QuantLevel, String> {
    QuantLevel::parse(s).map_err(|e| e.to_string())
}

/// Parses `--levels`: `all`, `none`, or a comma-separated list such as `L1,L5`.
pub fn parse_levels(s: &str) -> Result<Vec<QuantLevel>> {
    match s.trim().to_ascii_lowercase().as_str() {
        "all" => return Ok(ALL_LEVELS.to_vec()),
        "none" | "" => return Ok(vec![]),
        _ => {}
    }
    let mut out = vec![];
    for part in s.split(',') {
        let l = QuantLevel::parse(part).map_err(|_| {
            anyhow!("--levels takes L1..L5 separated by commas, `all` or `none`, not {part:?}")
        })?;
        if !out.contains(&l) {
            out.push(l);
        }
    }
    out.sort();
    Ok(out)
}

/// One model at one level.
pub struct Row {
    /// Fixture.
    pub model: String,
    /// Level.
    pub level: QuantLevel,
    /// Layers in 16-bit mode.
    pub int16: usize,
    /// Weight layers.
    pub layers: usize,
    /// Mean and minimum output cosine over the evaluation images.
    pub cosine: Option<(f64, f64)>,
    /// Evaluation images whose decoded result equals float's, out of those compared.
    pub decoded: (usize, usize),
    /// Calibration time.
    pub seconds: f64,
    /// Calibration images.
    pub calibration_images: usize,
    /// What went wrong (an error of the stage, or the acceptance not met at L5).
    pub problems: Vec<String>,
    /// Images whose decoded result differs, with both results.
    pub differing: Vec<String>,
}

impl Row {
    /// A row for a stage that could not run.
    pub fn failed(model: &str, level: QuantLevel, e: String) -> Row {
        Row {
            model: model.to_string(),
            level,
            int16: 0,
            layers: 0,
            cosine: None,
            decoded: (0, 0),
            seconds: 0.0,
            calibration_images: 0,
            problems: vec![e],
            differing: vec![],
        }
    }

    /// Whether the row passes (only L5 rows have accuracy targets).
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    fn check_targets(&mut self) {
        if self.level != QuantLevel::L5 {
            return;
        }
        if let Some((mean, min)) = self.cosine {
            if mean.is_nan() || mean < L5_MEAN_COSINE {
                self.problems
                    .push(format!("mean cosine {mean:.5} < {L5_MEAN_COSINE}"));
            }
            if min.is_nan() || min < L5_MIN_COSINE {
                self.problems
                    .push(format!("min cosine {min:.5} < {L5_MIN_COSINE}"));
            }
        }
        let (k, n) = self.decoded;
        if n > 0 && (k as f64) < L5_DECODED_EQUAL * n as f64 {
            self.problems.push(format!(
                "decoded equal on {k}/{n} < {:.0}%",
                L5_DECODED_EQUAL * 100.0
            ));
        }
    }
}

/// Runs the fixed-point stage of one fixture whose float stage left `<dir>/<name>_float.sim`
/// and the float outputs `<dir>/<id>/ipukit` of `items`.
pub fn run_model(
    python: &Path,
    f: &Fixture,
    dir: &Path,
    items: &[EvalItem],
    levels: &[QuantLevel],
    threads: usize,
) -> Vec<Row> {
    let name = &f.toml.name;
    match prepare(python, f, dir, items) {
        Ok((list, n_cal, items)) => levels
            .iter()
            .map(|&level| {
                let t = Instant::now();
                let row = run_level(python, f, dir, &list, n_cal, &items, level, threads)
                    .unwrap_or_else(|e| Row::failed(name, level, format!("{e:#}")));
                println!(
                    "e2e: {name} {}: {} in {:.1} s",
                    level.as_str(),
                    if row.ok() { "done" } else { "FAILED" },
                    t.elapsed().as_secs_f64()
                );
                row
            })
            .collect(),
        Err(e) => levels
            .iter()
            .map(|&level| Row::failed(name, level, format!("{e:#}")))
            .collect(),
    }
}

/// Makes the calibration images and their list file, and the `norm=False` inputs of the
/// evaluation images that have float outputs. Returns the list file, its length and those
/// evaluation images.
fn prepare(
    python: &Path,
    f: &Fixture,
    dir: &Path,
    items: &[EvalItem],
) -> Result<(PathBuf, usize, Vec<EvalItem>)> {
    let (list, n_cal) = calib_run::calibration_list(python, f, &dir.join("calibration"))?;
    let usable: Vec<EvalItem> = calib_run::fixed_eval_items(items)
        .into_iter()
        .filter(|it| dir.join(&it.id).join("ipukit/outputs.json").is_file())
        .collect();
    if usable.is_empty() {
        bail!("the float stage gave no outputs to compare with");
    }
    let jobs: Vec<(PathBuf, PathBuf)> = usable
        .iter()
        .map(|it| (it.path.clone(), dir.join(&it.id).join("input_u8.npy")))
        .collect();
    e2e::preprocess_norm(python, f, &jobs, false)?;
    Ok((list, n_cal, usable))
}

#[allow(clippy::too_many_arguments)]
fn run_level(
    python: &Path,
    f: &Fixture,
    dir: &Path,
    list: &Path,
    n_cal: usize,
    items: &[EvalItem],
    level: QuantLevel,
    threads: usize,
) -> Result<Row> {
    let name = &f.toml.name;
    let lv = level.as_str();
    let output = dir.join(format!("{name}_fixed_{lv}.sim"));
    let opts = calib_run::calibrate_options(
        &dir.join(format!("{name}_float.sim")),
        list,
        &f.dir.join("preprocess.py"),
        &output,
        level,
        threads,
    );
    let t = Instant::now();
    let cal = ipk::catch(|| calibrate(&opts, &|_| {}))?
        .map_err(|e| anyhow!("calibrating at {lv}: {e}"))?;
    let seconds = t.elapsed().as_secs_f64();

    // What runs is what the file holds.
    let (graph, _) = ipk::catch(|| ipukit_simfmt::read_sim_file(&output))?
        .map_err(|e| anyhow!("reading back {}: {e}", rel(&output)))?;
    let names: Vec<String> = f.toml.outputs.iter().map(|o| o.name.clone()).collect();
    let mut session = ipk::session(graph.clone(), threads)?;
    let fixed_dir = format!("fixed_{lv}");
    let mut cases = vec![];
    for it in items {
        let case = dir.join(&it.id);
        let inputs = ipk::read_inputs(&[&case.join("input_u8.npy")])?;
        let outs = ipk::run(&mut session, inputs)
            .with_context(|| format!("{lv} fixed model on {}", it.id))?;
        let outs = calib_run::dequantize(&graph, outs)?;
        ipk::write_outputs(&case.join(&fixed_dir), &names, &outs)?;
        cases.push(serde_json::json!({
            "ref": case.join("ipukit"),
            "cand": case.join(&fixed_dir),
            "label": it.id,
        }));
    }

    // compare.py: float outputs as the reference.
    let batch = dir.join(format!("compare-{fixed_dir}-cases.json"));
    let json = dir.join(format!("compare-{fixed_dir}.json"));
    util::write_atomic(&batch, serde_json::to_string_pretty(&cases)?.as_bytes())?;
    let _ = fs::remove_file(&json);
    let mut cmd = py::script(python, "compare.py");
    cmd.arg("--model-dir")
        .arg(&f.dir)
        .arg("--batch")
        .arg(&batch)
        .arg("--json")
        .arg(&json)
        .arg("--min-cosine")
        .arg(L5_MIN_COSINE.to_string());
    // A comparison below --min-cosine exits 1 but still writes its JSON.
    let (_, out, err) = util::run_capture(&mut cmd)?;
    let verdicts: Vec<e2e::Comparison> = fs::read_to_string(&json)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .ok_or_else(|| anyhow!("compare.py failed: {}{}", out.trim(), err.trim()))?;

    let mut cosines = vec![];
    let mut equal = 0;
    let mut decoded = 0;
    let mut differing = vec![];
    for v in &verdicts {
        cosines.extend(v.outputs.iter().map(|o| o.cosine.unwrap_or(f64::NAN)));
        if let Some(eq) = v.decoded_equal {
            decoded += 1;
            if eq {
                equal += 1;
            } else {
                let why = v
                    .problems
                    .iter()
                    .find_map(|p| p.strip_prefix("decoded results differ: "))
                    .unwrap_or("-");
                differing.push(format!(
                    "{}: float {}, fixed {} ({why})",
                    v.label,
                    v.reference_summary.as_deref().unwrap_or("-"),
                    v.candidate_summary.as_deref().unwrap_or("-")
                ));
            }
        }
    }
    let cosine = if cosines.is_empty() {
        None
    } else {
        let mean = cosines.iter().sum::<f64>() / cosines.len() as f64;
        // NaN (a shape mismatch) makes the minimum NaN, failing the targets.
        let min = cosines.iter().copied().fold(f64::INFINITY, |a, b| {
            if a.is_nan() || b.is_nan() {
                f64::NAN
            } else {
                a.min(b)
            }
        });
        Some((mean, min))
    };
    let mut row = Row {
        model: name.clone(),
        level,
        int16: cal.plan.int16_count(),
        layers: cal.plan.layers.len(),
        cosine,
        decoded: (equal, decoded),
        seconds,
        calibration_images: n_cal,
        problems: vec![],
        differing,
    };
    row.check_targets();
    Ok(row)
}

fn cosine_cell(c: Option<(f64, f64)>) -> (String, String) {
    match c {
        Some((mean, min)) => (format!("{mean:.6}"), format!("{min:.6}")),
        None => ("-".into(), "-".into()),
    }
}

/// Prints the table of the fixed-point stage.
pub fn print_table(rows: &[Row]) {
    println!(
        "\n{:<16} {:<5} {:>9} {:>11} {:>11} {:>14} {:>10}",
        "model", "level", "16-bit", "mean cos", "min cos", "decoded equal", "calibrate"
    );
    for r in rows {
        let (mean, min) = cosine_cell(r.cosine);
        println!(
            "{:<16} {:<5} {:>9} {:>11} {:>11} {:>14} {:>8.1} s{}",
            r.model,
            r.level.as_str(),
            format!("{}/{}", r.int16, r.layers),
            mean,
            min,
            format!("{}/{}", r.decoded.0, r.decoded.1),
            r.seconds,
            if r.ok() { "" } else { "  FAIL" }
        );
    }
    println!();
    for r in rows {
        for d in &r.differing {
            println!(
                "e2e: {} {}: decoded differs on {d}",
                r.model,
                r.level.as_str()
            );
        }
    }
}

/// Writes docs/quantization-accuracy.md from the rows of every fixture at every level.
pub fn write_docs(rows: &[Row], fixtures: &[Fixture], threads: usize) -> Result<()> {
    let mut s = String::new();
    s.push_str("# Quantization accuracy\n\n");
    s.push_str(
        "Generated by `cargo xtask e2e --levels all` (do not edit). Each real model of \
         `fixtures/models/` is converted to a float.sim (checked against ONNX Runtime by the \
         float stage of the same command), calibrated by the calibrator library \
         (`ipukit_calibrator::calibrate`, as `ipu-calibrator -m X_float.sim -i LIST -n \
         preprocess.py --quant_level L`) on the fixture's `[[calibration]]` images, and the \
         fixed model (read back from its fixed.sim) runs on the fixture's `[[eval]]` images, \
         preprocessed by the same `preprocess.py` with `norm=False` (uint8 images; the float \
         model gets `norm=True`). Calibration and evaluation images are real photographs \
         (scikit-image's `data/`), crops and rotations of them, and one rendered text line; \
         they share no pixel (checked by `cargo xtask fixtures`).\n\n",
    );
    s.push_str(
        "Columns: `16-bit` — convolution / fully-connected layers the level put in 16-bit \
         mode, of all such layers; `mean cos` and `min cos` — cosine similarity of the fixed \
         model's dequantized outputs with the float model's, over every output of every \
         evaluation image; `decoded equal` — evaluation images whose decoded result (label, \
         OCR text, boxes matched at IoU ≥ 0.95, face decision; `xtask/py/decode.py`) equals \
         float's; `calibrate` — calibration wall time on this machine with \
         `--num_process ",
    );
    let _ = write!(s, "{threads}`. ");
    let _ = writeln!(
        s,
        "Targets at L5 (`cargo xtask e2e` fails below them): mean cosine ≥ {L5_MEAN_COSINE}, \
         minimum ≥ {L5_MIN_COSINE}, decoded equal on ≥ {:.0}% of the images.\n",
        L5_DECODED_EQUAL * 100.0
    );
    s.push_str("| model | level | 16-bit | mean cos | min cos | decoded equal | calibrate | L5 targets |\n");
    s.push_str("|---|---|---:|---:|---:|---:|---:|---|\n");
    for r in rows {
        let (mean, min) = cosine_cell(r.cosine);
        let verdict = if r.level != QuantLevel::L5 {
            if r.ok() {
                String::new()
            } else {
                format!("error: {}", r.problems.join("; "))
            }
        } else if r.ok() {
            "met".into()
        } else {
            format!("**not met**: {}", r.problems.join("; "))
        };
        let _ = writeln!(
            s,
            "| {} | {} | {}/{} | {} | {} | {}/{} | {:.1} s | {} |",
            r.model,
            r.level.as_str(),
            r.int16,
            r.layers,
            mean,
            min,
            r.decoded.0,
            r.decoded.1,
            r.seconds,
            verdict.replace('|', "\\|")
        );
    }
    let differing: Vec<String> = rows
        .iter()
        .flat_map(|r| {
            r.differing
                .iter()
                .map(move |d| format!("- {} {}: {d}", r.model, r.level.as_str()))
        })
        .collect();
    if !differing.is_empty() {
        s.push_str("\nDecoded results that differ from float:\n\n");
        for d in differing {
            s.push_str(&d);
            s.push('\n');
        }
    }
    s.push_str(
        "\n## Levels\n\n\
         | level | activation ranges | weight ranges | 8/16-bit choice |\n\
         |---|---|---|---|\n\
         | L1 | min/max | per-channel max | all 8-bit |\n\
         | L2 | min/max | per-channel, MSE-refined clipping | all 8-bit |\n\
         | L3 | min/max for INT16; UINT8 copies fitted to the distribution | as L2 | all 8-bit |\n\
         | L4 | as L3 | as L2 | + output layers and layers with 8-bit SQNR below 30 dB in 16 bits |\n\
         | L5 | as L3 | as L2 | + output layers and layers below 35 dB, then the end-to-end check on calibration images |\n\n\
         INT16 activations keep 4× headroom above their calibrated range.\n\n\
         (`ipukit_quant::calibrate`; docs/fixed-point.md for the arithmetic.)\n",
    );
    s.push_str("\n## Images\n\n| model | calibration | evaluation |\n|---|---:|---:|\n");
    for f in fixtures {
        let n_cal = rows
            .iter()
            .find(|r| r.model == f.toml.name && r.calibration_images > 0)
            .map_or(f.toml.calibration.len(), |r| r.calibration_images);
        let _ = writeln!(s, "| {} | {} | {} |", f.toml.name, n_cal, f.toml.eval.len());
    }
    s.push_str(
        "\nThe images are listed, with the reasons for the choice, in each \
         `fixtures/models/<model>/model.toml`. To reproduce:\n\n\
         ```sh\ncargo xtask venv && cargo xtask fetch\ncargo xtask e2e --levels all\n```\n\n\
         CI runs `cargo xtask e2e` (levels L1 and L5).\n",
    );
    let path = util::repo_root().join("docs/quantization-accuracy.md");
    util::write_atomic(&path, s.as_bytes())?;
    println!("e2e: wrote {}", rel(&path));
    Ok(())
}
