//! Fixed-point SiLU (`s = QLut(x)`, `z = QBinary Mul(x, s)`): the loader fuses the table and
//! the product into one pass with the runtime's kernel, bit-exact with the runtime session.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use ipukit_ir::ops::fixed::{OutRange, QBinary, QBinaryKind, QRescale, Requant};
use ipukit_ir::{DType, Graph, Op, TensorId};
use ipukit_kernels::int::build_lut;
use ipukit_offline_img::{compile, CompileOptions, Exec, LoadOptions, OfflineModel};
use ipukit_runtime::{Session, SessionOptions, Value};
use ipukit_simfmt::{SimMetadata, Stage};

fn mul(g: &mut Graph, name: &str, a: TensorId, b: TensorId, ratio: f64, out: OutRange) -> TensorId {
    let op = Op::QBinary(QBinary {
        kind: QBinaryKind::Mul(Requant::from_ratio(ratio).unwrap()),
        out,
    });
    g.add_node(name, op, vec![a, b], &[&format!("{name}_out")])
        .unwrap()[0]
}

/// Four table products on an INT16 activation of 8,192 elements:
/// * `m0 = Mul(x, sig(x))` on the graph input;
/// * `m1 = Mul(T(z0), z0)` with `T` the chain QRescale → QLut (the table's input is the chain's);
/// * `m2`: its table's output is also a graph output, so it stays two steps;
/// * `m3`: an output zero point and a narrowed range.
fn silu_graph() -> Graph {
    let full = OutRange::full(DType::I16, 0);
    let sig = build_lut(|v| 1.0 / (1.0 + (-v).exp()), 8.0 / 32768.0, 1.0 / 32767.0);
    let lut = || Op::QLut(sig.clone());
    let mut g = Graph::new();
    let x = g.add_input("x", DType::I16, vec![1, 16, 16, 32]);
    let s0 = g.add_node("t0", lut(), vec![x], &["s0"]).unwrap()[0];
    let z0 = mul(&mut g, "m0", x, s0, 1.0 / 32768.0, full);
    let rescale = Op::QRescale(QRescale {
        input_zero_point: 0,
        positive: vec![Requant::from_ratio(1.5).unwrap()],
        negative: vec![Requant::from_ratio(0.75).unwrap()],
        out_dtype: DType::I16,
        out: full,
    });
    let r = g.add_node("r1", rescale, vec![z0], &["r1"]).unwrap()[0];
    let s1 = g.add_node("t1", lut(), vec![r], &["s1"]).unwrap()[0];
    let z1 = mul(&mut g, "m1", s1, z0, 1.0 / 16384.0, full);
    let s2 = g.add_node("t2", lut(), vec![z1], &["s2"]).unwrap()[0];
    let z2 = mul(&mut g, "m2", z1, s2, 1.0 / 32768.0, full);
    let s3 = g.add_node("t3", lut(), vec![z2], &["s3"]).unwrap()[0];
    let narrow = OutRange {
        zero_point: 12,
        min: -2000,
        max: 30_000,
    };
    let z3 = mul(&mut g, "m3", z2, s3, 1.0 / 20000.0, narrow);
    g.outputs.extend([z3, s2, z1]);
    g.validate().unwrap();
    g
}

#[test]
fn table_products_fuse_and_stay_bit_exact() {
    let g = silu_graph();
    let meta = SimMetadata::new(Stage::Fixed, "silu");
    let c = compile(&g, &meta, &CompileOptions::default()).unwrap();
    // The image stores the two nodes of each product (the format is unchanged).
    let exec = &c.image.program.exec;
    assert_eq!(c.image.program.graph.nodes.len(), g.nodes.len());
    assert!(exec.contains(&Exec::TableHead) && exec.contains(&Exec::TableLink));
    let n = 16 * 16 * 32;
    for threads in [1usize, 2] {
        let opts = LoadOptions {
            threads: Some(threads),
        };
        let mut m = OfflineModel::from_bytes(&c.bytes, &opts).unwrap();
        assert_eq!(m.fused_table_products(), ["m0", "m1", "m3"]);
        let mut s = Session::new(
            g.clone(),
            SessionOptions {
                threads: Some(threads),
            },
        )
        .unwrap();
        // Every INT16 value once over the eight runs.
        for seed in 0..8u32 {
            let data: Vec<i16> = (0..n as u32)
                .map(|i| ((seed * n as u32 + i) as i32 - 32768) as i16)
                .collect();
            let x = Value::new(vec![1, 16, 16, 32], data).unwrap();
            let want = s.run(vec![x.clone()]).unwrap();
            let got = m.run(vec![x]).unwrap();
            assert_eq!(got, want, "seed {seed}, {threads} thread(s)");
        }
        // Random inputs as well.
        let mut state = 0x9e37_79b9u32 ^ threads as u32;
        let data: Vec<i16> = (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                state as i16
            })
            .collect();
        let x = Value::new(vec![1, 16, 16, 32], data).unwrap();
        assert_eq!(
            m.run(vec![x.clone()]).unwrap(),
            s.run(vec![x]).unwrap(),
            "random, {threads} thread(s)"
        );
    }
}
