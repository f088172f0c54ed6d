//! Fixed-point models (their round trips and determinism are checked with the other graphs in
//! `roundtrip.rs`): every fixed-point operator is written as its documented custom operator
//! (tables as constant tensors), the stage follows the operators, and broken options are
//! errors, never panics.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::fixed::{fixed_elementwise, fixed_graphs, fixed_layers};
use flexbuffers::{Builder, FlexBufferType, Reader};
use ipukit_simfmt::{encode_model, read_sim, tflite, write_sim, SimError, SimMetadata, Stage};
use planus::ReadAsRoot;

fn meta() -> SimMetadata {
    let mut m = SimMetadata::new(Stage::Fixed, "ipukit-simfmt fixed tests");
    m.input_config = Some("{}".into());
    m
}

fn owned(bytes: &[u8]) -> tflite::Model {
    tflite::Model::try_from(tflite::ModelRef::read_as_root(bytes).unwrap()).unwrap()
}

/// Name, type and shape of a tensor of the file.
type TensorSig = (String, tflite::TensorType, Vec<i32>);

/// `(custom code or builtin name, inputs)` of each operator of a written model.
fn ops_of(bytes: &[u8]) -> Vec<(String, Vec<TensorSig>)> {
    let m = owned(bytes);
    let sg = &m.subgraphs.as_ref().unwrap()[0];
    let tensors = sg.tensors.as_ref().unwrap();
    sg.operators
        .as_ref()
        .unwrap()
        .iter()
        .map(|o| {
            let c = &m.operator_codes.as_ref().unwrap()[o.opcode_index as usize];
            let code = c
                .custom_code
                .clone()
                .unwrap_or_else(|| format!("{:?}", c.builtin_code));
            let ins = o
                .inputs
                .as_ref()
                .unwrap()
                .iter()
                .map(|&i| {
                    let t = &tensors[i as usize];
                    (
                        t.name.clone().unwrap(),
                        t.type_,
                        t.shape.clone().unwrap_or_default(),
                    )
                })
                .collect();
            (code, ins)
        })
        .collect()
}

#[test]
fn fixed_operators_are_custom_with_tables_as_tensors() {
    let ops = ops_of(&write_sim(&fixed_layers(), &meta()).unwrap());
    let codes: Vec<&str> = ops.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(
        codes,
        [
            "IPU_InputNormalize",
            "IPU_InputNormalize",
            "IPU_InputNormalize",
            "IPU_QConv2d",
            "IPU_QRescale",
            "IPU_QConv2d",
            "IPU_QDepthwiseConv2d",
            "IPU_QDepthwiseConv2d",
            "IPU_QTransposeConv2d",
            "IPU_QFullyConnected",
            "IPU_QFullyConnected",
            "IPU_QLut",
            "IPU_QLut",
            "IPU_QSoftmax",
            "IPU_QSoftmax",
            "MaxPool2d",
            "IPU_QAvgPool2d",
            "IPU_QAvgPool2d",
            "IPU_QResize",
            "IPU_Resize",
            "IPU_QReduce",
            "IPU_QReduce",
            "ReduceMax",
            "IPU_Dequantize",
            "IPU_Dequantize",
        ]
    );
    // Tables are the last input: INT16 [1025] for QLut, INT32 [1025] for QSoftmax.
    let (_, lut) = &ops[11];
    assert_eq!(lut.len(), 2);
    assert_eq!(
        (lut[1].1, lut[1].2.as_slice()),
        (tflite::TensorType::Int16, &[1025][..])
    );
    assert!(lut[1].0.ends_with("/table"), "{}", lut[1].0);
    let (_, sm) = &ops[13];
    assert_eq!(
        (sm[1].1, sm[1].2.as_slice()),
        (tflite::TensorType::Int32, &[1025][..])
    );
    assert!(sm[1].0.ends_with("/exp_table"), "{}", sm[1].0);
    let codes: Vec<String> = ops_of(&write_sim(&fixed_elementwise(), &meta()).unwrap())
        .into_iter()
        .map(|(c, _)| c)
        .collect();
    assert_eq!(
        codes[..10],
        [
            "IPU_Quantize",
            "IPU_Quantize",
            "IPU_QBinary",
            "IPU_QBinary",
            "IPU_QBinary",
            "IPU_QBinary",
            "IPU_QBinary",
            "IPU_QBinary",
            "IPU_QMatMul",
            "IPU_QRescale",
        ]
    );
}

#[test]
fn the_stage_follows_the_operators() {
    let g = fixed_elementwise();
    let e = write_sim(&g, &SimMetadata::new(Stage::Float, "t")).unwrap_err();
    assert!(matches!(e, SimError::Unwritable(_)), "{e}");
    assert!(e.to_string().contains("stage must be fixed"), "{e}");

    // Without a stage entry the reader infers fixed; a file that says float is corrupt.
    let bytes = write_sim(&g, &meta()).unwrap();
    let with_stage = |stage: Option<&[u8]>| {
        let mut m = owned(&bytes);
        let md = m.metadata.as_mut().unwrap();
        let i = md
            .iter()
            .position(|e| e.name.as_deref() == Some("ipukit_stage"))
            .unwrap();
        match stage {
            Some(s) => {
                let b = md[i].buffer as usize;
                m.buffers.as_mut().unwrap()[b].data = Some(s.to_vec());
            }
            None => {
                md.remove(i);
            }
        }
        encode_model(&m)
    };
    let (back, m) = read_sim(&with_stage(None)).unwrap();
    assert_eq!((back, m.stage), (g, Stage::Fixed));
    let e = read_sim(&with_stage(Some(b"float"))).unwrap_err();
    assert!(matches!(e, SimError::Corrupt(_)), "{e}");
    assert!(e.to_string().contains("fixed-point operators"), "{e}");
}

