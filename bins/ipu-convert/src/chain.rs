//! The SGS_converter chain: with `-i` and `-n`, conversion continues through calibration.

use anyhow::{bail, Result};
use std::path::{Path, PathBuf};

/// Where the intermediate float model goes: `<stem>_float.sim` next to the output when it is
/// exported, a hidden temporary name otherwise.
pub fn float_path(output: &Path, export: bool) -> Result<PathBuf> {
    let ext = output.extension().and_then(|e| e.to_str()).unwrap_or("");
    if ext.eq_ignore_ascii_case("img") {
        bail!(
            "--output_file {}: offline images need ipu-compiler, which ipukit does not have yet; write a fixed model (--output_file X_fixed.sim) and keep it for the compiler",
            output.display()
        );
    }
    let stem = output
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    let base = stem.strip_suffix("_fixed").unwrap_or(&stem);
    let name = if export {
        format!("{base}_float.sim")
    } else {
        format!(".{base}.{}.float.sim.tmp", std::process::id())
    };
    Ok(output.with_file_name(name))
}
