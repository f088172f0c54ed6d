//! The model fixtures: `fixtures/models/<name>/model.toml` (read here for what Rust needs;
//! the decoders and the images are the Python scripts' business). Rust only checks that the
//! `[[calibration]]` images are disjoint from the `[[eval]]` ones.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::util;

/// What Rust reads of a model.toml.
#[derive(Debug, Deserialize)]
pub struct ModelToml {
    /// Fixture name (the folder name).
    pub name: String,
    /// ONNX file under `.cache/`.
    pub onnx: String,
    /// `--input_shapes` in ipu-convert's syntax (ONNX layout, `:` between inputs).
    pub input_shapes: String,
    /// Model inputs in order.
    pub inputs: Vec<TensorSpec>,
    /// Model outputs in order.
    pub outputs: Vec<TensorSpec>,
    /// Evaluation images (made by xtask/py/eval_images.py).
    #[serde(default)]
    pub eval: Vec<ImageItem>,
    /// Calibration images of the fixed-point stage: disjoint from `eval`.
    #[serde(default)]
    pub calibration: Vec<ImageItem>,
}

/// One `[[eval]]` or `[[calibration]]` entry: a photo of `.cache/images` (optionally cropped
/// and rotated) or a rendered text line.
#[derive(Debug, Deserialize)]
pub struct ImageItem {
    /// Photo file name under `.cache/images`.
    #[serde(default)]
    pub image: Option<String>,
    /// `[x, y, w, h]` in pixels of the photo.
    #[serde(default)]
    pub crop: Option<[u32; 4]>,
    /// A text line to render instead of a photo.
    #[serde(default)]
    pub render: Option<String>,
    /// `[[eval]]` only: the image also calibrates the fixed-point stage (or shares pixels with
    /// a calibration image), so it is compared in float only.
    #[serde(default)]
    pub float_only: bool,
}

impl ImageItem {
    fn describe(&self) -> String {
        match (&self.render, &self.image, self.crop) {
            (Some(t), _, _) => format!("render {t:?}"),
            (None, Some(i), Some([x, y, w, h])) => format!("{i} crop [{x}, {y}, {w}, {h}]"),
            (None, Some(i), None) => i.clone(),
            (None, None, _) => "(no image)".into(),
        }
    }

    /// Whether two entries can share pixels: the same photo where either is whole or their
    /// crops intersect, or the same rendered text.
    fn overlaps(&self, other: &ImageItem) -> bool {
        if let (Some(a), Some(b)) = (&self.render, &other.render) {
            return a == b;
        }
        match (&self.image, &other.image) {
            (Some(a), Some(b)) if a == b => match (self.crop, other.crop) {
                (Some([x1, y1, w1, h1]), Some([x2, y2, w2, h2])) => {
                    x1 < x2 + w2 && x2 < x1 + w1 && y1 < y2 + h2 && y2 < y1 + h1
                }
                _ => true,
            },
            _ => false,
        }
    }
}

/// Checks that no calibration entry shares pixels with an evaluation entry of the
/// fixed-point stage (those not marked `float_only`).
pub fn check_disjoint(toml: &ModelToml) -> Result<()> {
    if !toml.calibration.is_empty() && toml.eval.iter().all(|e| e.float_only) {
        bail!("every [[eval]] image is float_only: the fixed-point stage has nothing to evaluate");
    }
    for c in &toml.calibration {
        if let Some(e) = toml
            .eval
            .iter()
            .filter(|e| !e.float_only)
            .find(|e| c.overlaps(e))
        {
            bail!(
                "[[calibration]] {} overlaps [[eval]] {}: calibrate on other images or other \
                 regions, or mark the evaluation image float_only",
                c.describe(),
                e.describe()
            );
        }
    }
    Ok(())
}

/// One input or output.
#[derive(Debug, Deserialize)]
pub struct TensorSpec {
    /// Tensor name in the ONNX model.
    pub name: String,
    /// `NCHW`, `NHWC` or `plain` (not 4-D).
    pub onnx_layout: String,
    /// The shape preprocess.py returns (inputs only), at ipukit's NHWC boundary.
    #[serde(default)]
    pub shape: Option<Vec<usize>>,
}

/// A fixture folder and its model.toml.
pub struct Fixture {
    /// `fixtures/models/<name>`.
    pub dir: PathBuf,
    /// Its model.toml.
    pub toml: ModelToml,
}

impl Fixture {
    /// The ONNX file in the cache, or an error telling to fetch it.
    pub fn onnx_path(&self) -> Result<PathBuf> {
        let p = util::cache_dir().join(&self.toml.onnx);
        if !p.is_file() {
            bail!("{} does not exist: run `cargo xtask fetch`", util::rel(&p));
        }
        Ok(p)
    }

