//! How IR operators are stored in a `.sim` file.
//!
//! An operator is written as a TFLite builtin only where the builtin has exactly the IR's
//! semantics; otherwise it is a custom operator with `custom_code` `IPU_<Name>` and a flexbuffer
//! map of options (`custom_options_format` FLEXBUFFERS). Attribute tensors that TFLite builtins
//! take as inputs (shapes, axes, permutations, paddings…) are INT32 constants added after the
//! IR's tensors; the reader turns them back into attributes and drops them.
//!
//! | IR operator | builtin (when) | custom otherwise |
//! |---|---|---|
//! | `Conv2d` | `CONV_2D` with SAME/VALID; other padding: `PAD` + `CONV_2D` VALID, fused back on read | — |
//! | `DepthwiseConv2d` | `DEPTHWISE_CONV_2D`, padding as for `Conv2d` | — |
//! | `TransposeConv2d` | `TRANSPOSE_CONV` (groups 1, dilation 1, padding TFLite derives from the output size) | `IPU_TransposeConv2d` |
//! | `FullyConnected` | `FULLY_CONNECTED` (`keep_num_dims` unless the input is 2-D) | — |
//! | `MatMul` | `BATCH_MATMUL` | — |
//! | `Binary` Add/Sub/Mul/Div/Pow/Max/Min/PRelu | `ADD` `SUB` `MUL` `DIV` `POW` `MAXIMUM` `MINIMUM` `PRELU` | — |
//! | `Binary` Equal/Less/Greater/And/Or | `EQUAL` `LESS` `GREATER` `LOGICAL_AND` `LOGICAL_OR` | — |
//! | `Unary` Relu, LeakyRelu, Sigmoid, HardSwish, Tanh | `RELU` `LEAKY_RELU` `LOGISTIC` `HARD_SWISH` `TANH` | — |
//! | `Unary` Clip | `RELU6` for (0, 6), `RELU_N1_TO_1` for (-1, 1) | `IPU_Clip` |
//! | `Unary` Elu | `ELU` for alpha 1 | `IPU_Elu` |
//! | `Unary` Abs Neg Sqrt Rsqrt Exp Log Floor Ceil Round Sin Cos Not | `ABS` `NEG` `SQRT` `RSQRT` `EXP` `LOG` `FLOOR` `CEIL` `ROUND` `SIN` `COS` `LOGICAL_NOT` | — |
//! | `Unary` HardSigmoid, Softplus, Reciprocal, Erf | — | `IPU_HardSigmoid` `IPU_Softplus` `IPU_Reciprocal` `IPU_Erf` |
//! | `Where` | `SELECT_V2` | — |
//! | `Cast` | `CAST` | — |
//! | `Softmax` / `LogSoftmax` | `SOFTMAX` (beta 1) / `LOG_SOFTMAX` on the last axis | `IPU_Softmax` / `IPU_LogSoftmax` |
//! | `Pool2d` max | `MAX_POOL_2D` when the window is dense (dilation 1), the padding is TFLite's SAME or VALID and the output size is TFLite's | `IPU_MaxPool2d` |
//! | `Pool2d` average | `AVERAGE_POOL_2D`, same rules, and padding zero or `count_include_pad` false | `IPU_AvgPool2d` |
//! | `MaxPool2dWithIndices` | — | `IPU_MaxPool2dWithIndices` |
//! | `Reduce` Mean/Sum/Max/Min/Prod | `MEAN` `SUM` `REDUCE_MAX` `REDUCE_MIN` `REDUCE_PROD` | — |
//! | `Reduce` L2 | — | `IPU_ReduceL2` |
//! | `ArgReduce` | `ARG_MAX` / `ARG_MIN` (INT64 output) without `keep_dims` | `IPU_ArgMax` / `IPU_ArgMin` |
//! | `Concat` | `CONCATENATION` | — |
//! | `Split` | `SPLIT` (equal sizes) / `SPLIT_V` | — |
//! | `Reshape` | `RESHAPE` | — |
//! | `Transpose` | `TRANSPOSE` | — |
//! | `Slice` | `STRIDED_SLICE` | — |
//! | `Pad` | `PAD` (constant 0), `PADV2` (other constants the dtype holds exactly), `MIRROR_PAD` REFLECT | `IPU_Pad` (edge, other constants) |
//! | `Gather` | `GATHER` (unless the indices are constants with negative values) | `IPU_Gather` |
//! | `Resize` | `RESIZE_BILINEAR` / `RESIZE_NEAREST_NEIGHBOR` when TFLite computes the same source pixels (see below) | `IPU_Resize` |
//! | `DepthToSpace` | `DEPTH_TO_SPACE` for DCR | `IPU_DepthToSpace` (CRD) |
//! | `SpaceToDepth` | `SPACE_TO_DEPTH` | — |
//! | `Expand` | `BROADCAST_TO` (to the output shape) | — |
//! | `Tile` | `TILE` | — |
//! | `Identity` | — | `IPU_Identity` |
//!
//! Resize: TFLite's `align_corners` / `half_pixel_centers` reproduce the IR's
//! `AlignCorners` / `HalfPixel` (and `PytorchHalfPixel` for outputs longer than 1) /
//! `Asymmetric` coordinate transforms; nearest mode is `Floor` without flags and
//! `RoundPreferCeil` with either flag. The writer checks every output index of both axes
//! against TFLite's reference formula and uses the builtin only if all agree.
//!
//! A few IR attributes that do not change what the builtin computes (a pool's `ceil_mode` when
//! it does not change the output size, `count_include_pad` on an unpadded average pool, the
//! resize's scales and coordinate mode when they pick the same pixels, the target shape of an
//! `Expand`, a transposed convolution's split between padding and output padding) and every
//! node's name are kept in the `ipukit_graph` metadata entry, so that reading gives back the
//! IR graph exactly.
//!
//! Custom operator options (flexbuffer map keys):
//!
//! | custom code | options |
//! |---|---|
//! | `IPU_Clip` | `min`, `max` (float) |
//! | `IPU_HardSigmoid` | `alpha`, `beta` |
//! | `IPU_Elu` | `alpha` |
//! | `IPU_Softplus`, `IPU_Reciprocal`, `IPU_Erf`, `IPU_Identity` | none |
//! | `IPU_Softmax`, `IPU_LogSoftmax` | `axis` |
//! | `IPU_MaxPool2d`, `IPU_AvgPool2d`, `IPU_MaxPool2dWithIndices` | `kernel` [h, w], `strides` [h, w], `padding` [top, left, bottom, right], `ceil_mode`, `dilations` [h, w] (absent: [1, 1]), `count_include_pad` (average only), `storage_order` (with indices only: 0 row-major, 1 column-major, as ONNX) |
//! | `IPU_ReduceL2` | `axes`, `keep_dims` |
//! | `IPU_ArgMax`, `IPU_ArgMin` | `axis`, `keep_dims` |
//! | `IPU_Pad` | `pads` [before0, after0, before1, …], `mode` (`constant`/`reflect`/`edge`), `value` |
//! | `IPU_Gather` | `axis` |
//! | `IPU_Resize` | `mode` (`nearest`/`linear`), `nearest_mode`, `coordinate_transformation_mode`, `size` [h, w], `scales` [h, w] |
//! | `IPU_DepthToSpace` | `block_size`, `mode` (`DCR`/`CRD`) |
//! | `IPU_TransposeConv2d` | `strides`, `dilations`, `padding` [top, left, bottom, right], `output_padding` [h, w], `groups`, `activation` |
//!
//! Enumerations are stored as the ONNX spellings (`half_pixel`, `round_prefer_floor`, …) and
//! activations as TFLite's (`NONE`, `RELU`, `RELU6`, `RELU_N1_TO_1`).
//!
//! Fixed-point operators (`docs/fixed-point.md`) are always custom operators named after the
//! IR operator, with every integer parameter in the options, so that the file defines the
//! arithmetic bit for bit. A multiplier is `multiplier` and `shift`; per-channel multipliers
//! are the lists `multipliers` and `shifts`; the output range is `out_zero_point`, `out_min`,
//! `out_max`, with `out_type` (`INT16`, `UINT8`, …) where the operator chooses its output
//! type. Tables are constant tensors appended as the last input, not options.
//!
//! | custom code | inputs | options |
//! |---|---|---|
//! | `IPU_QConv2d` | x, weight, bias? | `strides`, `dilations`, `padding`, `groups`, `input_zero_point`, `multipliers`, `shifts`, `out_type`, out range |
//! | `IPU_QDepthwiseConv2d` | x, weight, bias? | `strides`, `dilations`, `padding`, `depth_multiplier`, then as `IPU_QConv2d` |
//! | `IPU_QTransposeConv2d` | x, weight, bias? | `strides`, `dilations`, `padding`, `output_padding`, `groups`, then as `IPU_QConv2d` |
//! | `IPU_QFullyConnected` | x, weight, bias? | `input_zero_point`, `multipliers`, `shifts`, `out_type`, out range |
//! | `IPU_QMatMul` | a, b | `multiplier`, `shift`, out range |
//! | `IPU_QBinary` | a, b | `op` (`add`/`sub`/`max`/`min`: `multiplier_a`, `multiplier_b`, `shift`; `mul`/`div`: `multiplier`, `shift`), out range |
//! | `IPU_QRescale` | x | `input_zero_point`, `positive_multipliers`, `positive_shifts`, `negative_multipliers`, `negative_shifts`, `out_type`, out range |
//! | `IPU_QLut` | x, table (INT16 \[1025\]) | none |
//! | `IPU_QSoftmax` | x, exp table (INT32 \[1025\]) | `axis` |
//! | `IPU_QAvgPool2d` | x | `kernel`, `strides`, `dilations`, `padding`, `ceil_mode`, `count_include_pad`, `input_zero_point`, `multiplier`, `shift`, `out_type`, out range |
//! | `IPU_QReduce` | x | `op` (`mean`/`sum`), `axes`, `keep_dims`, `input_zero_point`, `multiplier`, `shift`, `out_type`, out range |
//! | `IPU_QResize` | x | the options of `IPU_Resize`, `input_zero_point`, `multiplier`, `shift`, `out_type`, out range |
//! | `IPU_Quantize` | x | `scale` (float), `zero_point`, `out_type` |
//! | `IPU_Dequantize` | x | `scale` (float), `zero_point` |
//! | `IPU_InputNormalize` | image | `image` (`interleaved`/`nv12`), `to_gray` (nv12 only), `source_channels`, `mean`, `multipliers`, `shifts` |

