//! The session: `calibrator_custom.simulator`'s interface over a planned graph.

use crate::buffer::{Buffer, DataMut};
use crate::error::{Result, RuntimeError};
use crate::exec::{self, OutSlot};
use crate::fixed::QPacked;
use crate::plan::{self, FloatLayer, Kind, Plan, Prepared, Src};
use crate::value::{DataRef, Value, ValueView};
use ipukit_ir::{DType, Graph, Node, Op, QuantParams, TensorData, TensorId};
use ipukit_kernels::float::{PackedConv, PackedDepthwise, PackedLinear, PackedTransposeConv};
use ipukit_kernels::KernelError;
use std::sync::Arc;

/// Options of a [`Session`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionOptions {
    /// Threads of the session's pool; `None` uses every core.
    pub threads: Option<usize>,
}

/// A model input or output, as `get_input_details` / `get_output_details` list them.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    /// Position among the model's inputs (or outputs).
    pub index: usize,
    /// Tensor name.
    pub name: String,
    /// Shape (NHWC for images).
    pub shape: Vec<usize>,
    /// Element type.
    pub dtype: DType,
    /// Quantization of an integer tensor of a fixed-point model (scale, zero point and the
    /// calibrated min and max, see [`TensorInfo::scale_zero_point`]); `None` for float
    /// tensors, even when the graph stores parameters for them.
    pub quantization: Option<QuantParams>,
}

/// One tensor of the model, as `get_tensor_details` lists them.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorDetails {
    /// Tensor name.
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Element type.
    pub dtype: DType,
    /// For float models, the type the tensor would get in the fixed model. The calibrator
    /// decides it; until then it is `None`.
    pub qtype: Option<DType>,
    /// Quantization parameters of a fixed-point model's tensor (scale, zero point, min, max),
    /// as stored in the graph; see [`TensorDetails::quantization_pairs`],
    /// [`TensorDetails::min`] and [`TensorDetails::max`] for the seeds' fields.
    pub quantization: Option<QuantParams>,
}

/// `(scale, zero point)` for each entry of `q` (a zero-point list of one entry applies to
/// every scale).
fn pairs(q: &QuantParams) -> Vec<(f32, i64)> {
    q.scale
        .iter()
        .enumerate()
        .map(|(i, &s)| {
            let z = q
                .zero_point
                .get(i)
                .or_else(|| q.zero_point.first())
                .copied()
                .unwrap_or(0);
            (s, z)
        })
        .collect()
}

impl TensorInfo {
    /// The seeds' `quantization` entry of `get_input_details` / `get_output_details`:
    /// `(scale, zero_point)` of an integer tensor of a fixed-point model (multiply
    /// `value − zero_point` by `scale` for the real value). `None` for float tensors, such as
    /// the output of a `Dequantize` (the seeds' Fix2Float, `dequantizations=TRUE`).
    pub fn scale_zero_point(&self) -> Option<(f32, i64)> {
        self.quantization
            .as_ref()
            .and_then(|q| pairs(q).first().copied())
    }
}

impl TensorDetails {
    /// The seeds' `quantization` list of `get_tensor_details`: one `(scale, zero_point)` per
    /// channel along `quantization_dimension` (one entry for per-tensor quantization; empty
    /// when the tensor has none).
    pub fn quantization_pairs(&self) -> Vec<(f32, i64)> {
        self.quantization.as_ref().map(pairs).unwrap_or_default()
    }

    /// The seeds' `min`: the calibrated minimum, per channel or one entry (empty if unknown).
    pub fn min(&self) -> &[f32] {
        self.quantization.as_ref().map_or(&[], |q| q.min.as_slice())
    }

    /// The seeds' `max`: the calibrated maximum, per channel or one entry (empty if unknown).
    pub fn max(&self) -> &[f32] {
        self.quantization.as_ref().map_or(&[], |q| q.max.as_slice())
    }

    /// The axis per-channel entries run along (`quantized_dimension` in the `.sim` file).
    pub fn quantization_dimension(&self) -> Option<usize> {
        self.quantization.as_ref().map(|q| q.quantized_dimension)
    }
}

/// A plan with its buffers (allocated on first use).
#[derive(Debug)]
struct Compiled {
    plan: Plan,
    arena: Vec<Buffer>,
}

