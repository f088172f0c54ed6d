//! `cargo xtask e2e`: every model fixture, converted by ipukit and run in float, against ONNX
//! Runtime on the same inputs.
//!
//! For each `fixtures/models/<model>`: the evaluation images are made (xtask/py/eval_images.py),
//! input_config.ini is checked against preprocess.py, each image is preprocessed with
//! `norm=True`, ONNX Runtime runs the ONNX model (ort_run.py), ipukit converts the model to a
//! float.sim with the ConvertTool library (the fixture's input_config.ini and
//! `--input_shapes`, SoC profile `generic`), reads the file back and runs it, and compare.py
//! compares the outputs (cosine >= 0.9999 at every output) and the decoded results (equal, and
//! as the fixture expects). Work files go to `.cache/e2e/<model>/`.
//!
//! Then the fixed-point stage (fixed.rs) calibrates each float.sim at the `--levels` asked and
//! compares the fixed models with it on the same images.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use serde::Deserialize;

use ipukit_quant::calibrate::QuantLevel;

use crate::models::{self, Fixture};
use crate::util::{self, rel};
use crate::{fixed, ipk, offline, py};

/// Options of the subcommand.
pub struct Options {
    /// Only these fixtures.
    pub models: Vec<String>,
    /// Threads for ipukit and ONNX Runtime.
    pub threads: usize,
    /// Minimum cosine similarity per output.
    pub min_cosine: f64,
    /// Quantization levels of the fixed-point stage (none: float only).
    pub levels: Vec<QuantLevel>,
}

/// One evaluation image (eval_images.py's eval.json).
#[derive(Deserialize, Clone)]
pub struct EvalItem {
    /// Identifier (file stem).
    pub id: String,
    /// The image.
    pub path: PathBuf,
    /// Expected decoded result.
    #[serde(default)]
    pub expect: Option<String>,
    /// Compared in float only (the image also calibrates the fixed-point stage).
    #[serde(default)]
    pub float_only: bool,
}

/// compare.py's verdict on one comparison (the fields xtask uses).
#[derive(Deserialize)]
pub struct Comparison {
    /// The case's label (`--label`, or `label` of a `--batch` case).
    #[serde(default)]
    pub label: String,
    /// Smallest output cosine.
    pub min_cosine: f64,
    /// Per-output cosines, in order.
    #[serde(default)]
    pub outputs: Vec<OutputCosine>,
    /// Whether the decoded results are equal (absent without a `[decode]` kind).
    #[serde(default)]
    pub decoded_equal: Option<bool>,
    /// The reference's decoded result, in short.
    #[serde(default)]
    pub reference_summary: Option<String>,
    /// The candidate's decoded result, in short.
    #[serde(default)]
    pub candidate_summary: Option<String>,
    /// Whether the reference decodes to the fixture's `expect`.
    #[serde(default)]
    pub expect_ok: Option<bool>,
    /// No problem.
    pub ok: bool,
    /// What failed.
    #[serde(default)]
    pub problems: Vec<String>,
}

/// One output's cosine in a [`Comparison`] (null when the shapes differ).
#[derive(Deserialize)]
pub struct OutputCosine {
    /// Cosine similarity.
    pub cosine: Option<f64>,
}

struct Row {
    model: String,
    image: String,
    min_cosine: Option<f64>,
    decoded: String,
    equal: String,
    ok: bool,
    note: String,
}

