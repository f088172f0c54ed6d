//! `cargo xtask demo`: the main job end to end on the bundled default model.
//!
//! Builds the tools and runs them as a user would, printing each command: convert the PP-OCR
//! text-direction classifier in `fixtures/default/`, calibrate it into a fixed-point model,
//! compile that into an offline image, and classify the two bundled text lines with the float
//! model, the fixed model and the offline image.

use crate::util::{repo_root, run_capture, show};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The classifier's two classes.
const LABELS: [&str; 2] = ["upright (0°)", "upside down (180°)"];

fn tool(bin_dir: &Path, name: &str) -> Command {
    Command::new(bin_dir.join(name))
}

/// Runs a tool, echoing the command line; fails with its stderr.
fn step(cmd: &mut Command) -> Result<String> {
    println!("$ {}", show(cmd));
    let (ok, out, err) = run_capture(cmd)?;
    if !ok {
        bail!("{}", err.trim());
    }
    Ok(out)
}

/// Builds the binaries and runs the demo.
pub fn run() -> Result<()> {
    let root = repo_root();
    let fixtures = root.join("fixtures/default");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    println!("building the tools (cargo build --release --bins) ...");
    let status = Command::new(&cargo)
        .current_dir(&root)
        .args(["build", "--release", "--quiet", "--bins"])
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("building the tools failed");
    }
    let bin_dir = root.join("target/release");
    let work = root.join("target/demo");
    std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let model = fixtures.join("ch_ppocr_mobile_v2.0_cls_infer.onnx");
    let ini = fixtures.join("input_config.ini");
    let pre = fixtures.join("preprocess.toml");
    let images: Vec<PathBuf> = ["text_line.png", "text_line_upside_down.png"]
        .iter()
        .map(|f| fixtures.join(f))
        .collect();

    let float_sim = work.join("ppocr_cls_float.sim");
    step(
        tool(&bin_dir, "ipu-convert")
            .arg("onnx")
            .arg("--model_file")
            .arg(&model)
            .arg("--input_config")
            .arg(&ini)
            .args(["--input_shapes", "1,3,48,192"])
            .arg("--output_file")
            .arg(&float_sim),
    )?;
    let fixed_sim = work.join("ppocr_cls_fixed.sim");
    // Calibration on the bundled images (a real deployment calibrates on many more).
    let out = step(
        tool(&bin_dir, "ipu-calibrator")
            .arg("-m")
            .arg(&float_sim)
            .arg("-i")
            .arg(&fixtures)
            .arg("-n")
            .arg(&pre)
            .arg("-o")
            .arg(&fixed_sim),
    )?;
    for line in out
        .lines()
        .filter(|l| l.contains("layers:") || l.contains("fixed vs float"))
    {
        println!("  {line}");
    }

    let image = work.join("ppocr_cls.img");
    let out = step(
        tool(&bin_dir, "ipu-compiler")
            .arg("-m")
            .arg(&fixed_sim)
            .args(["-c", "Classification"])
            .arg("-o")
            .arg(&image),
    )?;
    for line in out.lines().filter(|l| !l.trim().is_empty()).take(3) {
        println!("  {line}");
    }

    println!();
    let mut answers = Vec::new();
    for (stage, last) in [
        ("float", &float_sim),
        ("fixed", &fixed_sim),
        ("offline", &image),
    ] {
        for img in &images {
            let out = step(
                tool(&bin_dir, "ipu-simulator")
                    .current_dir(&work)
                    .arg("-i")
                    .arg(img)
                    .arg("-m")
                    .arg(last)
                    .arg("-n")
                    .arg(&pre)
                    .args(["-c", "Classification"]),
            )?;
            let top = out
                .lines()
                .find(|l| l.contains("top-5"))
                .unwrap_or("")
                .to_string();
            let class = top
                .split("top-5")
                .nth(1)
                .and_then(|s| s.split_whitespace().next())
                .and_then(|c| c.parse::<usize>().ok());
            let name = img
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            match class.and_then(|c| LABELS.get(c).map(|l| (c, l))) {
                Some((c, label)) => {
                    println!("=> {stage} model, {name}: class {c}, {label}\n");
                    answers.push((stage, name, c));
                }
                None => bail!("unexpected simulator output: {out}"),
            }
        }
    }
    // The offline image must answer exactly as the fixed model it was compiled from.
    for (stage, name, c) in answers.iter().filter(|a| a.0 == "offline") {
        let fixed = answers.iter().find(|a| a.0 == "fixed" && a.1 == *name);
        if fixed.map(|f| f.2) != Some(*c) {
            bail!("the {stage} image and the fixed model disagree on {name}");
        }
    }
    println!("demo done; the models are in {}", work.display());
    Ok(())
}
