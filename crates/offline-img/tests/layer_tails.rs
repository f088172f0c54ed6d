//! Layer groups the loader fuses: `InputNormalize` with the rescale to UINT8 after it (one
//! table per channel), a convolution with TFLite's PReLU block (one pass per element), and a
//! convolution with a SiLU and its UINT8 copy (one table), a depthwise convolution with
//! MobileNetV3's HardSwish table and a convolution with the max pool that tiles its output
//! (which only the image fuses): bit-exact with the runtime session, fused and node by node,
//! on several images and thread counts.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use ipukit_ir::ops::fixed::{
    ImageInput, InputNormalize, OutRange, QBinary, QBinaryKind, QConv2d, QDepthwiseConv2d, QLayer,
    QReduce, QRescale, Requant,
};
use ipukit_ir::ops::{
    Conv2d, DepthwiseConv2d, FusedActivation, Padding2d, Pool2d, PoolKind, Reduce, ReduceOp,
};
use ipukit_ir::{DType, Graph, Op, TensorData, TensorId};
use ipukit_kernels::int::build_lut;
use ipukit_offline_img::{compile, CompileOptions, LoadOptions, OfflineModel};
use ipukit_runtime::{Session, SessionOptions, Value};
use ipukit_simfmt::{SimMetadata, Stage};

const H: usize = 21;
const W: usize = 19;

fn rq(r: f64) -> Requant {
    Requant::from_ratio(r).unwrap()
}

/// xorshift values in `lo..=hi`.
fn values(n: usize, seed: u64, lo: i64, hi: i64) -> Vec<i64> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            lo + ((s >> 11) % (hi - lo + 1) as u64) as i64
        })
        .collect()
}

fn conv(g: &mut Graph, name: &str, x: TensorId, cout: usize, out: OutRange) -> TensorId {
    let cin = g.tensor(x).shape[3];
    let bits16 = g.tensor(x).dtype == DType::I16;
    let n = cout * 9 * cin;
    let w: TensorData = if bits16 {
        values(n, 7, -3000, 3000)
            .into_iter()
            .map(|v| v as i16)
            .collect::<Vec<_>>()
            .into()
    } else {
        values(n, 8, -127, 127)
            .into_iter()
            .map(|v| v as i8)
            .collect::<Vec<_>>()
            .into()
    };
    let wt = g
        .add_const(&format!("{name}_w"), vec![cout, 3, 3, cin], w)
        .unwrap();
    let op = Op::QConv2d(QConv2d {
        conv: Conv2d {
            strides: [1, 1],
            dilations: [1, 1],
            padding: Padding2d {
                top: 1,
                left: 1,
                bottom: 1,
                right: 1,
            },
            groups: 1,
            activation: FusedActivation::None,
        },
        layer: QLayer {
            input_zero_point: if bits16 { 0 } else { 128 },
            requant: (0..cout)
                .map(|c| rq(if bits16 { 3e-4 } else { 3e-2 } * (1.0 + c as f64 / 8.0)))
                .collect(),
            out_dtype: if out.min < 0 { DType::I16 } else { DType::U8 },
            out,
        },
    });
    g.add_node(name, op, vec![x, wt], &[&format!("{name}_out")])
        .unwrap()[0]
}

fn rescale(g: &mut Graph, name: &str, x: TensorId, r: QRescale) -> TensorId {
    g.add_node(name, Op::QRescale(r), vec![x], &[&format!("{name}_out")])
        .unwrap()[0]
}

fn binary(g: &mut Graph, name: &str, kind: QBinaryKind, a: TensorId, b: TensorId) -> TensorId {
    let op = Op::QBinary(QBinary {
        kind,
        out: OutRange::full(DType::I16, 0),
    });
    g.add_node(name, op, vec![a, b], &[&format!("{name}_out")])
        .unwrap()[0]
}

