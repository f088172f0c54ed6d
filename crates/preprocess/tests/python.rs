//! The Python bridge: real `python3` workers running real scripts.
//!
//! These tests need a Python with numpy: `$IPUKIT_PYTHON`, else `python3`. Without numpy they
//! print a note and return; when `IPUKIT_PYTHON` is set, a Python without numpy is a failure
//! (CI sets it to its venv). The OpenCV/Pillow parts (seed scripts against the built-in
//! pipelines, throughput) also need cv2 and PIL and are skipped the same way without them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ipukit_config::InputConfig;
use ipukit_preprocess::python::{python_command, PYTHON_ENV};
use ipukit_preprocess::{InputContext, Preprocessor, PythonScript, Sample};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

fn has_modules(python: &str, modules: &str) -> bool {
    Command::new(python)
        .args(["-c", &format!("import {modules}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Prints a skip note straight to stderr (past the test harness's output capture).
fn note(why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "note: skipping a Python test: {why}");
}

/// The interpreter, or `None` (with a note) when it has no numpy.
fn python() -> Option<String> {
    let py = python_command();
    if has_modules(&py, "numpy") {
        return Some(py);
    }
    assert!(
        std::env::var(PYTHON_ENV).is_err(),
        "{PYTHON_ENV}={py} is set but has no numpy"
    );
    note(&format!(
        "`{py}` has no numpy (set {PYTHON_ENV} to a Python with numpy)"
    ));
    None
}

fn python_with_cv() -> Option<String> {
    let py = python()?;
    if has_modules(&py, "numpy, cv2, PIL") {
        Some(py)
    } else {
        note(&format!("`{py}` has no cv2/PIL"));
        None
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn script_error(py: &str, dir: &Path, name: &str, text: &str) -> String {
    let p = write(dir, name, text);
    PythonScript::with_python(&p, py).unwrap_err().to_string()
}

fn run_error(script: &PythonScript, path: &str) -> String {
    script.run(Path::new(path), true).unwrap_err().to_string()
}

#[test]
fn returns_arrays_and_passes_path_and_norm() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let script = write(
        dir.path(),
        "ok.py",
        "import numpy as np\nprint('scripts may print')\n\
         def image_preprocess(image_file, norm=True):\n\
         \x20   if norm:\n\
         \x20       return np.arange(6, dtype=np.float64).reshape(1, 2, 3) + len(image_file)\n\
         \x20   return np.full((1, 2, 2, 1), len(image_file), dtype=np.uint8)\n",
    );
    let s = PythonScript::with_python(&script, &py).unwrap();
    let a = s.run(Path::new("abc"), true).unwrap();
    assert_eq!(a.shape, vec![1, 2, 3]);
    // float64 arrives as float32.
    assert_eq!(a.data.as_f32().unwrap(), &[3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
    let b = s.run(Path::new("abcd"), false).unwrap();
    assert_eq!(b.shape, vec![1, 2, 2, 1]);
    assert_eq!(b.data.as_u8().unwrap(), &[4, 4, 4, 4]);
    assert_eq!(s.idle_workers(), 1, "one worker serves sequential calls");
}

#[test]
fn load_errors_name_the_problem() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    let missing = d.join("missing.py");
    let e = PythonScript::with_python(&missing, &py)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        format!("preprocess script {}: no such file", missing.display())
    );

    let e = script_error(
        &py,
        d,
        "syntax.py",
        "import numpy as np\n\ndef image_preprocess(image_file, norm=True)\n    return None\n",
    );
    assert!(
        e.contains("SyntaxError:")
            && e.contains("(at syntax.py line 3: def image_preprocess(image_file, norm=True)"),
        "{e}"
    );
    assert!(!e.contains('\n'), "{e}");

    let e = script_error(
        &py,
        d,
        "nofn.py",
        "import numpy as np\ndef preprocess(p, norm=True):\n    return np.zeros(1)\n",
    );
    assert!(
        e.ends_with("the script has no function image_preprocess(image_file, norm=True)"),
        "{e}"
    );

    let e = script_error(
        &py,
        d,
        "imports.py",
        "import numpy\nimport ipukit_no_such_module\n",
    );
    assert!(
        e.contains("importing the script failed: ModuleNotFoundError: No module named 'ipukit_no_such_module' (at imports.py line 2"),
        "{e}"
    );

    // A Python whose numpy cannot be imported.
    let shadow = d.join("shadow");
    std::fs::create_dir(&shadow).unwrap();
    write(
        &shadow,
        "numpy.py",
        "raise ImportError('No module named numpy (shadowed for the test)')\n",
    );
    let fake = write(
        d,
        "fakepython",
        &format!(
            "#!/bin/sh\nPYTHONPATH={} exec {py} \"$@\"\n",
            shadow.display()
        ),
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let ok = write(
            d,
            "fine.py",
            "def image_preprocess(p, norm=True):\n    return None\n",
        );
        let e = PythonScript::with_python(&ok, fake.to_str().unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("numpy is not available to") && e.contains("IPUKIT_PYTHON"),
            "{e}"
        );
    }

    let ok = write(
        d,
        "fine2.py",
        "def image_preprocess(p, norm=True):\n    return None\n",
    );
    let e = PythonScript::with_python(&ok, "/nonexistent/python3")
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot start `/nonexistent/python3`"), "{e}");
}

#[test]
fn call_errors_keep_the_worker() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let script = write(
        dir.path(),
        "calls.py",
        "import os, sys\nimport numpy as np\n\
         def image_preprocess(image_file, norm=True):\n\
         \x20   if image_file == 'raise':\n\
         \x20       raise FileNotFoundError('No such image: {}'.format(image_file))\n\
         \x20   if image_file == 'list':\n\
         \x20       return [1, 2, 3]\n\
         \x20   if image_file == 'complex':\n\
         \x20       return np.zeros(3, dtype=np.complex64)\n\
         \x20   if image_file == 'exit':\n\
         \x20       sys.exit(2)\n\
         \x20   if image_file == 'die':\n\
         \x20       sys.stderr.write('dying now\\n'); sys.stderr.flush()\n\
         \x20       os._exit(3)\n\
         \x20   return np.ones((1, 2), dtype=np.int16)\n",
    );
    let s = PythonScript::with_python(&script, &py).unwrap();
    let e = run_error(&s, "raise");
    assert!(
        e.contains("image_preprocess('raise', norm=True) raised FileNotFoundError: No such image: raise (at calls.py line 5"),
        "{e}"
    );
    let e = run_error(&s, "list");
    assert!(e.ends_with("returned list, not a numpy.ndarray"), "{e}");
    let e = run_error(&s, "complex");
    assert!(e.contains("dtype complex64"), "{e}");
    let e = run_error(&s, "exit");
    assert!(e.contains("raised SystemExit: 2"), "{e}");
    assert_eq!(
        s.run(Path::new("fine"), true)
            .unwrap()
            .data
            .as_i16()
            .unwrap(),
        &[1, 1]
    );
    assert_eq!(s.idle_workers(), 1);

    // A worker that dies is detected (no hang), reported with its last words, and replaced.
    let e = run_error(&s, "die");
    assert!(
        e.contains("exited unexpectedly")
            && e.contains("exit status: 3")
            && e.contains("dying now"),
        "{e}"
    );
    assert_eq!(s.idle_workers(), 0);
    assert_eq!(s.run(Path::new("fine"), true).unwrap().shape, vec![1, 2]);
}

#[test]
fn parallel_calls_use_one_worker_per_thread() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let script = write(
        dir.path(),
        "par.py",
        "import numpy as np\ndef image_preprocess(image_file, norm=True):\n    return np.array([int(image_file)], dtype=np.int32)\n",
    );
    let s = PythonScript::with_python(&script, &py).unwrap();
    std::thread::scope(|scope| {
        for t in 0..3 {
            let s = &s;
            scope.spawn(move || {
                for i in 0..20 {
                    let v = t * 100 + i;
                    let out = s.run(Path::new(&v.to_string()), true).unwrap();
                    assert_eq!(out.data.as_i32().unwrap(), &[v]);
                }
            });
        }
    });
    let n = s.idle_workers();
    assert!((1..=3).contains(&n), "{n} workers");
}

/// The seeds' scripts (fixtures/preprocess/*.py) through the bridge against their built-in
/// equivalents (the .toml files beside them), at the scripts' own sizes, on the fixture photos.
#[test]
fn seed_scripts_match_builtin_pipelines() {
    let Some(_py) = python_with_cv() else { return };
    let pre = fixtures().join("preprocess");
    let cases = [
        (
            "onnx_yolov8s",
            "valid/onnx_yolov8s.ini",
            vec![1, 640, 640, 3],
        ),
        ("resnet18", "valid/resnet18.ini", vec![1, 224, 224, 3]),
        ("caffe_lenet", "valid/gray.ini", vec![1, 28, 28, 1]),
    ];
    for (name, ini, shape) in cases {
        let cfg = InputConfig::from_file(fixtures().join("ini").join(ini), (1, 1)).unwrap();
        let ctx = InputContext::from_spec(&cfg.inputs[0], Some(shape));
        let script =
            Preprocessor::from_arg(pre.join(format!("{name}.py")).to_str().unwrap()).unwrap();
        let builtin =
            Preprocessor::from_arg(pre.join(format!("{name}.toml")).to_str().unwrap()).unwrap();
        // IPUKIT_PHOTOS_DIR adds every image of a directory (e.g. full-size photos).
        let mut paths: Vec<PathBuf> = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg"]
            .iter()
            .map(|i| pre.join("images").join(i))
            .collect();
        if let Some(dir) = std::env::var_os("IPUKIT_PHOTOS_DIR") {
            paths.extend(
                ipukit_preprocess::collect_inputs(Path::new(&dir), 1)
                    .unwrap()
                    .into_iter()
                    .flatten(),
            );
        }
        for path in &paths {
            let path = path.as_path();
            let image = path.display().to_string();
            for norm in [false, true] {
                let a: Sample = script.run(path, norm, &ctx).unwrap();
                let b = builtin.run(path, norm, &ctx).unwrap();
                assert_eq!(a.dtype(), b.dtype(), "{name} {image} norm={norm}");
                let diff = a.max_abs_diff(&b).unwrap_or_else(|| {
                    panic!("{name} {image}: shapes {:?} {:?}", a.shape, b.shape)
                });
                // One grey level (after normalisation: 1 / std), JPEGs included: they are
                // decoded by libjpeg-turbo as in the scripts.
                let min_std = ctx.std.iter().copied().fold(f32::MAX, f32::min);
                let levels = 1.0;
                let tol = if norm {
                    levels / f64::from(min_std) + 1e-4
                } else {
                    levels
                };
                println!("{name} {image} norm={norm}: max difference {diff:.6}");
                assert!(
                    diff <= tol,
                    "{name} {image} norm={norm}: max difference {diff} > {tol}"
                );
            }
        }
    }
}

/// Images per second through one worker running a simple cv2 script (printed, not asserted).
#[test]
fn worker_throughput() {
    let Some(py) = python_with_cv() else { return };
    let dir = tempfile::tempdir().unwrap();
    let script = write(
        dir.path(),
        "simple_cv2.py",
        "import cv2\nimport numpy as np\n\
         def image_preprocess(image_file, norm=True):\n\
         \x20   im = cv2.imread(image_file)\n\
         \x20   im = cv2.resize(im, (224, 224), interpolation=cv2.INTER_LINEAR)[:, :, ::-1]\n\
         \x20   im = np.expand_dims(im, 0)\n\
         \x20   return im.astype(np.float32) / 255 if norm else np.ascontiguousarray(im)\n",
    );
    // IPUKIT_BENCH_IMAGE measures on another image (e.g. a full-size photo).
    let image = std::env::var_os("IPUKIT_BENCH_IMAGE")
        .map(PathBuf::from)
        .unwrap_or_else(|| fixtures().join("preprocess/images/astronaut.png"));
    let start = Instant::now();
    let s = PythonScript::with_python(&script, &py).unwrap();
    let startup = start.elapsed();
    let n = 200;
    let start = Instant::now();
    for _ in 0..n {
        let out = s.run(&image, true).unwrap();
        assert_eq!(out.shape, vec![1, 224, 224, 3]);
    }
    let per_image = start.elapsed() / n;
    println!(
        "python worker: start-up {:.0} ms, {:.2} ms per image, {:.0} images/s (1 worker, 224x224x3 float32)",
        startup.as_secs_f64() * 1e3,
        per_image.as_secs_f64() * 1e3,
        1.0 / per_image.as_secs_f64()
    );
}
