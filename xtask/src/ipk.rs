//! ipukit's side of the end-to-end runs: convert a fixture with the library, run it.

use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use ipukit_runtime::{Session, SessionOptions, Value};

use crate::models::Fixture;
use crate::npy;
use crate::util;

/// The SoC profile the fixtures are converted for (no hardware limits).
pub const SOC: &str = "generic";

/// Converts a fixture's ONNX model as `ipu-convert onnx --model_file M --input_config
/// input_config.ini --input_shapes S --soc_version generic` does (the ConvertTool library),
/// writes the float.sim to `sim_path`, and reads it back: what runs is what the file holds.
pub fn convert(f: &Fixture, sim_path: &Path) -> Result<ipukit_ir::Graph> {
    let onnx = f.onnx_path()?;
    let opts = ipukit_convert::ConvertOptions {
        platform: ipukit_convert::Platform::Onnx,
        model_file: onnx.clone(),
        weight_file: None,
        input_config: f.dir.join("input_config.ini"),
        soc_version: SOC.to_string(),
        input_shapes: Some(f.input_shapes()?),
        skip_simplify: false,
    };
    let model = catch(|| ipukit_convert::convert(&opts))?
        .map_err(|e| anyhow!("converting {}: {e}", util::rel(&onnx)))?;
    catch(|| model.write(sim_path))?
        .map_err(|e| anyhow!("writing {}: {e}", util::rel(sim_path)))?;
    let (back, _) = catch(|| ipukit_simfmt::read_sim_file(sim_path))?
        .map_err(|e| anyhow!("reading back {}: {e}", util::rel(sim_path)))?;
    Ok(back)
}

/// A session on a graph.
pub fn session(graph: ipukit_ir::Graph, threads: usize) -> Result<Session> {
    #[allow(clippy::needless_update)] // future options keep their defaults
    let options = SessionOptions {
        threads: Some(threads),
        ..Default::default()
    };
    catch(|| Session::new(graph, options))?.map_err(|e| anyhow!("cannot create a session: {e}"))
}

/// Reads `.npy` inputs as values.
pub fn read_inputs(paths: &[&Path]) -> Result<Vec<Value>> {
    paths
        .iter()
        .map(|p| {
            let (shape, data) = npy::read(p)?;
            Ok(Value { shape, data })
        })
        .collect()
}

/// Runs a session.
pub fn run(session: &mut Session, inputs: Vec<Value>) -> Result<Vec<Value>> {
    catch(|| session.run(inputs))?.map_err(|e| anyhow!("inference failed: {e}"))
}

/// Writes outputs as ort_run.py does: `<i>_<name>.npy` and `outputs.json`.
pub fn write_outputs(dir: &Path, names: &[String], values: &[Value]) -> Result<()> {
    if names.len() != values.len() {
        bail!(
            "the model gave {} output(s), model.toml lists {}",
            values.len(),
            names.len()
        );
    }
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut listing = vec![];
    for (i, (n, v)) in names.iter().zip(values).enumerate() {
        let file = format!("{i}_{}.npy", sanitize(n));
        npy::write(&dir.join(&file), &v.shape, &v.data)?;
        listing.push(serde_json::json!({
            "name": n, "file": file, "shape": v.shape, "dtype": v.data.dtype().to_string(),
        }));
    }
    util::write_atomic(
        &dir.join("outputs.json"),
        serde_json::to_string_pretty(&listing)?.as_bytes(),
    )
}

/// A tensor name as a file name (as xtask/py/common.py's sanitize).
pub fn sanitize(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() {
        "unnamed".into()
    } else {
        s
    }
}

/// Runs `f`, turning a panic into an error (a panic is a bug to report, not a crash of xtask).
pub fn catch<T>(f: impl FnOnce() -> T) -> Result<T> {
    panic::catch_unwind(AssertUnwindSafe(f)).map_err(|p| {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "(no message)".into());
        anyhow!("PANIC: {msg}")
    })
}
