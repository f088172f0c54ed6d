//! The calibrator on a small image model: determinism, thread independence, the fixed model's
//! agreement with the float model, and the seeds' errors on bad calibration sets and imports.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ipukit_calibrator::{calibrate, save_quant_param, CalibrateOptions, CalibratorError};
use ipukit_config::InputConfig;
use ipukit_ir::ops::{Conv2d, FusedActivation, Padding2d, Pool2d, PoolKind, Reshape, Softmax};
use ipukit_ir::{DType, Graph, Op};
use ipukit_quant::calibrate::QuantLevel;
use ipukit_quant::json::ExportOptions;
use ipukit_simfmt::{read_sim_file, write_sim_file, SimMetadata, Stage};
use std::path::{Path, PathBuf};

const INI: &str = "[INPUT_CONFIG]\ninputs=x;\ntraining_input_formats=RGB;\ninput_formats=RGB;\nquantizations=TRUE;\nmean=120:115:100;\nstd_value=60:58:62;\n[OUTPUT_CONFIG]\noutputs=prob;\ndequantizations=TRUE;\n";
const PRE: &str = "resize=16x16,rgb";

fn weights(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (((s >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0) * scale
        })
        .collect()
}

/// x [1,16,16,3] → conv3x3/2 relu → conv3x3 relu → global average → FC → softmax.
fn float_model(dir: &Path) -> PathBuf {
    let mut g = Graph::new();
    let x = g.add_input("x", DType::F32, vec![1, 16, 16, 3]);
    let conv = |stride| Conv2d {
        strides: [stride, stride],
        dilations: [1, 1],
        padding: Padding2d {
            top: 1,
            left: 1,
            bottom: 1,
            right: 1,
        },
        groups: 1,
        activation: FusedActivation::Relu,
    };
    let w1 = g
        .add_const("w1", vec![8, 3, 3, 3], weights(216, 1, 0.3).into())
        .unwrap();
    let b1 = g
        .add_const("b1", vec![8], weights(8, 2, 0.1).into())
        .unwrap();
    let c1 = g
        .add_node("conv1", Op::Conv2d(conv(2)), vec![x, w1, b1], &["c1"])
        .unwrap()[0];
    let w2 = g
        .add_const("w2", vec![8, 3, 3, 8], weights(576, 3, 0.2).into())
        .unwrap();
    let c2 = g
        .add_node("conv2", Op::Conv2d(conv(1)), vec![c1, w2], &["c2"])
        .unwrap()[0];
    let pool = Pool2d {
        kind: PoolKind::Average {
            count_include_pad: false,
        },
        kernel: [8, 8],
        strides: [1, 1],
        dilations: [1, 1],
        padding: Padding2d::ZERO,
        ceil_mode: false,
    };
    let p = g
        .add_node("pool", Op::Pool2d(pool), vec![c2], &["p"])
        .unwrap()[0];
    let r = g
        .add_node(
            "flat",
            Op::Reshape(Reshape { shape: vec![1, 8] }),
            vec![p],
            &["r"],
        )
        .unwrap()[0];
    let wf = g
        .add_const("wf", vec![4, 8], weights(32, 4, 1.0).into())
        .unwrap();
    let f = g
        .add_node(
            "fc",
            Op::FullyConnected(Default::default()),
            vec![r, wf],
            &["f"],
        )
        .unwrap()[0];
    let y = g
        .add_node(
            "softmax",
            Op::Softmax(Softmax { axis: 1 }),
            vec![f],
            &["prob"],
        )
        .unwrap()[0];
    g.outputs.push(y);
    let cfg = InputConfig::parse(INI, "input_config.ini", (1, 1)).unwrap();
    let mut meta = SimMetadata::new(Stage::Float, "test");
    meta.input_config = Some(cfg.to_json());
    let path = dir.join("tiny_float.sim");
    write_sim_file(&path, &g, &meta).unwrap();
    path
}

