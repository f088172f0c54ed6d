//! 2-D convolution on NHWC with OHWI weights, as GEMM.
//!
//! The output is a `[M = N·OH·OW, Cout]` matrix. A 1×1 stride-1 unpadded convolution reads
//! the input directly as the `[M, Cin]` left operand; any other kernel first copies the
//! receptive fields of a chunk of output pixels into a scratch matrix (im2col, `[rows, KH·KW·Cin]`,
//! in the weights' `(kh, kw, ci)` order). The weights are packed once into `[K, Cout]` per
//! group. Rows are split into one task per thread; each task walks its rows in cache-sized
//! chunks — im2col, GEMM, then bias and activation while the chunk is still in cache.
//! A grouped convolution with one input channel per group is a depthwise convolution and runs
//! on [`PackedDepthwise`].

use super::gemm::sgemm;
use super::igemm::{Panels, MR};
use super::{Epilogue, PackedDepthwise};
use crate::error::{check_len, invalid, Result};
use crate::window::{nhwc_with_channels, ConvGeometry, PixelCursor};
use ipukit_ir::ops::Conv2d;
use rayon::prelude::*;

/// Target size (in floats) of one im2col chunk: about 256 KiB, an L2-sized working set.
const CHUNK_FLOATS: usize = 64 * 1024;
/// Fewest output rows worth a task of their own.
const MIN_TASK_ROWS: usize = 32;

#[derive(Debug, Clone)]
enum Impl {
    /// `groups == 1`: indirect GEMM on packed panels.
    Igemm {
        panels: Panels,
        /// A zero row standing for taps in the padding.
        zeros: Vec<f32>,
    },
    /// Grouped convolution: im2col + GEMM per group.
    Gemm {
        /// Per group, `[K, cout_g]` row-major with `K = kh·kw·cin_g`.
        weights: Vec<f32>,
        bias: Option<Vec<f32>>,
    },
    Depthwise(PackedDepthwise),
}

/// A Conv2d with its weights packed for the GEMM kernel.
#[derive(Debug, Clone)]
pub struct PackedConv {
    geo: ConvGeometry,
    cin: usize,
    cout: usize,
    groups: usize,
    epilogue: Epilogue,
    imp: Impl,
}

impl PackedConv {
    /// Packs OHWI `weight` (`[Cout, KH, KW, Cin/groups]`) and the optional `[Cout]` bias; the
    /// epilogue starts as the attribute's fused activation.
    pub fn new(
        attrs: &Conv2d,
        weight: &[f32],
        weight_shape: &[usize],
        bias: Option<&[f32]>,
    ) -> Result<PackedConv> {
        const OP: &str = "Conv2d";
        let &[cout, kh, kw, cin_g] = weight_shape else {
            return Err(invalid(
                OP,
                format!("weight must be 4-D OHWI, got {weight_shape:?}"),
            ));
        };
        let groups = attrs.groups;
        if groups == 0 || cout % groups != 0 {
            return Err(invalid(
                OP,
                format!("{groups} groups do not divide {cout} output channels"),
            ));
        }
        check_len(OP, "weight", weight.len(), cout * kh * kw * cin_g)?;
        if let Some(b) = bias {
            check_len(OP, "bias", b.len(), cout)?;
        }
        let geo = ConvGeometry::new(OP, [kh, kw], attrs.strides, attrs.dilations, attrs.padding)?;
        let cin = cin_g * groups;
        let cout_g = cout / groups;
        let epilogue = Epilogue::new(attrs.activation);
        if cin_g == 1 && groups > 1 && groups == cin {
            // One input channel per group: output channel o = c·m + j reads input c, exactly the
            // depthwise layout; the weight [Cout, KH, KW, 1] becomes [KH, KW, Cout].
            let mut dw = vec![0.0; kh * kw * cout];
            for o in 0..cout {
                for t in 0..kh * kw {
                    dw[t * cout + o] = weight[o * kh * kw + t];
                }
            }
            let imp = Impl::Depthwise(PackedDepthwise::from_parts(
                geo.clone(),
                cin,
                cout_g,
                dw,
                bias.map(<[f32]>::to_vec),
                epilogue,
            ));
            return Ok(PackedConv {
                geo,
                cin,
                cout,
                groups,
                epilogue,
                imp,
            });
        }
        if groups == 1 {
            // Narrow layers waste less of a 16-wide panel than of a 32-wide one.
            let nr = if cout <= 16 { 16 } else { Panels::native_nr() };
            let panels = Panels::pack(weight, cout, kh * kw, cin, bias, nr);
            return Ok(PackedConv {
                geo,
                cin,
                cout,
                groups,
                epilogue,
                imp: Impl::Igemm {
                    panels,
                    zeros: vec![0.0; cin],
                },
            });
        }
        let k = kh * kw * cin_g;
        let mut packed = vec![0.0; groups * k * cout_g];
        for g in 0..groups {
            let dst = &mut packed[g * k * cout_g..(g + 1) * k * cout_g];
            for j in 0..cout_g {
                let src = &weight[(g * cout_g + j) * k..(g * cout_g + j + 1) * k];
                for (p, &v) in src.iter().enumerate() {
                    dst[p * cout_g + j] = v;
                }
            }
        }
        Ok(PackedConv {
            geo,
            cin,
            cout,
            groups,
            epilogue,
            imp: Impl::Gemm {
                weights: packed,
                bias: bias.map(<[f32]>::to_vec),
            },
        })
    }