fn to_u8(ratio: f64) -> QRescale {
    QRescale {
        input_zero_point: 0,
        positive: vec![rq(ratio)],
        negative: vec![rq(ratio)],
        out_dtype: DType::U8,
        out: OutRange::full(DType::U8, 128),
    }
}

/// image → normalize → UINT8 → conv (8-bit) → PReLU → conv (16-bit) → SiLU → UINT8 → conv.
fn tails_graph() -> Graph {
    let mut g = Graph::new();
    let x = g.add_input("image", DType::U8, vec![1, H, W, 3]);
    let s0 = 127.5 / 58.0 / 32767.0;
    let norm = Op::InputNormalize(InputNormalize {
        image: ImageInput::Interleaved,
        source_channel: vec![2, 1, 0],
        mean_q: vec![32640; 3],
        requant: vec![rq(1.0 / (256.0 * 58.0 * s0)); 3],
    });
    let a = g.add_node("normalize", norm, vec![x], &["a"]).unwrap()[0];
    let b = rescale(&mut g, "a_uint8", a, to_u8(1.0 / 256.0));
    let full16 = OutRange::full(DType::I16, 0);
    let c = conv(&mut g, "conv0", b, 8, full16);
    let relu = QRescale {
        input_zero_point: 0,
        positive: vec![rq(1.0)],
        negative: vec![rq(1.0)],
        out_dtype: DType::I16,
        out: OutRange {
            zero_point: 0,
            min: 0,
            max: 32767,
        },
    };
    let pos = rescale(&mut g, "prelu_positive", c, relu);
    let neg_part = QRescale {
        input_zero_point: 0,
        positive: vec![rq(1.0)],
        negative: (0..8).map(|k| rq(0.5 + k as f64 / 16.0)).collect(),
        out_dtype: DType::I16,
        out: OutRange {
            zero_point: 0,
            min: -32768,
            max: 0,
        },
    };
    let neg = rescale(&mut g, "prelu_negative", c, neg_part);
    let slopes: Vec<i16> = values(8, 9, 1000, 30000)
        .into_iter()
        .map(|v| v as i16)
        .collect();
    let slope = g.add_const("slope", vec![8], slopes.into()).unwrap();
    let mul = QBinaryKind::Mul(rq(1.0 / 32768.0));
    let scaled = binary(&mut g, "prelu_scaled", mul, neg, slope);
    let add = QBinaryKind::Add {
        ma: 1 << 19,
        mb: 3 << 18,
        shift: 20,
    };
    let prelu = binary(&mut g, "prelu", add, pos, scaled);
    let d = conv(&mut g, "conv1", prelu, 12, full16);
    let sig = build_lut(|v| 1.0 / (1.0 + (-v).exp()), 1e-3, 1.0 / 32767.0);
    let s = g
        .add_node("sigmoid", Op::QLut(sig), vec![d], &["s"])
        .unwrap()[0];
    let silu = binary(&mut g, "silu", mul, d, s);
    let e = rescale(&mut g, "silu_uint8", silu, to_u8(1.0 / 128.0));
    let y = conv(&mut g, "conv2", e, 4, OutRange::full(DType::U8, 10));
    g.outputs.push(y);
    g.validate().unwrap();
    g
}

