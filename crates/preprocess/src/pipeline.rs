//! The built-in preprocessing pipeline: no Python, same integers as OpenCV / Pillow.
//!
//! A pipeline is a handful of settings applied in a fixed order:
//!
//! 1. decode the file to 8-bit RGB ([`crate::image::decode`]);
//! 2. `gray`: convert to one channel (before resizing, as the seeds' caffe_lenet script does);
//! 3. geometry: `resize=WxH` (stretch), `resize=N` (shorter side to N, torchvision's
//!    `Resize(N)`), or `letterbox=WxH` (the seeds' onnx_yolov8s `letterbox`, padded with
//!    `fill`); then `crop=WxH` / `crop=N` (torchvision's `CenterCrop`);
//! 4. channel order `rgb` / `bgr` (default: the input's `training_input_formats`);
//! 5. `norm=True`: float32 `(x - mean) / std` per channel, with the ini's mean/std unless the
//!    pipeline gives `mean=` / `std=`; `norm=False`: uint8 as is;
//! 6. layout `nhwc` / `nchw` (default: the input's `input_layouts`), batch axis first.
//!
//! `lib=opencv` (default) or `lib=pil` chooses whose decoding, gray conversion and resize
//! arithmetic to reproduce; `interp=linear` (default) or `nearest` the filter.
//!
//! Inline form: items separated by `,`, e.g. `letterbox=640x640,fill=114,rgb`. TOML form: the
//! same keys, e.g. `letterbox = [640, 640]`, `fill = 114`, `color = "rgb"`. A size may be left
//! out (`resize`, `letterbox`, `crop`, or `= true` in TOML) to use the model input's size.
//! docs/preprocessing.md has the full grammar.

use crate::error::{PreprocessError, Result};
use crate::image::{self as img, Image, Interp, LetterboxOptions, Lib};
use crate::sample::Sample;
use crate::InputContext;
use ipukit_config::{InputFormat, Layout};
use ipukit_ir::TensorData;
use std::path::Path;

/// A requested size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// The model input's height and width.
    Model,
    /// Exactly (width, height).
    Exact(usize, usize),
    /// For `resize`: the shorter side becomes N (torchvision `Resize(N)`); for `letterbox` and
    /// `crop`: N×N.
    Side(usize),
}

/// The resize step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Geometry {
    /// Keep the decoded size.
    None,
    /// `resize=`.
    Resize(Size),
    /// `letterbox=`.
    Letterbox(Size),
}

/// Output channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorOrder {
    /// R, G, B.
    Rgb,
    /// B, G, R.
    Bgr,
    /// One gray channel.
    Gray,
}

/// A parsed built-in pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    /// Whose arithmetic to follow.
    pub lib: Lib,
    /// Resize filter.
    pub interp: Interp,
    /// Resize or letterbox.
    pub geometry: Geometry,
    /// Centre crop after resizing.
    pub crop: Option<Size>,
    /// Letterbox border, RGB order (one value repeats).
    pub fill: Vec<u8>,
    /// Letterbox may enlarge.
    pub scaleup: bool,
    /// Output channels (default: from the model input's training format).
    pub color: Option<ColorOrder>,
    /// Output layout (default: from the model input's `input_layouts`).
    pub layout: Option<Layout>,
    /// Mean override, RGB order.
    pub mean: Option<Vec<f32>>,
    /// Std override, RGB order.
    pub std: Option<Vec<f32>>,
    /// Where it came from (TOML path or inline text), for messages.
    pub source: String,
}

const KEYS: &[&str] = &[
    "lib",
    "interp",
    "resize",
    "letterbox",
    "crop",
    "fill",
    "scaleup",
    "color",
    "layout",
    "mean",
    "std",
    "rgb",
    "bgr",
    "gray",
    "nhwc",
    "nchw",
];

impl Pipeline {
    fn empty(source: &str) -> Pipeline {
        Pipeline {
            lib: Lib::OpenCv,
            interp: Interp::Linear,
            geometry: Geometry::None,
            crop: None,
            fill: vec![114],
            scaleup: true,
            color: None,
            layout: None,
            mean: None,
            std: None,
            source: source.to_string(),
        }
    }

    fn err(&self, message: String) -> PreprocessError {
        PreprocessError::Spec {
            source_name: self.source.clone(),
            message,
        }
    }

