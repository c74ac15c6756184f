//! Temporal nodes over whole `[S, T]` signals, `T = H + 1`: windowed `always` and
//! `eventually`, `until`, `sum` and `final`, with the window rules of `spec/energy.md`.
//!
//! The index tables depend only on the plan, so they are built once with the evaluator.

use basin_compiler::energy::window;
use candle_core::{D, DType, Device, Result, Tensor};

use super::ops::{filled, log_sum_exp, soft_extremum};

/// The steps every step `k` reads for one window `[from, to]`, padded to the widest window.
#[derive(Debug)]
pub struct WindowTable {
    /// `[T · W]` step indices (u32), row `k` holding `J(k)` and then padding.
    indices: Tensor,
    /// `[1, T, W]` u8, 1 for a step of `J(k)`, 0 for padding; `None` when nothing is padded.
    valid: Option<Tensor>,
    width: usize,
}

impl WindowTable {
    pub fn new(from: u32, to: u32, steps: usize, device: &Device) -> Result<WindowTable> {
        let windows: Vec<_> = (0..=steps).map(|k| window(k, from, to, steps)).collect();
        let width = windows.iter().map(|w| w.clone().count()).max().unwrap_or(1);
        let mut indices = Vec::with_capacity(windows.len() * width);
        let mut valid = Vec::with_capacity(windows.len() * width);
        for w in &windows {
            let start = *w.start() as u32;
            for offset in 0..width {
                let j = *w.start() + offset;
                let inside = w.contains(&j);
                // Padding repeats the window's first step, whose value is masked out.
                indices.push(if inside { j as u32 } else { start });
                valid.push(inside as u8);
            }
        }
        let padded = valid.contains(&0);
        let t = windows.len();
        Ok(WindowTable {
            indices: Tensor::from_vec(indices, t * width, device)?,
            valid: if padded { Some(Tensor::from_vec(valid, (1, t, width), device)?) } else { None },
            width,
        })
    }

    /// `softmax_τ` (`maximum`) or `softmin_τ` of `body` (`[S, T]`) over each step's window.
    pub fn apply(&self, body: &Tensor, temperature: f64, maximum: bool) -> Result<Tensor> {
        let (samples, t) = body.dims2()?;
        let gathered = body.contiguous()?.index_select(&self.indices, 1)?.reshape((samples, t, self.width))?;
        let Some(valid) = &self.valid else {
            return soft_extremum(&gathered, temperature, maximum);
        };
        // Padding must count as −∞ inside the log-sum-exp, whose argument is ±body / τ.
        let sign = if maximum { 1.0 } else { -1.0 };
        let z = gathered.affine(sign / temperature, 0.0)?;
        let valid = valid.broadcast_as(z.shape())?;
        let z = valid.where_cond(&z, &filled(f32::NEG_INFINITY, z.shape(), &z)?)?;
        log_sum_exp(&z)?.affine(sign * temperature, 0.0)
    }
}

/// Masks for `until`, over steps `k` (rows) and `j` (columns).
#[derive(Debug)]
pub struct UntilTable {
    /// `[T, T]` u8: 1 where `j > k`.
    after: Tensor,
    /// `[1, T, T]` u8: 1 where `j ≥ k`.
    from: Tensor,
}

impl UntilTable {
    pub fn new(steps: usize, device: &Device) -> Result<UntilTable> {
        let t = steps + 1;
        let mask = |keep: fn(usize, usize) -> bool| (0..t).flat_map(move |k| (0..t).map(move |j| keep(k, j) as u8)).collect::<Vec<u8>>();
        Ok(UntilTable { after: Tensor::from_vec(mask(|k, j| j > k), (t, t), device)?, from: Tensor::from_vec(mask(|k, j| j >= k), (1, t, t), device)? })
    }

    /// `until[τ] lhs rhs` over `[S, T]` signals.
    ///
    /// Row `k` of the running table `L_k[j] = ln Σ_{i=k}^{j−1} exp(−l_i / τ)` (−∞ for
    /// `j ≤ k`) is `L_{k+1}` with the term of `l_k` added where `j > k`, so the table costs
    /// `T` log-sum-exps of two `[S, T]` tensors. The inner minima are
    /// `m(k, j) = −τ · ln(exp(−r_j / τ) + exp(L_k[j]))` and the result is the `softmax_τ` of
    /// `m(k, j)` over `j ≥ k`.
    pub fn apply(&self, lhs: &Tensor, rhs: &Tensor, temperature: f64) -> Result<Tensor> {
        let (samples, t) = lhs.dims2()?;
        let z_lhs = lhs.affine(-1.0 / temperature, 0.0)?;
        let z_rhs = rhs.affine(-1.0 / temperature, 0.0)?;
        let minus_infinity = filled(f32::NEG_INFINITY, lhs.shape(), lhs)?;
        let mut running = minus_infinity.clone();
        let mut inner_rows = vec![None; t];
        for k in (0..t).rev() {
            if k + 1 < t {
                let added = self.after.get(k)?.unsqueeze(0)?.broadcast_as((samples, t))?;
                let term = z_lhs.narrow(1, k, 1)?.broadcast_as((samples, t))?;
                let term = added.where_cond(&term, &minus_infinity)?;
                running = log_sum_exp(&Tensor::stack(&[&running, &term], D::Minus1)?)?;
            }
            let inner = log_sum_exp(&Tensor::stack(&[&running, &z_rhs], D::Minus1)?)?.affine(-temperature, 0.0)?;
            inner_rows[k] = Some(inner);
        }
        let inner: Vec<Tensor> = inner_rows.into_iter().map(|row| row.expect("every row is computed")).collect();
        let inner = Tensor::stack(&inner, 1)?;
        let z = inner.affine(1.0 / temperature, 0.0)?;
        let valid = self.from.broadcast_as(z.shape())?;
        let z = valid.where_cond(&z, &filled(f32::NEG_INFINITY, z.shape(), &z)?)?;
        log_sum_exp(&z)?.affine(temperature, 0.0)
    }
}

/// `[T, T]` matrix `U` with `U[j, k] = Δt` for `k ≤ j ≤ H − 1`, so that `body · U` is the
/// left Riemann sum `Σ_{j=k}^{H−1} Δt · body_j` at every `k`.
pub fn sum_matrix(steps: usize, step: f64, device: &Device) -> Result<Tensor> {
    let t = steps + 1;
    let values: Vec<f32> = (0..t).flat_map(|j| (0..t).map(move |k| if k <= j && j < steps { step as f32 } else { 0.0 })).collect();
    Tensor::from_vec(values, (t, t), device)?.to_dtype(DType::F32)
}