#[test]
fn fused_layer_groups_are_bit_exact_with_the_session() {
    let g = tails_graph();
    let c = compile(
        &g,
        &SimMetadata::new(Stage::Fixed, "tails"),
        &CompileOptions::default(),
    )
    .unwrap();
    for threads in [1usize, 2] {
        let opts = LoadOptions {
            threads: Some(threads),
        };
        let mut m = OfflineModel::from_bytes(&c.bytes, &opts).unwrap();
        assert_eq!(
            m.fused_layers(),
            [
                ("normalize", "a_uint8"),
                ("conv0", "prelu"),
                ("conv1", "silu_uint8")
            ]
        );
        let mut s = Session::new(
            g.clone(),
            SessionOptions {
                threads: Some(threads),
            },
        )
        .unwrap();
        assert_eq!(s.fused_nodes(), m.fused_layers());
        for seed in 0..4 {
            let img: Vec<u8> = values(H * W * 3, seed, 0, 255)
                .into_iter()
                .map(|v| v as u8)
                .collect();
            let x = Value::new(vec![1, H, W, 3], img).unwrap();
            let want = s.run(vec![x.clone()]).unwrap();
            let got = m.run(vec![x]).unwrap();
            assert_eq!(got, want, "image {seed}, {threads} thread(s)");
            // And the session's unfused plan, every node alone.
            s.invoke_with_observer(&mut |_, _, _| {}).unwrap();
            assert_eq!(vec![s.output(0).unwrap()], want, "unfused, image {seed}");
            // Not a degenerate output: the values vary.
            let v = want[0].data.as_u8().unwrap();
            assert!(v.iter().any(|&e| e != v[0]), "constant output");
        }
    }
}

/// The profiled run gives the outputs of a plain run and one timed row per step, fused groups
/// as one row naming their first and last node and listing their operators.
#[test]
fn profiled_runs_time_every_step_once() {
    let g = tails_graph();
    let c = compile(
        &g,
        &SimMetadata::new(Stage::Fixed, "tails"),
        &CompileOptions::default(),
    )
    .unwrap();
    let mut m = OfflineModel::from_bytes(&c.bytes, &LoadOptions { threads: Some(2) }).unwrap();
    let img: Vec<u8> = values(H * W * 3, 7, 0, 255)
        .into_iter()
        .map(|v| v as u8)
        .collect();
    let x = Value::new(vec![1, H, W, 3], img).unwrap();
    let want = m.run(vec![x.clone()]).unwrap();
    m.set_input(0, x).unwrap();
    let steps = m.invoke_profiled().unwrap();
    assert_eq!(vec![m.output(0).unwrap()], want);
    let groups: Vec<(&str, &str)> = steps
        .iter()
        .filter(|s| s.first != s.last)
        .map(|s| (s.first.as_str(), s.last.as_str()))
        .collect();
    assert_eq!(groups, m.fused_layers());
    // Every node of the graph is in exactly one row.
    let ops: usize = steps.iter().map(|s| s.ops.len()).sum();
    assert_eq!(ops, g.nodes.len());
    assert_eq!(steps[0].ops, ["InputNormalize", "QRescale"]);
    assert!(steps.iter().any(|s| !s.time.is_zero()));
    // Before any input is set, profiling fails like invoke.
    let mut fresh = OfflineModel::from_bytes(&c.bytes, &LoadOptions::default()).unwrap();
    assert!(fresh.invoke_profiled().is_err());
}

/// image → normalize → UINT8 → conv (8-bit, to INT16) → depthwise 5×5 (16-bit) → HardSwish
/// table and its square (the tail), then a sum with the depthwise layer's input (which ends
/// the tail: it reads a value from outside).
fn depthwise_graph() -> Graph {
    let (mut g, c, h) = depthwise_hswish();
    let sq = binary(&mut g, "square", QBinaryKind::Mul(rq(1.0 / 32768.0)), h, h);
    let add = QBinaryKind::Add {
        ma: 1 << 19,
        mb: 1 << 19,
        shift: 20,
    };
    let y = binary(&mut g, "sum", add, sq, c);
    g.outputs.push(y);
    g.validate().unwrap();
    g
}

