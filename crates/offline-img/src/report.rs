//! The compiler's report: per step the fused operator, precision, MACs, weight bytes, arena
//! bytes and estimated cycles from the SoC profile's cost model (`docs/offline-img.md` §8).

use crate::format::Image;
use crate::program::{liveness, tensor_bytes, Exec};
use ipukit_ir::{DType, Graph, Node, Op};
use ipukit_soc::SocProfile;
use std::fmt;

/// One step of the program.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerReport {
    /// Name of the step's last node.
    pub name: String,
    /// The operators the step runs, `+`-joined (`Pad+QConv2d`, `QLut+QRescale`).
    pub op: String,
    /// `INT8` (8-bit layer), `INT16`, or the output type for other operators.
    pub precision: String,
    /// Multiply-accumulates.
    pub macs: u64,
    /// Bytes of constants read.
    pub weight_bytes: u64,
    /// Bytes of arena tensors the step reads and writes.
    pub arena_bytes: u64,
    /// Estimated cycles.
    pub cycles: u64,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// SoC profile name.
    pub soc: String,
    /// Clock of the profile in MHz.
    pub clock_mhz: f64,
    /// One row per step (aliases included with zero cost).
    pub layers: Vec<LayerReport>,
    /// Nodes of the fixed model.
    pub nodes_in: usize,
    /// Steps of the program (chains count once).
    pub steps: usize,
    /// Sum of MACs.
    pub total_macs: u64,
    /// Constant bytes.
    pub total_weight_bytes: u64,
    /// Sum of estimated cycles.
    pub total_cycles: u64,
    /// Arena size of the memory plan.
    pub arena_bytes: u64,
    /// Sum of the sizes of every arena tensor (what a plan without reuse would need).
    pub naive_bytes: u64,
    /// Size of the image file.
    pub image_bytes: u64,
}

impl Report {
    /// Estimated latency in milliseconds at the profile's clock.
    pub fn estimated_ms(&self) -> f64 {
        self.total_cycles as f64 / (self.clock_mhz * 1e3)
    }
}

fn precision(g: &Graph, n: &Node) -> String {
    let layer = matches!(
        n.op,
        Op::QConv2d(_) | Op::QDepthwiseConv2d(_) | Op::QTransposeConv2d(_) | Op::QFullyConnected(_)
    );
    let dt = if layer {
        g.tensor(n.inputs[0]).dtype
    } else {
        n.outputs.first().map_or(DType::I16, |&o| g.tensor(o).dtype)
    };
    match dt {
        DType::U8 | DType::I8 if layer => "INT8".into(),
        DType::I16 if layer => "INT16".into(),
        d => d.name().to_string(),
    }
}

fn macs(g: &Graph, n: &Node) -> u64 {
    let out = n.outputs.first().map_or(0, |&o| g.tensor(o).numel()) as u64;
    let w = |i: usize| n.inputs.get(i).map(|&t| g.tensor(t).shape.clone());
    match &n.op {
        Op::QConv2d(_) => w(1).map_or(0, |s| out * s.iter().skip(1).product::<usize>() as u64),
        Op::QDepthwiseConv2d(_) => w(1).map_or(0, |s| {
            out * s.get(1).copied().unwrap_or(1) as u64 * s.get(2).copied().unwrap_or(1) as u64
        }),
        Op::QTransposeConv2d(q) => {
            let x = g.tensor(n.inputs[0]).numel() as u64;
            w(1).map_or(0, |s| {
                x * (s[0] / q.conv.groups.max(1)) as u64 * s[1] as u64 * s[2] as u64
            })
        }
        Op::QFullyConnected(_) => w(1).map_or(0, |s| out * s.last().copied().unwrap_or(1) as u64),
        Op::QMatMul(_) => w(0).map_or(0, |s| out * s.last().copied().unwrap_or(1) as u64),
        _ => 0,
    }
}

