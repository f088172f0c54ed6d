//! Fixed-point graphs in a session: every result equals direct calls of the integer kernels
//! (`ipukit_kernels::int`, packed for the portable instruction set), for every node, in the
//! fused and the observed plan, for any number of threads; integer inputs and the tensor
//! details of fixed models.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ipukit_ir::ops::fixed::{
    Dequantize, ImageInput, InputNormalize, OutRange, QAvgPool2d, QBinary, QBinaryKind, QConv2d,
    QDepthwiseConv2d, QFullyConnected, QLayer, QMatMul, QReduce, QRescale, QResize, QSoftmax,
    QTransposeConv2d, Quantize, Requant,
};
use ipukit_ir::ops::{
    Concat, Conv2d, CoordTransform, DepthToSpace, DepthToSpaceMode, DepthwiseConv2d,
    FusedActivation, Gather, NearestMode, Pad, PadMode, Padding2d, Pool2d, PoolKind, Reduce,
    ReduceOp, Reshape, Resize, ResizeMode, Slice, SliceAxis, Split, Transpose, TransposeConv2d,
};
use ipukit_ir::passes::ConstEvaluator;
use ipukit_ir::{DType, Graph, Op, QuantParams, TensorData, TensorId};
use ipukit_kernels::int::{
    self, build_exp_table, build_lut, Isa, PackedQConv, PackedQDepthwise, PackedQFullyConnected,
    PackedQTransposeConv, QWeights,
};
use ipukit_kernels::{array, math};
use ipukit_runtime::{ReferenceEvaluator, RuntimeError, Session, SessionOptions, Value};
use std::collections::HashMap;

/// xorshift integers in `lo..=hi`.
fn ints(len: usize, seed: u64, lo: i64, hi: i64) -> Vec<i64> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let span = (hi - lo + 1) as u64;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            lo + ((s >> 11) % span) as i64
        })
        .collect()
}

fn i16s(len: usize, seed: u64, lo: i64, hi: i64) -> Vec<i16> {
    ints(len, seed, lo, hi)
        .into_iter()
        .map(|v| v as i16)
        .collect()
}

fn opts(threads: usize) -> SessionOptions {
    SessionOptions {
        threads: Some(threads),
    }
}

fn rq(ratio: f64) -> Requant {
    Requant::from_ratio(ratio).unwrap()
}

fn pad(p: usize) -> Padding2d {
    Padding2d {
        top: p,
        left: p,
        bottom: p,
        right: p,
    }
}

fn conv(stride: usize, p: usize) -> Conv2d {
    Conv2d {
        strides: [stride, stride],
        dilations: [1, 1],
        padding: pad(p),
        groups: 1,
        activation: FusedActivation::None,
    }
}

/// Builds a graph and, next to it, the value of every tensor computed by calling the integer
/// kernels directly.
struct Fixture {
    g: Graph,
    vals: HashMap<TensorId, TensorData>,
    n: usize,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            g: Graph::new(),
            vals: HashMap::new(),
            n: 0,
        }
    }

    fn name(&mut self, p: &str) -> String {
        self.n += 1;
        format!("{p}{}", self.n)
    }

    fn input(&mut self, name: &str, shape: Vec<usize>, data: TensorData) -> TensorId {
        let t = self.g.add_input(name, data.dtype(), shape);
        self.vals.insert(t, data);
        t
    }

    fn constant(&mut self, shape: Vec<usize>, data: TensorData) -> TensorId {
        let n = self.name("c");
        let t = self.g.add_const(&n, shape, data.clone()).unwrap();
        self.vals.insert(t, data);
        t
    }

    fn shape(&self, t: TensorId) -> Vec<usize> {
        self.g.tensor(t).shape.clone()
    }

    fn val(&self, t: TensorId) -> &TensorData {
        &self.vals[&t]
    }

    /// Adds a node with one output whose expected value is `expect`.
    fn node(&mut self, op: Op, inputs: Vec<TensorId>, expect: TensorData) -> TensorId {
        let n = self.name("n");
        let o = self.name("t");
        let t = self.g.add_node(&n, op, inputs, &[o.as_str()]).unwrap()[0];
        assert_eq!(self.g.tensor(t).dtype, expect.dtype(), "{n}");
        assert_eq!(self.g.tensor(t).numel(), expect.len(), "{n}");
        self.vals.insert(t, expect);
        t
    }

    fn out_shape(&self, op: &Op, inputs: &[TensorId]) -> Vec<usize> {
        let infos: Vec<(DType, &[usize])> = inputs
            .iter()
            .map(|&t| (self.g.tensor(t).dtype, self.g.tensor(t).shape.as_slice()))
            .collect();
        op.infer(&infos).unwrap().remove(0).1
    }

    /// Sets the tensor's quantization (scale, zero point, min, max).
    fn quant(&mut self, t: TensorId, scale: f32, zp: i64) {
        let dt = self.g.tensor(t).dtype;
        let (lo, hi) = match dt {
            DType::U8 => (0.0, 255.0),
            _ => (-32767.0, 32767.0),
        };
        self.g.tensor_mut(t).quant = Some(QuantParams {
            scale: vec![scale],
            zero_point: vec![zp],
            min: vec![(lo - zp as f32) * scale],
            max: vec![(hi - zp as f32) * scale],
            quantized_dimension: 0,
        });
    }
}

