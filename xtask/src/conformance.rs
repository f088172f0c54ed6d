//! `cargo xtask conformance`: ONNX's backend node tests through ipukit's importer and runtime.
//!
//! Every case of `.cache/onnx-node-tests/node/test_*` (a `model.onnx` and
//! `test_data_set_0/{input,output}_*.pb`) is imported with the ONNX layout kept, run, and its
//! outputs compared with the expected ones as ONNX Runtime's tests do: same shape, same
//! element type, and |a - b| <= atol + rtol * |b| elementwise (NaN equal to NaN).
//!
//! A case is `pass`, `fail` (wrong numbers, shape or type, or an error that does not say the
//! feature is unsupported), `unsupported` (an error saying "not supported" / "does not
//! support" / "only supports", or the seeds' wordings of it, see [`UNSUPPORTED_PHRASES`]) or
//! `panic` (always a failure). Cases are grouped by the operator they test.
//!
//! A case is *claimed* when ipukit claims its operator (`ipukit_onnx::supported_ops`), its
//! graph inputs and outputs are tensors of element types the IR has, the model's opset is one
//! the importer accepts (`MIN_OPSET..=MAX_OPSET`, or 21/22 for operators that only gained
//! element types since 20: run with the opset declared as 20), and every node of the model is
//! a claimed operator (the `*_expanded` cases spell a function out in other operators, e.g.
//! CastLike). The command fails when fewer than 95% of the claimed cases pass, on any
//! panic, or on any failure of a case outside the claimed set (those must be refused clearly,
//! never answered wrongly).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ipukit_ir::TensorData;
use ipukit_runtime::{Session, SessionOptions, Value};
use prost::Message;

use crate::util::{self, rel};

/// Relative tolerance.
const RTOL: f64 = 1e-3;
/// Absolute tolerance.
const ATOL: f64 = 1e-4;
/// Minimum pass rate over the claimed operators' cases.
const MIN_PASS_RATE: f64 = 0.95;
/// Phrases (lower case) that make an error an honest "unsupported": "not supported", "does
/// not support", "only supports", "unsupported", and the seeds' own wordings of the same
/// refusal ("Do not support activation_beta", "not support ONNX op type OneHot yet", "Please
/// export the ONNX with opset_version <= 20").
const UNSUPPORTED_PHRASES: [&str; 4] = [
    "not support",
    "only support",
    "unsupported",
    "please export the onnx with opset_version",
];

/// What happened to one case.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Pass,
    /// Passed once the parameter inputs (all but the first) were made constants.
    PassFrozen,
    Fail(String),
    Unsupported(String),
    Panic(String),
}

/// Whether a case is one ipukit claims to pass.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Scope {
    /// Claimed operator, accepted opset, only claimed operators in the graph.
    Claimed,
    /// Claimed operator on element types the IR does not have (float16, double, bfloat16,
    /// float8, int4, string, ...) or on sequences, maps or optionals.
    Types(Vec<String>),
    /// Claimed operator at an opset the importer does not accept.
    Opset(i64),
    /// Claimed operator, but the graph also uses these unclaimed operators.
    OtherOps(Vec<String>),
    /// The operator is not claimed.
    NotClaimed,
}

struct CaseResult {
    name: String,
    op: String,
    scope: Scope,
    /// Run with its opset 21/22 declared as 20.
    lowered: bool,
    outcome: Outcome,
    time: Duration,
}

/// Options of the subcommand.
pub struct Options {
    /// Only cases whose operator (case-insensitive) or name contains this.
    pub filter: Option<String>,
    /// Intra-op threads of each session.
    pub threads: usize,
    /// Print every case.
    pub verbose: bool,
}

