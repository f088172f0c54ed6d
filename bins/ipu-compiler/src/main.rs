//! `ipu-compiler`: fixed.sim → offline image.

fn main() {}