/// image → normalize → UINT8 → conv (8-bit, to INT16) → depthwise 5×5 (16-bit) → HardSwish
/// table: the graph, the convolution's output and the table's.
fn depthwise_hswish() -> (Graph, TensorId, TensorId) {
    let mut g = Graph::new();
    let x = g.add_input("image", DType::U8, vec![1, H, W, 3]);
    let norm = Op::InputNormalize(InputNormalize {
        image: ImageInput::Interleaved,
        source_channel: vec![0, 1, 2],
        mean_q: vec![32640; 3],
        requant: vec![rq(0.5); 3],
    });
    let a = g.add_node("normalize", norm, vec![x], &["a"]).unwrap()[0];
    let b = rescale(&mut g, "a_uint8", a, to_u8(1.0 / 256.0));
    let c = conv(&mut g, "conv0", b, 16, OutRange::full(DType::I16, 0));
    let w: Vec<i16> = values(25 * 16, 11, -32767, 32767)
        .into_iter()
        .map(|v| v as i16)
        .collect();
    let wt = g.add_const("dw_w", vec![1, 5, 5, 16], w.into()).unwrap();
    let dw = Op::QDepthwiseConv2d(QDepthwiseConv2d {
        conv: DepthwiseConv2d {
            strides: [1, 1],
            dilations: [1, 1],
            padding: Padding2d {
                top: 2,
                left: 2,
                bottom: 2,
                right: 2,
            },
            depth_multiplier: 1,
            activation: FusedActivation::None,
        },
        layer: QLayer {
            input_zero_point: 0,
            requant: (0..16).map(|k| rq(2e-5 * (1.0 + k as f64 / 4.0))).collect(),
            out_dtype: DType::I16,
            out: OutRange::full(DType::I16, 0),
        },
    });
    let d = g.add_node("dw", dw, vec![c, wt], &["dw_out"]).unwrap()[0];
    let hswish = build_lut(
        |v| v * (v + 3.0).clamp(0.0, 6.0) / 6.0,
        8.0 / 32767.0,
        8.0 / 32767.0,
    );
    let h = g
        .add_node("hswish", Op::QLut(hswish), vec![d], &["h"])
        .unwrap()[0];
    (g, c, h)
}

/// Compiles `g` and checks what only the image fuses: the groups it runs (`groups`), that
/// the session fuses none starting at the same node, that `internal` tensors (never written)
/// have no place in the memory plan, and that the INT16 output is the session's on three
/// images of shape `input`, with 1 and 2 threads.
fn check_image_only_fusion(
    g: &Graph,
    groups: &[(&str, &str)],
    internal: &[&str],
    input: [usize; 4],
) {
    let c = compile(
        g,
        &SimMetadata::new(Stage::Fixed, "image-only"),
        &CompileOptions::default(),
    )
    .unwrap();
    for name in internal {
        let t = g.tensors.iter().position(|t| t.name == *name).unwrap();
        assert_eq!(
            c.image.plan.place[t], None,
            "group-internal '{name}' has a place"
        );
    }
    for threads in [1usize, 2] {
        let opts = LoadOptions {
            threads: Some(threads),
        };
        let mut m = OfflineModel::from_bytes(&c.bytes, &opts).unwrap();
        assert_eq!(m.fused_layers(), groups);
        let mut s = Session::new(
            g.clone(),
            SessionOptions {
                threads: Some(threads),
            },
        )
        .unwrap();
        let image_only: Vec<&str> = groups[1..].iter().map(|&(first, _)| first).collect();
        assert!(s
            .fused_nodes()
            .iter()
            .all(|(first, _)| !image_only.contains(first)));
        for seed in 0..3 {
            let img: Vec<u8> = values(input.iter().product(), seed, 0, 255)
                .into_iter()
                .map(|v| v as u8)
                .collect();
            let x = Value::new(input.to_vec(), img).unwrap();
            let want = s.run(vec![x.clone()]).unwrap();
            assert_eq!(
                m.run(vec![x]).unwrap(),
                want,
                "image {seed}, {threads} thread(s)"
            );
            let v = want[0].data.as_i16().unwrap();
            assert!(v.iter().any(|&e| e != v[0]), "constant output");
        }
    }
}

/// Only the image fuses a depthwise layer with its tail; its integers stay the session's, and
/// the memory plan gives the never-written layer output no place.
#[test]
fn depthwise_tails_are_fused_in_the_image_only() {
    check_image_only_fusion(
        &depthwise_graph(),
        &[("normalize", "a_uint8"), ("dw", "square")],
        &["dw_out", "h"],
        [1, H, W, 3],
    );
}

