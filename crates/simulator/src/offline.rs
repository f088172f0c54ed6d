//! Offline images (`.img`) behind the simulator's [`Backend`].

use crate::batch::BatchSizes;
use crate::error::{Result, SimError};
use crate::model::{Backend, OpenOptions, SimModel, Stage};
use ipukit_offline_img::{ImgError, LoadOptions, OfflineModel};
use ipukit_runtime::{TensorDetails, TensorInfo, Value};
use std::path::PathBuf;

/// An offline image run by [`OfflineModel`].
struct OfflineBackend {
    path: PathBuf,
    model: OfflineModel,
}

impl OfflineBackend {
    fn err(&self, source: ImgError) -> SimError {
        SimError::Offline {
            path: self.path.clone(),
            source,
        }
    }
}

impl Backend for OfflineBackend {
    fn input_details(&self) -> Vec<TensorInfo> {
        self.model.input_details()
    }
    fn output_details(&self) -> Vec<TensorInfo> {
        self.model.output_details()
    }
    fn tensor_details(&self) -> Result<Vec<TensorDetails>> {
        Err(SimError::Usage(format!(
            "{}: an offline image keeps only its inputs and outputs; get_tensor_details needs the fixed.sim it was compiled from",
            self.path.display()
        )))
    }
    fn set_input(&mut self, index: usize, value: Value) -> Result<()> {
        self.model.set_input(index, value).map_err(|e| self.err(e))
    }
    fn invoke(&mut self) -> Result<()> {
        self.model.invoke().map_err(|e| self.err(e))
    }
    fn output(&self, index: usize) -> Result<Value> {
        self.model.output(index).map_err(|e| self.err(e))
    }
    fn fork(&self, threads: usize) -> Result<Box<dyn Backend>> {
        Ok(Box::new(OfflineBackend {
            path: self.path.clone(),
            model: self.model.fork(threads).map_err(|e| self.err(e))?,
        }))
    }
    fn batch_sizes(&self) -> BatchSizes {
        BatchSizes::of_image(&self.model)
    }
}

/// Loads the offline image `bytes` read from `path`.
pub(crate) fn open(path: PathBuf, bytes: &[u8], opts: &OpenOptions) -> Result<SimModel> {
    let err = |source| SimError::Offline {
        path: path.clone(),
        source,
    };
    let load = LoadOptions {
        threads: opts.threads,
    };
    let model = OfflineModel::from_bytes(bytes, &load).map_err(err)?;
    let config = model.input_config().map_err(err)?;
    let backend = Box::new(OfflineBackend {
        path: path.clone(),
        model,
    });
    Ok(SimModel::from_backend(
        path,
        Stage::Offline,
        config,
        backend,
    ))
}
