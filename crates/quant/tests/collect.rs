//! Collection on small synthetic graphs: determinism, both memory modes, error handling.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ipukit_ir::ops::{
    BinaryOp, Conv2d, DepthwiseConv2d, FullyConnected, FusedActivation, Padding2d, UnaryOp,
};
use ipukit_ir::{DType, Graph, Op};
use ipukit_quant::range::{QuantTarget, RangeMethod};
use ipukit_quant::stats::{collect, CalibrationStats, CollectOptions, OnError};
use ipukit_quant::QuantError;
use ipukit_runtime::Value;

/// x [1,12,12,3] → conv 3x3 (8) → relu → depthwise 3x3 → sigmoid·x (SiLU) → FC (5) → + c
fn graph() -> Graph {
    let mut g = Graph::new();
    let x = g.add_input("x", DType::F32, vec![1, 12, 12, 3]);
    let w: Vec<f32> = (0..8 * 3 * 3 * 3)
        .map(|i| ((i * 37 % 17) as f32 - 8.0) / 10.0)
        .collect();
    let w = g.add_const("conv_w", vec![8, 3, 3, 3], w.into()).unwrap();
    let b = g
        .add_const("conv_b", vec![8], vec![0.1f32; 8].into())
        .unwrap();
    let conv = Conv2d {
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
    };
    let y = g
        .add_node("conv", Op::Conv2d(conv), vec![x, w, b], &["conv_out"])
        .unwrap()[0];
    let r = g
        .add_node("relu", Op::Unary(UnaryOp::Relu), vec![y], &["relu_out"])
        .unwrap()[0];
    let dw: Vec<f32> = (0..9 * 8)
        .map(|i| ((i * 13 % 11) as f32 - 5.0) / 7.0)
        .collect();
    let dw = g.add_const("dw_w", vec![1, 3, 3, 8], dw.into()).unwrap();
    let d = DepthwiseConv2d {
        strides: [2, 2],
        dilations: [1, 1],
        padding: Padding2d::ZERO,
        depth_multiplier: 1,
        activation: FusedActivation::None,
    };
    let z = g
        .add_node("dw", Op::DepthwiseConv2d(d), vec![r, dw], &["dw_out"])
        .unwrap()[0];
    let s = g
        .add_node("sig", Op::Unary(UnaryOp::Sigmoid), vec![z], &["sig_out"])
        .unwrap()[0];
    let m = g
        .add_node("mul", Op::Binary(BinaryOp::Mul), vec![z, s], &["silu_out"])
        .unwrap()[0];
    let fw: Vec<f32> = (0..5 * 8)
        .map(|i| ((i * 7 % 9) as f32 - 4.0) / 3.0)
        .collect();
    let fw = g.add_const("fc_w", vec![5, 8], fw.into()).unwrap();
    let f = g
        .add_node(
            "fc",
            Op::FullyConnected(FullyConnected {
                activation: FusedActivation::None,
            }),
            vec![m, fw],
            &["fc_out"],
        )
        .unwrap()[0];
    let c = g
        .add_const("c", vec![5], vec![0.5f32, -0.5, 1.0, 0.0, 2.0].into())
        .unwrap();
    let o = g
        .add_node("add", Op::Binary(BinaryOp::Add), vec![f, c], &["out"])
        .unwrap()[0];
    g.outputs.push(o);
    g.validate().unwrap();
    g
}

/// Deterministic pseudo-random sample `i` with a per-sample scale (so ranges differ).
fn sample(i: usize) -> Vec<Value> {
    let mut state = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let scale = 1.0 + (i % 7) as f32;
    let data: Vec<f32> = (0..12 * 12 * 3)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * scale
        })
        .collect();
    vec![Value::new(vec![1, 12, 12, 3], data).unwrap()]
}

fn run(order: &[usize], opts: &CollectOptions) -> CalibrationStats {
    let samples = order.iter().map(|&i| Ok::<_, QuantError>(sample(i)));
    collect(&graph(), samples, opts, &|_| {}).unwrap()
}

