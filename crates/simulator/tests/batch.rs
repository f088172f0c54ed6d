//! Models that run batches (offline images compiled with `-b`): consecutive inputs run as one
//! batch, padded up to a `one_buf` size, and every input's files are those of a batch-1 run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ipukit_ir::{DType, TensorData};
use ipukit_preprocess::Preprocessor;
use ipukit_runtime::{TensorDetails, TensorInfo, Value};
use ipukit_simulator::{
    run_dataset, Backend, BatchSizes, Category, Result, RunOptions, SimModel, Stage,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Input `x` [b, 3] → output `y` [b, 2] = `[x0 + x1, x2]` per row; logs the batch sizes run.
struct Rows {
    sizes: BatchSizes,
    log: Arc<Mutex<Vec<usize>>>,
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

impl Backend for Rows {
    fn input_details(&self) -> Vec<TensorInfo> {
        vec![info("x", &[1, 3])]
    }
    fn output_details(&self) -> Vec<TensorInfo> {
        vec![info("y", &[1, 2])]
    }
    fn tensor_details(&self) -> Result<Vec<TensorDetails>> {
        Ok(Vec::new())
    }
    fn set_input(&mut self, _index: usize, value: Value) -> Result<()> {
        assert!(self.sizes.run_size(value.shape[0]) == Some(value.shape[0]));
        self.input = Some(value);
        Ok(())
    }
    fn invoke(&mut self) -> Result<()> {
        let x = self.input.as_ref().unwrap();
        let b = x.shape[0];
        self.log.lock().unwrap().push(b);
        let y: Vec<f32> = x
            .data
            .to_f32_vec()
            .chunks(3)
            .flat_map(|r| [r[0] + r[1], r[2]])
            .collect();
        self.output = Some(Value::new(vec![b, 2], y).unwrap());
        Ok(())
    }
    fn output(&self, _index: usize) -> Result<Value> {
        Ok(self.output.clone().unwrap())
    }
    fn fork(&self, _threads: usize) -> Result<Box<dyn Backend>> {
        Ok(Box::new(Rows {
            sizes: self.sizes.clone(),
            log: self.log.clone(),
            input: None,
            output: None,
        }))
    }
    fn batch_sizes(&self) -> BatchSizes {
        self.sizes.clone()
    }
}

/// Runs 5 raw inputs on a model of `sizes` with `workers`; returns the batch sizes run (sorted)
/// and the files written.
fn run(sizes: BatchSizes, workers: usize, root: &Path) -> (Vec<usize>, BTreeMap<PathBuf, Vec<u8>>) {
    let data = root.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let items: Vec<Vec<PathBuf>> = (0..5)
        .map(|i| {
            let p = data.join(format!("in{i}.bin"));
            let v = vec![i as f32, 10.0 * i as f32, -(i as f32)];
            std::fs::write(&p, TensorData::from(v).to_le_bytes()).unwrap();
            vec![p]
        })
        .collect();
    let log = Arc::new(Mutex::new(Vec::new()));
    let backend = Rows {
        sizes,
        log: log.clone(),
        input: None,
        output: None,
    };
    let mut model =
        SimModel::from_backend("rows.img".into(), Stage::Offline, None, Box::new(backend));
    let out = root.join("out");
    let opts = RunOptions {
        category: Category::Unknown,
        num_process: workers,
        output_npy: true,
        out_dir: out.clone(),
        dump_dir: root.to_path_buf(),
        ..RunOptions::default()
    };
    let methods = Preprocessor::from_args("raw", 1).unwrap();
    let summary = run_dataset(&mut model, &items, &methods, &opts, &|| {}).unwrap();
    assert_eq!(summary.items.len(), 5);
    let files = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let bytes = std::fs::read(&p).unwrap();
            (PathBuf::from(p.file_name().unwrap()), bytes)
        })
        .collect();
    let mut sizes = log.lock().unwrap().clone();
    sizes.sort_unstable();
    (sizes, files)
}

#[test]
fn batches_give_the_files_of_single_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let (single_sizes, single) = run(BatchSizes::UpTo(1), 1, &tmp.path().join("b1"));
    assert_eq!(single_sizes, vec![1; 5]);
    assert_eq!(single.len(), 10);
    let text = String::from_utf8(single[Path::new("unknown_in3.bin.txt")].clone()).unwrap();
    assert!(text.contains("\n33.0\n-3.0\n"), "{text}");
    for (sizes, workers, want) in [
        (BatchSizes::UpTo(3), 1, vec![2, 3]),
        (BatchSizes::UpTo(3), 2, vec![2, 3]),
        // one_buf: 4 items, then the fifth padded to a batch of 2.
        (BatchSizes::Exactly(vec![2, 4]), 1, vec![2, 4]),
        (BatchSizes::Exactly(vec![2, 4]), 2, vec![2, 4]),
    ] {
        let root = tmp
            .path()
            .join(format!("{sizes:?}-{workers}").replace(['(', ')', '[', ']', ' ', ','], "_"));
        let (ran, files) = run(sizes.clone(), workers, &root);
        assert_eq!(ran, want, "{sizes:?} with {workers} worker(s)");
        assert_eq!(files, single, "{sizes:?} with {workers} worker(s)");
    }
}