    /// The epilogue applied to the output.
    pub fn epilogue(&self) -> Epilogue {
        self.epilogue
    }

    /// Replaces the epilogue (to fuse a following element-wise operator).
    pub fn set_epilogue(&mut self, e: Epilogue) {
        self.epilogue = e;
        if let Impl::Depthwise(d) = &mut self.imp {
            d.set_epilogue(e);
        }
    }

    /// Output shape for an NHWC input of shape `x_shape`.
    pub fn output_shape(&self, x_shape: &[usize]) -> Result<[usize; 4]> {
        let [n, h, w] = nhwc_with_channels("Conv2d", x_shape, self.cin)?;
        let [oh, ow] = self.geo.out_hw("Conv2d", h, w)?;
        Ok([n, oh, ow, self.cout])
    }

    fn is_pointwise(&self) -> bool {
        self.geo.is_pointwise()
    }

    /// Rows per task and per chunk for `m` output pixels on `threads` threads.
    fn plan(&self, m: usize, threads: usize) -> (usize, usize, usize) {
        let k = self.geo.kh * self.geo.kw * (self.cin / self.groups);
        let tasks = if threads <= 1 || m < 2 * MIN_TASK_ROWS {
            1
        } else {
            threads.min(m / MIN_TASK_ROWS)
        };
        let task_rows = m.div_ceil(tasks).max(1);
        let chunk = if tasks == 1 && threads > 1 {
            // One task, parallel GEMM: make the chunk as large as the budget allows.
            (4 * CHUNK_FLOATS / k.max(1)).max(16)
        } else {
            (CHUNK_FLOATS / k.max(1)).clamp(16, 1024)
        }
        .min(task_rows);
        (tasks, task_rows, chunk)
    }

    /// Scratch elements [`PackedConv::run`] needs for this input on `threads` threads.
    pub fn scratch_len(&self, x_shape: &[usize], threads: usize) -> usize {
        if self.is_pointwise() || !matches!(self.imp, Impl::Gemm { .. }) {
            return 0;
        }
        let Ok([n, oh, ow, _]) = self.output_shape(x_shape) else {
            return 0;
        };
        let k = self.geo.kh * self.geo.kw * (self.cin / self.groups);
        let (tasks, _, chunk) = self.plan(n * oh * ow, threads);
        tasks * chunk * k
    }

    /// Runs the convolution: `x` NHWC, `out` NHWC of [`PackedConv::output_shape`]; `scratch`
    /// holds at least [`PackedConv::scratch_len`] elements (fewer threads are used if it is
    /// shorter).
    pub fn run(
        &self,
        x: &[f32],
        x_shape: &[usize],
        out: &mut [f32],
        scratch: &mut [f32],
    ) -> Result<()> {
        self.run_with(x, x_shape, out, scratch, &self.epilogue)
    }