/// A decoded flexbuffer option value.
#[derive(Clone, Debug)]
enum V {
    I(i64),
    F(f64),
    B(bool),
    S(String),
    Is(Vec<i64>),
    Fs(Vec<f64>),
}

fn decode_options(bytes: &[u8]) -> Vec<(String, V)> {
    let map = Reader::get_root(bytes).unwrap().get_map().unwrap();
    map.iter_keys()
        .map(|k| {
            let r = map.idx(k);
            let v = match r.flexbuffer_type() {
                FlexBufferType::Int
                | FlexBufferType::IndirectInt
                | FlexBufferType::UInt
                | FlexBufferType::IndirectUInt => V::I(r.as_i64()),
                FlexBufferType::Float | FlexBufferType::IndirectFloat => V::F(r.as_f64()),
                FlexBufferType::Bool => V::B(r.as_bool()),
                FlexBufferType::String => V::S(r.as_str().to_string()),
                t if t.is_vector() => {
                    let v = r.get_vector().unwrap();
                    let floats = v.iter().any(|e| {
                        matches!(
                            e.flexbuffer_type(),
                            FlexBufferType::Float | FlexBufferType::IndirectFloat
                        )
                    });
                    if floats {
                        V::Fs(v.iter().map(|e| e.as_f64()).collect())
                    } else {
                        V::Is(v.iter().map(|e| e.as_i64()).collect())
                    }
                }
                t => panic!("unexpected option type {t:?}"),
            };
            (k.to_string(), v)
        })
        .collect()
}

fn encode_options(entries: &[(String, V)]) -> Vec<u8> {
    let mut b = Builder::default();
    let mut m = b.start_map();
    for (k, v) in entries {
        match v {
            V::I(x) => m.push(k.as_str(), *x),
            V::F(x) => m.push(k.as_str(), *x),
            V::B(x) => m.push(k.as_str(), *x),
            V::S(x) => m.push(k.as_str(), x.as_str()),
            V::Is(x) => m.push(k.as_str(), x.as_slice()),
            V::Fs(x) => m.push(k.as_str(), x.as_slice()),
        }
    }
    m.end_map();
    b.take_buffer()
}

/// Mutations of one option: removed, given another type, out of every range, and (lists)
/// shortened or holding an out-of-range element. The first two must fail.
fn mutations(entries: &[(String, V)], k: usize) -> Vec<(bool, Vec<(String, V)>)> {
    let mut out = Vec::new();
    let mut removed = entries.to_vec();
    removed.remove(k);
    out.push((true, removed));
    let other = match &entries[k].1 {
        V::S(_) => V::I(1),
        _ => V::S("x".into()),
    };
    let mut with = |v: V, must_fail: bool| {
        let mut e = entries.to_vec();
        e[k].1 = v;
        out.push((must_fail, e));
    };
    with(other, true);
    for big in [1i64 << 40, -1, i32::MAX as i64 + 1, i64::MIN] {
        match &entries[k].1 {
            V::I(_) => with(V::I(big), false),
            V::Is(v) => {
                let mut w = v.clone();
                if let Some(l) = w.last_mut() {
                    *l = big;
                }
                with(V::Is(w), false);
            }
            _ => {}
        }
    }
    match &entries[k].1 {
        V::Is(v) if !v.is_empty() => with(V::Is(v[..v.len() - 1].to_vec()), false),
        V::Fs(v) if !v.is_empty() => with(V::Fs(v[..v.len() - 1].to_vec()), false),
        V::F(_) => {
            with(V::F(f64::NAN), false);
            with(V::F(-1.0), false);
        }
        _ => {}
    }
    out
}

