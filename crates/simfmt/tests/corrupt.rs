//! Broken inputs: every one must give an `Err` with a clear message, never a panic.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use ipukit_simfmt::{encode_model, read_sim, tflite, write_sim, SimError, SimMetadata, Stage};
use planus::ReadAsRoot;

fn good() -> Vec<u8> {
    let g = common::convs();
    write_sim(&g, &SimMetadata::new(Stage::Float, "corrupt tests")).unwrap()
}

fn small() -> Vec<u8> {
    let g = common::explicit_pad_before_conv();
    write_sim(&g, &SimMetadata::new(Stage::Float, "corrupt tests")).unwrap()
}

fn owned(bytes: &[u8]) -> tflite::Model {
    tflite::Model::try_from(tflite::ModelRef::read_as_root(bytes).unwrap()).unwrap()
}

fn err(bytes: &[u8]) -> SimError {
    match read_sim(bytes) {
        Ok(_) => panic!("a broken file was accepted"),
        Err(e) => e,
    }
}

/// Reads, requiring no panic; returns whether it failed.
fn fails(bytes: &[u8]) -> bool {
    read_sim(bytes).is_err()
}

#[test]
fn a_correct_file_reads() {
    assert!(!fails(&good()));
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn not_a_model() {
    for bytes in [
        &b""[..],
        b"\0",
        b"TFL3",
        b"\0\0\0\0TFL",
        b"\x08\x07\x12\x07pytorch\x3a\x00",
        b"hello, this is not a model at all",
    ] {
        let e = err(bytes);
        assert!(matches!(e, SimError::NotRecognized(_)), "{bytes:?}: {e}");
        assert!(e.to_string().starts_with("Not recognized model"), "{e}");
    }
    // The identifier alone is not enough.
    let e = err(b"\0\0\0\0TFL3\0\0\0\0\0\0\0\0");
    assert!(matches!(e, SimError::Corrupt(_)), "{e}");
    let mut wrong = small();
    wrong[4..8].copy_from_slice(b"TFL2");
    assert!(matches!(err(&wrong), SimError::NotRecognized(_)));
}

#[test]
fn random_bytes() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for len in [8usize, 9, 16, 64, 100, 1000, 4096] {
        for _ in 0..200 {
            let mut b: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            if rng.next().is_multiple_of(2) {
                b[4..8].copy_from_slice(b"TFL3");
            }
            assert!(fails(&b));
        }
    }
}

#[test]
fn truncated_at_every_offset() {
    // A truncated file fails, unless what was cut is never read (the empty buffer 0's table and
    // alignment padding at the end), in which case it still reads as the same graph.
    for bytes in [small(), good()] {
        let whole = read_sim(&bytes).unwrap();
        for n in 0..bytes.len() {
            if let Ok(g) = read_sim(&bytes[..n]) {
                assert_eq!(g, whole, "truncated to {n} bytes reads as another graph");
            }
        }
    }
}

#[test]
fn flipped_bytes_never_panic() {
    let bytes = small();
    // Every byte inverted, one at a time.
    for i in 0..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 0xff;
        let _ = read_sim(&b);
    }
    // Random multi-bit corruption of the larger model.
    let bytes = good();
    let mut rng = Rng(42);
    for _ in 0..3000 {
        let mut b = bytes.clone();
        for _ in 0..1 + rng.next() % 4 {
            let i = (rng.next() as usize) % b.len();
            b[i] ^= 1 << (rng.next() % 8);
        }
        let _ = read_sim(&b);
    }
    // Random 32-bit values written over the header and tables (offsets, lengths).
    for _ in 0..3000 {
        let mut b = bytes.clone();
        let i = (rng.next() as usize) % (b.len() - 4);
        let v = match rng.next() % 4 {
            0 => u32::MAX,
            1 => 0x7fff_ffff,
            2 => (rng.next() % 4096) as u32,
            _ => rng.next() as u32,
        };
        b[i..i + 4].copy_from_slice(&v.to_le_bytes());
        let _ = read_sim(&b);
    }
}

fn with(f: impl FnOnce(&mut tflite::Model)) -> Vec<u8> {
    let mut m = owned(&good());
    f(&mut m);
    encode_model(&m)
}