impl Compiled {
    fn new(plan: Plan) -> Compiled {
        Compiled {
            plan,
            arena: Vec::new(),
        }
    }

    fn ensure_arena(&mut self) {
        if self.arena.len() != self.plan.slots.len() {
            self.arena = self
                .plan
                .slots
                .iter()
                .map(|&(dt, len)| Buffer::zeroed(dt, len))
                .collect();
        }
    }
}

/// Which plan produced the current outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ran {
    Fast,
    Observed,
}

/// An observer of intermediate tensors: called with the node, the tensor id and its value.
pub type Observer<'a> = dyn FnMut(&Node, TensorId, ValueView<'_>) + 'a;

/// A graph ready to run.
///
/// ```
/// use ipukit_ir::{DType, Graph, Op, ops::UnaryOp};
/// use ipukit_runtime::{Session, SessionOptions, Value};
///
/// let mut g = Graph::new();
/// let x = g.add_input("x", DType::F32, vec![1, 3]);
/// let y = g.add_node("relu", Op::Unary(UnaryOp::Relu), vec![x], &["y"]).unwrap()[0];
/// g.outputs.push(y);
/// let mut s = Session::new(g, SessionOptions { threads: Some(1) }).unwrap();
/// let out = s.run(vec![Value::new(vec![1, 3], vec![-1.0f32, 0.5, 2.0]).unwrap()]).unwrap();
/// assert_eq!(out[0].as_f32().unwrap(), &[0.0, 0.5, 2.0]);
/// ```
pub struct Session {
    graph: Graph,
    prepared: Vec<Option<Prepared>>,
    pool: rayon::ThreadPool,
    threads: usize,
    fast: Compiled,
    observed: Option<Compiled>,
    inputs: Vec<Option<TensorData>>,
    scratch: Vec<f32>,
    ran: Option<Ran>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("nodes", &self.graph.nodes.len())
            .field("steps", &self.fast.plan.steps.len())
            .field("threads", &self.threads)
            .finish()
    }
}

fn kernel_err(node: &Node, source: KernelError) -> RuntimeError {
    RuntimeError::Kernel {
        node: node.name.clone(),
        op: node.op.name(),
        source,
    }
}

/// Packs the constant operands of `node`: the weights of float layers (constant `f32`) and
/// of fixed-point layers (constant integers), and fixed-point tables.
fn prepare(graph: &Graph, node: &Node) -> std::result::Result<Option<Prepared>, KernelError> {
    if node.op.is_fixed_point() {
        let consts: Vec<_> = node
            .inputs
            .iter()
            .map(|&t| {
                let t = graph.tensor(t);
                t.data.as_ref().map(|d| (d, t.shape.as_slice()))
            })
            .collect();
        return Ok(QPacked::new(&node.op, &consts)?.map(Prepared::Fixed));
    }
    let constant = |pos: usize| {
        node.inputs.get(pos).and_then(|&t| {
            let t = graph.tensor(t);
            t.data
                .as_ref()
                .and_then(|d| d.as_f32())
                .map(|d| (d, t.shape.as_slice()))
        })
    };
    let x_f32 = graph.tensor(node.inputs[0]).dtype == DType::F32;
    let Some((w, ws)) = constant(1).filter(|_| x_f32) else {
        return Ok(None);
    };
    let bias = match node.inputs.len() {
        3 => match constant(2) {
            Some((b, _)) => Some(b),
            None => return Ok(None),
        },
        _ => None,
    };
    Ok(Some(Prepared::Float(match &node.op {
        Op::Conv2d(a) => FloatLayer::Conv(Arc::new(PackedConv::new(a, w, ws, bias)?)),
        Op::DepthwiseConv2d(a) => {
            FloatLayer::Depthwise(Arc::new(PackedDepthwise::new(a, w, ws, bias)?))
        }
        Op::TransposeConv2d(a) => {
            FloatLayer::TransposeConv(Arc::new(PackedTransposeConv::new(a, w, ws, bias)?))
        }
        Op::FullyConnected(a) => FloatLayer::Linear(Arc::new(PackedLinear::new(a, w, ws, bias)?)),
        Op::MatMul(_) if ws.len() == 2 => {
            FloatLayer::Linear(Arc::new(PackedLinear::from_kn(w, ws[0], ws[1])?))
        }
        _ => return Ok(None),
    })))
}

