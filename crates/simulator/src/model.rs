//! Opening a model file of any stage and the backend behind the session API.

use crate::batch::BatchSizes;
use crate::error::{Result, SimError};
use ipukit_config::InputConfig;
use ipukit_ir::Graph;
use ipukit_runtime::{Session, SessionOptions, TensorDetails, TensorInfo, Value};
use ipukit_simfmt::{FileKind, Stage as SimStage};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Which pipeline stage a model file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// `*_float.sim`: takes normalised float inputs (`norm=True`).
    Float,
    /// `*_fixed.sim`: takes what the board takes (`norm=False`).
    Fixed,
    /// Offline image (`*.img`).
    Offline,
}

impl Stage {
    /// Whether preprocessing scripts are called with `norm=True`.
    pub fn norm(self) -> bool {
        self == Stage::Float
    }

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Float => "float",
            Stage::Fixed => "fixed",
            Stage::Offline => "offline",
        }
    }
}

/// The `calibrator_custom.simulator` interface, implemented by every stage's executor.
pub trait Backend: Send {
    /// Model inputs.
    fn input_details(&self) -> Vec<TensorInfo>;
    /// Model outputs.
    fn output_details(&self) -> Vec<TensorInfo>;
    /// Every tensor (not available for offline models).
    fn tensor_details(&self) -> Result<Vec<TensorDetails>>;
    /// Sets input `index`.
    fn set_input(&mut self, index: usize, value: Value) -> Result<()>;
    /// Runs the model once.
    fn invoke(&mut self) -> Result<()>;
    /// Output `index` of the last run.
    fn output(&self, index: usize) -> Result<Value>;
    /// An independent executor of the same model for another thread (`threads` intra-op).
    fn fork(&self, threads: usize) -> Result<Box<dyn Backend>>;
    /// The batch sizes it runs (dimension 0 of inputs and outputs); `.sim` models run 1.
    fn batch_sizes(&self) -> BatchSizes {
        BatchSizes::UpTo(1)
    }
}

/// A float or fixed graph run by the interpreter.
struct GraphBackend {
    graph: Arc<Graph>,
    session: Session,
}

impl GraphBackend {
    fn new(graph: Arc<Graph>, threads: Option<usize>) -> Result<GraphBackend> {
        let session = Session::new((*graph).clone(), SessionOptions { threads })?;
        Ok(GraphBackend { graph, session })
    }
}

impl Backend for GraphBackend {
    fn input_details(&self) -> Vec<TensorInfo> {
        self.session.input_details()
    }
    fn output_details(&self) -> Vec<TensorInfo> {
        self.session.output_details()
    }
    fn tensor_details(&self) -> Result<Vec<TensorDetails>> {
        Ok(self.session.tensor_details())
    }
    fn set_input(&mut self, index: usize, value: Value) -> Result<()> {
        Ok(self.session.set_input(index, value)?)
    }
    fn invoke(&mut self) -> Result<()> {
        Ok(self.session.invoke()?)
    }
    fn output(&self, index: usize) -> Result<Value> {
        Ok(self.session.output(index)?)
    }
    fn fork(&self, threads: usize) -> Result<Box<dyn Backend>> {
        Ok(Box::new(GraphBackend::new(
            self.graph.clone(),
            Some(threads),
        )?))
    }
}

/// A loaded model: its stage, stored input config and executor.
pub struct SimModel {
    /// The file it was loaded from.
    pub path: PathBuf,
    /// Float, fixed or offline.
    pub stage: Stage,
    /// The `input_config.ini` stored in the model by the converter, if any.
    pub config: Option<InputConfig>,
    backend: Box<dyn Backend>,
}

impl std::fmt::Debug for SimModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimModel")
            .field("path", &self.path)
            .field("stage", &self.stage)
            .finish()
    }
}

/// Options for opening a model.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// Intra-op threads (`None`: all cores).
    pub threads: Option<usize>,
}

