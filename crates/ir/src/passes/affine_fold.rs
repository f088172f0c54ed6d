//! Folding of per-channel affine operations (BatchNorm, Caffe Scale, `x * s + b`) into the
//! convolution or fully-connected layer that precedes them.

use super::{bypass, only_reader};
use crate::{ops::BinaryOp, ops::FusedActivation, Graph, Op, Result, TensorId};

/// Where the output channels run in a layer's weight tensor.
fn weight_channel_axis(op: &Op) -> Option<usize> {
    match op {
        Op::Conv2d(c) if c.activation == FusedActivation::None => Some(0),
        Op::TransposeConv2d(c) if c.activation == FusedActivation::None => Some(0),
        Op::FullyConnected(f) if f.activation == FusedActivation::None => Some(0),
        Op::DepthwiseConv2d(c) if c.activation == FusedActivation::None => Some(3),
        _ => None,
    }
}

/// Per-channel values of a constant that broadcasts only along the last axis of a tensor with
/// `channels` channels; `None` if it varies along any other axis.
fn per_channel(graph: &Graph, c: TensorId, out_rank: usize, channels: usize) -> Option<Vec<f32>> {
    let t = graph.tensor(c);
    let data = t.data.as_ref()?;
    if !t.dtype.is_float() || t.shape.len() > out_rank {
        return None;
    }
    let n = t.numel();
    let last = t.shape.last().copied().unwrap_or(1);
    if n == 1 {
        return Some(vec![data.to_f32_vec()[0]; channels]);
    }
    (last == channels && n == channels).then(|| data.to_f32_vec())
}

/// Folds `layer(x) ⊙ c` for ⊙ in {Mul, Div, Add, Sub} with a per-channel constant `c` into the
/// layer's weights and bias. Returns whether anything changed.
pub fn fold_affine_into_conv(graph: &mut Graph) -> Result<bool> {
    let mut changed = false;
    let mut i = 0;
    while i < graph.nodes.len() {
        if try_fold(graph, i)? {
            changed = true;
        } else {
            i += 1;
        }
    }
    Ok(changed)
}

fn try_fold(graph: &mut Graph, i: usize) -> Result<bool> {
    let node = &graph.nodes[i];
    let Op::Binary(op) = node.op else {
        return Ok(false);
    };
    if !matches!(
        op,
        BinaryOp::Mul | BinaryOp::Div | BinaryOp::Add | BinaryOp::Sub
    ) {
        return Ok(false);
    }
    // The layer output must be the first operand, except for the commutative ops.
    let (pos, other) = match (
        graph.tensor(node.inputs[0]).is_const(),
        graph.tensor(node.inputs[1]).is_const(),
    ) {
        (false, true) => (0, node.inputs[1]),
        (true, false) if matches!(op, BinaryOp::Mul | BinaryOp::Add) => (1, node.inputs[0]),
        _ => return Ok(false),
    };
    let layer_out = node.inputs[pos];
    let Some(p) = graph.nodes.iter().position(|n| n.outputs == [layer_out]) else {
        return Ok(false);
    };
    let Some(axis) = weight_channel_axis(&graph.nodes[p].op) else {
        return Ok(false);
    };
    if !only_reader(graph, layer_out, i) {
        return Ok(false);
    }
    let out = graph.tensor(layer_out);
    let channels = *out.shape.last().unwrap_or(&0);
    if graph.tensor(node.outputs[0]).shape != out.shape {
        return Ok(false);
    }
    let Some(c) = per_channel(graph, other, out.shape.len(), channels) else {
        return Ok(false);
    };
    let layer = graph.nodes[p].clone();
    let w = graph.tensor(layer.inputs[1]);
    let Some(wdata) = w.data.as_ref().and_then(|d| d.as_f32()) else {
        return Ok(false);
    };
    let bias: Vec<f32> = match layer.inputs.get(2) {
        Some(&b) => match graph.tensor(b).data.as_ref().and_then(|d| d.as_f32()) {
            Some(b) => b.to_vec(),
            None => return Ok(false),
        },
        None => vec![0.0; channels],
    };
    let (scale, shift): (Vec<f32>, Vec<f32>) = match op {
        BinaryOp::Mul => (c.clone(), vec![0.0; channels]),
        BinaryOp::Div => (c.iter().map(|v| 1.0 / v).collect(), vec![0.0; channels]),
        BinaryOp::Add => (vec![1.0; channels], c.clone()),
        _ => (vec![1.0; channels], c.iter().map(|v| -v).collect()),
    };
    if scale.iter().any(|s| !s.is_finite()) {
        return Ok(false);
    }
    let wshape = w.shape.clone();
    let inner: usize = wshape[axis + 1..].iter().product();
    let new_w: Vec<f32> = wdata
        .iter()
        .enumerate()
        .map(|(k, &v)| v * scale[(k / inner) % channels])
        .collect();
    let new_b: Vec<f32> = bias
        .iter()
        .zip(&scale)
        .zip(&shift)
        .map(|((b, s), t)| b * s + t)
        .collect();
    let wname = graph.unique_tensor_name(&format!("{}_folded", graph.tensor(layer.inputs[1]).name));
    let bname = graph.unique_tensor_name(&format!("{}_bias_folded", layer.name));
    let wid = graph.add_const(&wname, wshape, new_w.into())?;
    let bid = graph.add_const(&bname, vec![channels], new_b.into())?;
    let layer_node = &mut graph.nodes[p];
    layer_node.inputs.truncate(1);
    layer_node.inputs.extend([wid, bid]);
    if !bypass(graph, i, pos) {
        graph.nodes[p] = layer;
        return Ok(false);
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ops::Conv2d, ops::Padding2d, DType};

    #[test]
    fn batchnorm_style_mul_add_folds_into_conv() {
        let mut g = Graph::new();
        let x = g.add_input("x", DType::F32, vec![1, 3, 3, 2]);
        let w = g
            .add_const("w", vec![2, 1, 1, 2], vec![1.0f32, 2.0, 3.0, 4.0].into())
            .unwrap();
        let conv = Op::Conv2d(Conv2d {
            strides: [1, 1],
            dilations: [1, 1],
            padding: Padding2d::ZERO,
            groups: 1,
            activation: FusedActivation::None,
        });
        let y = g.add_node("conv", conv, vec![x, w], &["y"]).unwrap()[0];
        let s = g
            .add_const("s", vec![1, 1, 1, 2], vec![2.0f32, 10.0].into())
            .unwrap();
        let z = g
            .add_node("mul", Op::Binary(BinaryOp::Mul), vec![y, s], &["z"])
            .unwrap()[0];
        let b = g
            .add_const("b", vec![2], vec![0.5f32, -1.0].into())
            .unwrap();
        let o = g
            .add_node("add", Op::Binary(BinaryOp::Add), vec![z, b], &["out"])
            .unwrap()[0];
        g.outputs.push(o);
        assert!(fold_affine_into_conv(&mut g).unwrap());
        g.compact();
        g.validate().unwrap();
        assert_eq!(g.nodes.len(), 1);
        let n = &g.nodes[0];
        assert_eq!(g.tensor(n.outputs[0]).name, "out");
        assert_eq!(
            g.tensor(n.inputs[1])
                .data
                .as_ref()
                .unwrap()
                .as_f32()
                .unwrap(),
            &[2.0, 4.0, 30.0, 40.0]
        );
        assert_eq!(
            g.tensor(n.inputs[2])
                .data
                .as_ref()
                .unwrap()
                .as_f32()
                .unwrap(),
            &[0.5, -1.0]
        );
    }
}