impl Session {
    /// Validates `graph`, checks that every operator has a kernel for its types, packs the
    /// weights and plans the buffers.
    pub fn new(graph: Graph, options: SessionOptions) -> Result<Session> {
        graph.validate()?;
        let mut graph = graph;
        for node in &graph.nodes {
            let dtypes: Vec<DType> = node.inputs.iter().map(|&t| graph.tensor(t).dtype).collect();
            exec::check_supported(&node.op, &dtypes).map_err(|e| kernel_err(node, e))?;
        }
        let prepared = graph
            .nodes
            .iter()
            .map(|n| prepare(&graph, n).map_err(|e| kernel_err(n, e)))
            .collect::<Result<Vec<_>>>()?;
        // Constants read only as packed weights are not needed any more.
        let mut needed = vec![false; graph.tensors.len()];
        for (i, n) in graph.nodes.iter().enumerate() {
            let read = if prepared[i].is_some() {
                &n.inputs[..1]
            } else {
                &n.inputs[..]
            };
            for &t in read {
                needed[t.0] = true;
            }
        }
        for &t in &graph.outputs {
            needed[t.0] = true;
        }
        for (i, t) in graph.tensors.iter_mut().enumerate() {
            if !needed[i] {
                t.data = None;
            }
        }
        let (pool, threads) = crate::workers::thread_pool(options.threads, "ipukit")?;
        let fast = Compiled::new(plan::build(&graph, &prepared, true, threads));
        let n_inputs = graph.inputs.len();
        Ok(Session {
            graph,
            prepared,
            pool,
            threads,
            fast,
            observed: None,
            inputs: vec![None; n_inputs],
            scratch: Vec::new(),
            ran: None,
        })
    }

    /// Number of threads the session runs on.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The groups of nodes that [`Session::invoke`] runs as one step (a layer with its
    /// activation or element-wise tail, a table product, …): the names of each group's first
    /// and last node, in execution order. [`Session::invoke_with_observer`] runs every node
    /// alone.
    pub fn fused_nodes(&self) -> Vec<(&str, &str)> {
        self.fast
            .plan
            .steps
            .iter()
            .filter(|s| s.last_node != s.node)
            .map(|s| {
                (
                    self.graph.nodes[s.node].name.as_str(),
                    self.graph.nodes[s.last_node].name.as_str(),
                )
            })
            .collect()
    }

    fn info(&self, index: usize, t: TensorId) -> TensorInfo {
        let t = self.graph.tensor(t);
        TensorInfo {
            index,
            name: t.name.clone(),
            shape: t.shape.clone(),
            dtype: t.dtype,
            quantization: t.quant.clone().filter(|_| t.dtype != DType::F32),
        }
    }

    /// The model inputs.
    pub fn input_details(&self) -> Vec<TensorInfo> {
        self.graph
            .inputs
            .iter()
            .enumerate()
            .map(|(i, &t)| self.info(i, t))
            .collect()
    }

    /// The model outputs.
    pub fn output_details(&self) -> Vec<TensorInfo> {
        self.graph
            .outputs
            .iter()
            .enumerate()
            .map(|(i, &t)| self.info(i, t))
            .collect()
    }

    /// Every tensor of the model.
    pub fn tensor_details(&self) -> Vec<TensorDetails> {
        self.graph
            .tensors
            .iter()
            .map(|t| TensorDetails {
                name: t.name.clone(),
                shape: t.shape.clone(),
                dtype: t.dtype,
                qtype: None,
                quantization: t.quant.clone(),
            })
            .collect()
    }

    /// Sets input `index`; the value must have the input's type and shape (for fixed-point
    /// models an integer type, such as UINT8 for an image input or INT16 for raw data).
    pub fn set_input(&mut self, index: usize, value: Value) -> Result<()> {
        let count = self.graph.inputs.len();
        let &t = self
            .graph
            .inputs
            .get(index)
            .ok_or(RuntimeError::InputIndex { index, count })?;
        let t = self.graph.tensor(t);
        let name = || t.name.clone();
        if value.dtype() != t.dtype {
            return Err(RuntimeError::InputType {
                got: value.dtype(),
                expected: t.dtype,
                index,
                name: name(),
            });
        }
        if value.shape.len() != t.shape.len() {
            return Err(RuntimeError::InputRank {
                got: value.shape.len(),
                expected: t.shape.len(),
                index,
                name: name(),
            });
        }
        if let Some(dim) = (0..t.shape.len()).find(|&d| value.shape[d] != t.shape[d]) {
            return Err(RuntimeError::InputDim {
                got: value.shape[dim],
                expected: t.shape[dim],
                dim,
                index,
                name: name(),
            });
        }
        let expected = t.numel();
        if value.data.len() != expected {
            return Err(RuntimeError::ValueLength {
                got: value.data.len(),
                expected,
                shape: value.shape,
            });
        }
        self.inputs[index] = Some(value.data);
        self.ran = None;
        Ok(())
    }