/// Runs the end-to-end comparison.
pub fn run(opts: &Options) -> Result<()> {
    let start = Instant::now();
    let python = py::venv()?;
    // The calibrator runs the fixtures' preprocess.py with this interpreter.
    if std::env::var_os("IPUKIT_PYTHON").is_none() {
        std::env::set_var("IPUKIT_PYTHON", &python);
    }
    let fixtures = models::load_all(&opts.models)?;
    let mut rows = vec![];
    let mut fixed_rows = vec![];
    let mut float_s = 0.0;
    let mut fixed_s = 0.0;
    let mut offline_rows = vec![];
    let mut offline_s = 0.0;
    for f in &fixtures {
        let t = Instant::now();
        let dir = util::cache_dir().join("e2e").join(&f.toml.name);
        let items = match run_model(&python, f, &dir, opts) {
            Ok((mut r, items)) => {
                rows.append(&mut r);
                Some(items)
            }
            Err(e) => {
                rows.push(Row {
                    model: f.toml.name.clone(),
                    image: "-".into(),
                    min_cosine: None,
                    decoded: "-".into(),
                    equal: "-".into(),
                    ok: false,
                    note: format!("{e:#}"),
                });
                None
            }
        };
        float_s += t.elapsed().as_secs_f64();
        println!(
            "e2e: {} done in {:.1} s",
            f.toml.name,
            t.elapsed().as_secs_f64()
        );
        if opts.levels.is_empty() {
            continue;
        }
        let t = Instant::now();
        match items {
            Some(items) => {
                fixed_rows.append(&mut fixed::run_model(
                    &python,
                    f,
                    &dir,
                    &items,
                    &opts.levels,
                    opts.threads,
                ));
                // The offline stage: the highest level's fixed model, compiled.
                if let Some(level) = opts.levels.iter().max() {
                    let t = Instant::now();
                    offline_rows.push(offline_stage(f, &dir, &items, *level, opts.threads));
                    offline_s += t.elapsed().as_secs_f64();
                }
            }
            None => fixed_rows.extend(
                opts.levels
                    .iter()
                    .map(|&l| fixed::Row::failed(&f.toml.name, l, "the float stage failed".into())),
            ),
        }
        fixed_s += t.elapsed().as_secs_f64();
    }
    print_table(&rows);
    let failed = rows.iter().filter(|r| !r.ok).count();
    for r in rows.iter().filter(|r| !r.ok) {
        println!("e2e: FAIL {} {}: {}", r.model, r.image, r.note);
    }
    println!(
        "e2e: float: {} passed, {} failed ({} model(s), {:.0} s)",
        rows.len() - failed,
        failed,
        fixtures.len(),
        float_s
    );
    let mut fixed_failed = 0;
    if !opts.levels.is_empty() {
        fixed::print_table(&fixed_rows);
        for r in fixed_rows.iter().filter(|r| !r.ok()) {
            println!(
                "e2e: FAIL {} {}: {}",
                r.model,
                r.level.as_str(),
                r.problems.join("; ")
            );
        }
        fixed_failed = fixed_rows.iter().filter(|r| !r.ok()).count();
        println!(
            "e2e: fixed: {} passed, {} failed ({} model(s) x {} level(s), {:.0} s)",
            fixed_rows.len() - fixed_failed,
            fixed_failed,
            fixtures.len(),
            opts.levels.len(),
            fixed_s
        );
        if opts.levels == fixed::ALL_LEVELS && opts.models.is_empty() {
            fixed::write_docs(&fixed_rows, &fixtures, opts.threads)?;
        }
    }
    let mut offline_failed = 0;
    if !offline_rows.is_empty() {
        offline::print_table(&offline_rows);
        for r in offline_rows.iter().filter(|r| !r.ok()) {
            println!("e2e: FAIL {} offline: {}", r.model, r.problems.join("; "));
        }
        offline_failed = offline_rows.iter().filter(|r| !r.ok()).count();
        println!(
            "e2e: offline: {} bit-exact, {} failed ({:.0} s)",
            offline_rows.len() - offline_failed,
            offline_failed,
            offline_s
        );
    }
    println!("e2e: {:.0} s in all", start.elapsed().as_secs_f64());
    if failed > 0 || fixed_failed > 0 || offline_failed > 0 {
        anyhow::bail!("{failed} float comparison(s), {fixed_failed} fixed-point row(s) and {offline_failed} offline image(s) failed");
    }
    Ok(())
}

/// Compiles the fixture's fixed model at `level` and checks the images against it on the
/// evaluation inputs the fixed stage prepared (`<id>/input_u8.npy`).
fn offline_stage(
    f: &Fixture,
    dir: &Path,
    items: &[EvalItem],
    level: QuantLevel,
    threads: usize,
) -> offline::OfflineRow {
    let name = &f.toml.name;
    let fixed = dir.join(format!("{name}_fixed_{}.sim", level.as_str()));
    let inputs: Vec<Vec<PathBuf>> = items
        .iter()
        .map(|it| dir.join(&it.id).join("input_u8.npy"))
        .filter(|p| p.is_file())
        .map(|p| vec![p])
        .collect();
    let row = offline::check_model(name, &fixed, &inputs, threads)
        .unwrap_or_else(|e| offline::OfflineRow::failed(name, &fixed, format!("{e:#}")));
    println!(
        "e2e: {name} offline: {}",
        if row.ok() { "bit-exact" } else { "FAILED" }
    );
    row
}

