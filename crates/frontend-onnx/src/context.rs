//! Importer state: the IR graph being built and the ONNX-name → IR-tensor map with layouts.

use crate::attrs::Attrs;
use crate::error::{OnnxError, Result};
use crate::layout::{identity, transpose_between};
use crate::proto::NodeProto;
use ipukit_ir::{ops::Transpose, passes::ConstEvaluator, DType, Graph, Op, TensorData, TensorId};
use std::collections::{HashMap, HashSet};

/// Where an ONNX tensor lives in the IR: IR axis `i` of `id` holds ONNX axis `perm[i]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Slot {
    pub id: TensorId,
    pub perm: Vec<usize>,
}

/// The graph under construction.
pub(crate) struct Ctx<'e> {
    pub graph: Graph,
    pub opset: i64,
    values: HashMap<String, Slot>,
    names: HashSet<String>,
    node_names: HashSet<String>,
    relayouts: HashMap<(TensorId, Vec<usize>), TensorId>,
    eval: &'e dyn ConstEvaluator,
}

impl<'e> Ctx<'e> {
    pub(crate) fn new(opset: i64, eval: &'e dyn ConstEvaluator) -> Ctx<'e> {
        Ctx {
            graph: Graph::new(),
            opset,
            values: HashMap::new(),
            names: HashSet::new(),
            node_names: HashSet::new(),
            relayouts: HashMap::new(),
            eval,
        }
    }

    /// Reserves a tensor name derived from `base`.
    pub(crate) fn fresh(&mut self, base: &str) -> String {
        let base = if base.is_empty() { "t" } else { base };
        let mut name = base.to_string();
        let mut i = 1;
        while self.names.contains(&name) {
            name = format!("{base}_{i}");
            i += 1;
        }
        self.names.insert(name.clone());
        name
    }

    fn fresh_node(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        let mut i = 1;
        while self.node_names.contains(&name) {
            name = format!("{base}_{i}");
            i += 1;
        }
        self.node_names.insert(name.clone());
        name
    }

    /// Marks a name as used (graph inputs and initializers keep their ONNX names).
    pub(crate) fn reserve(&mut self, name: &str) {
        self.names.insert(name.to_string());
    }

    pub(crate) fn set(&mut self, onnx_name: &str, slot: Slot) {
        self.values.insert(onnx_name.to_string(), slot);
    }

    pub(crate) fn lookup(&self, onnx_name: &str) -> Option<&Slot> {
        self.values.get(onnx_name)
    }

    /// Adds a constant tensor and returns its slot (identity layout).
    pub(crate) fn constant(
        &mut self,
        base: &str,
        shape: Vec<usize>,
        data: TensorData,
    ) -> Result<Slot> {
        let name = self.fresh(base);
        let rank = shape.len();
        let id = self.graph.add_const(&name, shape, data)?;
        Ok(Slot {
            id,
            perm: identity(rank),
        })
    }

    /// The ONNX-order shape of a slot.
    pub(crate) fn onnx_shape(&self, slot: &Slot) -> Vec<usize> {
        let ir = &self.graph.tensor(slot.id).shape;
        let mut s = vec![0; ir.len()];
        for (i, &p) in slot.perm.iter().enumerate() {
            s[p] = ir[i];
        }
        s
    }

    pub(crate) fn dtype(&self, slot: &Slot) -> DType {
        self.graph.tensor(slot.id).dtype
    }

    /// The constant data of a slot in ONNX order, if it is a constant.
    pub(crate) fn const_data(&mut self, slot: &Slot) -> Result<Option<TensorData>> {
        if !self.graph.tensor(slot.id).is_const() {
            return Ok(None);
        }
        let id = self.in_layout(slot, &identity(slot.perm.len()), "const")?;
        Ok(self.graph.tensor(id).data.clone())
    }

    /// The IR tensor holding `slot` with layout `target` (IR axis i = ONNX axis `target[i]`),
    /// emitting (or reusing) one Transpose if needed.
    pub(crate) fn in_layout(
        &mut self,
        slot: &Slot,
        target: &[usize],
        base: &str,
    ) -> Result<TensorId> {
        if slot.perm == target {
            return Ok(slot.id);
        }
        let key = (slot.id, target.to_vec());
        if let Some(&id) = self.relayouts.get(&key) {
            return Ok(id);
        }
        let perm = transpose_between(&slot.perm, target);
        let src = self.graph.tensor(slot.id).name.clone();
        let out = self.emit1(
            &format!("{base}_{src}_transpose"),
            Op::Transpose(Transpose { perm }),
            vec![slot.id],
            &format!("{src}_t"),
        )?;
        self.relayouts.insert(key, out);
        Ok(out)
    }

    /// The IR tensor holding `slot` in ONNX's own axis order.
    pub(crate) fn canonical(&mut self, slot: &Slot, base: &str) -> Result<TensorId> {
        self.in_layout(slot, &identity(slot.perm.len()), base)
    }

    /// Adds a node; when every input is constant the node is evaluated at once and its outputs
    /// become constants (so shape arithmetic disappears while importing).
    pub(crate) fn emit(
        &mut self,
        node_base: &str,
        op: Op,
        inputs: Vec<TensorId>,
        out_bases: &[&str],
    ) -> Result<Vec<TensorId>> {
        let node_name = self.fresh_node(node_base);
        let out_names: Vec<String> = out_bases.iter().map(|b| self.fresh(b)).collect();
        let refs: Vec<&str> = out_names.iter().map(String::as_str).collect();
        let outs = self.graph.add_node(&node_name, op, inputs, &refs)?;
        let node = self.graph.nodes.last().cloned();
        if let Some(node) =
            node.filter(|n| n.inputs.iter().all(|&i| self.graph.tensor(i).is_const()))
        {
            let inputs: Vec<_> = node
                .inputs
                .iter()
                .map(|&i| {
                    let t = self.graph.tensor(i);
                    (t.data.clone(), t.shape.clone())
                })
                .collect();
            let refs: Vec<(&TensorData, &[usize])> = inputs
                .iter()
                .filter_map(|(d, s)| d.as_ref().map(|d| (d, s.as_slice())))
                .collect();
            let results = self.eval.eval(&node, &refs).map_err(|reason| {
                OnnxError::Invalid(format!("cannot evaluate constant expression: {reason}"))
            })?;
            for (&o, data) in outs.iter().zip(results) {
                let t = self.graph.tensor_mut(o);
                if data.len() != t.numel() || data.dtype() != t.dtype {
                    return Err(OnnxError::Invalid(format!(
                        "constant evaluation of '{}' gave the wrong type",
                        t.name
                    )));
                }
                t.data = Some(data);
            }
            self.graph.nodes.pop();
        }
        Ok(outs)
    }

    /// [`Ctx::emit`] for single-output operators.
    pub(crate) fn emit1(
        &mut self,
        node_base: &str,
        op: Op,
        inputs: Vec<TensorId>,
        out_base: &str,
    ) -> Result<TensorId> {
        Ok(self.emit(node_base, op, inputs, &[out_base])?[0])
    }
}

/// One ONNX node being imported.
pub(crate) struct NodeCx<'n> {
    pub node: &'n NodeProto,
    pub attrs: Attrs<'n>,
    pub name: String,
    pub op_type: &'n str,
}

