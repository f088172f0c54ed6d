//! The `-i` argument: one image, a directory of images, or a list file.

use crate::error::{PreprocessError, Result};
use std::path::{Path, PathBuf};

/// File extensions taken as input files (images, and `.npy` / `.bin` / `.raw` tensors).
pub const INPUT_EXTENSIONS: &[&str] = &[
    "jpg", "jpeg", "png", "bmp", "tif", "tiff", "webp", "gif", "ppm", "pgm", "npy", "bin", "raw",
];

/// True when `path` has one of [`INPUT_EXTENSIONS`].
pub fn is_input_file(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| INPUT_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// Expands `-i` into one row of paths per inference (each row has `n_inputs` paths).
///
/// * an image / data file: one inference (single-input models only);
/// * a directory: every input file in it (by extension, not recursive, hidden files skipped),
///   sorted by name (single-input models only);
/// * any other file: a UTF-8 list, one inference per line, `n_inputs` comma-separated paths
///   per line, blank lines skipped, relative paths taken relative to the current directory (as
///   the original tools do).
pub fn collect_inputs(arg: &Path, n_inputs: usize) -> Result<Vec<Vec<PathBuf>>> {
    let inputs_err = |message: String| PreprocessError::Inputs {
        path: arg.to_path_buf(),
        message,
    };
    let meta = std::fs::metadata(arg).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            inputs_err("no such file or directory".to_string())
        } else {
            PreprocessError::Io {
                path: arg.to_path_buf(),
                source: e,
            }
        }
    })?;
    let multi_hint = |what: &str| {
        format!(
            "{what} can only feed a single-input model, and this model has {n_inputs} inputs; \
             give a list file with {n_inputs} comma-separated paths per line"
        )
    };
    if meta.is_dir() {
        if n_inputs != 1 {
            return Err(inputs_err(multi_hint("a directory")));
        }
        let mut files = Vec::new();
        let entries = std::fs::read_dir(arg).map_err(|source| PreprocessError::Io {
            path: arg.to_path_buf(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| PreprocessError::Io {
                path: arg.to_path_buf(),
                source,
            })?;
            let path = entry.path();
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            if !hidden && path.is_file() && is_input_file(&path) {
                files.push(path);
            }
        }
        files.sort();
        if files.is_empty() {
            return Err(PreprocessError::NoImages {
                path: arg.to_path_buf(),
                hint: format!(
                    " (no file with extension {} in the directory)",
                    INPUT_EXTENSIONS.join("/")
                ),
            });
        }
        return Ok(files.into_iter().map(|p| vec![p]).collect());
    }
    if is_input_file(arg) {
        if n_inputs != 1 {
            return Err(inputs_err(multi_hint("a single file")));
        }
        return Ok(vec![vec![arg.to_path_buf()]]);
    }
    read_list(arg, n_inputs)
}

fn read_list(list: &Path, n_inputs: usize) -> Result<Vec<Vec<PathBuf>>> {
    let bytes = std::fs::read(list).map_err(|source| PreprocessError::Io {
        path: list.to_path_buf(),
        source,
    })?;
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        let at = e.valid_up_to();
        PreprocessError::Inputs {
            path: list.to_path_buf(),
            message: format!(
                "not a UTF-8 text list (UnicodeDecodeError: 'utf-8' codec can't decode byte \
                 0x{:02x} in position {at}); -i takes an image ({}), a directory, or a text file \
                 with one input path per line",
                bytes.get(at).copied().unwrap_or(0),
                INPUT_EXTENSIONS.join("/")
            ),
        }
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let list_dir = list.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let err = |message: String| PreprocessError::ListLine {
            path: list.to_path_buf(),
            line: line_no,
            message,
        };
        let cols: Vec<&str> = line.split(',').map(str::trim).collect();
        if cols.len() != n_inputs {
            return Err(err(format!(
                "{} path(s) but the model has {n_inputs} input(s); give {n_inputs} comma-separated \
                 path(s) per line, in the order of `inputs` in input_config.ini",
                cols.len()
            )));
        }
        let mut row = Vec::with_capacity(n_inputs);
        for col in cols {
            if col.is_empty() {
                return Err(err(
                    "empty path (check for a doubled or trailing `,`)".to_string()
                ));
            }
            let p = PathBuf::from(col);
            if !p.is_file() {
                let beside = list_dir.join(&p);
                let hint = if p.is_relative() && beside.is_file() {
                    format!(
                        "; {} exists, but relative paths in a list are taken from the current \
                         directory: run from {} or write absolute paths",
                        beside.display(),
                        list_dir.display()
                    )
                } else {
                    String::new()
                };
                return Err(err(format!("{col}: no such file{hint}")));
            }
            row.push(p);
        }
        rows.push(row);
    }
    if rows.is_empty() {
        return Err(PreprocessError::NoImages {
            path: list.to_path_buf(),
            hint: " (the list file has no non-blank line)".to_string(),
        });
    }
    Ok(rows)
}

/// Splits a `-n` argument into one method per model input.
///
/// The seeds separate per-input methods with `,` (`-n pre1.py,pre2.py`), and an inline
/// pipeline uses `,` between its items too, so: the argument is first split on `;` if it has
/// one (one method per part); otherwise on `,`, where each `.py` / `.toml` path and each
/// `raw` / `npy` / `bin` keyword is a method of its own and consecutive other items form one
/// inline pipeline. `letterbox=640x640,fill=114,rgb` is one method, `a.py,b.py` two,
/// `a.py,resize=224x224,rgb` two; write `resize=224x224,rgb;letterbox=640x640` for two
/// inline pipelines.
pub fn split_methods(arg: &str, n_inputs: usize) -> Result<Vec<String>> {
    let parts: Vec<String> = if arg.contains(';') {
        arg.split(';')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    } else {
        let mut out: Vec<String> = Vec::new();
        let mut inline: Vec<&str> = Vec::new();
        for item in arg.split(',').map(str::trim) {
            if is_standalone_method(item) {
                if !inline.is_empty() {
                    out.push(inline.join(","));
                    inline.clear();
                }
                out.push(item.to_string());
            } else {
                inline.push(item);
            }
        }
        if !inline.is_empty() {
            out.push(inline.join(","));
        }
        out
    };
    if parts.len() != n_inputs {
        return Err(PreprocessError::MethodCount {
            methods: parts.len(),
            inputs: n_inputs,
        });
    }
    Ok(parts)
}

fn is_standalone_method(item: &str) -> bool {
    let lower = item.to_ascii_lowercase();
    lower.ends_with(".py")
        || lower.ends_with(".toml")
        || matches!(lower.as_str(), "raw" | "npy" | "bin")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split() {
        assert_eq!(split_methods("a.py", 1).unwrap(), ["a.py"]);
        assert_eq!(split_methods("a.py,b.py", 2).unwrap(), ["a.py", "b.py"]);
        assert_eq!(
            split_methods("letterbox=640x640,fill=114,rgb", 1).unwrap(),
            ["letterbox=640x640,fill=114,rgb"]
        );
        assert_eq!(
            split_methods("a.py,resize=224x224,rgb,raw", 3).unwrap(),
            ["a.py", "resize=224x224,rgb", "raw"]
        );
        assert_eq!(
            split_methods("rgb,resize;letterbox", 2).unwrap(),
            ["rgb,resize", "letterbox"]
        );
        let e = split_methods("a.py", 2).unwrap_err().to_string();
        assert!(
            e.starts_with("Got different num of preprocess_methods and images!"),
            "{e}"
        );
    }
}
