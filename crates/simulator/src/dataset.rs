//! Running a model over a set of inputs (`-i` image, folder or list), in parallel.

use crate::error::{Result, SimError};
use crate::model::SimModel;
use crate::results::{self, Category};
use ipukit_preprocess::{InputContext, Preprocessor};
use ipukit_runtime::{TensorInfo, Value};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
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

/// The file `--dump_rawdata` writes for input `index` of an item.
fn dump_path(opts: &RunOptions, path: &Path, index: usize) -> PathBuf {
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| format!("input{index}"));
    opts.dump_dir.join(format!("{file}.bin"))
}

/// The `.npy` file `--output_npy` writes for output `index` of an item.
fn npy_path(opts: &RunOptions, item: &[PathBuf], index: usize) -> PathBuf {
    opts.out_dir
        .join(format!("{}_{index}.npy", item_stem(item)))
}

/// Every file an item writes when it runs: raw dumps, `.npy` files, then the result file.
fn planned_files(item: &[PathBuf], n_outputs: usize, opts: &RunOptions) -> Vec<PathBuf> {
    let mut files = Vec::new();
    if opts.dump_rawdata {
        files.extend(item.iter().enumerate().map(|(i, p)| dump_path(opts, p, i)));
    }
    if opts.output_npy {
        files.extend((0..n_outputs).map(|i| npy_path(opts, item, i)));
    }
    files.push(results::result_path(
        &opts.out_dir,
        opts.category,
        &item_name(item),
    ));
    files
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
    let skip =
        opts.continue_run && results::result_path(&opts.out_dir, opts.category, &name).is_file();
    run_planned(model, item, methods, contexts, opts, skip, &|_| true)
}

/// Runs one item, or only reports it if `skip`; writes the files for which `write` is true.
fn run_planned(
    model: &mut SimModel,
    item: &[PathBuf],
    methods: &[Preprocessor],
    contexts: &[InputContext],
    opts: &RunOptions,
    skip: bool,
    write: &dyn Fn(&Path) -> bool,
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
    if skip {
        res.skipped = true;
        return Ok(res);
    }
    let mut put = |path: PathBuf, bytes: &[u8]| -> Result<()> {
        if write(&path) {
            results::write_atomic(&path, bytes)?;
            res.files.push(path);
        }
        Ok(())
    };
    let norm = model.stage.norm();
    for (i, path) in item.iter().enumerate() {
        let sample = methods[i].run(path, norm, &contexts[i])?;
        let (shape, data) = sample.into_parts();
        let value = Value::new(shape, data)?;
        if opts.dump_rawdata {
            put(dump_path(opts, path, i), &results::raw_bytes(&value))?;
        }
        model.set_input(i, value)?;
    }
    model.invoke()?;
    let infos = model.output_details();
    let outputs: Vec<Value> = (0..infos.len())
        .map(|i| model.output(i))
        .collect::<Result<_>>()?;
    let (text, top5, detections) = match opts.category {
        Category::Classification => {
            let top5 = results::top5(&outputs[0]);
            let text = top5.iter().map(|(i, s)| format!("{i} {s:?}\n")).collect();
            (text, top5, String::new())
        }
        Category::Detection => {
            let d = results::detections_text(&outputs);
            (d.clone(), Vec::new(), d)
        }
        Category::Unknown => (
            results::outputs_text(&infos, &outputs),
            Vec::new(),
            String::new(),
        ),
    };
    if opts.output_npy {
        for (i, v) in outputs.iter().enumerate() {
            put(npy_path(opts, item, i), &results::npy_bytes(v)?)?;
        }
    }
    put(result_file, text.as_bytes())?;
    res.top5 = top5;
    res.detections = detections;
    Ok(res)
}

/// Which items run and which files each of them writes, decided before any worker starts so
/// that the files left behind do not depend on the number of workers or on timing: the items
/// are walked in input order as one worker would run them (`--continue_run` skips an item whose
/// result file exists on disk or was written by an earlier item), and a file that several items
/// write (inputs sharing a name, such as `a.jpg` and `a.png` for `a_0.npy`, or `x/1.jpg` and
/// `y/1.jpg` in a list) is written only by the last of them, the one whose content a single
/// worker would leave.
struct Plan {
    skip: Vec<bool>,
    owner: HashMap<PathBuf, usize>,
}

impl Plan {
    fn new(items: &[Vec<PathBuf>], n_outputs: usize, opts: &RunOptions) -> Plan {
        let mut skip = vec![false; items.len()];
        let mut owner = HashMap::new();
        let mut written: HashSet<PathBuf> = HashSet::new();
        for (i, item) in items.iter().enumerate() {
            let files = planned_files(item, n_outputs, opts);
            if opts.continue_run {
                // The result file is the last planned file.
                let result = files.last().cloned().unwrap_or_default();
                if written.contains(&result) || result.is_file() {
                    skip[i] = true;
                    continue;
                }
            }
            for f in files {
                written.insert(f.clone());
                owner.insert(f, i);
            }
        }
        Plan { skip, owner }
    }

    fn writes(&self, item: usize, path: &Path) -> bool {
        self.owner.get(path) == Some(&item)
    }
}

fn describe(item: &[PathBuf]) -> String {
    item.iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Runs every item, `opts.num_process` at a time, calling `progress` after each one. The first
/// error stops the run and is returned with the files of the item that failed.
///
/// The files written are the same for any `num_process`: which items `continue_run` skips, and
/// which item writes a file that several items name alike (the last one in input order), are
/// decided before the workers start.
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
    let plan = Plan::new(items, model.output_details().len(), opts);
    let workers = opts.num_process.clamp(1, items.len().max(1));
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    // With several workers each one runs on its own executor with its share of the cores;
    // `model` (which may have a thread pool of all the cores) then runs nothing.
    let per_worker = (cores / workers).max(1);
    let mut forks: Vec<SimModel> = if workers > 1 {
        (0..workers)
            .map(|_| model.fork(per_worker))
            .collect::<Result<_>>()?
    } else {
        Vec::new()
    };

    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let slots: Mutex<Vec<Option<ItemResult>>> = Mutex::new(vec![None; items.len()]);
    let first_error: Mutex<Option<(usize, SimError)>> = Mutex::new(None);
    let work = |m: &mut SimModel| {
        while !stop.load(Ordering::Relaxed) {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(i) else { break };
            let write = |p: &Path| plan.writes(i, p);
            match run_planned(m, item, methods, &contexts, opts, plan.skip[i], &write) {
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
    match forks.split_first_mut() {
        None => work(model),
        Some((first, rest)) => std::thread::scope(|s| {
            for f in rest {
                s.spawn(|| work(f));
            }
            work(first);
        }),
    }
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
