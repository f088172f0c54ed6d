//! Cheap file-type detection.

use crate::{meta, tflite};
use planus::ReadAsRoot;

/// What a model file looks like, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FileKind {
    /// A TFLite flatbuffer written by ipukit (has the `ipukit_stage` metadata entry).
    Sim,
    /// A TFLite flatbuffer without ipukit metadata: a plain `.tflite` model or a `.sim` written
    /// by another toolchain. [`crate::read_sim`] reads it on a best-effort basis.
    Tflite,
    /// Looks like an ONNX `ModelProto` (protobuf starting with `ir_version`).
    Onnx,
    /// None of the above ("Not recognized model").
    Unknown,
}

/// Guesses the kind of a model file from its bytes (never fails, never panics).
pub fn sniff(bytes: &[u8]) -> FileKind {
    if bytes.len() >= 8 && &bytes[4..8] == b"TFL3" {
        return if has_ipukit_stage(bytes) {
            FileKind::Sim
        } else {
            FileKind::Tflite
        };
    }
    if looks_like_onnx(bytes) {
        return FileKind::Onnx;
    }
    FileKind::Unknown
}

fn has_ipukit_stage(bytes: &[u8]) -> bool {
    let Ok(model) = tflite::ModelRef::read_as_root(bytes) else {
        return false;
    };
    let Ok(Some(md)) = model.metadata() else {
        return false;
    };
    md.iter()
        .any(|m| m.is_ok_and(|m| matches!(m.name(), Ok(Some(n)) if n == meta::STAGE)))
}

/// ONNX files start with field 1 (`ir_version`, varint), then another `ModelProto` field.
fn looks_like_onnx(bytes: &[u8]) -> bool {
    if bytes.first() != Some(&0x08) {
        return false;
    }
    let mut v: u64 = 0;
    let mut i = 1;
    loop {
        let Some(&b) = bytes.get(i) else {
            return false;
        };
        if i > 5 {
            return false;
        }
        v |= u64::from(b & 0x7f) << (7 * (i - 1));
        i += 1;
        if b & 0x80 == 0 {
            break;
        }
    }
    if !(1..=100).contains(&v) {
        return false;
    }
    // producer_name(2), producer_version(3), domain(4): strings; model_version(5): varint;
    // doc_string(6), graph(7), opset_import(8), metadata_props(14), training_info(20),
    // functions(25): length-delimited.
    let Some(&tag) = bytes.get(i) else {
        return false;
    };
    matches!(tag, 0x12 | 0x1a | 0x22 | 0x28 | 0x32 | 0x3a | 0x42 | 0x72)
        || (tag == 0xa2 && bytes.get(i + 1) == Some(&0x01))
        || (tag == 0xca && bytes.get(i + 1) == Some(&0x01))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_onnx_headers() {
        // ir_version 8, producer_name "pytorch".
        let onnx = [
            0x08, 0x08, 0x12, 0x07, b'p', b'y', b't', b'o', b'r', b'c', b'h',
        ];
        assert_eq!(sniff(&onnx), FileKind::Onnx);
        assert_eq!(sniff(b"\x08\x08"), FileKind::Unknown);
        assert_eq!(sniff(b""), FileKind::Unknown);
        assert_eq!(sniff(b"hello world"), FileKind::Unknown);
        assert_eq!(sniff(b"\0\0\0\0TFL3"), FileKind::Tflite);
    }
}
