//! Imports an ONNX model and prints its inputs, outputs and operator counts.
//!
//! `cargo run --release -p ipukit-onnx --example onnx_summary -- model.onnx [1,3,224,224[:...]]`

use std::collections::BTreeMap;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args.get(1) else {
        eprintln!("usage: onnx_summary MODEL.onnx [INPUT_SHAPES]");
        std::process::exit(2);
    };
    let input_shapes = args.get(2).map(|s| {
        s.split(':')
            .map(|d| d.split(',').filter_map(|v| v.parse().ok()).collect())
            .collect()
    });
    let opts = ipukit_onnx::ImportOptions {
        input_shapes,
        ..Default::default()
    };
    let g = match ipukit_onnx::import_file(path, &opts) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    for &i in &g.inputs {
        let t = g.tensor(i);
        println!("input  {} {} {:?}", t.name, t.dtype, t.shape);
    }
    for &o in &g.outputs {
        let t = g.tensor(o);
        println!("output {} {} {:?}", t.name, t.dtype, t.shape);
    }
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for n in &g.nodes {
        *counts.entry(n.op.name()).or_default() += 1;
    }
    println!(
        "{} nodes, {} constant bytes",
        g.nodes.len(),
        g.const_bytes()
    );
    for (op, n) in counts {
        println!("  {op:<18} {n}");
    }
}
