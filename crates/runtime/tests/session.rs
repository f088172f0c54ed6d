//! Session behaviour: the seeds' set_input contract, fusion and planning, observers, and
//! constant folding with the reference evaluator.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ipukit_ir::ops::{
    BinaryOp, Concat, Conv2d, CoordTransform, FusedActivation, Gather, MaxPool2dWithIndices,
    NearestMode, Padding2d, Pool2d, PoolKind, Reshape, Resize, ResizeMode, Slice, SliceAxis, Split,
    StorageOrder, UnaryOp,
};
use ipukit_ir::passes::{fold_constants, ConstEvaluator};
use ipukit_ir::{DType, Graph, Op, TensorData, TensorId};
use ipukit_runtime::{ReferenceEvaluator, RuntimeError, Session, SessionOptions, Value};

fn data(len: usize, seed: u64) -> Vec<f32> {
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

fn opts(threads: usize) -> SessionOptions {
    SessionOptions {
        threads: Some(threads),
    }
}

struct Builder {
    g: Graph,
    n: usize,
}

impl Builder {
    fn new() -> Builder {
        Builder {
            g: Graph::new(),
            n: 0,
        }
    }

    fn name(&mut self, p: &str) -> String {
        self.n += 1;
        format!("{p}{}", self.n)
    }

    fn node(&mut self, op: Op, inputs: Vec<TensorId>) -> TensorId {
        let n = self.name("n");
        let o = self.name("t");
        self.g.add_node(&n, op, inputs, &[o.as_str()]).unwrap()[0]
    }

    fn conv(&mut self, x: TensorId, cout: usize, k: usize, stride: usize) -> TensorId {
        let cin = *self.g.tensor(x).shape.last().unwrap();
        let wn = self.name("w");
        let bn = self.name("b");
        let w = self
            .g
            .add_const(
                &wn,
                vec![cout, k, k, cin],
                data(cout * k * k * cin, self.n as u64).into(),
            )
            .unwrap();
        let b = self
            .g
            .add_const(&bn, vec![cout], data(cout, self.n as u64 + 7).into())
            .unwrap();
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
            activation: FusedActivation::None,
        });
        self.node(op, vec![x, w, b])
    }

    fn silu(&mut self, x: TensorId) -> TensorId {
        let s = self.node(Op::Unary(UnaryOp::Sigmoid), vec![x]);
        self.node(Op::Binary(BinaryOp::Mul), vec![x, s])
    }
}

/// A YOLOv8-flavoured block: conv+SiLU, split, bottleneck with residual, concat, SPPF-like
/// max pool, nearest upsample, a standalone SiLU and a Reshape.
fn yolo_block() -> (Graph, Vec<usize>) {
    let mut b = Builder::new();
    let shape = vec![1, 16, 16, 3];
    let x = b.g.add_input("images", DType::F32, shape.clone());
    let c1 = b.conv(x, 16, 3, 2);
    let a1 = b.silu(c1);
    let c2 = b.conv(a1, 32, 1, 1);
    let a2 = b.silu(c2);
    let sp =
        b.g.add_node(
            "split",
            Op::Split(Split {
                axis: 3,
                sizes: vec![16, 16],
            }),
            vec![a2],
            &["s0", "s1"],
        )
        .unwrap();
    let c3 = b.conv(sp[1], 16, 3, 1);
    let a3 = b.silu(c3);
    let r = b.node(Op::Binary(BinaryOp::Add), vec![a3, sp[1]]);
    let cat = b.node(Op::Concat(Concat { axis: 3 }), vec![sp[0], sp[1], r]);
    let mp = b.node(
        Op::Pool2d(Pool2d {
            kind: PoolKind::Max,
            kernel: [5, 5],
            strides: [1, 1],
            dilations: [1, 1],
            padding: Padding2d {
                top: 2,
                left: 2,
                bottom: 2,
                right: 2,
            },
            ceil_mode: false,
        }),
        vec![cat],
    );
    let up = b.node(
        Op::Resize(Resize {
            mode: ResizeMode::Nearest(NearestMode::Floor),
            coord: CoordTransform::Asymmetric,
            size: [16, 16],
            scales: [2.0, 2.0],
        }),
        vec![mp],
    );
    let c4 = b.conv(up, 8, 1, 1);
    let relu = b.node(Op::Unary(UnaryOp::Relu), vec![c4]);
    let pre = b.node(Op::Binary(BinaryOp::Mul), vec![relu, relu]);
    let act = b.silu(pre);
    let flat = b.node(
        Op::Reshape(Reshape {
            shape: vec![1, 256, 8],
        }),
        vec![act],
    );
    b.g.outputs.push(flat);
    b.g.outputs.push(a1);
    (b.g, shape)
}

