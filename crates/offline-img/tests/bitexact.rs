//! The offline image of the bundled default model against the fixed model run by the
//! runtime: identical integers on the two bundled images, for batch 1 and for batches in
//! both batch modes; compiling twice gives the same bytes.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use ipukit_offline_img::{compile, BatchMode, CompileOptions, ImgError, LoadOptions, OfflineModel};
use ipukit_runtime::Value;

fn stack(items: &[&Value]) -> Value {
    let mut shape = items[0].shape.clone();
    shape[0] = items.len();
    let mut bytes: Vec<u8> = Vec::new();
    for v in items {
        bytes.extend(v.data.to_le_bytes());
    }
    Value::new(
        shape,
        ipukit_ir::TensorData::from_le_bytes(items[0].dtype(), &bytes).unwrap(),
    )
    .unwrap()
}

fn opts(mode: BatchMode, sizes: &[usize]) -> CompileOptions {
    CompileOptions {
        batch_mode: mode,
        batch_sizes: sizes.to_vec(),
        ..Default::default()
    }
}

#[test]
fn batch_one_is_bit_exact_with_the_fixed_model() {
    let (g, meta, _) = common::default_fixed();
    let compiled = compile(&g, &meta, &CompileOptions::default()).unwrap();
    eprintln!("{}", compiled.report);
    let mut m =
        OfflineModel::from_bytes(&compiled.bytes, &LoadOptions { threads: Some(2) }).unwrap();
    let imgs = common::images(&g, &meta);
    for img in &imgs {
        let want = common::session_outputs(&g, img);
        let got = m.run(vec![img.clone()]).unwrap();
        assert_eq!(got, want);
    }
    // The fixed model's I/O.
    let s = ipukit_runtime::Session::new(g.clone(), Default::default()).unwrap();
    assert_eq!(m.input_details(), s.input_details());
    assert_eq!(m.output_details(), s.output_details());
}

#[test]
fn batches_in_both_modes_are_bit_exact() {
    let (g, meta, _) = common::default_fixed();
    let imgs = common::images(&g, &meta);
    let want: Vec<Vec<Value>> = imgs
        .iter()
        .map(|i| common::session_outputs(&g, i))
        .collect();
    let both = stack(&[&imgs[0], &imgs[1]]);
    let want_both: Vec<Value> = (0..want[0].len())
        .map(|o| stack(&[&want[0][o], &want[1][o]]))
        .collect();
    for (mode, sizes) in [
        (BatchMode::NBuf, vec![2]),
        (BatchMode::OneBuf, vec![1, 2, 4]),
    ] {
        let c = compile(&g, &meta, &opts(mode, &sizes)).unwrap();
        let mut m = OfflineModel::from_bytes(&c.bytes, &LoadOptions { threads: Some(1) }).unwrap();
        assert_eq!(m.run(vec![both.clone()]).unwrap(), want_both, "{mode:?}");
        assert_eq!(m.run(vec![imgs[1].clone()]).unwrap(), want[1], "{mode:?}");
    }
    // n_buf up to 2 refuses 3; one_buf [2, 4] refuses 1 and 3.
    let c = compile(&g, &meta, &opts(BatchMode::NBuf, &[2])).unwrap();
    let mut m = OfflineModel::from_bytes(&c.bytes, &LoadOptions::default()).unwrap();
    let three = stack(&[&imgs[0], &imgs[1], &imgs[0]]);
    let e = m.set_input(0, three.clone()).unwrap_err();
    assert!(matches!(e, ImgError::Batch(_)), "{e}");
    let c = compile(&g, &meta, &opts(BatchMode::OneBuf, &[4, 2])).unwrap();
    let mut m = OfflineModel::from_bytes(&c.bytes, &LoadOptions::default()).unwrap();
    assert_eq!(m.batch_sizes(), &[2, 4]);
    assert!(m.set_input(0, imgs[0].clone()).is_err());
    assert!(m.set_input(0, three).is_err());
}

#[test]
fn compiling_twice_gives_identical_bytes_and_the_arena_reuses_memory() {
    let (g, meta, _) = common::default_fixed();
    let a = compile(&g, &meta, &CompileOptions::default()).unwrap();
    let b = compile(&g, &meta, &CompileOptions::default()).unwrap();
    assert_eq!(a.bytes, b.bytes);
    let r = &a.report;
    assert!(
        r.arena_bytes * 3 < r.naive_bytes,
        "{} vs {}",
        r.arena_bytes,
        r.naive_bytes
    );
    assert!(r.steps < r.nodes_in, "fusion should merge steps");
    assert!(r.total_macs > 0 && r.total_cycles > 0);
    // Decoding gives the image back.
    assert_eq!(ipukit_offline_img::decode(&a.bytes).unwrap(), a.image);
}