/// `InputNormalize → QConv2d (16-bit) → QRescale to UINT8 → QConv2d (8-bit, grouped) →
/// QDepthwiseConv2d (8-bit) → QRescale → QTransposeConv2d (16-bit) → QFullyConnected
/// (8-bit, from a rescaled input) → Dequantize`, plus side outputs.
fn layer_chain(h: usize, w: usize) -> Fixture {
    let mut f = Fixture::new();
    let img: Vec<u8> = ints(h * w * 3, 1, 0, 255)
        .into_iter()
        .map(|v| v as u8)
        .collect();
    let x = f.input("image", vec![1, h, w, 3], img.clone().into());
    f.quant(x, 1.0, 0);

    // Image → INT16, BGR → RGB, mean 127.5, std 58.
    let s0 = 127.5 / 58.0 / 32767.0;
    let norm = InputNormalize {
        image: ImageInput::Interleaved,
        source_channel: vec![2, 1, 0],
        mean_q: vec![32640; 3],
        requant: vec![rq(1.0 / (256.0 * 58.0 * s0)); 3],
    };
    let mut e = vec![0i16; h * w * 3];
    int::input_normalize(&norm, &img, &[1, h, w, 3], &mut e).unwrap();
    let a = f.node(Op::InputNormalize(norm), vec![x], e.into());
    f.quant(a, s0 as f32, 0);

    // 16-bit 3×3 convolution, 8 output channels, per-channel multipliers, Relu by range.
    let wv = i16s(8 * 3 * 3 * 3, 2, -2000, 2000);
    let bv: Vec<i64> = ints(8, 3, -1_000_000, 1_000_000);
    let wt = f.constant(vec![8, 3, 3, 3], wv.clone().into());
    let bt = f.constant(vec![8], bv.clone().into());
    let qc = QConv2d {
        conv: conv(1, 1),
        layer: QLayer {
            input_zero_point: 0,
            requant: (0..8).map(|c| rq(2e-5 * (1.0 + c as f64 / 8.0))).collect(),
            out_dtype: DType::I16,
            out: OutRange {
                zero_point: 0,
                min: 0,
                max: 32767,
            },
        },
    };
    let p = PackedQConv::with_isa(
        Isa::Scalar,
        &qc,
        QWeights::Bits16 {
            weight: &wv,
            bias: Some(&bv),
        },
        &[8, 3, 3, 3],
    )
    .unwrap();
    let mut e = vec![0i16; h * w * 8];
    p.run(f.val(a).as_i16().unwrap(), &[1, h, w, 3], &mut e)
        .unwrap();
    let b = f.node(Op::QConv2d(qc), vec![a, wt, bt], e.into());

    // INT16 → UINT8 with zero point 100.
    let to_u8 = QRescale {
        input_zero_point: 0,
        positive: vec![rq(1.0 / 128.0)],
        negative: vec![rq(1.0 / 128.0)],
        out_dtype: DType::U8,
        out: OutRange::full(DType::U8, 100),
    };
    let mut e = vec![0u8; h * w * 8];
    int::qrescale(&to_u8, f.val(b).as_i16().unwrap(), &[1, h, w, 8], &mut e).unwrap();
    let c = f.node(Op::QRescale(to_u8), vec![b], e.into());

    // 8-bit 1×1 convolution with 2 groups, output UINT8 zero point 90.
    let wv: Vec<i8> = ints(6 * 4, 4, -127, 127)
        .into_iter()
        .map(|v| v as i8)
        .collect();
    let bv: Vec<i32> = ints(6, 5, -5000, 5000)
        .into_iter()
        .map(|v| v as i32)
        .collect();
    let wt = f.constant(vec![6, 1, 1, 4], wv.clone().into());
    let bt = f.constant(vec![6], bv.clone().into());
    let qc = QConv2d {
        conv: Conv2d {
            groups: 2,
            ..conv(1, 0)
        },
        layer: QLayer {
            input_zero_point: 100,
            requant: vec![rq(0.01)],
            out_dtype: DType::U8,
            out: OutRange::full(DType::U8, 90),
        },
    };
    let p = PackedQConv::with_isa(
        Isa::Scalar,
        &qc,
        QWeights::Bits8 {
            weight: &wv,
            bias: Some(&bv),
        },
        &[6, 1, 1, 4],
    )
    .unwrap();
    let mut e = vec![0u8; h * w * 6];
    p.run(f.val(c).as_u8().unwrap(), &[1, h, w, 8], &mut e)
        .unwrap();
    let d = f.node(Op::QConv2d(qc), vec![c, wt, bt], e.into());

    // 8-bit depthwise 3×3, stride 2, multiplier 2, no bias, INT16 output.
    let wv: Vec<i8> = ints(3 * 3 * 12, 6, -127, 127)
        .into_iter()
        .map(|v| v as i8)
        .collect();
    let wt = f.constant(vec![1, 3, 3, 12], wv.clone().into());
    let qd = QDepthwiseConv2d {
        conv: DepthwiseConv2d {
            strides: [2, 2],
            dilations: [1, 1],
            padding: pad(1),
            depth_multiplier: 2,
            activation: FusedActivation::None,
        },
        layer: QLayer {
            input_zero_point: 90,
            requant: (0..12).map(|c| rq(0.5 + c as f64 / 24.0)).collect(),
            out_dtype: DType::I16,
            out: OutRange::full(DType::I16, 0),
        },
    };
    let p = PackedQDepthwise::with_isa(
        Isa::Scalar,
        &qd,
        QWeights::Bits8 {
            weight: &wv,
            bias: None,
        },
        &[1, 3, 3, 12],
    )
    .unwrap();
    let os = p.output_shape(&[1, h, w, 6]).unwrap();
    let mut e = vec![0i16; os.iter().product()];
    p.run(f.val(d).as_u8().unwrap(), &[1, h, w, 6], &mut e)
        .unwrap();
    let dd = f.node(Op::QDepthwiseConv2d(qd), vec![d, wt], e.into());

    // 16-bit transposed convolution, stride 2, back to about (h, w), 4 channels.
    let ds = f.shape(dd);
    let wv = i16s(4 * 3 * 3 * 12, 7, -3000, 3000);
    let bv: Vec<i64> = ints(4, 8, -100_000, 100_000);
    let wt = f.constant(vec![4, 3, 3, 12], wv.clone().into());
    let bt = f.constant(vec![4], bv.clone().into());
    let qt = QTransposeConv2d {
        conv: TransposeConv2d {
            strides: [2, 2],
            dilations: [1, 1],
            padding: pad(1),
            output_padding: [1, 1],
            groups: 1,
            activation: FusedActivation::None,
        },
        layer: QLayer {
            input_zero_point: 0,
            requant: vec![rq(3e-6)],
            out_dtype: DType::I16,
            out: OutRange::full(DType::I16, 0),
        },
    };
    let p = PackedQTransposeConv::with_isa(
        Isa::Scalar,
        &qt,
        QWeights::Bits16 {
            weight: &wv,
            bias: Some(&bv),
        },
        &[4, 3, 3, 12],
    )
    .unwrap();
    let os = p.output_shape(&ds).unwrap();
    let mut e = vec![0i16; os.iter().product()];
    p.run(f.val(dd).as_i16().unwrap(), &ds, &mut e).unwrap();
    let t = f.node(Op::QTransposeConv2d(qt), vec![dd, wt, bt], e.into());

    // INT16 → UINT8 (zero point 128), then an 8-bit fully-connected layer on the channels.
    let ts = f.shape(t);
    let to_u8 = QRescale {
        input_zero_point: 0,
        positive: vec![rq(1.0 / 64.0)],
        negative: vec![rq(1.0 / 64.0)],
        out_dtype: DType::U8,
        out: OutRange::full(DType::U8, 128),
    };
    let mut e = vec![0u8; ts.iter().product()];
    int::qrescale(&to_u8, f.val(t).as_i16().unwrap(), &ts, &mut e).unwrap();
    let u = f.node(Op::QRescale(to_u8), vec![t], e.into());
    let wv: Vec<i8> = ints(5 * 4, 9, -127, 127)
        .into_iter()
        .map(|v| v as i8)
        .collect();
    let bv: Vec<i32> = ints(5, 10, -3000, 3000)
        .into_iter()
        .map(|v| v as i32)
        .collect();
    let wt = f.constant(vec![5, 4], wv.clone().into());
    let bt = f.constant(vec![5], bv.clone().into());
    let qf = QFullyConnected {
        layer: QLayer {
            input_zero_point: 128,
            requant: vec![rq(3.0)],
            out_dtype: DType::I16,
            out: OutRange::full(DType::I16, 0),
        },
    };
    let p = PackedQFullyConnected::with_isa(
        Isa::Scalar,
        &qf,
        QWeights::Bits8 {
            weight: &wv,
            bias: Some(&bv),
        },
        &[5, 4],
    )
    .unwrap();
    let os = p.output_shape(&ts).unwrap();
    let mut e = vec![0i16; os.iter().product()];
    p.run(f.val(u).as_u8().unwrap(), &ts, &mut e).unwrap();
    let fc = f.node(Op::QFullyConnected(qf), vec![u, wt, bt], e.into());
    f.quant(fc, 1e-3, 0);

    let dq = Dequantize {
        scale: 1e-3,
        zero_point: 0,
    };
    let mut e = vec![0f32; os.iter().product()];
    int::dequantize(&dq, f.val(fc).as_i16().unwrap(), &mut e).unwrap();
    let y = f.node(Op::Dequantize(dq), vec![fc], e.into());
    f.g.outputs.extend([y, fc, b]);
    f
}