    /// Reads the fixture's input_config.ini with ipukit's own parser and checks it against
    /// model.toml's inputs and outputs.
    pub fn input_config(&self) -> Result<ipukit_config::InputConfig> {
        let ini = self.dir.join("input_config.ini");
        let cfg = ipukit_config::InputConfig::from_file(&ini, (1, 1))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let inputs: Vec<(&str, usize)> = self
            .toml
            .inputs
            .iter()
            .map(|t| (t.name.as_str(), t.shape.as_ref().map_or(4, Vec::len)))
            .collect();
        let outputs: Vec<&str> = self.toml.outputs.iter().map(|t| t.name.as_str()).collect();
        cfg.check_against_model(&inputs, &outputs)
            .map_err(|e| anyhow::anyhow!("{}: {e}", util::rel(&ini)))?;
        Ok(cfg)
    }

    /// `input_shapes` parsed: one shape per input.
    pub fn input_shapes(&self) -> Result<Vec<Vec<usize>>> {
        parse_input_shapes(&self.toml.input_shapes)
            .with_context(|| format!("{}/model.toml: input_shapes", util::rel(&self.dir)))
    }
}

/// Parses `1,3,224,224:1,10` into shapes.
pub fn parse_input_shapes(s: &str) -> Result<Vec<Vec<usize>>> {
    s.split(':')
        .map(|one| {
            one.split(',')
                .map(|d| {
                    d.trim()
                        .parse::<usize>()
                        .with_context(|| format!("{d:?} is not a dimension"))
                })
                .collect::<Result<Vec<_>>>()
        })
        .collect()
}

/// Every fixture, sorted by name; `only` keeps those named.
pub fn load_all(only: &[String]) -> Result<Vec<Fixture>> {
    let root = util::repo_root().join("fixtures/models");
    let mut out = vec![];
    let mut entries: Vec<PathBuf> = fs::read_dir(&root)
        .with_context(|| format!("cannot list {}", root.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("model.toml").is_file())
        .collect();
    entries.sort();
    for dir in entries {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !only.is_empty() && !only.contains(&name) {
            continue;
        }
        out.push(load(&dir)?);
    }
    for o in only {
        if !out.iter().any(|f| &f.toml.name == o) {
            bail!("no fixture {o} in fixtures/models");
        }
    }
    Ok(out)
}

/// One fixture.
pub fn load(dir: &Path) -> Result<Fixture> {
    let path = dir.join("model.toml");
    let text =
        fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let toml: ModelToml =
        toml::from_str(&text).with_context(|| format!("{} is not valid", util::rel(&path)))?;
    for t in toml.inputs.iter().chain(&toml.outputs) {
        if !matches!(t.onnx_layout.as_str(), "NCHW" | "NHWC" | "plain") {
            bail!(
                "{}: {}: onnx_layout must be NCHW, NHWC or plain",
                util::rel(&path),
                t.name
            );
        }
    }
    check_disjoint(&toml).map_err(|e| anyhow::anyhow!("{}: {e}", util::rel(&path)))?;
    Ok(Fixture {
        dir: dir.to_path_buf(),
        toml,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert_eq!(
            parse_input_shapes("1,3,48,320").unwrap(),
            vec![vec![1, 3, 48, 320]]
        );
        assert_eq!(
            parse_input_shapes("1,2:3").unwrap(),
            vec![vec![1, 2], vec![3]]
        );
        assert!(parse_input_shapes("1,x").is_err());
    }

    fn item(image: &str, crop: Option<[u32; 4]>) -> ImageItem {
        ImageItem {
            image: Some(image.into()),
            crop,
            render: None,
            float_only: false,
        }
    }

    #[test]
    fn disjoint_items() {
        let a = item("page.png", Some([5, 10, 142, 26]));
        assert!(a.overlaps(&item("page.png", None)));
        assert!(a.overlaps(&item("page.png", Some([146, 30, 10, 10]))));
        assert!(!a.overlaps(&item("page.png", Some([147, 10, 10, 10]))));
        assert!(!a.overlaps(&item("page.png", Some([5, 36, 10, 10]))));
        assert!(!a.overlaps(&item("text.png", Some([5, 10, 142, 26]))));
        let r = ImageItem {
            image: None,
            crop: None,
            render: Some("x".into()),
            float_only: false,
        };
        assert!(r.overlaps(&r));
        assert!(!r.overlaps(&a));
    }

    #[test]
    fn committed_fixtures_load() {
        let all = load_all(&[]).unwrap();
        assert!(all.len() >= 8);
        for f in &all {
            assert_eq!(f.dir.file_name().unwrap().to_str().unwrap(), f.toml.name);
            assert!(
                f.toml.calibration.len() >= 8,
                "{}: too few [[calibration]] images",
                f.toml.name
            );
            let cfg = f.input_config().unwrap();
            assert_eq!(cfg.inputs.len(), f.toml.inputs.len());
            let shapes = f.input_shapes().unwrap();
            assert_eq!(shapes.len(), f.toml.inputs.len());
            for (s, t) in shapes.iter().zip(&f.toml.inputs) {
                // The NHWC shape preprocess.py gives is the ONNX shape, transposed for NCHW.
                let nhwc = match t.onnx_layout.as_str() {
                    "NCHW" => vec![s[0], s[2], s[3], s[1]],
                    _ => s.clone(),
                };
                assert_eq!(t.shape.as_ref(), Some(&nhwc), "{}", f.toml.name);
            }
        }
    }
}
