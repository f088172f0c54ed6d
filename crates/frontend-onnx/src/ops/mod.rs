//! One import function per ONNX operator, dispatched by a sorted table.
//!
//! Adding an operator is one function in the family file and one line in [`TABLE`]. Each
//! function checks the node's attributes first (unknown ones are an error) and then emits IR.

mod conv;
mod elementwise;
mod linear;
mod norm;
mod pool;
mod reduce;
mod resize;
mod shape;

use crate::context::{Ctx, NodeCx, Slot};
use crate::error::Result;
use crate::layout::identity;
use ipukit_ir::{ops::Reshape, Op, TensorId};

/// Signature of an operator import function.
pub(crate) type ImportFn = fn(&mut Ctx<'_>, &NodeCx<'_>) -> Result<()>;

/// Every ONNX operator ipukit imports, sorted by name.
pub(crate) const TABLE: &[(&str, ImportFn)] = &[
    ("Abs", elementwise::abs),
    ("Add", elementwise::add),
    ("And", elementwise::and),
    ("ArgMax", reduce::arg_max),
    ("ArgMin", reduce::arg_min),
    ("AveragePool", pool::average_pool),
    ("BatchNormalization", norm::batch_normalization),
    ("Cast", shape::cast),
    ("Ceil", elementwise::ceil),
    ("Clip", elementwise::clip),
    ("Concat", shape::concat),
    ("Constant", shape::constant),
    ("ConstantOfShape", shape::constant_of_shape),
    ("Conv", conv::conv),
    ("ConvTranspose", conv::conv_transpose),
    ("Cos", elementwise::cos),
    ("DepthToSpace", shape::depth_to_space),
    ("Div", elementwise::div),
    ("Dropout", shape::dropout),
    ("Elu", elementwise::elu),
    ("Equal", elementwise::equal),
    ("Erf", elementwise::erf),
    ("Exp", elementwise::exp),
    ("Expand", shape::expand),
    ("Flatten", shape::flatten),
    ("Floor", elementwise::floor),
    ("Gather", shape::gather),
    ("Gemm", linear::gemm),
    ("GlobalAveragePool", pool::global_average_pool),
    ("GlobalMaxPool", pool::global_max_pool),
    ("Greater", elementwise::greater),
    ("GreaterOrEqual", elementwise::greater_or_equal),
    ("HardSigmoid", elementwise::hard_sigmoid),
    ("HardSwish", elementwise::hard_swish),
    ("Identity", shape::identity_op),
    ("LeakyRelu", elementwise::leaky_relu),
    ("Less", elementwise::less),
    ("LessOrEqual", elementwise::less_or_equal),
    ("Log", elementwise::log),
    ("LogSoftmax", reduce::log_softmax),
    ("MatMul", linear::matmul),
    ("Max", elementwise::max),
    ("MaxPool", pool::max_pool),
    ("Mean", elementwise::mean),
    ("Min", elementwise::min),
    ("Mul", elementwise::mul),
    ("Neg", elementwise::neg),
    ("Not", elementwise::not),
    ("Or", elementwise::or),
    ("PRelu", elementwise::prelu),
    ("Pad", shape::pad),
    ("Pow", elementwise::pow),
    ("Range", shape::range),
    ("Reciprocal", elementwise::reciprocal),
    ("ReduceL2", reduce::reduce_l2),
    ("ReduceMax", reduce::reduce_max),
    ("ReduceMean", reduce::reduce_mean),
    ("ReduceMin", reduce::reduce_min),
    ("ReduceProd", reduce::reduce_prod),
    ("ReduceSum", reduce::reduce_sum),
    ("Relu", elementwise::relu),
    ("Reshape", shape::reshape),
    ("Resize", resize::resize),
    ("Round", elementwise::round),
    ("Shape", shape::shape),
    ("Sigmoid", elementwise::sigmoid),
    ("Sin", elementwise::sin),
    ("Size", shape::size),
    ("Slice", shape::slice),
    ("Softmax", reduce::softmax),
    ("Softplus", elementwise::softplus),
    ("SpaceToDepth", shape::space_to_depth),
    ("Split", shape::split),
    ("Sqrt", elementwise::sqrt),
    ("Squeeze", shape::squeeze),
    ("Sub", elementwise::sub),
    ("Sum", elementwise::sum),
    ("Tanh", elementwise::tanh),
    ("Tile", shape::tile),
    ("Transpose", shape::transpose),
    ("Unsqueeze", shape::unsqueeze),
    ("Upsample", resize::upsample),
    ("Where", elementwise::where_op),
];

/// The import function for an operator type.
pub(crate) fn lookup(op_type: &str) -> Option<ImportFn> {
    TABLE
        .binary_search_by(|(name, _)| name.cmp(&op_type))
        .ok()
        .map(|i| TABLE[i].1)
}

/// Reshapes a slot (in ONNX order) to `shape`; the result has the identity layout.
pub(crate) fn reshape_to(
    ctx: &mut Ctx<'_>,
    nx: &NodeCx<'_>,
    x: &Slot,
    shape: Vec<usize>,
    out: &str,
) -> Result<Slot> {
    let src = ctx.canonical(x, &nx.name)?;
    let rank = shape.len();
    let id = ctx.emit1(&nx.name, Op::Reshape(Reshape { shape }), vec![src], out)?;
    Ok(Slot {
        id,
        perm: identity(rank),
    })
}

/// The IR tensor of `x` broadcast-aligned to rank `rank` (unit axes prepended) in layout `perm`.
pub(crate) fn aligned(
    ctx: &mut Ctx<'_>,
    nx: &NodeCx<'_>,
    x: &Slot,
    rank: usize,
    perm: &[usize],
) -> Result<TensorId> {
    let xr = x.perm.len();
    if xr == rank {
        return ctx.in_layout(x, perm, &nx.name);
    }
    let mut shape = vec![1; rank - xr];
    shape.extend(ctx.onnx_shape(x));
    let base = format!("{}_{}_expanded", nx.name, ctx.graph.tensor(x.id).name);
    let r = reshape_to(ctx, nx, x, shape, &base)?;
    ctx.in_layout(&r, perm, &nx.name)
}

/// The layout shared by several inputs of a layout-agnostic operator: that of the first
/// non-constant input of full rank, else ONNX order.
pub(crate) fn common_layout(ctx: &Ctx<'_>, inputs: &[&Slot], rank: usize) -> Vec<usize> {
    inputs
        .iter()
        .find(|s| s.perm.len() == rank && !ctx.graph.tensor(s.id).is_const())
        .map(|s| s.perm.clone())
        .unwrap_or_else(|| identity(rank))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_for_binary_search() {
        assert!(TABLE.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(lookup("Conv").is_some());
        assert!(lookup("OneHot").is_none());
    }
}
