//! Fixed-point operators (`docs/fixed-point.md`) in `.sim` files.
//!
//! Every fixed-point operator is a custom operator `IPU_<IR name>` (`IPU_QConv2d`,
//! `IPU_Quantize`, …) whose flexbuffer options hold all its integer parameters, so that a
//! fixed model fully defines its arithmetic (TFLite's quantized builtins derive multipliers
//! from tensor scales with their own rounding, which would not be bit-exact). The two large
//! tables are constant tensors instead, appended as the operator's last input like the
//! attribute tensors of builtins, typed and visible in Netron: the 1025 INT16 entries of
//! `QLut` (`<node>/table`) and the 1025 INT32 entries of `QSoftmax` (`<node>/exp_table`).
//! The reader takes them back into the attribute and drops the tensors.
//!
//! Option keys (the table in [`crate::mapping`] lists them per operator):
//!
//! * a multiplier `m · 2⁻ⁿ` is `multiplier`/`shift`; per-channel lists are `multipliers` and
//!   `shifts` (`positive_…` and `negative_…` for `QRescale`), of equal length;
//! * the output range is `out_zero_point`, `out_min`, `out_max`, and `out_type` (`INT16`,
//!   `UINT8`, …) where the operator chooses its output type;
//! * geometry uses the keys of the float custom operators (`strides`, `dilations`,
//!   `padding` [top, left, bottom, right], `kernel`, …).
//!
//! Every number is checked on reading (32-bit ranges, non-negative sizes, known names); the
//! graph check that follows reading validates the rest (multiplier and range limits, table
//! lengths, types), so a bad file is a [`crate::SimError`], never a panic.

use crate::error::{corrupt, Result, SimError};
use crate::flex::{self, MapWriter, Value};
use crate::mapping::{coord_from_name, coord_name, custom, nearest_from_name, nearest_name};
use crate::write::pad4;
use ipukit_ir::ops::fixed::{
    Dequantize, ImageInput, InputNormalize, OutRange, QAvgPool2d, QBinary, QBinaryKind, QConv2d,
    QDepthwiseConv2d, QFullyConnected, QLayer, QLut, QMatMul, QReduce, QRescale, QResize, QSoftmax,
    QTransposeConv2d, Quantize, Requant,
};
use ipukit_ir::ops::{
    Conv2d, DepthwiseConv2d, FusedActivation, Padding2d, Pool2d, PoolKind, Reduce, ReduceOp,
    Resize, ResizeMode, TransposeConv2d,
};
use ipukit_ir::{DType, Op, Tensor, TensorData};

