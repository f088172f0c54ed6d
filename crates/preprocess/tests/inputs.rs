//! `-i` forms, `-n` splitting, raw inputs, and broken files (never a panic).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ipukit_config::{InputConfig, InputFormat, Layout};
use ipukit_ir::{DType, TensorData};
use ipukit_preprocess::{
    collect_inputs, split_methods, InputContext, PreprocessError, Preprocessor, Sample,
};
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn images() -> PathBuf {
    fixtures().join("preprocess/images")
}

#[test]
fn single_image() {
    let p = images().join("chelsea.png");
    assert_eq!(collect_inputs(&p, 1).unwrap(), vec![vec![p.clone()]]);
    let e = collect_inputs(&p, 2).unwrap_err().to_string();
    assert!(
        e.contains("a single file can only feed a single-input model, and this model has 2 inputs"),
        "{e}"
    );
}

#[test]
fn directory_sorted_images_only() {
    let rows = collect_inputs(&images(), 1).unwrap();
    let names: Vec<String> = rows
        .iter()
        .map(|r| r[0].file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "astronaut.png",
            "chelsea.png",
            "coffee.png",
            "colours.png",
            "rocket.jpg"
        ]
    );
    let e = collect_inputs(&images(), 2).unwrap_err().to_string();
    assert!(
        e.contains("a directory can only feed a single-input model"),
        "{e}"
    );
}

#[test]
fn empty_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
    std::fs::write(dir.path().join(".hidden.png"), "x").unwrap();
    let e = collect_inputs(dir.path(), 1).unwrap_err();
    assert!(matches!(e, PreprocessError::NoImages { .. }));
    assert!(
        e.to_string()
            .starts_with(&format!("No images found in {}", dir.path().display())),
        "{e}"
    );
}

#[test]
fn missing_path() {
    let e = collect_inputs(Path::new("/nonexistent/ipukit/images"), 1)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "-i /nonexistent/ipukit/images: no such file or directory"
    );
}

#[test]
fn list_files() {
    let dir = tempfile::tempdir().unwrap();
    let a = images().join("astronaut.png");
    let b = images().join("coffee.png");
    let list = dir.path().join("input_list.txt");
    std::fs::write(
        &list,
        format!(
            "\u{feff}{}, {}\r\n\n   \n{},{}\n",
            a.display(),
            b.display(),
            b.display(),
            a.display()
        ),
    )
    .unwrap();
    let rows = collect_inputs(&list, 2).unwrap();
    assert_eq!(
        rows,
        vec![vec![a.clone(), b.clone()], vec![b.clone(), a.clone()]]
    );

    // Wrong number of columns, naming the line.
    let e = collect_inputs(&list, 1).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{}:1: 2 path(s) but the model has 1 input(s); give 1 comma-separated path(s) per line, in the order of `inputs` in input_config.ini",
            list.display()
        )
    );

    // A missing file, named.
    std::fs::write(
        &list,
        format!("{}\n{}/nope.jpg\n", a.display(), dir.path().display()),
    )
    .unwrap();
    let e = collect_inputs(&list, 1).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{}:2: {}/nope.jpg: no such file",
            list.display(),
            dir.path().display()
        )
    );

    // Relative paths are relative to the current directory; the message says so when the file
    // exists beside the list.
    std::fs::copy(&a, dir.path().join("beside.png")).unwrap();
    std::fs::write(&list, "beside.png\n").unwrap();
    let e = collect_inputs(&list, 1).unwrap_err().to_string();
    assert!(
        e.contains("beside.png: no such file;")
            && e.contains("relative paths in a list are taken from the current directory"),
        "{e}"
    );

    // Empty list.
    std::fs::write(&list, "\n \n").unwrap();
    let e = collect_inputs(&list, 1).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("No images found in {}", list.display())),
        "{e}"
    );

    // Not UTF-8 (the seeds' UnicodeDecodeError case).
    std::fs::write(&list, b"\xff\xfe a.jpg\n").unwrap();
    let e = collect_inputs(&list, 1).unwrap_err().to_string();
    assert!(
        e.contains("not a UTF-8 text list (UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff in position 0)"),
        "{e}"
    );

    // Trailing comma.
    std::fs::write(&list, format!("{},\n", a.display())).unwrap();
    let e = collect_inputs(&list, 2).unwrap_err().to_string();
    assert!(
        e.ends_with("empty path (check for a doubled or trailing `,`)"),
        "{e}"
    );
}

