//! Preprocessing for ipukit: the `-n` and `-i` arguments of the tools.
//!
//! `-n` names one preprocessing method per model input ([`split_methods`] splits the
//! argument; [`Preprocessor::from_arg`] builds each). Three kinds:
//!
//! * **Python scripts** (`-n preprocess.py`): the user's `image_preprocess(path, norm)` runs
//!   under `python3` exactly as the seeds' tools run it, in persistent worker processes
//!   ([`python`]).
//! * **The built-in pipeline** (`-n pipeline.toml` or an inline spec such as
//!   `-n "letterbox=640x640,fill=114,rgb"`): decode, resize (OpenCV- or PIL-exact), letterbox,
//!   centre crop, colour order, normalisation and layout in Rust, no Python ([`pipeline`]).
//! * **Raw tensors** (`-n raw`): `.npy` or `.bin` files for `RAWDATA_*` inputs ([`raw`]).
//!
//! `norm=true` produces what the float model takes (float32, `(x - mean) / std`); `norm=false`
//! what fixed and offline models take (uint8 images; they normalise inside).
//!
//! `-i` is expanded by [`collect_inputs`]: one image, a directory of images, or a list file
//! with one line of comma-separated paths per inference.
//!
//! ```no_run
//! use ipukit_preprocess::{collect_inputs, split_methods, InputContext, Preprocessor};
//! # fn main() -> Result<(), ipukit_preprocess::PreprocessError> {
//! let methods = split_methods("letterbox=640x640,fill=114,rgb", 1)?;
//! let pre = Preprocessor::from_arg(&methods[0])?;
//! let ctx = InputContext { shape: Some(vec![1, 640, 640, 3]), ..InputContext::default() };
//! for row in collect_inputs("images/".as_ref(), 1)? {
//!     let sample = pre.run(&row[0], true, &ctx)?;
//!     let (shape, data) = sample.into_parts();
//! #   let _ = (shape, data);
//! }
//! # Ok(()) }
//! ```

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod error;
pub mod image;
pub mod inputs;
pub mod npy;
pub mod pipeline;
pub mod python;
pub mod raw;
pub mod sample;

pub use error::{PreprocessError, Result};
pub use inputs::{collect_inputs, split_methods};
pub use pipeline::Pipeline;
pub use python::PythonScript;
pub use sample::Sample;

use ipukit_config::{InputFormat, InputSpec, Layout};
use ipukit_ir::DType;
use std::path::Path;

/// What a preprocessing method needs to know about the model input it feeds.
#[derive(Debug, Clone, PartialEq)]
pub struct InputContext {
    /// Input name (for messages).
    pub name: String,
    /// The model input's shape including the batch axis, in `layout`, when known. The
    /// built-in pipeline takes omitted sizes from it and checks its output against it; `.bin`
    /// raw inputs are read in this shape.
    pub shape: Option<Vec<usize>>,
    /// Layout of `shape` and of the produced tensor (the ini's `input_layouts`, NHWC default).
    pub layout: Layout,
    /// The training format (`training_input_formats`): chooses RGB / BGR / GRAY output for the
    /// pipeline and the element type of `.bin` raw data.
    pub format: Option<InputFormat>,
    /// Mean per channel in RGB order, as in the ini (empty: 0).
    pub mean: Vec<f32>,
    /// Std per channel in RGB order (empty: 1).
    pub std: Vec<f32>,
    /// Element type of `.bin` raw data when it is not the RAWDATA format's own (for instance
    /// the float model's input type when `norm` is true).
    pub raw_dtype: Option<DType>,
}

impl Default for InputContext {
    fn default() -> Self {
        InputContext {
            name: String::new(),
            shape: None,
            layout: Layout::Nhwc,
            format: None,
            mean: Vec::new(),
            std: Vec::new(),
            raw_dtype: None,
        }
    }
}

impl InputContext {
    /// The context of one `[INPUT_CONFIG]` input with the model's shape for it.
    pub fn from_spec(spec: &InputSpec, shape: Option<Vec<usize>>) -> InputContext {
        InputContext {
            name: spec.name.clone(),
            shape,
            layout: spec.layout_or_default(),
            format: Some(spec.training_format),
            mean: spec.mean.clone(),
            std: spec.std.clone(),
            raw_dtype: None,
        }
    }