#[test]
fn same_statistics_for_any_worker_count_order_and_mode() {
    let order: Vec<usize> = (0..24).collect();
    let mut shuffled = order.clone();
    shuffled.reverse();
    shuffled.swap(3, 17);
    shuffled.swap(0, 11);
    let base = run(&order, &CollectOptions::default());
    assert_eq!(base.samples(), 24);
    for (num_process, memory_saving, ord) in [
        (2, false, &shuffled),
        (3, false, &order),
        (2, true, &shuffled),
        (1, true, &order),
        (4, true, &shuffled),
    ] {
        let opts = CollectOptions {
            num_process,
            memory_saving,
            ..CollectOptions::default()
        };
        let other = run(ord, &opts);
        assert_eq!(
            other, base,
            "num_process {num_process}, memory_saving {memory_saving}"
        );
        // Bit-identical floats too (PartialEq would accept -0.0 for 0.0).
        for (a, b) in other.activations().iter().zip(base.activations()) {
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(a.channel_min()), bits(b.channel_min()));
            assert_eq!(bits(a.channel_max()), bits(b.channel_max()));
            assert_eq!(
                a.mean_min_max().map(|(x, y)| (x.to_bits(), y.to_bits())),
                b.mean_min_max().map(|(x, y)| (x.to_bits(), y.to_bits()))
            );
        }
    }
}

#[test]
fn every_float_activation_and_weight_is_covered() {
    let stats = run(&[0, 1, 2], &CollectOptions::default());
    let names: Vec<&str> = stats.activations().iter().map(|a| a.name()).collect();
    assert_eq!(
        names,
        ["x", "conv_out", "relu_out", "dw_out", "sig_out", "silu_out", "fc_out", "out"]
    );
    for a in stats.activations() {
        assert!(a.count() > 0, "{} never observed", a.name());
        assert_eq!(a.samples(), 3);
        assert_eq!(a.count(), 3 * a.shape().iter().product::<usize>() as u64);
    }
    let relu = stats.activation_by_name("relu_out").unwrap();
    assert_eq!(relu.min_max().unwrap().0, 0.0);
    assert_eq!(relu.channel_min().len(), 8);
    let sig = stats.activation_by_name("sig_out").unwrap();
    let (lo, hi) = sig.min_max().unwrap();
    assert!(lo > 0.0 && hi < 1.0);
    let weights: Vec<(&str, usize, usize)> = stats
        .weights()
        .iter()
        .map(|w| (w.name(), w.axis(), w.channels().len()))
        .collect();
    assert_eq!(weights, [("conv_w", 0, 8), ("dw_w", 3, 8), ("fc_w", 0, 5)]);
    // The graph input's statistics are those of the samples themselves.
    let x = stats.activation_by_name("x").unwrap();
    let want_max = (0..3)
        .flat_map(|i| sample(i)[0].as_f32().unwrap().to_vec())
        .fold(f32::NEG_INFINITY, f32::max);
    assert_eq!(x.min_max().unwrap().1, want_max);
    // Every range method works on real statistics.
    for m in [
        RangeMethod::MinMax,
        RangeMethod::MovingAverage,
        RangeMethod::Percentile(99.9),
        RangeMethod::Mse,
        RangeMethod::Entropy,
    ] {
        for t in [QuantTarget::INT16, QuantTarget::INT8, QuantTarget::UINT8] {
            for a in stats.activations() {
                let r = a.range(m, t).unwrap();
                let (lo, hi) = a.min_max().unwrap();
                assert!(
                    r.min <= 0.0 && r.max >= 0.0 && r.min >= lo.min(0.0) && r.max <= hi.max(0.0)
                );
            }
            for w in stats.weights() {
                assert_eq!(w.channel_ranges(m, t).unwrap().len(), w.channels().len());
            }
        }
    }
}

#[test]
fn stop_reports_the_first_failing_sample() {
    let samples = (0..10).map(|i| {
        if i == 4 || i == 7 {
            Err(format!("cannot read image {i}"))
        } else {
            Ok(sample(i))
        }
    });
    let opts = CollectOptions {
        num_process: 2,
        ..CollectOptions::default()
    };
    let e = collect(&graph(), samples, &opts, &|_| {}).unwrap_err();
    assert_eq!(e.to_string(), "sample #4: cannot read image 4");
}

#[test]
fn skip_records_failures_and_matches_the_clean_run() {
    let bad_shape = vec![Value::new(vec![1, 2], vec![0.0f32, 1.0]).unwrap()];
    let samples = (0..8).map(|i| match i {
        2 => Err("broken file".to_string()),
        5 => Ok(bad_shape.clone()),
        _ => Ok(sample(i)),
    });
    let opts = CollectOptions {
        num_process: 2,
        on_error: OnError::Skip,
        ..CollectOptions::default()
    };
    let stats = collect(&graph(), samples, &opts, &|_| {}).unwrap();
    let f: Vec<(usize, &str)> = stats
        .failures()
        .iter()
        .map(|f| (f.index, f.input.as_str()))
        .collect();
    assert_eq!(f, [(2, "sample #2"), (5, "sample #5")]);
    assert!(
        stats.failures()[1].error.contains("Dimension mismatch"),
        "{:?}",
        stats.failures()
    );
    let clean = run(&[0, 1, 3, 4, 6, 7], &CollectOptions::default());
    assert_eq!(stats.activations(), clean.activations());
    assert_eq!(stats.samples(), 6);
}