/// Makes the evaluation images of a fixture and returns them.
pub fn eval_images(python: &Path, f: &Fixture, out_dir: &Path) -> Result<Vec<EvalItem>> {
    let mut cmd = py::script(python, "eval_images.py");
    cmd.arg("--model-dir")
        .arg(&f.dir)
        .arg("--out-dir")
        .arg(out_dir);
    py::run(cmd)?;
    let listing = out_dir.join("eval.json");
    let text =
        fs::read_to_string(&listing).with_context(|| format!("cannot read {}", rel(&listing)))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not valid", rel(&listing)))
}

/// Runs preprocess.py (norm=True) on images, writing the given .npy files.
pub fn preprocess(python: &Path, f: &Fixture, jobs: &[(PathBuf, PathBuf)]) -> Result<()> {
    preprocess_norm(python, f, jobs, true)
}

/// Runs preprocess.py on images, writing the given .npy files (`norm`: float inputs, else
/// the uint8 images a fixed model takes).
pub fn preprocess_norm(
    python: &Path,
    f: &Fixture,
    jobs: &[(PathBuf, PathBuf)],
    norm: bool,
) -> Result<()> {
    let mut cmd = py::script(python, "preprocess.py");
    cmd.arg("--model-dir")
        .arg(&f.dir)
        .args(["--norm", if norm { "true" } else { "false" }]);
    for (image, out) in jobs {
        cmd.arg("--image").arg(image).arg("--out").arg(out);
    }
    py::run(cmd)?;
    Ok(())
}

/// The float stage of one fixture: its rows and evaluation images.
fn run_model(
    python: &Path,
    f: &Fixture,
    dir: &Path,
    opts: &Options,
) -> Result<(Vec<Row>, Vec<EvalItem>)> {
    let name = f.toml.name.clone();
    let onnx = f.onnx_path()?;
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("cannot clear {}", rel(dir)))?;
    }
    fs::create_dir_all(dir)?;
    let items = eval_images(python, f, &dir.join("images"))?;
    if items.is_empty() {
        anyhow::bail!("{}/model.toml has no [[eval]] image", rel(&f.dir));
    }

    // input_config.ini's mean/std must describe what preprocess.py does.
    let mut check = py::script(python, "preprocess.py");
    check.arg("--model-dir").arg(&f.dir).arg("--check-ini");
    for it in &items {
        check.arg("--image").arg(&it.path);
    }
    py::run(check).context("input_config.ini does not match preprocess.py")?;

    let jobs: Vec<(PathBuf, PathBuf)> = items
        .iter()
        .map(|it| (it.path.clone(), dir.join(&it.id).join("input.npy")))
        .collect();
    preprocess(python, f, &jobs)?;

    // Reference.
    for it in &items {
        let case = dir.join(&it.id);
        let mut cmd = py::script(python, "ort_run.py");
        cmd.arg(&onnx)
            .arg("--inputs")
            .arg(case.join("input.npy"))
            .arg("--out-dir")
            .arg(case.join("ort"))
            .arg("--threads")
            .arg(opts.threads.to_string())
            .arg("--model-dir")
            .arg(&f.dir);
        py::run(cmd)?;
    }

    // ipukit.
    let t = Instant::now();
    let graph = ipk::convert(f, &dir.join(format!("{name}_float.sim")))?;
    let mut session = ipk::session(graph, opts.threads)?;
    let convert_s = t.elapsed().as_secs_f64();
    let names: Vec<String> = f.toml.outputs.iter().map(|o| o.name.clone()).collect();
    let mut run_errors = vec![];
    let t = Instant::now();
    for it in &items {
        let case = dir.join(&it.id);
        let input = case.join("input.npy");
        let result = ipk::read_inputs(&[&input])
            .and_then(|inputs| ipk::run(&mut session, inputs))
            .and_then(|outs| ipk::write_outputs(&case.join("ipukit"), &names, &outs));
        if let Err(e) = result {
            run_errors.push((it.id.clone(), format!("{e:#}")));
        }
    }
    println!(
        "e2e: {name}: converted in {convert_s:.2} s, {} image(s) run in {:.2} s",
        items.len(),
        t.elapsed().as_secs_f64()
    );

    // The same float.sim in the official TFLite interpreter: an independent check of the
    // importer and of the file itself (what Netron and TFLite accept). Only files made entirely
    // of builtin operators run there; the others are reported and skipped.
    let sim = dir.join(format!("{name}_float.sim"));
    let mut tflite_cases = vec![];
    for it in &items {
        let case = dir.join(&it.id);
        let outs: Vec<PathBuf> = (0..names.len())
            .map(|i| case.join("tflite").join(format!("{i}.npy")))
            .collect();
        fs::create_dir_all(case.join("tflite"))?;
        let mut cmd = py::script(python, "tflite_run.py");
        cmd.arg(&sim).arg(case.join("input.npy"));
        for o in &outs {
            cmd.arg("--out").arg(o);
        }
        let (ok, _, err) = util::run_capture(&mut cmd)?;
        if !ok {
            if err.contains("TFLite rejected") {
                let why = err
                    .lines()
                    .find(|l| l.contains("custom op"))
                    .unwrap_or("custom operators");
                println!(
                    "e2e: {name}: TFLite interpreter check skipped ({})",
                    why.trim()
                );
                break;
            }
            anyhow::bail!("tflite_run.py failed on {}: {}", it.id, err.trim());
        }
        tflite_cases.push((it, outs));
    }

    // Comparison.
    let mut rows = vec![];
    for (it, outs) in &tflite_cases {
        let case = dir.join(&it.id);
        let model = format!("{name} (tflite)");
        rows.push(compare(python, f, &case, outs, it, &model, opts)?);
    }
    for it in &items {
        let case = dir.join(&it.id);
        if let Some((_, e)) = run_errors.iter().find(|(id, _)| id == &it.id) {
            rows.push(Row {
                model: name.clone(),
                image: it.id.clone(),
                min_cosine: None,
                decoded: "-".into(),
                equal: "-".into(),
                ok: false,
                note: e.clone(),
            });
            continue;
        }
        rows.push(compare(
            python,
            f,
            &case,
            &[case.join("ipukit")],
            it,
            &name,
            opts,
        )?);
    }
    Ok((rows, items))
}

