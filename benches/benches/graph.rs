//! Whole-graph benches (`cargo bench -p ipukit-benches --bench graph`): a YOLOv8n-shaped
//! detector and a plain-convolution classifier, both 320×320, on 1 and 2 threads.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use ipukit_benches::{plain_classifier, random, yolov8n_like};
use ipukit_runtime::{Session, SessionOptions, Value};

fn bench_graphs(c: &mut Criterion) {
    let mut group = c.benchmark_group("graph");
    group.sample_size(20);
    let graphs = [
        ("yolov8n_like_320", yolov8n_like(320, 18)),
        ("plain_classifier_320", plain_classifier(320, 4)),
    ];
    for (name, g) in graphs {
        let g = match g {
            Ok(g) => g,
            Err(e) => panic!("{name}: {e}"),
        };
        for threads in [1, 2] {
            let mut s = match Session::new(
                g.clone(),
                SessionOptions {
                    threads: Some(threads),
                },
            ) {
                Ok(s) => s,
                Err(e) => panic!("{name}: {e}"),
            };
            let x = match Value::new(vec![1, 320, 320, 3], random(320 * 320 * 3, 7)) {
                Ok(v) => v,
                Err(e) => panic!("{e}"),
            };
            if let Err(e) = s.set_input(0, x) {
                panic!("{e}");
            }
            group.bench_function(BenchmarkId::new(name, format!("{threads}t")), |b| {
                b.iter(|| {
                    if let Err(e) = s.invoke() {
                        panic!("{e}");
                    }
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_graphs);
criterion_main!(benches);
