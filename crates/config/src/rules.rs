//! From ini sections to the typed model, applying every rule of the seeds.

use crate::error::{ConfigError, Result};
use crate::ini::{Entry, Section};
use crate::types::{
    ConvConfig, ConvInputFormat, InputConfig, InputFormat, InputSpec, Layout, OutputFormat,
    OutputSpec,
};
use std::str::FromStr;

/// The sections and their keys.
pub(crate) const SECTIONS: &[(&str, &[&str])] = &[
    (
        "INPUT_CONFIG",
        &[
            "inputs",
            "training_input_formats",
            "input_formats",
            "quantizations",
            "mean",
            "std_value",
            "input_width_alignment",
            "input_height_alignment",
            "input_layouts",
        ],
    ),
    (
        "OUTPUT_CONFIG",
        &[
            "outputs",
            "dequantizations",
            "output_layouts",
            "output_formats",
        ],
    ),
    ("CONV_CONFIG", &["input_format", "tensor_arrays"]),
];

/// The seeds' limit on the length of all input (or output) names.
pub const MAX_NAMES_LEN: usize = 2048;

/// Levenshtein distance (for "did you mean").
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The closest candidate to `word`, if it is close enough to be a plausible typo.
pub(crate) fn suggest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let w = word.to_ascii_lowercase();
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let cl = c.to_ascii_lowercase();
        let d = if cl.starts_with(&w) || w.starts_with(&cl) {
            1
        } else {
            distance(&w, &cl)
        };
        if d <= (w.len().max(cl.len()) / 3).max(2) && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

struct Ctx<'a> {
    path: &'a str,
}

impl Ctx<'_> {
    fn invalid(&self, line: Option<usize>, key: &str, message: String) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_string(),
            line,
            key: key.to_string(),
            message,
        }
    }

    fn syntax(&self, line: usize, message: String) -> ConfigError {
        ConfigError::Syntax {
            path: self.path.to_string(),
            line,
            message,
        }
    }

    /// A comma-separated list; empty entries are errors.
    fn list(&self, entry: &Entry) -> Result<Vec<String>> {
        if entry.value.is_empty() {
            return Err(self.invalid(
                Some(entry.line),
                &entry.key,
                format!("`{}` is empty; give at least one value", entry.key),
            ));
        }
        let items: Vec<String> = entry
            .value
            .split(',')
            .map(|s| s.trim().to_string())
            .collect();
        if items.iter().any(|s| s.is_empty()) {
            return Err(self.invalid(
                Some(entry.line),
                &entry.key,
                format!(
                    "`{}={}` has an empty entry; remove the doubled or trailing `,`",
                    entry.key,
                    entry.value.replace('\n', " ")
                ),
            ));
        }
        Ok(items)
    }

    /// A list of names (`inputs`, `outputs`): no duplicates, total length ≤ 2048.
    fn names(&self, entry: &Entry, what: &str) -> Result<Vec<String>> {
        let names = self.list(entry)?;
        let total = names.join(",").chars().count();
        if total > MAX_NAMES_LEN {
            return Err(self.invalid(
                Some(entry.line),
                &entry.key,
                format!(
                    "`{}` is {total} characters long; the names of all {what}s must not exceed \
                     {MAX_NAMES_LEN} characters",
                    entry.key
                ),
            ));
        }
        for (i, n) in names.iter().enumerate() {
            if names[..i].contains(n) {
                return Err(self.invalid(
                    Some(entry.line),
                    &entry.key,
                    format!(
                        "{what} \"{n}\" appears twice in `{}`; list each {what} once",
                        entry.key
                    ),
                ));
            }
        }
        Ok(names)
    }

    /// A per-tensor list whose length must match `names`.
    fn per_name<'e>(
        &self,
        section: &'e Section,
        key: &str,
        names: &[String],
        names_key: &str,
    ) -> Result<Option<(Vec<String>, &'e Entry)>> {
        let Some(entry) = section.get(key) else {
            return Ok(None);
        };
        let values = self.list(entry)?;
        if values.len() != names.len() {
            return Err(self.invalid(
                Some(entry.line),
                key,
                format!(
                    "`{key}` has {} value(s) but `{names_key}` has {} ({}); give one value per \
                     entry of `{names_key}`, in the same order, separated by `,`",
                    values.len(),
                    names.len(),
                    names.join(", ")
                ),
            ));
        }
        Ok(Some((values, entry)))
    }

    fn parse_enum<T: FromStr<Err = String> + Copy>(
        &self,
        entry: &Entry,
        value: &str,
        subject: &str,
        all: &[T],
        as_str: fn(T) -> &'static str,
    ) -> Result<T> {
        T::from_str(value).map_err(|allowed| {
            let hint = suggest(value, all.iter().map(|v| as_str(*v)))
                .map(|s| format!("did you mean {s}? "))
                .unwrap_or_default();
            self.invalid(
                Some(entry.line),
                &entry.key,
                format!(
                    "`{}` value `{value}` {subject} is not supported; {hint}allowed: {allowed}",
                    entry.key
                ),
            )
        })
    }

    fn parse_bool(&self, entry: &Entry, value: &str, name: &str, what: &str) -> Result<bool> {
        if value.eq_ignore_ascii_case("TRUE") {
            Ok(true)
        } else if value.eq_ignore_ascii_case("FALSE") {
            Ok(false)
        } else {
            Err(self.invalid(
                Some(entry.line),
                &entry.key,
                format!(
                    "`{}` value `{value}` for {what} \"{name}\" must be TRUE or FALSE",
                    entry.key
                ),
            ))
        }
    }
}