/// Runs the suite.
pub fn run(opts: &Options) -> Result<()> {
    let start = Instant::now();
    let root = util::cache_dir().join("onnx-node-tests/node");
    if !root.is_dir() {
        bail!("{} does not exist: run `cargo xtask fetch`", rel(&root));
    }
    let mut dirs: Vec<PathBuf> = fs::read_dir(&root)
        .with_context(|| format!("cannot list {}", rel(&root)))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("model.onnx").is_file())
        .collect();
    dirs.sort();
    let claimed: BTreeSet<String> = ipukit_onnx::supported_ops().map(str::to_string).collect();

    // First pass: the operator each case tests.
    let mut cases = vec![];
    for dir in &dirs {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let bytes = fs::read(dir.join("model.onnx"))
            .with_context(|| format!("cannot read {}", rel(dir)))?;
        let (ops, opset, types) = node_ops(&bytes);
        cases.push((dir.clone(), name, bytes, ops, opset, types));
    }
    let mut known: BTreeSet<String> = claimed.clone();
    for (_, _, _, ops, _, _) in &cases {
        if ops.len() == 1 {
            known.extend(ops.iter().cloned());
        }
    }
    let filter = opts.filter.as_ref().map(|f| f.to_lowercase());

    let messages = install_panic_hook();
    let mut results = vec![];
    for (dir, name, mut bytes, ops, opset, types) in cases {
        let op = case_op(&name, &ops, &known);
        // Opset 21/22 models whose operators only gained element types since 20 mean the same
        // at 20: run them so (whether claimed or not: a wrong answer is a wrong answer).
        let lowered = match opset.and_then(|v| lower_opset(&bytes, v, &ops)) {
            Some(b) => {
                bytes = b;
                true
            }
            None => false,
        };
        let effective = if lowered {
            Some(ipukit_onnx::MAX_OPSET)
        } else {
            opset
        };
        let scope = scope(&op, &ops, effective, &types, &claimed);
        if let Some(f) = &filter {
            if !op.to_lowercase().contains(f) && !name.to_lowercase().contains(f) {
                continue;
            }
        }
        let t = Instant::now();
        let outcome = run_case(&dir, &bytes, opts.threads, &messages);
        let r = CaseResult {
            name,
            op,
            scope,
            lowered,
            outcome,
            time: t.elapsed(),
        };
        if opts.verbose {
            println!(
                "{:<60} {:<12} {}{}",
                r.name,
                r.op,
                describe(&r.outcome),
                if r.lowered { " [run at opset 20]" } else { "" }
            );
        }
        results.push(r);
    }
    let _ = panic::take_hook();

    let report = Report::new(&results, &claimed);
    print!("{}", report.text_table());
    let md = report.markdown(start.elapsed());
    if opts.filter.is_none() {
        let path = util::repo_root().join("docs/conformance.md");
        util::write_atomic(&path, md.as_bytes())?;
        println!("conformance: wrote {}", rel(&path));
    }
    let mut slow: Vec<&CaseResult> = results.iter().collect();
    slow.sort_by_key(|r| std::cmp::Reverse(r.time));
    if let Some(s) = slow.first() {
        println!(
            "conformance: {} case(s) in {:.1} s (slowest {} {:.2} s)",
            results.len(),
            start.elapsed().as_secs_f64(),
            s.name,
            s.time.as_secs_f64()
        );
    }
    let problems = report.problems();
    for p in &problems {
        println!("conformance: FAIL: {p}");
    }
    println!(
        "conformance: {} passed, {} failed, {} skipped",
        report.total.pass,
        report.total.fail + report.total.panic,
        report.total.unsupported
    );
    if !problems.is_empty() {
        bail!("conformance failed ({} problem(s))", problems.len());
    }
    Ok(())
}

/// The op_types of a model's graph nodes, its default-domain opset, and the types of its
/// graph inputs and outputs that ipukit's IR does not have (empty / `None` if it does not
/// decode or has none).
fn node_ops(bytes: &[u8]) -> (Vec<String>, Option<i64>, Vec<String>) {
    use ipukit_onnx::proto::type_proto::Value as T;
    let Ok(model) = ipukit_onnx::proto::ModelProto::decode(bytes) else {
        return (vec![], None, vec![]);
    };
    let mut ops: Vec<String> = model
        .graph
        .iter()
        .flat_map(|g| g.node.iter())
        .filter_map(|n| n.op_type.clone())
        .collect();
    ops.dedup();
    let mut foreign = BTreeSet::new();
    for v in model
        .graph
        .iter()
        .flat_map(|g| g.input.iter().chain(g.output.iter()))
    {
        match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
            Some(T::TensorType(t)) => {
                if let Some(name) = t.elem_type.and_then(foreign_elem_type) {
                    foreign.insert(name.to_string());
                }
            }
            Some(T::SequenceType(_)) => {
                foreign.insert("sequence".to_string());
            }
            Some(T::MapType(_)) => {
                foreign.insert("map".to_string());
            }
            Some(T::OptionalType(_)) => {
                foreign.insert("optional".to_string());
            }
            _ => {}
        }
    }
    (
        ops,
        ipukit_onnx::model_opset(&model).ok(),
        foreign.into_iter().collect(),
    )
}