/// image → normalize → UINT8 → conv (8-bit, to INT16) → depthwise 5×5 (16-bit) → HardSwish
/// table → global average pool (a `QReduce` Mean over height and width) → the product of the
/// HardSwish output and the pooled channels: a squeeze-and-excitation block's shape.
fn squeeze_graph() -> Graph {
    let (mut g, _, h) = depthwise_hswish();
    let mean = Op::QReduce(QReduce {
        reduce: Reduce {
            op: ReduceOp::Mean,
            axes: vec![1, 2],
            keep_dims: true,
        },
        input_zero_point: 0,
        requant: rq(4.0),
        out_dtype: DType::I16,
        out: OutRange::full(DType::I16, 0),
    });
    let m = g.add_node("gap", mean, vec![h], &["gap_out"]).unwrap()[0];
    let y = binary(&mut g, "excite", QBinaryKind::Mul(rq(1.0 / 4096.0)), h, m);
    g.outputs.push(y);
    g.validate().unwrap();
    g
}

/// Only the image sums a depthwise layer's tail output into its global average pool while
/// writing it; the mean and the product after it stay the session's integers, the layer's
/// own output has no place, and the tail's output (read by the product) keeps one.
#[test]
fn squeeze_means_are_fused_in_the_image_only() {
    let g = squeeze_graph();
    check_image_only_fusion(
        &g,
        &[("normalize", "a_uint8"), ("dw", "gap")],
        &["dw_out"],
        [1, H, W, 3],
    );
    let c = compile(
        &g,
        &SimMetadata::new(Stage::Fixed, "image-only"),
        &CompileOptions::default(),
    )
    .unwrap();
    let place = |name: &str| {
        let t = g.tensors.iter().position(|t| t.name == name).unwrap();
        c.image.plan.place[t]
    };
    let (h, m) = (place("h").unwrap(), place("gap_out").unwrap());
    assert!(
        h.0 + h.1 <= m.0 || m.0 + m.1 <= h.0,
        "the step's two outputs overlap"
    );
}

/// A 1×1, stride-1, unpadded 16-bit convolution of `x` (INT16) to `cout` INT16 channels.
fn pointwise(g: &mut Graph, name: &str, x: TensorId, cout: usize) -> TensorId {
    let cin = g.tensor(x).shape[3];
    let w: Vec<i16> = values(cout * cin, 13, -20000, 20000)
        .into_iter()
        .map(|v| v as i16)
        .collect();
    let wt = g
        .add_const(&format!("{name}_w"), vec![cout, 1, 1, cin], w.into())
        .unwrap();
    let op = Op::QConv2d(QConv2d {
        conv: Conv2d {
            strides: [1, 1],
            dilations: [1, 1],
            padding: Padding2d::ZERO,
            groups: 1,
            activation: FusedActivation::None,
        },
        layer: QLayer {
            input_zero_point: 0,
            requant: (0..cout)
                .map(|c| rq(2e-5 * (1.0 + c as f64 / 8.0)))
                .collect(),
            out_dtype: DType::I16,
            out: OutRange::full(DType::I16, 0),
        },
    });
    g.add_node(name, op, vec![x, wt], &[&format!("{name}_out")])
        .unwrap()[0]
}

