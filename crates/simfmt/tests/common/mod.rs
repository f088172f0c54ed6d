//! Hand-built graphs shared by the integration tests.

#![allow(dead_code)]

pub mod fixed;

use ipukit_ir::ops::*;
use ipukit_ir::{DType, Graph, Op, QuantParams, TensorData, TensorId};

/// Deterministic pseudo-random floats in [-1, 1).
pub fn floats(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// A small graph builder that names things automatically.
pub struct B {
    pub g: Graph,
    n: usize,
}

impl B {
    pub fn new() -> B {
        B {
            g: Graph::new(),
            n: 0,
        }
    }

    fn next(&mut self, p: &str) -> String {
        self.n += 1;
        format!("{p}{}", self.n)
    }

    pub fn input(&mut self, dt: DType, shape: &[usize]) -> TensorId {
        let name = self.next("in");
        self.g.add_input(&name, dt, shape.to_vec())
    }

    pub fn constant(&mut self, shape: &[usize], data: TensorData) -> TensorId {
        let name = self.next("c");
        self.g.add_const(&name, shape.to_vec(), data).unwrap()
    }

    pub fn weights(&mut self, shape: &[usize]) -> TensorId {
        let n: usize = shape.iter().product();
        let seed = self.n as u64 + 7;
        self.constant(shape, floats(n, seed).into())
    }

    pub fn op(&mut self, op: Op, inputs: &[TensorId]) -> TensorId {
        self.op_n(op, inputs, 1)[0]
    }

    pub fn op_n(&mut self, op: Op, inputs: &[TensorId], outputs: usize) -> Vec<TensorId> {
        let node = self.next(&format!("{}_", op.name()));
        let names: Vec<String> = (0..outputs).map(|i| format!("{node}:{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        self.g.add_node(&node, op, inputs.to_vec(), &refs).unwrap()
    }

    pub fn out(&mut self, t: TensorId) {
        self.g.outputs.push(t);
    }

    pub fn finish(self) -> Graph {
        self.g.validate().unwrap();
        self.g
    }
}

pub fn pad(top: usize, left: usize, bottom: usize, right: usize) -> Padding2d {
    Padding2d {
        top,
        left,
        bottom,
        right,
    }
}

pub fn conv(strides: usize, p: Padding2d, act: FusedActivation) -> Op {
    Op::Conv2d(Conv2d {
        strides: [strides; 2],
        dilations: [1, 1],
        padding: p,
        groups: 1,
        activation: act,
    })
}

pub fn dw(strides: usize, p: Padding2d, act: FusedActivation) -> Op {
    Op::DepthwiseConv2d(DepthwiseConv2d {
        strides: [strides; 2],
        dilations: [1, 1],
        padding: p,
        depth_multiplier: 1,
        activation: act,
    })
}

pub fn pool(kind: PoolKind, k: usize, s: usize, p: Padding2d, ceil_mode: bool) -> Op {
    Op::Pool2d(Pool2d {
        kind,
        kernel: [k, k],
        strides: [s, s],
        dilations: [1, 1],
        padding: p,
        ceil_mode,
    })
}

pub fn resize(mode: ResizeMode, coord: CoordTransform, size: [usize; 2], scales: [f32; 2]) -> Op {
    Op::Resize(Resize {
        mode,
        coord,
        size,
        scales,
    })
}

fn q(scale: f32, zp: i64) -> QuantParams {
    QuantParams {
        scale: vec![scale],
        zero_point: vec![zp],
        min: vec![],
        max: vec![],
        quantized_dimension: 0,
    }
}

/// Convolutions, padding variants, transposed convolutions, fully-connected and matmul.
pub fn convs() -> Graph {
    use FusedActivation as A;
    let mut b = B::new();
    let x = b.input(DType::F32, &[1, 9, 9, 4]);
    let w = b.weights(&[8, 3, 3, 4]);
    let bias = b.weights(&[8]);
    // SAME.
    let c1 = b.op(conv(1, pad(1, 1, 1, 1), A::Relu6), &[x, w, bias]);
    // Not SAME (SAME would be 1,1,1,1 on 9 with s2 -> total 2... use asymmetric): PAD + VALID.
    let c2 = b.op(conv(2, pad(0, 2, 1, 0), A::None), &[x, w]);
    // VALID.
    let c3 = b.op(conv(2, pad(0, 0, 0, 0), A::Relu), &[x, w, bias]);
    // Grouped, dilated, SAME-like.
    let wg = b.weights(&[8, 3, 3, 2]);
    let c4 = b.op(
        Op::Conv2d(Conv2d {
            strides: [1, 1],
            dilations: [2, 2],
            padding: pad(2, 2, 2, 2),
            groups: 2,
            activation: A::ReluN1To1,
        }),
        &[x, wg],
    );
    // Depthwise: SAME, padded, multiplier 2 with dilation.
    let wd = b.weights(&[1, 3, 3, 8]);
    let d1 = b.op(dw(1, pad(1, 1, 1, 1), A::Relu), &[c1, wd]);
    let d2 = b.op(dw(2, pad(1, 1, 1, 1), A::None), &[c1, wd, bias]);
    let wd2 = b.weights(&[1, 3, 3, 8]);
    let d3 = b.op(
        Op::DepthwiseConv2d(DepthwiseConv2d {
            strides: [1, 2],
            dilations: [2, 1],
            padding: pad(2, 1, 2, 1),
            depth_multiplier: 2,
            activation: A::None,
        }),
        &[x, wd2],
    );
    // Transposed convolutions.
    let wt = b.weights(&[6, 2, 2, 8]);
    let tc = |s, p, op, g, d, a| {
        Op::TransposeConv2d(TransposeConv2d {
            strides: [s, s],
            dilations: [d, d],
            padding: p,
            output_padding: op,
            groups: g,
            activation: a,
        })
    };
    let t1 = b.op(tc(2, pad(0, 0, 0, 0), [0, 0], 1, 1, A::None), &[c3, wt]);
    let wt3 = b.weights(&[6, 3, 3, 8]);
    let bt = b.weights(&[6]);
    // PyTorch k3 s2 p1 output_padding 1.
    let t2 = b.op(
        tc(2, pad(1, 1, 1, 1), [1, 1], 1, 1, A::Relu),
        &[c3, wt3, bt],
    );
    let wtg = b.weights(&[6, 3, 3, 4]);
    let t3 = b.op(tc(2, pad(1, 1, 1, 1), [0, 0], 2, 1, A::None), &[c3, wtg]);
    let t4 = b.op(tc(1, pad(0, 0, 0, 0), [0, 0], 1, 2, A::None), &[c3, wt3]);
    // PyTorch k4 s2 p1: TFLite SAME.
    let wt4 = b.weights(&[6, 4, 4, 8]);
    let t5 = b.op(
        tc(2, pad(1, 1, 1, 1), [0, 0], 1, 1, A::None),
        &[c3, wt4, bt],
    );
    // k3 s2, bottom/right 1 and output padding 1: TFLite VALID, split kept as a hint.
    let t6 = b.op(tc(2, pad(0, 0, 1, 1), [1, 1], 1, 1, A::Relu6), &[c3, wt3]);
    // Fully connected: 2-D with bias, 3-D without.
    let f_in = b.input(DType::F32, &[2, 16]);
    let fw = b.weights(&[5, 16]);
    let fb = b.weights(&[5]);
    let f1 = b.op(
        Op::FullyConnected(FullyConnected {
            activation: A::Relu,
        }),
        &[f_in, fw, fb],
    );
    let f3 = b.input(DType::F32, &[2, 3, 16]);
    let f2 = b.op(Op::FullyConnected(FullyConnected::default()), &[f3, fw]);
    let mb = b.weights(&[16, 7]);
    let m1 = b.op(Op::MatMul(MatMul {}), &[f3, mb]);
    for t in [c2, c4, d1, d2, d3, t1, t2, t3, t4, t5, t6, f1, f2, m1] {
        b.out(t);
    }
    b.finish()
}

/// Every binary and unary operator, Where and Cast.
pub fn elementwise() -> Graph {
    let mut b = B::new();
    let x = b.input(DType::F32, &[2, 3, 4]);
    let y = b.input(DType::F32, &[4]);
    for op in [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Pow,
        BinaryOp::Max,
        BinaryOp::Min,
        BinaryOp::PRelu,
        BinaryOp::Equal,
        BinaryOp::Less,
        BinaryOp::Greater,
    ] {
        let t = b.op(Op::Binary(op), &[x, y]);
        b.out(t);
    }
    let p = b.input(DType::Bool, &[2, 3, 4]);
    let q = b.input(DType::Bool, &[1, 4]);
    for op in [BinaryOp::And, BinaryOp::Or] {
        let t = b.op(Op::Binary(op), &[p, q]);
        b.out(t);
    }
    let not = b.op(Op::Unary(UnaryOp::Not), &[p]);
    b.out(not);
    for u in [
        UnaryOp::Relu,
        UnaryOp::LeakyRelu(0.1),
        UnaryOp::Clip(0.0, 6.0),
        UnaryOp::Clip(-1.0, 1.0),
        UnaryOp::Clip(0.5, 2.0),
        UnaryOp::Clip(f32::NEG_INFINITY, 3.0),
        UnaryOp::Sigmoid,
        UnaryOp::HardSigmoid(0.2, 0.5),
        UnaryOp::HardSwish,
        UnaryOp::Tanh,
        UnaryOp::Elu(1.0),
        UnaryOp::Elu(0.5),
        UnaryOp::Softplus,
        UnaryOp::Abs,
        UnaryOp::Neg,
        UnaryOp::Sqrt,
        UnaryOp::Rsqrt,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Reciprocal,
        UnaryOp::Floor,
        UnaryOp::Ceil,
        UnaryOp::Round,
        UnaryOp::Erf,
        UnaryOp::Sin,
        UnaryOp::Cos,
    ] {
        let t = b.op(Op::Unary(u), &[x]);
        b.out(t);
    }
    let w = b.op(Op::Where, &[p, x, y]);
    b.out(w);
    for dt in [
        DType::I64,
        DType::I32,
        DType::I16,
        DType::U16,
        DType::I8,
        DType::U8,
        DType::Bool,
        DType::F32,
    ] {
        let t = b.op(Op::Cast(dt), &[x]);
        b.out(t);
    }
    let back = b.op(Op::Cast(DType::F32), &[p]);
    b.out(back);
    b.finish()
}

/// Softmax, pools, reductions, arg-reductions.
pub fn reductions() -> Graph {
    let mut b = B::new();
    let x = b.input(DType::F32, &[1, 7, 7, 3]);
    for axis in [3, 1] {
        let s = b.op(Op::Softmax(Softmax { axis }), &[x]);
        let l = b.op(Op::LogSoftmax(Softmax { axis }), &[x]);
        b.out(s);
        b.out(l);
    }
    let avg = |cip| PoolKind::Average {
        count_include_pad: cip,
    };
    for p in [
        pool(PoolKind::Max, 3, 2, pad(1, 1, 1, 1), false), // SAME on 7 with s2: total 2
        pool(PoolKind::Max, 2, 2, pad(0, 0, 0, 0), false), // VALID
        pool(PoolKind::Max, 3, 2, pad(0, 0, 0, 0), true),  // ceil, same size -> builtin + hint
        pool(PoolKind::Max, 2, 2, pad(0, 0, 0, 0), true),  // ceil changes size -> custom
        pool(PoolKind::Max, 3, 1, pad(0, 1, 2, 1), false), // odd padding -> custom
        pool(avg(false), 3, 1, pad(1, 1, 1, 1), false),    // SAME, excludes pad
        pool(avg(true), 3, 1, pad(1, 1, 1, 1), false),     // includes pad -> custom
        pool(avg(true), 7, 1, pad(0, 0, 0, 0), false),     // global average, VALID + hint
    ] {
        let t = b.op(p, &[x]);
        b.out(t);
    }
    // Dilated windows (TFLite's pools have none -> custom), and max pooling with indices.
    let dilate = |op: Op, dilations: [usize; 2]| match op {
        Op::Pool2d(p) => Pool2d { dilations, ..p },
        _ => unreachable!(),
    };
    for (p, d) in [
        (pool(PoolKind::Max, 3, 1, pad(0, 0, 0, 0), false), [2, 3]), // VALID-sized, still custom
        (pool(avg(true), 2, 2, pad(1, 0, 1, 1), true), [2, 1]),
    ] {
        let t = b.op(Op::Pool2d(dilate(p, d)), &[x]);
        b.out(t);
    }
    for storage_order in [StorageOrder::RowMajor, StorageOrder::ColumnMajor] {
        let with_indices = MaxPool2dWithIndices {
            pool: dilate(pool(PoolKind::Max, 2, 2, pad(0, 1, 1, 0), true), [1, 2]),
            storage_order,
        };
        for t in b.op_n(Op::MaxPool2dWithIndices(with_indices), &[x], 2) {
            b.out(t);
        }
    }
    for op in [
        ReduceOp::Mean,
        ReduceOp::Sum,
        ReduceOp::Max,
        ReduceOp::Min,
        ReduceOp::Prod,
        ReduceOp::L2,
    ] {
        for keep_dims in [false, true] {
            let t = b.op(
                Op::Reduce(Reduce {
                    op,
                    axes: vec![1, 2],
                    keep_dims,
                }),
                &[x],
            );
            b.out(t);
        }
    }
    for kind in [ArgReduceKind::Max, ArgReduceKind::Min] {
        for keep_dims in [false, true] {
            let t = b.op(
                Op::ArgReduce(ArgReduce {
                    kind,
                    axis: 3,
                    keep_dims,
                    select_last_index: keep_dims,
                }),
                &[x],
            );
            b.out(t);
        }
    }
    b.finish()
}

/// Data movement: concat, split, reshape, transpose, slice, pad, gather, depth/space, expand,
/// tile, identity.
pub fn movement() -> Graph {
    let mut b = B::new();
    let x = b.input(DType::F32, &[1, 4, 6, 8]);
    let y = b.input(DType::F32, &[1, 4, 6, 2]);
    let c = b.op(Op::Concat(Concat { axis: 3 }), &[x, y, x]);
    b.out(c);
    let s = b.op_n(
        Op::Split(Split {
            axis: 3,
            sizes: vec![4, 4],
        }),
        &[x],
        2,
    );
    let s2 = b.op_n(
        Op::Split(Split {
            axis: 2,
            sizes: vec![1, 2, 3],
        }),
        &[x],
        3,
    );
    for t in s.into_iter().chain(s2) {
        b.out(t);
    }
    let r = b.op(Op::Reshape(Reshape { shape: vec![4, 48] }), &[x]);
    b.out(r);
    let one = b.input(DType::F32, &[1, 1]);
    let scalar = b.op(Op::Reshape(Reshape { shape: vec![] }), &[one]);
    b.out(scalar);
    let t = b.op(
        Op::Transpose(Transpose {
            perm: vec![0, 3, 1, 2],
        }),
        &[x],
    );
    b.out(t);
    let sl = Slice {
        axes: vec![
            SliceAxis {
                start: 0,
                step: 1,
                len: 1,
            },
            SliceAxis {
                start: 3,
                step: -1,
                len: 4,
            },
            SliceAxis {
                start: 5,
                step: -2,
                len: 3,
            },
            SliceAxis {
                start: 1,
                step: 3,
                len: 3,
            },
        ],
    };
    let t = b.op(Op::Slice(sl), &[x]);
    b.out(t);
    let empty = Slice {
        axes: vec![
            SliceAxis {
                start: 0,
                step: 1,
                len: 1,
            },
            SliceAxis {
                start: 0,
                step: 1,
                len: 0,
            },
            SliceAxis {
                start: 0,
                step: 1,
                len: 6,
            },
            SliceAxis {
                start: 0,
                step: 1,
                len: 8,
            },
        ],
    };
    let t = b.op(Op::Slice(empty), &[x]);
    b.out(t);
    let pads = vec![[0, 0], [1, 2], [2, 1], [0, 0]];
    for mode in [
        PadMode::Constant(0.0),
        PadMode::Constant(-1.5),
        PadMode::Reflect,
        PadMode::Edge,
    ] {
        let t = b.op(
            Op::Pad(Pad {
                pads: pads.clone(),
                mode,
            }),
            &[x],
        );
        b.out(t);
    }
    let xi = b.input(DType::I32, &[2, 3]);
    for v in [2.0, 0.5] {
        let t = b.op(
            Op::Pad(Pad {
                pads: vec![[1, 0], [0, 1]],
                mode: PadMode::Constant(v),
            }),
            &[xi],
        );
        b.out(t);
    }
    let idx = b.constant(&[2], vec![3i64, 0].into());
    let neg = b.constant(&[2, 2], vec![-1i32, 0, 1, -2].into());
    let dyn_idx = b.input(DType::I32, &[5]);
    for (axis, i) in [(3, idx), (2, neg), (1, dyn_idx)] {
        let t = b.op(Op::Gather(Gather { axis }), &[x, i]);
        b.out(t);
    }
    for mode in [DepthToSpaceMode::Dcr, DepthToSpaceMode::Crd] {
        let t = b.op(Op::DepthToSpace(DepthToSpace { block: 2, mode }), &[x]);
        b.out(t);
    }
    let t = b.op(Op::SpaceToDepth(SpaceToDepth { block: 2 }), &[x]);
    b.out(t);
    let e_in = b.input(DType::F32, &[3, 1]);
    let e1 = b.op(
        Op::Expand(Expand {
            shape: vec![2, 3, 4],
        }),
        &[e_in],
    );
    let e2 = b.op(Op::Expand(Expand { shape: vec![1, 5] }), &[e_in]);
    let tl = b.op(
        Op::Tile(Tile {
            repeats: vec![2, 3],
        }),
        &[e_in],
    );
    let id = b.op(Op::Identity, &[x]);
    for t in [e1, e2, tl, id] {
        b.out(t);
    }
    b.finish()
}

/// Resizes: builtin-compatible ones and ones that need `IPU_Resize`.
pub fn resizes() -> Graph {
    use CoordTransform as C;
    use NearestMode as N;
    let mut b = B::new();
    let x = b.input(DType::F32, &[1, 5, 4, 3]);
    let r2 = [10, 8];
    let s2 = [2.0, 2.0];
    let lin = ResizeMode::Linear;
    for op in [
        resize(lin, C::HalfPixel, r2, s2),
        resize(lin, C::AlignCorners, r2, s2),
        resize(lin, C::Asymmetric, r2, s2),
        resize(lin, C::PytorchHalfPixel, r2, s2),
        resize(lin, C::AlignCorners, [7, 3], [1.5, 0.7]), // scales unused: builtin + hint
        resize(lin, C::HalfPixel, [7, 6], [1.5, 1.5]),    // scales not out/in: custom
        resize(lin, C::PytorchHalfPixel, [1, 1], [0.2, 0.25]), // output 1: custom
        resize(ResizeMode::Nearest(N::Floor), C::Asymmetric, r2, s2),
        resize(
            ResizeMode::Nearest(N::RoundPreferCeil),
            C::HalfPixel,
            r2,
            s2,
        ),
        resize(
            ResizeMode::Nearest(N::RoundPreferCeil),
            C::AlignCorners,
            r2,
            s2,
        ),
        resize(
            ResizeMode::Nearest(N::RoundPreferFloor),
            C::HalfPixel,
            r2,
            s2,
        ), // builtin + hint
        resize(
            ResizeMode::Nearest(N::RoundPreferFloor),
            C::HalfPixel,
            [2, 2],
            [0.4, 0.5],
        ), // custom
        resize(
            ResizeMode::Nearest(N::Ceil),
            C::Asymmetric,
            [15, 12],
            [3.0, 3.0],
        ), // custom
        resize(
            ResizeMode::Nearest(N::Floor),
            C::Asymmetric,
            [2, 2],
            [0.4, 0.5],
        ),
    ] {
        let t = b.op(op, &[x]);
        b.out(t);
    }
    b.finish()
}

/// Every dtype as inputs and constants, quantization parameters, empty and scalar constants,
/// a graph output that is a graph input, an unused constant.
pub fn dtypes_and_quant() -> Graph {
    let mut b = B::new();
    let datas: Vec<(DType, TensorData)> = vec![
        (DType::F32, vec![1.5f32, -0.0, f32::INFINITY, 3.25].into()),
        (DType::I64, vec![i64::MIN, -1, 0, i64::MAX].into()),
        (DType::I32, vec![i32::MIN, -1, 0, i32::MAX].into()),
        (DType::I16, vec![i16::MIN, -1, 0, i16::MAX].into()),
        (DType::U16, vec![0u16, 1, 2, u16::MAX].into()),
        (DType::I8, vec![i8::MIN, -1, 0, i8::MAX].into()),
        (DType::U8, vec![0u8, 1, 128, 255].into()),
        (DType::Bool, vec![true, false, false, true].into()),
    ];
    for (dt, data) in datas {
        let i = b.input(dt, &[2, 2]);
        let c = b.constant(&[2, 2], data);
        let cat = b.op(Op::Concat(Concat { axis: 0 }), &[i, c]);
        let id = b.op(Op::Identity, &[cat]);
        b.out(id);
    }
    // Quantized tensors: u8 activations, per-channel i8 weights with min/max, i32 bias.
    let x = b.input(DType::U8, &[1, 4, 4, 2]);
    b.g.tensor_mut(x).quant = Some(q(0.02, 128));
    let w = b.constant(&[3, 1, 1, 2], vec![1i8, -2, 3, -4, 5, -6].into());
    b.g.tensor_mut(w).quant = Some(QuantParams {
        scale: vec![0.1, 0.2, 0.3],
        zero_point: vec![0, 0, 0],
        min: vec![-1.0, -2.0, -3.0],
        max: vec![1.0, 2.0, 3.0],
        quantized_dimension: 0,
    });
    let bias = b.constant(&[3], vec![10i32, -20, 30].into());
    b.g.tensor_mut(bias).quant = Some(q(0.002, 0));
    let y = b.op(
        conv(1, pad(0, 0, 0, 0), FusedActivation::None),
        &[x, w, bias],
    );
    b.g.tensor_mut(y).quant = Some(QuantParams::default());
    b.out(y);
    let z = b.input(DType::I16, &[1, 4, 4, 2]);
    b.g.tensor_mut(z).quant = Some(QuantParams {
        scale: vec![0.001],
        zero_point: vec![0],
        min: vec![-30.0],
        max: vec![30.0],
        quantized_dimension: 3,
    });
    let zp = b.op(
        Op::Pad(Pad {
            pads: vec![[0, 0], [1, 1], [1, 1], [0, 0]],
            mode: PadMode::Constant(0.0),
        }),
        &[z],
    );
    b.out(zp);
    // An output that is an input, an unused constant, an empty constant, a scalar constant.
    b.out(z);
    b.constant(&[3], vec![1.0f32, 2.0, 3.0].into());
    let empty = b.constant(&[0, 3], TensorData::F32(Vec::<f32>::new().into()));
    let e2 = b.input(DType::F32, &[2, 3]);
    let cat = b.op(Op::Concat(Concat { axis: 0 }), &[empty, e2]);
    b.out(cat);
    let s = b.constant(&[], vec![2.0f32].into());
    let sx = b.input(DType::F32, &[3]);
    let m = b.op(Op::Binary(BinaryOp::Mul), &[sx, s]);
    b.out(m);
    b.finish()
}

/// A graph whose explicit zero PAD feeds a VALID convolution, as a frontend could produce it
/// before simplification: it must survive a round trip as a Pad node.
pub fn explicit_pad_before_conv() -> Graph {
    let mut b = B::new();
    let x = b.input(DType::F32, &[1, 6, 6, 2]);
    let p = b.op(
        Op::Pad(Pad {
            pads: vec![[0, 0], [1, 1], [1, 1], [0, 0]],
            mode: PadMode::Constant(0.0),
        }),
        &[x],
    );
    let w = b.weights(&[4, 3, 3, 2]);
    let y = b.op(conv(1, pad(0, 0, 0, 0), FusedActivation::None), &[p, w]);
    b.out(y);
    b.finish()
}

/// All the graphs above, by name.
pub fn all_graphs() -> Vec<(&'static str, Graph)> {
    vec![
        ("convs", convs()),
        ("elementwise", elementwise()),
        ("reductions", reductions()),
        ("movement", movement()),
        ("resizes", resizes()),
        ("dtypes_and_quant", dtypes_and_quant()),
        ("explicit_pad_before_conv", explicit_pad_before_conv()),
    ]
}