/// The name of an ONNX element type ipukit's IR has no counterpart for (its `DType`s are
/// f32, i64, i32, i16, u16, i8, u8 and bool).
fn foreign_elem_type(t: i32) -> Option<&'static str> {
    Some(match t {
        1..=7 | 9 => return None,
        8 => "string",
        10 => "float16",
        11 => "double",
        12 => "uint32",
        13 => "uint64",
        14 | 15 => "complex",
        16 => "bfloat16",
        17..=20 => "float8",
        21 => "uint4",
        22 => "int4",
        23 => "float4",
        _ => "unknown",
    })
}

/// The model with its default-domain opset declared as [`ipukit_onnx::MAX_OPSET`], when it is
/// of opset 21 or 22 and none of its operators was redefined since 20.
fn lower_opset(bytes: &[u8], opset: i64, ops: &[String]) -> Option<Vec<u8>> {
    if !(21..=22).contains(&opset) || ipukit_onnx::MAX_OPSET != 20 {
        return None;
    }
    if ops.is_empty() || ops.iter().any(|o| redefined_since_20(o)) {
        return None;
    }
    let mut model = ipukit_onnx::proto::ModelProto::decode(bytes).ok()?;
    for o in &mut model.opset_import {
        if matches!(o.domain.as_deref(), None | Some("") | Some("ai.onnx")) {
            o.version = Some(ipukit_onnx::MAX_OPSET);
        }
    }
    Some(model.encode_to_vec())
}

/// Operators whose opset-21/22 definition means something else than at opset 20 (new
/// attributes or semantics). Every other operator redefined at 21 or 22 (Conv, ConvTranspose,
/// AveragePool, MaxPool, GlobalAveragePool, Pad, Reshape, Transpose, Squeeze, Unsqueeze,
/// Flatten, Shape, Cast, Identity, the activations, ...) only gained element types (int4/uint4
/// and float8 at 21, bfloat16 at 22), as the schemas of onnx 1.17.0 show: on other types a
/// model of opset 21 or 22 made of them means the same at opset 20.
fn redefined_since_20(op: &str) -> bool {
    matches!(
        op,
        "DequantizeLinear" | "QuantizeLinear" | "GroupNormalization"
    )
}

/// Whether a case is claimed (see the module documentation).
fn scope(
    op: &str,
    ops: &[String],
    opset: Option<i64>,
    types: &[String],
    claimed: &BTreeSet<String>,
) -> Scope {
    if !claimed.contains(op) {
        return Scope::NotClaimed;
    }
    if !types.is_empty() {
        return Scope::Types(types.to_vec());
    }
    if let Some(v) =
        opset.filter(|v| !(ipukit_onnx::MIN_OPSET..=ipukit_onnx::MAX_OPSET).contains(v))
    {
        return Scope::Opset(v);
    }
    let other: BTreeSet<String> = ops
        .iter()
        .filter(|o| !claimed.contains(*o))
        .cloned()
        .collect();
    if other.is_empty() {
        Scope::Claimed
    } else {
        Scope::OtherOps(other.into_iter().collect())
    }
}

/// The operator a case tests: its node's op_type when it has one kind of node; otherwise (a
/// function expanded into several nodes, e.g. `test_layer_normalization_2d_axis0_expanded`)
/// the known operator whose test-name spelling is the longest prefix of the case name.
fn case_op(name: &str, ops: &[String], known: &BTreeSet<String>) -> String {
    let distinct: BTreeSet<&String> = ops.iter().collect();
    if distinct.len() == 1 {
        return ops[0].clone();
    }
    let stem = name.strip_prefix("test_").unwrap_or(name);
    let mut best: Option<(&String, usize)> = None;
    for op in known {
        for spelling in test_spellings(op) {
            let matches = stem == spelling || stem.starts_with(&format!("{spelling}_"));
            if matches && best.is_none_or(|(_, len)| spelling.len() > len) {
                best = Some((op, spelling.len()));
            }
        }
    }
    best.map(|(op, _)| op.clone())
        .or_else(|| ops.first().cloned())
        .unwrap_or_else(|| "?".to_string())
}

/// How ONNX's test names spell an operator: `GlobalAveragePool` as `globalaveragepool`,
/// `LayerNormalization` as `layer_normalization`, and a few abbreviations.
fn test_spellings(op: &str) -> Vec<String> {
    let mut snake = String::new();
    let chars: Vec<char> = op.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let prev_lower = i > 0 && (chars[i - 1].is_lowercase() || chars[i - 1].is_ascii_digit());
        if c.is_uppercase() && prev_lower {
            snake.push('_');
        }
        snake.extend(c.to_lowercase());
    }
    let mut v = vec![op.to_lowercase(), snake];
    let alias = match op {
        "NegativeLogLikelihoodLoss" => Some("nllloss"),
        "SoftmaxCrossEntropyLoss" => Some("sce"),
        "MeanVarianceNormalization" => Some("mvn"),
        "BatchNormalization" => Some("batchnorm"),
        "GreaterOrEqual" => Some("greater_equal"),
        "LessOrEqual" => Some("less_equal"),
        _ => None,
    };
    v.extend(alias.map(str::to_string));
    v.dedup();
    v
}