/// Element-wise operators, tables, pooling, resizes, reductions, softmax and data movement on
/// INT16 (a RAWDATA_S16 input), plus a float input quantized on entry.
fn elementwise_chain() -> Fixture {
    let mut f = Fixture::new();
    let xs = [1, 6, 8, 8];
    let xv = i16s(6 * 8 * 8, 11, -32768, 32767);
    let x = f.input("x", xs.to_vec(), xv.clone().into());
    f.quant(x, 1e-3, 0);
    let yv = i16s(8, 12, -20000, 20000);
    let y = f.constant(vec![1, 1, 1, 8], yv.clone().into());
    let full = OutRange::full(DType::I16, 0);

    let bin = |f: &mut Fixture, kind: QBinaryKind, a: TensorId, b: TensorId| {
        let op = QBinary { kind, out: full };
        let (sa, sb) = (f.shape(a), f.shape(b));
        let n: usize = f
            .out_shape(&Op::QBinary(op.clone()), &[a, b])
            .iter()
            .product();
        let mut e = vec![0i16; n];
        int::qbinary(
            &op,
            f.val(a).as_i16().unwrap(),
            &sa,
            f.val(b).as_i16().unwrap(),
            &sb,
            &mut e,
        )
        .unwrap();
        f.node(Op::QBinary(op), vec![a, b], e.into())
    };
    let add = bin(
        &mut f,
        QBinaryKind::Add {
            ma: 1 << 14,
            mb: 3 << 12,
            shift: 15,
        },
        x,
        y,
    );
    let sub = bin(
        &mut f,
        QBinaryKind::Sub {
            ma: 1 << 14,
            mb: 1 << 13,
            shift: 15,
        },
        add,
        x,
    );
    let mx = bin(
        &mut f,
        QBinaryKind::Max {
            ma: 1 << 14,
            mb: 1 << 14,
            shift: 14,
        },
        sub,
        y,
    );
    let mn = bin(
        &mut f,
        QBinaryKind::Min {
            ma: 1 << 14,
            mb: 1 << 14,
            shift: 14,
        },
        mx,
        add,
    );
    let mul = bin(&mut f, QBinaryKind::Mul(rq(1.0 / 20000.0)), mn, x);
    let div = bin(&mut f, QBinaryKind::Div(rq(0.5)), mul, y);

    // Tables.
    let sig = build_lut(|v| 1.0 / (1.0 + (-v).exp()), 1e-3, 1.0 / 32767.0);
    let mut e = vec![0i16; xv.len()];
    int::qlut(&sig, f.val(div).as_i16().unwrap(), &mut e).unwrap();
    let lut = f.node(Op::QLut(sig.clone()), vec![div], e.into());

    // Table products x · T(x), fused in the fast plan: on the graph input, then on an
    // activation that dies with the product (in place), operands in the other order.
    let mut e = vec![0i16; xv.len()];
    int::qlut(&sig, &xv, &mut e).unwrap();
    let sx = f.node(Op::QLut(sig.clone()), vec![x], e.into());
    let silu_a = bin(&mut f, QBinaryKind::Mul(rq(1.0 / 32768.0)), x, sx);
    let mut e = vec![0i16; xv.len()];
    int::qlut(&sig, f.val(silu_a).as_i16().unwrap(), &mut e).unwrap();
    let ss = f.node(Op::QLut(sig), vec![silu_a], e.into());
    let silu_b = bin(&mut f, QBinaryKind::Mul(rq(1.0 / 16384.0)), ss, silu_a);

    // LeakyRelu by rescale, per-channel negative multipliers.
    let leaky = QRescale {
        input_zero_point: 0,
        positive: vec![rq(0.9)],
        negative: (0..8).map(|c| rq(0.05 * (c + 1) as f64)).collect(),
        out_dtype: DType::I16,
        out: full,
    };
    let mut e = vec![0i16; xv.len()];
    int::qrescale(&leaky, f.val(mul).as_i16().unwrap(), &xs, &mut e).unwrap();
    let lr = f.node(Op::QRescale(leaky), vec![mul], e.into());

    // Max pooling on INT16 (shared operator), then quantized average pooling.
    let mp = Pool2d {
        kind: PoolKind::Max,
        kernel: [2, 2],
        strides: [2, 2],
        dilations: [1, 1],
        padding: Padding2d::ZERO,
        ceil_mode: false,
    };
    let mut e = vec![0i16; 3 * 4 * 8];
    int::max_pool2d(&mp, f.val(lr).as_i16().unwrap(), &xs, &mut e).unwrap();
    let pooled = f.node(Op::Pool2d(mp), vec![lr], e.into());
    let ap = QAvgPool2d {
        pool: Pool2d {
            kind: PoolKind::Average {
                count_include_pad: false,
            },
            kernel: [3, 3],
            strides: [1, 1],
            dilations: [1, 1],
            padding: pad(1),
            ceil_mode: false,
        },
        input_zero_point: 0,
        requant: rq(0.75),
        out_dtype: DType::I16,
        out: full,
    };
    let mut e = vec![0i16; 3 * 4 * 8];
    int::qavg_pool2d(&ap, f.val(pooled).as_i16().unwrap(), &[1, 3, 4, 8], &mut e).unwrap();
    let avg = f.node(Op::QAvgPool2d(ap), vec![pooled], e.into());

    // Bilinear resize ×2, then nearest ×1.5 (shared operator on INT16).
    let qr = QResize {
        resize: Resize {
            mode: ResizeMode::Linear,
            coord: CoordTransform::HalfPixel,
            size: [6, 8],
            scales: [2.0, 2.0],
        },
        input_zero_point: 0,
        requant: rq(1.0 / (1u64 << 22) as f64),
        out_dtype: DType::I16,
        out: full,
    };
    let mut e = vec![0i16; 6 * 8 * 8];
    int::qresize(&qr, f.val(avg).as_i16().unwrap(), &[1, 3, 4, 8], &mut e).unwrap();
    let up = f.node(Op::QResize(qr), vec![avg], e.into());
    let nr = Resize {
        mode: ResizeMode::Nearest(NearestMode::RoundPreferCeil),
        coord: CoordTransform::AlignCorners,
        size: [9, 12],
        scales: [1.5, 1.5],
    };
    let mut e = vec![0i16; 9 * 12 * 8];
    int::resize_nearest(&nr, f.val(up).as_i16().unwrap(), &[1, 6, 8, 8], &mut e).unwrap();
    let near = f.node(Op::Resize(nr), vec![up], e.into());

    // Reductions: max over W (shared), quantized mean over H and W, sum over C.
    let rmax = Reduce {
        op: ReduceOp::Max,
        axes: vec![2],
        keep_dims: true,
    };
    let mut e = vec![0i16; 9 * 8];
    int::reduce_extreme(
        ReduceOp::Max,
        f.val(near).as_i16().unwrap(),
        &[1, 9, 12, 8],
        &[2],
        &mut e,
    )
    .unwrap();
    let red_max = f.node(Op::Reduce(rmax), vec![near], e.into());
    let rmin = Reduce {
        op: ReduceOp::Min,
        axes: vec![1, 2],
        keep_dims: false,
    };
    let mut e = vec![0i16; 8];
    int::reduce_extreme(
        ReduceOp::Min,
        f.val(near).as_i16().unwrap(),
        &[1, 9, 12, 8],
        &[1, 2],
        &mut e,
    )
    .unwrap();
    let red_min = f.node(Op::Reduce(rmin), vec![near], e.into());
    let mean = QReduce {
        reduce: Reduce {
            op: ReduceOp::Mean,
            axes: vec![1, 2],
            keep_dims: true,
        },
        input_zero_point: 0,
        requant: rq(1.0),
        out_dtype: DType::I16,
        out: full,
    };
    let mut e = vec![0i16; 8];
    int::qreduce(&mean, f.val(near).as_i16().unwrap(), &[1, 9, 12, 8], &mut e).unwrap();
    let red_mean = f.node(Op::QReduce(mean), vec![near], e.into());
    let sum = QReduce {
        reduce: Reduce {
            op: ReduceOp::Sum,
            axes: vec![3],
            keep_dims: false,
        },
        input_zero_point: 0,
        requant: rq(0.125),
        out_dtype: DType::I16,
        out: full,
    };
    let mut e = vec![0i16; 9];
    int::qreduce(
        &sum,
        f.val(red_max).as_i16().unwrap(),
        &[1, 9, 1, 8],
        &mut e,
    )
    .unwrap();
    let red_sum = f.node(Op::QReduce(sum), vec![red_max], e.into());

    // Softmax over channels.
    let sm = QSoftmax {
        axis: 3,
        exp_table: build_exp_table(1e-3),
    };
    let mut e = vec![0i16; 6 * 8 * 8];
    int::qsoftmax(&sm, f.val(up).as_i16().unwrap(), &[1, 6, 8, 8], &mut e).unwrap();
    let soft = f.node(Op::QSoftmax(sm), vec![up], e.into());

    // Matrix product of the softmax rows with a constant INT16 matrix.
    let rs = Reshape {
        shape: vec![1, 48, 8],
    };
    let e = f.val(soft).clone();
    let rows = f.node(Op::Reshape(rs), vec![soft], e);
    let bv = i16s(8 * 5, 13, -32767, 32767);
    let bm = f.constant(vec![8, 5], bv.clone().into());
    let qm = QMatMul {
        requant: rq(1.0 / 32767.0),
        out: full,
    };
    let mut e = vec![0i16; 48 * 5];
    int::qmatmul(
        &qm,
        f.val(rows).as_i16().unwrap(),
        &[1, 48, 8],
        &bv,
        &[8, 5],
        &mut e,
    )
    .unwrap();
    let mm = f.node(Op::QMatMul(qm), vec![rows, bm], e.into());

    // Data movement on INT16: transpose, pad, slice, concat, split, gather, depth-to-space.
    let lr_v: Vec<i16> = f.val(lut).as_i16().unwrap().to_vec();
    let perm = vec![0, 2, 1, 3];
    let mut e = vec![0i16; lr_v.len()];
    array::transpose(&lr_v, &xs, &perm, &mut e).unwrap();
    let tr = f.node(Op::Transpose(Transpose { perm }), vec![lut], e.into());
    let pads = vec![[0, 0], [1, 0], [0, 2], [0, 0]];
    let mode = PadMode::Constant(-5.0);
    let mut e = vec![0i16; 9 * 8 * 8];
    array::pad(
        f.val(tr).as_i16().unwrap(),
        &[1, 8, 6, 8],
        &pads,
        mode,
        &mut e,
    )
    .unwrap();
    let padded = f.node(Op::Pad(Pad { pads, mode }), vec![tr], e.into());
    let axes = vec![
        SliceAxis {
            start: 0,
            step: 1,
            len: 1,
        },
        SliceAxis {
            start: 7,
            step: -2,
            len: 4,
        },
        SliceAxis {
            start: 0,
            step: 1,
            len: 8,
        },
        SliceAxis {
            start: 0,
            step: 1,
            len: 8,
        },
    ];
    let mut e = vec![0i16; 4 * 8 * 8];
    array::slice(
        f.val(padded).as_i16().unwrap(),
        &[1, 9, 8, 8],
        &axes,
        &mut e,
    )
    .unwrap();
    let sl = f.node(Op::Slice(Slice { axes }), vec![padded], e.into());
    let parts = [
        (f.val(sl).as_i16().unwrap(), &[1usize, 4, 8, 8][..]),
        (f.val(lr).as_i16().unwrap(), &xs[..]),
    ];
    let mut e = vec![0i16; 10 * 8 * 8];
    array::concat(&parts, 1, &mut e).unwrap();
    let cat = f.node(Op::Concat(Concat { axis: 1 }), vec![sl, lr], e.into());
    let split = Split {
        axis: 3,
        sizes: vec![4, 4],
    };
    let (mut s0, mut s1) = (vec![0i16; 320], vec![0i16; 320]);
    array::split(
        f.val(cat).as_i16().unwrap(),
        &[1, 10, 8, 8],
        3,
        &[4, 4],
        &mut [&mut s0[..], &mut s1[..]],
    )
    .unwrap();
    let names = [f.name("s"), f.name("s")];
    let so =
        f.g.add_node(
            "split",
            Op::Split(split),
            vec![cat],
            &[names[0].as_str(), names[1].as_str()],
        )
        .unwrap();
    f.vals.insert(so[0], s0.into());
    f.vals.insert(so[1], s1.into());
    let idx = f.constant(vec![3], vec![2i64, 0, 3].into());
    let gi = array::gather_indices(&[2i64, 0, 3], 4).unwrap();
    let mut e = vec![0i16; 10 * 8 * 3];
    array::gather(
        f.val(so[1]).as_i16().unwrap(),
        &[1, 10, 8, 4],
        3,
        &gi,
        &[3],
        &mut e,
    )
    .unwrap();
    let ga = f.node(Op::Gather(Gather { axis: 3 }), vec![so[1], idx], e.into());
    let mut e = vec![0i16; 320];
    array::depth_to_space(
        f.val(so[0]).as_i16().unwrap(),
        &[1, 10, 8, 4],
        2,
        DepthToSpaceMode::Crd,
        &mut e,
    )
    .unwrap();
    let d2s = f.node(
        Op::DepthToSpace(DepthToSpace {
            block: 2,
            mode: DepthToSpaceMode::Crd,
        }),
        vec![so[0]],
        e.into(),
    );

    // A float input quantized on entry, added to the INT16 path, dequantized on exit.
    let fv: Vec<f32> = ints(8, 14, -40000, 40000)
        .into_iter()
        .map(|v| v as f32 / 1000.0)
        .collect();
    let fx = f.input("f", vec![1, 1, 1, 8], fv.clone().into());
    let qz = Quantize {
        scale: 2e-3,
        zero_point: 0,
        out_dtype: DType::I16,
    };
    let mut e = vec![0i16; 8];
    int::quantize(&qz, &fv, &mut e).unwrap();
    let fq = f.node(Op::Quantize(qz), vec![fx], e.into());
    let sum2 = bin(
        &mut f,
        QBinaryKind::Add {
            ma: 1 << 13,
            mb: 1 << 14,
            shift: 14,
        },
        red_mean,
        fq,
    );
    let dq = Dequantize {
        scale: 2e-3,
        zero_point: 0,
    };
    let mut e = vec![0f32; 8];
    int::dequantize(&dq, f.val(sum2).as_i16().unwrap(), &mut e).unwrap();
    let out = f.node(Op::Dequantize(dq), vec![sum2], e.into());

    f.g.outputs
        .extend([out, mm, ga, d2s, red_min, red_sum, lut, near, silu_b]);
    f
}