/// Runs every node through the reference evaluator, one at a time.
fn reference(g: &Graph, input: &[f32]) -> Vec<Vec<f32>> {
    let mut vals: Vec<Option<TensorData>> = g.tensors.iter().map(|t| t.data.clone()).collect();
    vals[g.inputs[0].0] = Some(input.to_vec().into());
    for n in &g.nodes {
        let ins: Vec<(&TensorData, &[usize])> = n
            .inputs
            .iter()
            .map(|&t| (vals[t.0].as_ref().unwrap(), g.tensor(t).shape.as_slice()))
            .collect();
        let outs = ReferenceEvaluator.eval(n, &ins).unwrap();
        for (&o, d) in n.outputs.iter().zip(outs) {
            vals[o.0] = Some(d);
        }
    }
    g.outputs
        .iter()
        .map(|&o| vals[o.0].as_ref().unwrap().to_f32_vec())
        .collect()
}

fn close(a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol * (1.0 + y.abs()), "at {i}: {x} vs {y}");
    }
}

#[test]
fn fused_plan_matches_node_by_node_reference() {
    let (g, shape) = yolo_block();
    let x = data(shape.iter().product(), 42);
    let want = reference(&g, &x);
    for threads in [1, 2] {
        let mut s = Session::new(g.clone(), opts(threads)).unwrap();
        let out = s
            .run(vec![Value::new(shape.clone(), x.clone()).unwrap()])
            .unwrap();
        for (o, w) in out.iter().zip(&want) {
            close(o.as_f32().unwrap(), w, 1e-5);
        }
        // Second run reuses the buffers and gives the same answer.
        let again = s
            .run(vec![Value::new(shape.clone(), x.clone()).unwrap()])
            .unwrap();
        assert_eq!(out, again);
    }
}

#[test]
fn observer_sees_every_node_output_and_results_agree() {
    let (g, shape) = yolo_block();
    let x = data(shape.iter().product(), 1);
    let mut s = Session::new(g.clone(), opts(2)).unwrap();
    s.set_input(0, Value::new(shape.clone(), x.clone()).unwrap())
        .unwrap();
    s.invoke().unwrap();
    let fast: Vec<Value> = (0..2).map(|i| s.output(i).unwrap()).collect();
    let mut seen = Vec::new();
    s.invoke_with_observer(&mut |node, t, v| {
        assert!(node.outputs.contains(&t));
        assert_eq!(v.data.len(), v.shape.iter().product::<usize>());
        seen.push(t);
    })
    .unwrap();
    let all: usize = g.nodes.iter().map(|n| n.outputs.len()).sum();
    assert_eq!(seen.len(), all);
    for (i, f) in fast.iter().enumerate() {
        close(
            s.output(i).unwrap().as_f32().unwrap(),
            f.as_f32().unwrap(),
            1e-6,
        );
    }
}