fn run_case(
    dir: &Path,
    bytes: &[u8],
    threads: usize,
    messages: &Arc<Mutex<Option<String>>>,
) -> Outcome {
    let caught = panic::catch_unwind(AssertUnwindSafe(|| run_case_inner(dir, bytes, threads)));
    match caught {
        Ok(outcome) => outcome,
        Err(payload) => {
            let msg = messages
                .lock()
                .ok()
                .and_then(|mut m| m.take())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".to_string());
            Outcome::Panic(msg)
        }
    }
}

fn classify_error(msg: String) -> Outcome {
    let lower = msg.to_lowercase();
    if UNSUPPORTED_PHRASES.iter().any(|p| lower.contains(p)) {
        Outcome::Unsupported(msg)
    } else {
        Outcome::Fail(msg)
    }
}

fn run_case_inner(dir: &Path, bytes: &[u8], threads: usize) -> Outcome {
    let data = dir.join("test_data_set_0");
    let mut outcome = run_model(bytes, &data, threads, None);
    // The IPU needs parameter tensors (axes, starts, scales, split, repeats, weights, ...) to
    // be constants, as they are in real models; the node tests feed them as graph inputs. Such a
    // case is run again with every input but the first baked into the model from its test
    // data, and then (Range, whose inputs are all parameters) with every input baked in.
    for keep in [1, 0] {
        let (Outcome::Unsupported(m) | Outcome::Fail(m)) = &outcome else {
            break;
        };
        if !(m.starts_with("import:") && m.contains("const")) {
            break;
        }
        outcome = match freeze_inputs(bytes, &data, keep) {
            Ok(frozen) => match run_model(&frozen, &data, threads, Some(keep)) {
                Outcome::Pass => Outcome::PassFrozen,
                other => other,
            },
            // Nothing beyond the first input to freeze: try freezing every input.
            Err(_) => continue,
        };
    }
    outcome
}

/// Imports and runs a model on its first `keep` test inputs (all of them when `None`).
fn run_model(bytes: &[u8], data: &Path, threads: usize, keep: Option<usize>) -> Outcome {
    let opts = ipukit_onnx::ImportOptions {
        keep_onnx_layout: true,
        ..Default::default()
    };
    let graph = match ipukit_onnx::import_bytes(bytes, &opts) {
        Ok(g) => g,
        Err(e) => return classify_error(format!("import: {e}")),
    };
    let mut inputs = match read_pbs(data, "input_") {
        Ok(v) => v,
        Err(e) => return classify_error(format!("input: {e:#}")),
    };
    if let Some(keep) = keep {
        inputs.truncate(keep);
    }
    let expected = match read_pbs(data, "output_") {
        Ok(v) => v,
        Err(e) => return classify_error(format!("expected output: {e:#}")),
    };
    #[allow(clippy::needless_update)] // future options keep their defaults
    let options = SessionOptions {
        threads: Some(threads),
        ..Default::default()
    };
    let mut session = match Session::new(graph, options) {
        Ok(s) => s,
        Err(e) => return classify_error(format!("session: {e}")),
    };
    let got = match session.run(inputs) {
        Ok(v) => v,
        Err(e) => return classify_error(format!("run: {e}")),
    };
    if got.len() != expected.len() {
        return Outcome::Fail(format!(
            "{} output(s), expected {}",
            got.len(),
            expected.len()
        ));
    }
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        if let Err(why) = compare(g, e) {
            return Outcome::Fail(format!("output {i}: {why}"));
        }
    }
    Outcome::Pass
}