#[test]
fn no_samples_is_an_error() {
    let none = std::iter::empty::<Result<Vec<Value>, String>>();
    let e = collect(&graph(), none, &CollectOptions::default(), &|_| {}).unwrap_err();
    assert!(e.to_string().contains("no calibration sample"), "{e}");
    let wrong_count = std::iter::once(Ok::<_, String>(vec![]));
    let e = collect(&graph(), wrong_count, &CollectOptions::default(), &|_| {}).unwrap_err();
    assert!(
        e.to_string()
            .contains("0 value(s) but the model has 1 input"),
        "{e}"
    );
}

#[test]
fn progress_counts_every_sample() {
    let count = std::sync::atomic::AtomicUsize::new(0);
    let samples = (0..9).map(|i| Ok::<_, String>(sample(i)));
    let opts = CollectOptions {
        num_process: 3,
        ..CollectOptions::default()
    };
    collect(&graph(), samples, &opts, &|p| {
        count.fetch_max(p.done, std::sync::atomic::Ordering::Relaxed);
    })
    .unwrap();
    assert_eq!(count.into_inner(), 9);
}

#[test]
fn statistics_do_not_grow_with_the_number_of_samples() {
    for memory_saving in [false, true] {
        let opts = CollectOptions {
            num_process: 2,
            memory_saving,
            ..CollectOptions::default()
        };
        let few = run(&[0, 1], &opts);
        let many = run(&(0..40).collect::<Vec<_>>(), &opts);
        assert_eq!(
            few.heap_bytes(),
            many.heap_bytes(),
            "memory_saving {memory_saving}"
        );
        for (a, b) in few.activations().iter().zip(many.activations()) {
            assert_eq!(a.histogram().counts().len(), b.histogram().counts().len());
            assert_eq!(a.channel_min().len(), b.channel_min().len());
        }
    }
}

/// Peak RSS of 1,000 samples against 10 on a graph with ~2 MB of activations per sample.
/// `cargo test --release -p ipukit-quant --test collect -- --ignored --nocapture`
#[test]
#[ignore = "measures process memory; slow in debug builds"]
fn memory_saving_peak_rss_is_flat() {
    use ipukit_quant::bench::memory_scaling;
    let mut g = Graph::new();
    let x = g.add_input("x", DType::F32, vec![1, 96, 96, 8]);
    let mut cur = x;
    for k in 0..4 {
        let w: Vec<f32> = (0..8 * 9 * 8)
            .map(|i| ((i * 29 % 23) as f32 - 11.0) / 40.0)
            .collect();
        let w = g
            .add_const(&format!("w{k}"), vec![8, 3, 3, 8], w.into())
            .unwrap();
        let conv = Conv2d {
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
        };
        let y = g
            .add_node(
                &format!("conv{k}"),
                Op::Conv2d(conv),
                vec![cur, w],
                &[&format!("c{k}")],
            )
            .unwrap()[0];
        cur = g
            .add_node(
                &format!("relu{k}"),
                Op::Unary(UnaryOp::Relu),
                vec![y],
                &[&format!("r{k}")],
            )
            .unwrap()[0];
    }
    g.outputs.push(cur);
    let make = |i: usize| -> ipukit_quant::Result<Vec<Value>> {
        let data: Vec<f32> = (0..96 * 96 * 8)
            .map(|j| (((i * 7919 + j * 104729) % 1000) as f32 - 500.0) / 100.0)
            .collect();
        Ok(vec![Value::new(vec![1, 96, 96, 8], data)?])
    };
    for memory_saving in [true, false] {
        let opts = CollectOptions {
            num_process: 2,
            memory_saving,
            ..CollectOptions::default()
        };
        let m = memory_scaling(&g, &make, 10, 1000, &opts).unwrap();
        println!(
            "memory_saving {memory_saving}: 10 samples {} KiB, 1000 samples {} KiB, ratio {:.3}, {:.1} samples/s",
            m.small.peak_rss_kib, m.large.peak_rss_kib, m.ratio(), m.large.rate()
        );
        if memory_saving && m.small.peak_rss_kib > 0 {
            assert!(m.ratio() <= 1.2, "{m:?}");
        }
    }
}