use ipukit_ir::ops::{CoordTransform, FusedActivation, NearestMode};

/// Prefix of every ipukit custom operator code.
pub const CUSTOM_PREFIX: &str = "IPU_";

/// Custom operator codes written by ipukit.
pub mod custom {
    /// General clip.
    pub const CLIP: &str = "IPU_Clip";
    /// Hard sigmoid.
    pub const HARD_SIGMOID: &str = "IPU_HardSigmoid";
    /// ELU with alpha other than 1.
    pub const ELU: &str = "IPU_Elu";
    /// Softplus.
    pub const SOFTPLUS: &str = "IPU_Softplus";
    /// Reciprocal.
    pub const RECIPROCAL: &str = "IPU_Reciprocal";
    /// Error function.
    pub const ERF: &str = "IPU_Erf";
    /// Identity.
    pub const IDENTITY: &str = "IPU_Identity";
    /// Softmax on a non-last axis.
    pub const SOFTMAX: &str = "IPU_Softmax";
    /// Log-softmax on a non-last axis.
    pub const LOG_SOFTMAX: &str = "IPU_LogSoftmax";
    /// Max pool TFLite cannot express.
    pub const MAX_POOL: &str = "IPU_MaxPool2d";
    /// Average pool TFLite cannot express.
    pub const AVG_POOL: &str = "IPU_AvgPool2d";
    /// Max pool that also outputs the index of every maximum.
    pub const MAX_POOL_WITH_INDICES: &str = "IPU_MaxPool2dWithIndices";
    /// L2 reduction.
    pub const REDUCE_L2: &str = "IPU_ReduceL2";
    /// Arg-max keeping the axis.
    pub const ARG_MAX: &str = "IPU_ArgMax";
    /// Arg-min keeping the axis.
    pub const ARG_MIN: &str = "IPU_ArgMin";
    /// Edge padding or a constant TFLite's PADV2 cannot hold.
    pub const PAD: &str = "IPU_Pad";
    /// Gather with negative constant indices.
    pub const GATHER: &str = "IPU_Gather";
    /// Resize TFLite cannot express.
    pub const RESIZE: &str = "IPU_Resize";
    /// Depth-to-space in CRD order.
    pub const DEPTH_TO_SPACE: &str = "IPU_DepthToSpace";
    /// Transposed convolution TFLite cannot express.
    pub const TRANSPOSE_CONV: &str = "IPU_TransposeConv2d";
    /// Quantized convolution (`QConv2d`).
    pub const Q_CONV: &str = "IPU_QConv2d";
    /// Quantized depthwise convolution (`QDepthwiseConv2d`).
    pub const Q_DEPTHWISE_CONV: &str = "IPU_QDepthwiseConv2d";
    /// Quantized transposed convolution (`QTransposeConv2d`).
    pub const Q_TRANSPOSE_CONV: &str = "IPU_QTransposeConv2d";
    /// Quantized fully-connected layer (`QFullyConnected`).
    pub const Q_FULLY_CONNECTED: &str = "IPU_QFullyConnected";
    /// Quantized matrix product (`QMatMul`).
    pub const Q_MATMUL: &str = "IPU_QMatMul";
    /// Quantized element-wise binary operation (`QBinary`).
    pub const Q_BINARY: &str = "IPU_QBinary";
    /// Rescale (`QRescale`).
    pub const Q_RESCALE: &str = "IPU_QRescale";
    /// Table lookup (`QLut`).
    pub const Q_LUT: &str = "IPU_QLut";
    /// Quantized softmax (`QSoftmax`).
    pub const Q_SOFTMAX: &str = "IPU_QSoftmax";
    /// Quantized average pooling (`QAvgPool2d`).
    pub const Q_AVG_POOL: &str = "IPU_QAvgPool2d";
    /// Quantized mean or sum (`QReduce`).
    pub const Q_REDUCE: &str = "IPU_QReduce";
    /// Quantized bilinear resize (`QResize`).
    pub const Q_RESIZE: &str = "IPU_QResize";
    /// Float to integer (`Quantize`).
    pub const QUANTIZE: &str = "IPU_Quantize";
    /// Integer to float (`Dequantize`, the seeds' Fix2Float).
    pub const DEQUANTIZE: &str = "IPU_Dequantize";
    /// The board's image to the model input (`InputNormalize`).
    pub const INPUT_NORMALIZE: &str = "IPU_InputNormalize";
}

