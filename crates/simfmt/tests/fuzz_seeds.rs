//! Writes the test graphs as a seed corpus for the `read_sim` fuzz target.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use ipukit_simfmt::{write_sim, SimMetadata, Stage};
use std::path::Path;

#[test]
#[ignore = "writes fuzz/corpus/read_sim for cargo fuzz"]
fn write_fuzz_seeds() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/read_sim");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, g) in common::all_graphs() {
        let bytes = write_sim(&g, &SimMetadata::new(Stage::Float, "seed")).unwrap();
        std::fs::write(dir.join(format!("{name}.sim")), bytes).unwrap();
    }
    for (name, g) in common::fixed::fixed_graphs() {
        let bytes = write_sim(&g, &SimMetadata::new(Stage::Fixed, "seed")).unwrap();
        std::fs::write(dir.join(format!("{name}.sim")), bytes).unwrap();
    }
}
