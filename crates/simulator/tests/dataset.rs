//! `run_dataset` leaves the same files whatever `num_process` is, even when inputs share a
//! name or a worker is slow, and writes every result atomically.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ipukit_ir::{DType, TensorData};
use ipukit_preprocess::Preprocessor;
use ipukit_runtime::{TensorDetails, TensorInfo, Value};
use ipukit_simulator::{
    results, run_dataset, Backend, Category, Result, RunOptions, SimModel, Stage,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Who ran an inference: `None` for the model passed to `run_dataset`, `Some(threads)` for a
/// fork made with that many threads.
type Log = Arc<Mutex<Vec<Option<usize>>>>;

/// A model with input `x` [1, 4] and output `y` [1, 2]: sleeps `x[0]` milliseconds, then
/// outputs `[x[1], x[2]]`.
struct Sleepy {
    threads: Option<usize>,
    log: Log,
    input: Option<Value>,
    output: Option<Value>,
}

fn info(name: &str, shape: &[usize]) -> TensorInfo {
    TensorInfo {
        index: 0,
        name: name.into(),
        shape: shape.to_vec(),
        dtype: DType::F32,
        quantization: None,
    }
}

impl Backend for Sleepy {
    fn input_details(&self) -> Vec<TensorInfo> {
        vec![info("x", &[1, 4])]
    }
    fn output_details(&self) -> Vec<TensorInfo> {
        vec![info("y", &[1, 2])]
    }
    fn tensor_details(&self) -> Result<Vec<TensorDetails>> {
        Ok(Vec::new())
    }
    fn set_input(&mut self, _index: usize, value: Value) -> Result<()> {
        self.input = Some(value);
        Ok(())
    }
    fn invoke(&mut self) -> Result<()> {
        let x = self.input.as_ref().unwrap().data.to_f32_vec();
        std::thread::sleep(Duration::from_millis(x[0] as u64));
        self.log.lock().unwrap().push(self.threads);
        self.output = Some(Value::new(vec![1, 2], vec![x[1], x[2]]).unwrap());
        Ok(())
    }
    fn output(&self, _index: usize) -> Result<Value> {
        Ok(self.output.clone().unwrap())
    }
    fn fork(&self, threads: usize) -> Result<Box<dyn Backend>> {
        Ok(Box::new(Sleepy {
            threads: Some(threads),
            log: self.log.clone(),
            input: None,
            output: None,
        }))
    }
}

fn model(log: &Log) -> SimModel {
    let backend = Sleepy {
        threads: None,
        log: log.clone(),
        input: None,
        output: None,
    };
    SimModel::from_backend("sleepy.sim".into(), Stage::Float, None, Box::new(backend))
}

/// Writes `[delay_ms, a, b, 0]` as a raw float32 input file.
fn input(path: &Path, delay_ms: f32, a: f32, b: f32) -> PathBuf {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let bytes = TensorData::from(vec![delay_ms, a, b, 0.0]).to_le_bytes();
    std::fs::write(path, bytes).unwrap();
    path.to_path_buf()
}

/// Every file under `dir`, relative path → bytes.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_path_buf();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn options(root: &Path, num_process: usize) -> RunOptions {
    RunOptions {
        category: Category::Unknown,
        num_process,
        dump_rawdata: true,
        output_npy: true,
        out_dir: root.join("log/output"),
        dump_dir: root.join("dump"),
        ..RunOptions::default()
    }
}

/// Runs `items` with `num_process` workers into `root`; returns the files left there.
fn run(items: &[Vec<PathBuf>], root: &Path, num_process: usize) -> BTreeMap<PathBuf, Vec<u8>> {
    let log = Log::default();
    let methods = Preprocessor::from_args("raw", 1).unwrap();
    let summary = run_dataset(
        &mut model(&log),
        items,
        &methods,
        &options(root, num_process),
        &|| {},
    )
    .unwrap();
    assert_eq!(summary.items.len(), items.len());
    tree(root)
}

#[test]
fn inputs_sharing_a_name_leave_the_files_of_a_one_worker_run() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // a/x.bin and b/x.bin write the same result, raw dump and .npy files; c/y.bin and c/y.npy
    // the same .npy file. The first of each pair is slow, so with two workers the earlier
    // input finishes last.
    let npy = data.join("c/y.npy");
    let later = TensorData::from(vec![0.0f32, 7.0, 8.0, 0.0]);
    let sample = ipukit_preprocess::Sample::new(vec![1, 4], later).unwrap();
    let items: Vec<Vec<PathBuf>> = [
        input(&data.join("a/x.bin"), 300.0, 1.0, 2.0),
        input(&data.join("b/x.bin"), 0.0, 3.0, 4.0),
        input(&data.join("c/y.bin"), 300.0, 5.0, 6.0),
        npy.clone(),
    ]
    .into_iter()
    .map(|p| vec![p])
    .collect();
    std::fs::write(&npy, ipukit_preprocess::npy::write_npy(&sample)).unwrap();

    let one = run(&items, &tmp.path().join("np1"), 1);
    let two = run(&items, &tmp.path().join("np2"), 2);
    assert_eq!(
        one.keys().collect::<Vec<_>>(),
        two.keys().collect::<Vec<_>>()
    );
    for (k, v) in &one {
        assert_eq!(
            v,
            &two[k],
            "{} differs between 1 and 2 workers",
            k.display()
        );
    }
    // The later input's content, as in a sequential run.
    let text = String::from_utf8(one[Path::new("log/output/unknown_x.bin.txt")].clone()).unwrap();
    assert!(text.contains("\n3.0\n4.0\n"), "{text}");
    let dump = &one[Path::new("dump/x.bin.bin")];
    assert_eq!(
        dump,
        &TensorData::from(vec![0.0f32, 3.0, 4.0, 0.0]).to_le_bytes()
    );
    let y = &one[Path::new("log/output/y_0.npy")];
    assert!(y.ends_with(&TensorData::from(vec![7.0f32, 8.0]).to_le_bytes()));
}

