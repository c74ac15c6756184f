//! Pointwise tensor operations with the values and gradient conventions of `spec/energy.md`.
//!
//! Every function takes and returns `f32` tensors of shape `[S, T]`, where `S` is 1 or the
//! sample count and `T` is 1 or the step count `H + 1`. Binary operations broadcast. Where
//! candle's own backward pass differs from the conventions (the derivative of `|a|`, of `√a`
//! at 0), the operation is built so that autograd yields the convention.

use candle_core::{D, DType, Result, Shape, Tensor};

/// Computes the shape that `tensors` broadcast to.
pub fn common_shape(tensors: &[&Tensor]) -> Result<Shape> {
    let mut shape = tensors[0].shape().clone();
    for t in &tensors[1..] {
        shape = shape.broadcast_shape_binary_op(t.shape(), "broadcast")?;
    }
    Ok(shape)
}

/// `1` (u8) where `x` is finite, `0` where it is NaN or infinite.
pub fn finite_mask(x: &Tensor) -> Result<Tensor> {
    x.abs()?.lt(f64::INFINITY)
}

/// `1` (u8) where `x` is NaN.
pub fn nan_mask(x: &Tensor) -> Result<Tensor> {
    x.ne(x)
}

/// Creates a tensor of `shape` filled with `value`, on the device of `like`.
pub fn filled(value: f32, shape: &Shape, like: &Tensor) -> Result<Tensor> {
    Tensor::full(value, shape, like.device())
}

/// `|a|` as `a · sign(a)`: candle treats `sign` as a constant, so the derivative is
/// `sign(a)`, which is 0 at `a = 0` (candle's own `abs` has derivative 1 there).
pub fn abs(a: &Tensor) -> Result<Tensor> {
    a.mul(&a.sign()?)
}

/// `√a`, with derivative 0 at `a = 0` instead of infinity.
pub fn sqrt(a: &Tensor) -> Result<Tensor> {
    let zero = a.eq(0.0)?;
    let nonzero = zero.where_cond(&a.ones_like()?, a)?;
    zero.where_cond(&a.zeros_like()?, &nonzero.sqrt()?)
}

/// Exact `min(a, b)` (`max` with `maximum = true`): NaN when either is NaN, and half the
/// gradient to each operand at a tie.
pub fn extremum(a: &Tensor, b: &Tensor, maximum: bool) -> Result<Tensor> {
    let shape = common_shape(&[a, b])?;
    let (a, b) = (a.broadcast_as(&shape)?, b.broadcast_as(&shape)?);
    // candle's minimum and maximum return `a` when `b` is NaN.
    let value = if maximum { a.maximum(&b)? } else { a.minimum(&b)? };
    nan_mask(&b)?.where_cond(&b, &value)
}

/// `ln Σ exp(z)` along the last dimension, removing it: the overflow-free form with the
/// (detached) maximum subtracted. A maximum of ±∞ is not subtracted, so a `+∞` entry gives
/// `+∞`, all entries `−∞` give `−∞`, and a NaN entry gives NaN, as in the interpreter.
pub fn log_sum_exp(z: &Tensor) -> Result<Tensor> {
    let max = z.max_keepdim(D::Minus1)?.detach();
    let shift = finite_mask(&max)?.where_cond(&max, &max.zeros_like()?)?;
    let sum = z.broadcast_sub(&shift)?.exp()?.sum_keepdim(D::Minus1)?;
    sum.log()?.add(&shift)?.squeeze(D::Minus1)
}

/// `softmax_τ` (or `softmin_τ` with `maximum = false`) of `x` along its last dimension.
pub fn soft_extremum(x: &Tensor, temperature: f64, maximum: bool) -> Result<Tensor> {
    let sign = if maximum { 1.0 } else { -1.0 };
    log_sum_exp(&x.affine(sign / temperature, 0.0)?)?.affine(sign * temperature, 0.0)
}

/// `softmax_τ` or `softmin_τ` of several `[S, T]` arguments, element by element.
pub fn soft_extremum_of(args: &[Tensor], temperature: f64, maximum: bool) -> Result<Tensor> {
    let refs: Vec<&Tensor> = args.iter().collect();
    let shape = common_shape(&refs)?;
    let expanded = args.iter().map(|a| a.broadcast_as(&shape)).collect::<Result<Vec<_>>>()?;
    soft_extremum(&Tensor::stack(&expanded, D::Minus1)?, temperature, maximum)
}

/// `ln(1 + e)` for `e ≥ 0`, accurate for small `e` (where `1 + e` rounds): the classic
/// `ln(u) · e / (u − 1)` with `u = 1 + e`, or `e` itself where `u` rounds to 1.
fn log_one_plus(e: &Tensor) -> Result<Tensor> {
    let u = e.affine(1.0, 1.0)?;
    let rounds = u.eq(1.0)?;
    // A guarded denominator, so the unused branch has no 0/0 in its backward pass either.
    let denominator = rounds.where_cond(&u.ones_like()?, &u.affine(1.0, -1.0)?)?;
    let formula = u.log()?.mul(e)?.div(&denominator)?;
    rounds.where_cond(e, &formula)
}

