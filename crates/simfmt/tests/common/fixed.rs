//! Hand-built fixed-point graphs: every fixed-point operator (`docs/fixed-point.md`) with its
//! variations (8- and 16-bit layers, with and without bias, every binary kind, both image
//! layouts, …), and shared operators on integer tensors.

use super::{pad, B};
use ipukit_ir::ops::fixed::{
    Dequantize, ImageInput, InputNormalize, OutRange, QAvgPool2d, QBinary, QBinaryKind, QConv2d,
    QDepthwiseConv2d, QFullyConnected, QLayer, QLut, QMatMul, QReduce, QRescale, QResize, QSoftmax,
    QTransposeConv2d, Quantize, Requant, LUT_ENTRIES,
};
use ipukit_ir::ops::*;
use ipukit_ir::{DType, Graph, Op, QuantParams, TensorData, TensorId};

fn rq(multiplier: i32, shift: u32) -> Requant {
    Requant { multiplier, shift }
}

fn ints(n: usize, seed: i64, modulo: i64) -> Vec<i64> {
    (0..n as i64)
        .map(|i| (i * 7919 + seed * 104_729) % modulo - modulo / 2)
        .collect()
}

fn i8s(n: usize, seed: i64) -> TensorData {
    ints(n, seed, 255)
        .into_iter()
        .map(|v| v as i8)
        .collect::<Vec<_>>()
        .into()
}

fn i16s(n: usize, seed: i64) -> TensorData {
    ints(n, seed, 65535)
        .into_iter()
        .map(|v| v as i16)
        .collect::<Vec<_>>()
        .into()
}

fn quant(b: &mut B, t: TensorId, scale: f32, zp: i64) {
    b.g.tensor_mut(t).quant = Some(QuantParams {
        scale: vec![scale],
        zero_point: vec![zp],
        min: vec![-1.5],
        max: vec![2.5],
        quantized_dimension: 0,
    });
}

fn layer(zin: i32, requant: Vec<Requant>, out_dtype: DType, out: OutRange) -> QLayer {
    QLayer {
        input_zero_point: zin,
        requant,
        out_dtype,
        out,
    }
}

