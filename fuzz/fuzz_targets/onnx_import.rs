//! The ONNX importer must return `Ok` or `Err` on any bytes: never panic. Whatever it accepts
//! must be a valid graph.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let opts = ipukit_onnx::ImportOptions::default();
    if let Ok(graph) = ipukit_onnx::import_bytes(data, &opts) {
        graph.validate().expect("an imported graph must validate");
    }
});
