//! Run-time choice of the instruction set for the integer kernels.
//!
//! Every integer kernel has a portable path ([`Isa::Scalar`], the reference the others are
//! tested against) and x86-64 paths picked at run time with `is_x86_feature_detected!`; no
//! `-C target-cpu` flag is needed. An [`Isa`] passed to a kernel is clamped to what the CPU
//! supports ([`Isa::clamp`]), so asking for more than the machine has is never unsafe.
//!
//! Hand-written micro-kernels (the convolution and matrix-product GEMMs, the requantization
//! epilogue) use the intrinsics of each level directly (AMX tile instructions, which have no
//! stable intrinsics, through `asm!`). Simple element-wise loops are written
//! once as `#[inline(always)]` functions and compiled once per level by [`multiversion!`], so
//! that LLVM vectorises them for AVX2 or AVX-512.

use std::sync::atomic::{AtomicU8, Ordering};

/// An instruction-set level of the integer kernels (ordered: a higher level can run every
/// lower one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Isa {
    /// Portable Rust for the compilation target's baseline; the reference semantics.
    Scalar,
    /// AVX2: 256-bit `vpmaddwd` (u8/i8 widened to i16; exact, unlike `vpmaddubsw`).
    Avx2,
    /// AVX-512F + AVX-512BW: 512-bit `vpmaddwd`.
    Avx512Bw,
    /// AVX-512 VNNI (with F and BW): `vpdpbusd` for u8 × i8 and `vpdpwssd` for i16 × i16,
    /// both wrapping (not saturating) 32-bit accumulations.
    Avx512Vnni,
    /// AMX-INT8 tiles (with AVX-512 VNNI, and the Linux permission to use tile data): the
    /// 16-bit mode's GEMM splits both INT16 operands into bytes and sums the four byte
    /// products with `tdpb{ss,su,us,uu}d`; the 8-bit mode's GEMM runs `tdpbusd` on the raw
    /// UINT8 inputs (VNNI below 16 rows); the other 8-bit kernels run as on
    /// [`Isa::Avx512Vnni`].
    Amx,
}

impl Isa {
    /// Every level, lowest first.
    pub const ALL: [Isa; 5] = [
        Isa::Scalar,
        Isa::Avx2,
        Isa::Avx512Bw,
        Isa::Avx512Vnni,
        Isa::Amx,
    ];

    /// The best level this CPU supports (detected once).
    #[inline]
    pub fn detect() -> Isa {
        static LEVEL: AtomicU8 = AtomicU8::new(u8::MAX);
        match LEVEL.load(Ordering::Relaxed) {
            0 => Isa::Scalar,
            1 => Isa::Avx2,
            2 => Isa::Avx512Bw,
            3 => Isa::Avx512Vnni,
            4 => Isa::Amx,
            _ => {
                let l = Self::probe();
                LEVEL.store(l as u8, Ordering::Relaxed);
                l
            }
        }
    }

    fn probe() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            if has!("avx512f") && has!("avx512bw") && has!("avx2") {
                if has!("avx512vnni") {
                    if amx_int8_usable() {
                        return Isa::Amx;
                    }
                    return Isa::Avx512Vnni;
                }
                return Isa::Avx512Bw;
            }
            if has!("avx2") {
                return Isa::Avx2;
            }
        }
        Isa::Scalar
    }

    /// True when this CPU can run the level.
    pub fn is_supported(self) -> bool {
        self <= Isa::detect()
    }

    /// The levels this CPU supports, lowest first.
    pub fn supported() -> impl Iterator<Item = Isa> {
        Isa::ALL.into_iter().filter(|i| i.is_supported())
    }

    /// The highest supported level not above `self`.
    #[inline]
    pub fn clamp(self) -> Isa {
        self.min(Isa::detect())
    }

    /// Short lower-case name (`scalar`, `avx2`, `avx512bw`, `avx512vnni`, `amx`).
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512Bw => "avx512bw",
            Isa::Avx512Vnni => "avx512vnni",
            Isa::Amx => "amx",
        }
    }
}

