//! Running the float graph on calibration samples and gathering statistics, in parallel.

use super::{weight_stats, CalibrationStats};
use crate::error::{QuantError, Result};
use ipukit_config::InputConfig;
use ipukit_ir::{Graph, TensorId};
use ipukit_preprocess::{InputContext, Preprocessor};
use ipukit_runtime::{DataRef, Session, SessionOptions, Value};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// What to do when a sample cannot be read, preprocessed or run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnError {
    /// Stop and return the error of the failing sample with the smallest index.
    #[default]
    Stop,
    /// Skip a sample that cannot be read, preprocessed or set as the model's input, record it
    /// in [`CalibrationStats::failures`] and go on; fails only if no sample succeeds. An error
    /// while the model runs still stops the collection (the sample may have been partly
    /// observed, and it would be a bug of the interpreter).
    Skip,
}

/// How to collect statistics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectOptions {
    /// Parallel workers (`--num_process`), each with its own session. The statistics do not
    /// depend on it.
    pub num_process: usize,
    /// Intra-op threads of each worker's session; `None`: every core when `num_process` is 1,
    /// otherwise 1.
    pub intra_op_threads: Option<usize>,
    /// `--memory_saving`: the workers share one set of statistics (each tensor's behind its
    /// own lock) instead of one set each, so statistics memory does not grow with
    /// `num_process`. Both modes stream the samples (see `docs/calibration.md`).
    pub memory_saving: bool,
    /// Histogram bins per side of zero for activations (a power of two).
    pub bins_per_side: u32,
    /// Histogram bins per side for each weight output channel (a power of two).
    pub weight_bins_per_side: u32,
    /// What to do with a failing sample.
    pub on_error: OnError,
}

impl Default for CollectOptions {
    fn default() -> Self {
        CollectOptions {
            num_process: 1,
            intra_op_threads: None,
            memory_saving: false,
            bins_per_side: super::histogram::DEFAULT_BINS_PER_SIDE,
            weight_bins_per_side: 256,
            on_error: OnError::Stop,
        }
    }
}

/// Progress of a collection, reported after each sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Samples finished (run or failed).
    pub done: usize,
    /// Samples in all, when known.
    pub total: Option<usize>,
}

/// A sample that failed and was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleFailure {
    /// Position of the sample in the input sequence (0-based).
    pub index: usize,
    /// The sample's files (comma-separated), or `sample #<index>`.
    pub input: String,
    /// What went wrong.
    pub error: String,
}

/// The preprocessing context of every input of `graph`: its name and shape, and, when the
/// model carries an input config, the input's layout, training format, mean and std (as the
/// float simulator builds them).
pub fn input_contexts(graph: &Graph, config: Option<&InputConfig>) -> Vec<InputContext> {
    graph
        .inputs
        .iter()
        .map(|&id| {
            let t = graph.tensor(id);
            let mut ctx = match config.and_then(|c| c.input(&t.name)) {
                Some(spec) => InputContext::from_spec(spec, Some(t.shape.clone())),
                None => InputContext {
                    name: t.name.clone(),
                    shape: Some(t.shape.clone()),
                    ..Default::default()
                },
            };
            ctx.raw_dtype = Some(t.dtype);
            ctx
        })
        .collect()
}

/// A source of samples shared by the workers.
trait Source: Sync {
    /// The next sample: its index, a description for messages, and its values.
    fn next(&self) -> Option<(usize, String, Result<Vec<Value>>)>;
    /// Number of samples, when known.
    fn total(&self) -> Option<usize>;
}

/// Samples from an iterator, pulled under a lock.
struct IterSource<I> {
    inner: Mutex<(usize, I)>,
}

impl<I, E> Source for IterSource<I>
where
    I: Iterator<Item = std::result::Result<Vec<Value>, E>> + Send,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn next(&self) -> Option<(usize, String, Result<Vec<Value>>)> {
        let mut g = self.inner.lock().ok()?;
        let index = g.0;
        let item = g.1.next()?;
        g.0 += 1;
        drop(g);
        let item = item.map_err(|e| QuantError::Sample(e.into().to_string()));
        Some((index, format!("sample #{index}"), item))
    }

    fn total(&self) -> Option<usize> {
        None
    }
}

