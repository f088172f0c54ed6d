//! Structure of imported graphs: layouts, folding, errors. Numbers are checked against ONNX
//! Runtime by `cargo xtask conformance` and `cargo xtask e2e`.

#![allow(missing_docs)]

mod onnx_builder;

use ipukit_ir::ops::{MaxPool2dWithIndices, StorageOrder};
use ipukit_ir::{DType, Op};
use ipukit_onnx::{import_bytes, ImportOptions, Layout};
use onnx_builder::{Attr, Model};

fn conv_bn_relu() -> Model {
    let mut m = Model::new(13);
    m.input("x", &[1, 3, 8, 8])
        .init_f32(
            "w",
            &[4, 3, 3, 3],
            (0..108).map(|i| i as f32 * 0.01).collect(),
        )
        .init_f32("g", &[4], vec![1.0, 2.0, 0.5, 1.0])
        .init_f32("b", &[4], vec![0.1, 0.2, 0.3, 0.4])
        .init_f32("mu", &[4], vec![0.0, 1.0, 0.0, -1.0])
        .init_f32("var", &[4], vec![1.0, 4.0, 1.0, 0.25])
        .node(
            "Conv",
            &["x", "w"],
            &["c"],
            vec![
                ("pads", Attr::Is(vec![1, 1, 1, 1])),
                ("kernel_shape", Attr::Is(vec![3, 3])),
            ],
        )
        .node(
            "BatchNormalization",
            &["c", "g", "b", "mu", "var"],
            &["bn"],
            vec![("epsilon", Attr::F(0.0))],
        )
        .node("Relu", &["bn"], &["y"], vec![])
        .output("y");
    m
}

#[test]
fn conv_batchnorm_relu_becomes_one_fused_nhwc_conv() {
    let g = import_bytes(&conv_bn_relu().bytes(), &ImportOptions::default()).unwrap();
    assert_eq!(g.nodes.len(), 1, "{:#?}", g.nodes);
    let Op::Conv2d(c) = &g.nodes[0].op else {
        panic!("{:?}", g.nodes[0].op)
    };
    assert_eq!(c.activation, ipukit_ir::ops::FusedActivation::Relu);
    assert_eq!(g.tensor(g.inputs[0]).shape, vec![1, 8, 8, 3]);
    let out = g.tensor(g.outputs[0]);
    assert_eq!(
        (out.name.as_str(), out.shape.clone()),
        ("y", vec![1, 8, 8, 4])
    );
    // OHWI weights scaled by gamma / sqrt(var): channel 1 → 2 / 2 = 1, channel 2 → 0.5.
    let w = g
        .tensor(g.nodes[0].inputs[1])
        .data
        .as_ref()
        .unwrap()
        .as_f32()
        .unwrap()
        .to_vec();
    assert_eq!(g.tensor(g.nodes[0].inputs[1]).shape, vec![4, 3, 3, 3]);
    // ONNX w[o=2][i=1][kh=0][kw=2] = (2*27 + 1*9 + 2) * 0.01, at OHWI [2][0][2][1].
    let ohwi = |o: usize, h: usize, w: usize, i: usize| ((o * 3 + h) * 3 + w) * 3 + i;
    let got = w[ohwi(2, 0, 2, 1)];
    assert!((got - 0.5 * 0.65).abs() < 1e-6, "{got}");
    let b = g
        .tensor(g.nodes[0].inputs[2])
        .data
        .as_ref()
        .unwrap()
        .as_f32()
        .unwrap()
        .to_vec();
    assert!(
        (b[1] - (0.2 - 1.0 * 1.0)).abs() < 1e-6 && (b[3] - (0.4 + 1.0 * 2.0)).abs() < 1e-6,
        "{b:?}"
    );
}

#[test]
fn nchw_layouts_keep_the_onnx_order_at_the_boundary() {
    let opts = ImportOptions {
        input_layouts: [("x".to_string(), Layout::Nchw)].into(),
        output_layouts: [("y".to_string(), Layout::Nchw)].into(),
        ..Default::default()
    };
    let g = import_bytes(&conv_bn_relu().bytes(), &opts).unwrap();
    assert_eq!(g.tensor(g.inputs[0]).shape, vec![1, 3, 8, 8]);
    assert_eq!(g.tensor(g.outputs[0]).shape, vec![1, 4, 8, 8]);
    assert_eq!(g.tensor(g.outputs[0]).name, "y");
    let transposes = g
        .nodes
        .iter()
        .filter(|n| matches!(n.op, Op::Transpose(_)))
        .count();
    assert_eq!(transposes, 2);
}