/// Runs compare.py on one evaluation image: ORT's outputs in `case/ort` against `cand` (a
/// folder or one .npy per output), and turns its JSON verdict into a row.
fn compare(
    python: &Path,
    f: &Fixture,
    case: &Path,
    cand: &[PathBuf],
    it: &EvalItem,
    model: &str,
    opts: &Options,
) -> Result<Row> {
    let json = case.join(format!("compare-{}.json", cand.len()));
    let _ = fs::remove_file(&json);
    let mut cmd = py::script(python, "compare.py");
    cmd.arg("--model-dir")
        .arg(&f.dir)
        .arg("--ref")
        .arg(case.join("ort"))
        .arg("--cand")
        .args(cand)
        .arg("--min-cosine")
        .arg(opts.min_cosine.to_string())
        .arg("--label")
        .arg(&it.id)
        .arg("--json")
        .arg(&json);
    if let Some(e) = &it.expect {
        cmd.arg("--expect").arg(e);
    }
    // A failed comparison exits 1 but still writes its JSON.
    let (_, out, err) = util::run_capture(&mut cmd)?;
    let parsed: Option<Comparison> = fs::read_to_string(&json)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    Ok(match parsed {
        Some(c) => Row {
            model: model.to_string(),
            image: it.id.clone(),
            min_cosine: Some(c.min_cosine),
            decoded: c.candidate_summary.clone().unwrap_or_else(|| "-".into()),
            equal: match (c.decoded_equal, c.expect_ok) {
                (Some(true), Some(false)) => "yes, not as expected".into(),
                (Some(true), _) => "yes".into(),
                (Some(false), _) => format!(
                    "NO (ORT {})",
                    c.reference_summary.clone().unwrap_or_default()
                ),
                (None, _) => "-".into(),
            },
            ok: c.ok,
            note: c.problems.join("; "),
        },
        None => Row {
            model: model.to_string(),
            image: it.id.clone(),
            min_cosine: None,
            decoded: "-".into(),
            equal: "-".into(),
            ok: false,
            note: format!("compare.py failed: {}{}", out.trim(), err.trim()),
        },
    })
}

fn print_table(rows: &[Row]) {
    println!(
        "\n{:<16} {:<32} {:>11}  {:<36} {:<8}",
        "model", "image", "min cosine", "decoded (ipukit)", "equal"
    );
    for r in rows {
        let cos = r
            .min_cosine
            .map(|c| format!("{c:.7}"))
            .unwrap_or_else(|| "-".into());
        let dec: String = r.decoded.chars().take(36).collect();
        println!(
            "{:<16} {:<32} {:>11}  {:<36} {}{}",
            r.model,
            r.image,
            cos,
            dec,
            r.equal,
            if r.ok { "" } else { "  FAIL" }
        );
    }
    println!();
}