/// True when the CPU has AMX-TILE and AMX-INT8 and the kernel lets this process use tile data.
///
/// Linux enables the (large) tile state per process on request: `arch_prctl(
/// ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`, which fails on kernels or hypervisors that do
/// not support it. The request is made once (from [`Isa::detect`]) and covers every thread.
/// `IPUKIT_NO_AMX` (any value) in the environment disables the level.
#[cfg(target_arch = "x86_64")]
fn amx_int8_usable() -> bool {
    if std::env::var_os("IPUKIT_NO_AMX").is_some() {
        return false;
    }
    // CPUID leaf 7: EDX bit 24 AMX-TILE, bit 25 AMX-INT8 (the leaf exists on every CPU that
    // has AVX-512, checked by the caller).
    let l = std::arch::x86_64::__cpuid_count(7, 0);
    if (l.edx >> 24) & 3 != 3 {
        return false;
    }
    #[cfg(target_os = "linux")]
    {
        const SYS_ARCH_PRCTL: i64 = 158;
        const ARCH_REQ_XCOMP_PERM: i64 = 0x1023;
        const XFEATURE_XTILEDATA: i64 = 18;
        let r: i64;
        // SAFETY: the arch_prctl system call with these arguments only changes which extended
        // states the process may use; it reads and writes no user memory. `syscall` clobbers
        // rcx and r11 (declared) and returns in rax.
        unsafe {
            std::arch::asm!(
                "syscall",
                inlateout("rax") SYS_ARCH_PRCTL => r,
                in("rdi") ARCH_REQ_XCOMP_PERM,
                in("rsi") XFEATURE_XTILEDATA,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack, nomem),
            );
        }
        r == 0
    }
    #[cfg(not(target_os = "linux"))]
    false
}

impl std::fmt::Display for Isa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Defines `$vis fn $name(isa: Isa, args) -> ret` calling the `#[inline(always)]` function
/// `$body(args)` compiled for AVX-512BW, for AVX2, or for the baseline, as `isa` (clamped to
/// the CPU) says. Generic parameters with one bound each are allowed.
macro_rules! multiversion {
    ($(#[$m:meta])* $vis:vis fn $name:ident $(<$($g:ident : $b:path),+>)? = $body:ident ( $($arg:ident : $ty:ty),* $(,)? ) $(-> $ret:ty)?) => {
        $(#[$m])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name $(<$($g: $b),+>)? (isa: $crate::int::Isa, $($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw,avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                fn v4 $(<$($g: $b),+>)? ($($arg: $ty),*) $(-> $ret)? {
                    $body $(::<$($g),+>)? ($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                fn v3 $(<$($g: $b),+>)? ($($arg: $ty),*) $(-> $ret)? {
                    $body $(::<$($g),+>)? ($($arg),*)
                }
                match isa.clamp() {
                    // SAFETY: `clamp` returns a level the CPU supports; Avx512Bw and above
                    // imply avx512f, avx512bw and avx2 (fma accompanies them on every such CPU
                    // and is only a code-generation hint here: the bodies are integer loops).
                    $crate::int::Isa::Avx512Bw
                    | $crate::int::Isa::Avx512Vnni
                    | $crate::int::Isa::Amx => {
                        if std::arch::is_x86_feature_detected!("fma") {
                            return unsafe { v4 $(::<$($g),+>)? ($($arg),*) };
                        }
                    }
                    // SAFETY: as above, for avx2 (fma checked).
                    $crate::int::Isa::Avx2 => {
                        if std::arch::is_x86_feature_detected!("fma") {
                            return unsafe { v3 $(::<$($g),+>)? ($($arg),*) };
                        }
                    }
                    $crate::int::Isa::Scalar => {}
                }
            }
            let _ = isa;
            $body $(::<$($g),+>)? ($($arg),*)
        }
    };
}
pub(crate) use multiversion;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_ordered_and_clamped() {
        assert!(Isa::Scalar < Isa::Avx2 && Isa::Avx2 < Isa::Avx512Bw);
        assert!(Isa::Scalar.is_supported());
        assert_eq!(Isa::Amx.clamp(), Isa::detect());
        assert_eq!(Isa::Amx.to_string(), "amx");
        assert_eq!(Isa::supported().last(), Some(Isa::detect()));
        assert_eq!(Isa::Avx512Bw.to_string(), "avx512bw");
    }
}