    /// [`PackedConv::run`] with another epilogue (the packed weights can then be shared by
    /// plans that fuse differently).
    pub fn run_with(
        &self,
        x: &[f32],
        x_shape: &[usize],
        out: &mut [f32],
        scratch: &mut [f32],
        epilogue: &Epilogue,
    ) -> Result<()> {
        const OP: &str = "Conv2d";
        let [n, oh, ow, cout] = self.output_shape(x_shape)?;
        check_len(OP, "input", x.len(), x_shape.iter().product())?;
        check_len(OP, "output", out.len(), n * oh * ow * cout)?;
        let (weights, bias) = match &self.imp {
            Impl::Depthwise(d) => return d.run_with(x, x_shape, out, epilogue),
            Impl::Igemm { panels, zeros } => {
                self.run_igemm(panels, zeros, x, x_shape, [n, oh, ow], out, epilogue);
                return Ok(());
            }
            Impl::Gemm { weights, bias } => (weights, bias.as_deref()),
        };
        let m = n * oh * ow;
        if m == 0 || cout == 0 {
            return Ok(());
        }
        let threads = rayon::current_num_threads();
        let (mut tasks, mut task_rows, chunk) = self.plan(m, threads);
        let pointwise = self.is_pointwise();
        let k = self.geo.kh * self.geo.kw * (self.cin / self.groups);
        let per_task = if pointwise { 0 } else { chunk * k };
        if per_task > 0 && scratch.len() < tasks * per_task {
            tasks = (scratch.len() / per_task).max(1);
            if scratch.len() < per_task {
                return Err(invalid(
                    OP,
                    format!("scratch has {} elements, needs {per_task}", scratch.len()),
                ));
            }
            task_rows = m.div_ceil(tasks);
        }
        let ctx = Ctx {
            conv: self,
            x,
            h: x_shape[1],
            w: x_shape[2],
            oh,
            ow,
            weights,
            bias,
            chunk,
            k,
            pointwise,
            epilogue,
            parallel_gemm: tasks == 1 && threads > 1,
        };
        if tasks == 1 {
            ctx.task(0, out, &mut scratch[..per_task]);
        } else {
            let scratch = &mut scratch[..tasks * per_task];
            let scratch_chunks: Vec<&mut [f32]> = if per_task == 0 {
                (0..tasks).map(|_| <&mut [f32]>::default()).collect()
            } else {
                scratch.chunks_mut(per_task).collect()
            };
            out.par_chunks_mut(task_rows * cout)
                .zip(scratch_chunks)
                .enumerate()
                .for_each(|(t, (o, s))| ctx.task(t * task_rows, o, s));
        }
        Ok(())
    }
}

impl PackedConv {
    /// The indirect-GEMM path (`groups == 1`), parallel over blocks of output pixels.
    #[allow(clippy::too_many_arguments)]
    fn run_igemm(
        &self,
        panels: &Panels,
        zeros: &[f32],
        x: &[f32],
        x_shape: &[usize],
        [n, oh, ow]: [usize; 3],
        out: &mut [f32],
        epilogue: &Epilogue,
    ) {
        let cout = self.cout;
        let m = n * oh * ow;
        if m == 0 || cout == 0 {
            return;
        }
        let k = panels.taps * panels.cin;
        // Pixels per chunk: their input rows (≈ chunk · K floats) stay in L2 while every
        // panel sweeps over them.
        let chunk = ((CHUNK_FLOATS * 2) / k.max(1)).clamp(MR, 64 * MR) / MR * MR;
        let blocks = m.div_ceil(MR);
        let threads = rayon::current_num_threads();
        // Two tasks per thread let work stealing even out a busy core, unless the weights are
        // too large to be re-read by every task from the shared cache.
        let per_thread = if k * cout * 4 <= (1 << 20) { 2 } else { 1 };
        let tasks = if threads <= 1 || m * k * cout < (1 << 18) {
            1
        } else {
            (threads * per_thread).min(blocks)
        };
        let task_rows = blocks.div_ceil(tasks) * MR;
        let level = crate::simd::level();
        let ctx = IgemmCtx {
            conv: self,
            panels,
            zeros,
            x,
            h: x_shape[1],
            w: x_shape[2],
            oh,
            ow,
            m,
            chunk,
            level,
            epilogue,
            tap_offsets: (0..self.geo.kh)
                .flat_map(|ky| {
                    let (w, cin, d) = (x_shape[2], self.cin, self.geo.dilations);
                    (0..self.geo.kw).map(move |kx| (ky * d[0] * w + kx * d[1]) * cin)
                })
                .collect(),
        };
        if tasks == 1 {
            ctx.task(0, out);
        } else {
            out.par_chunks_mut(task_rows * cout)
                .enumerate()
                .for_each(|(t, o)| ctx.task(t * task_rows, o));
        }
    }
}

