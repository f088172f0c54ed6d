//! The built-in image operations against OpenCV and Pillow on real photos.
//!
//! `fixtures/preprocess/make_reference.py` cropped three real photos (and one re-encoded JPEG)
//! and saved what cv2 / PIL / the example scripts make of them; `reference/manifest.json`
//! lists each array with the operation, the library and, for scripts, the equivalent built-in
//! pipeline spec. Every reference must be matched within one grey level (float outputs: one grey
//! level after normalisation); JPEG decoding itself must be identical (see the "decode" case). The
//! per-mode maximum differences are printed
//! (`cargo test -p ipukit-preprocess --test reference -- --nocapture`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ipukit_preprocess::image::{self, Interp, Lib};
use ipukit_preprocess::{InputContext, Pipeline, Sample};
use std::collections::BTreeMap;
use std::path::PathBuf;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/preprocess")
}

fn lib_of(v: &serde_json::Value) -> Lib {
    match v["lib"].as_str() {
        Some("pil") => Lib::Pil,
        _ => Lib::OpenCv,
    }
}

fn image_sample(img: &image::Image) -> Sample {
    let shape = if img.channels == 1 {
        vec![img.height, img.width]
    } else {
        vec![img.height, img.width, img.channels]
    };
    Sample::new(shape, img.data.clone().into()).unwrap()
}

#[test]
fn matches_opencv_and_pil_within_one_grey_level() {
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir().join("reference/manifest.json")).unwrap())
            .unwrap();
    let mut worst: BTreeMap<String, (f64, usize, usize)> = BTreeMap::new();
    let mut failures = Vec::new();
    for entry in manifest["references"].as_array().unwrap() {
        let reference = Sample::from_npy(
            &std::fs::read(
                dir()
                    .join("reference")
                    .join(entry["reference"].as_str().unwrap()),
            )
            .unwrap(),
        )
        .unwrap();
        let path = dir().join("images").join(entry["image"].as_str().unwrap());
        let lib = lib_of(entry);
        let op = entry["op"].as_str().unwrap();
        let (mode, ours, tolerance) = match op {
            "resize" => {
                let interp = match entry["interp"].as_str().unwrap() {
                    "nearest" => Interp::Nearest,
                    _ => Interp::Linear,
                };
                let size = entry["size"].as_array().unwrap();
                let (w, h) = (
                    size[0].as_u64().unwrap() as usize,
                    size[1].as_u64().unwrap() as usize,
                );
                let src = image::decode(&path, lib).unwrap();
                let out = image::resize(&src, w, h, lib, interp);
                let mode = format!(
                    "{} {} {}",
                    entry["lib"].as_str().unwrap(),
                    entry["interp"].as_str().unwrap(),
                    if w * h > src.width * src.height {
                        "enlarge"
                    } else {
                        "shrink"
                    }
                );
                (mode, image_sample(&out), 1.0)
            }
            "gray" => {
                let src = image::decode(&path, lib).unwrap();
                (
                    format!("{} gray", entry["lib"].as_str().unwrap()),
                    image_sample(&image::to_gray(&src, lib)),
                    1.0,
                )
            }
            "decode" => {
                // JPEGs go through libjpeg-turbo's decoder (mozjpeg), as in OpenCV and Pillow:
                // the pixels must be identical.
                let src = image::decode(&path, lib).unwrap();
                (
                    format!("{} jpeg decode (decoder)", entry["lib"].as_str().unwrap()),
                    image_sample(&src),
                    0.0,
                )
            }
            "script" => {
                let spec = entry["spec"].as_str().unwrap();
                let norm = entry["norm"].as_bool().unwrap();
                let p = Pipeline::parse_inline(spec).unwrap();
                let out = p.run(&path, norm, &InputContext::default()).unwrap();
                // One grey level after normalisation is 1 / std.
                let min_std = p
                    .std
                    .as_ref()
                    .map_or(1.0, |s| s.iter().copied().fold(f32::MAX, f32::min));
                let tol = if norm {
                    f64::from(1.0 / min_std) * 1.0001 + 1e-4
                } else {
                    1.0
                };
                let name = entry["script"].as_str().unwrap();
                (format!("script {name} norm={norm}"), out, tol)
            }
            other => panic!("unknown op {other}"),
        };
        let Some(diff) = ours.max_abs_diff(&reference) else {
            failures.push(format!(
                "{}: shape {:?} vs reference {:?}",
                entry["reference"], ours.shape, reference.shape
            ));
            continue;
        };
        let a = ours.data.to_f32_vec();
        let b = reference.data.to_f32_vec();
        let exact = a
            .iter()
            .zip(&b)
            .filter(|(x, y)| (**x - **y).abs() < 1e-4)
            .count();
        let slot = worst.entry(mode.clone()).or_insert((0.0, 0, 0));
        slot.0 = slot.0.max(diff);
        slot.1 += exact;
        slot.2 += a.len();
        if diff > tolerance {
            failures.push(format!(
                "{}: {mode}: max difference {diff} > {tolerance}",
                entry["reference"]
            ));
        }
    }
    println!("{:<44} {:>9} {:>10}", "mode", "max diff", "exact");
    for (mode, (diff, exact, total)) in &worst {
        println!(
            "{mode:<44} {diff:>9.4} {:>9.3}%",
            100.0 * *exact as f64 / *total as f64
        );
    }
    assert!(!worst.is_empty());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