fn images(dir: &Path, n: usize) -> PathBuf {
    let d = dir.join("images");
    std::fs::create_dir_all(&d).unwrap();
    for i in 0..n {
        let img = image::RgbImage::from_fn(24, 20, |x, y| {
            let v = (x * 7 + y * 13 + i as u32 * 29) % 256;
            image::Rgb([v as u8, (255 - v) as u8, ((v * 3) % 256) as u8])
        });
        img.save(d.join(format!("img{i:02}.png"))).unwrap();
    }
    d
}

fn options(model: &Path, images: &Path, out: &Path) -> CalibrateOptions {
    CalibrateOptions {
        model: model.to_path_buf(),
        images: images.to_path_buf(),
        preprocess: PRE.into(),
        output: Some(out.to_path_buf()),
        ..CalibrateOptions::default()
    }
}

#[test]
fn deterministic_across_runs_and_threads() {
    let dir = tempfile::tempdir().unwrap();
    let model = float_model(dir.path());
    let imgs = images(dir.path(), 8);
    let (a, b) = (
        dir.path().join("a_fixed.sim"),
        dir.path().join("b_fixed.sim"),
    );
    let cal = calibrate(&options(&model, &imgs, &a), &|_| {}).unwrap();
    let mut two = options(&model, &imgs, &b);
    two.num_process = 2;
    calibrate(&two, &|_| {}).unwrap();
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert_eq!(cal.samples, 8);
    let (g, meta) = read_sim_file(&a).unwrap();
    assert_eq!(meta.stage, Stage::Fixed);
    assert_eq!(g.tensor(g.inputs[0]).dtype, DType::U8);
    let check = cal.agreement.unwrap();
    assert!(check.min_cosine >= 0.999, "{check:?}");
    assert!(cal.summary().contains("conv1"));
}

#[test]
fn l5_check_bounds_the_probability_error_as_well_as_the_cosine() {
    let dir = tempfile::tempdir().unwrap();
    let model = float_model(dir.path());
    let imgs = images(dir.path(), 8);
    let out = dir.path().join("m_fixed.sim");
    // Any cosine passes; only the probability bound can ask for more 16-bit layers.
    let mut lax = options(&model, &imgs, &out);
    lax.target_cosine = -1.0;
    lax.target_max_error = f64::INFINITY;
    let base = calibrate(&lax, &|_| {}).unwrap();
    assert_eq!(base.rounds.len(), 1, "{:?}", base.rounds);
    // An unreachable bound: the check promotes round after round until every layer is 16-bit.
    let mut strict = lax.clone();
    strict.target_max_error = 0.0;
    let cal = calibrate(&strict, &|_| {}).unwrap();
    assert!(cal.rounds.len() > 1, "{:?}", cal.rounds);
    assert_eq!(cal.plan.int16_count(), cal.plan.layers.len());
    assert!(cal.agreement.unwrap().max_error > 0.0);
    // The default bound holds on the calibration inputs.
    let def = calibrate(&options(&model, &imgs, &out), &|_| {}).unwrap();
    let a = def.agreement.unwrap();
    assert!(
        a.max_error <= ipukit_calibrator::L5_MAX_ERROR
            || def.plan.int16_count() == def.plan.layers.len(),
        "{a:?}"
    );
}

#[test]
fn every_level_and_conv_config_override() {
    let dir = tempfile::tempdir().unwrap();
    let model = float_model(dir.path());
    let imgs = images(dir.path(), 6);
    for level in [
        QuantLevel::L1,
        QuantLevel::L2,
        QuantLevel::L3,
        QuantLevel::L4,
        QuantLevel::L5,
    ] {
        let mut o = options(&model, &imgs, &dir.path().join("l_fixed.sim"));
        o.level = level;
        let cal = calibrate(&o, &|_| {}).unwrap();
        if level < QuantLevel::L4 {
            assert_eq!(cal.plan.int16_count(), 0, "{level:?}");
        } else {
            assert!(
                cal.plan.layers.iter().all(|l| l.noise.is_some()),
                "{level:?}"
            );
        }
    }
    let ini = dir.path().join("all16.ini");
    std::fs::write(
        &ini,
        format!("{INI}[CONV_CONFIG]\ninput_format=ALL_INT16;\n"),
    )
    .unwrap();
    let mut o = options(&model, &imgs, &dir.path().join("all16_fixed.sim"));
    o.input_config = Some(ini);
    let cal = calibrate(&o, &|_| {}).unwrap();
    assert_eq!(cal.plan.int16_count(), cal.plan.layers.len());
    assert!(cal
        .plan
        .layers
        .iter()
        .all(|l| l.reason == "[CONV_CONFIG] ALL_INT16"));
}

