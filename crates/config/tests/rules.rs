//! One test per rule, each on a real ini file under `fixtures/ini/`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ipukit_config::{ConfigError, ConvInputFormat, InputConfig, InputFormat, Layout, OutputFormat};
use std::path::PathBuf;

const ALIGN: (usize, usize) = (16, 2);

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/ini")
        .join(rel)
}

fn valid(name: &str) -> InputConfig {
    let path = fixture(&format!("valid/{name}"));
    match InputConfig::from_file(&path, ALIGN) {
        Ok(c) => c,
        Err(e) => panic!("{name} should parse: {e}"),
    }
}

/// Parses an invalid fixture and checks the line and the message fragments.
fn invalid(name: &str, line: Option<usize>, fragments: &[&str]) -> String {
    let path = fixture(&format!("invalid/{name}"));
    let err = InputConfig::from_file(&path, ALIGN).expect_err(name);
    let msg = err.to_string();
    assert!(
        !msg.contains('\n'),
        "{name}: message is not one line: {msg}"
    );
    assert!(
        msg.starts_with(&path.display().to_string()),
        "{name}: no path in: {msg}"
    );
    if let Some(l) = line {
        let loc = format!("{}:{l}: ", path.display());
        assert!(msg.starts_with(&loc), "{name}: expected line {l} in: {msg}");
    }
    for f in fragments {
        assert!(msg.contains(f), "{name}: expected `{f}` in: {msg}");
    }
    msg
}

macro_rules! invalid_tests {
    ($($test:ident: $file:literal, $line:expr, [$($frag:literal),* $(,)?];)*) => {
        $(
            #[test]
            fn $test() {
                invalid($file, $line, &[$($frag),*]);
            }
        )*
    };
}

