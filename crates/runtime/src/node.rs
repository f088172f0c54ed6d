//! One node at a time, for executors that own their memory (the offline image's arena).
//!
//! [`NodeKernel`] is what a [`crate::Session`] step runs, without the session's plan: the
//! node's constant operands are packed once (fixed-point layers and tables, exactly as the
//! session packs them), and [`NodeKernel::run`] computes the node from borrowed inputs into
//! caller-provided outputs. The same kernels run, so the integers are the session's.

use crate::buffer::DataMut;
use crate::error::{Result, RuntimeError};
use crate::exec::{self, OutSlot};
use crate::fixed::QPacked;
use crate::value::{DataRef, ValueView};
use ipukit_ir::ops::fixed::{QBinary, QRescale};
use ipukit_ir::ops::Pool2d;
use ipukit_ir::{DType, Graph, Node, Op};
use ipukit_kernels::int::{ChannelScale, Tail};
use ipukit_kernels::KernelError;

/// An output of [`NodeKernel::run`]: its (inferred) shape and its elements.
#[derive(Debug)]
pub struct NodeOutput<'a> {
    /// Shape of the output.
    pub shape: &'a [usize],
    /// Elements, exactly as many as the shape holds.
    pub data: DataMut<'a>,
}

/// A node ready to run on caller-owned buffers.
#[derive(Debug, Clone)]
pub struct NodeKernel {
    name: String,
    op: Op,
    packed: Option<QPacked>,
}

impl NodeKernel {
    /// Checks that the kernels take the node's input types and packs its constant operands
    /// (the weights and bias of fixed-point layers, the tables of `QLut`).
    pub fn new(graph: &Graph, node: &Node) -> Result<NodeKernel> {
        let err = |source: KernelError| RuntimeError::Kernel {
            node: node.name.clone(),
            op: node.op.name(),
            source,
        };
        if let Some(t) = node.inputs.iter().find(|t| t.0 >= graph.tensors.len()) {
            return Err(err(KernelError::Invalid {
                op: node.op.name(),
                reason: format!("input tensor {} does not exist", t.0),
            }));
        }
        let dtypes: Vec<DType> = node.inputs.iter().map(|&t| graph.tensor(t).dtype).collect();
        exec::check_supported(&node.op, &dtypes).map_err(err)?;
        let packed = if node.op.is_fixed_point() {
            let consts: Vec<_> = node
                .inputs
                .iter()
                .map(|&t| {
                    let t = graph.tensor(t);
                    t.data.as_ref().map(|d| (d, t.shape.as_slice()))
                })
                .collect();
            QPacked::new(&node.op, &consts).map_err(err)?
        } else {
            None
        };
        Ok(NodeKernel {
            name: node.name.clone(),
            op: node.op.clone(),
            packed,
        })
    }

    /// True when the constant operands were packed: [`NodeKernel::run`] then reads only the
    /// first input (the activation) and ignores the others.
    pub fn reads_first_input_only(&self) -> bool {
        self.packed.is_some()
    }

    /// The node's operator.
    pub fn op(&self) -> &Op {
        &self.op
    }

    /// `source`, naming this node.
    fn error(&self, source: KernelError) -> RuntimeError {
        RuntimeError::Kernel {
            node: self.name.clone(),
            op: self.op.name(),
            source,
        }
    }