/// A fixed-point operator ready to be written.
pub(crate) struct Encoded {
    /// Custom operator code.
    pub code: &'static str,
    /// Flexbuffer options.
    pub options: MapWriter,
    /// A table stored as an extra constant input: tensor name suffix and data.
    pub table: Option<(&'static str, TensorData)>,
}

fn requant(m: MapWriter, r: Requant) -> MapWriter {
    m.int("multiplier", r.multiplier).int("shift", r.shift)
}

fn requants(m: MapWriter, prefix: &str, r: &[Requant]) -> MapWriter {
    let mult: Vec<i64> = r.iter().map(|q| q.multiplier as i64).collect();
    let shift: Vec<i64> = r.iter().map(|q| q.shift as i64).collect();
    m.ints(&format!("{prefix}multipliers"), &mult)
        .ints(&format!("{prefix}shifts"), &shift)
}

fn out_range(m: MapWriter, r: &OutRange) -> MapWriter {
    m.int("out_zero_point", r.zero_point)
        .int("out_min", r.min)
        .int("out_max", r.max)
}

fn out_typed(m: MapWriter, dtype: DType, r: &OutRange) -> MapWriter {
    out_range(m.str("out_type", dtype.name()), r)
}

fn layer(m: MapWriter, l: &QLayer) -> MapWriter {
    let m = requants(
        m.int("input_zero_point", l.input_zero_point),
        "",
        &l.requant,
    );
    out_typed(m, l.out_dtype, &l.out)
}

fn geometry(strides: [usize; 2], dilations: [usize; 2], padding: Padding2d) -> MapWriter {
    MapWriter::new()
        .uints("strides", &strides)
        .uints("dilations", &dilations)
        .uints("padding", &pad4(padding))
}

fn pool(p: &Pool2d) -> MapWriter {
    let m = MapWriter::new()
        .uints("kernel", &p.kernel)
        .uints("strides", &p.strides)
        .uints("dilations", &p.dilations)
        .uints("padding", &pad4(p.padding))
        .bool("ceil_mode", p.ceil_mode);
    match p.kind {
        PoolKind::Average { count_include_pad } => m.bool("count_include_pad", count_include_pad),
        PoolKind::Max => m,
    }
}

fn resize(r: &Resize) -> MapWriter {
    let m = MapWriter::new()
        .str("coordinate_transformation_mode", coord_name(r.coord))
        .uints("size", &r.size)
        .floats("scales", &r.scales);
    match r.mode {
        ResizeMode::Nearest(n) => m
            .str("mode", "nearest")
            .str("nearest_mode", nearest_name(n)),
        ResizeMode::Linear => m.str("mode", "linear"),
        ResizeMode::Cubic {
            coeff_a,
            exclude_outside,
        } => m
            .str("mode", "cubic")
            .floats("cubic_coeff_a", &[coeff_a])
            .bool("exclude_outside", exclude_outside),
    }
}

fn binary_name(k: &QBinaryKind) -> &'static str {
    match k {
        QBinaryKind::Add { .. } => "add",
        QBinaryKind::Sub { .. } => "sub",
        QBinaryKind::Max { .. } => "max",
        QBinaryKind::Min { .. } => "min",
        QBinaryKind::Mul(_) => "mul",
        QBinaryKind::Div(_) => "div",
    }
}