invalid_tests! {
    // Syntax.
    no_section_header: "no_section_header.ini", Some(1),
        ["File contains no section headers.", "line: 1", "'inputs=data;'", "[INPUT_CONFIG]"];
    not_key_value: "not_key_value.ini", Some(3),
        ["Source contains parsing errors", "'input_formats BGR;'", "`key=value;`"];
    empty_key: "empty_key.ini", Some(3), ["has no key before `=`"];
    unclosed_section: "unclosed_section.ini", Some(1), ["has no closing `]`"];
    duplicate_section: "duplicate_section.ini", Some(6),
        ["section [INPUT_CONFIG] already exists (first at line 1)"];
    duplicate_key: "duplicate_key.ini", Some(4),
        ["option `input_formats` in section [INPUT_CONFIG] already exists (first at line 3)"];
    unknown_section: "unknown_section.ini", Some(4),
        ["unknown section [OUTPUT_CONFG]", "did you mean [OUTPUT_CONFIG]?"];
    unknown_key: "unknown_key.ini", Some(5),
        ["unknown key `std` in [INPUT_CONFIG]", "did you mean `std_value`?"];
    key_in_wrong_section: "key_in_wrong_section.ini", Some(4),
        ["key `dequantizations` belongs in [OUTPUT_CONFIG], not in [INPUT_CONFIG]"];
    comment_without_semicolon: "comment_without_semicolon.ini", Some(2),
        ["value of `inputs` has no closing `;` but contains `#`"];
    indented_after_semicolon: "indented_after_semicolon.ini", Some(4),
        ["'mean=127.5;' is indented deeper than `input_formats` (line 3)", "remove the indentation"];
    not_utf8: "not_utf8.ini", None, ["not UTF-8 text (invalid byte at offset 23)"];

    // Sections and mandatory keys.
    missing_input_config: "missing_input_config.ini", None, ["missing section [INPUT_CONFIG]"];
    missing_output_config: "missing_output_config.ini", None, ["missing section [OUTPUT_CONFIG]"];
    missing_inputs: "missing_inputs.ini", Some(1), ["[INPUT_CONFIG] has no `inputs`"];
    missing_outputs: "missing_outputs.ini", Some(4), ["[OUTPUT_CONFIG] has no `outputs`"];
    missing_input_formats: "missing_input_formats.ini", Some(2), ["[INPUT_CONFIG] has no `input_formats`"];

    // Lists and names.
    empty_entry: "empty_entry.ini", Some(2),
        ["`inputs=images,,mask` has an empty entry", "doubled or trailing `,`"];
    empty_value: "empty_value.ini", Some(2), ["`inputs` is empty"];
    names_too_long: "names_too_long.ini", Some(2),
        ["the names of all inputs must not exceed 2048 characters"];
    duplicate_name: "duplicate_name.ini", Some(2), ["input \"images\" appears twice in `inputs`"];

    // Counts of per-input and per-output keys.
    count_input_formats: "count_input_formats.ini", Some(3),
        ["`input_formats` has 1 value(s) but `inputs` has 2 (images, mask)"];
    count_quantizations: "count_quantizations.ini", Some(4),
        ["`quantizations` has 2 value(s) but `inputs` has 1 (images)"];
    count_input_layouts: "count_input_layouts.ini", Some(4),
        ["`input_layouts` has 1 value(s) but `inputs` has 2"];
    count_alignment: "count_alignment.ini", Some(4),
        ["`input_width_alignment` has 2 value(s) but `inputs` has 1"];
    count_dequantizations: "count_dequantizations.ini", Some(6),
        ["`dequantizations` has 1 value(s) but `outputs` has 2 (boxes, scores)"];
    count_output_formats: "count_output_formats.ini", Some(6),
        ["`output_formats` has 2 value(s) but `outputs` has 1"];

    // Formats.
    bad_input_format: "bad_input_format.ini", Some(3),
        ["`input_formats` value `RBG` for input \"images\" is not supported", "did you mean RGB?"];
    board_format_as_training: "board_format_as_training.ini", Some(3),
        ["`training_input_formats` value YUV_NV12 for input \"images\" is a board format"];
    mismatch_bgr: "mismatch_bgr.ini", Some(4),
        ["`input_formats` is BGR only support `training_input_formats` is RGB/BGR!", "training_input_formats=GRAY"];
    mismatch_gray: "mismatch_gray.ini", Some(4),
        ["`input_formats` is GRAY only support `training_input_formats` is GRAY!"];
    mismatch_rawdata: "mismatch_rawdata.ini", Some(4),
        ["`input_formats` is RAWDATA_S16_NHWC only support `training_input_formats` is RAWDATA_S16_NHWC!"];
    mismatch_yuv: "mismatch_yuv.ini", Some(4),
        ["`input_formats` is YUV_NV12 only support `training_input_formats` is RGB/BGR/GRAY!"];
    yuv_without_training: "yuv_without_training.ini", Some(3),
        ["input_formats YUV_NV12, so `training_input_formats` must say"];

    // RAWDATA inputs.
    rawdata_not_last: "rawdata_not_last.ini", Some(2),
        ["rawdata inputs must be arranged at the end", "\"input1\" (RAWDATA_F32_NHWC) comes before image input \"input2\""];
    rawdata_with_mean: "rawdata_with_mean.ini", Some(4),
        ["`mean` has 3 value(s) but there are 2 image input(s) (input0, input2)", "RAWDATA inputs (input1) must not have mean/std_value"];
    all_rawdata_with_std: "all_rawdata_with_std.ini", Some(4),
        ["`std_value` is set but every input is RAWDATA (tokens)"];

    // mean / std_value.
    mean_wrong_channels: "mean_wrong_channels.ini", Some(4),
        ["`mean` for input \"images\" (RGB) has 2 values; give one value, or 3 values R:G:B"];
    gray_three_means: "gray_three_means.ini", Some(5),
        ["`mean` for input \"data\" (GRAY) has 3 values; GRAY takes one value"];
    mean_not_number: "mean_not_number.ini", Some(4), ["`mean` value `abc` for input \"images\" is not a number"];
    std_zero: "std_zero.ini", Some(5), ["`std_value` for input \"images\" is 0", "must be > 0"];

    // Other per-input values.
    bad_bool: "bad_bool.ini", Some(4), ["`quantizations` value `YES` for input \"images\" must be TRUE or FALSE"];
    bad_alignment: "bad_alignment.ini", Some(4),
        ["`input_height_alignment` value `0` for input \"images\" must be a positive integer"];
    bad_layout: "bad_layout.ini", Some(4),
        ["`input_layouts` value `CHW` for input \"images\" is not supported", "allowed: NHWC, NCHW"];
    rgba_nchw: "rgba_nchw.ini", Some(4),
        ["input \"images\" has input_formats RGBA: RGBA/BGRA inputs do not support `input_layouts`"];

    // Outputs and [CONV_CONFIG].
    f32_output_without_dequantize: "f32_output_without_dequantize.ini", Some(7),
        ["`output_formats` is RAWDATA_F32_NHWC for output \"prob\" but its `dequantizations` is FALSE"];
    bad_output_format: "bad_output_format.ini", Some(6),
        ["`output_formats` value `RAWDATA_F16_NHWC` for output \"prob\" is not supported", "did you mean RAWDATA_S16_NHWC?"];
    bad_conv_input_format: "bad_conv_input_format.ini", Some(7),
        ["`input_format` value `ALL_IN16` in [CONV_CONFIG] is not supported", "did you mean ALL_INT16?"];
    conv_input_format_list: "conv_input_format_list.ini", Some(7),
        ["`input_format` in [CONV_CONFIG] takes one value, not a list"];
}

