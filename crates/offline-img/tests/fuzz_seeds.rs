//! Writes images as a seed corpus for the `read_img` fuzz target.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use ipukit_offline_img::{compile, BatchMode, CompileOptions};
use std::path::Path;

#[test]
#[ignore = "writes fuzz/corpus/read_img for cargo fuzz"]
fn write_fuzz_seeds() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/read_img");
    std::fs::create_dir_all(&dir).unwrap();
    let (g, meta) = common::small_fixed();
    for (name, mode, sizes) in [
        ("small_nbuf", BatchMode::NBuf, vec![1]),
        ("small_onebuf", BatchMode::OneBuf, vec![1, 2, 4]),
    ] {
        let opts = CompileOptions {
            batch_mode: mode,
            batch_sizes: sizes,
            ..Default::default()
        };
        let c = compile(&g, &meta, &opts).unwrap();
        std::fs::write(dir.join(format!("{name}.img")), c.bytes).unwrap();
    }
}
