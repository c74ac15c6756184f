//! The Rust functions that generated code calls, registered with the JIT under fixed symbol
//! names.
//!
//! Cranelift has no transcendental functions, so `exp`, `ln` and the rest are calls. Each
//! helper is the `std` function the reference interpreter uses, so both backends get the same
//! bits from the same libm. The distance lookup calls [`DistanceGrid::sample`] itself.

use cranelift_codegen::ir::{AbiParam, Signature, types};
use cranelift_codegen::isa::CallConv;

use crate::energy::DistanceGrid;

/// A function the generated code may call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Helper {
    Exp,
    Ln,
    Ln1p,
    Sin,
    Cos,
    Tan,
    Atan2,
    Powi,
    Distance,
}

impl Helper {
    pub(super) const ALL: [Helper; 9] =
        [Helper::Exp, Helper::Ln, Helper::Ln1p, Helper::Sin, Helper::Cos, Helper::Tan, Helper::Atan2, Helper::Powi, Helper::Distance];

    /// Returns the symbol name the JIT resolves.
    pub(super) fn symbol(self) -> &'static str {
        match self {
            Helper::Exp => "basin_exp",
            Helper::Ln => "basin_ln",
            Helper::Ln1p => "basin_ln_1p",
            Helper::Sin => "basin_sin",
            Helper::Cos => "basin_cos",
            Helper::Tan => "basin_tan",
            Helper::Atan2 => "basin_atan2",
            Helper::Powi => "basin_powi",
            Helper::Distance => "basin_distance",
        }
    }

    pub(super) fn address(self) -> *const u8 {
        match self {
            Helper::Exp => exp as *const u8,
            Helper::Ln => ln as *const u8,
            Helper::Ln1p => ln_1p as *const u8,
            Helper::Sin => sin as *const u8,
            Helper::Cos => cos as *const u8,
            Helper::Tan => tan as *const u8,
            Helper::Atan2 => atan2 as *const u8,
            Helper::Powi => powi as *const u8,
            Helper::Distance => distance as *const u8,
        }
    }

    pub(super) fn signature(self, call_conv: CallConv) -> Signature {
        let mut sig = Signature::new(call_conv);
        let f64 = AbiParam::new(types::F64);
        let pointer = AbiParam::new(types::I64);
        let params: &[AbiParam] = match self {
            Helper::Atan2 => &[f64, f64],
            Helper::Powi => &[f64, AbiParam::new(types::I32)],
            Helper::Distance => &[pointer, f64, f64, pointer, pointer],
            _ => &[f64],
        };
        sig.params.extend_from_slice(params);
        sig.returns.push(f64);
        sig
    }
}

/// Below this argument `exp` rounds to +0. The smallest positive `f64`, 2⁻¹⁰⁷⁴, is
/// `exp(−744.44)`, and results under half of it round to 0.
const EXP_UNDERFLOW: f64 = -746.0;

/// Returns `x.exp()`, and +0 without calling libm for the arguments whose result rounds to 0.
/// glibc's `exp` returns the same +0 for them, but through a slow path that also sets
/// `errno`. With temperatures of 0.01 such arguments are common (`exp(−|a| / τ)` for any
/// `|a| > 7.5`).
extern "C" fn exp(x: f64) -> f64 {
    if x < EXP_UNDERFLOW { 0.0 } else { x.exp() }
}

extern "C" fn ln(x: f64) -> f64 {
    x.ln()
}

extern "C" fn ln_1p(x: f64) -> f64 {
    x.ln_1p()
}

extern "C" fn sin(x: f64) -> f64 {
    x.sin()
}

extern "C" fn cos(x: f64) -> f64 {
    x.cos()
}

extern "C" fn tan(x: f64) -> f64 {
    x.tan()
}

extern "C" fn atan2(y: f64, x: f64) -> f64 {
    crate::energy::angle(y, x)
}

extern "C" fn powi(x: f64, n: i32) -> f64 {
    x.powi(n)
}

/// Samples `grid` at `(x, y)` and returns the distance; writes `∂d/∂x` and `∂d/∂y` through
/// `slope_x` and `slope_y` unless they are null.
///
/// # Safety
///
/// `grid` must point to a live [`DistanceGrid`] that [`super::check_field`] accepted (so that
/// sampling cannot panic across the `extern "C"` boundary), and the slope pointers must be
/// null or valid for one `f64` write each.
unsafe extern "C" fn distance(grid: *const DistanceGrid, x: f64, y: f64, slope_x: *mut f64, slope_y: *mut f64) -> f64 {
    // SAFETY: the caller passes a grid from `Inputs::fields` that outlives the call.
    let sample = unsafe { &*grid }.sample(x, y);
    if !slope_x.is_null() {
        // SAFETY: non-null slope pointers point into the scratch buffer.
        unsafe {
            *slope_x = sample.slope_x;
            *slope_y = sample.slope_y;
        }
    }
    sample.value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_std_near_underflow() {
        // Around the cut, below it, and where the result is subnormal.
        for x in [-746.5, -746.0, -745.9, -745.2, -745.1, -744.0, -720.0, -1e300, f64::NEG_INFINITY, 0.0, 1.5] {
            assert_eq!(exp(x).to_bits(), x.exp().to_bits(), "exp({x})");
        }
    }

    #[test]
    fn exp_propagates_nan() {
        assert!(exp(f64::NAN).is_nan());
    }
}