fn subgraph(m: &mut tflite::Model) -> &mut tflite::SubGraph {
    &mut m.subgraphs.as_mut().unwrap()[0]
}

fn expect(bytes: &[u8], words: &[&str]) {
    let e = err(bytes).to_string();
    for w in words {
        assert!(e.contains(w), "message '{e}' lacks '{w}'");
    }
}

#[test]
fn out_of_range_indices() {
    expect(
        &with(|m| subgraph(m).operators.as_mut().unwrap()[0].inputs = Some(vec![0, 9999])),
        &["operator 0", "tensor 9999"],
    );
    expect(
        &with(|m| subgraph(m).operators.as_mut().unwrap()[2].outputs = Some(vec![-1])),
        &["operator 2", "absent output"],
    );
    expect(
        &with(|m| subgraph(m).operators.as_mut().unwrap()[1].opcode_index = 77),
        &["operator 1", "operator code 77"],
    );
    expect(
        &with(|m| subgraph(m).inputs = Some(vec![123_456])),
        &["graph input", "123456"],
    );
    expect(
        &with(|m| subgraph(m).outputs = Some(vec![-3])),
        &["graph output"],
    );
    expect(
        &with(|m| {
            let t = subgraph(m).tensors.as_mut().unwrap();
            let c = t.iter_mut().find(|t| t.buffer != 0).unwrap();
            c.buffer = 100_000;
        }),
        &["buffer 100000"],
    );
}

#[test]
fn missing_and_inconsistent_data() {
    expect(&with(|m| m.buffers = None), &["buffer"]);
    expect(
        &with(|m| {
            let bufs = m.buffers.as_mut().unwrap();
            let b = bufs.iter_mut().find(|b| b.data.is_some()).unwrap();
            b.data.as_mut().unwrap().pop();
        }),
        &["needs", "bytes"],
    );
    expect(
        &with(|m| subgraph(m).tensors.as_mut().unwrap()[0].shape = Some(vec![1, -4, 9, 4])),
        &["negative dimension"],
    );
    expect(
        &with(|m| {
            subgraph(m).tensors.as_mut().unwrap()[0].shape =
                Some(vec![i32::MAX, i32::MAX, i32::MAX, 4])
        }),
        &["impossibly large"],
    );
    expect(
        &with(|m| subgraph(m).tensors.as_mut().unwrap()[0].shape = Some(vec![1, 9, 9, 5])),
        &["operator 0", "does not match"],
    );
    expect(
        &with(|m| subgraph(m).tensors.as_mut().unwrap()[0].type_ = tflite::TensorType::String),
        &["element type"],
    );
    expect(&with(|m| m.subgraphs = Some(vec![])), &["no subgraph"]);
    expect(&with(|m| m.subgraphs = None), &["no subgraph"]);
    expect(
        &with(|m| {
            let s = m.subgraphs.as_ref().unwrap()[0].clone();
            m.subgraphs.as_mut().unwrap().push(s);
        }),
        &["2 subgraphs"],
    );
    expect(&with(|m| m.version = 2), &["schema version 2"]);
}