pub(crate) fn coord_name(c: CoordTransform) -> &'static str {
    match c {
        CoordTransform::HalfPixel => "half_pixel",
        CoordTransform::PytorchHalfPixel => "pytorch_half_pixel",
        CoordTransform::AlignCorners => "align_corners",
        CoordTransform::Asymmetric => "asymmetric",
        CoordTransform::HalfPixelSymmetric => "half_pixel_symmetric",
    }
}

pub(crate) fn coord_from_name(s: &str) -> Option<CoordTransform> {
    Some(match s {
        "half_pixel" => CoordTransform::HalfPixel,
        "pytorch_half_pixel" => CoordTransform::PytorchHalfPixel,
        "align_corners" => CoordTransform::AlignCorners,
        "asymmetric" => CoordTransform::Asymmetric,
        "half_pixel_symmetric" => CoordTransform::HalfPixelSymmetric,
        _ => return None,
    })
}

pub(crate) fn nearest_name(m: NearestMode) -> &'static str {
    match m {
        NearestMode::RoundPreferFloor => "round_prefer_floor",
        NearestMode::RoundPreferCeil => "round_prefer_ceil",
        NearestMode::Floor => "floor",
        NearestMode::Ceil => "ceil",
    }
}

pub(crate) fn nearest_from_name(s: &str) -> Option<NearestMode> {
    Some(match s {
        "round_prefer_floor" => NearestMode::RoundPreferFloor,
        "round_prefer_ceil" => NearestMode::RoundPreferCeil,
        "floor" => NearestMode::Floor,
        "ceil" => NearestMode::Ceil,
        _ => return None,
    })
}

pub(crate) fn activation_name(a: FusedActivation) -> &'static str {
    match a {
        FusedActivation::None => "NONE",
        FusedActivation::Relu => "RELU",
        FusedActivation::Relu6 => "RELU6",
        FusedActivation::ReluN1To1 => "RELU_N1_TO_1",
    }
}

pub(crate) fn activation_from_name(s: &str) -> Option<FusedActivation> {
    Some(match s {
        "NONE" => FusedActivation::None,
        "RELU" => FusedActivation::Relu,
        "RELU6" => FusedActivation::Relu6,
        "RELU_N1_TO_1" => FusedActivation::ReluN1To1,
        _ => return None,
    })
}