    fn check_inputs(&self) -> Result<()> {
        match self.inputs.iter().position(Option::is_none) {
            Some(index) => Err(RuntimeError::InputNotSet {
                index,
                name: self.graph.tensor(self.graph.inputs[index]).name.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Runs the model on the inputs set with [`Session::set_input`].
    pub fn invoke(&mut self) -> Result<()> {
        self.check_inputs()?;
        self.ran = None;
        let Session {
            graph,
            pool,
            fast,
            inputs,
            scratch,
            ..
        } = self;
        fast.ensure_arena();
        if scratch.len() < fast.plan.scratch {
            scratch.resize(fast.plan.scratch, 0.0);
        }
        run_plan(pool, graph, fast, inputs, scratch, None)?;
        self.ran = Some(Ran::Fast);
        Ok(())
    }

    /// Like [`Session::invoke`], without fusing nodes, calling `observer` after each node
    /// with every tensor it produced (for layer dumps and calibration statistics). Graph
    /// inputs and constants are not reported.
    pub fn invoke_with_observer(&mut self, observer: &mut Observer<'_>) -> Result<()> {
        self.check_inputs()?;
        self.ran = None;
        if self.observed.is_none() {
            self.observed = Some(Compiled::new(plan::build(
                &self.graph,
                &self.prepared,
                false,
                self.threads,
            )));
        }
        let Session {
            graph,
            pool,
            observed,
            inputs,
            scratch,
            ..
        } = self;
        let Some(compiled) = observed.as_mut() else {
            return Ok(());
        };
        compiled.ensure_arena();
        if scratch.len() < compiled.plan.scratch {
            scratch.resize(compiled.plan.scratch, 0.0);
        }
        run_plan(pool, graph, compiled, inputs, scratch, Some(observer))?;
        self.ran = Some(Ran::Observed);
        Ok(())
    }

    fn view(&self, t: TensorId) -> Result<ValueView<'_>> {
        let tensor = self.graph.tensor(t);
        let shape = tensor.shape.as_slice();
        if let Some(d) = &tensor.data {
            return Ok(ValueView {
                shape,
                data: DataRef::from(d),
            });
        }
        if let Some(i) = self.graph.inputs.iter().position(|&g| g == t) {
            let d = self.inputs[i].as_ref().ok_or(RuntimeError::NotInvoked)?;
            return Ok(ValueView {
                shape,
                data: DataRef::from(d),
            });
        }
        let compiled = match self.ran {
            Some(Ran::Fast) => &self.fast,
            Some(Ran::Observed) => self.observed.as_ref().ok_or(RuntimeError::NotInvoked)?,
            None => return Err(RuntimeError::NotInvoked),
        };
        let slot = compiled.plan.slot_of[t.0].ok_or(RuntimeError::NotInvoked)?;
        let buf = compiled.arena.get(slot).ok_or(RuntimeError::NotInvoked)?;
        Ok(ValueView {
            shape,
            data: buf.view(tensor.numel()),
        })
    }

    /// A view of output `index` of the last [`Session::invoke`].
    pub fn output_view(&self, index: usize) -> Result<ValueView<'_>> {
        let count = self.graph.outputs.len();
        let &t = self
            .graph
            .outputs
            .get(index)
            .ok_or(RuntimeError::OutputIndex { index, count })?;
        if self.ran.is_none() {
            return Err(RuntimeError::NotInvoked);
        }
        self.view(t)
    }

    /// A copy of output `index` of the last [`Session::invoke`].
    pub fn output(&self, index: usize) -> Result<Value> {
        self.output_view(index).map(|v| v.to_value())
    }

    /// Sets every input, invokes, and returns every output.
    pub fn run(&mut self, inputs: Vec<Value>) -> Result<Vec<Value>> {
        if inputs.len() != self.graph.inputs.len() {
            return Err(RuntimeError::InputCount {
                got: inputs.len(),
                expected: self.graph.inputs.len(),
            });
        }
        for (i, v) in inputs.into_iter().enumerate() {
            self.set_input(i, v)?;
        }
        self.invoke()?;
        (0..self.graph.outputs.len())
            .map(|i| self.output(i))
            .collect()
    }
}

/// A borrowed input of a step.
fn input_view<'a>(
    graph: &'a Graph,
    arena: &'a [Buffer],
    inputs: &'a [Option<TensorData>],
    t: TensorId,
    src: Src,
) -> Result<ValueView<'a>> {
    let tensor = graph.tensor(t);
    let shape = tensor.shape.as_slice();
    let missing = || RuntimeError::Kernel {
        node: String::new(),
        op: "input",
        source: KernelError::Invalid {
            op: "input",
            reason: format!("tensor '{}' has no data", tensor.name),
        },
    };
    let data = match src {
        Src::Const(_) => DataRef::from(tensor.data.as_ref().ok_or_else(missing)?),
        Src::Input(i) => DataRef::from(inputs.get(i).and_then(Option::as_ref).ok_or_else(missing)?),
        Src::Slot(s) => arena.get(s).ok_or_else(missing)?.view(tensor.numel()),
    };
    Ok(ValueView { shape, data })
}

