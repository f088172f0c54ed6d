use super::*;
use ipukit_ir::ops::{Conv2d, DepthwiseConv2d, Padding2d, Pool2d, Softmax};
use ipukit_runtime::{Session, SessionOptions, Value};

const INI: &str = "[INPUT_CONFIG]\ninputs=x;\ntraining_input_formats=RGB;\ninput_formats=BGR;\nquantizations=TRUE;\nmean=127.5:120:110;\nstd_value=60:58:62;\n[OUTPUT_CONFIG]\noutputs=prob;\ndequantizations=TRUE;\n";

fn lcg(seed: &mut u64) -> f32 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    ((*seed >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
}

/// x [1,8,8,3] → conv3x3 relu → depthwise3x3 → add(conv) → sigmoid·x → global avg → FC → softmax.
fn float_graph() -> Graph {
    let mut s = 7u64;
    let mut g = Graph::new();
    let x = g.add_input("x", DType::F32, vec![1, 8, 8, 3]);
    let w1: Vec<f32> = (0..8 * 9 * 3).map(|_| lcg(&mut s) * 0.3).collect();
    let b1: Vec<f32> = (0..8).map(|_| lcg(&mut s) * 0.1).collect();
    let w1 = g.add_const("w1", vec![8, 3, 3, 3], w1.into()).unwrap();
    let b1 = g.add_const("b1", vec![8], b1.into()).unwrap();
    let conv = Conv2d {
        strides: [1, 1],
        dilations: [1, 1],
        padding: Padding2d {
            top: 1,
            left: 1,
            bottom: 1,
            right: 1,
        },
        groups: 1,
        activation: FusedActivation::Relu,
    };
    let c1 = g
        .add_node("conv1", Op::Conv2d(conv), vec![x, w1, b1], &["c1"])
        .unwrap()[0];
    let w2: Vec<f32> = (0..9 * 8).map(|_| lcg(&mut s) * 0.5).collect();
    let w2 = g.add_const("w2", vec![1, 3, 3, 8], w2.into()).unwrap();
    let dw = DepthwiseConv2d {
        strides: [1, 1],
        dilations: [1, 1],
        padding: Padding2d {
            top: 1,
            left: 1,
            bottom: 1,
            right: 1,
        },
        depth_multiplier: 1,
        activation: FusedActivation::None,
    };
    let d1 = g
        .add_node("dw1", Op::DepthwiseConv2d(dw), vec![c1, w2], &["d1"])
        .unwrap()[0];
    let a1 = g
        .add_node("add1", Op::Binary(BinaryOp::Add), vec![c1, d1], &["a1"])
        .unwrap()[0];
    let s1 = g
        .add_node("sig1", Op::Unary(UnaryOp::Sigmoid), vec![a1], &["s1"])
        .unwrap()[0];
    let m1 = g
        .add_node("mul1", Op::Binary(BinaryOp::Mul), vec![a1, s1], &["m1"])
        .unwrap()[0];
    let pool = Pool2d {
        kind: PoolKind::Average {
            count_include_pad: false,
        },
        kernel: [8, 8],
        strides: [1, 1],
        dilations: [1, 1],
        padding: Padding2d::ZERO,
        ceil_mode: false,
    };
    let p1 = g
        .add_node("pool", Op::Pool2d(pool), vec![m1], &["p1"])
        .unwrap()[0];
    let r1 = g
        .add_node(
            "flat",
            Op::Reshape(ipukit_ir::ops::Reshape { shape: vec![1, 8] }),
            vec![p1],
            &["r1"],
        )
        .unwrap()[0];
    let wf: Vec<f32> = (0..5 * 8).map(|_| lcg(&mut s)).collect();
    let wf = g.add_const("wf", vec![5, 8], wf.into()).unwrap();
    let f1 = g
        .add_node(
            "fc",
            Op::FullyConnected(Default::default()),
            vec![r1, wf],
            &["f1"],
        )
        .unwrap()[0];
    let prob = g
        .add_node(
            "softmax",
            Op::Softmax(Softmax { axis: 1 }),
            vec![f1],
            &["prob"],
        )
        .unwrap()[0];
    g.outputs.push(prob);
    g
}

/// BGR uint8 images and their normalised RGB float versions.
fn images(n: usize) -> Vec<(Value, Value)> {
    let (mean, std) = ([127.5f32, 120.0, 110.0], [60f32, 58.0, 62.0]);
    let mut s = 3u64;
    (0..n)
        .map(|_| {
            let bgr: Vec<u8> = (0..8 * 8 * 3)
                .map(|_| ((lcg(&mut s) + 1.0) * 127.5) as u8)
                .collect();
            let rgb: Vec<f32> = bgr
                .chunks(3)
                .flat_map(|p| (0..3).map(move |c| (p[2 - c] as f32 - mean[c]) / std[c]))
                .collect();
            (
                Value::new(vec![1, 8, 8, 3], bgr).unwrap(),
                Value::new(vec![1, 8, 8, 3], rgb).unwrap(),
            )
        })
        .collect()
}

fn ranges(g: &Graph, inputs: &[Value]) -> Ranges {
    let mut r: Ranges = HashMap::new();
    let mut s = Session::new(g.clone(), SessionOptions::default()).unwrap();
    for v in inputs {
        let mut add = |t: TensorId, d: &[f32]| {
            let e = r.entry(t).or_insert((f32::INFINITY, f32::NEG_INFINITY));
            for &x in d {
                e.0 = e.0.min(x);
                e.1 = e.1.max(x);
            }
        };
        add(g.inputs[0], v.as_f32().unwrap());
        s.set_input(0, v.clone()).unwrap();
        s.invoke_with_observer(&mut |_, t, view| add(t, view.data.as_f32().unwrap()))
            .unwrap();
    }
    r
}

fn config() -> InputConfig {
    InputConfig::parse(INI, "test.ini", (1, 1)).unwrap()
}

#[test]
fn structure_follows_the_plan() {
    let g = float_graph();
    let data = images(4);
    let floats: Vec<Value> = data.iter().map(|d| d.1.clone()).collect();
    let mut plan = LowerPlan {
        ranges: ranges(&g, &floats),
        ..Default::default()
    };
    plan.int16_layers.insert("dw1".into());
    let q = lower(&g, &config(), &plan).unwrap();
    let ops: Vec<&str> = q.nodes.iter().map(|n| n.op.name()).collect();
    assert_eq!(ops[0], "InputNormalize");
    assert!(ops.contains(&"QConv2d") && ops.contains(&"QDepthwiseConv2d"));
    // The image input is BGR uint8; the model's first tensor keeps the float name's INT16 form.
    let x = q.tensor(q.inputs[0]);
    assert_eq!((x.name.as_str(), x.dtype), ("x", DType::U8));
    let Op::InputNormalize(n) = &q.nodes[0].op else {
        unreachable!()
    };
    assert_eq!(n.source_channel, vec![2, 1, 0]);
    // conv1 is 8-bit (UINT8 copy in front, INT8 weights); dw1 16-bit.
    let conv = q.nodes.iter().find(|n| n.name == "conv1").unwrap();
    assert_eq!(q.tensor(conv.inputs[0]).dtype, DType::U8);
    assert_eq!(q.tensor(conv.inputs[1]).dtype, DType::I8);
    assert_eq!(q.tensor(conv.inputs[2]).dtype, DType::I32);
    let dw = q.nodes.iter().find(|n| n.name == "dw1").unwrap();
    assert_eq!(q.tensor(dw.inputs[0]).dtype, DType::I16);
    assert_eq!(q.tensor(dw.inputs[1]).dtype, DType::I16);
    // Activations keep their float names; the output is dequantized under the model's name.
    assert!(q.find_tensor("c1").is_some() && q.find_tensor("a1").is_some());
    let out = q.tensor(q.outputs[0]);
    assert_eq!((out.name.as_str(), out.dtype), ("prob", DType::F32));
}

#[test]
fn missing_range_is_reported_with_the_node() {
    let g = float_graph();
    let e = lower(&g, &config(), &LowerPlan::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("no calibration range for tensor 'x'"), "{e}");
}

#[test]
fn unsupported_operator_is_named() {
    let mut g = Graph::new();
    let x = g.add_input("x", DType::F32, vec![1, 4]);
    let y = g
        .add_node(
            "ls",
            Op::LogSoftmax(Softmax { axis: 1 }),
            vec![x],
            &["prob"],
        )
        .unwrap()[0];
    g.outputs.push(y);
    let ini = "[INPUT_CONFIG]\ninputs=x;\ntraining_input_formats=RAWDATA_F32_NHWC;\ninput_formats=RAWDATA_F32_NHWC;\nquantizations=TRUE;\n[OUTPUT_CONFIG]\noutputs=prob;\ndequantizations=TRUE;\n";
    let cfg = InputConfig::parse(ini, "t.ini", (1, 1)).unwrap();
    let plan = LowerPlan {
        ranges: [(x, (-1.0, 1.0)), (y, (-3.0, 0.0))].into_iter().collect(),
        ..Default::default()
    };
    let e = lower(&g, &cfg, &plan).unwrap_err().to_string();
    assert_eq!(
        e,
        "cannot quantize node 'ls' (LogSoftmax): LogSoftmax has no fixed-point form"
    );
}

/// The fixed model computes what the float model computes: 16-bit layers almost exactly,
/// 8-bit layers within quantization noise.
#[test]
fn fixed_graph_follows_the_float_graph() {
    let g = float_graph();
    let data = images(6);
    let floats: Vec<Value> = data.iter().map(|d| d.1.clone()).collect();
    let base = LowerPlan {
        ranges: ranges(&g, &floats),
        ..Default::default()
    };
    let mut all16 = base.clone();
    all16.int16_layers = ["conv1", "dw1", "fc"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut fs = Session::new(g.clone(), SessionOptions::default()).unwrap();
    for (plan, want) in [(&all16, 0.99999), (&base, 0.999)] {
        let q = lower(&g, &config(), plan).unwrap();
        let mut qs = Session::new(q, SessionOptions::default()).unwrap();
        for (u8img, fimg) in &data {
            let f = fs.run(vec![fimg.clone()]).unwrap();
            let x = qs.run(vec![u8img.clone()]).unwrap();
            let (a, b) = (f[0].as_f32().unwrap(), x[0].as_f32().unwrap());
            let dot: f64 = a.iter().zip(b).map(|(p, q)| *p as f64 * *q as f64).sum();
            let na: f64 = a.iter().map(|p| (*p as f64).powi(2)).sum::<f64>().sqrt();
            let nb: f64 = b.iter().map(|p| (*p as f64).powi(2)).sum::<f64>().sqrt();
            let cos = dot / (na * nb);
            assert!(cos >= want, "cosine {cos} < {want}: {a:?} vs {b:?}");
        }
    }
}

/// PRelu with per-channel slopes of both signs (MTCNN's) becomes rescales, a product and a sum.
#[test]
fn prelu_with_negative_slopes() {
    let mut g = Graph::new();
    let x = g.add_input("x", DType::F32, vec![1, 4, 4, 2]);
    let slope = g
        .add_const("slope", vec![2], vec![-0.5f32, 0.25].into())
        .unwrap();
    let y = g
        .add_node(
            "prelu",
            Op::Binary(BinaryOp::PRelu),
            vec![x, slope],
            &["prob"],
        )
        .unwrap()[0];
    g.outputs.push(y);
    let ini = "[INPUT_CONFIG]\ninputs=x;\ntraining_input_formats=RAWDATA_F32_NHWC;\ninput_formats=RAWDATA_F32_NHWC;\nquantizations=TRUE;\n[OUTPUT_CONFIG]\noutputs=prob;\ndequantizations=TRUE;\n";
    let cfg = InputConfig::parse(ini, "t.ini", (1, 1)).unwrap();
    let mut s = 11u64;
    let xs: Vec<f32> = (0..32).map(|_| lcg(&mut s) * 3.0).collect();
    let want: Vec<f32> = xs
        .iter()
        .enumerate()
        .map(|(i, &v)| if v >= 0.0 { v } else { v * [-0.5, 0.25][i % 2] })
        .collect();
    let lo = want.iter().copied().fold(0f32, f32::min);
    let hi = want.iter().copied().fold(0f32, f32::max);
    let plan = LowerPlan {
        ranges: [(x, (-3.0, 3.0)), (y, (lo, hi))].into_iter().collect(),
        ..Default::default()
    };
    let q = lower(&g, &cfg, &plan).unwrap();
    assert!(q.nodes.iter().any(|n| matches!(n.op, Op::QBinary(_))));
    let mut qs = Session::new(q, SessionOptions::default()).unwrap();
    let got = qs
        .run(vec![Value::new(vec![1, 4, 4, 2], xs).unwrap()])
        .unwrap();
    for (a, b) in got[0].as_f32().unwrap().iter().zip(&want) {
        assert!((a - b).abs() < 2e-3, "{a} vs {b}");
    }
}

/// A channel whose weights all but vanish next to its bias (a BatchNorm folded with a tiny
/// scale) still lowers to 8 bits: its weight scale widens so the INT32 bias fits, and the
/// channel outputs its bias.
#[test]
fn vanishing_weights_with_a_large_bias_fit_int32() {
    let mut g = Graph::new();
    let x = g.add_input("x", DType::F32, vec![1, 4, 4, 2]);
    let mut s = 5u64;
    let mut w: Vec<f32> = (0..2 * 2).map(|_| lcg(&mut s) * 0.5).collect();
    w[2] = 1e-12;
    w[3] = -1e-12;
    let w = g.add_const("w", vec![2, 1, 1, 2], w.into()).unwrap();
    let b = g.add_const("b", vec![2], vec![0.1f32, 6.0].into()).unwrap();
    let conv = Conv2d {
        strides: [1, 1],
        dilations: [1, 1],
        padding: Padding2d::default(),
        groups: 1,
        activation: FusedActivation::None,
    };
    let y = g
        .add_node("conv", Op::Conv2d(conv), vec![x, w, b], &["prob"])
        .unwrap()[0];
    g.outputs.push(y);
    let ini = "[INPUT_CONFIG]\ninputs=x;\ntraining_input_formats=RAWDATA_F32_NHWC;\ninput_formats=RAWDATA_F32_NHWC;\nquantizations=TRUE;\n[OUTPUT_CONFIG]\noutputs=prob;\ndequantizations=TRUE;\n";
    let cfg = InputConfig::parse(ini, "t.ini", (1, 1)).unwrap();
    let xs: Vec<f32> = (0..32).map(|_| lcg(&mut s)).collect();
    let plan = LowerPlan {
        ranges: [(x, (-1.0, 1.0)), (y, (-2.0, 8.0))].into_iter().collect(),
        ..Default::default()
    };
    let q = lower(&g, &cfg, &plan).unwrap();
    let mut qs = Session::new(q, SessionOptions::default()).unwrap();
    let got = qs
        .run(vec![Value::new(vec![1, 4, 4, 2], xs).unwrap()])
        .unwrap();
    for pixel in got[0].as_f32().unwrap().chunks(2) {
        assert!((pixel[1] - 6.0).abs() < 1e-2, "{}", pixel[1]);
    }
}

/// An activation beyond its calibrated range (an input unlike the calibration images) does not
/// saturate: the INT16 scale keeps `INT16_HEADROOM` of room, in both layer modes.
#[test]
fn activations_beyond_the_calibrated_range_keep_their_value() {
    let mut g = Graph::new();
    let x = g.add_input("x", DType::F32, vec![1, 1, 1, 2]);
    let w = g
        .add_const("w", vec![2, 1, 1, 2], vec![1.0f32, 0.0, 0.5, 0.5].into())
        .unwrap();
    let conv = Conv2d {
        strides: [1, 1],
        dilations: [1, 1],
        padding: Padding2d::ZERO,
        groups: 1,
        activation: FusedActivation::None,
    };
    let y = g
        .add_node("conv", Op::Conv2d(conv), vec![x, w], &["prob"])
        .unwrap()[0];
    g.outputs.push(y);
    let ini = "[INPUT_CONFIG]\ninputs=x;\ntraining_input_formats=RAWDATA_F32_NHWC;\ninput_formats=RAWDATA_F32_NHWC;\nquantizations=TRUE;\n[OUTPUT_CONFIG]\noutputs=prob;\ndequantizations=TRUE;\n";
    let cfg = InputConfig::parse(ini, "t.ini", (1, 1)).unwrap();
    // Calibrated: x in [-4, 4], y in [-1, 1]; the input makes y = (2.5, 2.25).
    let mut plan = LowerPlan {
        ranges: [(x, (-4.0, 4.0)), (y, (-1.0, 1.0))].into_iter().collect(),
        ..Default::default()
    };
    for int16 in [false, true] {
        if int16 {
            plan.int16_layers.insert("conv".into());
        }
        let q = lower(&g, &cfg, &plan).unwrap();
        let mut qs = Session::new(q, SessionOptions::default()).unwrap();
        let got = qs
            .run(vec![
                Value::new(vec![1, 1, 1, 2], vec![2.5f32, 2.0]).unwrap()
            ])
            .unwrap();
        let got = got[0].as_f32().unwrap();
        for (a, b) in got.iter().zip([2.5f32, 2.25]) {
            assert!((a - b).abs() < 0.05, "16-bit {int16}: {a} vs {b}");
        }
    }
}

/// At L4 and L5 the layer whose output is the model's (`fc`, through the softmax) runs in 16
/// bits whatever its noise; below L4 every layer stays 8-bit.
#[test]
fn the_layer_making_an_output_runs_in_16_bits_at_l4_and_l5() {
    use crate::calibrate::{output_layers, plan, PlanOptions, QuantLevel};
    use crate::stats::{collect, CollectOptions};
    let g = float_graph();
    assert_eq!(
        output_layers(&g).into_iter().collect::<Vec<_>>(),
        vec!["fc".to_string()]
    );
    let samples: Vec<Vec<Value>> = images(4).into_iter().map(|(_, f)| vec![f]).collect();
    let stats = collect(
        &g,
        samples.iter().cloned().map(Ok::<_, QuantError>),
        &CollectOptions::default(),
        &|_| {},
    )
    .unwrap();
    for level in [
        QuantLevel::L1,
        QuantLevel::L3,
        QuantLevel::L4,
        QuantLevel::L5,
    ] {
        let opts = PlanOptions {
            level,
            // No layer is promoted for its noise: only the output rule acts.
            noise_threshold: Some(f64::INFINITY),
            ..Default::default()
        };
        let p = plan(&g, &stats, &config(), &samples, &opts).unwrap();
        for l in &p.layers {
            let want = if l.node == "fc" && level >= QuantLevel::L4 {
                LayerBits::Int16
            } else {
                LayerBits::Int8
            };
            assert_eq!(l.bits, want, "{} at {level:?}: {}", l.node, l.reason);
        }
        if level >= QuantLevel::L4 {
            assert!(p.lower.int16_layers.contains("fc"));
            assert_eq!(
                p.layers.iter().find(|l| l.node == "fc").unwrap().reason,
                "produces a model output"
            );
        }
    }
}

/// The refined weight clipping is an INT8 choice: a 16-bit layer keeps an outlier weight that
/// the INT8 clip cuts (a first convolution's per-channel outliers), while an 8-bit layer uses
/// the clip it was given.
#[test]
fn weight_clip_applies_to_8_bit_layers_only() {
    let mut g = Graph::new();
    let x = g.add_input("x", DType::F32, vec![1, 1, 1, 4]);
    // One output channel: an outlier weight among small ones.
    let w = g
        .add_const(
            "w",
            vec![1, 1, 1, 4],
            vec![1.0f32, 0.01, -0.02, 0.015].into(),
        )
        .unwrap();
    let conv = Conv2d {
        strides: [1, 1],
        dilations: [1, 1],
        padding: Padding2d::ZERO,
        groups: 1,
        activation: FusedActivation::None,
    };
    let y = g
        .add_node("conv", Op::Conv2d(conv), vec![x, w], &["prob"])
        .unwrap()[0];
    g.outputs.push(y);
    let ini = "[INPUT_CONFIG]\ninputs=x;\ntraining_input_formats=RAWDATA_F32_NHWC;\ninput_formats=RAWDATA_F32_NHWC;\nquantizations=TRUE;\n[OUTPUT_CONFIG]\noutputs=prob;\ndequantizations=TRUE;\n";
    let cfg = InputConfig::parse(ini, "t.ini", (1, 1)).unwrap();
    let mut plan = LowerPlan {
        ranges: [(x, (-1.0, 1.0)), (y, (-2.0, 2.0))].into_iter().collect(),
        ..Default::default()
    };
    // The INT8 MSE clip of this channel: the outlier saturates at 0.05.
    plan.weight_clip.insert(w, vec![0.05]);
    let input = vec![1.0f32, 1.0, 1.0, 1.0];
    let run = |plan: &LowerPlan| {
        let q = lower(&g, &cfg, plan).unwrap();
        let mut qs = Session::new(q, SessionOptions::default()).unwrap();
        let got = qs
            .run(vec![Value::new(vec![1, 1, 1, 4], input.clone()).unwrap()])
            .unwrap();
        got[0].as_f32().unwrap()[0]
    };
    // 8-bit: the clip holds (0.05 + 0.01 − 0.02 + 0.015).
    let got8 = run(&plan);
    assert!((got8 - 0.055).abs() < 0.01, "8-bit: {got8}");
    // 16-bit: every weight is kept, the output is the float one.
    plan.int16_layers.insert("conv".into());
    let got16 = run(&plan);
    assert!((got16 - 1.005).abs() < 1e-3, "16-bit: {got16}");
}
