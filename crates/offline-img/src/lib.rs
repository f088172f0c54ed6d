//! ipukit's offline image (`*.img`): compile a fixed-point model into it, load it with every
//! header field checked, and run it bit-exactly like the fixed model.
//!
//! * [`compile`] / [`compile_file`] take a fixed graph (`*_fixed.sim`) and produce a
//!   [`Compiled`] image: the program of fused operators, a liveness-based memory plan (one
//!   arena, buffers reused when lifetimes do not overlap), the constants, and a header with
//!   the SoC profile, batch mode and one descriptor per input and output, each section
//!   protected by a CRC32. The [`Report`] lists per step the fused operator, precision, MACs,
//!   weight and arena bytes and the cycles the SoC profile's cost model estimates.
//! * [`OfflineModel::load`] checks an image (never panics: a damaged file is an [`ImgError`]
//!   with the seeds' messages, "Image Header Input 0 Width alignment check failed", …) and
//!   runs it with the runtime's integer kernels on an arena laid out as the memory plan says;
//!   the outputs are the integers `ipukit_runtime::Session` gives on the fixed model.
//!
//! The byte layout, the checks and the cost model are documented in `docs/offline-img.md`.
//!
//! ```no_run
//! use ipukit_offline_img::{compile_file, CompileOptions, OfflineModel};
//!
//! let compiled = compile_file("model_fixed.sim", &CompileOptions::default()).unwrap();
//! compiled.write("model_fixed.sim_sgsimg.img").unwrap();
//! println!("{}", compiled.report);
//! let model = OfflineModel::load("model_fixed.sim_sgsimg.img").unwrap();
//! # let _ = model;
//! ```

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod bytes;
mod codec;
mod compile;
mod error;
pub mod format;
mod fusion;
mod model;
mod program;
mod report;

pub use compile::{check_batch, compile, compile_file, write_atomic, CompileOptions, Compiled};
pub use error::{ImgError, Result};
pub use format::{BatchMode, Category, Header, Image, MemoryPlan, Metadata, TensorDesc};
pub use model::{LoadOptions, OfflineModel, StepTime};
pub use program::{Exec, Program};
pub use report::{LayerReport, Report};

/// Checks an image without preparing it to run (header, sections, CRCs, program, plan).
pub fn decode(bytes: &[u8]) -> Result<Image> {
    format::decode(bytes)
}

/// True when `bytes` start like an offline image (for file-type sniffing).
pub fn is_image(bytes: &[u8]) -> bool {
    bytes.starts_with(&format::MAGIC)
}

/// The seeds' default output path (`compiler.py -o`): `<model file name>_sgsimg.img` in
/// `output` when it is a folder, `output` itself when it names a file, and next to the
/// model when no output is given.
pub fn default_output(
    model: &std::path::Path,
    output: Option<&std::path::Path>,
) -> std::path::PathBuf {
    let name = format!(
        "{}_sgsimg.img",
        model
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into())
    );
    match output {
        Some(o) if o.is_dir() => o.join(name),
        Some(o) => o.to_path_buf(),
        None => model.with_file_name(name),
    }
}