/// The encoding of `op`, `None` when it is not a fixed-point operator.
pub(crate) fn encode(op: &Op) -> Option<Encoded> {
    let plain = |code, options| {
        Some(Encoded {
            code,
            options,
            table: None,
        })
    };
    match op {
        Op::QConv2d(q) => {
            let c = &q.conv;
            let m = geometry(c.strides, c.dilations, c.padding).uint("groups", c.groups);
            plain(custom::Q_CONV, layer(m, &q.layer))
        }
        Op::QDepthwiseConv2d(q) => {
            let c = &q.conv;
            let m = geometry(c.strides, c.dilations, c.padding)
                .uint("depth_multiplier", c.depth_multiplier);
            plain(custom::Q_DEPTHWISE_CONV, layer(m, &q.layer))
        }
        Op::QTransposeConv2d(q) => {
            let c = &q.conv;
            let m = geometry(c.strides, c.dilations, c.padding)
                .uints("output_padding", &c.output_padding)
                .uint("groups", c.groups);
            plain(custom::Q_TRANSPOSE_CONV, layer(m, &q.layer))
        }
        Op::QFullyConnected(q) => {
            plain(custom::Q_FULLY_CONNECTED, layer(MapWriter::new(), &q.layer))
        }
        Op::QMatMul(q) => plain(
            custom::Q_MATMUL,
            out_range(requant(MapWriter::new(), q.requant), &q.out),
        ),
        Op::QBinary(q) => {
            let m = MapWriter::new().str("op", binary_name(&q.kind));
            let m = match q.kind {
                QBinaryKind::Add { ma, mb, shift }
                | QBinaryKind::Sub { ma, mb, shift }
                | QBinaryKind::Max { ma, mb, shift }
                | QBinaryKind::Min { ma, mb, shift } => m
                    .int("multiplier_a", ma)
                    .int("multiplier_b", mb)
                    .int("shift", shift),
                QBinaryKind::Mul(r) | QBinaryKind::Div(r) => requant(m, r),
            };
            plain(custom::Q_BINARY, out_range(m, &q.out))
        }
        Op::QRescale(q) => {
            let m = MapWriter::new().int("input_zero_point", q.input_zero_point);
            let m = requants(
                requants(m, "positive_", &q.positive),
                "negative_",
                &q.negative,
            );
            plain(custom::Q_RESCALE, out_typed(m, q.out_dtype, &q.out))
        }
        Op::QLut(q) => Some(Encoded {
            code: custom::Q_LUT,
            options: MapWriter::new(),
            table: Some(("table", q.table.clone().into())),
        }),
        Op::QSoftmax(q) => Some(Encoded {
            code: custom::Q_SOFTMAX,
            options: MapWriter::new().uint("axis", q.axis),
            table: Some(("exp_table", q.exp_table.clone().into())),
        }),
        Op::QAvgPool2d(q) => {
            let m = requant(pool(&q.pool), q.requant).int("input_zero_point", q.input_zero_point);
            plain(custom::Q_AVG_POOL, out_typed(m, q.out_dtype, &q.out))
        }
        Op::QReduce(q) => {
            let r = &q.reduce;
            let name = match r.op {
                ReduceOp::Mean => "mean",
                ReduceOp::Sum => "sum",
                ReduceOp::Max => "max",
                ReduceOp::Min => "min",
                ReduceOp::Prod => "prod",
                ReduceOp::L2 => "l2",
            };
            let m = MapWriter::new()
                .str("op", name)
                .uints("axes", &r.axes)
                .bool("keep_dims", r.keep_dims)
                .int("input_zero_point", q.input_zero_point);
            plain(
                custom::Q_REDUCE,
                out_typed(requant(m, q.requant), q.out_dtype, &q.out),
            )
        }
        Op::QResize(q) => {
            let m =
                requant(resize(&q.resize), q.requant).int("input_zero_point", q.input_zero_point);
            plain(custom::Q_RESIZE, out_typed(m, q.out_dtype, &q.out))
        }
        Op::Quantize(q) => plain(
            custom::QUANTIZE,
            MapWriter::new()
                .float("scale", q.scale)
                .int("zero_point", q.zero_point)
                .str("out_type", q.out_dtype.name()),
        ),
        Op::Dequantize(q) => plain(
            custom::DEQUANTIZE,
            MapWriter::new()
                .float("scale", q.scale)
                .int("zero_point", q.zero_point),
        ),
        Op::InputNormalize(q) => {
            let m = match q.image {
                ImageInput::Interleaved => MapWriter::new().str("image", "interleaved"),
                ImageInput::Nv12 { to_gray } => MapWriter::new()
                    .str("image", "nv12")
                    .bool("to_gray", to_gray),
            };
            let mean: Vec<i64> = q.mean_q.iter().map(|&v| v as i64).collect();
            let m = m
                .uints("source_channels", &q.source_channel)
                .ints("mean", &mean);
            plain(custom::INPUT_NORMALIZE, requants(m, "", &q.requant))
        }
        _ => None,
    }
}

/// True if `code` is the custom code of a fixed-point operator.
pub(crate) fn is_fixed_code(code: &str) -> bool {
    FIXED_CODES.contains(&code)
}

/// Every fixed-point custom code.
const FIXED_CODES: [&str; 15] = [
    custom::Q_CONV,
    custom::Q_DEPTHWISE_CONV,
    custom::Q_TRANSPOSE_CONV,
    custom::Q_FULLY_CONNECTED,
    custom::Q_MATMUL,
    custom::Q_BINARY,
    custom::Q_RESCALE,
    custom::Q_LUT,
    custom::Q_SOFTMAX,
    custom::Q_AVG_POOL,
    custom::Q_REDUCE,
    custom::Q_RESIZE,
    custom::QUANTIZE,
    custom::DEQUANTIZE,
    custom::INPUT_NORMALIZE,
];

/// Checked access to the options of a fixed-point operator.
struct Opts<'m> {
    map: &'m [(String, Value)],
}

