//! Load and run times of the offline image against the fixed model on the runtime (prints;
//! ignored by default: `cargo test --release -p ipukit-offline-img --test speed -- --ignored --nocapture`).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use ipukit_offline_img::{compile, CompileOptions, LoadOptions, OfflineModel};
use ipukit_runtime::{Session, SessionOptions};
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
