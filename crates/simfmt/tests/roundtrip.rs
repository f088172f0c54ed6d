//! Round trips, determinism, operator mapping and metadata.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use ipukit_ir::{DType, Graph, Op};
use ipukit_simfmt::{
    encode_model, read_sim, read_sim_file, sniff, tflite, write_sim, write_sim_file, FileKind,
    SimError, SimMetadata, Stage,
};
use planus::ReadAsRoot;
use std::collections::BTreeSet;

fn meta() -> SimMetadata {
    let mut m = SimMetadata::new(Stage::Float, "ipukit-simfmt tests");
    m.source_sha256 = Some("ab".repeat(32));
    m.input_config = Some(r#"{"input_config":{"inputs":"x"}}"#.into());
    m.extra.insert("calibration".into(), vec![0, 1, 2, 255]);
    m.extra.insert("empty".into(), vec![]);
    m
}

/// Operator codes of a written model, in operator order (builtin name or custom code).
fn op_codes(bytes: &[u8]) -> Vec<String> {
    let m = tflite::ModelRef::read_as_root(bytes).unwrap();
    let codes: Vec<String> = m
        .operator_codes()
        .unwrap()
        .unwrap()
        .iter()
        .map(|c| {
            let c = c.unwrap();
            match c.custom_code().unwrap() {
                Some(s) => s.to_string(),
                None => format!("{:?}", c.builtin_code().unwrap()),
            }
        })
        .collect();
    let sg = m.subgraphs().unwrap().unwrap().get(0).unwrap().unwrap();
    sg.operators()
        .unwrap()
        .unwrap()
        .iter()
        .map(|o| codes[o.unwrap().opcode_index().unwrap() as usize].clone())
        .collect()
}

/// The float test graphs with [`meta`], then the fixed-point ones with the stage `fixed`.
fn graphs_and_metadata() -> Vec<(&'static str, Graph, SimMetadata)> {
    let fixed = SimMetadata {
        stage: Stage::Fixed,
        ..meta()
    };
    all_graphs()
        .into_iter()
        .map(|(n, g)| (n, g, meta()))
        .chain(
            fixed::fixed_graphs()
                .into_iter()
                .map(|(n, g)| (n, g, fixed.clone())),
        )
        .collect()
}

#[test]
fn every_graph_round_trips_exactly() {
    for (name, g, meta) in graphs_and_metadata() {
        let bytes = write_sim(&g, &meta).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (back, m) = read_sim(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(m, meta, "{name}");
        if back != g {
            for (a, b) in g.nodes.iter().zip(&back.nodes) {
                assert_eq!(a, b, "{name}: first differing node");
            }
            for (a, b) in g.tensors.iter().zip(&back.tensors) {
                assert_eq!(a, b, "{name}: first differing tensor");
            }
            assert_eq!(back, g, "{name}");
        }
    }
}

#[test]
fn writing_is_deterministic() {
    for (name, g, meta) in graphs_and_metadata() {
        let a = write_sim(&g, &meta).unwrap();
        let b = write_sim(&g.clone(), &meta).unwrap();
        assert_eq!(a, b, "{name}");
        let (back, m) = read_sim(&a).unwrap();
        assert_eq!(write_sim(&back, &m).unwrap(), a, "{name}: rewrite differs");
    }
}

/// Index of each IR operator variant; exhaustive so a new variant breaks this test until the
/// mapping and the test graphs cover it.
fn variant(op: &Op) -> usize {
    match op {
        Op::Conv2d(_) => 0,
        Op::DepthwiseConv2d(_) => 1,
        Op::TransposeConv2d(_) => 2,
        Op::FullyConnected(_) => 3,
        Op::MatMul(_) => 4,
        Op::Binary(_) => 5,
        Op::Unary(_) => 6,
        Op::Where => 7,
        Op::Cast(_) => 8,
        Op::Softmax(_) => 9,
        Op::LogSoftmax(_) => 10,
        Op::Pool2d(_) => 11,
        Op::Reduce(_) => 12,
        Op::ArgReduce(_) => 13,
        Op::Concat(_) => 14,
        Op::Split(_) => 15,
        Op::Reshape(_) => 16,
        Op::Transpose(_) => 17,
        Op::Slice(_) => 18,
        Op::Pad(_) => 19,
        Op::Gather(_) => 20,
        Op::Resize(_) => 21,
        Op::DepthToSpace(_) => 22,
        Op::SpaceToDepth(_) => 23,
        Op::Expand(_) => 24,
        Op::Tile(_) => 25,
        Op::Identity => 26,
        Op::MaxPool2dWithIndices(_) => 27,
        Op::QConv2d(_) => 28,
        Op::QDepthwiseConv2d(_) => 29,
        Op::QTransposeConv2d(_) => 30,
        Op::QFullyConnected(_) => 31,
        Op::QMatMul(_) => 32,
        Op::QBinary(_) => 33,
        Op::QRescale(_) => 34,
        Op::QLut(_) => 35,
        Op::QSoftmax(_) => 36,
        Op::QAvgPool2d(_) => 37,
        Op::QReduce(_) => 38,
        Op::QResize(_) => 39,
        Op::Quantize(_) => 40,
        Op::Dequantize(_) => 41,
        Op::InputNormalize(_) => 42,
    }
}

#[test]
fn test_graphs_cover_every_operator_and_dtype() {
    let mut ops = BTreeSet::new();
    let mut dtypes = BTreeSet::new();
    let mut quant = false;
    for (_, g, _) in graphs_and_metadata() {
        ops.extend(g.nodes.iter().map(|n| variant(&n.op)));
        dtypes.extend(g.tensors.iter().map(|t| t.dtype.name()));
        quant |= g.tensors.iter().any(|t| t.quant.is_some());
    }
    assert_eq!(ops.len(), 43, "covered: {ops:?}");
    assert_eq!(dtypes.len(), 8, "covered: {dtypes:?}");
    assert!(quant);
}

#[test]
fn operators_map_to_the_documented_codes() {
    let codes = op_codes(&write_sim(&convs(), &meta()).unwrap());
    assert_eq!(
        codes,
        [
            "Conv2d",
            "Pad",
            "Conv2d",
            "Conv2d",
            "Conv2d",
            "DepthwiseConv2d",
            "DepthwiseConv2d",
            "DepthwiseConv2d",
            "TransposeConv",
            "IPU_TransposeConv2d",
            "IPU_TransposeConv2d",
            "IPU_TransposeConv2d",
            "TransposeConv",
            "TransposeConv",
            "FullyConnected",
            "FullyConnected",
            "BatchMatmul",
        ]
    );
    let codes = op_codes(&write_sim(&reductions(), &meta()).unwrap());
    assert_eq!(
        codes[..12],
        [
            "Softmax",
            "LogSoftmax",
            "IPU_Softmax",
            "IPU_LogSoftmax",
            "MaxPool2d",
            "MaxPool2d",
            "MaxPool2d",
            "IPU_MaxPool2d",
            "IPU_MaxPool2d",
            "AveragePool2d",
            "IPU_AvgPool2d",
            "AveragePool2d",
        ]
    );
    assert_eq!(
        codes[12..16],
        [
            "IPU_MaxPool2d",
            "IPU_AvgPool2d",
            "IPU_MaxPool2dWithIndices",
            "IPU_MaxPool2dWithIndices"
        ]
    );
    let codes = op_codes(&write_sim(&resizes(), &meta()).unwrap());
    assert_eq!(
        codes,
        [
            "ResizeBilinear",
            "ResizeBilinear",
            "ResizeBilinear",
            "ResizeBilinear",
            "ResizeBilinear",
            "IPU_Resize",
            "IPU_Resize",
            "ResizeNearestNeighbor",
            "ResizeNearestNeighbor",
            "ResizeNearestNeighbor",
            "ResizeNearestNeighbor",
            "IPU_Resize",
            "IPU_Resize",
            "ResizeNearestNeighbor",
        ]
    );
    let codes = op_codes(&write_sim(&elementwise(), &meta()).unwrap());
    let custom: Vec<&String> = codes.iter().filter(|c| c.starts_with("IPU_")).collect();
    assert_eq!(
        custom,
        [
            "IPU_Clip",
            "IPU_Clip",
            "IPU_HardSigmoid",
            "IPU_Elu",
            "IPU_Softplus",
            "IPU_Reciprocal",
            "IPU_Erf"
        ]
    );
    assert!(codes.contains(&"Relu6".to_string()));
    assert!(codes.contains(&"ReluN1To1".to_string()));
    assert!(codes.contains(&"SelectV2".to_string()));
}

#[test]
fn header_buffers_and_versions_follow_tflite_conventions() {
    let bytes = write_sim(&convs(), &meta()).unwrap();
    assert_eq!(&bytes[4..8], b"TFL3");
    let m = tflite::ModelRef::read_as_root(&bytes).unwrap();
    assert_eq!(m.version().unwrap(), 3);
    let buffers = m.buffers().unwrap().unwrap();
    let first = buffers.get(0).unwrap().unwrap();
    assert!(first.data().unwrap().is_none(), "buffer 0 must be empty");
    let base = bytes.as_ptr() as usize;
    let mut checked = 0;
    for b in buffers.iter() {
        if let Some(d) = b.unwrap().data().unwrap() {
            assert_eq!(
                (d.as_ptr() as usize - base) % 16,
                0,
                "buffer data not 16-aligned"
            );
            checked += 1;
        }
    }
    assert!(checked > 10);
    for c in m.operator_codes().unwrap().unwrap().iter() {
        let c = c.unwrap();
        let code = c.builtin_code().unwrap() as i32;
        assert_eq!(c.deprecated_builtin_code().unwrap() as i32, code.min(127));
        assert!(c.version().unwrap() >= 1);
        if code == tflite::BuiltinOperator::Conv2d as i32 {
            assert_eq!(c.version().unwrap(), 6, "grouped convolution is version 6");
        }
    }
}

#[test]
fn explicit_pad_is_kept_but_conv_padding_is_fused() {
    // A standalone Pad before a VALID conv stays a Pad node.
    let g = explicit_pad_before_conv();
    let codes = op_codes(&write_sim(&g, &meta()).unwrap());
    assert_eq!(codes, ["Pad", "Conv2d"]);
    let (back, _) = read_sim(&write_sim(&g, &meta()).unwrap()).unwrap();
    assert_eq!(back, g);
}

#[test]
fn metadata_round_trips_and_is_checked() {
    let g = explicit_pad_before_conv();
    let mut m = SimMetadata::new(Stage::Fixed, "calibrator");
    let (_, back) = read_sim(&write_sim(&g, &m).unwrap()).unwrap();
    assert_eq!(back, m);
    m.extra.insert("bad key".into(), vec![1]);
    assert!(matches!(write_sim(&g, &m), Err(SimError::Unwritable(_))));
}

#[test]
fn invalid_graphs_are_not_written() {
    let mut g = explicit_pad_before_conv();
    g.tensors[0].shape = vec![1, 2, 3];
    let e = write_sim(&g, &meta()).unwrap_err();
    assert!(e.to_string().contains("not valid"), "{e}");
    let mut g = explicit_pad_before_conv();
    g.tensors[0].shape = vec![1, 1 << 32, 6, 2];
    assert!(write_sim(&g, &meta()).is_err());
}

#[test]
fn files_are_written_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m_float.sim");
    let g = convs();
    write_sim_file(&path, &g, &meta()).unwrap();
    let (back, m) = read_sim_file(&path).unwrap();
    assert_eq!(back, g);
    assert_eq!(m, meta());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
    }
    // A failed write leaves the old file and no temporary file.
    let mut bad = g.clone();
    bad.tensors[0].shape = vec![7];
    assert!(write_sim_file(&path, &bad, &meta()).is_err());
    assert!(write_sim_file(dir.path().join("new.sim"), &bad, &meta()).is_err());
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["m_float.sim"]);
    assert_eq!(read_sim_file(&path).unwrap().0, g);
    // Errors name the file.
    let missing = dir.path().join("missing.sim");
    assert!(read_sim_file(&missing)
        .unwrap_err()
        .to_string()
        .contains("missing.sim"));
    std::fs::write(&missing, b"garbage!garbage!").unwrap();
    let e = read_sim_file(&missing).unwrap_err().to_string();
    assert!(
        e.contains("missing.sim") && e.contains("Not recognized model"),
        "{e}"
    );
}