/// The model with its graph inputs `keep..` turned into initializers holding the test data.
fn freeze_inputs(bytes: &[u8], data: &Path, keep: usize) -> Result<Vec<u8>> {
    use ipukit_onnx::proto::{ModelProto, TensorProto};
    let mut model = ModelProto::decode(bytes).context("the model does not decode")?;
    let graph = model
        .graph
        .as_mut()
        .ok_or_else(|| anyhow::anyhow!("no graph"))?;
    let init: BTreeSet<String> = graph
        .initializer
        .iter()
        .filter_map(|t| t.name.clone())
        .collect();
    let inputs: Vec<usize> = (0..graph.input.len())
        .filter(|&i| {
            graph.input[i]
                .name
                .as_ref()
                .is_none_or(|n| !init.contains(n))
        })
        .collect();
    if inputs.len() <= keep {
        bail!("nothing to freeze");
    }
    let mut remove = vec![];
    for (k, &i) in inputs.iter().enumerate().skip(keep) {
        let pb = data.join(format!("input_{k}.pb"));
        let raw = fs::read(&pb).with_context(|| format!("cannot read {}", pb.display()))?;
        let mut t = TensorProto::decode(raw.as_slice()).context("bad TensorProto")?;
        t.name = graph.input[i].name.clone();
        graph.initializer.push(t);
        remove.push(i);
    }
    for i in remove.into_iter().rev() {
        graph.input.remove(i);
    }
    Ok(model.encode_to_vec())
}

/// `input_0.pb`, `input_1.pb`, ... in numeric order, as values.
fn read_pbs(dir: &Path, prefix: &str) -> Result<Vec<Value>> {
    let mut files: Vec<(usize, PathBuf)> = fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| {
            let n = p.file_name()?.to_str()?.to_string();
            let idx = n.strip_prefix(prefix)?.strip_suffix(".pb")?.parse().ok()?;
            Some((idx, p))
        })
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|(_, p)| {
            let bytes = fs::read(&p).with_context(|| format!("cannot read {}", p.display()))?;
            let (_name, shape, data) =
                ipukit_onnx::read_tensor_proto(&bytes).with_context(|| {
                    p.file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned()
                })?;
            Ok(Value { shape, data })
        })
        .collect()
}

/// ORT-style closeness of an output to the expected value.
fn compare(got: &Value, want: &Value) -> std::result::Result<(), String> {
    if got.shape != want.shape {
        return Err(format!("shape {:?}, expected {:?}", got.shape, want.shape));
    }
    if got.data.dtype() != want.data.dtype() {
        return Err(format!(
            "type {}, expected {}",
            got.data.dtype(),
            want.data.dtype()
        ));
    }
    match (&got.data, &want.data) {
        (TensorData::F32(a), TensorData::F32(b)) => {
            let mut worst: Option<(usize, f32, f32)> = None;
            let mut bad = 0usize;
            for (i, (&x, &y)) in a.iter().zip(b.iter()).enumerate() {
                if !close(x as f64, y as f64) {
                    bad += 1;
                    let d = (x as f64 - y as f64).abs();
                    if worst
                        .is_none_or(|(_, wx, wy)| d > (wx as f64 - wy as f64).abs() || d.is_nan())
                    {
                        worst = Some((i, x, y));
                    }
                }
            }
            match worst {
                None => Ok(()),
                Some((i, x, y)) => Err(format!(
                    "{bad} of {} values differ; worst at {i}: {x} vs {y}",
                    a.len()
                )),
            }
        }
        _ => {
            let a = got.data.to_i64_vec();
            let b = want.data.to_i64_vec();
            match a.iter().zip(&b).position(|(x, y)| x != y) {
                None => Ok(()),
                Some(i) => Err(format!(
                    "{} of {} values differ; first at {i}: {} vs {}",
                    a.iter().zip(&b).filter(|(x, y)| x != y).count(),
                    a.len(),
                    a[i],
                    b[i]
                )),
            }
        }
    }
}

fn close(a: f64, b: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a.is_infinite() || b.is_infinite() {
        return a == b;
    }
    (a - b).abs() <= ATOL + RTOL * b.abs()
}

/// Keeps the message of the last panic (and prints nothing) while the suite runs.
fn install_panic_hook() -> Arc<Mutex<Option<String>>> {
    let slot = Arc::new(Mutex::new(None));
    let s2 = slot.clone();
    panic::set_hook(Box::new(move |info| {
        let payload = info
            .payload()
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        if let Ok(mut m) = s2.lock() {
            *m = Some(format!("{payload}{at}"));
        }
    }));
    slot
}

fn describe(o: &Outcome) -> String {
    match o {
        Outcome::Pass => "pass".into(),
        Outcome::PassFrozen => "pass (parameter inputs frozen)".into(),
        Outcome::Fail(m) => format!("FAIL: {}", one_line(m)),
        Outcome::Unsupported(m) => format!("unsupported: {}", one_line(m)),
        Outcome::Panic(m) => format!("PANIC: {}", one_line(m)),
    }
}

fn one_line(s: &str) -> String {
    let s = s.replace('\n', " ");
    if s.chars().count() > 160 {
        format!("{}…", s.chars().take(160).collect::<String>())
    } else {
        s
    }
}

