//! Running a model over a set of inputs (`-i` image, folder or list), in parallel.

use crate::error::{Result, SimError};
use crate::model::SimModel;
use crate::results::{self, Category};
use ipukit_preprocess::{InputContext, Preprocessor};
use ipukit_runtime::{TensorInfo, Value};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// How to run a dataset.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Output interpretation (`-c`).
    pub category: Category,
    /// Parallel workers (`--num_process`); results do not depend on it.
    pub num_process: usize,
    /// Save each model input as `<image name>.bin` in `dump_dir` (`--dump_rawdata`).
    pub dump_rawdata: bool,
    /// Skip inputs whose result file exists (`--continue_run`).
    pub continue_run: bool,
    /// Also write each output as `<image stem>_<output index>.npy` (`--output_npy`).
    pub output_npy: bool,
    /// Where results go (`./log/output`).
    pub out_dir: PathBuf,
    /// Where `--dump_rawdata` files go (the current directory).
    pub dump_dir: PathBuf,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            category: Category::Unknown,
            num_process: 1,
            dump_rawdata: false,
            continue_run: false,
            output_npy: false,
            out_dir: PathBuf::from("log/output"),
            dump_dir: PathBuf::from("."),
        }
    }
}

/// What happened to one input item.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemResult {
    /// The item's input files.
    pub inputs: Vec<PathBuf>,
    /// Skipped by `--continue_run`.
    pub skipped: bool,
    /// Top-5 (index, score) for Classification.
    pub top5: Vec<(usize, f32)>,
    /// Detection lines for Detection.
    pub detections: String,
    /// Files written.
    pub files: Vec<PathBuf>,
}

/// Results of a dataset run, in input order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunSummary {
    /// One entry per input item.
    pub items: Vec<ItemResult>,
}

/// The preprocessing context of every model input.
pub fn input_contexts(model: &SimModel) -> Vec<InputContext> {
    model
        .input_details()
        .iter()
        .map(|d: &TensorInfo| {
            let mut ctx = match model.config.as_ref().and_then(|c| c.input(&d.name)) {
                Some(spec) => InputContext::from_spec(spec, Some(d.shape.clone())),
                None => InputContext {
                    name: d.name.clone(),
                    shape: Some(d.shape.clone()),
                    ..Default::default()
                },
            };
            ctx.raw_dtype = Some(d.dtype);
            ctx
        })
        .collect()
}

fn item_name(item: &[PathBuf]) -> String {
    item.first()
        .and_then(|p| p.file_name())
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| "input".into())
}

fn item_stem(item: &[PathBuf]) -> String {
    item.first()
        .and_then(|p| p.file_stem())
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| "input".into())
}

/// Runs one item on `model` and writes its results.
pub fn run_item(
    model: &mut SimModel,
    item: &[PathBuf],
    methods: &[Preprocessor],
    contexts: &[InputContext],
    opts: &RunOptions,
) -> Result<ItemResult> {
    let name = item_name(item);
    let result_file = results::result_path(&opts.out_dir, opts.category, &name);
    let mut res = ItemResult {
        inputs: item.to_vec(),
        skipped: false,
        top5: Vec::new(),
        detections: String::new(),
        files: Vec::new(),
    };
    if opts.continue_run && result_file.is_file() {
        res.skipped = true;
        return Ok(res);
    }
    let norm = model.stage.norm();
    for (i, path) in item.iter().enumerate() {
        let sample = methods[i].run(path, norm, &contexts[i])?;
        let (shape, data) = sample.into_parts();
        let value = Value::new(shape, data)?;
        if opts.dump_rawdata {
            let file = path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_else(|| format!("input{i}"));
            let out = opts.dump_dir.join(format!("{file}.bin"));
            results::write_atomic(&out, &results::raw_bytes(&value))?;
            res.files.push(out);
        }
        model.set_input(i, value)?;
    }
    model.invoke()?;
    let infos = model.output_details();
    let outputs: Vec<Value> = (0..infos.len())
        .map(|i| model.output(i))
        .collect::<Result<_>>()?;
    let text = match opts.category {
        Category::Classification => {
            res.top5 = results::top5(&outputs[0]);
            res.top5
                .iter()
                .map(|(i, s)| format!("{i} {s:?}\n"))
                .collect()
        }
        Category::Detection => {
            res.detections = results::detections_text(&outputs);
            res.detections.clone()
        }
        Category::Unknown => results::outputs_text(&infos, &outputs),
    };
    if opts.output_npy {
        let stem = item_stem(item);
        for (i, v) in outputs.iter().enumerate() {
            let out = opts.out_dir.join(format!("{stem}_{i}.npy"));
            results::write_atomic(&out, &results::npy_bytes(v)?)?;
            res.files.push(out);
        }
    }
    results::write_atomic(&result_file, text.as_bytes())?;
    res.files.push(result_file);
    Ok(res)
}

fn describe(item: &[PathBuf]) -> String {
    item.iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Runs every item, `opts.num_process` at a time, calling `progress` after each one. The first
/// error stops the run and is returned with the files of the item that failed.
pub fn run_dataset(
    model: &mut SimModel,
    items: &[Vec<PathBuf>],
    methods: &[Preprocessor],
    opts: &RunOptions,
    progress: &(dyn Fn() + Sync),
) -> Result<RunSummary> {
    let n_inputs = model.input_details().len();
    if methods.len() != n_inputs {
        return Err(SimError::Usage(format!(
            "Got different num of preprocess_methods and images! The model has {n_inputs} input(s) and -n gives {} method(s)",
            methods.len()
        )));
    }
    opts.category.check(&model.output_details())?;
    let contexts = input_contexts(model);
    let workers = opts.num_process.clamp(1, items.len().max(1));
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let per_worker = (cores / workers).max(1);
    let mut forks: Vec<SimModel> = (1..workers)
        .map(|_| model.fork(per_worker))
        .collect::<Result<_>>()?;

    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let slots: Mutex<Vec<Option<ItemResult>>> = Mutex::new(vec![None; items.len()]);
    let first_error: Mutex<Option<(usize, SimError)>> = Mutex::new(None);
    let work = |m: &mut SimModel| {
        while !stop.load(Ordering::Relaxed) {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(i) else { break };
            match run_item(m, item, methods, &contexts, opts) {
                Ok(r) => {
                    if let Ok(mut s) = slots.lock() {
                        s[i] = Some(r);
                    }
                    progress();
                }
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    if let Ok(mut f) = first_error.lock() {
                        // Keep the earliest item's error so the report does not depend on timing.
                        if f.as_ref().is_none_or(|(j, _)| i < *j) {
                            *f = Some((
                                i,
                                SimError::Item {
                                    input: describe(item),
                                    source: Box::new(e),
                                },
                            ));
                        }
                    }
                }
            }
        }
    };
    std::thread::scope(|s| {
        for f in forks.iter_mut() {
            s.spawn(|| work(f));
        }
        work(model);
    });
    if let Some((_, e)) = first_error.into_inner().ok().flatten() {
        return Err(e);
    }
    let items = slots
        .into_inner()
        .map_err(|_| SimError::Usage("a worker thread panicked".into()))?
        .into_iter()
        .flatten()
        .collect();
    Ok(RunSummary { items })
}