#[test]
fn every_invalid_fixture_is_tested() {
    let src = include_str!("rules.rs");
    let dir = fixture("invalid");
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            src.contains(&format!("\"{name}\"")),
            "no test for fixtures/ini/invalid/{name}"
        );
    }
}

#[test]
fn missing_file() {
    let err = InputConfig::from_file(fixture("invalid/does_not_exist.ini"), ALIGN).unwrap_err();
    assert!(matches!(err, ConfigError::Io { .. }));
    assert!(
        err.to_string().contains("cannot read the input config"),
        "{err}"
    );
}

#[test]
fn basic_example() {
    let c = valid("basic.ini");
    assert_eq!(c.inputs.len(), 1);
    let i = &c.inputs[0];
    assert_eq!(i.name, "data");
    assert_eq!(i.training_format, InputFormat::Rgb);
    assert_eq!(i.input_format, InputFormat::Bgr);
    assert!(i.quantize);
    assert_eq!(i.mean, vec![127.5; 3]);
    assert_eq!(i.std, vec![255.0; 3]);
    assert_eq!((i.width_alignment, i.height_alignment), ALIGN);
    assert_eq!(i.layout, None);
    assert_eq!(c.outputs[0].name, "prob");
    assert!(c.outputs[0].dequantize);
    assert_eq!(c.outputs[0].format, OutputFormat::RawdataF32Nhwc);
    assert_eq!(c.conv.tensor_arrays, vec!["conv1-1", "conv2-1"]);
    assert_eq!(c.conv.input_format, None);
}

#[test]
fn resnet18_channel_order() {
    let c = valid("resnet18.ini");
    let i = &c.inputs[0];
    assert_eq!(i.mean, vec![123.675, 116.28, 103.53]);
    assert_eq!(i.channel_mean(), vec![123.675, 116.28, 103.53]);
    let mut bgr = i.clone();
    bgr.training_format = InputFormat::Bgr;
    assert_eq!(bgr.channel_mean(), vec![103.53, 116.28, 123.675]);
    assert_eq!(bgr.channel_std(), vec![57.375, 57.12, 58.395]);
    assert_eq!(valid("onnx_yolov8s.ini").inputs[0].std, vec![255.0; 3]);
}