impl SimModel {
    /// Opens a model file; the stage is read from the file, not from flags.
    pub fn open(path: impl AsRef<Path>, opts: &OpenOptions) -> Result<SimModel> {
        let path = path.as_ref().to_path_buf();
        if !path.is_file() {
            return Err(SimError::NoSuchModel(path));
        }
        let bytes = std::fs::read(&path).map_err(|source| SimError::Io {
            path: path.clone(),
            source,
        })?;
        let not = |why: &str| SimError::NotRecognized {
            path: path.clone(),
            why: why.to_string(),
        };
        if ipukit_offline_img::is_image(&bytes) {
            return crate::offline::open(path, &bytes, opts);
        }
        match ipukit_simfmt::sniff(&bytes) {
            FileKind::Sim => {}
            FileKind::Onnx => return Err(not("this is an ONNX model; convert it first with `ipu-convert onnx`")),
            FileKind::Tflite => {
                return Err(not("this is a TFLite file without ipukit metadata (a plain .tflite, or a .sim from another toolchain); ipukit cannot convert TFLite models yet, so convert the source model with `ipu-convert onnx`"))
            }
            _ => return Err(not("expected a *_float.sim, *_fixed.sim or offline .img file")),
        }
        let (graph, meta) =
            ipukit_simfmt::read_sim(&bytes).map_err(|e| SimError::Sim(e).in_file(&path))?;
        let stage = match meta.stage {
            SimStage::Float => Stage::Float,
            SimStage::Fixed => Stage::Fixed,
        };
        let config = meta
            .input_config
            .as_deref()
            .map(InputConfig::from_json)
            .transpose()
            .map_err(|source| SimError::Config {
                path: path.clone(),
                source,
            })?;
        let backend = Box::new(GraphBackend::new(Arc::new(graph), opts.threads)?);
        Ok(SimModel {
            path,
            stage,
            config,
            backend,
        })
    }

    /// Wraps an executor built elsewhere (for example an offline image loader).
    pub fn from_backend(
        path: PathBuf,
        stage: Stage,
        config: Option<InputConfig>,
        backend: Box<dyn Backend>,
    ) -> SimModel {
        SimModel {
            path,
            stage,
            config,
            backend,
        }
    }

    /// An independent copy for another thread.
    pub fn fork(&self, threads: usize) -> Result<SimModel> {
        Ok(SimModel {
            path: self.path.clone(),
            stage: self.stage,
            config: self.config.clone(),
            backend: self.backend.fork(threads)?,
        })
    }

    /// The batch sizes the model runs: 1 for `.sim` models, the compiled sizes for offline
    /// images.
    pub fn batch_sizes(&self) -> BatchSizes {
        self.backend.batch_sizes()
    }

    /// Model inputs (`get_input_details`).
    pub fn input_details(&self) -> Vec<TensorInfo> {
        self.backend.input_details()
    }

    /// Model outputs (`get_output_details`).
    pub fn output_details(&self) -> Vec<TensorInfo> {
        self.backend.output_details()
    }

    /// Every tensor (`get_tensor_details`); offline models cannot list them.
    pub fn tensor_details(&self) -> Result<Vec<TensorDetails>> {
        self.backend.tensor_details()
    }

    /// Sets input `index` (`set_input`), checking dtype and shape.
    pub fn set_input(&mut self, index: usize, value: Value) -> Result<()> {
        self.backend.set_input(index, value)
    }

    /// Runs the model (`invoke`).
    pub fn invoke(&mut self) -> Result<()> {
        self.backend.invoke()
    }

    /// Output `index` (`get_output`).
    pub fn output(&self, index: usize) -> Result<Value> {
        self.backend.output(index)
    }
}

impl SimError {
    /// Adds the file name to a .sim decoding error.
    fn in_file(self, path: &Path) -> SimError {
        match self {
            SimError::Sim(e) => SimError::NotRecognized {
                path: path.to_path_buf(),
                why: e.to_string(),
            },
            other => other,
        }
    }
}
