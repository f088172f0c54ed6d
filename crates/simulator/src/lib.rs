//! The ipukit simulator: the seeds' `simulator.py` and `calibrator_custom.simulator`.
//!
//! [`SimModel::open`] loads a float.sim, fixed.sim or offline image (the stage comes from the
//! file) behind one session API (`input_details`, `set_input`, `invoke`, `output`, …).
//! [`run_dataset`] runs it over the inputs of `-i` (one image, a folder or a list file) with the
//! preprocessing methods of `-n`, several inputs at a time, and writes the results under
//! `./log/output/`: the top-5 for classification, every output tensor as text otherwise, and
//! `.npy` files on request. Results never depend on the number of workers. An offline image
//! compiled for batches runs consecutive inputs as one batch ([`BatchSizes`]); each input's
//! results are the same as when it runs alone.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod batch;
mod dataset;
mod error;
mod model;
mod offline;
pub mod results;

pub use batch::BatchSizes;
pub use dataset::{input_contexts, run_dataset, run_item, ItemResult, RunOptions, RunSummary};
pub use error::{Result, SimError};
pub use model::{Backend, OpenOptions, SimModel, Stage};
pub use results::Category;