/// Everything an indirect-GEMM task needs.
struct IgemmCtx<'a> {
    conv: &'a PackedConv,
    panels: &'a Panels,
    zeros: &'a [f32],
    x: &'a [f32],
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    m: usize,
    chunk: usize,
    level: crate::simd::Level,
    epilogue: &'a Epilogue,
    /// Offset of each tap from the window's top-left input element.
    tap_offsets: Vec<usize>,
}

impl IgemmCtx<'_> {
    /// Receptive field of pixel `p`: for every tap, the input row or the zero row.
    fn push_rows<'s>(&'s self, p: usize, rows: &mut Vec<&'s [f32]>) {
        let g = &self.conv.geo;
        let cin = self.conv.cin;
        let plane = self.oh * self.ow;
        let (b, oy, ox) = (p / plane, (p % plane) / self.ow, p % self.ow);
        let iy0 = (oy * g.strides[0]) as isize - g.padding.top as isize;
        let ix0 = (ox * g.strides[1]) as isize - g.padding.left as isize;
        let iy1 = iy0 + ((g.kh - 1) * g.dilations[0]) as isize;
        let ix1 = ix0 + ((g.kw - 1) * g.dilations[1]) as isize;
        if iy0 >= 0 && ix0 >= 0 && iy1 < self.h as isize && ix1 < self.w as isize {
            // Interior pixel: every tap is a fixed offset from the window's corner.
            let base = ((b * self.h + iy0 as usize) * self.w + ix0 as usize) * cin;
            for &off in &self.tap_offsets {
                rows.push(&self.x[base + off..base + off + cin]);
            }
            return;
        }
        for ky in 0..g.kh {
            let iy = iy0 + (ky * g.dilations[0]) as isize;
            for kx in 0..g.kw {
                let ix = ix0 + (kx * g.dilations[1]) as isize;
                if iy < 0 || ix < 0 || iy >= self.h as isize || ix >= self.w as isize {
                    rows.push(&self.zeros[..cin]);
                } else {
                    let at = ((b * self.h + iy as usize) * self.w + ix as usize) * cin;
                    rows.push(&self.x[at..at + cin]);
                }
            }
        }
    }

    /// Receptive fields of `count` consecutive pixels from `p`, walking output rows without
    /// divisions; the channel copies are unrolled for the usual 1–4 input channels.
    fn copy_fields(&self, p: usize, count: usize, dst: &mut [f32]) {
        match self.conv.cin {
            1 => self.copy_fields_n::<1>(p, count, dst),
            2 => self.copy_fields_n::<2>(p, count, dst),
            3 => self.copy_fields_n::<3>(p, count, dst),
            4 => self.copy_fields_n::<4>(p, count, dst),
            _ => {
                let k = dst.len() / count.max(1);
                for (i, d) in dst.chunks_exact_mut(k).enumerate() {
                    self.copy_field(p + i, d);
                }
            }
        }
    }

    fn copy_fields_n<const C: usize>(&self, p: usize, count: usize, dst: &mut [f32]) {
        let g = &self.conv.geo;
        let k = g.kh * g.kw * C;
        let mut at = PixelCursor::at(p, self.oh, self.ow);
        let (h, w) = (self.h as isize, self.w as isize);
        for field in dst.chunks_exact_mut(k).take(count) {
            let PixelCursor { n: b, oy, ox, .. } = at;
            let iy0 = (oy * g.strides[0]) as isize - g.padding.top as isize;
            let ix0 = (ox * g.strides[1]) as isize - g.padding.left as isize;
            let mut taps = field.chunks_exact_mut(C);
            for ky in 0..g.kh {
                let iy = iy0 + (ky * g.dilations[0]) as isize;
                let row = (b * self.h) as isize + iy;
                for kx in 0..g.kw {
                    let ix = ix0 + (kx * g.dilations[1]) as isize;
                    let Some(t) = taps.next() else { return };
                    let t: &mut [f32; C] = match t.try_into() {
                        Ok(t) => t,
                        Err(_) => return,
                    };
                    if iy < 0 || ix < 0 || iy >= h || ix >= w {
                        *t = [0.0; C];
                    } else {
                        let at = (row * w + ix) as usize * C;
                        if let Ok(src) = <&[f32; C]>::try_from(&self.x[at..at + C]) {
                            *t = *src;
                        }
                    }
                }
            }
            at.advance();
        }
    }

    /// Copies the receptive field of pixel `p` (zeros in the padding) into `dst` (K long),
    /// element by element: the rows are only a few channels long.
    fn copy_field(&self, p: usize, dst: &mut [f32]) {
        let g = &self.conv.geo;
        let cin = self.conv.cin;
        let plane = self.oh * self.ow;
        let (b, oy, ox) = (p / plane, (p % plane) / self.ow, p % self.ow);
        let iy0 = (oy * g.strides[0]) as isize - g.padding.top as isize;
        let ix0 = (ox * g.strides[1]) as isize - g.padding.left as isize;
        let iy1 = iy0 + ((g.kh - 1) * g.dilations[0]) as isize;
        let ix1 = ix0 + ((g.kw - 1) * g.dilations[1]) as isize;
        if iy0 >= 0 && ix0 >= 0 && iy1 < self.h as isize && ix1 < self.w as isize {
            let base = ((b * self.h + iy0 as usize) * self.w + ix0 as usize) * cin;
            for (field, &off) in dst.chunks_exact_mut(cin).zip(&self.tap_offsets) {
                for (v, &s) in field.iter_mut().zip(&self.x[base + off..base + off + cin]) {
                    *v = s;
                }
            }
            return;
        }
        let mut d = 0;
        for ky in 0..g.kh {
            let iy = iy0 + (ky * g.dilations[0]) as isize;
            for kx in 0..g.kw {
                let ix = ix0 + (kx * g.dilations[1]) as isize;
                let field = &mut dst[d..d + cin];
                if iy < 0 || ix < 0 || iy >= self.h as isize || ix >= self.w as isize {
                    field.iter_mut().for_each(|v| *v = 0.0);
                } else {
                    let at = ((b * self.h + iy as usize) * self.w + ix as usize) * cin;
                    for (v, &s) in field.iter_mut().zip(&self.x[at..at + cin]) {
                        *v = s;
                    }
                }
                d += cin;
            }
        }
    }

    /// Output pixels `p0..p0 + out.len() / cout`, in chunks whose input rows stay in cache
    /// while every weight panel passes over them.
    fn task(&self, p0: usize, out: &mut [f32]) {
        let cout = self.conv.cout;
        let nr = self.panels.nr;
        let (taps, cin) = (self.panels.taps, self.panels.cin);
        let k = taps * cin;
        // Few input channels: copy each receptive field contiguously so the kernel runs one
        // long loop over K instead of many short per-tap loops.
        let contiguous = taps > 1 && cin < 16;
        let rows_total = out.len() / cout;
        let blocks_per_chunk = self.chunk / MR;
        let per_pixel = if contiguous { 1 } else { taps };
        let mut rows: Vec<&[f32]> = Vec::with_capacity(blocks_per_chunk * MR * taps);
        let mut fields: Vec<f32> = if contiguous {
            vec![0.0; blocks_per_chunk * MR * k]
        } else {
            Vec::new()
        };
        let mut tile = [0.0f32; MR * 32];
        let mut c0 = 0;
        while c0 < rows_total {
            let c1 = (c0 + self.chunk).min(rows_total);
            let n_blocks = (c1 - c0).div_ceil(MR);
            // Receptive fields of every pixel of the chunk (pixels past the end repeat the
            // last one; their results are dropped).
            let pixel = |i: usize| (p0 + (c0 + i).min(c1 - 1)).min(self.m - 1);
            if contiguous {
                self.copy_fields(p0 + c0, c1 - c0, &mut fields[..(c1 - c0) * k]);
                // Pad the last block by repeating the last pixel.
                for i in (c1 - c0)..n_blocks * MR {
                    self.copy_field(pixel(i), &mut fields[i * k..(i + 1) * k]);
                }
            } else {
                rows.clear();
                for i in 0..n_blocks * MR {
                    self.push_rows(pixel(i), &mut rows);
                }
            }
            let shape = if contiguous { (1, k) } else { (taps, cin) };
            for pnl in 0..self.panels.n_panels() {
                let j0 = pnl * nr;
                let cols = nr.min(cout - j0);
                for blk in 0..n_blocks {
                    let r = c0 + blk * MR;
                    let valid = MR.min(c1 - r);
                    let fields_rows: [&[f32]; MR];
                    let brows: &[&[f32]] = if contiguous {
                        let base = blk * MR * k;
                        fields_rows =
                            std::array::from_fn(|i| &fields[base + i * k..base + (i + 1) * k]);
                        &fields_rows
                    } else {
                        &rows[blk * MR * per_pixel..(blk + 1) * MR * per_pixel]
                    };
                    if valid == MR && cols == nr {
                        let dst = &mut out[r * cout + j0..];
                        self.panels.tile(self.level, pnl, shape, brows, dst, cout);
                    } else {
                        let t = &mut tile[..MR * nr];
                        self.panels.tile(self.level, pnl, shape, brows, t, nr);
                        for i in 0..valid {
                            out[(r + i) * cout + j0..(r + i) * cout + j0 + cols]
                                .copy_from_slice(&t[i * nr..i * nr + cols]);
                        }
                    }
                }
            }
            self.epilogue
                .apply_rows(&mut out[c0 * cout..c1 * cout], cout, None);
            c0 = c1;
        }
    }
}