#[test]
fn method_count() {
    let e = Preprocessor::from_args("a.py,b.py", 1)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("Got different num of preprocess_methods and images! -n gives 2 method(s) but the model has 1 input(s)"), "{e}");
    assert_eq!(
        split_methods("raw,letterbox=64x64,rgb", 2).unwrap(),
        ["raw", "letterbox=64x64,rgb"]
    );
}

#[test]
fn builtin_uses_the_ini() {
    let cfg = InputConfig::from_file(fixtures().join("ini/valid/resnet18.ini"), (1, 1)).unwrap();
    let path = images().join("chelsea.png");
    // NCHW from the context, mean/std from the ini, size from the model shape.
    let mut ctx = InputContext::from_spec(&cfg.inputs[0], Some(vec![1, 3, 20, 20]));
    ctx.layout = Layout::Nchw;
    let p = Preprocessor::from_arg("lib=pil,resize=24,crop").unwrap();
    let f = p.run(&path, true, &ctx).unwrap();
    assert_eq!(f.shape, vec![1, 3, 20, 20]);
    let u = p.run(&path, false, &ctx).unwrap();
    assert_eq!(u.dtype(), DType::U8);
    let (uf, ff) = (u.data.to_f32_vec(), f.data.as_f32().unwrap().to_vec());
    // Channel 1 (G) of the first pixel, NCHW.
    let i = 400;
    assert!((ff[i] - (uf[i] - 116.28) / 57.12).abs() < 1e-5);

    // BGR training format reverses channels and the mean/std.
    let mut bgr = ctx.clone();
    bgr.format = Some(InputFormat::Bgr);
    let b = p.run(&path, true, &bgr).unwrap();
    let bf = b.data.as_f32().unwrap();
    let bu = p.run(&path, false, &bgr).unwrap();
    assert_eq!(
        &bu.data.as_u8().unwrap()[..400],
        &u.data.as_u8().unwrap()[800..]
    );
    assert!((bf[0] - (f32::from(bu.data.as_u8().unwrap()[0]) - 103.53) / 57.375).abs() < 1e-5);

    // Shape mismatch is reported against the model input.
    let e = Preprocessor::from_arg("lib=pil,resize=24,crop=16")
        .unwrap()
        .run(&path, true, &ctx)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("produced shape [1, 3, 16, 16] but input \"input\" expects [1, 3, 20, 20]"),
        "{e}"
    );

    // RAWDATA inputs are not images.
    let mut raw = ctx.clone();
    raw.format = Some(InputFormat::RawdataF32Nhwc);
    let e = p.run(&path, true, &raw).unwrap_err().to_string();
    assert!(
        e.contains("is RAWDATA_F32_NHWC, not an image; use `-n raw`"),
        "{e}"
    );
}