#[test]
fn sniff_tells_sim_from_tflite_and_onnx() {
    let bytes = write_sim(&convs(), &meta()).unwrap();
    assert_eq!(sniff(&bytes), FileKind::Sim);
    assert_eq!(sniff(b"\x08\x07\x12\x07pytorch"), FileKind::Onnx);
    assert_eq!(sniff(b"name: \"net\"\nlayer {"), FileKind::Unknown);
}

#[test]
fn a_model_without_ipukit_metadata_reads_with_defaults() {
    // Strip the metadata: names fall back to output names, the PAD is fused by heuristic.
    let g = convs();
    let bytes = write_sim(&g, &meta()).unwrap();
    let model = tflite::ModelRef::read_as_root(&bytes).unwrap();
    let mut owned = tflite::Model::try_from(model).unwrap();
    owned.metadata = None;
    let stripped = encode_model(&owned);
    assert_eq!(sniff(&stripped), FileKind::Tflite);
    let (back, m) = read_sim(&stripped).unwrap();
    assert_eq!(m.stage, Stage::Float);
    assert_eq!(m.producer, "");
    assert_eq!(back.nodes.len(), g.nodes.len());
    for (a, b) in g.nodes.iter().zip(&back.nodes) {
        assert_eq!(b.name, back.tensor(b.outputs[0]).name);
        if !matches!(a.op, Op::TransposeConv2d(_)) {
            assert_eq!(a.op, b.op);
        }
    }
    // The zero biases the writer gives bias-less convolutions (TFLite needs one) stay.
    let bias_less = g
        .nodes
        .iter()
        .filter(|n| matches!(n.op, Op::Conv2d(_) | Op::DepthwiseConv2d(_)) && n.inputs.len() == 2)
        .count();
    assert_eq!(back.tensors.len(), g.tensors.len() + bias_less);
}

#[test]
fn graph_inputs_of_every_dtype_survive() {
    let g = dtypes_and_quant();
    let (back, _) = read_sim(&write_sim(&g, &meta()).unwrap()).unwrap();
    let dts: Vec<DType> = back.inputs.iter().map(|&i| back.tensor(i).dtype).collect();
    assert_eq!(
        dts,
        g.inputs
            .iter()
            .map(|&i| g.tensor(i).dtype)
            .collect::<Vec<_>>()
    );
    let _: &Graph = &back;
}