fn check_keys(ctx: &Ctx<'_>, sections: &[Section]) -> Result<()> {
    for section in sections {
        let Some((_, keys)) = SECTIONS.iter().find(|(n, _)| *n == section.name) else {
            let names = SECTIONS.iter().map(|(n, _)| *n);
            let hint = suggest(&section.name, names)
                .map(|s| format!("did you mean [{s}]? "))
                .unwrap_or_default();
            return Err(ctx.syntax(
                section.line,
                format!(
                    "unknown section [{}]; {hint}input_config.ini has [INPUT_CONFIG], \
                     [OUTPUT_CONFIG] and the optional [CONV_CONFIG]",
                    section.name
                ),
            ));
        };
        for entry in &section.entries {
            if keys.contains(&entry.key.as_str()) {
                continue;
            }
            let elsewhere = SECTIONS
                .iter()
                .find(|(n, ks)| *n != section.name && ks.contains(&entry.key.as_str()));
            let message = match elsewhere {
                Some((other, _)) => format!(
                    "key `{}` belongs in [{other}], not in [{}]; move it",
                    entry.key, section.name
                ),
                None => {
                    let hint = suggest(&entry.key, keys.iter().copied())
                        .map(|s| format!("did you mean `{s}`? "))
                        .unwrap_or_default();
                    format!(
                        "unknown key `{}` in [{}]; {hint}known keys: {}",
                        entry.key,
                        section.name,
                        keys.join(", ")
                    )
                }
            };
            return Err(ctx.syntax(entry.line, message));
        }
    }
    Ok(())
}

/// Builds and checks the typed config.
pub(crate) fn build(
    sections: &[Section],
    path: &str,
    image_alignment: (usize, usize),
) -> Result<InputConfig> {
    let ctx = Ctx { path };
    check_keys(&ctx, sections)?;
    let find = |name: &str| sections.iter().find(|s| s.name == name);
    let Some(input_sec) = find("INPUT_CONFIG") else {
        return Err(ctx.invalid(
            None,
            "[INPUT_CONFIG]",
            "missing section [INPUT_CONFIG]; add it with at least `inputs=<input names>;`"
                .to_string(),
        ));
    };
    let Some(output_sec) = find("OUTPUT_CONFIG") else {
        return Err(ctx.invalid(
            None,
            "[OUTPUT_CONFIG]",
            "missing section [OUTPUT_CONFIG]; add it with at least `outputs=<output names>;`"
                .to_string(),
        ));
    };
    let inputs = build_inputs(&ctx, input_sec, image_alignment)?;
    let outputs = build_outputs(&ctx, output_sec)?;
    let conv = match find("CONV_CONFIG") {
        Some(s) => build_conv(&ctx, s)?,
        None => ConvConfig::default(),
    };
    Ok(InputConfig {
        inputs,
        outputs,
        conv,
    })
}