impl Opts<'_> {
    fn req(&self, key: &str) -> Result<&Value> {
        flex::get(self.map, key)
            .ok_or_else(|| corrupt(format!("custom options: missing option '{key}'")))
    }

    fn err(key: &str, e: impl std::fmt::Display) -> SimError {
        corrupt(format!("custom options: option '{key}': {e}"))
    }

    fn int(v: &Value, key: &str) -> Result<i64> {
        v.as_i64().map_err(|e| Self::err(key, e))
    }

    fn i32(&self, key: &str) -> Result<i32> {
        let v = Self::int(self.req(key)?, key)?;
        i32::try_from(v).map_err(|_| Self::err(key, format!("{v} does not fit in 32 bits")))
    }

    /// A non-negative value below 2³¹ (sizes, axes, shifts).
    fn usize(&self, key: &str) -> Result<usize> {
        let v = self.i32(key)?;
        usize::try_from(v).map_err(|_| Self::err(key, format!("negative value {v}")))
    }

    fn u32(&self, key: &str) -> Result<u32> {
        Ok(self.usize(key)? as u32)
    }

    fn f32(&self, key: &str) -> Result<f32> {
        Ok(self.req(key)?.as_f64().map_err(|e| Self::err(key, e))? as f32)
    }

    fn bool(&self, key: &str) -> Result<bool> {
        self.req(key)?.as_bool().map_err(|e| Self::err(key, e))
    }

    fn str(&self, key: &str) -> Result<&str> {
        self.req(key)?.as_str().map_err(|e| Self::err(key, e))
    }

    fn i32s(&self, key: &str) -> Result<Vec<i32>> {
        let v = self.req(key)?.as_vec().map_err(|e| Self::err(key, e))?;
        v.iter()
            .map(|x| {
                let i = Self::int(x, key)?;
                i32::try_from(i).map_err(|_| Self::err(key, format!("{i} does not fit in 32 bits")))
            })
            .collect()
    }

    fn usizes(&self, key: &str, len: Option<usize>) -> Result<Vec<usize>> {
        let v = self.i32s(key)?;
        if let Some(n) = len {
            if v.len() != n {
                return Err(Self::err(
                    key,
                    format!("expected {n} values, found {}", v.len()),
                ));
            }
        }
        v.into_iter()
            .map(|i| usize::try_from(i).map_err(|_| Self::err(key, format!("negative value {i}"))))
            .collect()
    }

    /// Two values of at least 1 (strides, dilations, kernel sizes).
    fn positive_pair(&self, key: &str) -> Result<[usize; 2]> {
        let v = self.usizes(key, Some(2))?;
        if v.contains(&0) {
            return Err(Self::err(key, "values must be at least 1"));
        }
        Ok([v[0], v[1]])
    }

    fn pair(&self, key: &str) -> Result<[usize; 2]> {
        let v = self.usizes(key, Some(2))?;
        Ok([v[0], v[1]])
    }

    fn positive(&self, key: &str) -> Result<usize> {
        match self.usize(key)? {
            0 => Err(Self::err(key, "must be at least 1")),
            v => Ok(v),
        }
    }

    fn padding(&self, key: &str) -> Result<Padding2d> {
        let v = self.usizes(key, Some(4))?;
        Ok(Padding2d {
            top: v[0],
            left: v[1],
            bottom: v[2],
            right: v[3],
        })
    }

    fn f32_pair(&self, key: &str) -> Result<[f32; 2]> {
        let v = self.req(key)?.as_vec().map_err(|e| Self::err(key, e))?;
        if v.len() != 2 {
            return Err(Self::err(
                key,
                format!("expected 2 values, found {}", v.len()),
            ));
        }
        let f = |x: &Value| x.as_f64().map(|v| v as f32).map_err(|e| Self::err(key, e));
        Ok([f(&v[0])?, f(&v[1])?])
    }

    fn dtype(&self, key: &str) -> Result<DType> {
        let s = self.str(key)?;
        DType::from_name(s).ok_or_else(|| Self::err(key, format!("unknown element type '{s}'")))
    }

    fn requant(&self) -> Result<Requant> {
        Ok(Requant {
            multiplier: self.i32("multiplier")?,
            shift: self.u32("shift")?,
        })
    }

    fn requants(&self, prefix: &str) -> Result<Vec<Requant>> {
        let mk = format!("{prefix}multipliers");
        let sk = format!("{prefix}shifts");
        let m = self.i32s(&mk)?;
        let s = self.usizes(&sk, Some(m.len()))?;
        Ok(m.into_iter()
            .zip(s)
            .map(|(multiplier, shift)| Requant {
                multiplier,
                shift: shift as u32,
            })
            .collect())
    }

    fn out_range(&self) -> Result<OutRange> {
        Ok(OutRange {
            zero_point: self.i32("out_zero_point")?,
            min: self.i32("out_min")?,
            max: self.i32("out_max")?,
        })
    }

    fn layer(&self) -> Result<QLayer> {
        Ok(QLayer {
            input_zero_point: self.i32("input_zero_point")?,
            requant: self.requants("")?,
            out_dtype: self.dtype("out_type")?,
            out: self.out_range()?,
        })
    }

    fn pool(&self) -> Result<Pool2d> {
        Ok(Pool2d {
            kind: PoolKind::Average {
                count_include_pad: self.bool("count_include_pad")?,
            },
            kernel: self.positive_pair("kernel")?,
            strides: self.positive_pair("strides")?,
            dilations: self.positive_pair("dilations")?,
            padding: self.padding("padding")?,
            ceil_mode: self.bool("ceil_mode")?,
        })
    }

    fn resize(&self) -> Result<Resize> {
        let c = self.str("coordinate_transformation_mode")?;
        let coord =
            coord_from_name(c).ok_or_else(|| corrupt(format!("unknown coordinate mode '{c}'")))?;
        let mode = match self.str("mode")? {
            "linear" => ResizeMode::Linear,
            "nearest" => {
                let m = self.str("nearest_mode")?;
                ResizeMode::Nearest(
                    nearest_from_name(m)
                        .ok_or_else(|| corrupt(format!("unknown nearest mode '{m}'")))?,
                )
            }
            "cubic" => {
                let a = self
                    .req("cubic_coeff_a")?
                    .as_vec()
                    .map_err(|e| Self::err("cubic_coeff_a", e))?;
                let [a] = a else {
                    return Err(Self::err("cubic_coeff_a", "expected one value"));
                };
                ResizeMode::Cubic {
                    coeff_a: a.as_f64().map_err(|e| Self::err("cubic_coeff_a", e))? as f32,
                    exclude_outside: self.bool("exclude_outside")?,
                }
            }
            m => return Err(corrupt(format!("unknown resize mode '{m}'"))),
        };
        Ok(Resize {
            mode,
            coord,
            size: self.pair("size")?,
            scales: self.f32_pair("scales")?,
        })
    }
}