#[test]
fn set_input_messages_are_the_seeds() {
    let mut g = Graph::new();
    let x = g.add_input("images", DType::F32, vec![1, 640, 640, 3]);
    let y = g
        .add_node("relu", Op::Unary(UnaryOp::Relu), vec![x], &["y"])
        .unwrap()[0];
    g.outputs.push(y);
    let mut s = Session::new(g, opts(1)).unwrap();
    let e = s
        .set_input(
            0,
            Value::new(vec![1, 640, 640, 3], vec![0i64; 640 * 640 * 3]).unwrap(),
        )
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "Cannot set input tensor: Got tensor of type INT64 but expected type FLOAT32 for input 0, name: images"
    );
    let e = s
        .set_input(
            0,
            Value::new(vec![1, 160, 640, 3], vec![0f32; 160 * 640 * 3]).unwrap(),
        )
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "Cannot set tensor: Dimension mismatch. Got 160 but expected 640 for dimension 1 of input 0, name: images"
    );
    let e = s
        .set_input(
            0,
            Value::new(vec![640, 640, 3], vec![0f32; 640 * 640 * 3]).unwrap(),
        )
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "Cannot set tensor: Dimension mismatch. Got 3 dimensions but expected 4 for input 0, name: images"
    );
    let e = s
        .set_input(1, Value::new(vec![1], vec![0f32]).unwrap())
        .unwrap_err();
    assert!(
        matches!(e, RuntimeError::InputIndex { index: 1, count: 1 }),
        "{e}"
    );
    assert!(matches!(
        s.invoke().unwrap_err(),
        RuntimeError::InputNotSet { index: 0, .. }
    ));
    assert!(matches!(s.output(0).unwrap_err(), RuntimeError::NotInvoked));
    assert!(matches!(
        s.output(3).unwrap_err(),
        RuntimeError::OutputIndex { index: 3, .. }
    ));
    // A value whose data does not fill its shape cannot even be built.
    assert!(Value::new(vec![2, 2], vec![0f32; 3]).is_err());
    let bad = Value {
        shape: vec![1, 640, 640, 3],
        data: vec![0f32; 5].into(),
    };
    assert!(matches!(
        s.set_input(0, bad).unwrap_err(),
        RuntimeError::ValueLength { .. }
    ));
    assert!(matches!(
        s.run(vec![]).unwrap_err(),
        RuntimeError::InputCount {
            got: 0,
            expected: 1
        }
    ));
}

#[test]
fn details_describe_the_model() {
    let (g, shape) = yolo_block();
    let s = Session::new(g.clone(), opts(1)).unwrap();
    let ins = s.input_details();
    assert_eq!(ins.len(), 1);
    assert_eq!(
        (
            ins[0].index,
            ins[0].name.as_str(),
            &ins[0].shape,
            ins[0].dtype
        ),
        (0, "images", &shape, DType::F32)
    );
    assert!(ins[0].quantization.is_none());
    let outs = s.output_details();
    assert_eq!(outs[1].index, 1);
    assert_eq!(outs[0].shape, vec![1, 256, 8]);
    let det = s.tensor_details();
    assert_eq!(det.len(), g.tensors.len());
    assert!(det.iter().all(|d| d.qtype.is_none()));
    assert_eq!(det[0].name, "images");
}

#[test]
fn constant_and_input_outputs() {
    let mut g = Graph::new();
    let x = g.add_input("x", DType::F32, vec![2]);
    let c = g.add_const("c", vec![3], vec![1i64, 2, 3].into()).unwrap();
    let y = g
        .add_node("neg", Op::Unary(UnaryOp::Neg), vec![x], &["y"])
        .unwrap()[0];
    g.outputs.extend([c, x, y, x]);
    let mut s = Session::new(g, opts(1)).unwrap();
    let out = s
        .run(vec![Value::new(vec![2], vec![1.5f32, -2.0]).unwrap()])
        .unwrap();
    assert_eq!(out[0], Value::new(vec![3], vec![1i64, 2, 3]).unwrap());
    assert_eq!(out[1].as_f32().unwrap(), &[1.5, -2.0]);
    assert_eq!(out[2].as_f32().unwrap(), &[-1.5, 2.0]);
    assert_eq!(out[3], out[1]);
}

#[test]
fn unsupported_types_fail_at_creation_with_the_op_and_type() {
    let mut g = Graph::new();
    let x = g.add_input("x", DType::I16, vec![1, 4, 4, 2]);
    let p = g
        .add_node(
            "pool",
            Op::Pool2d(Pool2d {
                kind: PoolKind::Average {
                    count_include_pad: false,
                },
                kernel: [2, 2],
                strides: [2, 2],
                dilations: [1, 1],
                padding: Padding2d::ZERO,
                ceil_mode: false,
            }),
            vec![x],
            &["p"],
        )
        .unwrap()[0];
    g.outputs.push(p);
    let e = Session::new(g, opts(1)).unwrap_err().to_string();
    assert!(
        e.contains("pool") && e.contains("AvgPool2d") && e.contains("INT16"),
        "{e}"
    );
}

