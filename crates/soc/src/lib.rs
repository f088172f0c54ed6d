//! SoC profiles: what a target IPU can run and how fast.
//!
//! `--soc_version` names one of [`profiles`]. A profile carries the hardware limits the
//! converter and compiler check (kernel, stride, padding, concat fan-in), the default input
//! alignments, whether 4-bit weights exist, the on-chip memory size, and the cost model the
//! compiler's report uses. `generic` has no limits and is the default.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

use ipukit_ir::ops::fixed::{QAvgPool2d, QConv2d, QDepthwiseConv2d, QTransposeConv2d};
use ipukit_ir::ops::MaxPool2dWithIndices;
use ipukit_ir::{Graph, Op};
use thiserror::Error;

/// Errors about SoC profiles.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum SocError {
    /// The name is not a known profile (the seeds' message).
    #[error("Not support soc_version: {0} (known: {known}; see `ipu-convert show_sdk_info`)", known = names().join(", "))]
    Unknown(String),
    /// The graph exceeds the profile's limits.
    #[error("the model exceeds what {soc} supports:\n{}", .violations.join("\n"))]
    Limits {
        /// Profile name.
        soc: String,
        /// One line per violation, naming the node.
        violations: Vec<String>,
    },
}

/// Hardware limits; `None` means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest convolution kernel side.
    pub max_conv_kernel: Option<usize>,
    /// Largest convolution stride.
    pub max_conv_stride: Option<usize>,
    /// Largest convolution dilation.
    pub max_conv_dilation: Option<usize>,
    /// Largest padding on any side of a convolution or pool.
    pub max_pad: Option<usize>,
    /// Largest pooling window side.
    pub max_pool_kernel: Option<usize>,
    /// Largest pooling stride.
    pub max_pool_stride: Option<usize>,
    /// Most inputs of one Concat.
    pub max_concat_inputs: Option<usize>,
    /// Most outputs of one Split.
    pub max_split_outputs: Option<usize>,
}

impl Limits {
    /// No limits at all.
    pub const NONE: Limits = Limits {
        max_conv_kernel: None,
        max_conv_stride: None,
        max_conv_dilation: None,
        max_pad: None,
        max_pool_kernel: None,
        max_pool_stride: None,
        max_concat_inputs: None,
        max_split_outputs: None,
    };
}

/// Throughput figures for the compiler's cycle estimate: a layer takes
/// `max(MACs / macs_per_cycle, bytes moved / dram_bytes_per_cycle)` cycles.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CostModel {
    /// Clock in MHz.
    pub clock_mhz: f64,
    /// 8-bit multiply-accumulates per cycle.
    pub macs_per_cycle_int8: f64,
    /// 16-bit multiply-accumulates per cycle.
    pub macs_per_cycle_int16: f64,
    /// Element-wise / pooling elements per cycle.
    pub elems_per_cycle: f64,
    /// External memory bandwidth in bytes per cycle.
    pub dram_bytes_per_cycle: f64,
}

/// A target SoC.
#[derive(Debug, Clone, PartialEq)]
pub struct SocProfile {
    /// The `--soc_version` name.
    pub name: &'static str,
    /// One-line description.
    pub description: &'static str,
    /// Hardware limits.
    pub limits: Limits,
    /// Default width alignment (elements) of RGB/BGR/RGBA/BGRA image inputs.
    pub image_width_alignment: usize,
    /// Default height alignment of image inputs.
    pub image_height_alignment: usize,
    /// Whether 4-bit weights are supported.
    pub int4_weights: bool,
    /// On-chip SRAM in bytes (`None`: unlimited).
    pub sram_bytes: Option<usize>,
    /// Cost model.
    pub cost: CostModel,
}

