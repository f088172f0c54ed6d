//! `cargo xtask venv`: the Python venv holding the reference runtimes.
//!
//! `.cache/venv` is created with `python3 -m venv` and filled from `xtask/py/requirements.txt`
//! (every version pinned). A stamp file records the sha256 of the requirements and the
//! interpreter's version; while it matches, the command does nothing.

use std::fs;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::util::{self, rel};

const STAMP: &str = "ipukit-requirements.sha256";
const CHECK: &str = "import numpy, onnxruntime, onnx, cv2, PIL, ai_edge_litert; \
print('numpy', numpy.__version__, '| onnxruntime', onnxruntime.__version__, '| onnx', onnx.__version__, \
'| opencv', cv2.__version__, '| pillow', PIL.__version__)";

/// Creates or refreshes `.cache/venv`.
pub fn run(force: bool) -> Result<()> {
    let start = Instant::now();
    let root = util::repo_root();
    let req_path = root.join("xtask/py/requirements.txt");
    let req = fs::read(&req_path).with_context(|| format!("cannot read {}", rel(&req_path)))?;
    let host = util::host_python();
    let (ok, version, err) = util::run_capture(Command::new(&host).args([
        "-c",
        "import platform,sys; print(platform.python_implementation(), platform.python_version())",
    ]))
    .with_context(|| format!("no Python interpreter `{host}` (set IPUKIT_PYTHON to one)"))?;
    if !ok {
        bail!("`{host}` does not run: {}", err.trim());
    }
    let version = version.trim().to_string();
    if !version.starts_with("CPython 3.11") {
        println!(
            "venv: warning: {host} is {version}; the pins in {} are for CPython 3.11",
            rel(&req_path)
        );
    }
    let mut stamp_input = req.clone();
    stamp_input.extend_from_slice(version.as_bytes());
    let want = util::sha256_hex(&stamp_input);

    let venv = util::cache_dir().join("venv");
    let py = util::venv_python();
    let stamp = venv.join(STAMP);
    let have = fs::read_to_string(&stamp).unwrap_or_default();
    if !force && have.trim() == want && py.exists() {
        let (ok, out, _) = util::run_capture(Command::new(&py).args(["-c", CHECK]))?;
        if ok {
            println!(
                "venv: {} is up to date (requirements {}, {version}); nothing to do",
                rel(&venv),
                &want[..12]
            );
            println!("venv: {}", out.trim());
            return Ok(());
        }
        println!("venv: {} is broken; rebuilding it", rel(&venv));
    }
    if venv.exists() {
        if force {
            println!("venv: --force: removing {}", rel(&venv));
        } else if have.is_empty() {
            println!("venv: {} has no stamp; rebuilding it", rel(&venv));
        } else {
            println!(
                "venv: requirements or interpreter changed; rebuilding {}",
                rel(&venv)
            );
        }
        fs::remove_dir_all(&venv).with_context(|| format!("cannot remove {}", rel(&venv)))?;
    }
    println!("venv: creating {} with {host} ({version})", rel(&venv));
    util::run_verbose(Command::new(&host).arg("-m").arg("venv").arg(&venv)).with_context(|| {
        format!("{host} cannot create a venv (Debian: apt-get install python3-venv; or set IPUKIT_PYTHON)")
    })?;
    println!("venv: installing the pinned packages of {}", rel(&req_path));
    util::run_verbose(
        Command::new(&py)
            .args([
                "-m",
                "pip",
                "install",
                "--no-input",
                "--disable-pip-version-check",
                "--require-virtualenv",
                "-r",
            ])
            .arg(&req_path),
    )
    .context("pip could not install the requirements (is PyPI reachable?)")?;
    let (ok, out, err) = util::run_capture(Command::new(&py).args(["-c", CHECK]))?;
    if !ok {
        bail!("the new venv cannot import its packages: {}", err.trim());
    }
    util::write_atomic(&stamp, format!("{want}\n").as_bytes())?;
    println!("venv: {}", out.trim());
    println!(
        "venv: ready in {:.1} s ({})",
        start.elapsed().as_secs_f64(),
        rel(&py)
    );
    Ok(())
}
