//! Integer-kernel benches (`cargo bench -p ipukit-benches --bench int_kernels`).
//!
//! Throughput is counted in operations (2 per multiply-accumulate), so criterion's
//! `Gelem/s` reads as GOPS. Every convolution runs on each instruction set the CPU supports
//! (the portable one only on a small layer: it is the reference, not a fast path), next to
//! the float convolution of the same shape.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ipukit_benches::random;
use ipukit_ir::ops::fixed::{
    OutRange, QBinary, QBinaryKind, QConv2d, QDepthwiseConv2d, QLayer, QLut, QRescale, Requant,
};
use ipukit_ir::ops::{Conv2d, DepthwiseConv2d, FusedActivation, Padding2d};
use ipukit_ir::DType;
use ipukit_kernels::float::PackedConv;
use ipukit_kernels::int::{self, Isa, PackedQConv, PackedQDepthwise, QWeights};
use std::hint::black_box;
use std::time::Duration;

const THREADS: [usize; 2] = [1, 2];

fn pool(threads: usize) -> rayon::ThreadPool {
    match rayon::ThreadPoolBuilder::new().num_threads(threads).build() {
        Ok(p) => p,
        Err(e) => panic!("thread pool: {e}"),
    }
}

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    }
}

/// Deterministic integers in `lo..=hi`.
fn ints(len: usize, seed: u64, lo: i32, hi: i32) -> Vec<i32> {
    random(len, seed)
        .iter()
        .map(|&v| lo + ((v * 0.5 + 0.5) * (hi - lo) as f32) as i32)
        .collect()
}

fn conv_attrs(k: usize, stride: usize) -> Conv2d {
    let p = k / 2;
    Conv2d {
        strides: [stride, stride],
        dilations: [1, 1],
        padding: Padding2d {
            top: p,
            left: p,
            bottom: p,
            right: p,
        },
        groups: 1,
        activation: FusedActivation::None,
    }
}

fn layer(bits16: bool, k: usize) -> QLayer {
    // A multiplier that keeps typical sums inside the output range.
    let ratio = if bits16 {
        1.0 / (32768.0 * (k as f64).sqrt() * 4.0)
    } else {
        1.0 / (128.0 * (k as f64).sqrt())
    };
    QLayer {
        input_zero_point: if bits16 { 0 } else { 128 },
        requant: vec![ok(Requant::from_ratio(ratio).ok_or("ratio")); 1],
        out_dtype: if bits16 { DType::I16 } else { DType::U8 },
        out: if bits16 {
            OutRange::full(DType::I16, 0)
        } else {
            OutRange {
                zero_point: 3,
                min: 3,
                max: 255,
            }
        },
    }
}

fn bench_conv(c: &mut Criterion) {
    let mut group = c.benchmark_group("int_conv");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(3));
    // (name, input NHWC, cout, kernel, stride)
    let cases = [
        ("3x3_80x80x64_to64", [1, 80, 80, 64], 64, 3, 1),
        ("1x1_80x80x64_to64", [1, 80, 80, 64], 64, 1, 1),
        ("3x3s2_80x80x64_to128", [1, 80, 80, 64], 128, 3, 2),
        ("3x3_20x20x128_to128", [1, 20, 20, 128], 128, 3, 1),
        ("3x3s2_320x320x3_to16", [1, 320, 320, 3], 16, 3, 2),
    ];
    for (name, xs, cout, k, s) in cases {
        let cin = xs[3];
        let nx: usize = xs.iter().product();
        let nw = cout * k * k * cin;
        let x8: Vec<u8> = ints(nx, 1, 0, 255).iter().map(|&v| v as u8).collect();
        let x16: Vec<i16> = ints(nx, 1, -32768, 32767)
            .iter()
            .map(|&v| v as i16)
            .collect();
        let w8: Vec<i8> = ints(nw, 2, -127, 127).iter().map(|&v| v as i8).collect();
        let w16: Vec<i16> = ints(nw, 2, -32767, 32767)
            .iter()
            .map(|&v| v as i16)
            .collect();
        let b32: Vec<i32> = ints(cout, 3, -5000, 5000);
        let b64: Vec<i64> = b32.iter().map(|&v| v as i64 * 1000).collect();
        let attrs = conv_attrs(k, s);
        let ws = [cout, k, k, cin];
        for bits16 in [false, true] {
            let q = QConv2d {
                conv: attrs.clone(),
                layer: layer(bits16, k * k * cin),
            };
            let weights = if bits16 {
                QWeights::Bits16 {
                    weight: &w16,
                    bias: Some(&b64),
                }
            } else {
                QWeights::Bits8 {
                    weight: &w8,
                    bias: Some(&b32),
                }
            };
            for isa in Isa::supported() {
                if isa == Isa::Scalar && name != "3x3_20x20x128_to128" {
                    continue;
                }
                let packed = ok(PackedQConv::with_isa(isa, &q, weights, &ws));
                let os = ok(packed.output_shape(&xs));
                let len: usize = os.iter().product();
                let ops = 2 * (len * k * k * cin) as u64;
                group.throughput(Throughput::Elements(ops));
                let mode = if bits16 { "i16" } else { "u8" };
                for t in THREADS {
                    let p = pool(t);
                    let id = BenchmarkId::new(format!("{mode}_{name}"), format!("{isa}_{t}t"));
                    if bits16 {
                        let mut out = vec![0i16; len];
                        group.bench_function(id, |b| {
                            p.install(|| b.iter(|| packed.run(black_box(&x16), &xs, &mut out)))
                        });
                    } else {
                        let mut out = vec![0u8; len];
                        group.bench_function(id, |b| {
                            p.install(|| b.iter(|| packed.run(black_box(&x8), &xs, &mut out)))
                        });
                    }
                }
            }
        }
        // The float convolution of the same shape.
        let xf = random(nx, 1);
        let wf = random(nw, 2);
        let bf = random(cout, 3);
        let fc = ok(PackedConv::new(&attrs, &wf, &ws, Some(&bf)));
        let os = ok(fc.output_shape(&xs));
        let len: usize = os.iter().product();
        group.throughput(Throughput::Elements(2 * (len * k * k * cin) as u64));
        let mut out = vec![0.0f32; len];
        for t in THREADS {
            let p = pool(t);
            let mut scratch = vec![0.0; fc.scratch_len(&xs, t)];
            group.bench_function(
                BenchmarkId::new(format!("f32_{name}"), format!("{t}t")),
                |b| p.install(|| b.iter(|| fc.run(black_box(&xf), &xs, &mut out, &mut scratch))),
            );
        }
    }
    group.finish();
}