    /// Runs the node: `inputs` in the node's order (only the first one when
    /// [`NodeKernel::reads_first_input_only`]), `outputs` with the inferred shapes. `scratch`
    /// is working memory some float kernels grow; fixed-point kernels do not use it.
    pub fn run(
        &self,
        inputs: &[ValueView<'_>],
        outputs: &mut [NodeOutput<'_>],
        scratch: &mut Vec<f32>,
    ) -> Result<()> {
        let err = |source| self.error(source);
        if let Some(p) = &self.packed {
            let (Some(&x), [out]) = (inputs.first(), outputs) else {
                return Err(err(KernelError::Invalid {
                    op: self.op.name(),
                    reason: "a packed layer takes one activation and gives one output".into(),
                }));
            };
            return p.run(&self.op, x, &mut out.data).map_err(err);
        }
        let mut slots: Vec<OutSlot<'_>> = outputs
            .iter_mut()
            .map(|o| OutSlot {
                shape: o.shape,
                data: o.data.reborrow(),
            })
            .collect();
        exec::execute(&self.op, inputs, &mut slots, scratch).map_err(err)
    }

    /// Runs the node, a `QConv2d` or `QDepthwiseConv2d`, followed by `tail` (see
    /// [`crate::layer_tail`]): `x` is the activation input, `out` the tail's output. The same
    /// integers as the node then each operator of the tail.
    pub fn run_tail(&self, tail: &Tail, x: ValueView<'_>, out: DataMut<'_>) -> Result<()> {
        let err = |source| self.error(source);
        match &self.packed {
            Some(QPacked::Conv(c)) => {
                crate::fixed::run_conv_tail(&self.op, c.as_ref(), tail, x, out).map_err(err)
            }
            Some(QPacked::Depthwise(d)) => {
                crate::fixed::run_conv_tail(&self.op, d.as_ref(), tail, x, out).map_err(err)
            }
            _ => Err(err(KernelError::Invalid {
                op: self.op.name(),
                reason: "an element-wise tail follows only a convolution with constant weights"
                    .into(),
            })),
        }
    }

    /// Runs the node, a `QDepthwiseConv2d` on one image, followed by `tail` into `out`, then
    /// `reduce`, a mean (or sum) of `out` over its height and width, into `mean`. The same
    /// integers as the node, each tail operator, then the reduction; the sums are taken as
    /// the tail writes its rows.
    pub fn run_tail_mean(
        &self,
        tail: &Tail,
        reduce: &ipukit_ir::ops::fixed::QReduce,
        x: ValueView<'_>,
        out: DataMut<'_>,
        mean: DataMut<'_>,
    ) -> Result<()> {
        let err = |source| self.error(source);
        match &self.packed {
            Some(QPacked::Depthwise(d)) => {
                crate::fixed::run_dw_tail_mean(&self.op, d, tail, reduce, x, out, mean).map_err(err)
            }
            _ => Err(err(KernelError::Invalid {
                op: self.op.name(),
                reason: "channel sums follow only a depthwise convolution with constant weights"
                    .into(),
            })),
        }
    }

    /// Runs the node, a `QConv2d`, then `pool` (a max pool whose windows tile the node's
    /// output), then `tail` if any: `x` is the activation input, `out` the pooled (and
    /// tail's) output. The same integers as the node, the pool and each tail operator.
    pub fn run_pool_tail(
        &self,
        pool: &Pool2d,
        tail: Option<&Tail>,
        x: ValueView<'_>,
        out: DataMut<'_>,
    ) -> Result<()> {
        let err = |source| self.error(source);
        match &self.packed {
            Some(QPacked::Conv(c)) => {
                crate::fixed::run_conv_pool(&self.op, c, pool, tail, x, out).map_err(err)
            }
            _ => Err(err(KernelError::Invalid {
                op: self.op.name(),
                reason: "a pool is fused only after a QConv2d with constant weights".into(),
            })),
        }
    }

    /// Runs `mul`, an element-wise `QBinary` of the INT16 activation `x` and `vector` (one
    /// value per channel, broadcast over the pixels; `vector_first`: the product's first
    /// operand), then the node, a 1×1, stride-1, unpadded 16-bit `QConv2d`, then `tail` if
    /// any, into `out`. The same integers as the `QBinary`, the node and each tail operator;
    /// the product is formed chunk by chunk into the layer's rows and never written whole.
    pub fn run_scaled(
        &self,
        mul: &QBinary,
        vector: ValueView<'_>,
        vector_first: bool,
        tail: Option<&Tail>,
        x: ValueView<'_>,
        out: DataMut<'_>,
    ) -> Result<()> {
        let err = |source| self.error(source);
        let (Some(QPacked::Conv(c)), DataRef::I16(v)) = (&self.packed, vector.data) else {
            return Err(err(KernelError::Invalid {
                op: self.op.name(),
                reason: "a channel scale runs only before a QConv2d with constant weights, \
                         with an INT16 vector"
                    .into(),
            }));
        };
        let scale = ChannelScale {
            attrs: mul,
            vector: v,
            vector_first,
        };
        crate::fixed::run_conv_scaled(&self.op, c, &scale, tail, x, out).map_err(err)
    }

    /// Runs the node, an `InputNormalize`, followed by `rescale` as one table per channel:
    /// the same integers as the node then the `QRescale`.
    pub fn run_then_rescale(
        &self,
        rescale: &QRescale,
        x: ValueView<'_>,
        out: DataMut<'_>,
    ) -> Result<()> {
        let err = |source| self.error(source);
        let Op::InputNormalize(norm) = &self.op else {
            return Err(err(KernelError::Invalid {
                op: self.op.name(),
                reason: "a rescale is fused only after InputNormalize".into(),
            }));
        };
        crate::fixed::run_input_rescale(&self.op, norm, rescale, x, out).map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Session, SessionOptions, Value};
    use ipukit_ir::ops::fixed::{OutRange, QRescale, Requant};

    #[test]
    fn node_kernel_gives_the_session_integers() {
        let mut g = Graph::new();
        let x = g.add_input("x", DType::I16, vec![1, 2, 3]);
        let op = Op::QRescale(QRescale {
            input_zero_point: 0,
            positive: vec![Requant::from_ratio(0.37).unwrap()],
            negative: vec![Requant::from_ratio(0.05).unwrap()],
            out_dtype: DType::U8,
            out: OutRange::full(DType::U8, 7),
        });
        let y = g.add_node("r", op, vec![x], &["y"]).unwrap()[0];
        g.outputs.push(y);
        let xs: Vec<i16> = vec![-300, -5, 0, 4, 99, 1000];
        let mut s = Session::new(g.clone(), SessionOptions { threads: Some(1) }).unwrap();
        let want = s
            .run(vec![Value::new(vec![1, 2, 3], xs.clone()).unwrap()])
            .unwrap();
        let k = NodeKernel::new(&g, &g.nodes[0]).unwrap();
        assert!(!k.reads_first_input_only());
        let mut out = vec![0u8; 6];
        let shape = [1usize, 2, 3];
        k.run(
            &[ValueView {
                shape: &shape,
                data: crate::DataRef::I16(&xs),
            }],
            &mut [NodeOutput {
                shape: &shape,
                data: DataMut::U8(&mut out),
            }],
            &mut Vec::new(),
        )
        .unwrap();
        assert_eq!(want[0].data, out.into());
    }
}