#[test]
fn broken_fixed_options_are_errors_not_panics() {
    let mut checked = 0;
    for (name, g) in fixed_graphs() {
        let bytes = write_sim(&g, &meta()).unwrap();
        let model = owned(&bytes);
        let n_ops = model.subgraphs.as_ref().unwrap()[0]
            .operators
            .as_ref()
            .unwrap()
            .len();
        for i in 0..n_ops {
            let op = &model.subgraphs.as_ref().unwrap()[0]
                .operators
                .as_ref()
                .unwrap()[i];
            let Some(opts) = op.custom_options.clone() else {
                continue;
            };
            if opts.is_empty() {
                continue;
            }
            let entries = decode_options(&opts);
            let mut m = model.clone();
            m.subgraphs.as_mut().unwrap()[0].operators.as_mut().unwrap()[i].custom_options =
                Some(encode_options(&entries));
            let (back, _) = read_sim(&encode_model(&m)).unwrap();
            assert_eq!(back, g, "{name} op {i}: re-encoded options");
            for k in 0..entries.len() {
                for (must_fail, e) in mutations(&entries, k) {
                    let mut m = model.clone();
                    m.subgraphs.as_mut().unwrap()[0].operators.as_mut().unwrap()[i]
                        .custom_options = Some(encode_options(&e));
                    let r = read_sim(&encode_model(&m));
                    if must_fail {
                        let err = r.expect_err("a broken option was accepted");
                        assert!(
                            err.to_string().contains(&entries[k].0)
                                || err.to_string().contains("inconsistent"),
                            "{name} op {i}, option '{}': {err}",
                            entries[k].0
                        );
                    }
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 500, "{checked}");
}

#[test]
fn broken_tables_and_inputs_are_errors() {
    let bytes = write_sim(&fixed_layers(), &meta()).unwrap();
    let model = owned(&bytes);
    let lut = 11;
    let ops = || {
        model.subgraphs.as_ref().unwrap()[0]
            .operators
            .clone()
            .unwrap()
    };
    let read = |f: &dyn Fn(&mut tflite::Model)| {
        let mut m = model.clone();
        f(&mut m);
        read_sim(&encode_model(&m)).unwrap_err().to_string()
    };
    let table = ops()[lut].inputs.as_ref().unwrap()[1] as usize;
    let x = ops()[lut].inputs.as_ref().unwrap()[0];
    // A 2-D table.
    let e = read(&|m| {
        m.subgraphs.as_mut().unwrap()[0].tensors.as_mut().unwrap()[table].shape =
            Some(vec![1025, 1]);
    });
    assert!(e.contains("table") && e.contains("1-D"), "{e}");
    // A table that is not a constant.
    let e = read(&|m| {
        m.subgraphs.as_mut().unwrap()[0].operators.as_mut().unwrap()[lut]
            .inputs
            .as_mut()
            .unwrap()[1] = x;
    });
    assert!(e.contains("non-constant"), "{e}");
    // No table.
    let e = read(&|m| {
        m.subgraphs.as_mut().unwrap()[0].operators.as_mut().unwrap()[lut]
            .inputs
            .as_mut()
            .unwrap()
            .pop();
    });
    assert!(e.contains("inputs"), "{e}");
    // A layer whose weight is a scalar, and one without its weight.
    let conv = 3;
    let w = ops()[conv].inputs.as_ref().unwrap()[1] as usize;
    let e = read(&|m| {
        let t = &mut m.subgraphs.as_mut().unwrap()[0].tensors.as_mut().unwrap()[w];
        t.shape = Some(vec![]);
        t.buffer = 0;
    });
    assert!(e.contains("weight") && e.contains("4-D"), "{e}");
    let e = read(&|m| {
        m.subgraphs.as_mut().unwrap()[0].operators.as_mut().unwrap()[conv]
            .inputs
            .as_mut()
            .unwrap()[1] = -1;
    });
    assert!(e.contains("input 1 is missing"), "{e}");
    // A multiplier out of range is caught by the graph check.
    let mut m = model.clone();
    let op = &mut m.subgraphs.as_mut().unwrap()[0].operators.as_mut().unwrap()[conv];
    let mut entries = decode_options(op.custom_options.as_ref().unwrap());
    for (k, v) in &mut entries {
        if k == "shifts" {
            if let V::Is(s) = v {
                s[0] = 63;
            }
        }
    }
    op.custom_options = Some(encode_options(&entries));
    let e = read_sim(&encode_model(&m)).unwrap_err().to_string();
    assert!(e.contains("multiplier out of range"), "{e}");
    // An unknown output type.
    let mut m = model.clone();
    let op = &mut m.subgraphs.as_mut().unwrap()[0].operators.as_mut().unwrap()[conv];
    let mut entries = decode_options(op.custom_options.as_ref().unwrap());
    for (k, v) in &mut entries {
        if k == "out_type" {
            *v = V::S("INT4".into());
        }
    }
    op.custom_options = Some(encode_options(&entries));
    let e = read_sim(&encode_model(&m)).unwrap_err().to_string();
    assert!(e.contains("unknown element type 'INT4'"), "{e}");
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
fn flipped_bytes_of_fixed_models_never_panic() {
    // What reads must also write and read back to the same graph (the fuzz target's rule).
    for (_, g) in fixed_graphs() {
        let bytes = write_sim(&g, &meta()).unwrap();
        let mut rng = Rng(7);
        for _ in 0..1500 {
            let mut b = bytes.clone();
            for _ in 0..1 + rng.next() % 3 {
                let i = (rng.next() as usize) % b.len();
                b[i] ^= 1 << (rng.next() % 8);
            }
            if let Ok((graph, meta)) = read_sim(&b) {
                if let Ok(again) = write_sim(&graph, &meta) {
                    let (g2, m2) = read_sim(&again).unwrap();
                    assert!(g2 == graph || format!("{g2:?}") == format!("{graph:?}"));
                    assert_eq!(m2, meta);
                }
            }
        }
    }
}
