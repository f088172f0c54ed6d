//! Running a model over a set of inputs (`-i` image, folder or list), in parallel.

use crate::batch;
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
    let member = Member {
        index: 0,
        item,
        skip,
    };
    let ctx = GroupContext {
        methods,
        contexts,
        opts,
        write: &|_, _| true,
    };
    run_group(model, &[member], &ctx)
        .map_err(|(_, e)| e)?
        .pop()
        .ok_or_else(|| SimError::Usage("no result".into()))
}

/// One item of a run: its position in the input order, its files, and whether it is skipped.
struct Member<'a> {
    index: usize,
    item: &'a [PathBuf],
    skip: bool,
}

/// What every group of a run shares.
struct GroupContext<'a> {
    methods: &'a [Preprocessor],
    contexts: &'a [InputContext],
    opts: &'a RunOptions,
    /// Whether item `index` writes `path`.
    write: &'a (dyn Fn(usize, &Path) -> bool + Sync),
}

impl GroupContext<'_> {
    /// Writes `bytes` to `path` if item `index` owns the file, recording it in `res`.
    fn put(&self, res: &mut ItemResult, index: usize, path: PathBuf, bytes: &[u8]) -> Result<()> {
        if (self.write)(index, &path) {
            results::write_atomic(&path, bytes)?;
            res.files.push(path);
        }
        Ok(())
    }
}