/// The squeeze-and-excitation block of [`squeeze_graph`] completed: a second excitation
/// (the pooled vector first) read by a 1×1 16-bit convolution, then a HardSwish table.
fn excitation_graph() -> Graph {
    let mut g = squeeze_graph();
    let h = g.tensors.iter().position(|t| t.name == "h").unwrap();
    let m = g.tensors.iter().position(|t| t.name == "gap_out").unwrap();
    // A second product, the vector its first operand; the first stays the graph's output.
    let (h, m) = (TensorId(h), TensorId(m));
    let e = binary(&mut g, "excite2", QBinaryKind::Mul(rq(1.0 / 4096.0)), m, h);
    let p = pointwise(&mut g, "project", e, 24);
    let hswish = build_lut(
        |v| v * (v + 3.0).clamp(0.0, 6.0) / 6.0,
        8.0 / 32767.0,
        8.0 / 32767.0,
    );
    let y = g
        .add_node("hswish2", Op::QLut(hswish), vec![p], &["y"])
        .unwrap()[0];
    g.outputs.push(y);
    g.validate().unwrap();
    g
}

/// Only the image forms an excitation product (a per-channel vector times an activation)
/// chunk by chunk into the rows of the 1×1 convolution that alone reads it, with the
/// layer's tail; the integers stay the session's and the product has no place. The first
/// excitation, a graph output, stays a node of its own.
#[test]
fn excitations_are_formed_in_the_next_layer_in_the_image_only() {
    let g = excitation_graph();
    check_image_only_fusion(
        &g,
        &[
            ("normalize", "a_uint8"),
            ("dw", "gap"),
            ("excite2", "hswish2"),
        ],
        &["dw_out", "excite2_out", "project_out"],
        [1, H, W, 3],
    );
}

fn max_pool(g: &mut Graph, name: &str, x: TensorId, k: usize, stride: usize) -> TensorId {
    let pad = (k - stride) / 2;
    let op = Op::Pool2d(Pool2d {
        kind: PoolKind::Max,
        kernel: [k, k],
        strides: [stride, stride],
        dilations: [1, 1],
        padding: Padding2d {
            top: pad,
            left: pad,
            bottom: pad,
            right: pad,
        },
        ceil_mode: false,
    });
    g.add_node(name, op, vec![x], &[name]).unwrap()[0]
}

/// image (24×20) → normalize → UINT8 → conv0 → 2×2 max pool → UINT8 → conv1 → 3×3 max pool
/// of stride 1 (overlapping windows: not fused) → conv2 → 2×2 max pool (the output).
fn pool_graph() -> Graph {
    let mut g = Graph::new();
    let x = g.add_input("image", DType::U8, vec![1, 24, 20, 3]);
    let norm = Op::InputNormalize(InputNormalize {
        image: ImageInput::Interleaved,
        source_channel: vec![2, 1, 0],
        mean_q: vec![32640; 3],
        requant: vec![rq(0.5); 3],
    });
    let a = g.add_node("normalize", norm, vec![x], &["a"]).unwrap()[0];
    let b = rescale(&mut g, "a_uint8", a, to_u8(1.0 / 256.0));
    let full16 = OutRange::full(DType::I16, 0);
    let c0 = conv(&mut g, "conv0", b, 8, full16);
    let p0 = max_pool(&mut g, "pool0", c0, 2, 2);
    let u = rescale(&mut g, "p0_uint8", p0, to_u8(1.0 / 128.0));
    let c1 = conv(&mut g, "conv1", u, 6, full16);
    let p1 = max_pool(&mut g, "pool1", c1, 3, 1);
    let p1u = rescale(&mut g, "p1_uint8", p1, to_u8(1.0 / 128.0));
    let c2 = conv(&mut g, "conv2", p1u, 4, full16);
    let y = max_pool(&mut g, "pool2", c2, 2, 2);
    g.outputs.push(y);
    g.validate().unwrap();
    g
}

/// Only the image fuses a convolution with the max pool tiling its output (and the pool's
/// tail); the integers stay the session's and the layer's own output has no place.
#[test]
fn pooled_convolutions_are_fused_in_the_image_only() {
    check_image_only_fusion(
        &pool_graph(),
        &[
            ("normalize", "a_uint8"),
            ("conv0", "p0_uint8"),
            ("conv2", "pool2"),
        ],
        &["conv0_out", "pool0", "conv2_out"],
        [1, 24, 20, 3],
    );
}