trait Lossy {
    fn to_i64_vec_lossy(&self) -> Vec<i64>;
}

impl Lossy for TensorData {
    /// The elements as integers (floats scaled by 1000).
    fn to_i64_vec_lossy(&self) -> Vec<i64> {
        match self.as_f32() {
            Some(v) => v.iter().map(|&x| (x * 1000.0) as i64).collect(),
            None => self.to_i64_vec(),
        }
    }
}

/// Runs `f` in both plans on `threads` threads and checks every tensor against the direct
/// kernel calls.
/// A 3×3 or 1×1 convolution node of `x` (NHWC `[1, h, w, cin]`, UINT8 for 8-bit mode, INT16
/// for 16-bit mode) with `cout` outputs, and its expected output by a direct kernel call.
fn conv_node(
    f: &mut Fixture,
    x: TensorId,
    k: usize,
    cout: usize,
    out: OutRange,
    seed: u64,
) -> TensorId {
    let xs = f.shape(x);
    let cin = xs[3];
    let n_w = cout * k * k * cin;
    let bits16 = f.g.tensor(x).dtype == DType::I16;
    let out_dtype = if out.min < 0 { DType::I16 } else { DType::U8 };
    let qc = QConv2d {
        conv: conv(1, k / 2),
        layer: QLayer {
            input_zero_point: if bits16 { 0 } else { 128 },
            requant: (0..cout)
                .map(|c| rq(if bits16 { 4e-4 } else { 4e-2 } * (1.0 + c as f64 / 8.0)))
                .collect(),
            out_dtype,
            out,
        },
    };
    let w16 = i16s(n_w, seed, -3000, 3000);
    let w8: Vec<i8> = ints(n_w, seed, -127, 127)
        .into_iter()
        .map(|v| v as i8)
        .collect();
    let weights = if bits16 {
        QWeights::Bits16 {
            weight: &w16,
            bias: None,
        }
    } else {
        QWeights::Bits8 {
            weight: &w8,
            bias: None,
        }
    };
    let p = PackedQConv::with_isa(Isa::Scalar, &qc, weights, &[cout, k, k, cin]).unwrap();
    let len = xs[0] * xs[1] * xs[2] * cout;
    let e = match (f.val(x), out_dtype) {
        (TensorData::U8(v), DType::U8) => {
            let mut o = vec![0u8; len];
            p.run(v, &xs, &mut o).unwrap();
            TensorData::from(o)
        }
        (TensorData::U8(v), _) => {
            let mut o = vec![0i16; len];
            p.run(v, &xs, &mut o).unwrap();
            TensorData::from(o)
        }
        (TensorData::I16(v), _) => {
            let mut o = vec![0i16; len];
            p.run(v, &xs, &mut o).unwrap();
            TensorData::from(o)
        }
        _ => panic!("conv input"),
    };
    let wdata: TensorData = if bits16 { w16.into() } else { w8.into() };
    let wt = f.constant(vec![cout, k, k, cin], wdata);
    f.node(Op::QConv2d(qc), vec![x, wt], e)
}

