//! Integer convolution and fully-connected layers on OriNet's shapes (3×3, pad 1, NHWC), in
//! 16-bit mode (INT16 × INT16, INT64 sums) and, for comparison, 8-bit mode (UINT8 × INT8).
//!
//! `cargo bench -p ipukit-kernels --bench qconv`; one thread unless the name says `t2`.
//! Each benchmark runs on the best instruction set of the CPU (`Isa::detect`) and, for the
//! 16-bit layers, on every lower AVX-512 level too, so the levels can be compared.

// Fixed, valid data: a failure to pack or run is a bug the benchmark should stop on.
#![allow(clippy::expect_used)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ipukit_ir::ops::fixed::{OutRange, QConv2d, QFullyConnected, QLayer, Requant};
use ipukit_ir::ops::{Conv2d, FusedActivation, Padding2d};
use ipukit_ir::DType;
use ipukit_kernels::int::{Isa, PackedQConv, PackedQFullyConnected, QWeights};
use std::hint::black_box;

/// Deterministic values in `lo..=hi`.
fn values(n: usize, seed: u64, lo: i32, hi: i32) -> Vec<i32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            lo + (s % (hi - lo + 1) as u64) as i32
        })
        .collect()
}

fn layer(bits16: bool, cout: usize) -> QLayer {
    let out_dtype = if bits16 { DType::I16 } else { DType::U8 };
    QLayer {
        input_zero_point: if bits16 { 0 } else { 3 },
        requant: vec![
            Requant {
                multiplier: 1_518_500_250,
                shift: if bits16 { 45 } else { 38 },
            };
            cout
        ],
        out_dtype,
        out: OutRange::full(out_dtype, 0),
    }
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool")
}

/// Levels compared: the detected one and, below it, the AVX-512 levels.
fn levels() -> Vec<Isa> {
    let best = Isa::detect();
    let mut v: Vec<Isa> = Isa::supported()
        .filter(|&i| i >= Isa::Avx512Vnni && i < best)
        .collect();
    v.push(best);
    v
}

fn conv(c: &mut Criterion) {
    // (H = W, Cin, Cout) of OriNet's 3×3 stride-1 convolutions.
    let shapes = [(160, 32, 32), (80, 64, 64), (40, 128, 128), (20, 256, 256)];
    let mut g = c.benchmark_group("qconv3x3");
    g.sample_size(10);
    for &(hw, cin, cout) in &shapes {
        let macs = (hw * hw * cout * 9 * cin) as u64;
        g.throughput(Throughput::Elements(macs));
        let attrs = |bits16| QConv2d {
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
            layer: layer(bits16, cout),
        };
        let ws = [cout, 3, 3, cin];
        let n_w = cout * 9 * cin;
        let xs = [1, hw, hw, cin];
        let w16: Vec<i16> = values(n_w, 1, -32768, 32767)
            .into_iter()
            .map(|v| v as i16)
            .collect();
        let b64: Vec<i64> = values(cout, 2, -1 << 30, 1 << 30)
            .into_iter()
            .map(i64::from)
            .collect();
        let x16: Vec<i16> = values(hw * hw * cin, 3, -32768, 32767)
            .into_iter()
            .map(|v| v as i16)
            .collect();
        let w8: Vec<i8> = values(n_w, 4, -127, 127)
            .into_iter()
            .map(|v| v as i8)
            .collect();
        let x8: Vec<u8> = values(hw * hw * cin, 5, 0, 255)
            .into_iter()
            .map(|v| v as u8)
            .collect();
        let name = format!("{hw}x{hw}x{cin}->{cout}");
        for isa in levels() {
            let w = QWeights::Bits16 {
                weight: &w16,
                bias: Some(&b64),
            };
            let p = PackedQConv::with_isa(isa, &attrs(true), w, &ws).expect("pack");
            let mut out = vec![0i16; hw * hw * cout];
            for threads in [1, 2] {
                let tp = pool(threads);
                g.bench_function(
                    BenchmarkId::new(format!("i16-{isa}-t{threads}"), &name),
                    |b| {
                        b.iter(|| {
                            tp.install(|| p.run(black_box(&x16), &xs, &mut out))
                                .expect("run")
                        })
                    },
                );
            }
        }
        let w = QWeights::Bits8 {
            weight: &w8,
            bias: None,
        };
        let p = PackedQConv::new(&attrs(false), w, &ws).expect("pack");
        let mut out = vec![0u8; hw * hw * cout];
        let tp = pool(1);
        g.bench_function(
            BenchmarkId::new(format!("u8-{}-t1", Isa::detect()), &name),
            |b| {
                b.iter(|| {
                    tp.install(|| p.run(black_box(&x8), &xs, &mut out))
                        .expect("run")
                })
            },
        );
    }
    g.finish();
}

fn fully_connected(c: &mut Criterion) {
    // OriNet's head (one row) and a batched layer.
    let shapes = [(1, 256, 128), (64, 1024, 1024)];
    let mut g = c.benchmark_group("qfc");
    g.sample_size(20);
    for &(m, k, n) in &shapes {
        g.throughput(Throughput::Elements((m * k * n) as u64));
        let w16: Vec<i16> = values(n * k, 6, -32768, 32767)
            .into_iter()
            .map(|v| v as i16)
            .collect();
        let x16: Vec<i16> = values(m * k, 7, -32768, 32767)
            .into_iter()
            .map(|v| v as i16)
            .collect();
        let attrs = QFullyConnected {
            layer: layer(true, n),
        };
        let name = format!("{m}x{k}->{n}");
        for isa in levels() {
            let w = QWeights::Bits16 {
                weight: &w16,
                bias: None,
            };
            let p = PackedQFullyConnected::with_isa(isa, &attrs, w, &[n, k]).expect("pack");
            let mut out = vec![0i16; m * n];
            let tp = pool(1);
            g.bench_function(BenchmarkId::new(format!("i16-{isa}-t1"), &name), |b| {
                b.iter(|| {
                    tp.install(|| p.run(black_box(&x16), &[m, k], &mut out))
                        .expect("run")
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, conv, fully_connected);
criterion_main!(benches);