#[test]
fn unknown_and_unsupported_operators() {
    // The last operator (BATCH_MATMUL) switched to a new LSTM operator code.
    let to_new_code = |c: tflite::OperatorCode| {
        with(move |m| {
            let codes = m.operator_codes.as_mut().unwrap();
            codes.push(c);
            let n = codes.len() as u32 - 1;
            subgraph(m)
                .operators
                .as_mut()
                .unwrap()
                .last_mut()
                .unwrap()
                .opcode_index = n;
        })
    };
    expect(
        &to_new_code(tflite::OperatorCode {
            builtin_code: tflite::BuiltinOperator::Lstm,
            deprecated_builtin_code: tflite::BuiltinOperator::Lstm as i8,
            version: 1,
            custom_code: None,
        }),
        &["Lstm", "not supported"],
    );
    expect(
        &to_new_code(tflite::OperatorCode {
            builtin_code: tflite::BuiltinOperator::Custom,
            deprecated_builtin_code: 32,
            version: 1,
            custom_code: Some("MyOp".into()),
        }),
        &["MyOp", "not an ipukit operator"],
    );
    expect(
        &to_new_code(tflite::OperatorCode {
            builtin_code: tflite::BuiltinOperator::Custom,
            deprecated_builtin_code: 32,
            version: 1,
            custom_code: None,
        }),
        &["no name"],
    );
    // Options of the wrong type.
    expect(
        &with(|m| {
            subgraph(m).operators.as_mut().unwrap()[0].builtin_options =
                Some(tflite::BuiltinOptions::SoftmaxOptions(Box::new(
                    tflite::SoftmaxOptions { beta: 1.0 },
                )))
        }),
        &["wrong type"],
    );
    // Missing options.
    expect(
        &with(|m| subgraph(m).operators.as_mut().unwrap()[0].builtin_options = None),
        &["no Conv2DOptions"],
    );
    // Zero stride.
    expect(
        &with(|m| {
            if let Some(tflite::BuiltinOptions::Conv2DOptions(o)) =
                &mut subgraph(m).operators.as_mut().unwrap()[0].builtin_options
            {
                o.stride_w = 0;
            }
        }),
        &["stride 0"],
    );
}

#[test]
fn broken_custom_options_and_metadata() {
    // Find the first custom operator and garble its options.
    let garbled = with(|m| {
        let codes = m.operator_codes.clone().unwrap();
        let op = subgraph(m)
            .operators
            .as_mut()
            .unwrap()
            .iter_mut()
            .find(|o| codes[o.opcode_index as usize].custom_code.is_some())
            .unwrap();
        op.custom_options = Some(vec![1, 2, 3, 200, 7]);
    });
    expect(&garbled, &["custom options"]);
    let empty = with(|m| {
        let codes = m.operator_codes.clone().unwrap();
        let op = subgraph(m)
            .operators
            .as_mut()
            .unwrap()
            .iter_mut()
            .find(|o| codes[o.opcode_index as usize].custom_code.is_some())
            .unwrap();
        op.custom_options = None;
    });
    expect(&empty, &["missing option"]);

    let meta_buffer = |m: &mut tflite::Model, name: &str| -> usize {
        m.metadata
            .as_ref()
            .unwrap()
            .iter()
            .find(|e| e.name.as_deref() == Some(name))
            .unwrap()
            .buffer as usize
    };
    expect(
        &with(|m| {
            let b = meta_buffer(m, "ipukit_graph");
            m.buffers.as_mut().unwrap()[b].data = Some(vec![0xde, 0xad, 0xbe, 0xef]);
        }),
        &["ipukit_graph"],
    );
    expect(
        &with(|m| {
            let b = meta_buffer(m, "ipukit_stage");
            m.buffers.as_mut().unwrap()[b].data = Some(b"liquid".to_vec());
        }),
        &["ipukit_stage", "liquid"],
    );
    expect(
        &with(|m| {
            let b = meta_buffer(m, "ipukit_producer");
            m.buffers.as_mut().unwrap()[b].data = Some(vec![0xff, 0xfe]);
        }),
        &["UTF-8"],
    );
    expect(
        &with(|m| {
            let md = m.metadata.as_mut().unwrap();
            md[0].buffer = 99_999;
        }),
        &["buffer 99999"],
    );
    // One operator more than ipukit_graph describes.
    expect(
        &with(|m| {
            let ops = subgraph(m).operators.as_mut().unwrap();
            let last = ops.last().unwrap().clone();
            ops.push(last);
        }),
        &["ipukit_graph describes"],
    );
}

#[test]
fn reading_a_fused_pad_that_does_not_feed_a_conv_fails() {
    // Mark the explicit Pad of this graph as a convolution padding in ipukit_graph: the reader
    // accepts it only where it feeds exactly one VALID convolution; here it does, so instead
    // make the pad feed the graph output too.
    let bytes = small();
    let mut m = owned(&bytes);
    let out = subgraph(&mut m).operators.as_ref().unwrap()[0]
        .outputs
        .clone()
        .unwrap();
    subgraph(&mut m).outputs.as_mut().unwrap().push(out[0]);
    // Without hints the explicit Pad stays a node whatever it feeds.
    let b = encode_model(&m);
    assert!(read_sim(&b).is_ok());
}
