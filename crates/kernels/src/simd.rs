//! Run-time selection of the instruction set for hot loops.
//!
//! Hot loops are written once as `#[inline(always)] fn body<const FMA: bool>(…)` and compiled
//! three times by [`dispatch!`]: for AVX-512, for AVX2+FMA, and for the baseline target (no
//! FMA). The choice is made per call from cached CPU feature detection; `-C target-cpu=native`
//! is never needed. Tests force the baseline with [`force`] to check both paths agree.

use std::sync::atomic::{AtomicU8, Ordering};

/// An instruction-set level (ordered: a higher level supports everything a lower one does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Level {
    /// The compilation target's baseline (SSE2 on x86-64).
    Baseline = 1,
    /// AVX2 with FMA.
    Avx2 = 2,
    /// AVX-512F.
    Avx512 = 3,
}

static FORCED: AtomicU8 = AtomicU8::new(0);

/// Forces a level (tests only); `None` returns to detection.
#[cfg(test)]
pub(crate) fn force(level: Option<Level>) {
    FORCED.store(level.map_or(0, |l| l as u8), Ordering::Relaxed);
}

/// The level hot loops use now.
#[inline]
pub(crate) fn level() -> Level {
    let best = detected();
    match FORCED.load(Ordering::Relaxed) {
        1 => Level::Baseline,
        2 if best as u8 >= 2 => Level::Avx2,
        _ => best,
    }
}

/// The best level this CPU supports.
#[inline]
pub(crate) fn detected() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
        {
            return Level::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return Level::Avx2;
        }
    }
    Level::Baseline
}

/// `a * b + c`, fused when the loop is compiled with FMA.
#[inline(always)]
pub(crate) fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// Defines `$vis fn $name(args) -> ret` that calls `$body::<FMA>(args)` compiled for the best
/// instruction set available (see the module docs).
macro_rules! dispatch {
    ($(#[$m:meta])* $vis:vis fn $name:ident = $body:ident ( $($arg:ident : $ty:ty),* $(,)? ) $(-> $ret:ty)?) => {
        $(#[$m])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx2,fma")]
                fn v4($($arg: $ty),*) $(-> $ret)? {
                    $body::<true>($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                fn v3($($arg: $ty),*) $(-> $ret)? {
                    $body::<true>($($arg),*)
                }
                match $crate::simd::level() {
                    // SAFETY: `level()` reports Avx512 only when the CPU has avx512f, avx2 and
                    // fma.
                    $crate::simd::Level::Avx512 => return unsafe { v4($($arg),*) },
                    // SAFETY: as above, for avx2 and fma.
                    $crate::simd::Level::Avx2 => return unsafe { v3($($arg),*) },
                    $crate::simd::Level::Baseline => {}
                }
            }
            $body::<false>($($arg),*)
        }
    };
}
pub(crate) use dispatch;