/// A QRescale node with its expected output.
fn rescale_node(f: &mut Fixture, x: TensorId, r: QRescale) -> TensorId {
    let xs = f.shape(x);
    let len: usize = xs.iter().product();
    let e = match (f.val(x), r.out_dtype) {
        (TensorData::I16(v), DType::U8) => {
            let mut o = vec![0u8; len];
            int::qrescale(&r, v, &xs, &mut o).unwrap();
            TensorData::from(o)
        }
        (TensorData::I16(v), _) => {
            let mut o = vec![0i16; len];
            int::qrescale(&r, v, &xs, &mut o).unwrap();
            TensorData::from(o)
        }
        _ => panic!("rescale input"),
    };
    f.node(Op::QRescale(r), vec![x], e)
}

/// A QBinary node on INT16 operands with its expected output.
fn binary_node(f: &mut Fixture, a: TensorId, b: TensorId, q: QBinary) -> TensorId {
    let (sa, sb) = (f.shape(a), f.shape(b));
    let len = f
        .shape(a)
        .iter()
        .product::<usize>()
        .max(sb.iter().product());
    let mut o = vec![0i16; len];
    int::qbinary(
        &q,
        f.val(a).as_i16().unwrap(),
        &sa,
        f.val(b).as_i16().unwrap(),
        &sb,
        &mut o,
    )
    .unwrap();
    f.node(Op::QBinary(q), vec![a, b], o.into())
}