#[test]
fn kernel_errors_at_run_time_name_the_node() {
    // Gather with an out-of-range constant index on a runtime input.
    let mut g = Graph::new();
    let x = g.add_input("x", DType::F32, vec![3]);
    let i = g.add_const("i", vec![1], vec![5i64].into()).unwrap();
    let y = g
        .add_node("gather", Op::Gather(Gather { axis: 0 }), vec![x, i], &["y"])
        .unwrap()[0];
    g.outputs.push(y);
    let mut s = Session::new(g, opts(1)).unwrap();
    let e = s
        .run(vec![Value::new(vec![3], vec![1f32, 2.0, 3.0]).unwrap()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("gather") && e.contains("out of range"), "{e}");
}

#[test]
fn evaluator_folds_shape_arithmetic_in_int64() {
    // shape = [1, 3, 8, 8] as a constant; h = shape[2] * 2; new = concat(shape[:2], [h, h]).
    let mut g = Graph::new();
    let x = g.add_input("x", DType::F32, vec![1, 3, 8, 8]);
    let shape = g
        .add_const("shape", vec![4], vec![1i64, 3, 8, 8].into())
        .unwrap();
    let two = g.add_const("two", vec![], vec![2i64].into()).unwrap();
    let idx = g.add_const("idx", vec![], vec![-2i64].into()).unwrap();
    let h = g
        .add_node(
            "g",
            Op::Gather(Gather { axis: 0 }),
            vec![shape, idx],
            &["h"],
        )
        .unwrap()[0];
    let h2 = g
        .add_node("m", Op::Binary(BinaryOp::Mul), vec![h, two], &["h2"])
        .unwrap()[0];
    let hv = g
        .add_node(
            "r",
            Op::Reshape(Reshape { shape: vec![1] }),
            vec![h2],
            &["hv"],
        )
        .unwrap()[0];
    let head = g
        .add_node(
            "s",
            Op::Slice(Slice {
                axes: vec![SliceAxis {
                    start: 0,
                    step: 1,
                    len: 2,
                }],
            }),
            vec![shape],
            &["head"],
        )
        .unwrap()[0];
    let new = g
        .add_node(
            "c",
            Op::Concat(Concat { axis: 0 }),
            vec![head, hv, hv],
            &["new"],
        )
        .unwrap()[0];
    let y = g
        .add_node("neg", Op::Unary(UnaryOp::Neg), vec![x], &["y"])
        .unwrap()[0];
    g.outputs.extend([new, y]);
    assert!(fold_constants(&mut g, &ReferenceEvaluator).unwrap());
    g.compact();
    g.validate().unwrap();
    let t = g.tensor(g.outputs[0]);
    assert_eq!(t.data.as_ref().unwrap().as_i64().unwrap(), &[1, 3, 16, 16]);
    assert_eq!(g.nodes.len(), 1);
    // The folded graph still runs.
    let mut s = Session::new(g, opts(1)).unwrap();
    let out = s
        .run(vec![Value::new(vec![1, 3, 8, 8], vec![1f32; 192]).unwrap()])
        .unwrap();
    assert_eq!(out[0].data.as_i64().unwrap(), &[1, 3, 16, 16]);
}

#[test]
fn evaluator_reports_errors_instead_of_panicking() {
    let mut g = Graph::new();
    let a = g.add_const("a", vec![2], vec![4i64, 6].into()).unwrap();
    let z = g.add_const("z", vec![1], vec![0i64].into()).unwrap();
    let q = g
        .add_node("div", Op::Binary(BinaryOp::Div), vec![a, z], &["q"])
        .unwrap()[0];
    g.outputs.push(q);
    let e = fold_constants(&mut g, &ReferenceEvaluator)
        .unwrap_err()
        .to_string();
    assert!(e.contains("div") && e.contains("division by zero"), "{e}");
}

/// A graph of one pooling node on an input of `dtype` and NHWC `shape`.
fn pool_graph(dtype: DType, shape: Vec<usize>, op: Op) -> Graph {
    let mut g = Graph::new();
    let x = g.add_input("x", dtype, shape);
    let n_out = if matches!(op, Op::MaxPool2dWithIndices(_)) {
        2
    } else {
        1
    };
    let names: Vec<String> = (0..n_out).map(|i| format!("y{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let outs = g.add_node("pool", op, vec![x], &refs).unwrap();
    g.outputs.extend(outs);
    g
}

fn max_pool(k: usize, s: usize, d: usize, pad: usize) -> Pool2d {
    Pool2d {
        kind: PoolKind::Max,
        kernel: [k, k],
        strides: [s, s],
        dilations: [d, d],
        padding: Padding2d {
            top: pad,
            left: pad,
            bottom: pad,
            right: pad,
        },
        ceil_mode: true,
    }
}

#[test]
fn max_pooling_runs_on_integer_tensors() {
    let shape = vec![2, 7, 6, 3];
    let len: usize = shape.iter().product();
    let v: Vec<f32> = data(len, 5).iter().map(|x| (x * 100.0).round()).collect();
    for pool in [max_pool(3, 2, 1, 1), max_pool(2, 1, 2, 1)] {
        // Small integers pool exactly in f32: the float result is the reference.
        let mut s = Session::new(
            pool_graph(DType::F32, shape.clone(), Op::Pool2d(pool.clone())),
            opts(2),
        )
        .unwrap();
        let want = s
            .run(vec![Value::new(shape.clone(), v.clone()).unwrap()])
            .unwrap();
        let want = want[0].as_f32().unwrap().to_vec();
        let out_shape = {
            let [oh, ow] = pool.out_hw(7, 6).unwrap();
            vec![2, oh, ow, 3]
        };
        macro_rules! check {
            ($t:ty, $dt:expr, $off:expr) => {{
                let g = pool_graph($dt, shape.clone(), Op::Pool2d(pool.clone()));
                let mut s = Session::new(g, opts(2)).unwrap();
                let x: Vec<$t> = v.iter().map(|&f| (f + $off) as $t).collect();
                let got = s.run(vec![Value::new(shape.clone(), x).unwrap()]).unwrap();
                let w: Vec<$t> = want.iter().map(|&f| (f + $off) as $t).collect();
                assert_eq!(got[0], Value::new(out_shape.clone(), w).unwrap(), "{}", $dt);
            }};
        }
        check!(u8, DType::U8, 100.0);
        check!(i8, DType::I8, 0.0);
        check!(i16, DType::I16, -1000.0);
        check!(u16, DType::U16, 1000.0);
    }
}

#[test]
fn max_pool_with_indices_gives_nchw_positions() {
    // NHWC [1, 2, 2, 2]: channel 0 is [[1, 5], [3, 2]], channel 1 [[7, 0], [0, 7]] (a tie: the
    // first in row-major order wins). NCHW positions: channel 0's 5 is at 1, channel 1's
    // first 7 at 1·4 + 0 = 4.
    let x = [1.0f32, 7.0, 5.0, 0.0, 3.0, 0.0, 2.0, 7.0];
    let op = Op::MaxPool2dWithIndices(MaxPool2dWithIndices {
        pool: max_pool(2, 2, 1, 0),
        storage_order: StorageOrder::RowMajor,
    });
    let want_idx = Value::new(vec![1, 1, 1, 2], vec![1i64, 4]).unwrap();
    let mut s = Session::new(
        pool_graph(DType::F32, vec![1, 2, 2, 2], op.clone()),
        opts(1),
    )
    .unwrap();
    let out = s
        .run(vec![Value::new(vec![1, 2, 2, 2], x.to_vec()).unwrap()])
        .unwrap();
    assert_eq!(out[0].as_f32().unwrap(), &[5.0, 7.0]);
    assert_eq!(out[1], want_idx);
    let mut s = Session::new(pool_graph(DType::U8, vec![1, 2, 2, 2], op), opts(1)).unwrap();
    let xu: Vec<u8> = x.iter().map(|&v| v as u8).collect();
    let out = s
        .run(vec![Value::new(vec![1, 2, 2, 2], xu).unwrap()])
        .unwrap();
    assert_eq!(out[0], Value::new(vec![1, 1, 1, 2], vec![5u8, 7]).unwrap());
    assert_eq!(out[1], want_idx);
}
