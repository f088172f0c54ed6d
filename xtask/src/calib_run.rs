//! Calibration plumbing shared by xtask's fixed-point runs (the fixed-point stage of
//! `cargo xtask e2e` and the quant sections of `cargo xtask bench-peers`): a fixture's
//! calibration list, the calibrator's options for it, the evaluation images a fixed model is
//! compared on, its outputs as real numbers, and outputs read back from disk.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use ipukit_calibrator::CalibrateOptions;
use ipukit_ir::{DType, Graph, TensorData};
use ipukit_quant::calibrate::QuantLevel;
use ipukit_runtime::Value;
use serde::Deserialize;

use crate::e2e::EvalItem;
use crate::models::Fixture;
use crate::util::{self, rel};
use crate::{npy, py};

/// Makes the fixture's `[[calibration]]` images in `dir` (xtask/py/eval_images.py) and lists
/// them in `dir/list.txt`, one absolute path a line: the calibrator's `-i LIST`. Returns the
/// list file and the number of images.
pub fn calibration_list(python: &Path, f: &Fixture, dir: &Path) -> Result<(PathBuf, usize)> {
    let mut cmd = py::script(python, "eval_images.py");
    cmd.arg("--model-dir")
        .arg(&f.dir)
        .arg("--out-dir")
        .arg(dir)
        .args(["--section", "calibration"]);
    py::run(cmd)?;
    let listing = dir.join("calibration.json");
    let text =
        fs::read_to_string(&listing).with_context(|| format!("cannot read {}", rel(&listing)))?;
    let cal: Vec<EvalItem> =
        serde_json::from_str(&text).with_context(|| format!("{} is not valid", rel(&listing)))?;
    if cal.is_empty() {
        bail!("{}/model.toml has no [[calibration]] image", rel(&f.dir));
    }
    let mut lines = String::new();
    for c in &cal {
        let p = fs::canonicalize(&c.path)
            .with_context(|| format!("calibration image {} is missing", c.path.display()))?;
        writeln!(lines, "{}", p.display())?;
    }
    let list = dir.join("list.txt");
    util::write_atomic(&list, lines.as_bytes())?;
    Ok((list, cal.len()))
}

/// The evaluation images a fixed model is compared on: those not marked `float_only` (the
/// others share pixels with calibration images).
pub fn fixed_eval_items(items: &[EvalItem]) -> Vec<EvalItem> {
    items.iter().filter(|it| !it.float_only).cloned().collect()
}

/// The calibrator's options as `ipu-calibrator -m MODEL -i IMAGES -n PREPROCESS -o OUTPUT
/// --quant_level LEVEL --num_process N` gives them (a fixture's preprocessing is its
/// `preprocess.py`).
pub fn calibrate_options(
    model: &Path,
    images: &Path,
    preprocess: &Path,
    output: &Path,
    level: QuantLevel,
    num_process: usize,
) -> CalibrateOptions {
    CalibrateOptions {
        model: model.to_path_buf(),
        images: images.to_path_buf(),
        preprocess: preprocess.display().to_string(),
        output: Some(output.to_path_buf()),
        num_process: num_process.max(1),
        level,
        ..Default::default()
    }
}

/// Integer outputs as real numbers (scale and zero point of their tensor); float outputs as
/// they are.
pub fn dequantize(graph: &Graph, outs: Vec<Value>) -> Result<Vec<Value>> {
    outs.into_iter()
        .zip(&graph.outputs)
        .map(|(v, &t)| {
            if v.data.dtype() == DType::F32 {
                return Ok(v);
            }
            let tensor = graph.tensor(t);
            let (scale, zp) = tensor
                .quant
                .as_ref()
                .and_then(|q| Some((*q.scale.first()?, *q.zero_point.first()?)))
                .ok_or_else(|| {
                    anyhow!(
                        "output {} is {:?} without quantization parameters",
                        tensor.name,
                        v.data.dtype()
                    )
                })?;
            let real: Vec<f32> = v
                .data
                .to_f32_vec()
                .into_iter()
                .map(|x| ((x as f64 - zp as f64) * scale as f64) as f32)
                .collect();
            Ok(Value {
                shape: v.shape,
                data: TensorData::F32(real.into()),
            })
        })
        .collect()
}

/// Outputs written by `ipk::write_outputs` or xtask/py/common.py's `write_outputs`:
/// `outputs.json` and one `.npy` each, in order.
pub fn read_outputs(dir: &Path) -> Result<Vec<Value>> {
    #[derive(Deserialize)]
    struct Entry {
        file: String,
    }
    let listing = dir.join("outputs.json");
    let text =
        fs::read_to_string(&listing).with_context(|| format!("cannot read {}", rel(&listing)))?;
    let entries: Vec<Entry> =
        serde_json::from_str(&text).with_context(|| format!("{} is not valid", rel(&listing)))?;
    entries
        .iter()
        .map(|e| {
            let (shape, data) = npy::read(&dir.join(&e.file))?;
            Ok(Value { shape, data })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipukit_ir::QuantParams;

    #[test]
    fn dequantize_uses_scale_and_zero_point() {
        let mut g = Graph::new();
        let id = g.add_input("y", DType::I16, vec![1, 3]);
        g.tensors[id.0].quant = Some(QuantParams {
            scale: vec![0.5],
            zero_point: vec![2],
            ..Default::default()
        });
        g.outputs.push(id);
        let v = Value {
            shape: vec![1, 3],
            data: TensorData::I16(vec![2, 4, -2].into()),
        };
        let out = dequantize(&g, vec![v]).unwrap();
        assert_eq!(out[0].data.to_f32_vec(), vec![0.0, 1.0, -2.0]);
        assert_eq!(out[0].shape, vec![1, 3]);
    }

    #[test]
    fn dequantize_rejects_integer_output_without_parameters() {
        let mut g = Graph::new();
        let id = g.add_input("y", DType::I16, vec![1]);
        g.outputs.push(id);
        let v = Value {
            shape: vec![1],
            data: TensorData::I16(vec![1].into()),
        };
        assert!(dequantize(&g, vec![v]).is_err());
    }
}