#[test]
fn quant_param_round_trip_and_rejections() {
    let dir = tempfile::tempdir().unwrap();
    let model = float_model(dir.path());
    let imgs = images(dir.path(), 4);
    let fixed = dir.path().join("t_fixed.sim");
    calibrate(&options(&model, &imgs, &fixed), &|_| {}).unwrap();
    let json = dir.path().join("q.json");
    let n = save_quant_param(&fixed, &json, ExportOptions::default()).unwrap();
    assert!(n > 0);
    // Re-import what was exported, plus an unknown name and a wrong channel count.
    let text = std::fs::read_to_string(&json).unwrap();
    let extra = r#"{"name": "no_such_tensor", "min": [0.0], "max": [1.0], "bit": 16}, {"name": "w1", "min": [-1.0, -1.0], "max": [1.0, 1.0], "bit": 8}, "#;
    let text = text.replacen('[', &format!("[{extra}"), 1);
    std::fs::write(&json, text).unwrap();
    let mut o = options(&model, &imgs, &dir.path().join("t2_fixed.sim"));
    o.quant_param = Some(json);
    let cal = calibrate(&o, &|_| {}).unwrap();
    let rep = cal.imported.clone().unwrap();
    let why: Vec<String> = rep.rejected.iter().map(|r| r.to_string()).collect();
    assert!(why.iter().any(|r| r.contains("no_such_tensor")), "{why:?}");
    assert!(why.iter().any(|r| r.contains("w1")), "{why:?}");
    assert!(cal.summary().contains("rejected: no_such_tensor"));
    // Exporting from a float model is refused.
    let e =
        save_quant_param(&model, &dir.path().join("x.json"), ExportOptions::default()).unwrap_err();
    assert!(e.to_string().contains("is a float model"), "{e}");
}

#[test]
fn bad_calibration_sets_give_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let model = float_model(dir.path());
    let out = dir.path().join("e_fixed.sim");
    let err = |images: &Path| -> String {
        let e: CalibratorError = calibrate(&options(&model, images, &out), &|_| {}).unwrap_err();
        e.to_string()
    };
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    assert!(
        err(&empty).starts_with("No images found in"),
        "{}",
        err(&empty)
    );
    let missing = dir.path().join("missing.png");
    assert!(err(&missing).contains("missing.png"), "{}", err(&missing));
    let broken = dir.path().join("broken.png");
    std::fs::write(&broken, b"\x89PNG\r\n\x1a\nnot really").unwrap();
    assert!(err(&broken).contains("broken.png"), "{}", err(&broken));
    let imgs = images(dir.path(), 2);
    let list = dir.path().join("list.txt");
    let a = imgs.join("img00.png").display().to_string();
    std::fs::write(&list, format!("{a},{a}\n")).unwrap();
    let e = err(&list);
    assert!(e.contains("list.txt"), "{e}");
    // Nothing was written by the failed runs.
    assert!(!out.exists());
    // A fixed model is not calibrated again.
    calibrate(&options(&model, &imgs, &out), &|_| {}).unwrap();
    let e = calibrate(
        &options(&out, &imgs, &dir.path().join("again.sim")),
        &|_| {},
    )
    .unwrap_err();
    assert!(e.to_string().contains("takes a float model"), "{e}");
}