const PROFILES: &[SocProfile] = &[
    SocProfile {
        name: "generic",
        description: "no hardware limits; for simulation and accuracy work on a PC",
        limits: Limits::NONE,
        image_width_alignment: 1,
        image_height_alignment: 1,
        int4_weights: true,
        sram_bytes: None,
        cost: CostModel {
            clock_mhz: 800.0,
            macs_per_cycle_int8: 1024.0,
            macs_per_cycle_int16: 256.0,
            elems_per_cycle: 64.0,
            dram_bytes_per_cycle: 16.0,
        },
    },
    SocProfile {
        name: "ipu100",
        description: "entry IPU, 0.5 TOPS int8: kernels up to 11x11, stride up to 7, 512 KiB SRAM",
        limits: Limits {
            max_conv_kernel: Some(11),
            max_conv_stride: Some(7),
            max_conv_dilation: Some(8),
            max_pad: Some(15),
            max_pool_kernel: Some(19),
            max_pool_stride: Some(16),
            max_concat_inputs: Some(64),
            max_split_outputs: Some(64),
        },
        image_width_alignment: 16,
        image_height_alignment: 2,
        int4_weights: false,
        sram_bytes: Some(512 * 1024),
        cost: CostModel {
            clock_mhz: 500.0,
            macs_per_cycle_int8: 512.0,
            macs_per_cycle_int16: 128.0,
            elems_per_cycle: 32.0,
            dram_bytes_per_cycle: 8.0,
        },
    },
    SocProfile {
        name: "ipu200",
        description:
            "mid-range IPU, 2 TOPS int8 with int4 weights: kernels up to 31x31, 2 MiB SRAM",
        limits: Limits {
            max_conv_kernel: Some(31),
            max_conv_stride: Some(31),
            max_conv_dilation: Some(32),
            max_pad: Some(255),
            max_pool_kernel: Some(255),
            max_pool_stride: Some(255),
            max_concat_inputs: Some(10000),
            max_split_outputs: Some(256),
        },
        image_width_alignment: 16,
        image_height_alignment: 1,
        int4_weights: true,
        sram_bytes: Some(2 * 1024 * 1024),
        cost: CostModel {
            clock_mhz: 1000.0,
            macs_per_cycle_int8: 1024.0,
            macs_per_cycle_int16: 256.0,
            elems_per_cycle: 64.0,
            dram_bytes_per_cycle: 16.0,
        },
    },
];

/// Every known profile.
pub fn profiles() -> &'static [SocProfile] {
    PROFILES
}

/// Names of the known profiles.
pub fn names() -> Vec<&'static str> {
    PROFILES.iter().map(|p| p.name).collect()
}

/// The profile called `name` (case-insensitive).
pub fn profile(name: &str) -> Result<&'static SocProfile, SocError> {
    PROFILES
        .iter()
        .find(|p| p.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| SocError::Unknown(name.to_string()))
}

/// The default profile.
pub fn default_profile() -> &'static SocProfile {
    &PROFILES[0]
}

fn over(v: usize, limit: Option<usize>) -> bool {
    limit.is_some_and(|l| v > l)
}

impl SocProfile {
    /// Checks every node — float or fixed-point — against the profile's limits and reports all
    /// violations at once.
    pub fn check_graph(&self, graph: &Graph) -> Result<(), SocError> {
        let l = &self.limits;
        let mut v = Vec::new();
        for n in &graph.nodes {
            let mut bad =
                |what: String| v.push(format!("  node '{}' ({}): {what}", n.name, n.op.name()));
            let kernel_of = |i: usize| graph.tensor(n.inputs[i]).shape.clone();
            // Float and fixed-point convolutions share their window limits.
            let window = match &n.op {
                Op::Conv2d(c) | Op::QConv2d(QConv2d { conv: c, .. }) => {
                    Some((c.strides, c.dilations, c.padding))
                }
                Op::DepthwiseConv2d(c) | Op::QDepthwiseConv2d(QDepthwiseConv2d { conv: c, .. }) => {
                    Some((c.strides, c.dilations, c.padding))
                }
                Op::TransposeConv2d(c) | Op::QTransposeConv2d(QTransposeConv2d { conv: c, .. }) => {
                    Some((c.strides, c.dilations, c.padding))
                }
                _ => None,
            };
            if let Some((strides, dilations, padding)) = window {
                let w = kernel_of(1);
                let kernel = [
                    w.get(1).copied().unwrap_or(1),
                    w.get(2).copied().unwrap_or(1),
                ];
                conv_checks(l, kernel, strides, dilations, padding, &mut bad);
            }
            match &n.op {
                Op::Pool2d(p)
                | Op::QAvgPool2d(QAvgPool2d { pool: p, .. })
                | Op::MaxPool2dWithIndices(MaxPool2dWithIndices { pool: p, .. }) => {
                    if p.kernel.iter().any(|&k| over(k, l.max_pool_kernel))
                        || p.strides.iter().any(|&s| over(s, l.max_pool_stride))
                    {
                        bad(format!(
                            "does not support kernel size {} {} stride {} {} (limits: kernel {}, stride {})",
                            p.kernel[0], p.kernel[1], p.strides[0], p.strides[1],
                            show(l.max_pool_kernel), show(l.max_pool_stride)
                        ));
                    }
                    let pd = p.padding;
                    if [pd.top, pd.left, pd.bottom, pd.right]
                        .iter()
                        .any(|&x| over(x, l.max_pad))
                    {
                        bad(format!("does not support padding over {}", show(l.max_pad)));
                    }
                }
                Op::Concat(_) if over(n.inputs.len(), l.max_concat_inputs) => {
                    bad(format!(
                        "{} inputs, at most {} supported",
                        n.inputs.len(),
                        show(l.max_concat_inputs)
                    ));
                }
                Op::Split(_) if over(n.outputs.len(), l.max_split_outputs) => {
                    bad(format!(
                        "Split_V outputs number exceeds the limit ({} > {})",
                        n.outputs.len(),
                        show(l.max_split_outputs)
                    ));
                }
                _ => {}
            }
        }
        if v.is_empty() {
            Ok(())
        } else {
            Err(SocError::Limits {
                soc: self.name.to_string(),
                violations: v,
            })
        }
    }

