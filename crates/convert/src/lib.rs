//! ConvertTool: turns a trained model and its `input_config.ini` into an ipukit float model
//! (`*_float.sim`).
//!
//! [`convert`] imports the model with the frontend for its platform, applies the input config
//! (boundary layouts, output cut, input order), checks it against the SoC profile, and returns
//! a [`FloatModel`]; [`FloatModel::write`] stores it atomically. The ini travels inside the
//! model, so the calibrator and simulator never need it again.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

use ipukit_config::{InputConfig, InputFormat, Layout};
use ipukit_ir::{DType, Graph};
use ipukit_simfmt::{SimMetadata, Stage};
use ipukit_soc::SocProfile;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Errors of the conversion step.
#[derive(Debug, Error)]
pub enum ConvertError {
    /// The ONNX importer failed.
    #[error(transparent)]
    Onnx(#[from] ipukit_onnx::OnnxError),
    /// The input config is invalid or does not match the model.
    #[error(transparent)]
    Config(#[from] ipukit_config::ConfigError),
    /// Unknown SoC or a model beyond its limits.
    #[error(transparent)]
    Soc(#[from] ipukit_soc::SocError),
    /// Writing the .sim failed.
    #[error(transparent)]
    Sim(#[from] ipukit_simfmt::SimError),
    /// A source platform ipukit cannot read yet.
    #[error("platform '{0}' is not supported yet; ipukit converts onnx models today")]
    Platform(String),
    /// Bad `--input_shapes` text.
    #[error("--input_shapes '{text}': {reason} (expected e.g. 1,3,224,224 or 1,3,224,224:1,10)")]
    InputShapes {
        /// The argument.
        text: String,
        /// What is wrong.
        reason: String,
    },
    /// The model and the config disagree about an input.
    #[error("{0}")]
    Mismatch(String),
    /// Reading the model file for its checksum failed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
}

/// Result alias.
pub type Result<T> = std::result::Result<T, ConvertError>;

/// Source framework of a model (ConvertTool's first argument).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    /// ONNX `.onnx`.
    Onnx,
    /// Caffe `.prototxt` + `.caffemodel`.
    Caffe,
    /// TFLite `.tflite`.
    Tflite,
}

impl std::str::FromStr for Platform {
    type Err = ConvertError;
    fn from_str(s: &str) -> Result<Platform> {
        match s.to_ascii_lowercase().as_str() {
            "onnx" => Ok(Platform::Onnx),
            "caffe" => Ok(Platform::Caffe),
            "tflite" => Ok(Platform::Tflite),
            other => Err(ConvertError::Platform(other.to_string())),
        }
    }
}

/// What to convert.
#[derive(Debug, Clone)]
pub struct ConvertOptions {
    /// Source framework.
    pub platform: Platform,
    /// `--model_file`.
    pub model_file: PathBuf,
    /// `--weight_file` (Caffe).
    pub weight_file: Option<PathBuf>,
    /// `--input_config`.
    pub input_config: PathBuf,
    /// `--soc_version`.
    pub soc_version: String,
    /// `--input_shapes`, parsed with [`parse_input_shapes`].
    pub input_shapes: Option<Vec<Vec<usize>>>,
    /// `--skip_simplify`.
    pub skip_simplify: bool,
}

/// A converted float model with everything needed to write it.
#[derive(Debug, Clone)]
pub struct FloatModel {
    /// The NHWC float graph; inputs in the ini's order.
    pub graph: Graph,
    /// The parsed input config.
    pub config: InputConfig,
    /// The SoC profile it was checked against.
    pub soc: &'static SocProfile,
    /// Metadata stored with it.
    pub meta: SimMetadata,
}

impl FloatModel {
    /// Writes the float.sim atomically.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<()> {
        ipukit_simfmt::write_sim_file(path, &self.graph, &self.meta)?;
        Ok(())
    }
}

/// Parses `--input_shapes`: dimensions separated by `,`, inputs by `:`.
pub fn parse_input_shapes(text: &str) -> Result<Vec<Vec<usize>>> {
    let bad = |reason: String| ConvertError::InputShapes {
        text: text.to_string(),
        reason,
    };
    text.split(':')
        .map(|shape| {
            shape
                .split(',')
                .map(|d| {
                    let d = d.trim();
                    match d.parse::<usize>() {
                        Ok(v) if v > 0 => Ok(v),
                        _ => Err(bad(format!("'{d}' is not a positive dimension"))),
                    }
                })
                .collect()
        })
        .collect()
}

/// SHA-256 of the model file(s), lowercase hex.
fn source_digest(files: &[&Path]) -> Result<String> {
    let mut h = Sha256::new();
    for f in files {
        let bytes = std::fs::read(f).map_err(|source| ConvertError::Io {
            path: f.display().to_string(),
            source,
        })?;
        h.update(&bytes);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

fn to_onnx_layout(l: Layout) -> ipukit_onnx::Layout {
    match l {
        Layout::Nchw => ipukit_onnx::Layout::Nchw,
        Layout::Nhwc => ipukit_onnx::Layout::Nhwc,
    }
}

/// Converts a model into a float model (nothing is written).
pub fn convert(opts: &ConvertOptions) -> Result<FloatModel> {
    let soc = ipukit_soc::profile(&opts.soc_version)?;
    let config = InputConfig::from_file(
        &opts.input_config,
        (soc.image_width_alignment, soc.image_height_alignment),
    )?;
    let mut graph = match opts.platform {
        Platform::Onnx => {
            let import = ipukit_onnx::ImportOptions {
                input_shapes: opts.input_shapes.clone(),
                skip_simplify: opts.skip_simplify,
                input_layouts: config
                    .inputs
                    .iter()
                    .filter_map(|i| Some((i.name.clone(), to_onnx_layout(i.layout?))))
                    .collect(),
                output_layouts: config
                    .outputs
                    .iter()
                    .filter_map(|o| Some((o.name.clone(), to_onnx_layout(o.layout?))))
                    .collect(),
                keep_onnx_layout: false,
                outputs: Some(config.outputs.iter().map(|o| o.name.clone()).collect()),
            };
            ipukit_onnx::import_file(&opts.model_file, &import)?
        }
        Platform::Caffe => return Err(ConvertError::Platform("caffe".into())),
        Platform::Tflite => return Err(ConvertError::Platform("tflite".into())),
    };
    apply_config(&mut graph, &config)?;
    soc.check_graph(&graph)?;
    let mut files: Vec<&Path> = vec![&opts.model_file];
    if let Some(w) = &opts.weight_file {
        files.push(w);
    }
    let mut meta = SimMetadata::new(Stage::Float, concat!("ipukit ", env!("CARGO_PKG_VERSION")));
    meta.source_sha256 = Some(source_digest(&files)?);
    meta.input_config = Some(config.to_json());
    Ok(FloatModel {
        graph,
        config,
        soc,
        meta,
    })
}

/// Checks the config against the graph, orders the graph inputs as the ini lists them, and
/// checks that image formats fit the input tensors.
pub fn apply_config(graph: &mut Graph, config: &InputConfig) -> Result<()> {
    let inputs: Vec<(String, usize)> = graph
        .inputs
        .iter()
        .map(|&i| (graph.tensor(i).name.clone(), graph.tensor(i).shape.len()))
        .collect();
    let in_refs: Vec<(&str, usize)> = inputs.iter().map(|(n, r)| (n.as_str(), *r)).collect();
    let outputs: Vec<String> = graph
        .outputs
        .iter()
        .map(|&o| graph.tensor(o).name.clone())
        .collect();
    let out_refs: Vec<&str> = outputs.iter().map(String::as_str).collect();
    config.check_against_model(&in_refs, &out_refs)?;

    let by_name: HashMap<&str, _> = graph
        .inputs
        .iter()
        .map(|&i| (graph.tensor(i).name.as_str(), i))
        .collect();
    let ordered: Vec<_> = config
        .inputs
        .iter()
        .filter_map(|s| by_name.get(s.name.as_str()).copied())
        .collect();
    graph.inputs = ordered;

    for spec in &config.inputs {
        let Some(id) = graph.find_tensor(&spec.name) else {
            continue;
        };
        let t = graph.tensor(id);
        let Some(channels) = spec.training_format.channels() else {
            continue;
        };
        if t.dtype != DType::F32 {
            return Err(ConvertError::Mismatch(format!(
                "input \"{}\" is {} but `training_input_formats` {} needs a FLOAT32 image input; use a RAWDATA format for non-image inputs",
                spec.name,
                t.dtype,
                spec.training_format.as_str()
            )));
        }
        let axis = if spec.layout == Some(Layout::Nchw) {
            1
        } else {
            t.shape.len().saturating_sub(1)
        };
        if t.shape.len() != 4 || t.shape[axis] != channels {
            return Err(ConvertError::Mismatch(format!(
                "input \"{}\" has shape {:?} ({}), but `training_input_formats` {} needs a 4-D image with {channels} channel(s); check `inputs`, `training_input_formats` and `input_layouts`",
                spec.name,
                t.shape,
                if spec.layout == Some(Layout::Nchw) { "NCHW" } else { "NHWC" },
                spec.training_format.as_str()
            )));
        }
        if spec.input_format == InputFormat::YuvNv12
            && (!t.shape[1].is_multiple_of(2) || !t.shape[2].is_multiple_of(2))
        {
            return Err(ConvertError::Mismatch(format!(
                "input \"{}\" is YUV_NV12, which needs an even height and width; the model has {:?}",
                spec.name, t.shape
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_shapes_parse_and_reject_garbage() {
        assert_eq!(
            parse_input_shapes("1,3,224,224:1,10").unwrap(),
            vec![vec![1, 3, 224, 224], vec![1, 10]]
        );
        let e = parse_input_shapes("1,3,x,224").unwrap_err().to_string();
        assert!(e.contains("'x' is not a positive dimension"), "{e}");
        assert!(parse_input_shapes("1,0").is_err());
    }

    #[test]
    fn platforms_parse() {
        assert_eq!("ONNX".parse::<Platform>().unwrap(), Platform::Onnx);
        assert!("tensorflow_graphdef".parse::<Platform>().is_err());
    }
}
