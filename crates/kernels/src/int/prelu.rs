//! PReLU as TFLite lowers it, `Add(Rescale_P(x), Mul(Rescale_N(x), slope))` with a per-channel
//! slope, in one pass over each row instead of four: for every element the integers of
//! [`super::qrescale`] (twice) and [`super::qbinary`] (`Mul`, then `Add`) on the same inputs.
//!
//! The four kernels each walk the tile; the `Mul` with a per-channel constant walks it one
//! row of `C` channels at a time, which for the few channels of small detectors (MTCNN: 10 to
//! 64) costs more than its arithmetic.

use super::arith::expand_requants;
use super::isa::multiversion;
use crate::error::{invalid, Result};
use ipukit_ir::ops::fixed::{OutRange, QBinary, QBinaryKind, QRescale, Requant};
use ipukit_ir::DType;

/// The parameters of the four operators of a PReLU block, per channel, in the form the
/// row loop wants (built by [`super::Tail::fuse_prelu`]).
#[derive(Debug, Clone)]
pub struct Prelu {
    pos: Side2,
    neg: Side2,
    slope: Vec<i32>,
    /// The `Mul`'s multiplier, rounding term, shift and output bounds (after its zero point).
    mul: Scalar,
    /// The `Add`'s multipliers of its operands and its rounding term, shift and bounds.
    add_ma: i64,
    add_mb: i64,
    add: Scalar,
    /// The `Add`'s operands are (`Mul`, rescale) rather than (rescale, `Mul`).
    swapped: bool,
}

/// `rshift_round(v, n) = (v + half) >> n` then `clamp(·, lo, hi) + z`, exact for `|v| < 2^62`.
#[derive(Debug, Clone, Copy)]
struct Scalar {
    m: i64,
    half: i64,
    n: i64,
    lo: i64,
    hi: i64,
    z: i64,
}

impl Scalar {
    fn new(m: i64, shift: u32, out: OutRange) -> Scalar {
        let z = out.zero_point as i64;
        Scalar {
            m,
            half: if shift > 0 { 1 << (shift - 1) } else { 0 },
            n: shift as i64,
            lo: out.min as i64 - z,
            hi: out.max as i64 - z,
            z,
        }
    }

    #[inline(always)]
    fn round_sat(&self, v: i64) -> i64 {
        ((v + self.half) >> self.n).max(self.lo).min(self.hi) + self.z
    }
}

/// One INT16 → INT16 `QRescale`: per channel, the multiplier, rounding term and shift for
/// `x − z_in ≥ 0` and for `x − z_in < 0`.
#[derive(Debug, Clone)]
struct Side2 {
    zin: i64,
    pm: Vec<i64>,
    ph: Vec<i64>,
    pn: Vec<i64>,
    nm: Vec<i64>,
    nh: Vec<i64>,
    nn: Vec<i64>,
    lo: i64,
    hi: i64,
    z: i64,
}

impl Side2 {
    fn new(r: &QRescale, c: usize) -> Option<Side2> {
        let ok = r.out_dtype == DType::I16
            && [r.positive.len(), r.negative.len()]
                .iter()
                .all(|&n| n == 1 || n == c)
            && r.positive.iter().chain(&r.negative).all(|q| valid(*q));
        if !ok {
            return None;
        }
        let (p, n) = (
            expand_requants(&r.positive, c),
            expand_requants(&r.negative, c),
        );
        let half = |q: &Requant| {
            if q.shift > 0 {
                1i64 << (q.shift - 1)
            } else {
                0
            }
        };
        let z = r.out.zero_point as i64;
        Some(Side2 {
            zin: r.input_zero_point as i64,
            pm: p.iter().map(|q| q.multiplier as i64).collect(),
            ph: p.iter().map(half).collect(),
            pn: p.iter().map(|q| q.shift as i64).collect(),
            nm: n.iter().map(|q| q.multiplier as i64).collect(),
            nh: n.iter().map(half).collect(),
            nn: n.iter().map(|q| q.shift as i64).collect(),
            lo: r.out.min as i64 - z,
            hi: r.out.max as i64 - z,
            z,
        })
    }
}

/// A multiplier the branch-free forms are exact for (`0 ≤ m < 2^31`, shift ≤ 62).
fn valid(q: Requant) -> bool {
    q.multiplier >= 0 && q.shift <= 62
}