/// The groups the runtime fuses: `InputNormalize → QRescale (UINT8)`, an 8-bit convolution
/// with a PReLU block (two rescales, a per-channel product, a sum), a 16-bit pointwise
/// convolution with a fixed-point SiLU and a change to UINT8, then an 8-bit convolution to
/// UINT8 (the graph output).
fn tail_chain(h: usize, w: usize) -> Fixture {
    let mut f = Fixture::new();
    let img: Vec<u8> = ints(h * w * 3, 21, 0, 255)
        .into_iter()
        .map(|v| v as u8)
        .collect();
    let x = f.input("image", vec![1, h, w, 3], img.clone().into());
    let s0 = 127.5 / 58.0 / 32767.0;
    let norm = InputNormalize {
        image: ImageInput::Interleaved,
        source_channel: vec![2, 1, 0],
        mean_q: vec![32640; 3],
        requant: vec![rq(1.0 / (256.0 * 58.0 * s0)); 3],
    };
    let mut e = vec![0i16; h * w * 3];
    int::input_normalize(&norm, &img, &[1, h, w, 3], &mut e).unwrap();
    let a = f.node(Op::InputNormalize(norm), vec![x], e.into());
    let to_u8 = |ratio: f64| QRescale {
        input_zero_point: 0,
        positive: vec![rq(ratio)],
        negative: vec![rq(ratio)],
        out_dtype: DType::U8,
        out: OutRange::full(DType::U8, 128),
    };
    let b = rescale_node(&mut f, a, to_u8(1.0 / 256.0));
    let full16 = OutRange::full(DType::I16, 0);
    let c = conv_node(&mut f, b, 3, 8, full16, 22);
    // PReLU as TFLite lowers it: relu(c) + slope · min(c, 0).
    let pos = rescale_node(
        &mut f,
        c,
        QRescale {
            input_zero_point: 0,
            positive: vec![rq(1.0)],
            negative: vec![rq(1.0)],
            out_dtype: DType::I16,
            out: OutRange {
                zero_point: 0,
                min: 0,
                max: 32767,
            },
        },
    );
    let neg = rescale_node(
        &mut f,
        c,
        QRescale {
            input_zero_point: 0,
            positive: vec![rq(1.0)],
            negative: (0..8).map(|k| rq(0.5 + k as f64 / 16.0)).collect(),
            out_dtype: DType::I16,
            out: OutRange {
                zero_point: 0,
                min: -32768,
                max: 0,
            },
        },
    );
    let slopes = f.constant(vec![8], i16s(8, 23, 1000, 30000).into());
    let mul = QBinary {
        kind: QBinaryKind::Mul(rq(1.0 / 32768.0)),
        out: full16,
    };
    let scaled = binary_node(&mut f, neg, slopes, mul.clone());
    let add = QBinary {
        kind: QBinaryKind::Add {
            ma: 1 << 19,
            mb: 3 << 18,
            shift: 20,
        },
        out: full16,
    };
    let prelu = binary_node(&mut f, pos, scaled, add);
    // 16-bit pointwise convolution, SiLU as a table and its product, then UINT8.
    let d = conv_node(&mut f, prelu, 1, 12, full16, 24);
    let sig = build_lut(|v| 1.0 / (1.0 + (-v).exp()), 1e-3, 1.0 / 32767.0);
    let mut e = vec![0i16; f.val(d).len()];
    int::qlut(&sig, f.val(d).as_i16().unwrap(), &mut e).unwrap();
    let s = f.node(Op::QLut(sig), vec![d], e.into());
    let silu = binary_node(&mut f, d, s, mul);
    let g = rescale_node(&mut f, silu, to_u8(1.0 / 128.0));
    let out = conv_node(&mut f, g, 3, 4, OutRange::full(DType::U8, 10), 25);
    f.g.outputs.push(out);
    f
}

#[test]
fn fused_layers_and_tails_match_direct_kernel_calls() {
    let f = tail_chain(13, 17);
    check(&f, 1);
    check(&f, 2);
    let s = Session::new(f.g.clone(), opts(2)).unwrap();
    let name = |i: usize| f.g.nodes[i].name.as_str();
    // Nodes: 0 normalize, 1 rescale, 2 conv, 3..=6 PReLU, 7 conv, 8 table, 9 product,
    // 10 rescale, 11 conv.
    assert_eq!(
        s.fused_nodes(),
        vec![(name(0), name(1)), (name(2), name(6)), (name(7), name(10))]
    );
}