impl<'n> NodeCx<'n> {
    pub(crate) fn new(node: &'n NodeProto, index: usize) -> NodeCx<'n> {
        let op_type = node.op_type.as_deref().unwrap_or("");
        let name = match node.name.as_deref() {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => format!("{op_type}_{index}"),
        };
        NodeCx {
            node,
            attrs: Attrs::new(node),
            name,
            op_type,
        }
    }

    /// Number of inputs given (trailing empty optional inputs excluded).
    pub(crate) fn input_count(&self) -> usize {
        let mut n = self.node.input.len();
        while n > 0 && self.node.input[n - 1].is_empty() {
            n -= 1;
        }
        n
    }

    /// Input `i`; `None` when absent or given as "" (optional input left out).
    pub(crate) fn input(&self, ctx: &Ctx<'_>, i: usize) -> Result<Option<Slot>> {
        match self.node.input.get(i).map(String::as_str) {
            None | Some("") => Ok(None),
            Some(name) => ctx.lookup(name).cloned().map(Some).ok_or_else(|| {
                OnnxError::Invalid(format!(
                    "Nodes in a graph must be topologically sorted; however, input '{name}' of node: name: {} OpType: {} is not output of any previous nodes.",
                    self.name, self.op_type
                ))
            }),
        }
    }

    /// Input `i`, which must be present.
    pub(crate) fn req(&self, ctx: &Ctx<'_>, i: usize) -> Result<Slot> {
        self.input(ctx, i)?
            .ok_or_else(|| OnnxError::Invalid(format!("input {i} is required")))
    }

    /// Input `i` as constant data in ONNX order; an error when it is computed at run time.
    pub(crate) fn const_input(
        &self,
        ctx: &mut Ctx<'_>,
        i: usize,
        what: &str,
    ) -> Result<Option<TensorData>> {
        match self.input(ctx, i)? {
            None => Ok(None),
            Some(s) => ctx.const_data(&s)?.map(Some).ok_or_else(|| {
                OnnxError::Unsupported(format!(
                    "ONNX {} {what} input only supports const tensor",
                    self.op_type
                ))
            }),
        }
    }

    /// Name of output `i` ("" if absent).
    pub(crate) fn output(&self, i: usize) -> &str {
        self.node.output.get(i).map(String::as_str).unwrap_or("")
    }

    /// Number of outputs requested (trailing empty names excluded).
    pub(crate) fn output_count(&self) -> usize {
        let mut n = self.node.output.len();
        while n > 0 && self.node.output[n - 1].is_empty() {
            n -= 1;
        }
        n
    }

    /// Emits a single-output IR op whose output is ONNX output 0 with layout `perm`.
    pub(crate) fn emit_out(
        &self,
        ctx: &mut Ctx<'_>,
        op: Op,
        inputs: Vec<TensorId>,
        perm: Vec<usize>,
    ) -> Result<()> {
        let id = ctx.emit1(&self.name, op, inputs, self.output(0))?;
        ctx.set(self.output(0), Slot { id, perm });
        Ok(())
    }

    /// Binds ONNX output `i` to an existing slot (no IR op).
    pub(crate) fn alias(&self, ctx: &mut Ctx<'_>, i: usize, slot: Slot) {
        ctx.set(self.output(i), slot);
    }

    /// Rejects any requested output beyond the first `n`.
    pub(crate) fn max_outputs(&self, n: usize) -> Result<()> {
        if self.output_count() > n {
            return Err(OnnxError::Unsupported(format!(
                "ONNX {} output {} ('{}') is not supported",
                self.op_type,
                n,
                self.output(n)
            )));
        }
        Ok(())
    }
}
