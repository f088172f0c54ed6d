//! The bundled default model converted and calibrated in a temporary directory.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use ipukit_ir::Graph;
use ipukit_simfmt::SimMetadata;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/default")
}

/// Converts and calibrates the default model once per test binary; returns the fixed graph,
/// its metadata and the fixed.sim path.
pub fn default_fixed() -> (Graph, SimMetadata, PathBuf) {
    static CELL: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_dir, fixed) = CELL.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let fx = fixtures();
        let opts = ipukit_convert::ConvertOptions {
            platform: ipukit_convert::Platform::Onnx,
            model_file: fx.join("ch_ppocr_mobile_v2.0_cls_infer.onnx"),
            weight_file: None,
            input_config: fx.join("input_config.ini"),
            soc_version: "generic".into(),
            input_shapes: Some(vec![vec![1, 3, 48, 192]]),
            skip_simplify: false,
        };
        let float = ipukit_convert::convert(&opts).unwrap();
        let float_path = dir.path().join("ppocr_cls_float.sim");
        float.write(&float_path).unwrap();
        let fixed_path = dir.path().join("ppocr_cls_fixed.sim");
        let copts = ipukit_calibrator::CalibrateOptions {
            model: float_path,
            images: fx.clone(),
            preprocess: fx.join("preprocess.toml").display().to_string(),
            output: Some(fixed_path.clone()),
            ..Default::default()
        };
        ipukit_calibrator::calibrate(&copts, &|_| {}).unwrap();
        (dir, fixed_path)
    });
    let (g, m) = ipukit_simfmt::read_sim_file(fixed).unwrap();
    (g, m, fixed.clone())
}

/// The two bundled images preprocessed for the fixed model (`norm=False`, UINT8 NHWC).
pub fn images(g: &Graph, meta: &SimMetadata) -> Vec<ipukit_runtime::Value> {
    use ipukit_preprocess::{InputContext, Preprocessor};
    let fx = fixtures();
    let config = meta
        .input_config
        .as_deref()
        .map(|j| ipukit_config::InputConfig::from_json(j).unwrap());
    let t = g.tensor(g.inputs[0]);
    let mut ctx = match config.as_ref().and_then(|c| c.input(&t.name)) {
        Some(spec) => InputContext::from_spec(spec, Some(t.shape.clone())),
        None => InputContext {
            name: t.name.clone(),
            shape: Some(t.shape.clone()),
            ..Default::default()
        },
    };
    ctx.raw_dtype = Some(t.dtype);
    let pre = Preprocessor::from_arg(&fx.join("preprocess.toml").display().to_string()).unwrap();
    ["text_line.png", "text_line_upside_down.png"]
        .iter()
        .map(|f| {
            let (shape, data) = pre.run(&fx.join(f), false, &ctx).unwrap().into_parts();
            ipukit_runtime::Value::new(shape, data).unwrap()
        })
        .collect()
}

/// Outputs of the fixed model run by the runtime session.
pub fn session_outputs(g: &Graph, input: &ipukit_runtime::Value) -> Vec<ipukit_runtime::Value> {
    let mut s = ipukit_runtime::Session::new(
        g.clone(),
        ipukit_runtime::SessionOptions { threads: Some(2) },
    )
    .unwrap();
    s.run(vec![input.clone()]).unwrap()
}
