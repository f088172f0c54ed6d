//! `SimModel::open` refuses files that are not ipukit models with a hint that works.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ipukit_simulator::{OpenOptions, SimModel};

fn open_error(name: &str, bytes: &[u8]) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    SimModel::open(&path, &OpenOptions::default())
        .unwrap_err()
        .to_string()
}

#[test]
fn a_plain_tflite_file_points_to_a_converter_that_exists() {
    let e = open_error("model.tflite", b"\0\0\0\0TFL3\0\0\0\0");
    assert!(e.starts_with("Not recognized model: "), "{e}");
    assert!(e.contains("TFLite file without ipukit metadata"), "{e}");
    // `ipu-convert tflite` fails with "platform 'tflite' is not supported yet".
    assert!(!e.contains("ipu-convert tflite"), "{e}");
    assert!(e.contains("`ipu-convert onnx`"), "{e}");
}

#[test]
fn an_onnx_file_and_other_files_are_refused() {
    let onnx = [
        0x08, 0x08, 0x12, 0x07, b'p', b'y', b't', b'o', b'r', b'c', b'h',
    ];
    let e = open_error("model.onnx", &onnx);
    assert!(
        e.contains("this is an ONNX model; convert it first with `ipu-convert onnx`"),
        "{e}"
    );
    let e = open_error("image.png", b"\x89PNG\r\n\x1a\n");
    assert!(
        e.ends_with("expected a *_float.sim, *_fixed.sim or offline .img file"),
        "{e}"
    );
    let e = SimModel::open("/nonexistent/model.sim", &OpenOptions::default())
        .unwrap_err()
        .to_string();
    assert_eq!(e, "No such model: /nonexistent/model.sim");
}
