//! Table chains the loader finds: a `QLut` followed by `QBinary` operators with a one-element
//! constant (PP-LCNetV3's HardSwish and learnable affine block, `y = T(x) · a + b`) run as one
//! lookup, bit-exact with the runtime session; a chain stops at an operator of two
//! activations.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use ipukit_ir::ops::fixed::{OutRange, QBinary, QBinaryKind, Requant};
use ipukit_ir::{DType, Graph, Op, TensorData, TensorId};
use ipukit_kernels::int::build_lut;
use ipukit_offline_img::{compile, CompileOptions, LoadOptions, OfflineModel};
use ipukit_runtime::{Session, SessionOptions, Value};
use ipukit_simfmt::{SimMetadata, Stage};

const SHAPE: [usize; 4] = [1, 8, 16, 32];

fn scalar(g: &mut Graph, name: &str, v: i16) -> TensorId {
    g.add_const(name, vec![1], TensorData::from(vec![v]))
        .unwrap()
}

fn binary(g: &mut Graph, name: &str, kind: QBinaryKind, a: TensorId, b: TensorId) -> TensorId {
    let op = Op::QBinary(QBinary {
        kind,
        out: OutRange::full(DType::I16, 0),
    });
    g.add_node(name, op, vec![a, b], &[&format!("{name}_out")])
        .unwrap()[0]
}

/// `y0 = b0 + T(x) · a0` (constant first in the Add); on `y0`, `s1 = T(y0) · a1` whose product
/// is also read by an `Add` with `y0` (an activation: not a table operator); then
/// `T(s1 + s1) · a2`, the chain's input read by its head alone.
fn affine_graph() -> Graph {
    let hswish = build_lut(
        |v| v * (v + 3.0).clamp(0.0, 6.0) / 6.0,
        8.0 / 32768.0,
        8.0 / 32767.0,
    );
    let mut g = Graph::new();
    let x = g.add_input("x", DType::I16, SHAPE.to_vec());
    let h = g
        .add_node("hswish", Op::QLut(hswish.clone()), vec![x], &["h"])
        .unwrap()[0];
    let a0 = scalar(&mut g, "a0", 23_000);
    let b0 = scalar(&mut g, "b0", -1_200);
    let mul = |r: f64| QBinaryKind::Mul(Requant::from_ratio(r).unwrap());
    let add = QBinaryKind::Add {
        ma: 1 << 14,
        mb: 1 << 14,
        shift: 14,
    };
    let s0 = binary(&mut g, "scale0", mul(1.0 / 16384.0), h, a0);
    let y0 = binary(&mut g, "bias0", add, b0, s0);
    let h1 = g
        .add_node("hswish1", Op::QLut(hswish.clone()), vec![y0], &["h1"])
        .unwrap()[0];
    let a1 = scalar(&mut g, "a1", 9_000);
    let s1 = binary(&mut g, "scale1", mul(1.0 / 8192.0), h1, a1);
    let y1 = binary(&mut g, "sum", add, s1, y0);
    let y2 = binary(&mut g, "twice", add, s1, s1);
    // The chain's input dies at its head: the memory plan may put the result over it.
    let h2 = g
        .add_node("hswish2", Op::QLut(hswish), vec![y2], &["h2"])
        .unwrap()[0];
    let a2 = scalar(&mut g, "a2", 30_000);
    let y3 = binary(&mut g, "scale2", mul(1.0 / 32768.0), h2, a2);
    g.outputs.extend([y1, y3]);
    g.validate().unwrap();
    g
}

#[test]
fn scalar_affine_after_a_table_is_one_lookup_and_bit_exact() {
    let g = affine_graph();
    let meta = SimMetadata::new(Stage::Fixed, "affine");
    let c = compile(&g, &meta, &CompileOptions::default()).unwrap();
    let n: usize = SHAPE.iter().product();
    for threads in [1usize, 2] {
        let opts = LoadOptions {
            threads: Some(threads),
        };
        let mut m = OfflineModel::from_bytes(&c.bytes, &opts).unwrap();
        assert_eq!(
            m.table_chains(),
            [
                vec!["hswish", "scale0", "bias0"],
                vec!["hswish1", "scale1"],
                vec!["hswish2", "scale2"]
            ]
        );
        let mut s = Session::new(
            g.clone(),
            SessionOptions {
                threads: Some(threads),
            },
        )
        .unwrap();
        // Every INT16 value once over the runs.
        for seed in 0..(65_536 / n) as u32 {
            let data: Vec<i16> = (0..n as u32)
                .map(|i| ((seed * n as u32 + i) as i32 - 32768) as i16)
                .collect();
            let x = Value::new(SHAPE.to_vec(), data).unwrap();
            let want = s.run(vec![x.clone()]).unwrap();
            let got = m.run(vec![x]).unwrap();
            assert_eq!(got, want, "seed {seed}, {threads} thread(s)");
        }
    }
}
