//! Graphs and data for ipukit's criterion benches, built in code so that the benches need no
//! model files.
//!
//! * [`yolov8n_like`] — YOLOv8n's topology (3×3/1×1 convolutions with SiLU, C2f blocks with
//!   Split/Concat, SPPF max pools, nearest upsampling, the three detection heads) with
//!   deterministic random weights.
//! * [`plain_classifier`] — a VGG-style classifier: 3×3 convolutions with ReLU, 2×2 max
//!   pools, global average pooling and two fully-connected layers.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

use ipukit_ir::ops::{
    BinaryOp, Concat, Conv2d, CoordTransform, FullyConnected, FusedActivation, NearestMode,
    Padding2d, Pool2d, PoolKind, Reduce, ReduceOp, Reshape, Resize, ResizeMode, Split, UnaryOp,
};
use ipukit_ir::{DType, Graph, Op, Result, TensorId};

/// `len` pseudo-random values in [-1, 1) (xorshift; the same for the same seed).
pub fn random(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// Builds graphs with generated names and weights.
struct Builder {
    g: Graph,
    n: u64,
}

impl Builder {
    fn new() -> Builder {
        Builder {
            g: Graph::new(),
            n: 0,
        }
    }

    fn next(&mut self) -> u64 {
        self.n += 1;
        self.n
    }

    fn channels(&self, x: TensorId) -> usize {
        self.g.tensor(x).shape.last().copied().unwrap_or(0)
    }

    fn node(&mut self, op: Op, inputs: Vec<TensorId>) -> Result<TensorId> {
        let i = self.next();
        let out = self
            .g
            .add_node(&format!("node{i}"), op, inputs, &[format!("t{i}").as_str()])?;
        Ok(out[0])
    }

    /// Convolution with bias (BatchNorm folded) and the given fused activation.
    fn conv_act(
        &mut self,
        x: TensorId,
        cout: usize,
        k: usize,
        stride: usize,
        act: FusedActivation,
    ) -> Result<TensorId> {
        let cin = self.channels(x);
        let i = self.next();
        // He-like scale keeps activations in a sane range through deep stacks.
        let scale = (2.0 / (k * k * cin) as f32).sqrt();
        let w: Vec<f32> = random(cout * k * k * cin, i)
            .iter()
            .map(|v| v * scale)
            .collect();
        let w = self
            .g
            .add_const(&format!("w{i}"), vec![cout, k, k, cin], w.into())?;
        let b = self
            .g
            .add_const(&format!("b{i}"), vec![cout], random(cout, i + 1000).into())?;
        let p = k / 2;
        let op = Op::Conv2d(Conv2d {
            strides: [stride, stride],
            dilations: [1, 1],
            padding: Padding2d {
                top: p,
                left: p,
                bottom: p,
                right: p,
            },
            groups: 1,
            activation: act,
        });
        self.node(op, vec![x, w, b])
    }

    /// YOLOv8's `Conv`: convolution + SiLU (as Sigmoid and Mul, like the ONNX export).
    fn conv(&mut self, x: TensorId, cout: usize, k: usize, stride: usize) -> Result<TensorId> {
        let y = self.conv_act(x, cout, k, stride, FusedActivation::None)?;
        let s = self.node(Op::Unary(UnaryOp::Sigmoid), vec![y])?;
        self.node(Op::Binary(BinaryOp::Mul), vec![y, s])
    }

    fn concat(&mut self, xs: Vec<TensorId>) -> Result<TensorId> {
        self.node(Op::Concat(Concat { axis: 3 }), xs)
    }

    /// YOLOv8's C2f block.
    fn c2f(&mut self, x: TensorId, cout: usize, n: usize, shortcut: bool) -> Result<TensorId> {
        let c = cout / 2;
        let y = self.conv(x, 2 * c, 1, 1)?;
        let i = self.next();
        let parts = self.g.add_node(
            &format!("split{i}"),
            Op::Split(Split {
                axis: 3,
                sizes: vec![c, c],
            }),
            vec![y],
            &[format!("s{i}a").as_str(), format!("s{i}b").as_str()],
        )?;
        let mut cat = parts.clone();
        let mut last = parts[1];
        for _ in 0..n {
            let a = self.conv(last, c, 3, 1)?;
            let b = self.conv(a, c, 3, 1)?;
            last = if shortcut {
                self.node(Op::Binary(BinaryOp::Add), vec![last, b])?
            } else {
                b
            };
            cat.push(last);
        }
        let cat = self.concat(cat)?;
        self.conv(cat, cout, 1, 1)
    }

    fn max_pool(&mut self, x: TensorId, k: usize, stride: usize, pad: usize) -> Result<TensorId> {
        self.node(
            Op::Pool2d(Pool2d {
                kind: PoolKind::Max,
                kernel: [k, k],
                strides: [stride, stride],
                dilations: [1, 1],
                padding: Padding2d {
                    top: pad,
                    left: pad,
                    bottom: pad,
                    right: pad,
                },
                ceil_mode: false,
            }),
            vec![x],
        )
    }

    fn sppf(&mut self, x: TensorId, cout: usize) -> Result<TensorId> {
        let c = self.channels(x) / 2;
        let a = self.conv(x, c, 1, 1)?;
        let p1 = self.max_pool(a, 5, 1, 2)?;
        let p2 = self.max_pool(p1, 5, 1, 2)?;
        let p3 = self.max_pool(p2, 5, 1, 2)?;
        let cat = self.concat(vec![a, p1, p2, p3])?;
        self.conv(cat, cout, 1, 1)
    }

    fn upsample(&mut self, x: TensorId) -> Result<TensorId> {
        let s = self.g.tensor(x).shape.clone();
        self.node(
            Op::Resize(Resize {
                mode: ResizeMode::Nearest(NearestMode::Floor),
                coord: CoordTransform::Asymmetric,
                size: [s[1] * 2, s[2] * 2],
                scales: [2.0, 2.0],
            }),
            vec![x],
        )
    }

    fn head(&mut self, x: TensorId, classes: usize) -> Result<TensorId> {
        let b1 = self.conv(x, 64, 3, 1)?;
        let b2 = self.conv(b1, 64, 3, 1)?;
        let boxes = self.conv_act(b2, 64, 1, 1, FusedActivation::None)?;
        let c1 = self.conv(x, 64, 3, 1)?;
        let c2 = self.conv(c1, 64, 3, 1)?;
        let cls = self.conv_act(c2, classes, 1, 1, FusedActivation::None)?;
        self.concat(vec![boxes, cls])
    }
}

/// YOLOv8n (width 0.25, depth 0.33) on a `size`×`size` RGB input with `classes` classes;
/// outputs the three per-scale head tensors (box distribution and class logits, NHWC).
pub fn yolov8n_like(size: usize, classes: usize) -> Result<Graph> {
    let mut b = Builder::new();
    let x = b.g.add_input("images", DType::F32, vec![1, size, size, 3]);
    let x = b.conv(x, 16, 3, 2)?;
    let x = b.conv(x, 32, 3, 2)?;
    let x = b.c2f(x, 32, 1, true)?;
    let x = b.conv(x, 64, 3, 2)?;
    let p3 = b.c2f(x, 64, 2, true)?;
    let x = b.conv(p3, 128, 3, 2)?;
    let p4 = b.c2f(x, 128, 2, true)?;
    let x = b.conv(p4, 256, 3, 2)?;
    let x = b.c2f(x, 256, 1, true)?;
    let p5 = b.sppf(x, 256)?;
    let u = b.upsample(p5)?;
    let c = b.concat(vec![u, p4])?;
    let n4 = b.c2f(c, 128, 1, false)?;
    let u = b.upsample(n4)?;
    let c = b.concat(vec![u, p3])?;
    let o3 = b.c2f(c, 64, 1, false)?;
    let d = b.conv(o3, 64, 3, 2)?;
    let c = b.concat(vec![d, n4])?;
    let o4 = b.c2f(c, 128, 1, false)?;
    let d = b.conv(o4, 128, 3, 2)?;
    let c = b.concat(vec![d, p5])?;
    let o5 = b.c2f(c, 256, 1, false)?;
    for o in [o3, o4, o5] {
        let h = b.head(o, classes)?;
        b.g.outputs.push(h);
    }
    Ok(b.g)
}

/// A VGG-style classifier on a `size`×`size` RGB input (`size` divisible by 32).
pub fn plain_classifier(size: usize, classes: usize) -> Result<Graph> {
    let mut b = Builder::new();
    let mut x = b.g.add_input("x", DType::F32, vec![1, size, size, 3]);
    x = b.conv_act(x, 32, 3, 2, FusedActivation::Relu)?;
    for c in [32, 64, 128, 256] {
        x = b.conv_act(x, c, 3, 1, FusedActivation::Relu)?;
        x = b.conv_act(x, c, 3, 1, FusedActivation::Relu)?;
        x = b.max_pool(x, 2, 2, 0)?;
    }
    x = b.node(
        Op::Reduce(Reduce {
            op: ReduceOp::Mean,
            axes: vec![1, 2],
            keep_dims: false,
        }),
        vec![x],
    )?;
    for (i, n) in [(0, 128), (1, classes)] {
        let k = b.channels(x);
        let w = b.g.add_const(
            &format!("fc{i}_w"),
            vec![n, k],
            random(n * k, 77 + i).into(),
        )?;
        let bias =
            b.g.add_const(&format!("fc{i}_b"), vec![n], random(n, 99 + i).into())?;
        let act = if i == 0 {
            FusedActivation::Relu
        } else {
            FusedActivation::None
        };
        x = b.node(
            Op::FullyConnected(FullyConnected { activation: act }),
            vec![x, w, bias],
        )?;
    }
    let flat = b.node(
        Op::Reshape(Reshape {
            shape: vec![1, classes],
        }),
        vec![x],
    )?;
    b.g.outputs.push(flat);
    Ok(b.g)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipukit_runtime::{Session, SessionOptions, Value};

    #[test]
    fn graphs_build_and_run() {
        for (g, size) in [
            (yolov8n_like(64, 18).unwrap(), 64),
            (plain_classifier(64, 4).unwrap(), 64),
        ] {
            g.validate().unwrap();
            let mut s = Session::new(g, SessionOptions { threads: Some(2) }).unwrap();
            let x = Value::new(vec![1, size, size, 3], random(size * size * 3, 1)).unwrap();
            let out = s.run(vec![x]).unwrap();
            assert!(out
                .iter()
                .all(|o| o.as_f32().unwrap().iter().all(|v| v.is_finite())));
        }
        let g = yolov8n_like(320, 18).unwrap();
        let shapes: Vec<_> = g
            .outputs
            .iter()
            .map(|&o| g.tensor(o).shape.clone())
            .collect();
        assert_eq!(
            shapes,
            vec![
                vec![1, 40, 40, 82],
                vec![1, 20, 20, 82],
                vec![1, 10, 10, 82]
            ]
        );
        assert_eq!(
            g.nodes
                .iter()
                .filter(|n| matches!(n.op, Op::Conv2d(_)))
                .count(),
            63
        );
    }
}
