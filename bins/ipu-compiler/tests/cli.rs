//! `ipu-compiler` as a user runs it: output naming and one-line errors with a non-zero exit.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;
use std::process::{Command, Output};

fn compiler(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ipu-compiler"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn fails_with(o: &Output, text: &str) {
    assert!(!o.status.success(), "should fail");
    let e = stderr(o);
    let last = e.lines().last().unwrap_or("");
    assert!(last.starts_with("error: ") && last.contains(text), "{e}");
}

#[test]
fn errors_are_one_line_with_the_seeds_wording() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fails_with(
        &compiler(&["-m", "missing_fixed.sim"], d),
        "No such model: missing_fixed.sim",
    );
    std::fs::write(d.join("junk_fixed.sim"), b"not a model at all").unwrap();
    fails_with(
        &compiler(&["-m", "junk_fixed.sim"], d),
        "Not recognized model",
    );
    fails_with(
        &compiler(&["-m", "junk_fixed.sim", "--soc_version", "xyz"], d),
        "Not support soc_version: xyz",
    );
    fails_with(
        &compiler(&["-m", "junk_fixed.sim", "-b", "1,2"], d),
        "--batch_mode one_buf",
    );
    fails_with(
        &compiler(&["-m", "junk_fixed.sim", "--batch_mode", "two_buf"], d),
        "n_buf or one_buf",
    );
    fails_with(
        &compiler(&["-m", "junk_fixed.sim", "-b", "x"], d),
        "not a batch size",
    );
    fails_with(
        &compiler(&["-m", "junk_fixed.sim", "-c", "Segmentation"], d),
        "Classification, Detection or Unknown",
    );
    let eleven = "1,2,3,4,5,6,7,8,9,10,11";
    fails_with(
        &compiler(
            &[
                "-m",
                "junk_fixed.sim",
                "-b",
                eleven,
                "--batch_mode",
                "one_buf",
            ],
            d,
        ),
        "at most 10",
    );
    // Nothing was written.
    let imgs = std::fs::read_dir(d)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "img")
        })
        .count();
    assert_eq!(imgs, 0);
}

fn tiny_fixed(path: &Path) {
    use ipukit_ir::ops::fixed::{OutRange, QRescale, Requant};
    use ipukit_ir::{DType, Graph, Op};
    let mut g = Graph::new();
    let x = g.add_input("x", DType::I16, vec![1, 8]);
    let op = Op::QRescale(QRescale {
        input_zero_point: 0,
        positive: vec![Requant::from_ratio(0.25).unwrap()],
        negative: vec![Requant::from_ratio(0.25).unwrap()],
        out_dtype: DType::U8,
        out: OutRange::full(DType::U8, 128),
    });
    let y = g.add_node("r", op, vec![x], &["y"]).unwrap()[0];
    g.outputs.push(y);
    let meta = ipukit_simfmt::SimMetadata::new(ipukit_simfmt::Stage::Fixed, "test");
    ipukit_simfmt::write_sim_file(path, &g, &meta).unwrap();
}

#[test]
fn output_naming_follows_the_seeds() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tiny_fixed(&d.join("tiny_fixed.sim"));
    // Default: next to the model, <model file name>_sgsimg.img.
    let o = compiler(&["-m", "tiny_fixed.sim", "--report"], d);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("total:"));
    let first = std::fs::read(d.join("tiny_fixed.sim_sgsimg.img")).unwrap();
    // A folder: the same name inside it; the same bytes (deterministic).
    std::fs::create_dir(d.join("out")).unwrap();
    let o = compiler(&["-m", "tiny_fixed.sim", "-o", "out"], d);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(d.join("out/tiny_fixed.sim_sgsimg.img")).unwrap(),
        first
    );
    // A file name: used as given.
    let o = compiler(
        &[
            "-m",
            "tiny_fixed.sim",
            "-o",
            "my.img",
            "-b",
            "4,2",
            "--batch_mode",
            "one_buf",
        ],
        d,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(d.join("my.img").is_file());
    // No temporary files are left behind.
    let leftovers = std::fs::read_dir(d)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".tmp")
        })
        .count();
    assert_eq!(leftovers, 0);
}