    /// Parses an inline spec such as `letterbox=640x640,fill=114,rgb`.
    pub fn parse_inline(spec: &str) -> Result<Pipeline> {
        let mut p = Pipeline::empty(&format!("`{spec}`"));
        let mut seen: Vec<String> = Vec::new();
        for item in spec.split(',').map(str::trim) {
            if item.is_empty() {
                return Err(p.err("empty item; separate items with a single `,`".to_string()));
            }
            let (key, value) = match item.split_once('=') {
                Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v.trim())),
                None => (item.to_ascii_lowercase(), None),
            };
            p.apply(&key, value, &mut seen)?;
        }
        p.check()?;
        Ok(p)
    }

    /// Parses a TOML pipeline file's text; `source` names it in messages.
    pub fn parse_toml(text: &str, source: &str) -> Result<Pipeline> {
        let mut p = Pipeline::empty(source);
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            p.err(e.to_string().replace('\n', " ").trim().to_string())
        })?;
        let mut seen = Vec::new();
        for (key, value) in &table {
            let key = key.to_ascii_lowercase();
            let text = toml_item(&key, value).map_err(|m| p.err(m))?;
            match text {
                TomlItem::Skip => {}
                TomlItem::Flag => p.apply(&key, None, &mut seen)?,
                TomlItem::Value(v) => p.apply(&key, Some(&v), &mut seen)?,
            }
        }
        p.check()?;
        Ok(p)
    }

    /// Reads a TOML pipeline file.
    pub fn from_toml_file(path: &Path) -> Result<Pipeline> {
        let text = std::fs::read_to_string(path).map_err(|source| PreprocessError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Pipeline::parse_toml(&text, &path.display().to_string())
    }

    fn apply<'a>(
        &mut self,
        key: &str,
        value: Option<&'a str>,
        seen: &mut Vec<String>,
    ) -> Result<()> {
        let slot = match key {
            "rgb" | "bgr" | "gray" | "color" => "color",
            "nhwc" | "nchw" | "layout" => "layout",
            "resize" | "letterbox" => "geometry",
            k => k,
        };
        if seen.iter().any(|s| s == slot) {
            let what = match slot {
                "geometry" => "`resize` and `letterbox` exclude each other; give one".to_string(),
                s => format!("`{s}` is given twice"),
            };
            return Err(self.err(what));
        }
        let need = |v: Option<&'a str>| -> Result<&'a str> {
            v.filter(|s| !s.is_empty())
                .ok_or_else(|| self.err(format!("`{key}` needs a value (`{key}=...`)")))
        };
        let no_value = |v: Option<&str>| match v {
            Some(x) => Err(self.err(format!("`{key}` takes no value (got `{key}={x}`)"))),
            None => Ok(()),
        };
        match key {
            "lib" => {
                self.lib = match need(value)?.to_ascii_lowercase().as_str() {
                    "opencv" | "cv2" | "cv" => Lib::OpenCv,
                    "pil" | "pillow" | "torchvision" => Lib::Pil,
                    v => {
                        return Err(self.err(format!(
                            "`lib={v}`: use `opencv` (cv2) or `pil` (Pillow, torchvision)"
                        )))
                    }
                }
            }
            "interp" => {
                self.interp = match need(value)?.to_ascii_lowercase().as_str() {
                    "linear" | "bilinear" => Interp::Linear,
                    "nearest" => Interp::Nearest,
                    v => return Err(self.err(format!("`interp={v}`: use `linear` or `nearest`"))),
                }
            }
            "resize" | "letterbox" | "crop" => {
                let size = match value {
                    None => Size::Model,
                    Some(v) => parse_size(v).ok_or_else(|| {
                        self.err(format!(
                            "`{key}={v}`: give WIDTHxHEIGHT (e.g. 640x640), one number N, or no value for the model's size"
                        ))
                    })?,
                };
                match key {
                    "resize" => self.geometry = Geometry::Resize(size),
                    "letterbox" => self.geometry = Geometry::Letterbox(size),
                    _ => self.crop = Some(size),
                }
            }
            "fill" => {
                let v = need(value)?;
                let parts: Option<Vec<u8>> =
                    v.split(':').map(|s| s.trim().parse::<u8>().ok()).collect();
                match parts {
                    Some(p) if p.len() == 1 || p.len() == 3 => self.fill = p,
                    _ => return Err(self.err(format!("`fill={v}`: give one value 0-255 or R:G:B"))),
                }
            }
            "scaleup" => {
                self.scaleup = match need(value)?.to_ascii_lowercase().as_str() {
                    "true" | "1" | "yes" => true,
                    "false" | "0" | "no" => false,
                    v => return Err(self.err(format!("`scaleup={v}`: use true or false"))),
                }
            }
            "rgb" | "bgr" | "gray" | "nhwc" | "nchw" => {
                no_value(value)?;
                self.set_word(key);
            }
            "color" | "layout" => {
                let v = need(value)?.to_ascii_lowercase();
                let ok = if key == "color" {
                    ["rgb", "bgr", "gray"].contains(&v.as_str())
                } else {
                    ["nhwc", "nchw"].contains(&v.as_str())
                };
                if !ok {
                    let allowed = if key == "color" {
                        "rgb, bgr or gray"
                    } else {
                        "nhwc or nchw"
                    };
                    return Err(self.err(format!("`{key}={v}`: use {allowed}")));
                }
                self.set_word(&v);
            }
            "mean" | "std" => {
                let v = need(value)?;
                let parts: Option<Vec<f32>> = v
                    .split(':')
                    .map(|s| s.trim().parse::<f32>().ok().filter(|x| x.is_finite()))
                    .collect();
                let parts = match parts {
                    Some(p) if p.len() == 1 || p.len() == 3 => p,
                    _ => return Err(self.err(format!("`{key}={v}`: give one number or R:G:B"))),
                };
                if key == "std" && parts.iter().any(|&x| x <= 0.0) {
                    return Err(self.err(format!("`std={v}`: std must be > 0")));
                }
                if key == "mean" {
                    self.mean = Some(parts);
                } else {
                    self.std = Some(parts);
                }
            }
            other => {
                let hint = suggest(other)
                    .map(|s| format!("did you mean `{s}`? "))
                    .unwrap_or_default();
                return Err(self.err(format!(
                    "unknown item `{other}`; {hint}known: {}",
                    KEYS.join(", ")
                )));
            }
        }
        seen.push(slot.to_string());
        Ok(())
    }

    fn set_word(&mut self, word: &str) {
        match word {
            "rgb" => self.color = Some(ColorOrder::Rgb),
            "bgr" => self.color = Some(ColorOrder::Bgr),
            "gray" => self.color = Some(ColorOrder::Gray),
            "nhwc" => self.layout = Some(Layout::Nhwc),
            _ => self.layout = Some(Layout::Nchw),
        }
    }

    fn check(&self) -> Result<()> {
        if matches!(self.geometry, Geometry::Letterbox(_)) && self.crop.is_some() {
            return Err(self.err(
                "`crop` cannot follow `letterbox`; letterbox already gives the final size"
                    .to_string(),
            ));
        }
        for (what, s) in [
            ("geometry", geometry_size(self.geometry)),
            ("crop", self.crop),
        ] {
            if let Some(Size::Exact(0, _) | Size::Exact(_, 0) | Size::Side(0)) = s {
                return Err(self.err(format!("{what} size must be positive")));
            }
        }
        Ok(())
    }

    /// Runs the pipeline on one image file.
    pub fn run(&self, path: &Path, norm: bool, ctx: &InputContext) -> Result<Sample> {
        let color = match self.color {
            Some(c) => c,
            None => match ctx.format {
                None | Some(InputFormat::Rgb) => ColorOrder::Rgb,
                Some(InputFormat::Bgr) => ColorOrder::Bgr,
                Some(InputFormat::Gray) => ColorOrder::Gray,
                Some(f) if f.is_rawdata() => {
                    return Err(self.err(format!(
                        "input \"{}\" is {f}, not an image; use `-n raw` or a .py script for it",
                        ctx.name
                    )))
                }
                Some(_) => ColorOrder::Rgb,
            },
        };
        let layout = self.layout.unwrap_or(ctx.layout);
        let decoded = img::decode(path, self.lib).map_err(|message| PreprocessError::Image {
            path: path.to_path_buf(),
            message,
        })?;
        let mut image = if color == ColorOrder::Gray {
            img::to_gray(&decoded, self.lib)
        } else {
            decoded
        };
        let model_size = || -> Result<(usize, usize)> {
            ctx.hw().map(|(h, w)| (w, h)).ok_or_else(|| {
                self.err(format!(
                    "a size was left out, but the model input \"{}\" has no known 4-D shape; give WIDTHxHEIGHT",
                    ctx.name
                ))
            })
        };
        match self.geometry {
            Geometry::None => {}
            Geometry::Resize(size) => {
                let (w, h) = match size {
                    Size::Model => model_size()?,
                    Size::Exact(w, h) => (w, h),
                    Size::Side(n) => img::shorter_side_size(image.width, image.height, n),
                };
                image = img::resize(&image, w, h, self.lib, self.interp);
            }
            Geometry::Letterbox(size) => {
                let size = match size {
                    Size::Model => model_size()?,
                    Size::Exact(w, h) => (w, h),
                    Size::Side(n) => (n, n),
                };
                let mut fill = self.fill.clone();
                if fill.len() == 3 && color == ColorOrder::Gray {
                    fill.truncate(1);
                }
                image = img::letterbox(
                    &image,
                    &LetterboxOptions {
                        size,
                        fill,
                        scaleup: self.scaleup,
                        lib: self.lib,
                        interp: self.interp,
                    },
                );
            }
        }
        if let Some(size) = self.crop {
            let (w, h) = match size {
                Size::Model => model_size()?,
                Size::Exact(w, h) => (w, h),
                Size::Side(n) => (n, n),
            };
            image = img::center_crop(&image, w, h);
        }
        if image.width == 0 || image.height == 0 {
            return Err(PreprocessError::Shape {
                path: path.to_path_buf(),
                message: format!("the pipeline {} produced an empty image", self.source),
            });
        }
        if color == ColorOrder::Bgr {
            image.reverse_channels();
        }
        let sample = self.finish(&image, norm, color, layout, ctx);
        if let Some(want) = &ctx.shape {
            if want.iter().product::<usize>() > 0 && *want != sample.shape {
                return Err(PreprocessError::Shape {
                    path: path.to_path_buf(),
                    message: format!(
                        "the pipeline {} produced shape {:?} but input \"{}\" expects {:?}; adjust its resize/letterbox/crop size, colour or layout",
                        self.source, sample.shape, ctx.name, want
                    ),
                });
            }
        }
        Ok(sample)
    }

    fn finish(
        &self,
        image: &Image,
        norm: bool,
        color: ColorOrder,
        layout: Layout,
        ctx: &InputContext,
    ) -> Sample {
        let c = image.channels;
        let (h, w) = (image.height, image.width);
        let shape = match layout {
            Layout::Nhwc => vec![1, h, w, c],
            Layout::Nchw => vec![1, c, h, w],
        };
        let to_layout = |hwc_index: &dyn Fn(usize) -> usize| -> Vec<usize> {
            // The HWC element index for each output position.
            match layout {
                Layout::Nhwc => (0..h * w * c).map(hwc_index).collect(),
                Layout::Nchw => {
                    let mut v = Vec::with_capacity(h * w * c);
                    for ch in 0..c {
                        for p in 0..h * w {
                            v.push(hwc_index(p * c + ch));
                        }
                    }
                    v
                }
            }
        };
        let order = to_layout(&|i| i);
        if !norm {
            let data: Vec<u8> = order.iter().map(|&i| image.data[i]).collect();
            return Sample {
                shape,
                data: TensorData::from(data),
            };
        }
        let per_channel = |given: Option<&Vec<f32>>, from_ini: &[f32], default: f32| -> Vec<f32> {
            let v: Vec<f32> = given.cloned().unwrap_or_else(|| from_ini.to_vec());
            let mut v = match v.len() {
                0 => vec![default; c],
                1 => vec![v[0]; c],
                _ => v,
            };
            if color == ColorOrder::Gray {
                v.truncate(1);
            } else if color == ColorOrder::Bgr {
                v.reverse();
            }
            v.resize(c, default);
            v
        };
        let mean = per_channel(self.mean.as_ref(), &ctx.mean, 0.0);
        let std = per_channel(self.std.as_ref(), &ctx.std, 1.0);
        let data: Vec<f32> = order
            .iter()
            .map(|&i| {
                let ch = i % c;
                (f32::from(image.data[i]) - mean[ch]) / std[ch]
            })
            .collect();
        Sample {
            shape,
            data: TensorData::from(data),
        }
    }
}

