//! `input_config.ini` for ipukit.
//!
//! The seeds' tools describe a model's inputs and outputs in an ini file with three sections,
//! `[INPUT_CONFIG]`, `[OUTPUT_CONFIG]` and the optional `[CONV_CONFIG]`. This crate reads that
//! file with the seeds' dialect (`key=value;` lines whose value
//! ends at the first `;`), turns it into a typed [`InputConfig`], and applies every rule the
//! seeds state (counts, format pairs, mean/std shapes, RAWDATA ordering, alignments, layouts,
//! output formats), each failing with one line naming the file, the line, the key and the fix.
//!
//! ```
//! let ini = "[INPUT_CONFIG]\ninputs=images;\ninput_formats=BGR;\ntraining_input_formats=RGB;\n\
//!            mean=0;\nstd_value=255;\n[OUTPUT_CONFIG]\noutputs=output0;\ndequantizations=TRUE;\n";
//! let cfg = ipukit_config::InputConfig::parse(ini, "input_config.ini", (16, 2)).unwrap();
//! assert_eq!(cfg.inputs[0].std, vec![255.0; 3]);
//! assert_eq!(cfg.inputs[0].width_alignment, 16);
//! let json = cfg.to_json();
//! assert_eq!(ipukit_config::InputConfig::from_json(&json).unwrap(), cfg);
//! ```
//!
//! The parsed config is stored as JSON in the model file ([`InputConfig::to_json`]) so later
//! stages never need the ini again; [`InputConfig::check_against_model`] checks it against the
//! model's input and output names once the model is loaded.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod error;
pub(crate) mod ini;
mod rules;
pub mod types;

pub use error::{ConfigError, Result};
pub use rules::MAX_NAMES_LEN;
pub use types::{
    ConvConfig, ConvInputFormat, InputConfig, InputFormat, InputSpec, Layout, OutputFormat,
    OutputSpec,
};

use std::path::Path;

impl InputConfig {
    /// Reads and checks an `input_config.ini`.
    ///
    /// `image_alignment` is the (width, height) alignment of RGB/BGR/RGBA/BGRA inputs when the
    /// ini does not set `input_width_alignment` / `input_height_alignment`; it comes from the SoC
    /// profile. GRAY inputs default to 1, YUV_NV12 inputs to 2, RAWDATA inputs to 1.
    pub fn from_file(path: impl AsRef<Path>, image_alignment: (usize, usize)) -> Result<Self> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| ConfigError::Io {
            path: shown.clone(),
            source,
        })?;
        let text = std::str::from_utf8(&bytes).map_err(|e| ConfigError::NotUtf8 {
            path: shown.clone(),
            offset: e.valid_up_to(),
        })?;
        Self::parse(text, &shown, image_alignment)
    }

    /// Parses and checks ini text; `path` is only used in messages.
    pub fn parse(text: &str, path: &str, image_alignment: (usize, usize)) -> Result<Self> {
        let sections = ini::parse(text, path)?;
        rules::build(&sections, path, image_alignment)
    }

    /// The config as compact JSON, for storing inside a model file.
    pub fn to_json(&self) -> String {
        // Serializing plain structs of strings, numbers and enums cannot fail; fall back to an
        // empty object rather than panic.
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_string())
    }

    /// Reads the JSON written by [`InputConfig::to_json`].
    pub fn from_json(json: &str) -> Result<Self> {
        Ok(serde_json::from_str(json)?)
    }

    /// The input spec named `name`.
    pub fn input(&self, name: &str) -> Option<&InputSpec> {
        self.inputs.iter().find(|i| i.name == name)
    }

    /// The output spec named `name`.
    pub fn output(&self, name: &str) -> Option<&OutputSpec> {
        self.outputs.iter().find(|o| o.name == name)
    }

    /// Checks the config against the model it is applied to.
    ///
    /// `inputs` are the model's graph inputs with their rank, `outputs` the model's output
    /// names. Every ini name must exist in the model (`The model doesn't have input named
    /// "images1"`), the counts must match (the order may differ: RAWDATA inputs are moved to
    /// the end of `inputs`), and `input_layouts=NCHW` is only allowed for 4-D inputs.
    pub fn check_against_model(&self, inputs: &[(&str, usize)], outputs: &[&str]) -> Result<()> {
        let model = |message: String| ConfigError::Model { message };
        let model_inputs: Vec<&str> = inputs.iter().map(|(n, _)| *n).collect();
        for spec in &self.inputs {
            let Some(&(_, rank)) = inputs.iter().find(|(n, _)| *n == spec.name) else {
                let hint = rules_suggest(&spec.name, &model_inputs);
                return Err(model(format!(
                    "The model doesn't have input named \"{}\"{hint}; fix `inputs` in the input \
                     config (model inputs: {})",
                    spec.name,
                    model_inputs.join(", ")
                )));
            };
            if spec.layout == Some(Layout::Nchw) && rank != 4 {
                return Err(model(format!(
                    "`input_layouts` is NCHW for input \"{}\", which has {rank} dimensions: NCHW \
                     applies only to 4-D inputs; write NHWC as a placeholder",
                    spec.name
                )));
            }
        }
        if self.inputs.len() != inputs.len() {
            let missing: Vec<&str> = model_inputs
                .iter()
                .copied()
                .filter(|n| self.input(n).is_none())
                .collect();
            return Err(model(format!(
                "the input config lists {} input(s) but the model has {} ({}); add the missing \
                 input(s) to `inputs`: {}",
                self.inputs.len(),
                inputs.len(),
                model_inputs.join(", "),
                missing.join(", ")
            )));
        }
        for spec in &self.outputs {
            if !outputs.contains(&spec.name.as_str()) {
                let hint = rules_suggest(&spec.name, outputs);
                return Err(model(format!(
                    "The model doesn't have output named \"{}\"{hint}; fix `outputs` in the input \
                     config (model outputs: {})",
                    spec.name,
                    outputs.join(", ")
                )));
            }
        }
        if self.outputs.len() != outputs.len() {
            let missing: Vec<&str> = outputs
                .iter()
                .copied()
                .filter(|n| self.output(n).is_none())
                .collect();
            return Err(model(format!(
                "the input config lists {} output(s) but the model has {} ({}); add the missing \
                 output(s) to `outputs`: {}",
                self.outputs.len(),
                outputs.len(),
                outputs.join(", "),
                missing.join(", ")
            )));
        }
        Ok(())
    }
}

fn rules_suggest(name: &str, candidates: &[&str]) -> String {
    rules::suggest(name, candidates.iter().copied())
        .map(|s| format!(" (did you mean \"{s}\"?)"))
        .unwrap_or_default()
}