/// A decoded fixed-point operator.
pub(crate) struct Decoded {
    /// The operator.
    pub op: Op,
    /// Its IR inputs (tensor indices of the file).
    pub inputs: Vec<usize>,
    /// A table tensor taken into the operator, to drop from the graph.
    pub table: Option<usize>,
}

/// Reads the fixed-point operator `code` with options `map`, file inputs `inputs` (`None`
/// for an absent optional input) and the file's tensors.
pub(crate) fn decode(
    code: &str,
    map: &[(String, Value)],
    inputs: &[Option<usize>],
    tensors: &[Tensor],
) -> Result<Decoded> {
    let o = Opts { map };
    // Inputs `0..n` present, then `optional` more that may be absent.
    let take = |n: usize, optional: usize| -> Result<Vec<usize>> {
        if inputs.len() < n || inputs.len() > n + optional {
            return Err(corrupt(format!(
                "has {} inputs, expected {n}..={}",
                inputs.len(),
                n + optional
            )));
        }
        let mut v = Vec::with_capacity(inputs.len());
        for (k, t) in inputs.iter().enumerate() {
            match t {
                Some(t) => v.push(*t),
                None if k < n => return Err(corrupt(format!("input {k} is missing"))),
                None => {}
            }
        }
        Ok(v)
    };
    // Weight of a layer: it must have `rank` dimensions.
    let weight = |ins: &[usize], rank: usize| -> Result<()> {
        let w = &tensors[ins[1]];
        if w.shape.len() != rank {
            return Err(corrupt(format!(
                "weight '{}' must be {rank}-D, its shape is {:?}",
                w.name, w.shape
            )));
        }
        Ok(())
    };
    let plain = |op: Op, inputs: Vec<usize>| Decoded {
        op,
        inputs,
        table: None,
    };
    Ok(match code {
        custom::Q_CONV => {
            let ins = take(2, 1)?;
            weight(&ins, 4)?;
            let conv = Conv2d {
                strides: o.positive_pair("strides")?,
                dilations: o.positive_pair("dilations")?,
                padding: o.padding("padding")?,
                groups: o.positive("groups")?,
                activation: FusedActivation::None,
            };
            plain(
                Op::QConv2d(QConv2d {
                    conv,
                    layer: o.layer()?,
                }),
                ins,
            )
        }
        custom::Q_DEPTHWISE_CONV => {
            let ins = take(2, 1)?;
            weight(&ins, 4)?;
            let conv = DepthwiseConv2d {
                strides: o.positive_pair("strides")?,
                dilations: o.positive_pair("dilations")?,
                padding: o.padding("padding")?,
                depth_multiplier: o.positive("depth_multiplier")?,
                activation: FusedActivation::None,
            };
            plain(
                Op::QDepthwiseConv2d(QDepthwiseConv2d {
                    conv,
                    layer: o.layer()?,
                }),
                ins,
            )
        }
        custom::Q_TRANSPOSE_CONV => {
            let ins = take(2, 1)?;
            weight(&ins, 4)?;
            let conv = TransposeConv2d {
                strides: o.positive_pair("strides")?,
                dilations: o.positive_pair("dilations")?,
                padding: o.padding("padding")?,
                output_padding: o.pair("output_padding")?,
                groups: o.positive("groups")?,
                activation: FusedActivation::None,
            };
            plain(
                Op::QTransposeConv2d(QTransposeConv2d {
                    conv,
                    layer: o.layer()?,
                }),
                ins,
            )
        }
        custom::Q_FULLY_CONNECTED => {
            let ins = take(2, 1)?;
            weight(&ins, 2)?;
            plain(
                Op::QFullyConnected(QFullyConnected { layer: o.layer()? }),
                ins,
            )
        }
        custom::Q_MATMUL => plain(
            Op::QMatMul(QMatMul {
                requant: o.requant()?,
                out: o.out_range()?,
            }),
            take(2, 0)?,
        ),
        custom::Q_BINARY => {
            let add_like = || -> Result<(i32, i32, u32)> {
                Ok((
                    o.i32("multiplier_a")?,
                    o.i32("multiplier_b")?,
                    o.u32("shift")?,
                ))
            };
            let kind = match o.str("op")? {
                "add" => add_like().map(|(ma, mb, shift)| QBinaryKind::Add { ma, mb, shift })?,
                "sub" => add_like().map(|(ma, mb, shift)| QBinaryKind::Sub { ma, mb, shift })?,
                "max" => add_like().map(|(ma, mb, shift)| QBinaryKind::Max { ma, mb, shift })?,
                "min" => add_like().map(|(ma, mb, shift)| QBinaryKind::Min { ma, mb, shift })?,
                "mul" => QBinaryKind::Mul(o.requant()?),
                "div" => QBinaryKind::Div(o.requant()?),
                other => {
                    return Err(corrupt(format!(
                        "unknown quantized binary operation '{other}'"
                    )))
                }
            };
            plain(
                Op::QBinary(QBinary {
                    kind,
                    out: o.out_range()?,
                }),
                take(2, 0)?,
            )
        }
        custom::Q_RESCALE => plain(
            Op::QRescale(QRescale {
                input_zero_point: o.i32("input_zero_point")?,
                positive: o.requants("positive_")?,
                negative: o.requants("negative_")?,
                out_dtype: o.dtype("out_type")?,
                out: o.out_range()?,
            }),
            take(1, 0)?,
        ),
        custom::Q_LUT => {
            let ins = take(2, 0)?;
            let table = table(&tensors[ins[1]], DType::I16)?;
            Decoded {
                op: Op::QLut(QLut {
                    table: table.iter().map(|&v| v as i16).collect(),
                }),
                inputs: vec![ins[0]],
                table: Some(ins[1]),
            }
        }
        custom::Q_SOFTMAX => {
            let ins = take(2, 0)?;
            let table = table(&tensors[ins[1]], DType::I32)?;
            Decoded {
                op: Op::QSoftmax(QSoftmax {
                    axis: o.usize("axis")?,
                    exp_table: table.iter().map(|&v| v as i32).collect(),
                }),
                inputs: vec![ins[0]],
                table: Some(ins[1]),
            }
        }
        custom::Q_AVG_POOL => plain(
            Op::QAvgPool2d(QAvgPool2d {
                pool: o.pool()?,
                input_zero_point: o.i32("input_zero_point")?,
                requant: o.requant()?,
                out_dtype: o.dtype("out_type")?,
                out: o.out_range()?,
            }),
            take(1, 0)?,
        ),
        custom::Q_REDUCE => {
            let op = match o.str("op")? {
                "mean" => ReduceOp::Mean,
                "sum" => ReduceOp::Sum,
                "max" => ReduceOp::Max,
                "min" => ReduceOp::Min,
                "prod" => ReduceOp::Prod,
                "l2" => ReduceOp::L2,
                other => return Err(corrupt(format!("unknown reduction '{other}'"))),
            };
            plain(
                Op::QReduce(QReduce {
                    reduce: Reduce {
                        op,
                        axes: o.usizes("axes", None)?,
                        keep_dims: o.bool("keep_dims")?,
                    },
                    input_zero_point: o.i32("input_zero_point")?,
                    requant: o.requant()?,
                    out_dtype: o.dtype("out_type")?,
                    out: o.out_range()?,
                }),
                take(1, 0)?,
            )
        }
        custom::Q_RESIZE => plain(
            Op::QResize(QResize {
                resize: o.resize()?,
                input_zero_point: o.i32("input_zero_point")?,
                requant: o.requant()?,
                out_dtype: o.dtype("out_type")?,
                out: o.out_range()?,
            }),
            take(1, 0)?,
        ),
        custom::QUANTIZE => plain(
            Op::Quantize(Quantize {
                scale: o.f32("scale")?,
                zero_point: o.i32("zero_point")?,
                out_dtype: o.dtype("out_type")?,
            }),
            take(1, 0)?,
        ),
        custom::DEQUANTIZE => plain(
            Op::Dequantize(Dequantize {
                scale: o.f32("scale")?,
                zero_point: o.i32("zero_point")?,
            }),
            take(1, 0)?,
        ),
        custom::INPUT_NORMALIZE => {
            let image = match o.str("image")? {
                "interleaved" => ImageInput::Interleaved,
                "nv12" => ImageInput::Nv12 {
                    to_gray: o.bool("to_gray")?,
                },
                other => return Err(corrupt(format!("unknown image layout '{other}'"))),
            };
            plain(
                Op::InputNormalize(InputNormalize {
                    image,
                    source_channel: o.usizes("source_channels", None)?,
                    mean_q: o.i32s("mean")?,
                    requant: o.requants("")?,
                }),
                take(1, 0)?,
            )
        }
        other => return Err(corrupt(format!("'{other}' is not a fixed-point operator"))),
    })
}

/// The entries of a table tensor: a constant 1-D tensor of `dtype`.
fn table(t: &Tensor, dtype: DType) -> Result<Vec<i64>> {
    match &t.data {
        Some(d) if t.dtype == dtype && t.shape.len() == 1 => Ok(d.to_i64_vec()),
        _ => Err(corrupt(format!(
            "table '{}' must be a constant 1-D {dtype} tensor, it is {}{} {:?}",
            t.name,
            if t.data.is_some() {
                "a constant "
            } else {
                "a non-constant "
            },
            t.dtype,
            t.shape
        ))),
    }
}