fn build_inputs(
    ctx: &Ctx<'_>,
    sec: &Section,
    image_alignment: (usize, usize),
) -> Result<Vec<InputSpec>> {
    let Some(names_entry) = sec.get("inputs") else {
        return Err(ctx.invalid(
            Some(sec.line),
            "inputs",
            "[INPUT_CONFIG] has no `inputs`; add `inputs=<input names separated by ,>;`"
                .to_string(),
        ));
    };
    let names = ctx.names(names_entry, "input")?;
    let per = |key: &str| ctx.per_name(sec, key, &names, "inputs");

    // Formats.
    let parse_formats = |key: &str| -> Result<Option<(Vec<InputFormat>, &Entry)>> {
        let Some((values, entry)) = per(key)? else {
            return Ok(None);
        };
        let formats = values
            .iter()
            .zip(&names)
            .map(|(v, n)| {
                ctx.parse_enum(
                    entry,
                    v,
                    &format!("for input \"{n}\""),
                    InputFormat::ALL,
                    InputFormat::as_str,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Some((formats, entry)))
    };
    let training = parse_formats("training_input_formats")?;
    let board = parse_formats("input_formats")?;
    if let Some((formats, entry)) = &training {
        for (f, n) in formats.iter().zip(&names) {
            if !f.is_training_format() {
                return Err(ctx.invalid(
                    Some(entry.line),
                    "training_input_formats",
                    format!(
                        "`training_input_formats` value {f} for input \"{n}\" is a board format, \
                         not a training format; use RGB, BGR, GRAY or a RAWDATA_* format (set {f} \
                         in `input_formats`)"
                    ),
                ));
            }
        }
    }
    let (board, training) = match (board, training) {
        (Some((b, be)), Some((t, _))) => (
            b,
            t.into_iter()
                .zip(std::iter::repeat(Some(be)))
                .collect::<Vec<_>>(),
        ),
        (Some((b, be)), None) => {
            let mut t = Vec::new();
            for (f, n) in b.iter().zip(&names) {
                let d = match f {
                    InputFormat::Rgba => InputFormat::Rgb,
                    InputFormat::Bgra => InputFormat::Bgr,
                    InputFormat::YuvNv12 => {
                        return Err(ctx.invalid(
                            Some(be.line),
                            "training_input_formats",
                            format!(
                                "input \"{n}\" has input_formats YUV_NV12, so `training_input_formats` \
                                 must say what the model was trained on: add \
                                 `training_input_formats=GRAY;` (or RGB / BGR)"
                            ),
                        ))
                    }
                    other => *other,
                };
                t.push((d, Some(be)));
            }
            (b, t)
        }
        (None, Some((t, te))) => (
            t.clone(),
            t.into_iter().zip(std::iter::repeat(Some(te))).collect(),
        ),
        (None, None) => {
            return Err(ctx.invalid(
                Some(names_entry.line),
                "input_formats",
                "[INPUT_CONFIG] has no `input_formats`; add one format per input (RGB, BGR, RGBA, \
                 BGRA, YUV_NV12, GRAY or RAWDATA_*), e.g. `input_formats=BGR;`"
                    .to_string(),
            ))
        }
    };

    // Pairs.
    for ((b, (t, entry)), n) in board.iter().zip(&training).zip(&names) {
        let allowed = b.allowed_training_formats();
        if !allowed.contains(t) {
            let allowed = allowed
                .iter()
                .map(|f| f.as_str())
                .collect::<Vec<_>>()
                .join("/");
            return Err(ctx.invalid(
                entry.map(|e| e.line),
                "input_formats",
                format!(
                    "`input_formats` is {b} only support `training_input_formats` is {allowed}! \
                     (input \"{n}\" has training_input_formats={t})"
                ),
            ));
        }
    }
    let training: Vec<InputFormat> = training.into_iter().map(|(t, _)| t).collect();

    // RAWDATA inputs last.
    if let Some(first_raw) = training.iter().position(|f| f.is_rawdata()) {
        if let Some(later) = training[first_raw..].iter().position(|f| !f.is_rawdata()) {
            let later = first_raw + later;
            return Err(ctx.invalid(
                Some(names_entry.line),
                "inputs",
                format!(
                    "rawdata inputs must be arranged at the end: input \"{}\" ({}) comes before \
                     image input \"{}\" ({}); reorder `inputs` and every per-input key so that \
                     the RAWDATA inputs are last",
                    names[first_raw], training[first_raw], names[later], training[later]
                ),
            ));
        }
    }
    let image_count = training.iter().filter(|f| !f.is_rawdata()).count();

    // quantizations.
    let quantize = match per("quantizations")? {
        Some((values, entry)) => values
            .iter()
            .zip(&names)
            .map(|(v, n)| ctx.parse_bool(entry, v, n, "input"))
            .collect::<Result<Vec<_>>>()?,
        None => vec![true; names.len()],
    };

    // mean / std_value.
    let norm = |key: &str, default: f32| -> Result<Vec<Vec<f32>>> {
        let mut out: Vec<Vec<f32>> = training
            .iter()
            .map(|f| match f.channels() {
                Some(c) => vec![default; c],
                None => Vec::new(),
            })
            .collect();
        let Some(entry) = sec.get(key) else {
            return Ok(out);
        };
        let raw_names: Vec<&str> = names[image_count..].iter().map(|s| s.as_str()).collect();
        if image_count == 0 {
            return Err(ctx.invalid(
                Some(entry.line),
                key,
                format!(
                    "`{key}` is set but every input is RAWDATA ({}); RAWDATA inputs must not have \
                     mean/std_value, remove `{key}`",
                    raw_names.join(", ")
                ),
            ));
        }
        let values = ctx.list(entry)?;
        if values.len() != image_count {
            let rawnote = if raw_names.is_empty() {
                String::new()
            } else {
                format!(
                    "; RAWDATA inputs ({}) must not have mean/std_value",
                    raw_names.join(", ")
                )
            };
            return Err(ctx.invalid(
                Some(entry.line),
                key,
                format!(
                    "`{key}` has {} value(s) but there are {image_count} image input(s) ({}): give \
                     one value per non-RAWDATA input, separated by `,`{rawnote}",
                    values.len(),
                    names[..image_count].join(", ")
                ),
            ));
        }
        for (i, v) in values.iter().enumerate() {
            let f = training[i];
            let channels = f.channels().unwrap_or(1);
            let parts = v
                .split(':')
                .map(|p| {
                    let p = p.trim();
                    p.parse::<f32>()
                        .ok()
                        .filter(|x| x.is_finite())
                        .ok_or_else(|| {
                            ctx.invalid(
                                Some(entry.line),
                                key,
                                format!(
                                    "`{key}` value `{p}` for input \"{}\" is not a number",
                                    names[i]
                                ),
                            )
                        })
                })
                .collect::<Result<Vec<f32>>>()?;
            if parts.len() != 1 && parts.len() != channels {
                let want = if channels == 1 {
                    format!("{f} takes one value")
                } else {
                    format!("give one value, or {channels} values R:G:B separated by `:`")
                };
                return Err(ctx.invalid(
                    Some(entry.line),
                    key,
                    format!(
                        "`{key}` for input \"{}\" ({f}) has {} values; {want}",
                        names[i],
                        parts.len()
                    ),
                ));
            }
            if key == "std_value" && parts.iter().any(|&x| x <= 0.0) {
                return Err(ctx.invalid(
                    Some(entry.line),
                    key,
                    format!(
                        "`std_value` for input \"{}\" is {v}; the image is divided by std_value, so \
                         it must be > 0 (use 1 for no scaling)",
                        names[i]
                    ),
                ));
            }
            out[i] = if parts.len() == channels {
                parts
            } else {
                vec![parts[0]; channels]
            };
        }
        Ok(out)
    };
    let mean = norm("mean", 0.0)?;
    let std = norm("std_value", 1.0)?;

    // Alignments.
    let align = |key: &str, image_default: usize| -> Result<Vec<usize>> {
        let defaults = board.iter().map(|f| match f {
            InputFormat::Gray => 1,
            InputFormat::YuvNv12 => 2,
            f if f.is_rawdata() => 1,
            _ => image_default,
        });
        match per(key)? {
            None => Ok(defaults.collect()),
            Some((values, entry)) => values
                .iter()
                .zip(&names)
                .map(|(v, n)| {
                    v.parse::<usize>().ok().filter(|&a| a > 0).ok_or_else(|| {
                        ctx.invalid(
                            Some(entry.line),
                            key,
                            format!(
                                "`{key}` value `{v}` for input \"{n}\" must be a positive integer"
                            ),
                        )
                    })
                })
                .collect(),
        }
    };
    let width_alignment = align("input_width_alignment", image_alignment.0)?;
    let height_alignment = align("input_height_alignment", image_alignment.1)?;

    // Layouts.
    let layouts: Vec<Option<Layout>> = match per("input_layouts")? {
        None => vec![None; names.len()],
        Some((values, entry)) => {
            let mut out = Vec::new();
            for ((v, n), b) in values.iter().zip(&names).zip(&board) {
                let l = ctx.parse_enum(
                    entry,
                    v,
                    &format!("for input \"{n}\""),
                    Layout::ALL,
                    Layout::as_str,
                )?;
                if l == Layout::Nchw && matches!(b, InputFormat::Rgba | InputFormat::Bgra) {
                    return Err(ctx.invalid(
                        Some(entry.line),
                        "input_layouts",
                        format!(
                            "input \"{n}\" has input_formats {b}: RGBA/BGRA inputs do not support \
                             `input_layouts` (NCHW); remove it, or write NHWC as a placeholder"
                        ),
                    ));
                }
                out.push(Some(l));
            }
            out
        }
    };

    Ok((0..names.len())
        .map(|i| InputSpec {
            name: names[i].clone(),
            training_format: training[i],
            input_format: board[i],
            quantize: quantize[i],
            mean: mean[i].clone(),
            std: std[i].clone(),
            width_alignment: width_alignment[i],
            height_alignment: height_alignment[i],
            layout: layouts[i],
        })
        .collect())
}

fn build_outputs(ctx: &Ctx<'_>, sec: &Section) -> Result<Vec<OutputSpec>> {
    let Some(names_entry) = sec.get("outputs") else {
        return Err(ctx.invalid(
            Some(sec.line),
            "outputs",
            "[OUTPUT_CONFIG] has no `outputs`; add `outputs=<output names separated by ,>;`"
                .to_string(),
        ));
    };
    let names = ctx.names(names_entry, "output")?;
    let per = |key: &str| ctx.per_name(sec, key, &names, "outputs");
    let dequantize = match per("dequantizations")? {
        Some((values, entry)) => values
            .iter()
            .zip(&names)
            .map(|(v, n)| ctx.parse_bool(entry, v, n, "output"))
            .collect::<Result<Vec<_>>>()?,
        None => vec![true; names.len()],
    };
    let layouts = match per("output_layouts")? {
        Some((values, entry)) => values
            .iter()
            .zip(&names)
            .map(|(v, n)| {
                ctx.parse_enum(
                    entry,
                    v,
                    &format!("for output \"{n}\""),
                    Layout::ALL,
                    Layout::as_str,
                )
                .map(Some)
            })
            .collect::<Result<Vec<_>>>()?,
        None => vec![None; names.len()],
    };
    let formats = match per("output_formats")? {
        Some((values, entry)) => {
            let mut out = Vec::new();
            for ((v, n), &dq) in values.iter().zip(&names).zip(&dequantize) {
                let f = ctx.parse_enum(
                    entry,
                    v,
                    &format!("for output \"{n}\""),
                    OutputFormat::ALL,
                    OutputFormat::as_str,
                )?;
                if f == OutputFormat::RawdataF32Nhwc && !dq {
                    return Err(ctx.invalid(
                        Some(entry.line),
                        "output_formats",
                        format!(
                            "`output_formats` is RAWDATA_F32_NHWC for output \"{n}\" but its \
                             `dequantizations` is FALSE: RAWDATA_F32_NHWC outputs must be \
                             dequantized; set dequantizations=TRUE or use RAWDATA_S16_NHWC"
                        ),
                    ));
                }
                out.push(f);
            }
            out
        }
        None => dequantize
            .iter()
            .map(|&dq| {
                if dq {
                    OutputFormat::RawdataF32Nhwc
                } else {
                    OutputFormat::RawdataS16Nhwc
                }
            })
            .collect(),
    };
    Ok((0..names.len())
        .map(|i| OutputSpec {
            name: names[i].clone(),
            dequantize: dequantize[i],
            layout: layouts[i],
            format: formats[i],
        })
        .collect())
}

fn build_conv(ctx: &Ctx<'_>, sec: &Section) -> Result<ConvConfig> {
    let input_format = match sec.get("input_format") {
        None => None,
        Some(entry) => {
            if entry.value.contains(',') {
                return Err(ctx.invalid(
                    Some(entry.line),
                    "input_format",
                    format!(
                        "`input_format` in [CONV_CONFIG] takes one value, not a list (`{}`); to \
                         choose layers use `tensor_arrays`",
                        entry.value
                    ),
                ));
            }
            Some(ctx.parse_enum(
                entry,
                &entry.value,
                "in [CONV_CONFIG]",
                ConvInputFormat::ALL,
                ConvInputFormat::as_str,
            )?)
        }
    };
    let tensor_arrays = match sec.get("tensor_arrays") {
        Some(entry) => ctx.list(entry)?,
        None => Vec::new(),
    };
    Ok(ConvConfig {
        input_format,
        tensor_arrays,
    })
}
