//! The offline image against the fixed model on the runtime (`Session`, fast plan), on a real
//! fixed model:
//!
//! ```text
//! IPUKIT_FIXED_SIM=.cache/e2e/yolov8n_nudenet/yolov8n_nudenet_fixed_L5.sim \
//! IPUKIT_INPUT=.cache/e2e/yolov8n_nudenet/<case>/input_u8.npy \
//!     cargo bench -p ipukit-offline-img --bench offline_vs_fixed
//! ```
//!
//! * `IPUKIT_FIXED_SIM`: the fixed model (without it the bench prints a note and measures
//!   nothing);
//! * `IPUKIT_INPUT`: optional `.npy` for a single-input model (default: pseudo-random
//!   integers of every input's type and shape);
//! * `IPUKIT_THREADS`: thread counts, comma-separated (default `1,2`).
//!
//! The image is compiled in memory (batch 1, `n_buf`); before timing, the outputs of both
//! executors are checked to be identical. For a profile of one side, add e.g.
//! `-- offline/2t --profile-time 10` and run under `perf record -g`.

#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use ipukit_ir::{DType, Graph, TensorData};
use ipukit_offline_img::{compile, CompileOptions, LoadOptions, OfflineModel};
use ipukit_runtime::{Session, SessionOptions, Value};
use std::time::Duration;

/// Pseudo-random integers (or floats in [-1, 1]) for every graph input.
fn random_inputs(g: &Graph) -> Result<Vec<Value>, String> {
    let mut seed = 0x2545_f491u32;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed
    };
    g.inputs
        .iter()
        .map(|&t| {
            let t = g.tensor(t);
            let n = t.numel();
            let data: TensorData = match t.dtype {
                DType::U8 => (0..n).map(|_| next() as u8).collect::<Vec<_>>().into(),
                DType::I8 => (0..n).map(|_| next() as i8).collect::<Vec<_>>().into(),
                DType::I16 => (0..n).map(|_| next() as i16).collect::<Vec<_>>().into(),
                DType::U16 => (0..n).map(|_| next() as u16).collect::<Vec<_>>().into(),
                DType::F32 => (0..n)
                    .map(|_| (next() % 2001) as f32 / 1000.0 - 1.0)
                    .collect::<Vec<_>>()
                    .into(),
                d => return Err(format!("no random input of {d}")),
            };
            Value::new(t.shape.clone(), data).map_err(|e| e.to_string())
        })
        .collect()
}

/// The model inputs: `IPUKIT_INPUT` when set, random otherwise.
fn inputs(g: &Graph) -> Result<Vec<Value>, String> {
    let Ok(path) = std::env::var("IPUKIT_INPUT") else {
        return random_inputs(g);
    };
    let bytes = std::fs::read(&path).map_err(|e| format!("{path}: {e}"))?;
    let sample = ipukit_preprocess::npy::read_npy(&bytes).map_err(|e| format!("{path}: {e}"))?;
    let (shape, data) = sample.into_parts();
    Ok(vec![Value::new(shape, data).map_err(|e| e.to_string())?])
}

fn threads() -> Vec<usize> {
    std::env::var("IPUKIT_THREADS")
        .ok()
        .map(|v| v.split(',').filter_map(|t| t.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 2])
}

fn bench_offline_vs_fixed(c: &mut Criterion) {
    let Ok(path) = std::env::var("IPUKIT_FIXED_SIM") else {
        eprintln!("IPUKIT_FIXED_SIM is not set: nothing to measure");
        return;
    };
    let setup = || -> Result<_, String> {
        let (g, meta) = ipukit_simfmt::read_sim_file(&path).map_err(|e| format!("{path}: {e}"))?;
        let compiled = compile(&g, &meta, &CompileOptions::default()).map_err(|e| e.to_string())?;
        let x = inputs(&g)?;
        Ok((g, compiled.bytes, x))
    };
    let (g, bytes, x) = match setup() {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    let name = std::path::Path::new(&path)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    let mut group = c.benchmark_group(name);
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(8));
    for t in threads() {
        let prepare = || -> Result<(Session, OfflineModel), String> {
            let mut s = Session::new(g.clone(), SessionOptions { threads: Some(t) })
                .map_err(|e| e.to_string())?;
            let mut m = OfflineModel::from_bytes(&bytes, &LoadOptions { threads: Some(t) })
                .map_err(|e| e.to_string())?;
            let want = s.run(x.clone()).map_err(|e| e.to_string())?;
            let got = m.run(x.clone()).map_err(|e| e.to_string())?;
            if want != got {
                return Err("the image's outputs differ from the fixed model's".into());
            }
            Ok((s, m))
        };
        let (mut s, mut m) = match prepare() {
            Ok(p) => p,
            Err(e) => panic!("{path}, {t} thread(s): {e}"),
        };
        group.bench_function(BenchmarkId::new("fixed", format!("{t}t")), |b| {
            b.iter(|| {
                if let Err(e) = s.invoke() {
                    panic!("{e}");
                }
            })
        });
        group.bench_function(BenchmarkId::new("offline", format!("{t}t")), |b| {
            b.iter(|| {
                if let Err(e) = m.invoke() {
                    panic!("{e}");
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_offline_vs_fixed);
criterion_main!(benches);