#[test]
fn multi_input_rawdata_last() {
    let c = valid("multi_input_rawdata_last.ini");
    let names: Vec<&str> = c.inputs.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["input0", "input2", "input1"]);
    // training_input_formats defaults to input_formats.
    assert_eq!(c.inputs[2].training_format, InputFormat::RawdataF32Nhwc);
    assert_eq!(c.inputs[0].mean, vec![127.5; 3]);
    assert_eq!(c.inputs[1].mean, vec![0.0; 3]);
    assert_eq!(c.inputs[1].std, vec![255.0; 3]);
    assert!(c.inputs[2].mean.is_empty() && c.inputs[2].std.is_empty());
    assert_eq!(
        (c.inputs[2].width_alignment, c.inputs[2].height_alignment),
        (1, 1)
    );
    // output_formats defaults from dequantizations.
    assert_eq!(c.outputs[0].format, OutputFormat::RawdataF32Nhwc);
    assert_eq!(c.outputs[1].format, OutputFormat::RawdataS16Nhwc);
    assert!(!c.outputs[1].dequantize);
    c.check_against_model(
        &[("input0", 4), ("input1", 3), ("input2", 4)],
        &["out0", "out1"],
    )
    .unwrap();
}

#[test]
fn gray_defaults_to_alignment_one() {
    let c = valid("gray.ini");
    let i = &c.inputs[0];
    assert_eq!(i.training_format, InputFormat::Gray);
    assert_eq!(i.mean, vec![33.318]);
    assert_eq!(i.std, vec![1.0]);
    assert_eq!((i.width_alignment, i.height_alignment), (1, 1));
}

#[test]
fn yuv_nv12_defaults_to_alignment_two() {
    let c = valid("gray_yuv_nv12.ini");
    let i = &c.inputs[0];
    assert_eq!(i.input_format, InputFormat::YuvNv12);
    assert_eq!(i.training_format, InputFormat::Gray);
    assert_eq!((i.width_alignment, i.height_alignment), (2, 2));
}

#[test]
fn layouts_and_output_formats() {
    let c = valid("layouts.ini");
    assert_eq!(c.inputs[0].layout, Some(Layout::Nhwc));
    assert_eq!(c.inputs[1].layout, Some(Layout::Nchw));
    assert!(!c.inputs[2].quantize);
    assert_eq!(c.outputs[0].layout, Some(Layout::Nchw));
    assert_eq!(c.outputs[2].format, OutputFormat::RawdataU8Nhwc);
    assert_eq!(c.outputs[1].format, OutputFormat::RawdataS16Nhwc);
    c.check_against_model(
        &[("input0", 3), ("input1", 4), ("input2", 4)],
        &["boxes", "scores", "count"],
    )
    .unwrap();
}

#[test]
fn syntax_variants() {
    let c = valid("syntax_variants.ini");
    assert_eq!(c.inputs[0].name, "images");
    assert_eq!(c.inputs[1].name, "mask");
    // RGBA defaults its training format to RGB.
    assert_eq!(c.inputs[0].input_format, InputFormat::Rgba);
    assert_eq!(c.inputs[0].training_format, InputFormat::Rgb);
    assert_eq!(c.inputs[1].input_format, InputFormat::Bgr);
    assert_eq!(c.inputs[0].mean, vec![0.0; 3]);
    assert_eq!(c.inputs[1].mean, vec![127.5; 3]);
    assert_eq!(c.inputs[0].std, vec![1.0; 3]);
    assert_eq!(c.inputs[1].std, vec![255.0; 3]);
    assert_eq!(
        (c.inputs[0].width_alignment, c.inputs[0].height_alignment),
        (32, 2)
    );
    assert!(!c.outputs[0].dequantize);
    assert_eq!(c.outputs[0].format, OutputFormat::RawdataS16Nhwc);
    assert_eq!(c.conv.input_format, Some(ConvInputFormat::AllInt16));
}