/// `softplus_τ(a) = max(a, 0) + τ · ln(1 + exp(−|a| / τ))`. The derivative at `a = 0` is
/// `½`, the value of `σ_τ(0)`.
pub fn soft_plus(a: &Tensor, temperature: f64) -> Result<Tensor> {
    let magnitude = abs(a)?;
    let positive = a.add(&magnitude)?.affine(0.5, 0.0)?;
    let tail = log_one_plus(&magnitude.affine(-1.0 / temperature, 0.0)?.exp()?)?;
    positive.add(&tail.affine(temperature, 0.0)?)
}

/// `σ_τ(a) = 1 / (1 + exp(−a / τ))`, by candle-nn's sigmoid, which does not overflow in its
/// backward pass.
pub fn sigmoid(a: &Tensor, temperature: f64) -> Result<Tensor> {
    candle_nn::ops::sigmoid(&a.affine(1.0 / temperature, 0.0)?)
}

/// `‖a‖_ε = √(Σ aᵢ² + ε²)` of several `[S, T]` arguments.
pub fn norm(args: &[Tensor], epsilon: f64) -> Result<Tensor> {
    let mut squares = args[0].sqr()?;
    for a in &args[1..] {
        squares = squares.broadcast_add(&a.sqr()?)?;
    }
    let squares = squares.affine(1.0, epsilon * epsilon)?;
    if epsilon == 0.0 { sqrt(&squares) } else { squares.sqrt() }
}

/// `aⁿ` by repeated squaring, so the value is finite wherever `a` and the result are.
pub fn powi(a: &Tensor, n: i32) -> Result<Tensor> {
    if n == 0 {
        return a.ones_like();
    }
    let mut exponent = n.unsigned_abs();
    let mut base = a.clone();
    let mut result: Option<Tensor> = None;
    while exponent > 0 {
        if exponent & 1 == 1 {
            result = Some(match result {
                Some(r) => r.mul(&base)?,
                None => base.clone(),
            });
        }
        exponent >>= 1;
        if exponent > 0 {
            base = base.sqr()?;
        }
    }
    let positive = result.expect("n is nonzero");
    if n < 0 { positive.recip() } else { Ok(positive) }
}

/// `atan2(y, x)` in `(−π, π]`. candle 0.11 has no arctangent, so the value is computed on the
/// host (in `f64`, then rounded to `f32`), and the gradient `(x, −y) / (x² + y²)` is attached
/// with a surrogate term whose value is exactly 0. The gradient is 0 at the origin and
/// wherever an operand is not finite.
pub fn atan2(y: &Tensor, x: &Tensor) -> Result<Tensor> {
    let shape = common_shape(&[y, x])?;
    let (y, x) = (y.broadcast_as(&shape)?.contiguous()?, x.broadcast_as(&shape)?.contiguous()?);
    let ys = y.detach().flatten_all()?.to_vec1::<f32>()?;
    let xs = x.detach().flatten_all()?.to_vec1::<f32>()?;
    let angles: Vec<f32> = ys.iter().zip(&xs).map(|(&y, &x)| basin_compiler::energy::angle(y as f64, x as f64) as f32).collect();
    let value = Tensor::from_vec(angles, &shape, y.device())?;

    // Keep only finite operands, so the surrogate term is exactly 0.
    let zeros = y.zeros_like()?;
    let both_finite = finite_mask(&y)?.mul(&finite_mask(&x)?)?;
    let y_in = both_finite.where_cond(&y, &zeros)?;
    let x_in = both_finite.where_cond(&x, &zeros)?;
    let (yd, xd) = (y_in.detach(), x_in.detach());
    let radius2 = yd.sqr()?.add(&xd.sqr()?)?;
    let origin = radius2.eq(0.0)?;
    let safe_radius2 = origin.where_cond(&radius2.ones_like()?, &radius2)?;
    let slope_y = origin.where_cond(&zeros, &xd.div(&safe_radius2)?)?;
    let slope_x = origin.where_cond(&zeros, &yd.neg()?.div(&safe_radius2)?)?;
    let surrogate = y_in.sub(&yd)?.mul(&slope_y)?.add(&x_in.sub(&xd)?.mul(&slope_x)?)?;
    value.add(&surrogate)
}

/// `options[clamp(round(index), 0, m − 1)]`, NaN for a NaN index. The index gets no
/// gradient, and only the chosen option gets the gradient of the result.
pub fn select(index: &Tensor, options: &[Tensor]) -> Result<Tensor> {
    let mut refs: Vec<&Tensor> = options.iter().collect();
    refs.push(index);
    let shape = common_shape(&refs)?;
    let last = (options.len() - 1) as f64;
    let chosen = index.detach().round()?.clamp(0.0, last)?.broadcast_as(&shape)?;
    let mut result = filled(f32::NAN, &shape, index)?;
    for (i, option) in options.iter().enumerate() {
        result = chosen.eq(i as f64)?.where_cond(&option.broadcast_as(&shape)?, &result)?;
    }
    Ok(result)
}

/// `1` (u8) per row of `x` (`[N, …]`) where every entry is finite; all ones for rows with no
/// entries.
pub fn rows_finite(x: &Tensor) -> Result<Tensor> {
    let n = x.dim(0)?;
    let flat = x.reshape((n, ()))?;
    if flat.dim(1)? == 0 {
        return Tensor::ones(n, DType::U8, x.device());
    }
    finite_mask(&flat)?.min(1)
}
