//! Calibration statistics on real models (ignored: they need `cargo xtask fetch`'s models and
//! the venv's Python for the seeds' preprocessing scripts).
//!
//! `IPUKIT_PYTHON=.cache/venv/bin/python cargo test --release -p ipukit-quant --test real_models -- --ignored --nocapture`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ipukit_convert::{convert, parse_input_shapes, ConvertOptions, Platform};
use ipukit_preprocess::{collect_inputs, Preprocessor, PythonScript};
use ipukit_quant::json::{import, to_json_string, QuantParamEntry};
use ipukit_quant::range::{QuantTarget, RangeMethod};
use ipukit_quant::stats::{collect_files, input_contexts, CollectOptions};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Python the fixtures' scripts need, if there is one.
fn python() -> Option<String> {
    if let Ok(p) = std::env::var("IPUKIT_PYTHON") {
        return Some(p);
    }
    let venv = root().join(".cache/venv/bin/python");
    venv.is_file().then(|| venv.display().to_string())
}

fn check_model(name: &str, onnx: &str, shapes: &str) {
    let root = root();
    let model = root.join(".cache/models").join(onnx);
    let images = root.join(".cache/images");
    let Some(py) = python() else {
        eprintln!("skipped {name}: no Python (set IPUKIT_PYTHON or run cargo xtask venv)");
        return;
    };
    if !model.is_file() || !images.is_dir() {
        eprintln!("skipped {name}: run `cargo xtask fetch` first");
        return;
    }
    let fixture = root.join("fixtures/models").join(name);
    let float = convert(&ConvertOptions {
        platform: Platform::Onnx,
        model_file: model,
        weight_file: None,
        input_config: fixture.join("input_config.ini"),
        soc_version: "generic".into(),
        input_shapes: Some(parse_input_shapes(shapes).unwrap()),
        skip_simplify: false,
    })
    .unwrap();
    let graph = float.graph;
    let items: Vec<Vec<PathBuf>> = collect_inputs(&images, 1)
        .unwrap()
        .into_iter()
        .take(8)
        .collect();
    let script = PythonScript::with_python(&fixture.join("preprocess.py"), &py).unwrap();
    let methods = vec![Preprocessor::Python(script)];
    let contexts = input_contexts(&graph, Some(&float.config));

    let one = collect_files(
        &graph,
        &items,
        &methods,
        &contexts,
        &CollectOptions::default(),
        &|_| {},
    )
    .unwrap();
    let mut reversed = items.clone();
    reversed.reverse();
    let two = CollectOptions {
        num_process: 2,
        ..CollectOptions::default()
    };
    let par = collect_files(&graph, &reversed, &methods, &contexts, &two, &|_| {}).unwrap();
    let saving = CollectOptions {
        num_process: 2,
        memory_saving: true,
        ..CollectOptions::default()
    };
    let sav = collect_files(&graph, &items, &methods, &contexts, &saving, &|_| {}).unwrap();
    assert_eq!(
        one.digest(),
        par.digest(),
        "{name}: num_process 1 vs 2 (reversed order)"
    );
    assert_eq!(one.digest(), sav.digest(), "{name}: memory saving");
    assert_eq!(one, par);

    assert_eq!(one.samples(), items.len() as u64);
    assert!(!one.weights().is_empty());
    let mut entries = Vec::new();
    for a in one.activations() {
        assert!(a.count() > 0, "{name}: {} never observed", a.name());
        assert_eq!(a.nonfinite(), 0, "{name}: {}", a.name());
        for m in [
            RangeMethod::MinMax,
            RangeMethod::MovingAverage,
            RangeMethod::Percentile(99.99),
            RangeMethod::Mse,
            RangeMethod::Entropy,
        ] {
            for t in [QuantTarget::INT16, QuantTarget::UINT8] {
                let r = a.range(m, t).unwrap();
                assert!(r.min <= 0.0 && r.max >= 0.0 && r.min.is_finite() && r.max.is_finite());
            }
        }
        let r = a.range(RangeMethod::Mse, QuantTarget::INT16).unwrap();
        entries.push(QuantParamEntry {
            name: a.name().to_string(),
            min: vec![r.min],
            max: vec![r.max],
            bit: 16,
            data: None,
        });
    }
    for w in one.weights() {
        let ranges = w
            .channel_ranges(RangeMethod::Mse, QuantTarget::INT8)
            .unwrap();
        entries.push(QuantParamEntry {
            name: w.name().to_string(),
            min: ranges.iter().map(|r| r.min).collect(),
            max: ranges.iter().map(|r| r.max).collect(),
            bit: 8,
            data: None,
        });
    }
    // Ranges written in the seeds' JSON import back without a rejection.
    let report = import(&to_json_string(&entries), &graph).unwrap();
    assert!(
        report.rejected.is_empty(),
        "{name}: {:?}",
        &report.rejected[..report.rejected.len().min(5)]
    );
    assert_eq!(report.accepted.len(), entries.len());
    println!(
        "{name}: {} activations, {} weights, digest {:016x}",
        one.activations().len(),
        one.weights().len(),
        one.digest()
    );
}

#[test]
#[ignore = "needs the fetched models and the venv's Python"]
fn orinet() {
    check_model(
        "orinet",
        "occular-deskew/orientation_orinet_fp32.onnx",
        "1,3,320,320",
    );
}

#[test]
#[ignore = "needs the fetched models and the venv's Python"]
fn yolov8n() {
    check_model("yolov8n_nudenet", "nudenet/320n.onnx", "1,3,320,320");
}