#[test]
fn skip_simplify_keeps_batchnorm_as_multiply_add() {
    let opts = ImportOptions {
        skip_simplify: true,
        ..Default::default()
    };
    let g = import_bytes(&conv_bn_relu().bytes(), &opts).unwrap();
    assert!(g.nodes.len() >= 3, "{:#?}", g.nodes);
}

#[test]
fn keras_style_nhwc_input_is_recognised() {
    let mut m = Model::new(12);
    m.input("img", &[1, 6, 6, 3])
        .init_f32("w", &[2, 3, 1, 1], vec![1.0; 6])
        .node(
            "Transpose",
            &["img"],
            &["t"],
            vec![("perm", Attr::Is(vec![0, 3, 1, 2]))],
        )
        .node("Conv", &["t", "w"], &["c"], vec![])
        .node(
            "Transpose",
            &["c"],
            &["t2"],
            vec![("perm", Attr::Is(vec![0, 2, 3, 1]))],
        )
        .node("Softmax", &["t2"], &["y"], vec![("axis", Attr::I(3))])
        .output("y");
    let g = import_bytes(&m.bytes(), &ImportOptions::default()).unwrap();
    assert_eq!(g.tensor(g.inputs[0]).shape, vec![1, 6, 6, 3]);
    assert_eq!(g.tensor(g.outputs[0]).shape, vec![1, 6, 6, 2]);
    assert!(
        g.nodes.iter().all(|n| !matches!(n.op, Op::Transpose(_))),
        "{:#?}",
        g.nodes
    );
}

#[test]
fn shape_arithmetic_folds_away() {
    // y = Reshape(x, Concat(Gather(Shape(x), 0), [-1])) — the PyTorch flatten idiom.
    let mut m = Model::new(13);
    m.input("x", &[2, 3, 4])
        .init_i64("zero", vec![0])
        .init_i64("minus1", vec![-1])
        .node("Shape", &["x"], &["s"], vec![])
        .node("Gather", &["s", "zero"], &["n"], vec![("axis", Attr::I(0))])
        .node(
            "Concat",
            &["n", "minus1"],
            &["shape"],
            vec![("axis", Attr::I(0))],
        )
        .node("Reshape", &["x", "shape"], &["y"], vec![])
        .output("y");
    let g = import_bytes(&m.bytes(), &ImportOptions::default()).unwrap();
    assert_eq!(g.nodes.len(), 1);
    assert!(matches!(g.nodes[0].op, Op::Reshape(_)));
    assert_eq!(g.tensor(g.outputs[0]).shape, vec![2, 12]);
}

#[test]
fn dynamic_dims_need_input_shapes() {
    let mut m = Model::new(13);
    m.input("x", &[-1, 3, -1, -1])
        .node("Relu", &["x"], &["y"], vec![])
        .output("y");
    let e = import_bytes(&m.bytes(), &ImportOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("--input_shapes") && e.contains("x"), "{e}");
    let opts = ImportOptions {
        input_shapes: Some(vec![vec![1, 3, 32, 48]]),
        ..Default::default()
    };
    let g = import_bytes(&m.bytes(), &opts).unwrap();
    assert_eq!(g.tensor(g.inputs[0]).shape, vec![1, 32, 48, 3]);
    assert_eq!(g.tensor(g.inputs[0]).dtype, DType::F32);
}