/// Builds the report of a compiled image. `fused` lists the node names the compiler merged
/// (`[Pad, Conv]`, `[Conv, Clamp]`); `original` is the graph before fusion.
pub(crate) fn build(
    img: &Image,
    soc: &SocProfile,
    fused: &[Vec<String>],
    original: &Graph,
    image_bytes: usize,
) -> Report {
    let p = &img.program;
    let g = &p.graph;
    let cost = &soc.cost;
    let in_arena = |t: ipukit_ir::TensorId| img.plan.place.get(t.0).copied().flatten().is_some();
    let op_of = |name: &str| {
        original
            .nodes
            .iter()
            .find(|n| n.name == name)
            .map_or("?", |n| n.op.name())
    };
    let mut layers: Vec<LayerReport> = Vec::new();
    let mut i = 0;
    while i < g.nodes.len() {
        let mut j = i;
        if p.exec[i] == Exec::TableHead {
            while p.exec.get(j + 1) == Some(&Exec::TableLink) {
                j += 1;
            }
        }
        let nodes = &g.nodes[i..=j];
        let last = &g.nodes[j];
        let mut ops: Vec<String> = nodes.iter().map(|n| n.op.name().to_string()).collect();
        for f in fused {
            if nodes.iter().any(|n| f.contains(&n.name)) {
                for name in f {
                    let o = op_of(name).to_string();
                    if !nodes.iter().any(|n| &n.name == name) {
                        if f.first() == Some(name) {
                            ops.insert(0, o);
                        } else {
                            ops.push(o);
                        }
                    }
                }
            }
        }
        let mut op = ops.join("+");
        if p.exec[i] == Exec::Alias {
            op.push_str(" (alias)");
        } else if p.exec[i] == Exec::TableHead {
            op.push_str(" (table)");
        }
        let m: u64 = nodes.iter().map(|n| macs(g, n)).sum();
        let weight_bytes: u64 = nodes
            .iter()
            .flat_map(|n| &n.inputs)
            .filter(|&&t| g.tensor(t).is_const())
            .map(|&t| tensor_bytes(g, t) as u64)
            .sum();
        let arena: u64 = nodes[0]
            .inputs
            .iter()
            .chain(&last.outputs)
            .filter(|&&t| in_arena(t))
            .map(|&t| tensor_bytes(g, t) as u64)
            .sum();
        let cycles = if p.exec[i] == Exec::Alias {
            0
        } else {
            let moved = (arena + weight_bytes) as f64 / cost.dram_bytes_per_cycle;
            let compute = if m > 0 {
                let rate = if precision(g, &nodes[0]) == "INT8" {
                    cost.macs_per_cycle_int8
                } else {
                    cost.macs_per_cycle_int16
                };
                m as f64 / rate
            } else {
                let elems = last.outputs.first().map_or(0, |&o| g.tensor(o).numel());
                elems as f64 / cost.elems_per_cycle
            };
            compute.max(moved).ceil() as u64
        };
        layers.push(LayerReport {
            name: last.name.clone(),
            op,
            precision: precision(g, &nodes[0]),
            macs: m,
            weight_bytes,
            arena_bytes: arena,
            cycles,
        });
        i = j + 1;
    }
    let live = liveness(p);
    Report {
        soc: soc.name.to_string(),
        clock_mhz: cost.clock_mhz,
        nodes_in: original.nodes.len(),
        steps: layers.len(),
        total_macs: layers.iter().map(|l| l.macs).sum(),
        total_weight_bytes: img.header.const_bytes,
        total_cycles: layers.iter().map(|l| l.cycles).sum(),
        arena_bytes: img.plan.arena_bytes as u64,
        naive_bytes: live
            .group
            .iter()
            .enumerate()
            .filter(|(_, gr)| gr.is_some())
            .map(|(t, _)| tensor_bytes(g, ipukit_ir::TensorId(t)) as u64)
            .sum(),
        image_bytes: image_bytes as u64,
        layers,
    }
}

fn kib(b: u64) -> String {
    format!("{:.1} KiB", b as f64 / 1024.0)
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self
            .layers
            .iter()
            .map(|l| l.name.len())
            .max()
            .unwrap_or(5)
            .clamp(5, 40);
        let ow = self
            .layers
            .iter()
            .map(|l| l.op.len())
            .max()
            .unwrap_or(2)
            .clamp(2, 40);
        writeln!(
            f,
            "{:>4}  {:<w$}  {:<ow$}  {:<9}  {:>12}  {:>10}  {:>10}  {:>10}",
            "#", "layer", "op", "precision", "MACs", "weights", "arena", "cycles"
        )?;
        for (i, l) in self.layers.iter().enumerate() {
            let name: String = l.name.chars().take(40).collect();
            writeln!(
                f,
                "{:>4}  {:<w$}  {:<ow$}  {:<9}  {:>12}  {:>10}  {:>10}  {:>10}",
                i, name, l.op, l.precision, l.macs, l.weight_bytes, l.arena_bytes, l.cycles
            )?;
        }
        writeln!(
            f,
            "total: {} nodes -> {} steps, {} MACs, weights {}, arena {} (naive sum {}, {:.1}x smaller), image {}",
            self.nodes_in,
            self.steps,
            self.total_macs,
            kib(self.total_weight_bytes),
            kib(self.arena_bytes),
            kib(self.naive_bytes),
            self.naive_bytes as f64 / self.arena_bytes.max(1) as f64,
            kib(self.image_bytes)
        )?;
        write!(
            f,
            "estimated {} cycles = {:.3} ms at {} MHz on {} (cost model: max(MACs / MACs per cycle or elements / elements per cycle, bytes moved / DRAM bytes per cycle) per step)",
            self.total_cycles,
            self.estimated_ms(),
            self.clock_mhz,
            self.soc
        )
    }
}