fn check(f: &Fixture, threads: usize) {
    let inputs: Vec<Value> =
        f.g.inputs
            .iter()
            .map(|&t| Value::new(f.shape(t), f.val(t).clone()).unwrap())
            .collect();
    let mut s = Session::new(f.g.clone(), opts(threads)).unwrap();
    let out = s.run(inputs.clone()).unwrap();
    for (k, &t) in f.g.outputs.iter().enumerate() {
        assert_eq!(
            &out[k].data,
            f.val(t),
            "output '{}' ({threads} threads)",
            f.g.tensor(t).name
        );
    }
    let mut seen = 0;
    s.invoke_with_observer(&mut |node, t, v| {
        assert_eq!(
            &v.to_value().data,
            &f.vals[&t],
            "node '{}' ({}), {threads} threads",
            node.name,
            node.op.name()
        );
        // The fixtures are chosen so that no tensor is constant (saturated or all zero).
        let d = v.to_value().data.to_i64_vec_lossy();
        assert!(
            d.len() < 2 || d.iter().any(|&e| e != d[0]),
            "node '{}' gives a constant tensor",
            node.name
        );
        seen += 1;
    })
    .unwrap();
    let produced: usize = f.g.nodes.iter().map(|n| n.outputs.len()).sum();
    assert_eq!(seen, produced);
}

#[test]
fn layer_chain_matches_direct_kernel_calls() {
    check(&layer_chain(9, 11), 1);
    check(&layer_chain(9, 11), 2);
}

#[test]
fn elementwise_tables_pooling_and_data_movement_match_direct_kernel_calls() {
    check(&elementwise_chain(), 1);
    check(&elementwise_chain(), 3);
}

#[test]
fn results_do_not_depend_on_the_number_of_threads() {
    // Large enough for every kernel to split its work.
    let f = layer_chain(64, 48);
    let run = |threads: usize| {
        let mut s = Session::new(f.g.clone(), opts(threads)).unwrap();
        let inputs =
            vec![Value::new(f.shape(f.g.inputs[0]), f.val(f.g.inputs[0]).clone()).unwrap()];
        s.run(inputs).unwrap()
    };
    let one = run(1);
    for threads in [2, 3, 4, 7] {
        assert_eq!(run(threads), one, "{threads} threads");
    }
    let e = elementwise_chain();
    let run = |threads: usize| {
        let mut s = Session::new(e.g.clone(), opts(threads)).unwrap();
        let inputs =
            e.g.inputs
                .iter()
                .map(|&t| Value::new(e.shape(t), e.val(t).clone()).unwrap())
                .collect();
        s.run(inputs).unwrap()
    };
    let one = run(1);
    for threads in [2, 5] {
        assert_eq!(run(threads), one, "{threads} threads");
    }
}

#[test]
fn integer_inputs_are_checked_with_the_seeds_messages() {
    let f = layer_chain(5, 6);
    let mut s = Session::new(f.g.clone(), opts(1)).unwrap();
    let e = s
        .set_input(0, Value::new(vec![1, 5, 6, 3], vec![0f32; 90]).unwrap())
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "Cannot set input tensor: Got tensor of type FLOAT32 but expected type UINT8 for input 0, name: image"
    );
    let e = s
        .set_input(0, Value::new(vec![1, 5, 6, 3], vec![0i16; 90]).unwrap())
        .unwrap_err();
    assert!(matches!(
        e,
        RuntimeError::InputType {
            got: DType::I16,
            expected: DType::U8,
            ..
        }
    ));
    let e = s
        .set_input(0, Value::new(vec![1, 6, 5, 3], vec![0u8; 90]).unwrap())
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "Cannot set tensor: Dimension mismatch. Got 6 but expected 5 for dimension 1 of input 0, name: image"
    );
    s.set_input(0, Value::new(vec![1, 5, 6, 3], vec![7u8; 90]).unwrap())
        .unwrap();
    s.invoke().unwrap();
    assert_eq!(s.output(1).unwrap().dtype(), DType::I16);

    // INT16 (RAWDATA_S16) input.
    let e = elementwise_chain();
    let mut s = Session::new(e.g.clone(), opts(1)).unwrap();
    let err = s
        .set_input(0, Value::new(vec![1, 6, 8, 8], vec![0u8; 384]).unwrap())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Cannot set input tensor: Got tensor of type UINT8 but expected type INT16 for input 0, name: x"
    );
    let err = s
        .set_input(0, Value::new(vec![6, 8, 8], vec![0i16; 384]).unwrap())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Cannot set tensor: Dimension mismatch. Got 3 dimensions but expected 4 for input 0, name: x"
    );
    s.set_input(0, Value::new(vec![1, 6, 8, 8], vec![3i16; 384]).unwrap())
        .unwrap();
}

#[test]
fn details_expose_scale_zero_point_min_and_max() {
    let f = layer_chain(5, 6);
    let s = Session::new(f.g.clone(), opts(1)).unwrap();
    let ins = s.input_details();
    assert_eq!(ins[0].dtype, DType::U8);
    assert_eq!(ins[0].scale_zero_point(), Some((1.0, 0)));
    let outs = s.output_details();
    // The dequantized output is float: no quantization, as the seeds' Fix2Float.
    assert_eq!(outs[0].dtype, DType::F32);
    assert_eq!(outs[0].scale_zero_point(), None);
    assert_eq!(outs[1].dtype, DType::I16);
    assert_eq!(outs[1].scale_zero_point(), Some((1e-3, 0)));
    let det = s.tensor_details();
    let fc = det
        .iter()
        .find(|d| d.name == f.g.tensor(f.g.outputs[1]).name)
        .unwrap();
    assert_eq!(fc.dtype, DType::I16);
    assert_eq!(fc.quantization_pairs(), vec![(1e-3, 0)]);
    assert_eq!(fc.min(), &[-32767.0f32 * 1e-3]);
    assert_eq!(fc.max(), &[32767.0f32 * 1e-3]);
    assert_eq!(fc.quantization_dimension(), Some(0));
    let img = det.iter().find(|d| d.name == "image").unwrap();
    assert_eq!(
        (img.dtype, img.min(), img.max()),
        (DType::U8, &[0.0f32][..], &[255.0f32][..])
    );
    // Weights without quantization parameters list none.
    let w = det.iter().find(|d| d.dtype == DType::I8).unwrap();
    assert!(w.quantization_pairs().is_empty() && w.min().is_empty());
}