fn run_plan(
    pool: &rayon::ThreadPool,
    graph: &Graph,
    compiled: &mut Compiled,
    inputs: &[Option<TensorData>],
    scratch: &mut Vec<f32>,
    observer: Option<&mut Observer<'_>>,
) -> Result<()> {
    let Compiled { plan, arena } = compiled;
    let Some(obs) = observer else {
        return crate::workers::install_awake(pool, || {
            plan.steps
                .iter()
                .try_for_each(|step| run_step(graph, plan, step, arena, inputs, scratch))
        });
    };
    // The observer need not be `Send`: each step runs on the pool, the observer here.
    for step in &plan.steps {
        pool.install(|| run_step(graph, plan, step, arena, inputs, scratch))?;
        let last = &graph.nodes[step.last_node];
        for &o in &step.outputs {
            let slot = plan.slot_of[o.0].unwrap_or(usize::MAX);
            if let Some(b) = arena.get(slot) {
                let t = graph.tensor(o);
                obs(
                    last,
                    o,
                    ValueView {
                        shape: &t.shape,
                        data: b.view(t.numel()),
                    },
                );
            }
        }
    }
    Ok(())
}

fn run_step(
    graph: &Graph,
    plan: &Plan,
    step: &crate::plan::Step,
    arena: &mut [Buffer],
    inputs: &[Option<TensorData>],
    scratch: &mut Vec<f32>,
) -> Result<()> {
    let node = &graph.nodes[step.node];
    let err = |e: KernelError| kernel_err(&graph.nodes[step.last_node], e);
    let out_slots: Vec<usize> = step
        .outputs
        .iter()
        .map(|&o| plan.slot_of[o.0].unwrap_or(usize::MAX))
        .collect();
    if let Some(k) = out_slots.iter().position(|&s| s >= arena.len()) {
        return Err(err(KernelError::Invalid {
            op: node.op.name(),
            reason: format!(
                "output '{}' has no buffer",
                graph.tensor(step.outputs[k]).name
            ),
        }));
    }
    let mut outs: Vec<Buffer> = out_slots
        .iter()
        .map(|&s| std::mem::take(&mut arena[s]))
        .collect();
    let result = (|| -> Result<()> {
        let views = step
            .inputs
            .iter()
            .zip(&step.srcs)
            .enumerate()
            .filter(|&(pos, _)| Some(pos) != step.inplace)
            .map(|(_, (&t, &src))| input_view(graph, arena, inputs, t, src))
            .collect::<Result<Vec<_>>>()?;
        let out_shapes: Vec<&[usize]> = step
            .outputs
            .iter()
            .map(|&o| graph.tensor(o).shape.as_slice())
            .collect();
        let out_lens: Vec<usize> = step
            .outputs
            .iter()
            .map(|&o| graph.tensor(o).numel())
            .collect();
        match &step.kind {
            Kind::Alias => Ok(()),
            Kind::Layer(p, epi) => {
                let x = views[0];
                let DataRef::F32(xs) = x.data else {
                    return Err(err(KernelError::Unsupported {
                        op: node.op.name(),
                        dtype: x.dtype(),
                    }));
                };
                let Some(Buffer::F32(o)) = outs.get_mut(0) else {
                    return Err(err(KernelError::Invalid {
                        op: node.op.name(),
                        reason: "output is not FLOAT32".into(),
                    }));
                };
                let o = &mut o[..out_lens[0]];
                match p {
                    FloatLayer::Conv(c) => c.run_with(xs, x.shape, o, scratch, epi),
                    FloatLayer::Depthwise(c) => c.run_with(xs, x.shape, o, epi),
                    FloatLayer::TransposeConv(c) => c.run_with(xs, x.shape, o, scratch, epi),
                    FloatLayer::Linear(c) => c.run_with(xs, x.shape, o, epi),
                }
                .map_err(err)
            }
            Kind::QLayer(q) => {
                let Some(o) = outs.get_mut(0) else {
                    return Err(err(KernelError::Invalid {
                        op: node.op.name(),
                        reason: "no output".into(),
                    }));
                };
                q.run(&node.op, views[0], &mut o.view_mut(out_lens[0]))
                    .map_err(err)
            }
            Kind::QConvTail(c, tail) => {
                let Some(o) = outs.get_mut(0) else {
                    return Err(err(KernelError::Invalid {
                        op: node.op.name(),
                        reason: "no output".into(),
                    }));
                };
                crate::fixed::run_conv_tail(
                    &node.op,
                    c.as_ref(),
                    tail,
                    views[0],
                    o.view_mut(out_lens[0]),
                )
                .map_err(err)
            }
            Kind::InputRescale(a, r) => {
                let Some(o) = outs.get_mut(0) else {
                    return Err(err(KernelError::Invalid {
                        op: node.op.name(),
                        reason: "no output".into(),
                    }));
                };
                let o = o.view_mut(out_lens[0]);
                crate::fixed::run_input_rescale(&node.op, a, r, views[0], o).map_err(err)
            }
            Kind::Silu => {
                let Some(Buffer::F32(o)) = outs.get_mut(0) else {
                    return Err(err(KernelError::Invalid {
                        op: "Silu",
                        reason: "output is not FLOAT32".into(),
                    }));
                };
                let o = &mut o[..out_lens[0]];
                if step.inplace.is_some() {
                    ipukit_kernels::float::silu_inplace(o);
                    Ok(())
                } else {
                    exec::silu(&node.op, views[0], &mut DataMut::F32(o)).map_err(err)
                }
            }
            Kind::QLutMul(t, a) => {
                let Some(Buffer::I16(o)) = outs.get_mut(0) else {
                    return Err(err(KernelError::Invalid {
                        op: "QBinary",
                        reason: "output is not INT16".into(),
                    }));
                };
                let o = &mut o[..out_lens[0]];
                if step.inplace.is_some() {
                    t.run_mul_inplace(a, o).map_err(err)
                } else {
                    match views[0].data {
                        DataRef::I16(x) => t.run_mul(a, x, o).map_err(err),
                        d => Err(err(KernelError::Unsupported {
                            op: "QLut",
                            dtype: d.dtype(),
                        })),
                    }
                }
            }
            Kind::Generic => {
                if let Some(pos) = step.inplace {
                    let mut acc = outs[0].view_mut(out_lens[0]);
                    exec::execute_inplace(&node.op, pos, &mut acc, out_shapes[0], &views)
                        .map_err(err)
                } else {
                    let mut slots: Vec<OutSlot<'_>> = outs
                        .iter_mut()
                        .zip(&out_shapes)
                        .zip(&out_lens)
                        .map(|((b, &shape), &len)| OutSlot {
                            shape,
                            data: b.view_mut(len),
                        })
                        .collect();
                    exec::execute(&node.op, &views, &mut slots, scratch).map_err(err)
                }
            }
        }
    })();
    for (&s, b) in out_slots.iter().zip(outs) {
        if let Some(slot) = arena.get_mut(s) {
            *slot = b;
        }
    }
    result
}
