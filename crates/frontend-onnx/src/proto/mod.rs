//! Protobuf types generated from the vendored `onnx.proto` (see `proto/README.md`).

#![allow(missing_docs, clippy::all, clippy::pedantic, rustdoc::all)]

include!("onnx.rs");