#[test]
fn defaults_without_optional_keys() {
    let c = valid("conv_all_uint8.ini");
    let i = &c.inputs[0];
    assert_eq!(i.training_format, InputFormat::Rgb);
    assert!(i.quantize);
    assert!(c.outputs[0].dequantize);
    assert_eq!(c.conv.input_format, Some(ConvInputFormat::AllUint8));
}

#[test]
fn json_round_trip() {
    for name in [
        "basic.ini",
        "multi_input_rawdata_last.ini",
        "layouts.ini",
        "syntax_variants.ini",
        "gray_yuv_nv12.ini",
    ] {
        let c = valid(name);
        let json = c.to_json();
        assert!(
            json.contains("\"RAWDATA_") || json.contains("\"RGB\"") || json.contains("\"GRAY\"")
        );
        assert_eq!(InputConfig::from_json(&json).unwrap(), c, "{name}");
    }
    assert!(InputConfig::from_json("{\"inputs\": 3}").is_err());
}

#[test]
fn model_check_unknown_input() {
    let c = valid("onnx_yolov8s.ini");
    let err = c
        .check_against_model(&[("images1", 4)], &["output0"])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "The model doesn't have input named \"images\" (did you mean \"images1\"?); fix `inputs` \
         in the input config (model inputs: images1)"
    );
}

#[test]
fn model_check_unknown_output() {
    let c = valid("onnx_yolov8s.ini");
    let err = c
        .check_against_model(&[("images", 4)], &["output1"])
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("The model doesn't have output named \"output0\""),
        "{err}"
    );
}

#[test]
fn model_check_input_count() {
    let c = valid("onnx_yolov8s.ini");
    let err = c
        .check_against_model(&[("images", 4), ("mask", 4)], &["output0"])
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("lists 1 input(s) but the model has 2 (images, mask)")
            && err
                .to_string()
                .contains("missing input(s) to `inputs`: mask"),
        "{err}"
    );
    let err = c
        .check_against_model(&[("images", 4)], &["output0", "aux"])
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("lists 1 output(s) but the model has 2"),
        "{err}"
    );
}

#[test]
fn model_check_nchw_needs_4d() {
    let c = valid("layouts.ini");
    let err = c
        .check_against_model(
            &[("input0", 3), ("input1", 3), ("input2", 4)],
            &["boxes", "scores", "count"],
        )
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("`input_layouts` is NCHW for input \"input1\", which has 3 dimensions"),
        "{err}"
    );
}

/// Broken inis never panic: every prefix, every single-byte edit, and random line shuffles of
/// the valid fixtures produce either a config or an error.
#[test]
fn broken_inis_never_panic() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let noise = b"[]=;:#,\n \t\x00\xffaZ9_.-";
    for entry in std::fs::read_dir(fixture("valid")).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        for cut in 0..bytes.len() {
            let text = String::from_utf8_lossy(&bytes[..cut]);
            let _ = InputConfig::parse(&text, "fuzz.ini", ALIGN);
        }
        for _ in 0..400 {
            let mut b = bytes.clone();
            for _ in 0..(rand() % 4 + 1) {
                let pos = (rand() as usize) % b.len();
                let c = noise[(rand() as usize) % noise.len()];
                match rand() % 3 {
                    0 => b[pos] = c,
                    1 => b.insert(pos, c),
                    _ => {
                        b.remove(pos);
                    }
                }
            }
            let text = String::from_utf8_lossy(&b);
            if let Ok(c) = InputConfig::parse(&text, "fuzz.ini", ALIGN) {
                let _ = c.check_against_model(&[("data", 4)], &["prob"]);
                assert_eq!(InputConfig::from_json(&c.to_json()).unwrap(), c);
            }
            let mut lines: Vec<&str> = text.lines().collect();
            let n = lines.len();
            if n > 1 {
                lines.swap((rand() as usize) % n, (rand() as usize) % n);
            }
            let _ = InputConfig::parse(&lines.join("\n"), "fuzz.ini", ALIGN);
        }
    }
}
