//! Files for the official TFLite interpreter.
//!
//! `builtin_only_graph_for_tflite` writes a float.sim made only of builtin operators (SAME conv,
//! padded conv as PAD + VALID conv, depthwise, relu6, add, bilinear and nearest resize, concat,
//! mean, fully connected, softmax, max pool), an input and the outputs expected by the IR's
//! semantics (naive loops below). With `IPUKIT_TFLITE_PYTHON` pointing at a Python that has
//! `ai-edge-litert`, it runs `xtask/py/tflite_run.py` and compares; otherwise it only writes the
//! files. `IPUKIT_TFLITE_DIR` keeps them in a chosen directory.
//!
//! `single_op_models_for_tflite` (ignored) writes one model per builtin-mapped node of the test
//! graphs, with inputs, to check that the interpreter accepts every mapping.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use ipukit_ir::ops::*;
use ipukit_ir::{DType, Graph, Op, TensorData, TensorId};
use ipukit_simfmt::{write_sim_file, SimMetadata, Stage};
use std::path::{Path, PathBuf};

fn npy_header(descr: &str, shape: &[usize]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(h.len() as u16).to_le_bytes());
    out.extend_from_slice(h.as_bytes());
    out
}

fn write_npy(path: &Path, data: &TensorData, shape: &[usize]) {
    let descr = match data.dtype() {
        DType::F32 => "<f4",
        DType::I64 => "<i8",
        DType::I32 => "<i4",
        DType::I16 => "<i2",
        DType::U16 => "<u2",
        DType::I8 => "|i1",
        DType::U8 => "|u1",
        DType::Bool => "|b1",
    };
    let mut out = npy_header(descr, shape);
    out.extend(data.to_le_bytes());
    std::fs::write(path, out).unwrap();
}

