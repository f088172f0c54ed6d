//! Load and run times of the offline image against the fixed model on the runtime (prints;
//! ignored by default: `cargo test --release -p ipukit-offline-img --test speed -- --ignored --nocapture`).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use ipukit_offline_img::{compile, CompileOptions, LoadOptions, OfflineModel};
use ipukit_runtime::{Session, SessionOptions, Value};
use std::time::Instant;

#[test]
#[ignore = "timing report"]
fn offline_vs_fixed_timing() {
    let (g, meta, _) = common::default_fixed();
    let imgs = common::images(&g, &meta);
    let c = compile(&g, &meta, &CompileOptions::default()).unwrap();
    let runs = 200;
    for threads in [1usize, 2] {
        let t = Instant::now();
        let mut s = Session::new(
            g.clone(),
            SessionOptions {
                threads: Some(threads),
            },
        )
        .unwrap();
        let load_s = t.elapsed();
        let t = Instant::now();
        let mut m = OfflineModel::from_bytes(
            &c.bytes,
            &LoadOptions {
                threads: Some(threads),
            },
        )
        .unwrap();
        let load_m = t.elapsed();
        for _ in 0..10 {
            s.run(vec![imgs[0].clone()]).unwrap();
            m.run(vec![imgs[0].clone()]).unwrap();
        }
        let t = Instant::now();
        for i in 0..runs {
            s.run(vec![imgs[i % 2].clone()]).unwrap();
        }
        let run_s = t.elapsed() / runs as u32;
        let t = Instant::now();
        for i in 0..runs {
            m.run(vec![imgs[i % 2].clone()]).unwrap();
        }
        let run_m = t.elapsed() / runs as u32;
        println!(
            "threads {threads}: load fixed {load_s:?} offline {load_m:?}; run fixed {run_s:?} offline {run_m:?} (fixed/offline {:.2}x)",
            run_s.as_secs_f64() / run_m.as_secs_f64()
        );
    }
}

/// Median of `runs` timed runs of `f`.
fn median(runs: usize, mut f: impl FnMut()) -> std::time::Duration {
    let mut t: Vec<_> = (0..runs)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed()
        })
        .collect();
    t.sort_unstable();
    t[runs / 2]
}

/// Any fixed.sim (`IPUKIT_FIXED_SIM=path`, e.g. YOLOv8n's): compile, then the median run time
/// of the session and of the offline model on one pseudo-random input, alternating rounds
/// (`IPUKIT_RUNS` per round, default 15; 5 rounds). Prints; skips without the variable.
#[test]
#[ignore = "timing report on a model given by IPUKIT_FIXED_SIM"]
fn fixed_sim_timing_from_env() {
    use ipukit_ir::{DType, TensorData};
    let Ok(path) = std::env::var("IPUKIT_FIXED_SIM") else {
        println!("IPUKIT_FIXED_SIM is not set: nothing to time");
        return;
    };
    let runs: usize = std::env::var("IPUKIT_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    let (g, meta) = ipukit_simfmt::read_sim_file(&path).unwrap();
    let c = compile(&g, &meta, &CompileOptions::default()).unwrap();
    let mut seed = 0x2545_f491u32;
    let inputs: Vec<Value> = g
        .inputs
        .iter()
        .map(|&t| {
            let t = g.tensor(t);
            let mut next = || {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                seed
            };
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
                d => panic!("no random input of {d}"),
            };
            Value::new(t.shape.clone(), data).unwrap()
        })
        .collect();
    for threads in [1usize, 2] {
        let mut s = Session::new(
            g.clone(),
            SessionOptions {
                threads: Some(threads),
            },
        )
        .unwrap();
        let mut m = OfflineModel::from_bytes(
            &c.bytes,
            &LoadOptions {
                threads: Some(threads),
            },
        )
        .unwrap();
        assert_eq!(
            m.run(inputs.clone()).unwrap(),
            s.run(inputs.clone()).unwrap(),
            "offline differs from the session"
        );
        let (mut ts, mut tm) = (Vec::new(), Vec::new());
        for _ in 0..5 {
            ts.push(median(runs, || {
                s.run(inputs.clone()).unwrap();
            }));
            tm.push(median(runs, || {
                m.run(inputs.clone()).unwrap();
            }));
        }
        ts.sort_unstable();
        tm.sort_unstable();
        println!(
            "{path}: threads {threads}: {} nodes, {} fused table products; median run fixed {:?} offline {:?} (fixed/offline {:.3}x; round medians fixed {ts:?} offline {tm:?})",
            g.nodes.len(),
            m.fused_table_products().len(),
            ts[2],
            tm[2],
            ts[2].as_secs_f64() / tm[2].as_secs_f64()
        );
    }
}