impl Prelu {
    /// The block `Add(P(x), Mul(N(x), slope))` (either operand order of the `Add` and of the
    /// `Mul`) for `c` channels, or `None` when the operators do not have that form.
    pub(crate) fn new(
        c: usize,
        pos: &QRescale,
        neg: &QRescale,
        mul: &QBinary,
        slope: &[i16],
        add: &QBinary,
        swapped: bool,
    ) -> Option<Prelu> {
        let (QBinaryKind::Mul(m), QBinaryKind::Add { ma, mb, shift }) = (mul.kind, add.kind) else {
            return None;
        };
        if !valid(m) || ma < 0 || mb < 0 || shift > 62 {
            return None;
        }
        let slope = match slope.len() {
            1 => vec![slope[0] as i32; c],
            n if n == c => slope.iter().map(|&v| v as i32).collect(),
            _ => return None,
        };
        Some(Prelu {
            pos: Side2::new(pos, c)?,
            neg: Side2::new(neg, c)?,
            slope,
            mul: Scalar::new(m.multiplier as i64, m.shift, mul.out),
            add_ma: ma as i64,
            add_mb: mb as i64,
            add: Scalar::new(0, shift, add.out),
            swapped,
        })
    }

    /// Channels.
    pub(crate) fn channels(&self) -> usize {
        self.slope.len()
    }

    /// Runs on whole rows of `channels` elements.
    pub(crate) fn run(&self, isa: super::Isa, x: &[i16], out: &mut [i16]) -> Result<()> {
        let c = self.channels();
        if c == 0 || x.len() != out.len() || !x.len().is_multiple_of(c) {
            return Err(invalid(
                "PReLU block",
                format!(
                    "{} inputs and {} outputs in rows of {c}",
                    x.len(),
                    out.len()
                ),
            ));
        }
        prelu_rows(isa, self, x, out);
        Ok(())
    }
}

/// The rescale kernel's integer for `d = x − z_in` of a channel with the given parameters.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn side(d: i64, pm: i64, ph: i64, pn: i64, nm: i64, nh: i64, nn: i64, s: &Side2) -> i64 {
    let neg = d < 0;
    let (m, h, n) = if neg { (nm, nh, nn) } else { (pm, ph, pn) };
    // |d| < 2^17 and 0 ≤ m < 2^31: |d · m| < 2^48.
    ((d * m + h) >> n).max(s.lo).min(s.hi) + s.z
}

#[inline(always)]
fn prelu_rows_body(p: &Prelu, x: &[i16], out: &mut [i16]) {
    let c = p.slope.len();
    let (a, b) = (&p.pos, &p.neg);
    let (apm, aph, apn) = (&a.pm[..c], &a.ph[..c], &a.pn[..c]);
    let (anm, anh, ann) = (&a.nm[..c], &a.nh[..c], &a.nn[..c]);
    let (bpm, bph, bpn) = (&b.pm[..c], &b.ph[..c], &b.pn[..c]);
    let (bnm, bnh, bnn) = (&b.nm[..c], &b.nh[..c], &b.nn[..c]);
    let slope = &p.slope[..c];
    let (ma, mb) = if p.swapped {
        (p.add_mb, p.add_ma)
    } else {
        (p.add_ma, p.add_mb)
    };
    for (xr, or) in x.chunks_exact(c).zip(out.chunks_exact_mut(c)) {
        let (xr, or) = (&xr[..c], &mut or[..c]);
        for i in 0..c {
            let v = xr[i] as i64;
            let r = side(v - a.zin, apm[i], aph[i], apn[i], anm[i], anh[i], ann[i], a);
            let n = side(v - b.zin, bpm[i], bph[i], bpn[i], bnm[i], bnh[i], bnn[i], b);
            // |n · slope| ≤ 2^30 and the multiplier < 2^31: the product is below 2^61.
            let s = p.mul.round_sat(n * slope[i] as i64 * p.mul.m);
            // Operands of at most 2^16 in magnitude times multipliers below 2^31.
            or[i] = p.add.round_sat(r * ma + s * mb) as i16;
        }
    }
}

multiversion!(
    /// Rows of the PReLU block.
    fn prelu_rows = prelu_rows_body(p: &Prelu, x: &[i16], out: &mut [i16])
);