#[test]
fn unsupported_things_are_named() {
    let mut m = Model::new(13);
    m.input("x", &[1, 4])
        .node("OneHot", &["x"], &["y"], vec![])
        .output("y");
    let e = import_bytes(&m.bytes(), &ImportOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("not support ONNX op type OneHot") && e.contains("OneHot_0"),
        "{e}"
    );

    let mut m = Model::new(21);
    m.input("x", &[1, 4])
        .node("Relu", &["x"], &["y"], vec![])
        .output("y");
    let e = import_bytes(&m.bytes(), &ImportOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("Please export the ONNX with opset_version <= 20"),
        "{e}"
    );

    let mut m = Model::new(13);
    m.input("x", &[1, 4])
        .node("Relu", &["x"], &["y"], vec![("bogus", Attr::I(1))])
        .output("y");
    let e = import_bytes(&m.bytes(), &ImportOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("attribute 'bogus'") && e.contains("Relu_0"),
        "{e}"
    );

    let mut m = Model::new(13);
    m.input("x", &[1, 1, 4, 4])
        .node(
            "Resize",
            &["x", "", "", ""],
            &["y"],
            vec![("mode", Attr::S("lanczos"))],
        )
        .output("y");
    let e = import_bytes(&m.bytes(), &ImportOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("ONNX RESIZE only supports nearest, linear or cubic"),
        "{e}"
    );
}

#[test]
fn graph_errors_use_the_seeds_messages() {
    let mut m = Model::new(13);
    m.input("x", &[1, 4])
        .node("Relu", &["z"], &["y"], vec![])
        .node("Relu", &["y"], &["z"], vec![])
        .output("y");
    let e = import_bytes(&m.bytes(), &ImportOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("Loopback in graph is not supported!"), "{e}");

    let mut m = Model::new(13);
    m.input("x", &[1, 4])
        .node("Relu", &["missing"], &["y"], vec![])
        .output("y");
    let e = import_bytes(&m.bytes(), &ImportOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("Nodes in a graph must be topologically sorted") && e.contains("'missing'"),
        "{e}"
    );

    let mut m = Model::new(13);
    m.input("x", &[1, 4])
        .node("Relu", &["x"], &["y"], vec![])
        .output("y");
    let opts = ImportOptions {
        outputs: Some(vec!["output1".into()]),
        ..Default::default()
    };
    let e = import_bytes(&m.bytes(), &opts).unwrap_err().to_string();
    assert!(
        e.contains("The model doesn't have output named \"output1\""),
        "{e}"
    );
}