    /// (height, width) of a 4-D `shape` in `layout`.
    pub fn hw(&self) -> Option<(usize, usize)> {
        match (self.shape.as_deref(), self.layout) {
            (Some([_, h, w, _]), Layout::Nhwc) | (Some([_, _, h, w]), Layout::Nchw) => {
                Some((*h, *w))
            }
            _ => None,
        }
    }
}

/// One preprocessing method (one entry of `-n`). `Send + Sync`: share one between threads.
#[derive(Debug)]
pub enum Preprocessor {
    /// A Python script with `image_preprocess(path, norm)`.
    Python(PythonScript),
    /// The built-in pipeline.
    Pipeline(Pipeline),
    /// Raw `.npy` / `.bin` tensors.
    Raw,
}

impl Preprocessor {
    /// Builds the method named by one `-n` entry:
    ///
    /// * `*.py` → a Python script (started at once, so load errors surface here);
    /// * `*.toml` → a built-in pipeline file;
    /// * `raw` (or `npy`, `bin`) → raw tensors;
    /// * anything else → an inline built-in pipeline spec.
    pub fn from_arg(arg: &str) -> Result<Preprocessor> {
        let arg = arg.trim();
        let lower = arg.to_ascii_lowercase();
        let method_err = |message: String| PreprocessError::Method {
            arg: arg.to_string(),
            message,
        };
        if lower.ends_with(".py") {
            return Ok(Preprocessor::Python(PythonScript::new(Path::new(arg))?));
        }
        if lower.ends_with(".toml") {
            let path = Path::new(arg);
            if !path.is_file() {
                return Err(method_err("no such pipeline file".to_string()));
            }
            return Ok(Preprocessor::Pipeline(Pipeline::from_toml_file(path)?));
        }
        if matches!(lower.as_str(), "raw" | "npy" | "bin") {
            return Ok(Preprocessor::Raw);
        }
        if arg.is_empty() {
            return Err(method_err(
                "empty preprocessing method; give a .py script, a .toml pipeline, an inline pipeline or `raw`".to_string(),
            ));
        }
        let path = Path::new(arg);
        if inputs::is_input_file(path) || (path.extension().is_some() && !arg.contains('=')) {
            return Err(method_err(format!(
                "not a preprocessing method: give a .py script with image_preprocess(image_file, norm), \
                 a .toml pipeline, an inline pipeline such as `letterbox=640x640,rgb`, or `raw` for \
                 .npy/.bin inputs{}",
                if path.exists() { "" } else { " (and the file does not exist)" }
            )));
        }
        Ok(Preprocessor::Pipeline(Pipeline::parse_inline(arg)?))
    }

    /// Builds one method per model input from a whole `-n` argument.
    pub fn from_args(arg: &str, n_inputs: usize) -> Result<Vec<Preprocessor>> {
        split_methods(arg, n_inputs)?
            .iter()
            .map(|m| Preprocessor::from_arg(m))
            .collect()
    }

    /// Preprocesses one input file.
    pub fn run(&self, path: &Path, norm: bool, ctx: &InputContext) -> Result<Sample> {
        match self {
            Preprocessor::Python(p) => p.run(path, norm),
            Preprocessor::Pipeline(p) => p.run(path, norm, ctx),
            Preprocessor::Raw => raw::load(path, ctx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn preprocessor_is_send_sync() {
        assert_send_sync::<Preprocessor>();
        assert_send_sync::<Sample>();
    }

    #[test]
    fn dispatch() {
        assert!(matches!(
            Preprocessor::from_arg("raw").unwrap(),
            Preprocessor::Raw
        ));
        assert!(matches!(
            Preprocessor::from_arg("letterbox=640x640,rgb").unwrap(),
            Preprocessor::Pipeline(_)
        ));
        let e = Preprocessor::from_arg("data.npy").unwrap_err().to_string();
        assert!(
            e.starts_with("-n data.npy: not a preprocessing method"),
            "{e}"
        );
        let e = Preprocessor::from_arg("missing.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no such pipeline file"), "{e}");
        let e = Preprocessor::from_arg("missing.py")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "preprocess script missing.py: no such file");
    }
}