#[test]
fn layers_with_weights_from_inputs_run_unpacked() {
    // The same 16-bit convolution with constant weights (packed at creation) and with the
    // weights as a graph input (packed at each run) gives the same integers.
    let xv = i16s(2 * 7 * 7 * 5, 21, -32768, 32767);
    let wv = i16s(4 * 3 * 3 * 5, 22, -500, 500);
    let qc = QConv2d {
        conv: conv(2, 1),
        layer: QLayer {
            input_zero_point: 0,
            requant: vec![rq(1e-4)],
            out_dtype: DType::I16,
            out: OutRange::full(DType::I16, 0),
        },
    };
    let mut a = Graph::new();
    let x = a.add_input("x", DType::I16, vec![2, 7, 7, 5]);
    let w = a
        .add_const("w", vec![4, 3, 3, 5], wv.clone().into())
        .unwrap();
    let y = a
        .add_node("conv", Op::QConv2d(qc.clone()), vec![x, w], &["y"])
        .unwrap()[0];
    a.outputs.push(y);
    let mut b = Graph::new();
    let x = b.add_input("x", DType::I16, vec![2, 7, 7, 5]);
    let w = b.add_input("w", DType::I16, vec![4, 3, 3, 5]);
    let y = b
        .add_node("conv", Op::QConv2d(qc), vec![x, w], &["y"])
        .unwrap()[0];
    b.outputs.push(y);
    let xval = Value::new(vec![2, 7, 7, 5], xv).unwrap();
    let ra = Session::new(a, opts(2))
        .unwrap()
        .run(vec![xval.clone()])
        .unwrap();
    let rb = Session::new(b, opts(2))
        .unwrap()
        .run(vec![xval, Value::new(vec![4, 3, 3, 5], wv).unwrap()])
        .unwrap();
    assert_eq!(ra, rb);
    assert_eq!(ra[0].shape, vec![2, 4, 4, 4]);
}

#[test]
fn reference_evaluator_runs_fixed_operators() {
    let lut = build_lut(f64::tanh, 1e-3, 1.0 / 32767.0);
    let xv = i16s(100, 31, -32768, 32767);
    let mut g = Graph::new();
    let x = g.add_const("x", vec![100], xv.clone().into()).unwrap();
    let y = g
        .add_node("tanh", Op::QLut(lut.clone()), vec![x], &["y"])
        .unwrap()[0];
    g.outputs.push(y);
    let x_data: TensorData = xv.clone().into();
    let got = ReferenceEvaluator::new()
        .eval(&g.nodes[0], &[(&x_data, &[100][..])])
        .unwrap();
    let mut want = vec![0i16; 100];
    int::qlut(&lut, &xv, &mut want).unwrap();
    assert_eq!(got, vec![TensorData::from(want)]);

    // A layer: the evaluator packs on the fly.
    let wv: Vec<i8> = ints(3 * 4, 32, -127, 127)
        .into_iter()
        .map(|v| v as i8)
        .collect();
    let xv: Vec<u8> = ints(2 * 4, 33, 0, 255)
        .into_iter()
        .map(|v| v as u8)
        .collect();
    let qf = QFullyConnected {
        layer: QLayer {
            input_zero_point: 17,
            requant: vec![rq(0.02)],
            out_dtype: DType::U8,
            out: OutRange::full(DType::U8, 3),
        },
    };
    let mut g = Graph::new();
    let x = g.add_const("x", vec![2, 4], xv.clone().into()).unwrap();
    let w = g.add_const("w", vec![3, 4], wv.clone().into()).unwrap();
    g.add_node("fc", Op::QFullyConnected(qf.clone()), vec![x, w], &["y"])
        .unwrap();
    let (xd, wd): (TensorData, TensorData) = (xv.clone().into(), wv.clone().into());
    let got = ReferenceEvaluator::new()
        .eval(&g.nodes[0], &[(&xd, &[2, 4][..]), (&wd, &[3, 4][..])])
        .unwrap();
    let p = PackedQFullyConnected::with_isa(
        Isa::Scalar,
        &qf,
        QWeights::Bits8 {
            weight: &wv,
            bias: None,
        },
        &[3, 4],
    )
    .unwrap();
    let mut want = vec![0u8; 6];
    p.run(&xv, &[2, 4], &mut want).unwrap();
    assert_eq!(got, vec![TensorData::from(want)]);
}

#[test]
fn integer_shared_operators_keep_their_float_restrictions() {
    // Average pooling of integers must be a QAvgPool2d; bilinear resize a QResize.
    let mut g = Graph::new();
    let x = g.add_input("x", DType::I16, vec![1, 4, 4, 2]);
    let r = g
        .add_node(
            "resize",
            Op::Resize(Resize {
                mode: ResizeMode::Linear,
                coord: CoordTransform::HalfPixel,
                size: [8, 8],
                scales: [2.0, 2.0],
            }),
            vec![x],
            &["r"],
        )
        .unwrap()[0];
    g.outputs.push(r);
    let e = Session::new(g, opts(1)).unwrap_err().to_string();
    assert!(e.contains("resize") && e.contains("INT16"), "{e}");

    // Sum of INT16 values is not a fixed-point reduction either: it keeps its integer kernel.
    let mut g = Graph::new();
    let x = g.add_input("x", DType::I16, vec![2, 3]);
    let r = g
        .add_node(
            "sum",
            Op::Reduce(Reduce {
                op: ReduceOp::Sum,
                axes: vec![1],
                keep_dims: false,
            }),
            vec![x],
            &["r"],
        )
        .unwrap()[0];
    g.outputs.push(r);
    let out = Session::new(g, opts(1))
        .unwrap()
        .run(vec![
            Value::new(vec![2, 3], vec![1i16, 2, 3, -4, 5, 6]).unwrap()
        ])
        .unwrap();
    let mut want = vec![0i16; 2];
    math::reduce(
        ReduceOp::Sum,
        &[1i16, 2, 3, -4, 5, 6],
        &[2, 3],
        &[1],
        &mut want,
    )
    .unwrap();
    assert_eq!(out[0].data, TensorData::from(want));
}
