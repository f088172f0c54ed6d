//! Constant folding with the inference kernels.

use crate::buffer::Buffer;
use crate::exec::{self, OutSlot};
use crate::value::{DataRef, ValueView};
use ipukit_ir::passes::ConstEvaluator;
use ipukit_ir::{Node, TensorData};

/// Evaluates nodes on constant inputs with the same kernels inference uses, for every
/// element type (shape arithmetic runs on `INT64`).
#[derive(Debug, Clone, Copy, Default)]
pub struct ReferenceEvaluator;

impl ReferenceEvaluator {
    /// The evaluator.
    pub fn new() -> ReferenceEvaluator {
        ReferenceEvaluator
    }
}

impl ConstEvaluator for ReferenceEvaluator {
    fn eval(
        &self,
        node: &Node,
        inputs: &[(&TensorData, &[usize])],
    ) -> Result<Vec<TensorData>, String> {
        let infos: Vec<_> = inputs.iter().map(|(d, s)| (d.dtype(), *s)).collect();
        let out_types = node.op.infer(&infos).map_err(|e| e.to_string())?;
        for (d, s) in inputs {
            let n: usize = s.iter().product();
            if d.len() != n {
                return Err(format!("an input has {} elements but shape {s:?}", d.len()));
            }
        }
        let views: Vec<ValueView<'_>> = inputs
            .iter()
            .map(|(d, s)| ValueView {
                shape: s,
                data: DataRef::from(*d),
            })
            .collect();
        let mut bufs: Vec<Buffer> = out_types
            .iter()
            .map(|(dt, s)| Buffer::zeroed(*dt, s.iter().product()))
            .collect();
        let mut scratch = Vec::new();
        {
            let mut slots: Vec<OutSlot<'_>> = bufs
                .iter_mut()
                .zip(&out_types)
                .map(|(b, (_, s))| OutSlot {
                    shape: s,
                    data: b.view_mut(s.iter().product()),
                })
                .collect();
            exec::execute(&node.op, &views, &mut slots, &mut scratch).map_err(|e| e.to_string())?;
        }
        Ok(bufs
            .into_iter()
            .zip(&out_types)
            .map(|(b, (_, s))| b.into_data(s.iter().product()))
            .collect())
    }
}