#[test]
fn continue_run_skips_the_same_inputs_with_any_number_of_workers() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let items: Vec<Vec<PathBuf>> = [
        input(&data.join("a/x.bin"), 200.0, 1.0, 2.0),
        input(&data.join("b/x.bin"), 0.0, 3.0, 4.0),
        input(&data.join("b/z.bin"), 0.0, 5.0, 6.0),
    ]
    .into_iter()
    .map(|p| vec![p])
    .collect();
    let methods = Preprocessor::from_args("raw", 1).unwrap();
    let mut skipped = Vec::new();
    for np in [1, 2] {
        let root = tmp.path().join(format!("np{np}"));
        // z.bin's result is there from an earlier run.
        results::write_atomic(&root.join("log/output/unknown_z.bin.txt"), b"old").unwrap();
        let opts = RunOptions {
            continue_run: true,
            ..options(&root, np)
        };
        let log = Log::default();
        let s = run_dataset(&mut model(&log), &items, &methods, &opts, &|| {}).unwrap();
        skipped.push(s.items.iter().map(|r| r.skipped).collect::<Vec<_>>());
        assert_eq!(log.lock().unwrap().len(), 1, "{np} worker(s)");
    }
    // b/x.bin finds the result a/x.bin wrote, as it does when one worker runs them in order.
    assert_eq!(skipped[0], vec![false, true, true]);
    assert_eq!(skipped[1], skipped[0]);
    assert_eq!(tree(&tmp.path().join("np1")), tree(&tmp.path().join("np2")));
}

#[test]
fn with_several_workers_each_gets_its_share_of_the_cores() {
    let tmp = tempfile::tempdir().unwrap();
    let items: Vec<Vec<PathBuf>> = (0..6)
        .map(|i| {
            vec![input(
                &tmp.path().join(format!("in/{i}.bin")),
                20.0,
                0.0,
                0.0,
            )]
        })
        .collect();
    let methods = Preprocessor::from_args("raw", 1).unwrap();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());

    let log = Log::default();
    let opts = options(&tmp.path().join("np1"), 1);
    run_dataset(&mut model(&log), &items, &methods, &opts, &|| {}).unwrap();
    assert_eq!(*log.lock().unwrap(), vec![None; 6]);

    let log = Log::default();
    let opts = options(&tmp.path().join("np2"), 2);
    run_dataset(&mut model(&log), &items, &methods, &opts, &|| {}).unwrap();
    let ran = log.lock().unwrap().clone();
    assert_eq!(ran.len(), 6);
    // The caller's model (whose pool may have every core) runs nothing.
    assert!(
        ran.iter().all(|t| *t == Some((cores / 2).max(1))),
        "{ran:?}"
    );
}

#[test]
fn concurrent_writes_to_one_path_all_succeed() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("out/same.txt");
    let written: Vec<Vec<u8>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let path = &path;
                s.spawn(move || {
                    (0..200)
                        .map(|i| {
                            let bytes = format!("thread {t} write {i} ").repeat(50).into_bytes();
                            results::write_atomic(path, &bytes).unwrap();
                            bytes
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let last = std::fs::read(&path).unwrap();
    assert!(written.contains(&last));
    // No temporary file is left behind.
    assert_eq!(
        std::fs::read_dir(tmp.path().join("out")).unwrap().count(),
        1
    );
}

#[test]
fn an_input_error_names_the_file_once() {
    let tmp = tempfile::tempdir().unwrap();
    let good = input(&tmp.path().join("in/a.bin"), 0.0, 1.0, 2.0);
    let short = tmp.path().join("in/b.bin");
    std::fs::write(&short, [0u8; 5]).unwrap();
    let items = vec![vec![good], vec![short.clone()]];
    let methods = Preprocessor::from_args("raw", 1).unwrap();
    for np in [1, 2] {
        let log = Log::default();
        let opts = options(&tmp.path().join(format!("np{np}")), np);
        let e = run_dataset(&mut model(&log), &items, &methods, &opts, &|| {})
            .unwrap_err()
            .to_string();
        let shown = short.display().to_string();
        assert_eq!(e.matches(&shown).count(), 1, "{e}");
        assert!(
            e.starts_with(&format!("{shown}: 5 bytes, but input \"x\" expects")),
            "{e}"
        );
    }
}
