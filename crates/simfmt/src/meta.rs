//! ipukit's metadata stored in `Model.metadata`.

use std::collections::BTreeMap;
use std::fmt;

/// Which stage of the pipeline produced the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// A float model (`*_float.sim`), written by the converter.
    Float,
    /// A fixed-point model (`*_fixed.sim`), written by the calibrator.
    Fixed,
}

impl Stage {
    /// The text stored in the file: `float` or `fixed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Float => "float",
            Stage::Fixed => "fixed",
        }
    }

    /// Inverse of [`Stage::as_str`].
    pub fn parse(s: &str) -> Option<Stage> {
        match s {
            "float" => Some(Stage::Float),
            "fixed" => Some(Stage::Fixed),
            _ => None,
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// ipukit's own data in a `.sim` file, stored in `Model.metadata` entries named `ipukit_*`.
///
/// | field | metadata name | content |
/// |---|---|---|
/// | `stage` | `ipukit_stage` | `float` or `fixed` (UTF-8) |
/// | `producer` | `ipukit_producer` | UTF-8, e.g. `ipu-convert 0.1.0` |
/// | `source_sha256` | `ipukit_source_sha256` | UTF-8 hex digest, if known |
/// | `input_config` | `ipukit_input_config` | JSON text, opaque to this crate |
/// | `extra[k]` | `ipukit_extra_<k>` | raw bytes |
///
/// The writer also stores `ipukit_graph` (node names and IR attributes TFLite cannot express);
/// it is internal to this crate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimMetadata {
    /// Float or fixed model.
    pub stage: Stage,
    /// The tool (and version) that wrote the file.
    pub producer: String,
    /// SHA-256 (lowercase hex) of the source model the file was made from.
    pub source_sha256: Option<String>,
    /// The input configuration (`input_config.ini` as JSON), opaque here.
    pub input_config: Option<String>,
    /// Further named blobs (calibration statistics, …). Keys must be non-empty and made of
    /// ASCII letters, digits, `_`, `-` and `.`.
    pub extra: BTreeMap<String, Vec<u8>>,
}

impl SimMetadata {
    /// Metadata with the given stage and producer and nothing else.
    pub fn new(stage: Stage, producer: impl Into<String>) -> SimMetadata {
        SimMetadata {
            stage,
            producer: producer.into(),
            source_sha256: None,
            input_config: None,
            extra: BTreeMap::new(),
        }
    }
}

pub(crate) const STAGE: &str = "ipukit_stage";
pub(crate) const PRODUCER: &str = "ipukit_producer";
pub(crate) const SOURCE_SHA256: &str = "ipukit_source_sha256";
pub(crate) const INPUT_CONFIG: &str = "ipukit_input_config";
pub(crate) const GRAPH: &str = "ipukit_graph";
pub(crate) const EXTRA_PREFIX: &str = "ipukit_extra_";

/// True if `key` may be used in [`SimMetadata::extra`].
pub(crate) fn valid_extra_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}