fn bench_depthwise(c: &mut Criterion) {
    let mut group = c.benchmark_group("int_depthwise");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(3));
    let xs = [1, 80, 80, 64];
    let nx: usize = xs.iter().product();
    let conv = DepthwiseConv2d {
        strides: [1, 1],
        dilations: [1, 1],
        padding: Padding2d {
            top: 1,
            left: 1,
            bottom: 1,
            right: 1,
        },
        depth_multiplier: 1,
        activation: FusedActivation::None,
    };
    let x8: Vec<u8> = ints(nx, 1, 0, 255).iter().map(|&v| v as u8).collect();
    let x16: Vec<i16> = ints(nx, 1, -32768, 32767)
        .iter()
        .map(|&v| v as i16)
        .collect();
    let w8: Vec<i8> = ints(9 * 64, 2, -127, 127)
        .iter()
        .map(|&v| v as i8)
        .collect();
    let w16: Vec<i16> = ints(9 * 64, 2, -32767, 32767)
        .iter()
        .map(|&v| v as i16)
        .collect();
    group.throughput(Throughput::Elements(2 * (nx * 9) as u64));
    for bits16 in [false, true] {
        let q = QDepthwiseConv2d {
            conv: conv.clone(),
            layer: layer(bits16, 9),
        };
        let weights = if bits16 {
            QWeights::Bits16 {
                weight: &w16,
                bias: None,
            }
        } else {
            QWeights::Bits8 {
                weight: &w8,
                bias: None,
            }
        };
        for isa in Isa::supported() {
            let packed = ok(PackedQDepthwise::with_isa(isa, &q, weights, &[1, 3, 3, 64]));
            for t in THREADS {
                let p = pool(t);
                let mode = if bits16 { "i16" } else { "u8" };
                let id = BenchmarkId::new(format!("{mode}_3x3_80x80x64"), format!("{isa}_{t}t"));
                if bits16 {
                    let mut out = vec![0i16; nx];
                    group.bench_function(id, |b| {
                        p.install(|| b.iter(|| packed.run(black_box(&x16), &xs, &mut out)))
                    });
                } else {
                    let mut out = vec![0u8; nx];
                    group.bench_function(id, |b| {
                        p.install(|| b.iter(|| packed.run(black_box(&x8), &xs, &mut out)))
                    });
                }
            }
        }
    }
    group.finish();
}

fn bench_elementwise(c: &mut Criterion) {
    let mut group = c.benchmark_group("int_elementwise");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(2));
    let shape = [1, 80, 80, 64];
    let n: usize = shape.iter().product();
    let a: Vec<i16> = ints(n, 1, -32768, 32767)
        .iter()
        .map(|&v| v as i16)
        .collect();
    let b: Vec<i16> = ints(n, 2, -32768, 32767)
        .iter()
        .map(|&v| v as i16)
        .collect();
    group.throughput(Throughput::Elements(n as u64));
    let add = QBinary {
        kind: QBinaryKind::Add {
            ma: 1 << 29,
            mb: 3 << 28,
            shift: 30,
        },
        out: OutRange::full(DType::I16, 0),
    };
    let leaky = QRescale {
        input_zero_point: 0,
        positive: vec![Requant::IDENTITY],
        negative: vec![ok(Requant::from_ratio(0.1).ok_or("ratio"))],
        out_dtype: DType::U8,
        out: OutRange {
            zero_point: 128,
            min: 0,
            max: 255,
        },
    };
    let sig = int::build_lut(|x| 1.0 / (1.0 + (-x).exp()), 8.0 / 32767.0, 1.0 / 32767.0);
    let lut = ok(int::PackedQLut::new(&QLut { table: sig.table }));
    let mut o16 = vec![0i16; n];
    let mut o8 = vec![0u8; n];
    for isa in Isa::supported() {
        for t in THREADS {
            let p = pool(t);
            group.bench_function(
                BenchmarkId::new("add_80x80x64", format!("{isa}_{t}t")),
                |bch| {
                    p.install(|| {
                        bch.iter(|| {
                            int::qbinary_isa(isa, &add, black_box(&a), &shape, &b, &shape, &mut o16)
                        })
                    })
                },
            );
            group.bench_function(
                BenchmarkId::new("rescale_leaky_to_u8_80x80x64", format!("{isa}_{t}t")),
                |bch| {
                    p.install(|| {
                        bch.iter(|| int::qrescale_isa(isa, &leaky, black_box(&a), &shape, &mut o8))
                    })
                },
            );
        }
    }
    for t in THREADS {
        let p = pool(t);
        group.bench_function(
            BenchmarkId::new("lut_sigmoid_80x80x64", format!("{t}t")),
            |bch| p.install(|| bch.iter(|| lut.run(black_box(&a), &mut o16))),
        );
    }
    group.finish();
}

criterion_group!(benches, bench_conv, bench_depthwise, bench_elementwise);
criterion_main!(benches);