fn read_npy_f32(path: &Path) -> Vec<f32> {
    let b = std::fs::read(path).unwrap();
    let hlen = u16::from_le_bytes([b[8], b[9]]) as usize;
    let header = std::str::from_utf8(&b[10..10 + hlen]).unwrap();
    assert!(header.contains("<f4"), "{header}");
    b[10 + hlen..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// A dense NHWC tensor for the reference loops.
#[derive(Clone)]
struct T {
    s: Vec<usize>,
    d: Vec<f32>,
}

impl T {
    fn at(&self, n: usize, h: usize, w: usize, c: usize) -> f32 {
        self.d[((n * self.s[1] + h) * self.s[2] + w) * self.s[3] + c]
    }
}

fn conv_ref(
    x: &T,
    w: &T,
    b: Option<&[f32]>,
    s: usize,
    p: Padding2d,
    dw: bool,
    act: fn(f32) -> f32,
) -> T {
    let (kh, kw) = (w.s[1], w.s[2]);
    let oh = (x.s[1] + p.top + p.bottom - kh) / s + 1;
    let ow = (x.s[2] + p.left + p.right - kw) / s + 1;
    let co = if dw { w.s[3] } else { w.s[0] };
    let mut d = vec![0.0; oh * ow * co];
    for oy in 0..oh {
        for ox in 0..ow {
            for o in 0..co {
                let mut acc = b.map_or(0.0, |b| b[o]);
                for ky in 0..kh {
                    for kx in 0..kw {
                        let iy = (oy * s + ky) as isize - p.top as isize;
                        let ix = (ox * s + kx) as isize - p.left as isize;
                        if iy < 0 || ix < 0 || iy >= x.s[1] as isize || ix >= x.s[2] as isize {
                            continue;
                        }
                        let (iy, ix) = (iy as usize, ix as usize);
                        if dw {
                            acc += x.at(0, iy, ix, o) * w.d[(ky * kw + kx) * co + o];
                        } else {
                            for i in 0..x.s[3] {
                                acc += x.at(0, iy, ix, i)
                                    * w.d[((o * kh + ky) * kw + kx) * w.s[3] + i];
                            }
                        }
                    }
                }
                d[(oy * ow + ox) * co + o] = act(acc);
            }
        }
    }
    T {
        s: vec![1, oh, ow, co],
        d,
    }
}

fn resize_ref(x: &T, r: &Resize) -> T {
    let [oh, ow] = r.size;
    let c = x.s[3];
    let mut d = Vec::with_capacity(oh * ow * c);
    let clampf = |v: f32, n: usize| v.max(0.0).min((n - 1) as f32);
    for oy in 0..oh {
        for ox in 0..ow {
            let sy = r.source_coord(oy, x.s[1], oh, r.scales[0]);
            let sx = r.source_coord(ox, x.s[2], ow, r.scales[1]);
            for ch in 0..c {
                let v = match r.mode {
                    ResizeMode::Linear => {
                        let (sy, sx) = (clampf(sy, x.s[1]), clampf(sx, x.s[2]));
                        let (y0, x0) = (sy.floor() as usize, sx.floor() as usize);
                        let (y1, x1) = ((y0 + 1).min(x.s[1] - 1), (x0 + 1).min(x.s[2] - 1));
                        let (fy, fx) = (sy - y0 as f32, sx - x0 as f32);
                        let top = x.at(0, y0, x0, ch) * (1.0 - fx) + x.at(0, y0, x1, ch) * fx;
                        let bot = x.at(0, y1, x0, ch) * (1.0 - fx) + x.at(0, y1, x1, ch) * fx;
                        top * (1.0 - fy) + bot * fy
                    }
                    ResizeMode::Nearest(NearestMode::RoundPreferCeil) => {
                        let y = clampf((sy + 0.5).floor(), x.s[1]) as usize;
                        let xx = clampf((sx + 0.5).floor(), x.s[2]) as usize;
                        x.at(0, y, xx, ch)
                    }
                    ResizeMode::Nearest(_) | ResizeMode::Cubic { .. } => {
                        unreachable!("the test model uses linear and round_prefer_ceil only")
                    }
                };
                d.push(v);
            }
        }
    }
    T {
        s: vec![1, oh, ow, c],
        d,
    }
}

fn maxpool_same_ref(x: &T, k: usize, s: usize, p: Padding2d) -> T {
    let oh = (x.s[1] + p.top + p.bottom - k) / s + 1;
    let ow = (x.s[2] + p.left + p.right - k) / s + 1;
    let c = x.s[3];
    let mut d = vec![f32::NEG_INFINITY; oh * ow * c];
    for oy in 0..oh {
        for ox in 0..ow {
            for ky in 0..k {
                for kx in 0..k {
                    let iy = (oy * s + ky) as isize - p.top as isize;
                    let ix = (ox * s + kx) as isize - p.left as isize;
                    if iy < 0 || ix < 0 || iy >= x.s[1] as isize || ix >= x.s[2] as isize {
                        continue;
                    }
                    for ch in 0..c {
                        let v = x.at(0, iy as usize, ix as usize, ch);
                        let o = &mut d[(oy * ow + ox) * c + ch];
                        *o = o.max(v);
                    }
                }
            }
        }
    }
    T {
        s: vec![1, oh, ow, c],
        d,
    }
}

fn data(g: &Graph, t: TensorId) -> Vec<f32> {
    g.tensor(t).data.as_ref().unwrap().to_f32_vec()
}

/// The builtin-only model and the expected outputs for `input`.
fn builtin_model(input: &[f32]) -> (Graph, Vec<Vec<f32>>) {
    let mut b = B::new();
    let x = b.input(DType::F32, &[1, 8, 8, 3]);
    let w1 = b.weights(&[8, 3, 3, 3]);
    let b1 = b.weights(&[8]);
    let c1 = b.op(
        conv(1, pad(1, 1, 1, 1), FusedActivation::Relu6),
        &[x, w1, b1],
    );
    let w2 = b.weights(&[8, 3, 3, 3]);
    let c2 = b.op(conv(2, pad(1, 1, 1, 1), FusedActivation::None), &[x, w2]);
    let wd = b.weights(&[1, 3, 3, 8]);
    let bd = b.weights(&[8]);
    let d = b.op(dw(1, pad(1, 1, 1, 1), FusedActivation::Relu), &[c2, wd, bd]);
    let a = b.op(Op::Binary(BinaryOp::Add), &[c2, d]);
    let lin = Resize {
        mode: ResizeMode::Linear,
        coord: CoordTransform::HalfPixel,
        size: [8, 8],
        scales: [2.0, 2.0],
    };
    let r = b.op(Op::Resize(lin.clone()), &[a]);
    let near = Resize {
        mode: ResizeMode::Nearest(NearestMode::RoundPreferCeil),
        coord: CoordTransform::HalfPixel,
        size: [8, 8],
        scales: [2.0, 2.0],
    };
    let rn = b.op(Op::Resize(near.clone()), &[a]);
    let cat = b.op(Op::Concat(Concat { axis: 3 }), &[c1, r]);
    let m = b.op(
        Op::Reduce(Reduce {
            op: ReduceOp::Mean,
            axes: vec![1, 2],
            keep_dims: false,
        }),
        &[cat],
    );
    let fw = b.weights(&[10, 16]);
    let fb = b.weights(&[10]);
    let f = b.op(Op::FullyConnected(FullyConnected::default()), &[m, fw, fb]);
    let s = b.op(Op::Softmax(Softmax { axis: 1 }), &[f]);
    let mp = b.op(pool(PoolKind::Max, 3, 2, pad(0, 0, 1, 1), false), &[rn]);
    b.out(s);
    b.out(mp);
    let g = b.finish();

    // Reference.
    let t = |t: TensorId| T {
        s: g.tensor(t).shape.clone(),
        d: data(&g, t),
    };
    let xi = T {
        s: vec![1, 8, 8, 3],
        d: input.to_vec(),
    };
    let relu6 = |v: f32| v.clamp(0.0, 6.0);
    let relu = |v: f32| v.max(0.0);
    let id = |v: f32| v;
    let c1r = conv_ref(
        &xi,
        &t(w1),
        Some(&data(&g, b1)),
        1,
        pad(1, 1, 1, 1),
        false,
        relu6,
    );
    let c2r = conv_ref(&xi, &t(w2), None, 2, pad(1, 1, 1, 1), false, id);
    let dr = conv_ref(
        &c2r,
        &t(wd),
        Some(&data(&g, bd)),
        1,
        pad(1, 1, 1, 1),
        true,
        relu,
    );
    let ar = T {
        s: c2r.s.clone(),
        d: c2r.d.iter().zip(&dr.d).map(|(a, b)| a + b).collect(),
    };
    let rr = resize_ref(&ar, &lin);
    let rnr = resize_ref(&ar, &near);
    let mut mean = [0.0f32; 16];
    for p in 0..64 {
        for ch in 0..8 {
            mean[ch] += c1r.d[p * 8 + ch] / 64.0;
            mean[8 + ch] += rr.d[p * 8 + ch] / 64.0;
        }
    }
    let (fwd, fbd) = (data(&g, fw), data(&g, fb));
    let logits: Vec<f32> = (0..10)
        .map(|o| fbd[o] + (0..16).map(|k| mean[k] * fwd[o * 16 + k]).sum::<f32>())
        .collect();
    let mx = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = logits.iter().map(|v| (v - mx).exp()).collect();
    let sum: f32 = e.iter().sum();
    let soft: Vec<f32> = e.iter().map(|v| v / sum).collect();
    let mpr = maxpool_same_ref(&rnr, 3, 2, pad(0, 0, 1, 1));
    (g, vec![soft, mpr.d])
}

fn out_dir(name: &str) -> (PathBuf, Option<tempfile::TempDir>) {
    match std::env::var_os("IPUKIT_TFLITE_DIR") {
        Some(d) => {
            let p = PathBuf::from(d).join(name);
            std::fs::create_dir_all(&p).unwrap();
            (p, None)
        }
        None => {
            let t = tempfile::tempdir().unwrap();
            (t.path().to_path_buf(), Some(t))
        }
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../xtask/py/tflite_run.py")
}

#[test]
fn builtin_only_graph_for_tflite() {
    let input = floats(8 * 8 * 3, 99);
    let (g, expected) = builtin_model(&input);
    let (dir, _keep) = out_dir("builtin_only");
    let model = dir.join("model_float.sim");
    write_sim_file(
        &model,
        &g,
        &SimMetadata::new(Stage::Float, "tflite_interop test"),
    )
    .unwrap();
    write_npy(&dir.join("in0.npy"), &input.clone().into(), &[1, 8, 8, 3]);
    for (i, e) in expected.iter().enumerate() {
        let shape = &g.tensor(g.outputs[i]).shape;
        write_npy(
            &dir.join(format!("expected{i}.npy")),
            &e.clone().into(),
            shape,
        );
    }
    let Some(python) = std::env::var_os("IPUKIT_TFLITE_PYTHON") else {
        eprintln!(
            "wrote {}; set IPUKIT_TFLITE_PYTHON to run it in TFLite",
            model.display()
        );
        return;
    };
    for resolver in ["auto", "ref"] {
        let status = std::process::Command::new(&python)
            .arg(script())
            .arg(&model)
            .arg(dir.join("in0.npy"))
            .args(["--out", "o0.npy", "--out", "o1.npy", "--resolver", resolver])
            .current_dir(&dir)
            .status()
            .unwrap();
        assert!(status.success(), "tflite_run.py failed ({resolver})");
        for (i, e) in expected.iter().enumerate() {
            let got = read_npy_f32(&dir.join(format!("o{i}.npy")));
            assert_eq!(got.len(), e.len());
            let err = got
                .iter()
                .zip(e)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            eprintln!("{resolver}: output {i}: max |tflite - reference| = {err:e}");
            assert!(err < 1e-4, "output {i} differs by {err} ({resolver})");
        }
    }
}

fn random_data(dt: DType, n: usize, seed: u64) -> TensorData {
    let f = floats(n, seed);
    match dt {
        DType::F32 => f.into(),
        DType::I64 => f
            .iter()
            .map(|v| (v * 3.0) as i64 + 3)
            .collect::<Vec<_>>()
            .into(),
        DType::I32 => f
            .iter()
            .map(|v| (v * 3.0) as i32 + 3)
            .collect::<Vec<_>>()
            .into(),
        DType::I16 => f
            .iter()
            .map(|v| (v * 100.0) as i16)
            .collect::<Vec<_>>()
            .into(),
        DType::U16 => f
            .iter()
            .map(|v| (v.abs() * 100.0) as u16)
            .collect::<Vec<_>>()
            .into(),
        DType::I8 => f
            .iter()
            .map(|v| (v * 100.0) as i8)
            .collect::<Vec<_>>()
            .into(),
        DType::U8 => f
            .iter()
            .map(|v| (v.abs() * 200.0) as u8)
            .collect::<Vec<_>>()
            .into(),
        DType::Bool => f.iter().map(|v| *v > 0.0).collect::<Vec<_>>().into(),
    }
}

/// One graph per node of the test graphs whose mapping is a builtin: the node's non-constant
/// inputs become graph inputs.
fn single_op_graphs() -> Vec<(String, Graph)> {
    let mut out = Vec::new();
    for (gname, g) in all_graphs() {
        for (i, n) in g.nodes.iter().enumerate() {
            if g.tensors.iter().any(|t| t.quant.is_some()) {
                continue;
            }
            let mut s = Graph::new();
            let mut seen: Vec<(TensorId, TensorId)> = Vec::new();
            let ins: Vec<TensorId> = n
                .inputs
                .iter()
                .map(|&t| {
                    if let Some(&(_, new)) = seen.iter().find(|(old, _)| *old == t) {
                        return new;
                    }
                    let tt = g.tensor(t).clone();
                    let new = if tt.data.is_some() {
                        s.add_tensor(tt)
                    } else {
                        s.add_input(&tt.name, tt.dtype, tt.shape.clone())
                    };
                    seen.push((t, new));
                    new
                })
                .collect();
            let names: Vec<String> = n
                .outputs
                .iter()
                .map(|&o| g.tensor(o).name.clone())
                .collect();
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let outs = s.add_node(&n.name, n.op.clone(), ins, &refs).unwrap();
            s.outputs = outs;
            out.push((format!("{gname}_{i:02}_{}", n.op.name()), s));
        }
    }
    out
}

#[test]
#[ignore = "writes files for a manual TFLite run (see xtask/py/tflite_run.py)"]
fn single_op_models_for_tflite() {
    let (dir, keep) = out_dir("single_op");
    let mut list = String::new();
    for (name, g) in single_op_graphs() {
        let bytes = ipukit_simfmt::write_sim(&g, &SimMetadata::new(Stage::Float, "t")).unwrap();
        if bytes.windows(4).any(|w| w == b"IPU_") {
            continue; // custom operators do not run in TFLite
        }
        let d = dir.join(&name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("model.sim"), &bytes).unwrap();
        let mut args = vec![d.join("model.sim").display().to_string()];
        for (k, &t) in g.inputs.iter().enumerate() {
            let tt = g.tensor(t);
            let p = d.join(format!("in{k}.npy"));
            write_npy(
                &p,
                &random_data(tt.dtype, tt.numel(), k as u64 + 1),
                &tt.shape,
            );
            args.push(p.display().to_string());
        }
        list.push_str(&args.join(" "));
        list.push('\n');
    }
    std::fs::write(dir.join("list.txt"), list).unwrap();
    eprintln!("wrote {}", dir.join("list.txt").display());
    if let Some(t) = keep {
        let _ = t.keep();
    }
}