/// An image pipeline: InputNormalize (both layouts) → 8- and 16-bit layers → tables, softmax,
/// pooling, reductions, resizes → Dequantize.
pub fn fixed_layers() -> Graph {
    let mut b = B::new();
    let full16 = OutRange::full(DType::I16, 0);
    let img = b.input(DType::U8, &[1, 6, 8, 4]);
    quant(&mut b, img, 1.0, 0);
    let x = b.op(
        Op::InputNormalize(InputNormalize {
            image: ImageInput::Interleaved,
            source_channel: vec![2, 1, 0],
            mean_q: vec![32640, -300, 0],
            requant: vec![rq(1 << 30, 40), rq(123_456_789, 45), rq(2_000_000_000, 62)],
        }),
        &[img],
    );
    quant(&mut b, x, 0.0123, 0);
    let nv = b.input(DType::U8, &[1, 9, 8, 1]);
    let gray = b.op(
        Op::InputNormalize(InputNormalize {
            image: ImageInput::Nv12 { to_gray: true },
            source_channel: vec![0],
            mean_q: vec![100],
            requant: vec![rq(5, 1)],
        }),
        &[nv],
    );
    let rgb = b.op(
        Op::InputNormalize(InputNormalize {
            image: ImageInput::Nv12 { to_gray: false },
            source_channel: vec![0, 2],
            mean_q: vec![1, 2],
            requant: vec![rq(7, 3), rq(9, 0)],
        }),
        &[nv],
    );
    b.out(gray);
    b.out(rgb);

    // 16-bit convolution without bias, dilated, asymmetric padding, Relu6-like range.
    let w16 = b.constant(&[5, 3, 3, 3], i16s(135, 1));
    let c16 = b.op(
        Op::QConv2d(QConv2d {
            conv: Conv2d {
                strides: [1, 2],
                dilations: [2, 1],
                padding: pad(2, 1, 1, 0),
                groups: 1,
                activation: FusedActivation::None,
            },
            layer: layer(
                0,
                (0..5).map(|c| rq(1_000_000 + c, 30 + c as u32)).collect(),
                DType::I16,
                OutRange {
                    zero_point: 0,
                    min: 0,
                    max: 24000,
                },
            ),
        }),
        &[x, w16],
    );
    // INT16 → UINT8 with a zero point, per-channel negative multipliers.
    let u8x = b.op(
        Op::QRescale(QRescale {
            input_zero_point: 0,
            positive: vec![rq(1 << 29, 36)],
            negative: (0..5).map(|c| rq(1 << (20 + c), 36)).collect(),
            out_dtype: DType::U8,
            out: OutRange::full(DType::U8, 128),
        }),
        &[c16],
    );
    quant(&mut b, u8x, 0.02, 128);
    // 8-bit grouped convolution with bias: 5 groups of one input and two output channels.
    let w8 = b.constant(&[10, 1, 1, 1], i8s(10, 3));
    let b32 = b.constant(&[10], vec![-5i32, 4, 3, 2, 1, 0, 1, 2, 3, i32::MAX].into());
    let c8 = b.op(
        Op::QConv2d(QConv2d {
            conv: Conv2d {
                strides: [1, 1],
                dilations: [1, 1],
                padding: Padding2d::ZERO,
                groups: 5,
                activation: FusedActivation::None,
            },
            layer: layer(
                128,
                vec![rq(i32::MAX, 62)],
                DType::U8,
                OutRange::full(DType::U8, 3),
            ),
        }),
        &[u8x, w8, b32],
    );
    // 8-bit depthwise with bias, 16-bit depthwise without.
    let wd = b.constant(&[1, 3, 3, 20], i8s(180, 4));
    let bd = b.constant(&[20], vec![7i32; 20].into());
    let d8 = b.op(
        Op::QDepthwiseConv2d(QDepthwiseConv2d {
            conv: DepthwiseConv2d {
                strides: [2, 2],
                dilations: [1, 1],
                padding: pad(1, 1, 1, 1),
                depth_multiplier: 2,
                activation: FusedActivation::None,
            },
            layer: layer(3, vec![rq(77, 9)], DType::I16, full16),
        }),
        &[c8, wd, bd],
    );
    let wd16 = b.constant(&[1, 2, 2, 20], i16s(80, 5));
    let d16 = b.op(
        Op::QDepthwiseConv2d(QDepthwiseConv2d {
            conv: DepthwiseConv2d {
                strides: [1, 1],
                dilations: [1, 2],
                padding: pad(0, 1, 1, 1),
                depth_multiplier: 1,
                activation: FusedActivation::None,
            },
            layer: layer(0, vec![rq(3, 4)], DType::I16, full16),
        }),
        &[d8, wd16],
    );
    // 16-bit transposed convolution with INT64 bias and output padding.
    let wt = b.constant(&[6, 3, 3, 10], i16s(540, 6));
    let bt = b.constant(&[6], vec![i64::MIN, -1, 0, 1, i64::MAX, 1 << 40].into());
    let t16 = b.op(
        Op::QTransposeConv2d(QTransposeConv2d {
            conv: TransposeConv2d {
                strides: [2, 2],
                dilations: [1, 1],
                padding: pad(1, 0, 1, 1),
                output_padding: [1, 0],
                groups: 2,
                activation: FusedActivation::None,
            },
            layer: layer(0, vec![rq(11, 12)], DType::I16, full16),
        }),
        &[d16, wt, bt],
    );
    // Fully-connected: 16-bit with bias on a 4-D input, 8-bit without bias.
    let wf = b.constant(&[7, 6], i16s(42, 7));
    let bf = b.constant(&[7], vec![1i64, 2, 3, 4, 5, 6, 7].into());
    let f16 = b.op(
        Op::QFullyConnected(QFullyConnected {
            layer: layer(0, (0..7).map(|c| rq(c, 0)).collect(), DType::I16, full16),
        }),
        &[t16, wf, bf],
    );
    b.out(f16);
    let flat = b.input(DType::U8, &[3, 12]);
    let wf8 = b.constant(&[2, 12], i8s(24, 8));
    let f8 = b.op(
        Op::QFullyConnected(QFullyConnected {
            layer: layer(255, vec![rq(1, 1)], DType::U8, OutRange::full(DType::U8, 0)),
        }),
        &[flat, wf8],
    );
    b.out(f8);

    // Tables and softmax.
    let lut = |seed: i64| QLut {
        table: ints(LUT_ENTRIES, seed, 65535)
            .into_iter()
            .map(|v| v as i16)
            .collect(),
    };
    let l1 = b.op(Op::QLut(lut(9)), &[f16]);
    let l2 = b.op(Op::QLut(lut(10)), &[l1]);
    let exp: Vec<i32> = (0..LUT_ENTRIES as i32).map(|k| k * k).collect();
    let s1 = b.op(
        Op::QSoftmax(QSoftmax {
            axis: 3,
            exp_table: exp.clone(),
        }),
        &[l2],
    );
    let s2 = b.op(
        Op::QSoftmax(QSoftmax {
            axis: 1,
            exp_table: exp.iter().map(|v| v / 3).collect(),
        }),
        &[l2],
    );
    b.out(s2);

    // Pooling: shared max pooling on INT16, quantized average pooling.
    let mp = b.op(
        Op::Pool2d(Pool2d {
            kind: PoolKind::Max,
            kernel: [2, 2],
            strides: [1, 1],
            dilations: [1, 1],
            padding: Padding2d::ZERO,
            ceil_mode: false,
        }),
        &[s1],
    );
    let ap = b.op(
        Op::QAvgPool2d(QAvgPool2d {
            pool: Pool2d {
                kind: PoolKind::Average {
                    count_include_pad: true,
                },
                kernel: [3, 2],
                strides: [2, 1],
                dilations: [1, 2],
                padding: pad(1, 0, 1, 1),
                ceil_mode: true,
            },
            input_zero_point: 0,
            requant: rq(123, 7),
            out_dtype: DType::I16,
            out: OutRange {
                zero_point: 0,
                min: -100,
                max: 100,
            },
        }),
        &[mp],
    );
    let ap8 = b.op(
        Op::QAvgPool2d(QAvgPool2d {
            pool: Pool2d {
                kind: PoolKind::Average {
                    count_include_pad: false,
                },
                kernel: [2, 2],
                strides: [2, 2],
                dilations: [1, 1],
                padding: Padding2d::ZERO,
                ceil_mode: false,
            },
            input_zero_point: 128,
            requant: rq(1, 0),
            out_dtype: DType::U8,
            out: OutRange::full(DType::U8, 100),
        }),
        &[u8x],
    );
    b.out(ap8);

    // Resizes: quantized bilinear (U8 → I16), shared nearest on INT16.
    let qr = b.op(
        Op::QResize(QResize {
            resize: Resize {
                mode: ResizeMode::Linear,
                coord: CoordTransform::PytorchHalfPixel,
                size: [7, 5],
                scales: [1.25, 0.7],
            },
            input_zero_point: 128,
            requant: rq(1 << 30, 52),
            out_dtype: DType::I16,
            out: full16,
        }),
        &[u8x],
    );
    b.out(qr);
    let nr = b.op(
        Op::Resize(Resize {
            mode: ResizeMode::Nearest(NearestMode::Ceil),
            coord: CoordTransform::Asymmetric,
            size: [5, 7],
            scales: [1.7, 2.3],
        }),
        &[ap],
    );

    // Reductions: quantized mean and sum, shared max on INT16.
    let mean = b.op(
        Op::QReduce(QReduce {
            reduce: Reduce {
                op: ReduceOp::Mean,
                axes: vec![1, 2],
                keep_dims: true,
            },
            input_zero_point: 0,
            requant: rq(1 << 30, 30),
            out_dtype: DType::I16,
            out: full16,
        }),
        &[nr],
    );
    let sum = b.op(
        Op::QReduce(QReduce {
            reduce: Reduce {
                op: ReduceOp::Sum,
                axes: vec![3],
                keep_dims: false,
            },
            input_zero_point: 128,
            requant: rq(5, 5),
            out_dtype: DType::U8,
            out: OutRange::full(DType::U8, 7),
        }),
        &[u8x],
    );
    b.out(sum);
    let max = b.op(
        Op::Reduce(Reduce {
            op: ReduceOp::Max,
            axes: vec![3],
            keep_dims: true,
        }),
        &[nr],
    );
    b.out(max);

    // Dequantize INT16 and UINT8 outputs.
    let y = b.op(
        Op::Dequantize(Dequantize {
            scale: 1.0 / 32767.0,
            zero_point: 0,
        }),
        &[mean],
    );
    b.out(y);
    let y8 = b.op(
        Op::Dequantize(Dequantize {
            scale: 0.02,
            zero_point: 128,
        }),
        &[ap8],
    );
    b.out(y8);
    b.finish()
}