fn geometry_size(g: Geometry) -> Option<Size> {
    match g {
        Geometry::None => None,
        Geometry::Resize(s) | Geometry::Letterbox(s) => Some(s),
    }
}

fn parse_size(v: &str) -> Option<Size> {
    let v = v.trim().to_ascii_lowercase();
    match v.split_once(['x', '*']) {
        Some((w, h)) => Some(Size::Exact(w.trim().parse().ok()?, h.trim().parse().ok()?)),
        None => Some(Size::Side(v.parse().ok()?)),
    }
}

fn suggest(word: &str) -> Option<&'static str> {
    KEYS.iter()
        .copied()
        .filter(|k| {
            let (a, b) = (word.len(), k.len());
            (a.abs_diff(b) <= 2
                && word.chars().zip(k.chars()).filter(|(x, y)| x == y).count() + 2 >= a.max(b))
                || k.starts_with(word)
                || word.starts_with(k)
        })
        .min_by_key(|k| k.len().abs_diff(word.len()))
}

enum TomlItem {
    Skip,
    Flag,
    Value(String),
}

/// Turns one TOML key/value into the inline item's value text.
fn toml_item(key: &str, value: &toml::Value) -> std::result::Result<TomlItem, String> {
    use toml::Value as V;
    let num = |v: &V| -> Option<String> {
        match v {
            V::Integer(i) => Some(i.to_string()),
            V::Float(f) => Some(f.to_string()),
            V::String(s) => Some(s.clone()),
            _ => None,
        }
    };
    let sep = match key {
        "resize" | "letterbox" | "crop" => "x",
        _ => ":",
    };
    Ok(match value {
        V::Boolean(b) if matches!(key, "resize" | "letterbox" | "crop") => {
            if *b {
                TomlItem::Flag
            } else {
                TomlItem::Skip
            }
        }
        V::Boolean(b) => TomlItem::Value(b.to_string()),
        V::Array(items) => {
            let parts: Option<Vec<String>> = items.iter().map(num).collect();
            let parts = parts.ok_or_else(|| format!("`{key}`: array items must be numbers"))?;
            TomlItem::Value(parts.join(sep))
        }
        v => TomlItem::Value(num(v).ok_or_else(|| format!("`{key}`: unsupported value {v}"))?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_grammar() {
        let p = Pipeline::parse_inline("letterbox=640x640, fill=114, rgb").unwrap();
        assert_eq!(p.geometry, Geometry::Letterbox(Size::Exact(640, 640)));
        assert_eq!(p.color, Some(ColorOrder::Rgb));
        let p =
            Pipeline::parse_inline("lib=pil,resize=256,crop=224,nchw,mean=1:2:3,std=4").unwrap();
        assert_eq!(p.lib, Lib::Pil);
        assert_eq!(p.geometry, Geometry::Resize(Size::Side(256)));
        assert_eq!(p.crop, Some(Size::Side(224)));
        assert_eq!(p.layout, Some(Layout::Nchw));
        assert_eq!(p.mean, Some(vec![1.0, 2.0, 3.0]));
        let p = Pipeline::parse_inline("resize,gray").unwrap();
        assert_eq!(p.geometry, Geometry::Resize(Size::Model));
    }

    #[test]
    fn inline_errors() {
        for (spec, frag) in [
            ("letterbox=640x640,resize=3", "exclude each other"),
            ("rgb,bgr", "`color` is given twice"),
            ("resise=3", "did you mean `resize`?"),
            ("fill=300", "`fill=300`"),
            ("resize=axb", "WIDTHxHEIGHT"),
            ("letterbox,crop=3", "cannot follow"),
            ("std=0", "> 0"),
            ("rgb=1", "takes no value"),
            ("lib=torch", "use `opencv`"),
            ("rgb,,resize", "empty item"),
            ("resize=0x3", "positive"),
        ] {
            let e = Pipeline::parse_inline(spec).unwrap_err().to_string();
            assert!(e.contains(frag), "{spec}: {e}");
        }
    }

    #[test]
    fn toml_grammar() {
        let p = Pipeline::parse_toml(
            "lib = \"pil\"\nresize = 256\ncrop = [224, 224]\ncolor = \"bgr\"\nmean = [1, 2.5, 3]\nscaleup = false\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!(p.crop, Some(Size::Exact(224, 224)));
        assert_eq!(p.color, Some(ColorOrder::Bgr));
        assert_eq!(p.mean, Some(vec![1.0, 2.5, 3.0]));
        assert!(!p.scaleup);
        let p =
            Pipeline::parse_toml("letterbox = true\nfill = [114, 114, 114]\n", "t.toml").unwrap();
        assert_eq!(p.geometry, Geometry::Letterbox(Size::Model));
        let e = Pipeline::parse_toml("letterbox = [1, 2]\nresize = 3\n", "t.toml").unwrap_err();
        assert!(e.to_string().contains("exclude"), "{e}");
        let e = Pipeline::parse_toml("colour = \"rgb\"\n", "t.toml").unwrap_err();
        assert!(e.to_string().contains("did you mean `color`?"), "{e}");
        let e = Pipeline::parse_toml("resize = \n", "t.toml").unwrap_err();
        assert!(
            e.to_string().starts_with("preprocess pipeline t.toml: "),
            "{e}"
        );
    }
}