#[derive(Default, Clone, Copy)]
struct Counts {
    cases: usize,
    pass: usize,
    frozen: usize,
    fail: usize,
    unsupported: usize,
    panic: usize,
}

impl Counts {
    fn add(&mut self, o: &Outcome) {
        self.cases += 1;
        match o {
            Outcome::Pass => self.pass += 1,
            Outcome::PassFrozen => {
                self.pass += 1;
                self.frozen += 1;
            }
            Outcome::Fail(_) => self.fail += 1,
            Outcome::Unsupported(_) => self.unsupported += 1,
            Outcome::Panic(_) => self.panic += 1,
        }
    }
}

/// Per operator: the claimed cases' outcomes, and how many cases fell out of scope.
#[derive(Default, Clone, Copy)]
struct OpRow {
    all: usize,
    claimed: Counts,
    lowered: usize,
    types: usize,
    newer_opset: usize,
    other_ops: usize,
    other: Counts,
}

struct Report<'a> {
    results: &'a [CaseResult],
    claimed: &'a BTreeSet<String>,
    per_op: BTreeMap<String, OpRow>,
    claimed_total: Counts,
    total: Counts,
}

impl<'a> Report<'a> {
    fn new(results: &'a [CaseResult], claimed: &'a BTreeSet<String>) -> Report<'a> {
        let mut per_op: BTreeMap<String, OpRow> = BTreeMap::new();
        let mut claimed_total = Counts::default();
        let mut total = Counts::default();
        for r in results {
            let row = per_op.entry(r.op.clone()).or_default();
            row.all += 1;
            total.add(&r.outcome);
            match &r.scope {
                Scope::Claimed => {
                    row.claimed.add(&r.outcome);
                    row.lowered += usize::from(r.lowered);
                    claimed_total.add(&r.outcome);
                }
                Scope::Opset(_) => {
                    row.newer_opset += 1;
                    row.other.add(&r.outcome);
                }
                Scope::OtherOps(_) => {
                    row.other_ops += 1;
                    row.other.add(&r.outcome);
                }
                Scope::Types(_) => {
                    row.types += 1;
                    row.other.add(&r.outcome);
                }
                Scope::NotClaimed => row.other.add(&r.outcome),
            }
        }
        Report {
            results,
            claimed,
            per_op,
            claimed_total,
            total,
        }
    }

    fn pass_rate(&self) -> f64 {
        if self.claimed_total.cases == 0 {
            1.0
        } else {
            self.claimed_total.pass as f64 / self.claimed_total.cases as f64
        }
    }

    fn problems(&self) -> Vec<String> {
        let mut p = vec![];
        if self.claimed_total.cases > 0 && self.pass_rate() < MIN_PASS_RATE {
            p.push(format!(
                "{:.1}% of the claimed cases pass ({} of {}), below {:.0}%",
                100.0 * self.pass_rate(),
                self.claimed_total.pass,
                self.claimed_total.cases,
                100.0 * MIN_PASS_RATE
            ));
        }
        for r in self.results {
            match &r.outcome {
                Outcome::Panic(m) => {
                    p.push(format!("{} ({}) panicked: {}", r.name, r.op, one_line(m)))
                }
                Outcome::Fail(m) if !r.scope.is_claimed() => p.push(format!(
                    "{} ({}, {}) gave a wrong answer or an unclear error: {}",
                    r.name,
                    r.op,
                    scope_text(&r.scope),
                    one_line(m)
                )),
                _ => {}
            }
        }
        p
    }

    fn text_table(&self) -> String {
        let mut s = format!(
            "{:<26} {:>5} {:>7} {:>5} {:>5} {:>6} {:>5} {:>8} {:>6} {:>9} {:>9}\n",
            "operator (claimed)",
            "cases",
            "claimed",
            "pass",
            "fail",
            "unsup",
            "panic",
            "lowered",
            "types",
            "opset>20",
            "other ops"
        );
        for (op, r) in &self.per_op {
            if !self.claimed.contains(op) {
                continue;
            }
            let c = &r.claimed;
            s.push_str(&format!(
                "{:<26} {:>5} {:>7} {:>5} {:>5} {:>6} {:>5} {:>8} {:>6} {:>9} {:>9}\n",
                op,
                r.all,
                c.cases,
                c.pass,
                c.fail,
                c.unsupported,
                c.panic,
                r.lowered,
                r.types,
                r.newer_opset,
                r.other_ops
            ));
        }
        let c = &self.claimed_total;
        s.push_str(&format!(
            "{:<26} {:>5} {:>7} {:>5} {:>5} {:>6} {:>5}   pass rate {:.1}% ({} with parameter inputs frozen)\n",
            "claimed total",
            "",
            c.cases,
            c.pass,
            c.fail,
            c.unsupported,
            c.panic,
            100.0 * self.pass_rate(),
            c.frozen
        ));
        let o = Counts {
            cases: self.total.cases - c.cases,
            pass: self.total.pass - c.pass,
            frozen: self.total.frozen - c.frozen,
            fail: self.total.fail - c.fail,
            unsupported: self.total.unsupported - c.unsupported,
            panic: self.total.panic - c.panic,
        };
        s.push_str(&format!(
            "{:<26} {:>5} {:>7} {:>5} {:>5} {:>6} {:>5}\n",
            "outside the claimed set", o.cases, "", o.pass, o.fail, o.unsupported, o.panic
        ));
        s
    }

    fn markdown(&self, elapsed: Duration) -> String {
        let c = &self.claimed_total;
        let mut s = String::new();
        s.push_str("# ONNX backend node tests\n\n");
        s.push_str(
            "Generated by `cargo xtask conformance` (do not edit) from the node tests shipped in the \
             `onnx` 1.17.0 wheel (`onnx/backend/test/data/node`, 1,288 cases): each case is imported \
             with the ONNX layout kept, run by ipukit's interpreter and compared with the expected \
             outputs (same shape and type, |a - b| <= 1e-4 + 1e-3 |b|, NaN equal to NaN).\n\n\
             A case is *claimed* when its operator is in `ipukit_onnx::supported_ops()`, its \
             graph inputs and outputs are tensors of types the IR has (f32, i64, i32, i16, u16, \
             i8, u8, bool), its opset is one the importer accepts (7 to 20) and every node of its \
             graph is a claimed operator (the `*_expanded` cases spell a function out in other \
             operators). Most of the suite's convolution, pooling and shape cases are opset 21 \
             or 22, whose changes to those operators only add element types (int4, float8, \
             bfloat16): every case whose operators were not otherwise redefined since opset 20 \
             is run with its opset declared as 20 (`lowered` counts the claimed ones). Claimed \
             cases must pass (95% at least); every other case must be refused with a clear \
             \"not supported\" error, never answered wrongly, and nothing may panic.\n\n\
             The IPU needs parameter tensors (weights, axes, starts, scales, split sizes, repeats, \
             ...) to be constants, as they are in exported models; the node tests feed them as \
             graph inputs. A case whose import fails for that reason is run again with every input but the first \
             baked into the model from its test data (then, if still refused, with every input \
             baked in); `frozen` counts the passes obtained so.\n\n",
        );
        s.push_str(&format!(
            "**{} of {} claimed cases pass ({:.1}%)**; {} fail, {} are refused as unsupported, {} \
             panic. Over all {} cases: {} passed, {} failed, {} unsupported ({:.1} s).\n\n",
            c.pass,
            c.cases,
            100.0 * self.pass_rate(),
            c.fail,
            c.unsupported,
            c.panic,
            self.total.cases,
            self.total.pass,
            self.total.fail + self.total.panic,
            self.total.unsupported,
            elapsed.as_secs_f64()
        ));
        s.push_str(&format!(
            "## Claimed operators ({})\n\n\
             `cases`: every case of the operator; `claimed`: those in scope, whose outcome follows \
             (`frozen`: passes with parameter inputs frozen; `lowered`: claimed cases run at opset \
             20); `types` (inputs or outputs of a type the IR does not have), `opset > 20` and \
             `other ops`: out of scope.\n\n",
            self.claimed.len()
        ));
        s.push_str("| operator | cases | claimed | pass | frozen | fail | unsupported | panic | lowered | types | opset > 20 | other ops |\n");
        s.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for op in self.claimed {
            let r = self.per_op.get(op).copied().unwrap_or_default();
            let c = r.claimed;
            s.push_str(&format!(
                "| {op} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                r.all,
                c.cases,
                c.pass,
                c.frozen,
                c.fail,
                c.unsupported,
                c.panic,
                r.lowered,
                r.types,
                r.newer_opset,
                r.other_ops
            ));
        }
        let notes: Vec<&CaseResult> = self
            .results
            .iter()
            .filter(|r| {
                r.scope.is_claimed() && !matches!(r.outcome, Outcome::Pass | Outcome::PassFrozen)
            })
            .collect();
        if !notes.is_empty() {
            s.push_str("\n## Claimed cases that do not pass\n\n");
            s.push_str("| case | operator | result |\n|---|---|---|\n");
            for r in notes {
                s.push_str(&format!(
                    "| {} | {} | {} |\n",
                    r.name,
                    r.op,
                    md_cell(&describe(&r.outcome))
                ));
            }
        }
        let bad: Vec<&CaseResult> = self
            .results
            .iter()
            .filter(|r| {
                matches!(r.outcome, Outcome::Panic(_))
                    || (!r.scope.is_claimed() && matches!(r.outcome, Outcome::Fail(_)))
            })
            .collect();
        if !bad.is_empty() {
            s.push_str(
                "\n## Outside the claimed set: wrong answers, unclear errors and panics\n\n",
            );
            s.push_str("| case | operator | scope | result |\n|---|---|---|---|\n");
            for r in bad {
                s.push_str(&format!(
                    "| {} | {} | {} | {} |\n",
                    r.name,
                    r.op,
                    md_cell(&scope_text(&r.scope)),
                    md_cell(&describe(&r.outcome))
                ));
            }
        }
        let others: Vec<(&String, &OpRow)> = self
            .per_op
            .iter()
            .filter(|(op, _)| !self.claimed.contains(*op))
            .collect();
        if !others.is_empty() {
            s.push_str(&format!(
                "\n## Operators not claimed ({})\n\n",
                others.len()
            ));
            s.push_str("| operator | cases | refused | pass | fail | panic |\n|---|---:|---:|---:|---:|---:|\n");
            for (op, r) in others {
                let o = r.other;
                s.push_str(&format!(
                    "| {op} | {} | {} | {} | {} | {} |\n",
                    o.cases, o.unsupported, o.pass, o.fail, o.panic
                ));
            }
        }
        s
    }
}

