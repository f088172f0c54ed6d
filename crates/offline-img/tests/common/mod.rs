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

/// A small fixed graph with every kind of step: an image input normalised in the model, a
/// table chain (QLut → QRescale), a Pad folded into an 8-bit convolution, an alias (Reshape)
/// and a dequantized output.
pub fn small_fixed() -> (Graph, SimMetadata) {
    use ipukit_ir::ops::fixed::{
        Dequantize, ImageInput, InputNormalize, OutRange, QConv2d, QLayer, QLut, QRescale, Requant,
    };
    use ipukit_ir::ops::{Conv2d, FusedActivation, Pad, PadMode, Padding2d, Reshape};
    use ipukit_ir::{DType, Op, QuantParams};
    let mut g = Graph::new();
    let x = g.add_input("image", DType::U8, vec![1, 6, 5, 3]);
    let norm = Op::InputNormalize(InputNormalize {
        image: ImageInput::Interleaved,
        source_channel: vec![2, 1, 0],
        mean_q: vec![128 * 256; 3],
        requant: vec![Requant::from_ratio(0.5).unwrap(); 3],
    });
    let a = g.add_node("norm", norm, vec![x], &["a"]).unwrap()[0];
    let table: Vec<i16> = (0..1025i32)
        .map(|k| ((k * 61) % 65536 - 32768) as i16 / 3)
        .collect();
    let l = g
        .add_node("lut", Op::QLut(QLut { table }), vec![a], &["l"])
        .unwrap()[0];
    let r = g
        .add_node(
            "to_u8",
            Op::QRescale(QRescale {
                input_zero_point: 0,
                positive: vec![Requant::from_ratio(0.01).unwrap()],
                negative: vec![Requant::from_ratio(0.002).unwrap()],
                out_dtype: DType::U8,
                out: OutRange::full(DType::U8, 100),
            }),
            vec![l],
            &["r"],
        )
        .unwrap()[0];
    let p = g
        .add_node(
            "pad",
            Op::Pad(Pad {
                pads: vec![[0, 0], [1, 1], [0, 2], [0, 0]],
                mode: PadMode::Constant(100.0),
            }),
            vec![r],
            &["p"],
        )
        .unwrap()[0];
    let w = g
        .add_const(
            "w",
            vec![4, 3, 3, 3],
            (0..108)
                .map(|i| ((i * 37) % 255) as i8)
                .collect::<Vec<_>>()
                .into(),
        )
        .unwrap();
    let b = g
        .add_const("b", vec![4], vec![5i32, -7, 1000, 0].into())
        .unwrap();
    let conv = Op::QConv2d(QConv2d {
        conv: Conv2d {
            strides: [1, 2],
            dilations: [1, 1],
            padding: Padding2d {
                top: 0,
                left: 1,
                bottom: 1,
                right: 0,
            },
            groups: 1,
            activation: FusedActivation::None,
        },
        layer: QLayer {
            input_zero_point: 100,
            requant: (0..4)
                .map(|c| Requant::from_ratio(0.001 * (c + 1) as f64).unwrap())
                .collect(),
            out_dtype: DType::I16,
            out: OutRange::full(DType::I16, 0),
        },
    });
    let c = g.add_node("conv", conv, vec![p, w, b], &["c"]).unwrap()[0];
    let n = g.tensor(c).numel();
    let f = g
        .add_node(
            "flat",
            Op::Reshape(Reshape { shape: vec![1, n] }),
            vec![c],
            &["f"],
        )
        .unwrap()[0];
    g.tensor_mut(f).quant = Some(QuantParams {
        scale: vec![0.05],
        zero_point: vec![0],
        min: vec![-1600.0],
        max: vec![1600.0],
        quantized_dimension: 0,
    });
    let y = g
        .add_node(
            "dequant",
            Op::Dequantize(Dequantize {
                scale: 0.05,
                zero_point: 0,
            }),
            vec![f],
            &["y"],
        )
        .unwrap()[0];
    g.outputs.push(y);
    g.outputs.push(c);
    g.validate().unwrap();
    (g, SimMetadata::new(ipukit_simfmt::Stage::Fixed, "test"))
}