    /// One text block describing the profile (for `show_sdk_info`).
    pub fn describe(&self) -> String {
        let l = &self.limits;
        format!(
            "{name}: {desc}\n  conv kernel <= {ck}, stride <= {cs}, dilation <= {cd}, pad <= {pad}; pool kernel <= {pk}, stride <= {ps}\n  concat inputs <= {ci}, split outputs <= {so}; image input alignment W {wa} H {ha}; int4 weights: {i4}; SRAM: {sram}\n  cost model: {mhz} MHz, {m8} int8 MAC/cycle, {m16} int16 MAC/cycle, {dram} B/cycle DRAM",
            name = self.name,
            desc = self.description,
            ck = show(l.max_conv_kernel),
            cs = show(l.max_conv_stride),
            cd = show(l.max_conv_dilation),
            pad = show(l.max_pad),
            pk = show(l.max_pool_kernel),
            ps = show(l.max_pool_stride),
            ci = show(l.max_concat_inputs),
            so = show(l.max_split_outputs),
            wa = self.image_width_alignment,
            ha = self.image_height_alignment,
            i4 = if self.int4_weights { "yes" } else { "no" },
            sram = self.sram_bytes.map(|b| format!("{} KiB", b / 1024)).unwrap_or_else(|| "unlimited".into()),
            mhz = self.cost.clock_mhz,
            m8 = self.cost.macs_per_cycle_int8,
            m16 = self.cost.macs_per_cycle_int16,
            dram = self.cost.dram_bytes_per_cycle,
        )
    }
}

fn show(v: Option<usize>) -> String {
    v.map(|x| x.to_string()).unwrap_or_else(|| "any".into())
}

fn conv_checks(
    l: &Limits,
    kernel: [usize; 2],
    strides: [usize; 2],
    dilations: [usize; 2],
    p: ipukit_ir::ops::Padding2d,
    bad: &mut dyn FnMut(String),
) {
    if kernel.iter().any(|&k| over(k, l.max_conv_kernel)) {
        bad(format!(
            "kernel {}x{} exceeds the limit {}",
            kernel[0],
            kernel[1],
            show(l.max_conv_kernel)
        ));
    }
    if strides.iter().any(|&s| over(s, l.max_conv_stride)) {
        bad(format!(
            "strideW strideH cannot be larger than {} (got {} {})",
            show(l.max_conv_stride),
            strides[1],
            strides[0]
        ));
    }
    if dilations.iter().any(|&d| over(d, l.max_conv_dilation)) {
        bad(format!(
            "dilation {dilations:?} exceeds the limit {}",
            show(l.max_conv_dilation)
        ));
    }
    if [p.top, p.left, p.bottom, p.right]
        .iter()
        .any(|&x| over(x, l.max_pad))
    {
        bad(format!("does not support padding over {}", show(l.max_pad)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipukit_ir::{ops::*, DType};

    #[test]
    fn unknown_profile_uses_the_seeds_message() {
        let e = profile("xyz").unwrap_err().to_string();
        assert!(e.starts_with("Not support soc_version: xyz"), "{e}");
        assert_eq!(profile("GENERIC").unwrap().name, "generic");
    }

    #[test]
    fn constrained_profile_reports_every_violation_by_node() {
        let mut g = Graph::new();
        let x = g.add_input("x", DType::F32, vec![1, 64, 64, 3]);
        let w = g
            .add_const("w", vec![8, 13, 13, 3], vec![0f32; 8 * 13 * 13 * 3].into())
            .unwrap();
        let conv = Op::Conv2d(Conv2d {
            strides: [8, 8],
            dilations: [1, 1],
            padding: Padding2d::ZERO,
            groups: 1,
            activation: FusedActivation::None,
        });
        let y = g.add_node("big_conv", conv, vec![x, w], &["y"]).unwrap()[0];
        g.outputs.push(y);
        assert!(profile("generic").unwrap().check_graph(&g).is_ok());
        let e = profile("ipu100")
            .unwrap()
            .check_graph(&g)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("big_conv")
                && e.contains("kernel 13x13")
                && e.contains("cannot be larger than 7"),
            "{e}"
        );
    }
}
