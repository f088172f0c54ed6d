//! Running xtask's Python scripts (xtask/py/*.py) in the venv.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Result};

use crate::util::{self, rel};

/// The venv's interpreter, or an error telling how to make it.
pub fn venv() -> Result<PathBuf> {
    let py = util::venv_python();
    if !py.exists() {
        bail!("{} does not exist: run `cargo xtask venv` first", rel(&py));
    }
    Ok(py)
}

/// A command running `xtask/py/<script>` with the venv's Python.
pub fn script(python: &Path, script: &str) -> Command {
    let mut cmd = Command::new(python);
    cmd.arg(util::repo_root().join("xtask/py").join(script))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .current_dir(util::repo_root());
    cmd
}

/// Runs a script; on failure the error holds the end of its output.
pub fn run(mut cmd: Command) -> Result<String> {
    let (ok, out, err) = util::run_capture(&mut cmd)?;
    if !ok {
        let mut tail: Vec<&str> = out.lines().chain(err.lines()).collect();
        let n = tail.len();
        tail.drain(..n.saturating_sub(12));
        bail!(
            "`{}` failed:\n    {}",
            util::show(&cmd),
            tail.join("\n    ")
        );
    }
    Ok(out)
}