/// Samples read from files and preprocessed by the worker that takes them.
struct FileSource<'a> {
    items: &'a [Vec<PathBuf>],
    methods: &'a [Preprocessor],
    contexts: &'a [InputContext],
    next: AtomicUsize,
}

impl Source for FileSource<'_> {
    fn next(&self) -> Option<(usize, String, Result<Vec<Value>>)> {
        let index = self.next.fetch_add(1, Ordering::Relaxed);
        let item = self.items.get(index)?;
        let name = item
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(",");
        let values = item
            .iter()
            .enumerate()
            .map(|(i, path)| {
                let (Some(method), Some(ctx)) = (self.methods.get(i), self.contexts.get(i)) else {
                    return Err(QuantError::Usage(format!(
                        "the sample has {} file(s) but there are {} preprocessing method(s)",
                        item.len(),
                        self.methods.len()
                    )));
                };
                let sample = method.run(path, true, ctx)?;
                let (shape, data) = sample.into_parts();
                Ok(Value::new(shape, data)?)
            })
            .collect();
        Some((index, name, values))
    }

    fn total(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

/// Runs the float `graph` on every calibration sample and returns the statistics of its
/// activations and weights.
///
/// Each item of `samples` holds one value per graph input, in input order (what
/// `set_input(i, …)` takes: `FLOAT32`, the input's shape). The iterator is pulled under a
/// lock by `opts.num_process` workers; each worker runs its own [`Session`] and observes every
/// intermediate tensor with [`Session::invoke_with_observer`]. `progress` is called after each
/// sample. The result does not depend on the number of workers nor on which worker ran which
/// sample; with [`OnError::Stop`] the error reported is the one of the smallest failing
/// index among the samples run.
///
/// Memory: one session per worker, one sample in flight per worker, and statistics of
/// `O(tensors × bins)` per worker (one shared set with `memory_saving`); nothing grows with
/// the number of samples.
pub fn collect<I, E>(
    graph: &Graph,
    samples: I,
    opts: &CollectOptions,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<CalibrationStats>
where
    I: IntoIterator<Item = std::result::Result<Vec<Value>, E>>,
    I::IntoIter: Send,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let source = IterSource {
        inner: Mutex::new((0, samples.into_iter())),
    };
    run(graph, &source, opts, progress)
}

/// [`collect`] over the `-i` inputs (`items`, one row of files per sample, as
/// [`ipukit_preprocess::collect_inputs`] returns them) and the `-n` methods (one per graph
/// input), preprocessed with `norm=True` as the float simulator does. `contexts` come from
/// [`input_contexts`]. Errors name the files of the failing sample; with [`OnError::Skip`]
/// each failing sample is recorded in [`CalibrationStats::failures`] instead.
pub fn collect_files(
    graph: &Graph,
    items: &[Vec<PathBuf>],
    methods: &[Preprocessor],
    contexts: &[InputContext],
    opts: &CollectOptions,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<CalibrationStats> {
    let n_inputs = graph.inputs.len();
    if methods.len() != n_inputs || contexts.len() != n_inputs {
        return Err(QuantError::Usage(format!(
            "Got different num of preprocess_methods and images! The model has {n_inputs} input(s) and -n gives {} method(s)",
            methods.len()
        )));
    }
    if let Some((i, row)) = items.iter().enumerate().find(|(_, r)| r.len() != n_inputs) {
        return Err(QuantError::Usage(format!(
            "input #{i} has {} file(s) but the model has {n_inputs} input(s)",
            row.len()
        )));
    }
    let source = FileSource {
        items,
        methods,
        contexts,
        next: AtomicUsize::new(0),
    };
    run(graph, &source, opts, progress)
}

/// Where a worker puts its observations.
enum Sink<'a> {
    Own(CalibrationStats),
    Shared(&'a SharedStats),
}

/// Statistics shared by the workers in memory-saving mode: one lock per tensor.
struct SharedStats {
    slot: Vec<Option<usize>>,
    cells: Vec<Mutex<super::ActivationStats>>,
    samples: AtomicUsize,
}

impl Sink<'_> {
    fn observe(&mut self, id: TensorId, data: &[f32]) {
        match self {
            Sink::Own(s) => {
                if let Some(a) = s.activation_mut(id) {
                    a.observe(data);
                }
            }
            Sink::Shared(sh) => {
                if let Some(k) = sh.slot.get(id.0).copied().flatten() {
                    if let Some(Ok(mut a)) = sh.cells.get(k).map(|m| m.lock()) {
                        a.observe(data);
                    }
                }
            }
        }
    }

    fn add_sample(&mut self) {
        match self {
            Sink::Own(s) => s.add_sample(),
            Sink::Shared(sh) => {
                sh.samples.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Why a sample failed: before the model ran (nothing observed; may be skipped) or while
/// it ran (some tensors may have been observed; always stops the collection).
enum SampleError {
    Input(QuantError),
    Run(QuantError),
}

/// Runs one sample on a worker's session.
fn run_sample(
    graph: &Graph,
    session: &mut Session,
    values: Vec<Value>,
    sink: &mut Sink<'_>,
) -> std::result::Result<(), SampleError> {
    if values.len() != graph.inputs.len() {
        return Err(SampleError::Input(QuantError::Usage(format!(
            "the sample has {} value(s) but the model has {} input(s)",
            values.len(),
            graph.inputs.len()
        ))));
    }
    // Set every input before observing anything, so that a type or shape error leaves no
    // partial statistics. The data is shared (`Arc`), not copied.
    let mut inputs = Vec::with_capacity(values.len());
    for (i, v) in values.into_iter().enumerate() {
        inputs.push((graph.inputs[i], v.data.clone()));
        session
            .set_input(i, v)
            .map_err(|e| SampleError::Input(e.into()))?;
    }
    session
        .invoke_with_observer(&mut |_, t, view| {
            if let DataRef::F32(d) = view.data {
                sink.observe(t, d);
            }
        })
        .map_err(|e| SampleError::Run(e.into()))?;
    for (id, data) in &inputs {
        if let Some(d) = data.as_f32() {
            sink.observe(*id, d);
        }
    }
    sink.add_sample();
    Ok(())
}

/// Ties the lifetimes of a worker closure's sink argument and result together.
fn worker_fn<'a, F>(f: F) -> F
where
    F: Fn(&mut Session, Sink<'a>) -> Sink<'a>,
{
    f
}

fn run(
    graph: &Graph,
    source: &dyn Source,
    opts: &CollectOptions,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<CalibrationStats> {
    let mut template = CalibrationStats::activations_only(graph, opts.bins_per_side)?;
    let weights = weight_stats(graph, opts.weight_bins_per_side)?;
    let workers = opts.num_process.max(1);
    let workers = match source.total() {
        Some(n) => workers.min(n.max(1)),
        None => workers,
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = opts
        .intra_op_threads
        .unwrap_or(if workers > 1 { 1 } else { cores })
        .max(1);
    let mut sessions = (0..workers)
        .map(|_| {
            Session::new(
                graph.clone(),
                SessionOptions {
                    threads: Some(threads),
                },
            )
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;

    // Memory saving: the one set of statistics moves into per-tensor locks and `template`
    // stays an empty shell for the result; otherwise every worker gets its own set (the
    // template itself and `workers - 1` clones), merged at the end.
    let (shared, shell, sinks_in) = if opts.memory_saving {
        let sh = SharedStats {
            slot: template.slot.clone(),
            cells: std::mem::take(&mut template.activations)
                .into_iter()
                .map(Mutex::new)
                .collect(),
            samples: AtomicUsize::new(0),
        };
        (Some(sh), Some(template), Vec::new())
    } else {
        let mut sets: Vec<CalibrationStats> = (1..workers).map(|_| template.clone()).collect();
        sets.push(template);
        (None, None, sets)
    };
    let done = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let first_error: Mutex<Option<(usize, QuantError)>> = Mutex::new(None);
    let failures: Mutex<Vec<SampleFailure>> = Mutex::new(Vec::new());
    let total = source.total();

    let mut sinks_in: Vec<Sink<'_>> = match &shared {
        Some(sh) => (0..workers).map(|_| Sink::Shared(sh)).collect(),
        None => sinks_in.into_iter().map(Sink::Own).collect(),
    };
    let work = worker_fn(|session: &mut Session, mut sink: Sink<'_>| {
        while !stop.load(Ordering::Relaxed) {
            let Some((index, name, values)) = source.next() else {
                break;
            };
            let result = match values {
                Ok(v) => run_sample(graph, session, v, &mut sink),
                Err(e) => Err(SampleError::Input(e)),
            };
            if let Err(e) = result {
                let (e, skippable) = match e {
                    SampleError::Input(e) => (e, true),
                    SampleError::Run(e) => (e, false),
                };
                match (opts.on_error, skippable) {
                    (OnError::Stop, _) | (OnError::Skip, false) => {
                        stop.store(true, Ordering::Relaxed);
                        if let Ok(mut f) = first_error.lock() {
                            if f.as_ref().is_none_or(|(j, _)| index < *j) {
                                *f = Some((
                                    index,
                                    QuantError::Input {
                                        input: name,
                                        source: Box::new(e),
                                    },
                                ));
                            }
                        }
                    }
                    (OnError::Skip, true) => {
                        if let Ok(mut f) = failures.lock() {
                            f.push(SampleFailure {
                                index,
                                input: name,
                                error: e.to_string(),
                            });
                        }
                    }
                }
            }
            let n = done.fetch_add(1, Ordering::Relaxed) + 1;
            progress(Progress { done: n, total });
        }
        sink
    });

    let sinks: Vec<Sink<'_>> = std::thread::scope(|s| {
        let first_sink = sinks_in.pop();
        let mut rest = sessions.iter_mut();
        let first = rest.next();
        let handles: Vec<_> = rest
            .zip(sinks_in)
            .map(|(sess, sink)| s.spawn(|| work(sess, sink)))
            .collect();
        let mut sinks = Vec::with_capacity(workers);
        if let (Some(sess), Some(sink)) = (first, first_sink) {
            sinks.push(work(sess, sink));
        }
        for h in handles {
            match h.join() {
                Ok(sink) => sinks.push(sink),
                Err(_) => stop.store(true, Ordering::Relaxed),
            }
        }
        sinks
    });
    drop(sessions);
    let joined = sinks.len();
    let own: Vec<CalibrationStats> = sinks
        .into_iter()
        .filter_map(|s| match s {
            Sink::Own(s) => Some(s),
            Sink::Shared(_) => None,
        })
        .collect();
    if joined != workers {
        return Err(QuantError::Usage("a calibration worker panicked".into()));
    }
    if let Some((_, e)) = first_error.into_inner().ok().flatten() {
        return Err(e);
    }
    let mut stats = match (shared, shell) {
        (Some(sh), Some(mut stats)) => {
            stats.activations = sh
                .cells
                .into_iter()
                .map(|m| {
                    m.into_inner()
                        .map_err(|_| QuantError::Usage("poisoned lock".into()))
                })
                .collect::<Result<_>>()?;
            stats.samples = sh.samples.into_inner() as u64;
            stats
        }
        _ => {
            let mut it = own.into_iter();
            let mut stats = it
                .next()
                .ok_or_else(|| QuantError::Usage("no calibration worker ran".into()))?;
            for s in it {
                stats.merge(&s)?;
            }
            stats
        }
    };
    for f in failures.into_inner().unwrap_or_default() {
        stats.push_failure(f);
    }
    stats.set_weights(weights);
    if stats.samples() == 0 {
        return Err(match stats.failures().first() {
            Some(f) => QuantError::NoSamples(format!(
                "every sample failed; the first: {}: {}",
                f.input, f.error
            )),
            None => QuantError::NoSamples("no calibration sample was given".into()),
        });
    }
    Ok(stats)
}