/// Everything a task needs.
struct Ctx<'a> {
    conv: &'a PackedConv,
    x: &'a [f32],
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    weights: &'a [f32],
    bias: Option<&'a [f32]>,
    chunk: usize,
    k: usize,
    pointwise: bool,
    epilogue: &'a Epilogue,
    parallel_gemm: bool,
}

impl Ctx<'_> {
    /// Computes output rows `row0..row0 + out.len() / cout`.
    fn task(&self, row0: usize, out: &mut [f32], scratch: &mut [f32]) {
        let c = self.conv;
        let cout = c.cout;
        let groups = c.groups;
        let cin_g = c.cin / groups;
        let cout_g = cout / groups;
        let rows = out.len() / cout;
        let mut r = 0;
        while r < rows {
            let n_rows = self.chunk.min(rows - r);
            let dst = &mut out[r * cout..(r + n_rows) * cout];
            for g in 0..groups {
                let wg = &self.weights[g * self.k * cout_g..(g + 1) * self.k * cout_g];
                let dst_g = &mut dst[g * cout_g..];
                if self.pointwise {
                    let a = &self.x[(row0 + r) * c.cin + g * cin_g..];
                    sgemm(
                        n_rows,
                        cout_g,
                        cin_g,
                        a,
                        c.cin,
                        wg,
                        cout_g,
                        dst_g,
                        cout,
                        false,
                        self.parallel_gemm,
                    );
                } else {
                    let col = &mut scratch[..n_rows * self.k];
                    self.im2col(row0 + r, n_rows, g, col);
                    sgemm(
                        n_rows,
                        cout_g,
                        self.k,
                        col,
                        self.k,
                        wg,
                        cout_g,
                        dst_g,
                        cout,
                        false,
                        self.parallel_gemm,
                    );
                }
            }
            self.epilogue.apply_rows(dst, cout, self.bias);
            r += n_rows;
        }
    }

    /// Copies the receptive fields of output pixels `p0..p0 + rows` (group `g`) into `col`.
    fn im2col(&self, p0: usize, rows: usize, g: usize, col: &mut [f32]) {
        let c = self.conv;
        let geo = &c.geo;
        let cin_g = c.cin / c.groups;
        let (kh, kw) = (geo.kh, geo.kw);
        let [sh, sw] = geo.strides;
        let [dh, dw] = geo.dilations;
        let (pt, pl) = (geo.padding.top as isize, geo.padding.left as isize);
        let contiguous_taps = dw == 1 && cin_g == c.cin;
        let plane = self.oh * self.ow;
        for (i, dst) in col.chunks_exact_mut(self.k).take(rows).enumerate() {
            let p = p0 + i;
            let n = p / plane;
            let oy = (p % plane) / self.ow;
            let ox = p % self.ow;
            let ix0 = (ox * sw) as isize - pl;
            // Valid kx: 0 <= ix0 + kx*dw < w.
            let kx_lo = if ix0 >= 0 {
                0
            } else {
                ((-ix0) as usize).div_ceil(dw)
            }
            .min(kw);
            let kx_hi = if (self.w as isize) <= ix0 {
                0
            } else {
                ((self.w as isize - ix0) as usize).div_ceil(dw).min(kw)
            }
            .max(kx_lo);
            for ky in 0..kh {
                let iy = (oy * sh) as isize - pt + (ky * dh) as isize;
                let row = &mut dst[ky * kw * cin_g..(ky + 1) * kw * cin_g];
                if iy < 0 || iy >= self.h as isize {
                    row.fill(0.0);
                    continue;
                }
                row[..kx_lo * cin_g].fill(0.0);
                row[kx_hi * cin_g..].fill(0.0);
                if kx_hi == kx_lo {
                    continue;
                }
                let base = (n * self.h + iy as usize) * self.w;
                if contiguous_taps {
                    let ix = (ix0 + kx_lo as isize) as usize;
                    let len = (kx_hi - kx_lo) * cin_g;
                    row[kx_lo * cin_g..kx_hi * cin_g]
                        .copy_from_slice(&self.x[(base + ix) * c.cin..(base + ix) * c.cin + len]);
                } else {
                    for kx in kx_lo..kx_hi {
                        let ix = (ix0 + (kx * dw) as isize) as usize;
                        let src = (base + ix) * c.cin + g * cin_g;
                        row[kx * cin_g..(kx + 1) * cin_g]
                            .copy_from_slice(&self.x[src..src + cin_g]);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::float::testutil::data;
    use ipukit_ir::ops::FusedActivation;
    use ipukit_ir::ops::Padding2d;
    use proptest::prelude::*;

    /// Direct definition: out[n,oy,ox,o] = b[o] + Σ x[n, oy·s−p+ky·d, ox·s−p+kx·d, g·cin_g+i] · w[o,ky,kx,i].
    fn naive(
        attrs: &Conv2d,
        x: &[f32],
        xs: [usize; 4],
        w: &[f32],
        ws: [usize; 4],
        bias: Option<&[f32]>,
    ) -> (Vec<usize>, Vec<f32>) {
        let [n, h, wd, _cin] = xs;
        let [cout, kh, kw, cin_g] = ws;
        let g = attrs.groups;
        let cout_g = cout / g;
        let p = attrs.padding;
        let oh = (h + p.top + p.bottom - attrs.dilations[0] * (kh - 1) - 1) / attrs.strides[0] + 1;
        let ow = (wd + p.left + p.right - attrs.dilations[1] * (kw - 1) - 1) / attrs.strides[1] + 1;
        let cin = cin_g * g;
        let mut out = vec![0.0; n * oh * ow * cout];
        for b in 0..n {
            for oy in 0..oh {
                for ox in 0..ow {
                    for o in 0..cout {
                        let grp = o / cout_g;
                        let mut acc = bias.map_or(0.0, |bb| bb[o]) as f64;
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let iy = (oy * attrs.strides[0] + ky * attrs.dilations[0]) as isize
                                    - p.top as isize;
                                let ix = (ox * attrs.strides[1] + kx * attrs.dilations[1]) as isize
                                    - p.left as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                    continue;
                                }
                                for i in 0..cin_g {
                                    let xv = x[((b * h + iy as usize) * wd + ix as usize) * cin
                                        + grp * cin_g
                                        + i];
                                    let wv = w[((o * kh + ky) * kw + kx) * cin_g + i];
                                    acc += xv as f64 * wv as f64;
                                }
                            }
                        }
                        out[((b * oh + oy) * ow + ox) * cout + o] =
                            attrs.activation.apply(acc as f32);
                    }
                }
            }
        }
        (vec![n, oh, ow, cout], out)
    }

    fn check(
        attrs: Conv2d,
        xs: [usize; 4],
        ws: [usize; 4],
        with_bias: bool,
        threads: usize,
    ) -> std::result::Result<(), TestCaseError> {
        let x = data(xs.iter().product(), 1);
        let w = data(ws.iter().product(), 2);
        let b = data(ws[0], 3);
        let bias = with_bias.then_some(b.as_slice());
        let (shape, want) = naive(&attrs, &x, xs, &w, ws, bias);
        let packed = PackedConv::new(&attrs, &w, &ws, bias).unwrap();
        prop_assert_eq!(packed.output_shape(&xs).unwrap().to_vec(), shape);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let mut out = vec![f32::NAN; want.len()];
        let mut scratch = vec![0.0; packed.scratch_len(&xs, threads)];
        pool.install(|| packed.run(&x, &xs, &mut out, &mut scratch))
            .unwrap();
        for (i, (g, w)) in out.iter().zip(&want).enumerate() {
            prop_assert!(
                (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
                "at {}: {} vs {}",
                i,
                g,
                w
            );
        }
        Ok(())
    }

    prop_compose! {
        fn conv_case()(
            groups in 1usize..4, cin_g in 1usize..6, cout_g in 1usize..6,
            kh in 1usize..4, kw in 1usize..4, sh in 1usize..3, sw in 1usize..3,
            dh in 1usize..3, dw in 1usize..3, pads in proptest::array::uniform4(0usize..3),
            n in 1usize..3, h in 1usize..9, w in 1usize..9, relu in any::<bool>(),
            bias in any::<bool>(), threads in 1usize..4,
        ) -> (Conv2d, [usize; 4], [usize; 4], bool, usize) {
            let attrs = Conv2d {
                strides: [sh, sw],
                dilations: [dh, dw],
                padding: Padding2d { top: pads[0], left: pads[1], bottom: pads[2], right: pads[3] },
                groups,
                activation: if relu { FusedActivation::Relu } else { FusedActivation::None },
            };
            // Make sure the kernel fits.
            let h = h.max(dh * (kh - 1) + 1);
            let w = w.max(dw * (kw - 1) + 1);
            (attrs, [n, h, w, cin_g * groups], [cout_g * groups, kh, kw, cin_g], bias, threads)
        }
    }

    proptest! {
        #[test]
        fn matches_naive((attrs, xs, ws, bias, threads) in conv_case()) {
            check(attrs, xs, ws, bias, threads)?;
        }
    }

    fn plain(stride: usize, pad: usize, groups: usize) -> Conv2d {
        Conv2d {
            strides: [stride, stride],
            dilations: [1, 1],
            padding: Padding2d {
                top: pad,
                left: pad,
                bottom: pad,
                right: pad,
            },
            groups,
            activation: FusedActivation::Relu6,
        }
    }

    #[test]
    fn realistic_shapes_use_every_path() {
        // Pointwise over many rows (row-split tasks), 3x3 with chunked im2col, strided 3x3,
        // depthwise-as-grouped, and a tiny deep layer (parallel GEMM path).
        check(plain(1, 0, 1), [1, 40, 40, 24], [40, 1, 1, 24], true, 2).unwrap();
        check(plain(1, 1, 1), [1, 40, 40, 16], [32, 3, 3, 16], true, 2).unwrap();
        check(plain(2, 1, 1), [2, 21, 19, 8], [16, 3, 3, 8], false, 3).unwrap();
        check(plain(1, 1, 12), [1, 10, 10, 12], [24, 3, 3, 1], true, 2).unwrap();
        check(plain(1, 1, 1), [1, 5, 5, 64], [48, 3, 3, 64], true, 2).unwrap();
        check(plain(1, 0, 4), [1, 12, 12, 32], [16, 1, 1, 8], true, 2).unwrap();
    }

    #[test]
    fn short_scratch_falls_back_to_fewer_tasks_or_errors() {
        let attrs = plain(1, 1, 2); // grouped: the im2col path
        let xs = [1, 40, 40, 8];
        let ws = [8, 3, 3, 4];
        let x = data(12800, 4);
        let w = data(288, 5);
        let packed = PackedConv::new(&attrs, &w, &ws, None).unwrap();
        let need = packed.scratch_len(&xs, 2);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let mut full = vec![0.0; 12800];
        let mut half = vec![0.0; 12800];
        pool.install(|| packed.run(&x, &xs, &mut full, &mut vec![0.0; need]))
            .unwrap();
        pool.install(|| packed.run(&x, &xs, &mut half, &mut vec![0.0; need / 2]))
            .unwrap();
        assert_eq!(full, half);
        assert!(pool
            .install(|| packed.run(&x, &xs, &mut half, &mut []))
            .is_err());
    }

    #[test]
    fn bad_shapes_are_errors() {
        let attrs = plain(1, 1, 1);
        assert!(PackedConv::new(&attrs, &[0.0; 10], &[2, 3, 3, 1], None).is_err());
        let packed = PackedConv::new(&attrs, &[0.0; 18], &[2, 3, 3, 1], None).unwrap();
        assert!(packed.output_shape(&[1, 4, 4, 2]).is_err());
        assert!(packed.output_shape(&[1, 4, 4]).is_err());
        let mut out = vec![0.0; 3];
        assert!(packed
            .run(&[0.0; 16], &[1, 4, 4, 1], &mut out, &mut [])
            .is_err());
    }
}
