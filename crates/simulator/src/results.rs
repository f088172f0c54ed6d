//! What the simulator writes for each input: top-5 lines, text dumps, `.npy` files.

use crate::error::{Result, SimError};
use ipukit_ir::TensorData;
use ipukit_preprocess::{npy, Sample};
use ipukit_runtime::{TensorInfo, Value};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// How outputs are interpreted (`-c`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Category {
    /// One output; print and write the top-5 indices and scores.
    Classification,
    /// The four TFLite_Detection_PostProcess outputs (boxes, classes, scores, count).
    Detection,
    /// Write every output tensor.
    #[default]
    Unknown,
}

impl std::str::FromStr for Category {
    type Err = SimError;
    fn from_str(s: &str) -> Result<Category> {
        match s.to_ascii_lowercase().as_str() {
            "classification" => Ok(Category::Classification),
            "detection" => Ok(Category::Detection),
            "unknown" => Ok(Category::Unknown),
            _ => Err(SimError::Usage(format!(
                "-c must be Classification, Detection or Unknown, not '{s}'"
            ))),
        }
    }
}

impl Category {
    /// Prefix of the result files.
    pub fn file_prefix(self) -> &'static str {
        match self {
            Category::Classification => "classification",
            Category::Detection => "detection",
            Category::Unknown => "unknown",
        }
    }

    /// Checks that the model's outputs fit the category.
    pub fn check(self, outputs: &[TensorInfo]) -> Result<()> {
        match self {
            Category::Classification if outputs.len() != 1 => Err(SimError::Usage(format!(
                "-c Classification needs a model with 1 output; this one has {}; use -c Unknown",
                outputs.len()
            ))),
            Category::Detection => {
                let shapes: Vec<&[usize]> = outputs.iter().map(|o| o.shape.as_slice()).collect();
                let ok = matches!(shapes.as_slice(), [b, c, s, n]
                    if b.len() == 3 && b[2] == 4 && c.len() == 2 && s.len() == 2 && c[1] == b[1] && s[1] == b[1] && n.iter().product::<usize>() == 1);
                if ok {
                    Ok(())
                } else {
                    Err(SimError::Usage(
                        "-c Detection needs a model ending in a TFLite_Detection_PostProcess operator (outputs: boxes [1,N,4], classes [1,N], scores [1,N], count [1]); use -c Unknown for other outputs".into(),
                    ))
                }
            }
            _ => Ok(()),
        }
    }
}

/// The five largest values of an output (index, score), ties to the lower index.
pub fn top5(v: &Value) -> Vec<(usize, f32)> {
    let f = v.data.to_f32_vec();
    let mut idx: Vec<usize> = (0..f.len()).collect();
    idx.sort_by(|&a, &b| f[b].total_cmp(&f[a]).then(a.cmp(&b)));
    idx.into_iter().take(5).map(|i| (i, f[i])).collect()
}

fn dtype_name(d: &TensorData) -> &'static str {
    match d {
        TensorData::F32(_) => "float32",
        TensorData::I64(_) => "int64",
        TensorData::I32(_) => "int32",
        TensorData::I16(_) => "int16",
        TensorData::U16(_) => "uint16",
        TensorData::I8(_) => "int8",
        TensorData::U8(_) => "uint8",
        TensorData::Bool(_) => "bool",
    }
}

/// Text dump of outputs: per tensor a header (`name`, `shape`, `dtype`) then one value per
/// line, floats in their shortest exact form.
pub fn outputs_text(infos: &[TensorInfo], values: &[Value]) -> String {
    let mut s = String::new();
    for (info, v) in infos.iter().zip(values) {
        let _ = writeln!(s, "name: {}", info.name);
        let _ = writeln!(s, "shape: {:?}", v.shape);
        let _ = writeln!(s, "dtype: {}", dtype_name(&v.data));
        match &v.data {
            TensorData::F32(x) => x.iter().for_each(|e| {
                let _ = writeln!(s, "{e:?}");
            }),
            other => other.to_i64_vec().iter().for_each(|e| {
                let _ = writeln!(s, "{e}");
            }),
        }
    }
    s
}

/// One line per detection for TFLite_Detection_PostProcess outputs.
pub fn detections_text(values: &[Value]) -> String {
    let boxes = values[0].data.to_f32_vec();
    let classes = values[1].data.to_f32_vec();
    let scores = values[2].data.to_f32_vec();
    let n = values[3]
        .data
        .to_f32_vec()
        .first()
        .map(|&c| c.max(0.0) as usize)
        .unwrap_or(0)
        .min(scores.len());
    let mut s = String::new();
    for i in 0..n {
        let b = &boxes[i * 4..i * 4 + 4];
        let _ = writeln!(
            s,
            "class {} score {:.6} box [{:.6}, {:.6}, {:.6}, {:.6}]",
            classes[i] as i64, scores[i], b[0], b[1], b[2], b[3]
        );
    }
    s
}

/// Writes `bytes` to `path` atomically (temp file + rename).
///
/// The temporary file's name is unique to the call (process id and a counter), so threads
/// writing the same path at the same time each rename a complete file of their own.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let err = |source| SimError::Write {
        path: path.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let tmp = dir.join(format!(
        ".{}.tmp{}-{}",
        path.file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&tmp, bytes).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        err(e)
    })
}

/// `.npy` bytes of a value.
pub fn npy_bytes(v: &Value) -> Result<Vec<u8>> {
    let s = Sample::new(v.shape.clone(), v.data.clone()).map_err(SimError::Usage)?;
    Ok(npy::write_npy(&s))
}

/// Raw little-endian bytes of a value (`--dump_rawdata`).
pub fn raw_bytes(v: &Value) -> Vec<u8> {
    v.data.to_le_bytes()
}

/// The result file of an input item.
pub fn result_path(out_dir: &Path, category: Category, item_name: &str) -> PathBuf {
    out_dir.join(format!("{}_{item_name}.txt", category.file_prefix()))
}