/// Element-wise operators on INT16 (a quantized float input and a RAWDATA_S16 input): every
/// binary kind, matrix products, rescales, and data movement on integers.
pub fn fixed_elementwise() -> Graph {
    let mut b = B::new();
    let full = OutRange::full(DType::I16, 0);
    let f = b.input(DType::F32, &[2, 3, 4]);
    let a = b.op(
        Op::Quantize(Quantize {
            scale: 1.0 / 3.0,
            zero_point: 0,
            out_dtype: DType::I16,
        }),
        &[f],
    );
    let f8 = b.op(
        Op::Quantize(Quantize {
            scale: 0.1,
            zero_point: 17,
            out_dtype: DType::U8,
        }),
        &[f],
    );
    b.out(f8);
    let s = b.input(DType::I16, &[1, 3, 4]);
    quant(&mut b, s, 0.5, 0);
    let c = b.constant(&[4], i16s(4, 11));
    let mut t = a;
    for (i, kind) in [
        QBinaryKind::Add {
            ma: 1 << 20,
            mb: 3,
            shift: 21,
        },
        QBinaryKind::Sub {
            ma: 0,
            mb: i32::MAX,
            shift: 62,
        },
        QBinaryKind::Max {
            ma: 5,
            mb: 6,
            shift: 0,
        },
        QBinaryKind::Min {
            ma: 1,
            mb: 2,
            shift: 1,
        },
        QBinaryKind::Mul(rq(1 << 15, 31)),
        QBinaryKind::Div(rq(99, 8)),
    ]
    .into_iter()
    .enumerate()
    {
        let other = if i % 2 == 0 { s } else { c };
        let out = if i == 3 {
            OutRange {
                zero_point: 0,
                min: -5,
                max: 5,
            }
        } else {
            full
        };
        t = b.op(Op::QBinary(QBinary { kind, out }), &[t, other]);
    }
    let m = b.constant(&[2, 4, 5], i16s(40, 12));
    let mm = b.op(
        Op::QMatMul(QMatMul {
            requant: rq(1 << 30, 45),
            out: OutRange {
                zero_point: 0,
                min: -32768,
                max: 0,
            },
        }),
        &[t, m],
    );
    let r = b.op(
        Op::QRescale(QRescale {
            input_zero_point: 0,
            positive: vec![rq(1, 0)],
            negative: vec![rq(2, 3)],
            out_dtype: DType::I8,
            out: OutRange::full(DType::I8, -3),
        }),
        &[mm],
    );
    // Data movement on INT8 and INT16.
    let tr = b.op(
        Op::Transpose(Transpose {
            perm: vec![2, 0, 1],
        }),
        &[r],
    );
    let rs = b.op(
        Op::Reshape(Reshape {
            shape: vec![1, 5, 6],
        }),
        &[tr],
    );
    let pd = b.op(
        Op::Pad(Pad {
            pads: vec![[0, 0], [1, 0], [0, 2]],
            mode: PadMode::Constant(-3.0),
        }),
        &[rs],
    );
    b.out(pd);
    let cat = b.op(Op::Concat(Concat { axis: 0 }), &[a, s]);
    let parts = b.op_n(
        Op::Split(Split {
            axis: 2,
            sizes: vec![1, 3],
        }),
        &[cat],
        2,
    );
    let idx = b.constant(&[2], vec![2i64, 0].into());
    let g = b.op(Op::Gather(Gather { axis: 2 }), &[parts[1], idx]);
    b.out(g);
    b.out(parts[0]);
    let y = b.op(
        Op::Dequantize(Dequantize {
            scale: 0.25,
            zero_point: -3,
        }),
        &[r],
    );
    b.out(y);
    b.finish()
}

/// The fixed-point graphs, by name.
pub fn fixed_graphs() -> Vec<(&'static str, Graph)> {
    vec![
        ("fixed_layers", fixed_layers()),
        ("fixed_elementwise", fixed_elementwise()),
    ]
}
