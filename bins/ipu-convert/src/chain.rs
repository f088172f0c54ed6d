//! The SGS_converter chain: with `-i` and `-n`, conversion continues through calibration, and
//! with an `.img` output through compilation.

use std::path::{Path, PathBuf};

/// Where the intermediate models of a chain go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainPaths {
    /// The float model.
    pub float: PathBuf,
    /// The fixed model: the output itself, or an intermediate when the output is an image.
    pub fixed: PathBuf,
    /// The offline image, when the output is one.
    pub image: Option<PathBuf>,
}

impl ChainPaths {
    /// The paths for `output` (`X_fixed.sim` or `X.img`): intermediates are named
    /// `<stem>_float.sim` / `<stem>_fixed.sim` next to the output when `export` keeps them,
    /// hidden temporary names otherwise.
    pub fn new(output: &Path, export: bool) -> ChainPaths {
        let is_image = output
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("img"));
        let stem = output
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into());
        let base = stem
            .strip_suffix("_fixed")
            .or_else(|| stem.strip_suffix("_sgsimg"))
            .unwrap_or(&stem)
            .to_string();
        let intermediate = |stage: &str| {
            let name = if export {
                format!("{base}_{stage}.sim")
            } else {
                format!(".{base}.{}.{stage}.sim.tmp", std::process::id())
            };
            output.with_file_name(name)
        };
        ChainPaths {
            float: intermediate("float"),
            fixed: if is_image {
                intermediate("fixed")
            } else {
                output.to_path_buf()
            },
            image: is_image.then(|| output.to_path_buf()),
        }
    }

    /// The intermediate files (removed after the chain unless exported).
    pub fn intermediates(&self) -> Vec<&Path> {
        let mut v = vec![self.float.as_path()];
        if self.image.is_some() {
            v.push(self.fixed.as_path());
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let p = ChainPaths::new(Path::new("out/m_fixed.sim"), true);
        assert_eq!(p.float, Path::new("out/m_float.sim"));
        assert_eq!(p.fixed, Path::new("out/m_fixed.sim"));
        assert_eq!(p.image, None);
        let p = ChainPaths::new(Path::new("out/m.img"), true);
        assert_eq!(p.float, Path::new("out/m_float.sim"));
        assert_eq!(p.fixed, Path::new("out/m_fixed.sim"));
        assert_eq!(p.image.as_deref(), Some(Path::new("out/m.img")));
        assert_eq!(p.intermediates().len(), 2);
        let p = ChainPaths::new(Path::new("m.img"), false);
        assert!(p.fixed.to_string_lossy().ends_with(".fixed.sim.tmp"));
    }
}