/// Runs consecutive items as one batch (one item for `.sim` models) and writes their results;
/// an error comes with the index of the item it concerns (the first one for the run itself).
fn run_group(
    model: &mut SimModel,
    members: &[Member<'_>],
    ctx: &GroupContext<'_>,
) -> std::result::Result<Vec<ItemResult>, (usize, SimError)> {
    let mut res: Vec<ItemResult> = members
        .iter()
        .map(|m| ItemResult {
            inputs: m.item.to_vec(),
            skipped: m.skip,
            top5: Vec::new(),
            detections: String::new(),
            files: Vec::new(),
        })
        .collect();
    let running: Vec<usize> = (0..members.len()).filter(|&k| !members[k].skip).collect();
    let Some(&first) = running.first() else {
        return Ok(res);
    };
    let norm = model.stage.norm();
    let mut inputs: Vec<Vec<Value>> = Vec::with_capacity(running.len());
    for &k in &running {
        let m = &members[k];
        let prepared = (|| -> Result<Vec<Value>> {
            let mut values = Vec::with_capacity(m.item.len());
            for (i, path) in m.item.iter().enumerate() {
                let sample = ctx.methods[i].run(path, norm, &ctx.contexts[i])?;
                let (shape, data) = sample.into_parts();
                let value = Value::new(shape, data)?;
                if ctx.opts.dump_rawdata {
                    let file = dump_path(ctx.opts, path, i);
                    ctx.put(&mut res[k], m.index, file, &results::raw_bytes(&value))?;
                }
                values.push(value);
            }
            Ok(values)
        })();
        inputs.push(prepared.map_err(|e| (m.index, e))?);
    }
    let outputs = run_batch(model, &inputs).map_err(|e| (members[first].index, e))?;
    let infos = model.output_details();
    for (&k, item_outputs) in running.iter().zip(outputs) {
        let m = &members[k];
        finish(&mut res[k], m, &infos, &item_outputs, ctx).map_err(|e| (m.index, e))?;
    }
    Ok(res)
}

/// Runs the items' inputs (`inputs[item][input]`) and returns their outputs
/// (`[item][output]`): one run per item for a batch of 1, else one stacked batch.
fn run_batch(model: &mut SimModel, inputs: &[Vec<Value>]) -> Result<Vec<Vec<Value>>> {
    let n_outputs = model.output_details().len();
    let sizes = model.batch_sizes();
    let size = sizes.run_size(inputs.len()).ok_or_else(|| {
        SimError::Usage(format!(
            "the model cannot run a batch of {} ({sizes:?})",
            inputs.len()
        ))
    })?;
    if size == 1 {
        let mut all = Vec::with_capacity(inputs.len());
        for values in inputs {
            for (i, v) in values.iter().enumerate() {
                model.set_input(i, v.clone())?;
            }
            model.invoke()?;
            all.push(
                (0..n_outputs)
                    .map(|i| model.output(i))
                    .collect::<Result<_>>()?,
            );
        }
        return Ok(all);
    }
    let n_inputs = inputs.first().map_or(0, Vec::len);
    for i in 0..n_inputs {
        let column: Vec<&Value> = inputs.iter().filter_map(|v| v.get(i)).collect();
        model.set_input(i, batch::stack(&column, size)?)?;
    }
    model.invoke()?;
    let mut per_item: Vec<Vec<Value>> = vec![Vec::with_capacity(n_outputs); inputs.len()];
    for o in 0..n_outputs {
        for (item, v) in per_item
            .iter_mut()
            .zip(batch::split(&model.output(o)?, inputs.len())?)
        {
            item.push(v);
        }
    }
    Ok(per_item)
}

/// Interprets one item's outputs and writes its result files.
fn finish(
    res: &mut ItemResult,
    m: &Member<'_>,
    infos: &[TensorInfo],
    outputs: &[Value],
    ctx: &GroupContext<'_>,
) -> Result<()> {
    let opts = ctx.opts;
    let (text, top5, detections) = match opts.category {
        Category::Classification => {
            let top5 = outputs.first().map(results::top5).unwrap_or_default();
            let text = top5.iter().map(|(i, s)| format!("{i} {s:?}\n")).collect();
            (text, top5, String::new())
        }
        Category::Detection => {
            let d = results::detections_text(outputs);
            (d.clone(), Vec::new(), d)
        }
        Category::Unknown => (
            results::outputs_text(infos, outputs),
            Vec::new(),
            String::new(),
        ),
    };
    if opts.output_npy {
        for (i, v) in outputs.iter().enumerate() {
            ctx.put(
                res,
                m.index,
                npy_path(opts, m.item, i),
                &results::npy_bytes(v)?,
            )?;
        }
    }
    let result_file = results::result_path(&opts.out_dir, opts.category, &item_name(m.item));
    ctx.put(res, m.index, result_file, text.as_bytes())?;
    res.top5 = top5;
    res.detections = detections;
    Ok(())
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
    // Consecutive items form the batches the model runs (single items for `.sim` models); the
    // grouping depends only on the model, so results do not depend on the workers either.
    let group = model.batch_sizes().group();
    let groups: Vec<std::ops::Range<usize>> = (0..items.len())
        .step_by(group)
        .map(|s| s..(s + group).min(items.len()))
        .collect();
    let workers = opts.num_process.clamp(1, groups.len().max(1));
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

    let write = |i: usize, p: &Path| plan.writes(i, p);
    let ctx = GroupContext {
        methods,
        contexts: &contexts,
        opts,
        write: &write,
    };
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let slots: Mutex<Vec<Option<ItemResult>>> = Mutex::new(vec![None; items.len()]);
    let first_error: Mutex<Option<(usize, SimError)>> = Mutex::new(None);
    let work = |m: &mut SimModel| {
        while !stop.load(Ordering::Relaxed) {
            let g = next.fetch_add(1, Ordering::Relaxed);
            let Some(range) = groups.get(g) else { break };
            let members: Vec<Member<'_>> = range
                .clone()
                .map(|i| Member {
                    index: i,
                    item: &items[i],
                    skip: plan.skip[i],
                })
                .collect();
            match run_group(m, &members, &ctx) {
                Ok(rs) => {
                    if let Ok(mut s) = slots.lock() {
                        for (i, r) in range.clone().zip(rs) {
                            s[i] = Some(r);
                        }
                    }
                    for _ in range.clone() {
                        progress();
                    }
                }
                Err((i, e)) => {
                    stop.store(true, Ordering::Relaxed);
                    if let Ok(mut f) = first_error.lock() {
                        // Keep the earliest item's error so the report does not depend on timing.
                        if f.as_ref().is_none_or(|(j, _)| i < *j) {
                            *f = Some((
                                i,
                                SimError::Item {
                                    input: describe(&items[i]),
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