#[test]
fn raw_npy_and_bin() {
    let dir = tempfile::tempdir().unwrap();
    let s = Sample::new(
        vec![1, 2, 3],
        TensorData::from(vec![1i16, -2, 3, -4, 5, -6]),
    )
    .unwrap();
    let npy = dir.path().join("x.npy");
    std::fs::write(&npy, s.to_npy()).unwrap();
    let raw = Preprocessor::from_arg("raw").unwrap();
    let ctx = InputContext {
        name: "tokens".into(),
        shape: Some(vec![1, 2, 3]),
        format: Some(InputFormat::RawdataS16Nhwc),
        ..InputContext::default()
    };
    assert_eq!(raw.run(&npy, false, &ctx).unwrap(), s);

    let bin = dir.path().join("x.bin");
    std::fs::write(&bin, s.data.to_le_bytes()).unwrap();
    assert_eq!(raw.run(&bin, false, &ctx).unwrap(), s);
    // The float model may take another type.
    let f = InputContext {
        raw_dtype: Some(DType::F32),
        ..ctx.clone()
    };
    std::fs::write(&bin, TensorData::from(vec![0.5f32; 6]).to_le_bytes()).unwrap();
    assert_eq!(
        raw.run(&bin, true, &f).unwrap().data.as_f32().unwrap(),
        &[0.5; 6]
    );

    std::fs::write(&bin, [0u8; 5]).unwrap();
    let e = raw.run(&bin, false, &ctx).unwrap_err().to_string();
    assert!(
        e.ends_with("5 bytes, but input \"tokens\" expects shape [1, 2, 3] of INT16 = 12 bytes"),
        "{e}"
    );
    let other = InputContext {
        shape: Some(vec![1, 4]),
        ..ctx.clone()
    };
    let e = raw.run(&npy, false, &other).unwrap_err().to_string();
    assert!(
        e.contains(
            "the array has shape [1, 2, 3] (6 elements) but input \"tokens\" expects [1, 4] (4)"
        ),
        "{e}"
    );
    let noshape = InputContext {
        shape: None,
        ..ctx.clone()
    };
    let e = raw.run(&bin, false, &noshape).unwrap_err().to_string();
    assert!(e.contains("a .bin file needs the input's shape"), "{e}");
}

/// Truncated and corrupted images and .npy files give errors, never panics.
#[test]
fn broken_files_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let p = Preprocessor::from_arg("letterbox=32x32,fill=114,rgb").unwrap();
    let g = Preprocessor::from_arg("lib=pil,resize=16,crop=8,gray").unwrap();
    let raw = Preprocessor::from_arg("raw").unwrap();
    let ctx = InputContext::default();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut npy = Sample::new(vec![2, 3], TensorData::from(vec![1f32; 6]))
        .unwrap()
        .to_npy();
    npy.truncate(npy.len());
    let mut sources: Vec<(String, Vec<u8>)> = ["chelsea.png", "rocket.jpg"]
        .iter()
        .map(|n| (n.to_string(), std::fs::read(images().join(n)).unwrap()))
        .collect();
    sources.push(("x.npy".into(), npy));
    // A tiny BMP.
    let mut bmp = b"BM".to_vec();
    bmp.extend_from_slice(&[0; 60]);
    sources.push(("x.bmp".into(), bmp));
    for (name, bytes) in &sources {
        let target = dir.path().join(name);
        let mut cases: Vec<Vec<u8>> = Vec::new();
        for cut in [
            0,
            1,
            8,
            16,
            33,
            64,
            100,
            200,
            bytes.len() / 2,
            bytes.len().saturating_sub(1),
        ] {
            cases.push(bytes[..cut.min(bytes.len())].to_vec());
        }
        for _ in 0..60 {
            let mut b = bytes.clone();
            for _ in 0..(rand() % 8 + 1) {
                let i = (rand() as usize) % b.len();
                b[i] = rand() as u8;
            }
            cases.push(b);
        }
        for case in cases {
            std::fs::write(&target, &case).unwrap();
            for pre in [&p, &g, &raw] {
                let _ = pre.run(&target, true, &ctx);
                let _ = pre.run(&target, false, &ctx);
            }
        }
    }
    // A text file named .jpg.
    let fake = dir.path().join("fake.jpg");
    std::fs::write(&fake, "hello").unwrap();
    let e = p.run(&fake, true, &ctx).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("{}: cannot decode image:", fake.display())),
        "{e}"
    );
}