impl Scope {
    fn is_claimed(&self) -> bool {
        matches!(self, Scope::Claimed)
    }
}

fn scope_text(scope: &Scope) -> String {
    match scope {
        Scope::Claimed => "claimed".into(),
        Scope::Types(t) => format!("types {}", t.join(", ")),
        Scope::Opset(v) => format!("opset {v}"),
        Scope::OtherOps(ops) => format!("also uses {}", ops.join(", ")),
        Scope::NotClaimed => "not claimed".into(),
    }
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerance() {
        assert!(close(1.0, 1.0005));
        assert!(!close(1.0, 1.01));
        assert!(close(f64::NAN, f64::NAN));
        assert!(!close(f64::NAN, 0.0));
        assert!(close(f64::INFINITY, f64::INFINITY));
        assert!(!close(f64::INFINITY, f64::NEG_INFINITY));
        assert!(close(0.0, 5e-5));
    }

    #[test]
    fn op_of_expanded_cases() {
        let known: BTreeSet<String> = [
            "Softmax",
            "Sum",
            "Abs",
            "ReduceMax",
            "ReduceL1",
            "ReduceLogSum",
            "ReduceLogSumExp",
            "LayerNormalization",
            "SoftmaxCrossEntropyLoss",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let ops: Vec<String> = vec!["ReduceMax".into(), "Sub".into(), "Exp".into()];
        assert_eq!(
            case_op("test_softmax_axis_0_expanded", &ops, &known),
            "Softmax"
        );
        assert_eq!(case_op("test_abs", &["Abs".to_string()], &known), "Abs");
        assert_eq!(case_op("test_weird_expanded", &ops, &known), "ReduceMax");
        assert_eq!(
            case_op("test_reduce_l1_empty_set_expanded", &ops, &known),
            "ReduceL1"
        );
        assert_eq!(
            case_op(
                "test_reduce_log_sum_exp_default_axes_keepdims_example_expanded",
                &ops,
                &known
            ),
            "ReduceLogSumExp"
        );
        assert_eq!(
            case_op("test_reduce_log_sum_asc_axes_expanded", &ops, &known),
            "ReduceLogSum"
        );
        assert_eq!(
            case_op(
                "test_layer_normalization_2d_axis0_expanded_ver18",
                &ops,
                &known
            ),
            "LayerNormalization"
        );
        assert_eq!(
            case_op("test_sce_mean_expanded", &ops, &known),
            "SoftmaxCrossEntropyLoss"
        );
    }

    #[test]
    fn unsupported_wording() {
        assert!(matches!(
            classify_error("Op X is not supported".into()),
            Outcome::Unsupported(_)
        ));
        assert!(matches!(
            classify_error("ipukit only supports 4-D".into()),
            Outcome::Unsupported(_)
        ));
        assert!(matches!(
            classify_error("bad index".into()),
            Outcome::Fail(_)
        ));
    }
}