#[test]
fn broken_files_give_errors_not_panics() {
    let good = conv_bn_relu().bytes();
    assert!(import_bytes(&[], &ImportOptions::default()).is_err());
    for cut in (0..good.len()).step_by(7) {
        let _ = import_bytes(&good[..cut], &ImportOptions::default());
    }
    let mut flipped = good.clone();
    for i in (0..flipped.len()).step_by(13) {
        flipped[i] ^= 0x5a;
        let _ = import_bytes(&flipped, &ImportOptions::default());
    }
    let e = import_bytes(b"this is not a model", &ImportOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a valid ONNX model"), "{e}");
}

#[test]
fn missing_file_uses_the_seeds_message() {
    let e = ipukit_onnx::import_file("/nonexistent/m.onnx", &ImportOptions::default())
        .unwrap_err()
        .to_string();
    assert_eq!(e, "Input graph file /nonexistent/m.onnx does not exist!");
}

fn max_pool_model(x: &[i64], outputs: &[&str], attrs: Vec<(&str, Attr)>) -> Model {
    let mut m = Model::new(13);
    m.input("x", x).node("MaxPool", &["x"], outputs, attrs);
    for o in outputs {
        m.output(o);
    }
    m
}

#[test]
fn dilated_pools_keep_their_dilations() {
    let m = max_pool_model(
        &[1, 3, 8, 8],
        &["y"],
        vec![
            ("kernel_shape", Attr::Is(vec![2, 3])),
            ("dilations", Attr::Is(vec![2, 3])),
            ("pads", Attr::Is(vec![1, 0, 1, 2])),
        ],
    );
    let g = import_bytes(&m.bytes(), &ImportOptions::default()).unwrap();
    let [n] = &g.nodes[..] else {
        panic!("{:#?}", g.nodes)
    };
    let Op::Pool2d(p) = &n.op else {
        panic!("{:?}", n.op)
    };
    assert_eq!((p.kernel, p.dilations), ([2, 3], [2, 3]));
    // H: 8 + 2 − 3 + 1 = 8; W: 8 + 2 − 7 + 1 = 4 (NHWC).
    assert_eq!(g.tensor(g.outputs[0]).shape, vec![1, 8, 4, 3]);

    // 1-D: [N, C, L] is pooled as [N, C, 1, L].
    let mut m = Model::new(19);
    m.input("x", &[1, 2, 9])
        .node(
            "AveragePool",
            &["x"],
            &["y"],
            vec![
                ("kernel_shape", Attr::Is(vec![3])),
                ("dilations", Attr::Is(vec![2])),
            ],
        )
        .output("y");
    let g = import_bytes(&m.bytes(), &ImportOptions::default()).unwrap();
    let p = g
        .nodes
        .iter()
        .find_map(|n| match &n.op {
            Op::Pool2d(p) => Some(p.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!((p.kernel, p.dilations), ([1, 3], [1, 2]));
}

#[test]
fn max_pool_indices_come_from_one_two_output_node() {
    let m = max_pool_model(
        &[1, 2, 6, 6],
        &["y", "i"],
        vec![
            ("kernel_shape", Attr::Is(vec![2, 2])),
            ("strides", Attr::Is(vec![2, 2])),
        ],
    );
    let opts = ImportOptions {
        keep_onnx_layout: true,
        ..Default::default()
    };
    let g = import_bytes(&m.bytes(), &opts).unwrap();
    let with_indices: Vec<_> = g
        .nodes
        .iter()
        .filter(|n| matches!(n.op, Op::MaxPool2dWithIndices(_)))
        .collect();
    assert_eq!(with_indices.len(), 1, "{:#?}", g.nodes);
    assert!(!g.nodes.iter().any(|n| matches!(n.op, Op::Pool2d(_))));
    assert_eq!(with_indices[0].outputs.len(), 2);
    // Both outputs keep the ONNX layout at the boundary; the indices are INT64.
    let (y, i) = (g.tensor(g.outputs[0]), g.tensor(g.outputs[1]));
    assert_eq!((y.name.as_str(), y.shape.clone()), ("y", vec![1, 2, 3, 3]));
    assert_eq!(
        (i.name.as_str(), i.shape.clone(), i.dtype),
        ("i", vec![1, 2, 3, 3], DType::I64)
    );

    // Without the second output the plain pool is used.
    let m = max_pool_model(
        &[1, 3, 6, 6],
        &["y"],
        vec![("kernel_shape", Attr::Is(vec![2, 2]))],
    );
    let g = import_bytes(&m.bytes(), &ImportOptions::default()).unwrap();
    assert!(matches!(g.nodes[..], [ref n] if matches!(n.op, Op::Pool2d(_))));
}

#[test]
fn unsupported_pool_variants_are_named() {
    let order = |v: i64| {
        let m = max_pool_model(
            &[1, 3, 6, 6],
            &["y", "i"],
            vec![
                ("kernel_shape", Attr::Is(vec![2, 2])),
                ("storage_order", Attr::I(v)),
            ],
        );
        import_bytes(&m.bytes(), &ImportOptions::default()).map(|g| g.nodes[0].op.clone())
    };
    assert!(matches!(
        order(1),
        Ok(Op::MaxPool2dWithIndices(MaxPool2dWithIndices {
            storage_order: StorageOrder::ColumnMajor,
            ..
        }))
    ));
    let e = order(2).unwrap_err().to_string();
    assert!(
        e.contains("MaxPool_0") && e.contains("storage_order 2"),
        "{e}"
    );

    let mut m = Model::new(13);
    m.input("x", &[1, 3, 6, 6])
        .node(
            "AveragePool",
            &["x"],
            &["y", "z"],
            vec![("kernel_shape", Attr::Is(vec![2, 2]))],
        )
        .output("y");
    let e = import_bytes(&m.bytes(), &ImportOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("AveragePool_0") && e.contains("output 1"), "{e}");

    let m = max_pool_model(
        &[1, 1, 4, 4, 4],
        &["y"],
        vec![("kernel_shape", Attr::Is(vec![2, 2, 2]))],
    );
    let e = import_bytes(&m.bytes(), &ImportOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("MaxPool_0") && e.contains("1-D and 2-D"), "{e}");
}
