//! Kernel benches on the shapes of a 320×320 detector (`cargo bench -p ipukit-benches --bench kernels`).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ipukit_benches::random;
use ipukit_ir::ops::{
    Conv2d, CoordTransform, DepthwiseConv2d, FullyConnected, FusedActivation, NearestMode,
    Padding2d, Pool2d, PoolKind, Resize, ResizeMode,
};
use ipukit_kernels::float::{self, Epilogue, PackedConv, PackedDepthwise, PackedLinear, PostOp};
use std::hint::black_box;

const THREADS: [usize; 2] = [1, 2];

fn pool(threads: usize) -> rayon::ThreadPool {
    match rayon::ThreadPoolBuilder::new().num_threads(threads).build() {
        Ok(p) => p,
        Err(e) => panic!("thread pool: {e}"),
    }
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

fn bench_conv(c: &mut Criterion) {
    let mut group = c.benchmark_group("conv");
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
        let x = random(xs.iter().product(), 1);
        let w = random(cout * k * k * cin, 2);
        let b = random(cout, 3);
        let mut conv = match PackedConv::new(&conv_attrs(k, s), &w, &[cout, k, k, cin], Some(&b)) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        conv.set_epilogue(Epilogue {
            activation: FusedActivation::None,
            post: PostOp::Silu,
        });
        let os = conv.output_shape(&xs).unwrap_or_default();
        let mut out = vec![0.0; os.iter().product()];
        let macs = (os.iter().product::<usize>() * k * k * cin) as u64;
        group.throughput(Throughput::Elements(macs));
        for t in THREADS {
            let p = pool(t);
            let mut scratch = vec![0.0; conv.scratch_len(&xs, t)];
            group.bench_with_input(BenchmarkId::new(name, format!("{t}t")), &t, |bch, _| {
                p.install(|| bch.iter(|| conv.run(black_box(&x), &xs, &mut out, &mut scratch)))
            });
        }
    }
    group.finish();
}

fn bench_depthwise(c: &mut Criterion) {
    let mut group = c.benchmark_group("depthwise");
    let xs = [1, 80, 80, 64];
    let attrs = DepthwiseConv2d {
        strides: [1, 1],
        dilations: [1, 1],
        padding: Padding2d {
            top: 1,
            left: 1,
            bottom: 1,
            right: 1,
        },
        depth_multiplier: 1,
        activation: FusedActivation::Relu6,
    };
    let x = random(xs.iter().product(), 1);
    let w = random(9 * 64, 2);
    let dw = match PackedDepthwise::new(&attrs, &w, &[1, 3, 3, 64], None) {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    };
    let mut out = vec![0.0; x.len()];
    for t in THREADS {
        let p = pool(t);
        group.bench_function(BenchmarkId::new("3x3_80x80x64", format!("{t}t")), |bch| {
            p.install(|| bch.iter(|| dw.run(black_box(&x), &xs, &mut out)))
        });
    }
    group.finish();
}

fn bench_linear(c: &mut Criterion) {
    let mut group = c.benchmark_group("matmul");
    let (m, k, n) = (256, 256, 256);
    let a = random(m * k, 1);
    let b = random(k * n, 2);
    let mut out = vec![0.0; m * n];
    let w = random(1000 * 1024, 3);
    let fc = match PackedLinear::new(&FullyConnected::default(), &w, &[1000, 1024], None) {
        Ok(f) => f,
        Err(e) => panic!("{e}"),
    };
    let xv = random(1024, 4);
    let mut fo = vec![0.0; 1000];
    for t in THREADS {
        let p = pool(t);
        group.bench_function(BenchmarkId::new("256x256x256", format!("{t}t")), |bch| {
            p.install(|| bch.iter(|| float::matmul(black_box(&a), &[m, k], &b, &[k, n], &mut out)))
        });
        group.bench_function(
            BenchmarkId::new("fc_1024_to_1000", format!("{t}t")),
            |bch| p.install(|| bch.iter(|| fc.run(black_box(&xv), &[1, 1024], &mut fo))),
        );
    }
    group.finish();
}

fn bench_elementwise(c: &mut Criterion) {
    let mut group = c.benchmark_group("elementwise");
    let x = random(80 * 80 * 64, 1);
    let mut out = vec![0.0; x.len()];
    let fm = random(20 * 20 * 256, 2);
    let mut pooled = vec![0.0; fm.len()];
    let mut up = vec![0.0; fm.len() * 4];
    let mp = Pool2d {
        kind: PoolKind::Max,
        kernel: [5, 5],
        strides: [1, 1],
        dilations: [1, 1],
        padding: Padding2d {
            top: 2,
            left: 2,
            bottom: 2,
            right: 2,
        },
        ceil_mode: false,
    };
    let rs = Resize {
        mode: ResizeMode::Nearest(NearestMode::Floor),
        coord: CoordTransform::Asymmetric,
        size: [40, 40],
        scales: [2.0, 2.0],
    };
    let nchw = random(64 * 80 * 80, 3);
    for t in THREADS {
        let p = pool(t);
        group.bench_function(BenchmarkId::new("silu_80x80x64", format!("{t}t")), |bch| {
            p.install(|| bch.iter(|| float::silu(black_box(&x), &mut out)))
        });
        group.bench_function(
            BenchmarkId::new("maxpool5_20x20x256", format!("{t}t")),
            |bch| {
                p.install(|| {
                    bch.iter(|| float::pool2d(&mp, black_box(&fm), &[1, 20, 20, 256], &mut pooled))
                })
            },
        );
        group.bench_function(
            BenchmarkId::new("resize2x_20x20x256", format!("{t}t")),
            |bch| {
                p.install(|| {
                    bch.iter(|| float::resize(&rs, black_box(&fm), &[1, 20, 20, 256], &mut up))
                })
            },
        );
        group.bench_function(
            BenchmarkId::new("nchw_to_nhwc_64x80x80", format!("{t}t")),
            |bch| {
                p.install(|| {
                    bch.iter(|| {
                        ipukit_kernels::array::transpose(
                            black_box(&nchw),
                            &[1, 64, 80, 80],
                            &[0, 2, 3, 1],
                            &mut out,
                        )
                    })
                })
            },
        );
    }
    group.finish();
}

criterion_group!(
    benches,
    bench_conv,
    bench_depthwise,
    bench_linear,
    bench_elementwise
);
criterion_main!(benches);
