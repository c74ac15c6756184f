//! A fast batched rollout of the predictor and the probe in `f32`, for planners.
//!
//! Planners roll out a thousand action sequences over tens of steps several times per
//! control step. Through candle every step is a handful of tensor operations, each with
//! its own allocation, dispatch and pass over memory. Here the same arithmetic runs as one
//! pass per chunk of samples with every buffer resident in cache.
//!
//! - The weights are copied once out of a [`WorldModel`] into plain row-major buffers
//!   (`[out, in]`). The first layer and the skip of the predictor are split into their
//!   latent and action columns, so `W [z; a]` is two products over the two inputs and the
//!   concatenation is never built.
//! - Samples are split into chunks of [`CHUNK`] (fewer for a small batch, such as the single
//!   sequence of a refinement step) that rayon runs in parallel; a chunk runs all steps.
//!   Activations are feature-major (`[features, chunk]`), so a product `W X` streams
//!   rows of `X` and broadcasts entries of `W`, and the innermost loop is over samples, which
//!   the compiler turns into vector fused multiply-adds.
//! - Each product is blocked into tiles of a few output rows by one or two vector registers
//!   of samples, which stay in registers across the whole input dimension. The bias, the
//!   residual, the GELU (`0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))`, the formula candle 0.11
//!   uses for `Tensor::gelu` on the CPU, computed as `x / (1 + exp(−2u))` with a polynomial
//!   `exp`), the clip and the probe's denormalization are applied to the tile in registers
//!   before it is stored.
//! - The tile loop is compiled three times, for AVX-512, for AVX2 with FMA and for the
//!   baseline target, and the widest one the processor supports is chosen at run time, so
//!   the default build (which targets baseline x86-64) still runs vector FMAs.
//!
//! The encoder is not part of the kernel: callers encode the observation with
//! [`WorldModel::encode`] and hand over the start latent, so the encoder's input can change
//! without touching the rollout.
//!
//! [`Rollout::action_gradient`] runs the same rollout for one sequence and then a reverse
//! sweep (a vector-Jacobian product) that turns the gradient of an energy with respect to the
//! predicted states into its gradient with respect to the actions.

use candle_core::{Result, Tensor};
use rayon::prelude::*;

use super::net::{Dims, LATENT_BOUND, WorldModel};

/// Samples per chunk: a multiple of every tile width below.
pub const CHUNK: usize = 64;
/// The granularity of narrower chunks for small batches: a multiple of every vector width.
const NARROW: usize = 16;
/// `√(2/π)`.
const GELU_A: f32 = 0.797_884_6;
/// `√(2/π) · 0.044715`.
const GELU_B: f32 = GELU_A * 0.044715;

/// One network `f(x) = W₂ gelu(W₁ x + b₁) + b₂ + S x`, with `W₁` and `S` split by input
/// columns into the latent part (`_z`) and the action part (`_a`; empty for the probe).
#[derive(Clone, Debug)]
struct Net {
    n_z: usize,
    n_a: usize,
    hidden: usize,
    out: usize,
    w1_z: Vec<f32>,
    w1_a: Vec<f32>,
    b1: Vec<f32>,
    w2: Vec<f32>,
    b2: Vec<f32>,
    s_z: Vec<f32>,
    s_a: Vec<f32>,
}

impl Net {
    /// Reads `NAME.*` from the model's variables, splitting the input columns after `n_z`.
    fn read(model: &WorldModel, name: &str, n_z: usize) -> Result<Net> {
        let data = model.vars.data().lock().expect("variable map lock");
        let get = |part: &str| -> Result<Tensor> {
            let key = format!("{name}.{part}");
            data.get(&key)
                .map(|v| v.as_tensor().clone())
                .ok_or_else(|| {
                    candle_core::Error::Msg(format!("the world model has no variable `{key}`"))
                })
        };
        let matrix = |part: &str| -> Result<(usize, usize, Vec<f32>)> {
            let t = get(part)?.to_dtype(candle_core::DType::F32)?;
            let (rows, cols) = t.dims2()?;
            Ok((rows, cols, t.flatten_all()?.to_vec1()?))
        };
        let vector = |part: &str| -> Result<Vec<f32>> {
            get(part)?
                .to_dtype(candle_core::DType::F32)?
                .flatten_all()?
                .to_vec1()
        };
        let (hidden, n_in, w1) = matrix("first.weight")?;
        let (out, hidden2, w2) = matrix("second.weight")?;
        let (out2, n_in2, skip) = matrix("skip.weight")?;
        let (b1, b2) = (vector("first.bias")?, vector("second.bias")?);
        if hidden2 != hidden
            || out2 != out
            || n_in2 != n_in
            || n_z > n_in
            || b1.len() != hidden
            || b2.len() != out
        {
            return Err(candle_core::Error::Msg(format!(
                "the world model's `{name}` has inconsistent shapes: first {hidden}×{n_in}, second {out}×{hidden2}, skip {out2}×{n_in2}"
            )));
        }
        let split = |m: &[f32], rows: usize| -> (Vec<f32>, Vec<f32>) {
            let mut z = Vec::with_capacity(rows * n_z);
            let mut a = Vec::with_capacity(rows * (n_in - n_z));
            for row in m.chunks(n_in) {
                z.extend_from_slice(&row[..n_z]);
                a.extend_from_slice(&row[n_z..]);
            }
            (z, a)
        };
        let (w1_z, w1_a) = split(&w1, hidden);
        let (s_z, s_a) = split(&skip, out);
        Ok(Net {
            n_z,
            n_a: n_in - n_z,
            hidden,
            out,
            w1_z,
            w1_a,
            b1,
            w2,
            b2,
            s_z,
            s_a,
        })
    }

    /// Multiply-adds per evaluation on one sample.
    fn macs(&self) -> usize {
        let n_in = self.n_z + self.n_a;
        self.hidden * n_in + self.out * self.hidden + self.out * n_in
    }
}

/// An affine map applied per column, `y = x · scale + offset`.
#[derive(Clone, Debug, PartialEq)]
pub struct Affine {
    pub scale: Vec<f32>,
    pub offset: Vec<f32>,
}

impl Affine {
    pub fn identity(n: usize) -> Affine {
        Affine {
            scale: vec![1.0; n],
            offset: vec![0.0; n],
        }
    }
}

/// The vector instructions the tile loop is compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// 16-lane vectors with fused multiply-add.
    Avx512,
    /// 8-lane vectors with fused multiply-add.
    Avx2Fma,
    /// Whatever the build's target allows (SSE2 on baseline x86-64), without FMA.
    Baseline,
}

impl Isa {
    /// Returns the widest instruction set this processor supports.
    pub fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            let avx2_fma = std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma");
            if avx2_fma && std::arch::is_x86_feature_detected!("avx512f") {
                return Isa::Avx512;
            }
            if avx2_fma {
                return Isa::Avx2Fma;
            }
        }
        Isa::Baseline
    }
}

/// The predictor and probe of a world model, ready for fast rollouts.
#[derive(Clone, Debug)]
pub struct Rollout {
    pub dims: Dims,
    predictor: Net,
    probe: Net,
    isa: Isa,
}

/// Inputs of one batched rollout, in the planner's layout.
#[derive(Clone, Copy, Debug)]
pub struct Batch<'a> {
    /// The start latent, `[latent]` shared by all samples or `[samples, latent]`.
    pub start: &'a [f32],
    /// `[samples, steps, n_actions]`, in the caller's units.
    pub actions: &'a [f64],
    /// Maps the caller's actions to the model's normalized actions.
    pub action_in: &'a Affine,
    /// Maps the probe's normalized states to the caller's units.
    pub state_out: &'a Affine,
    /// The state row 0 of every sample, `[n_states]`, copied as given.
    pub first_row: &'a [f64],
    pub samples: usize,
    pub steps: usize,
}

/// Buffers of one chunk, feature-major with `width` columns.
struct Scratch {
    /// Samples per chunk: [`CHUNK`], or fewer for a small batch (a multiple of [`NARROW`]).
    width: usize,
    z: Vec<f32>,
    next: Vec<f32>,
    a: Vec<f32>,
    hidden: Vec<f32>,
    probe: Vec<f32>,
}

impl Rollout {
    /// Copies the predictor's and the probe's weights out of `model`.
    ///
    /// # Errors
    ///
    /// Fails when a variable is missing or the shapes do not fit `model.dims`.
    pub fn new(model: &WorldModel) -> Result<Rollout> {
        let dims = model.dims;
        let predictor = Net::read(model, "predictor", dims.latent)?;
        let probe = Net::read(model, "probe", dims.latent)?;
        if predictor.n_a != dims.n_actions
            || predictor.out != dims.latent
            || probe.n_a != 0
            || probe.out != dims.n_states
        {
            return Err(candle_core::Error::Msg(format!(
                "the world model's networks do not fit its dimensions {dims:?}"
            )));
        }
        Ok(Rollout {
            dims,
            predictor,
            probe,
            isa: Isa::detect(),
        })
    }

    /// Returns the instruction set in use.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// Uses `isa` instead of the detected one (for benchmarks and tests).
    ///
    /// # Panics
    ///
    /// Panics if this processor lacks `isa`.
    pub fn with_isa(mut self, isa: Isa) -> Rollout {
        assert!(
            isa == Isa::Baseline || Isa::detect() == Isa::Avx512 || isa == Isa::detect(),
            "this processor does not support {isa:?}"
        );
        self.isa = isa;
        self
    }

    /// Floating-point operations of one predictor step and probe on one sample, counting a
    /// multiply-add as two (activations, clip and bias not counted).
    pub fn flops_per_step(&self) -> usize {
        2 * (self.predictor.macs() + self.probe.macs())
    }

    /// Rolls out `batch` and returns the states `[samples, steps + 1, n_states]` in the
    /// caller's units, row 0 of each sample being `batch.first_row`.
    ///
    /// # Panics
    ///
    /// Panics if a buffer's length does not fit the dimensions and counts.
    pub fn run(&self, batch: &Batch) -> Vec<f64> {
        let Dims {
            n_states: ns,
            n_actions: na,
            latent,
            ..
        } = self.dims;
        let (samples, steps) = (batch.samples, batch.steps);
        assert!(
            batch.start.len() == latent || batch.start.len() == samples * latent,
            "start latent of {} values for {samples} samples of latent {latent}",
            batch.start.len()
        );
        assert_eq!(batch.actions.len(), samples * steps * na, "actions buffer");
        assert_eq!(batch.first_row.len(), ns, "first state row");
        assert_eq!(
            (batch.action_in.scale.len(), batch.action_in.offset.len()),
            (na, na),
            "action map"
        );
        assert_eq!(
            (batch.state_out.scale.len(), batch.state_out.offset.len()),
            (ns, ns),
            "state map"
        );
        let row = (steps + 1) * ns;
        let mut out = vec![0.0; samples * row];
        if samples == 0 {
            return out;
        }
        // A small batch (a refinement's single sequence) runs in a narrower chunk.
        let width = CHUNK.min(samples.div_ceil(NARROW) * NARROW);
        out.par_chunks_mut(width * row)
            .enumerate()
            .for_each(|(chunk, block)| {
                let first = chunk * width;
                let count = block.len() / row;
                let mut scratch = Scratch {
                    width,
                    z: vec![0.0; latent * width],
                    next: vec![0.0; latent * width],
                    a: vec![0.0; na * width],
                    hidden: vec![0.0; self.predictor.hidden.max(self.probe.hidden) * width],
                    probe: vec![0.0; ns * width],
                };
                self.chunk(batch, first, count, block, &mut scratch);
            });
        out
    }

    /// Runs samples `first..first + count` through all steps into `block`.
    fn chunk(&self, batch: &Batch, first: usize, count: usize, block: &mut [f64], s: &mut Scratch) {
        let Dims {
            n_states: ns,
            n_actions: na,
            latent,
            ..
        } = self.dims;
        let (steps, width) = (batch.steps, s.width);
        let row = (steps + 1) * ns;
        // Start latents, feature-major; padding lanes repeat the last sample.
        for lane in 0..width {
            let sample = first + lane.min(count - 1);
            let start = if batch.start.len() == latent {
                batch.start
            } else {
                &batch.start[sample * latent..(sample + 1) * latent]
            };
            for (j, &v) in start.iter().enumerate() {
                s.z[j * width + lane] = v;
            }
        }
        for b in 0..count {
            block[b * row..b * row + ns].copy_from_slice(batch.first_row);
        }
        for k in 0..steps {
            for lane in 0..width {
                let sample = first + lane.min(count - 1);
                let action = &batch.actions[(sample * steps + k) * na..][..na];
                for (j, &v) in action.iter().enumerate() {
                    s.a[j * width + lane] =
                        v as f32 * batch.action_in.scale[j] + batch.action_in.offset[j];
                }
            }
            self.step(s, batch.state_out);
            std::mem::swap(&mut s.z, &mut s.next);
            for b in 0..count {
                let target = &mut block[b * row + (k + 1) * ns..][..ns];
                for (j, t) in target.iter_mut().enumerate() {
                    *t = f64::from(s.probe[j * width + b]);
                }
            }
        }
    }

    /// Runs one predictor step `s.z, s.a → s.next` and the probe of `s.next` into `s.probe`.
    fn step(&self, s: &mut Scratch, state_out: &Affine) {
        match self.isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Isa::detect` (or `with_isa`'s check) found AVX-512F on this processor.
            Isa::Avx512 => unsafe { step_avx512(&self.predictor, &self.probe, s, state_out) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Isa::detect` found AVX2 and FMA on this processor.
            Isa::Avx2Fma => unsafe { step_avx2(&self.predictor, &self.probe, s, state_out) },
            _ => step_baseline(&self.predictor, &self.probe, s, state_out),
        }
    }

    /// Computes the gradient of `Σ grad_states · states` with respect to the actions of one
    /// sequence, where `states` is what [`Rollout::run`] returns for it. `grad_states` is
    /// `[steps + 1, n_states]`; row 0, the given first row, does not depend on the actions.
    /// The result is `[steps, n_actions]` in the caller's units.
    ///
    /// # Panics
    ///
    /// Panics if a buffer's length does not fit the dimensions.
    pub fn action_gradient(
        &self,
        start: &[f32],
        actions: &[f64],
        action_in: &Affine,
        state_out: &Affine,
        grad_states: &[f64],
    ) -> Vec<f64> {
        let Dims {
            n_states: ns,
            n_actions: na,
            latent,
            ..
        } = self.dims;
        assert_eq!(start.len(), latent, "start latent");
        let steps = actions.len() / na.max(1);
        assert_eq!(grad_states.len(), (steps + 1) * ns, "state gradient");
        let (p, q) = (&self.predictor, &self.probe);

        // Forward, keeping what the reverse sweep reads.
        let mut zs = vec![start.to_vec()];
        let mut inputs_a = Vec::with_capacity(steps);
        let mut pre_p = Vec::with_capacity(steps);
        let mut pre_y = Vec::with_capacity(steps);
        let mut pre_q = Vec::with_capacity(steps);
        for k in 0..steps {
            let z = &zs[k];
            let a: Vec<f32> = (0..na)
                .map(|j| actions[k * na + j] as f32 * action_in.scale[j] + action_in.offset[j])
                .collect();
            let first: Vec<f32> = (0..p.hidden)
                .map(|h| {
                    p.b1[h]
                        + dot(&p.w1_z[h * latent..][..latent], z)
                        + dot(&p.w1_a[h * na..][..na], &a)
                })
                .collect();
            let act: Vec<f32> = first.iter().map(|&x| gelu_exact(x)).collect();
            let y: Vec<f32> = (0..latent)
                .map(|o| {
                    z[o] + p.b2[o]
                        + dot(&p.w2[o * p.hidden..][..p.hidden], &act)
                        + dot(&p.s_z[o * latent..][..latent], z)
                        + dot(&p.s_a[o * na..][..na], &a)
                })
                .collect();
            let next: Vec<f32> = y
                .iter()
                .map(|v| v.clamp(-LATENT_BOUND, LATENT_BOUND))
                .collect();
            let probe_first: Vec<f32> = (0..q.hidden)
                .map(|h| q.b1[h] + dot(&q.w1_z[h * latent..][..latent], &next))
                .collect();
            inputs_a.push(a);
            pre_p.push(first);
            pre_y.push(y);
            pre_q.push(probe_first);
            zs.push(next);
        }

        // Reverse: `gz` is the gradient with respect to the latent after step `k`.
        let mut gradient = vec![0.0; steps * na];
        let mut gz = vec![0.0f32; latent];
        for k in (0..steps).rev() {
            // The probe of z_{k+1}.
            let gs: Vec<f32> = (0..ns)
                .map(|j| grad_states[(k + 1) * ns + j] as f32 * state_out.scale[j])
                .collect();
            let mut g_hidden = vec![0.0f32; q.hidden];
            for (o, &g) in gs.iter().enumerate() {
                for (h, gh) in g_hidden.iter_mut().enumerate() {
                    *gh += g * q.w2[o * q.hidden + h];
                }
                for (j, gzj) in gz.iter_mut().enumerate() {
                    *gzj += g * q.s_z[o * latent + j];
                }
            }
            for (h, gh) in g_hidden.iter().enumerate() {
                let g = gh * gelu_slope(pre_q[k][h]);
                for (j, gzj) in gz.iter_mut().enumerate() {
                    *gzj += g * q.w1_z[h * latent + j];
                }
            }
            // The clip, then the predictor's step from z_k.
            let gy: Vec<f32> = gz
                .iter()
                .zip(&pre_y[k])
                .map(|(&g, &y)| {
                    if (-LATENT_BOUND..=LATENT_BOUND).contains(&y) {
                        g
                    } else {
                        0.0
                    }
                })
                .collect();
            let mut g_z = gy.clone();
            let mut g_a = vec![0.0f32; na];
            let mut g_hidden = vec![0.0f32; p.hidden];
            for (o, &g) in gy.iter().enumerate() {
                for (h, gh) in g_hidden.iter_mut().enumerate() {
                    *gh += g * p.w2[o * p.hidden + h];
                }
                for (j, gzj) in g_z.iter_mut().enumerate() {
                    *gzj += g * p.s_z[o * latent + j];
                }
                for (j, gaj) in g_a.iter_mut().enumerate() {
                    *gaj += g * p.s_a[o * na + j];
                }
            }
            for (h, gh) in g_hidden.iter().enumerate() {
                let g = gh * gelu_slope(pre_p[k][h]);
                for (j, gzj) in g_z.iter_mut().enumerate() {
                    *gzj += g * p.w1_z[h * latent + j];
                }
                for (j, gaj) in g_a.iter_mut().enumerate() {
                    *gaj += g * p.w1_a[h * na + j];
                }
            }
            for j in 0..na {
                gradient[k * na + j] = f64::from(g_a[j] * action_in.scale[j]);
            }
            gz = g_z;
        }
        gradient
    }
}

/// `a · b` with eight partial sums, which the compiler keeps in vector registers (a plain
/// sum must add in order and stays scalar).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut partial = [0.0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a8
        .remainder()
        .iter()
        .zip(b8.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a8.zip(b8) {
        for l in 0..8 {
            partial[l] += x[l] * y[l];
        }
    }
    partial.iter().sum::<f32>() + tail
}

/// GELU as candle 0.11 computes it on the CPU.
fn gelu_exact(x: f32) -> f32 {
    0.5 * x * (1.0 + (GELU_A * x * (1.0 + 0.044715 * x * x)).tanh())
}

/// Computes the derivative of [`gelu_exact`].
fn gelu_slope(x: f32) -> f32 {
    let t = (GELU_A * x * (1.0 + 0.044715 * x * x)).tanh();
    0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * (GELU_A + 3.0 * GELU_B * x * x)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn step_avx512(p: &Net, q: &Net, s: &mut Scratch, state_out: &Affine) {
    step_generic::<simd::Avx512, 8, 2, true>(p, q, s, state_out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn step_avx2(p: &Net, q: &Net, s: &mut Scratch, state_out: &Affine) {
    step_generic::<simd::Avx2, 6, 2, true>(p, q, s, state_out)
}

fn step_baseline(p: &Net, q: &Net, s: &mut Scratch, state_out: &Affine) {
    step_generic::<simd::Base, 6, 2, false>(p, q, s, state_out)
}

/// The vector operations the tile loop needs, one implementation per instruction set.
///
/// Autovectorized arrays of accumulators compiled to gathers and spills here, so the tile
/// keeps explicit vectors. Everything outside the tile is plain code the compiler vectorizes.
mod simd {
    /// A vector of `LANES` `f32` values.
    pub trait Simd: Copy {
        const LANES: usize;
        /// # Safety
        /// The instruction set must be available.
        unsafe fn splat(x: f32) -> Self;
        /// # Safety
        /// `p` must point to `LANES` readable values.
        unsafe fn load(p: *const f32) -> Self;
        /// # Safety
        /// `p` must point to `LANES` writable values.
        unsafe fn store(self, p: *mut f32);
        /// `a · b + c`, fused where the instruction set has it.
        /// # Safety
        /// The instruction set must be available.
        unsafe fn madd(a: Self, b: Self, c: Self) -> Self;
    }

    #[cfg(target_arch = "x86_64")]
    use std::arch::x86_64::*;

    #[cfg(target_arch = "x86_64")]
    #[derive(Clone, Copy)]
    pub struct Avx512(__m512);

    #[cfg(target_arch = "x86_64")]
    impl Simd for Avx512 {
        const LANES: usize = 16;
        #[inline(always)]
        unsafe fn splat(x: f32) -> Self {
            unsafe { Avx512(_mm512_set1_ps(x)) }
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            Avx512(unsafe { _mm512_loadu_ps(p) })
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            unsafe { _mm512_storeu_ps(p, self.0) }
        }
        #[inline(always)]
        unsafe fn madd(a: Self, b: Self, c: Self) -> Self {
            unsafe { Avx512(_mm512_fmadd_ps(a.0, b.0, c.0)) }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[derive(Clone, Copy)]
    pub struct Avx2(__m256);

    #[cfg(target_arch = "x86_64")]
    impl Simd for Avx2 {
        const LANES: usize = 8;
        #[inline(always)]
        unsafe fn splat(x: f32) -> Self {
            unsafe { Avx2(_mm256_set1_ps(x)) }
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            Avx2(unsafe { _mm256_loadu_ps(p) })
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            unsafe { _mm256_storeu_ps(p, self.0) }
        }
        #[inline(always)]
        unsafe fn madd(a: Self, b: Self, c: Self) -> Self {
            unsafe { Avx2(_mm256_fmadd_ps(a.0, b.0, c.0)) }
        }
    }

    /// SSE2, which every x86-64 processor has: multiply, then add.
    #[cfg(target_arch = "x86_64")]
    #[derive(Clone, Copy)]
    pub struct Base(__m128);

    #[cfg(target_arch = "x86_64")]
    impl Simd for Base {
        const LANES: usize = 4;
        #[inline(always)]
        unsafe fn splat(x: f32) -> Self {
            unsafe { Base(_mm_set1_ps(x)) }
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            Base(unsafe { _mm_loadu_ps(p) })
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            unsafe { _mm_storeu_ps(p, self.0) }
        }
        #[inline(always)]
        unsafe fn madd(a: Self, b: Self, c: Self) -> Self {
            unsafe { Base(_mm_add_ps(_mm_mul_ps(a.0, b.0), c.0)) }
        }
    }

    /// Other architectures: one lane.
    #[cfg(not(target_arch = "x86_64"))]
    #[derive(Clone, Copy)]
    pub struct Base(f32);

    #[cfg(not(target_arch = "x86_64"))]
    impl Simd for Base {
        const LANES: usize = 1;
        #[inline(always)]
        unsafe fn splat(x: f32) -> Self {
            Base(x)
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            Base(unsafe { *p })
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            unsafe { *p = self.0 }
        }
        #[inline(always)]
        unsafe fn madd(a: Self, b: Self, c: Self) -> Self {
            Base(a.0 * b.0 + c.0)
        }
    }
}

use simd::Simd;

/// Operation a layer applies between accumulating and storing.
#[derive(Clone, Copy)]
enum Epilogue<'a> {
    Gelu,
    /// Add the residual rows (`[rows, width]`), then clip to `±LATENT_BOUND`.
    ResidualClip(&'a [f32]),
    /// Per-row `x · scale + offset`.
    Affine(&'a Affine),
}

/// One product term `W X`: `w` is `[rows, n_in]` row-major, `x` is `[n_in, width]`.
#[derive(Clone, Copy)]
struct Term<'a> {
    w: &'a [f32],
    n_in: usize,
    x: &'a [f32],
}

#[inline(always)]
fn step_generic<S: Simd, const R: usize, const V: usize, const FMA: bool>(
    p: &Net,
    q: &Net,
    s: &mut Scratch,
    state_out: &Affine,
) {
    let Scratch {
        width,
        z,
        next,
        a,
        hidden,
        probe,
    } = s;
    let (width, z, a): (usize, &[f32], &[f32]) = (*width, z, a);
    let hp = &mut hidden[..p.hidden * width];
    let first = [
        Term {
            w: &p.w1_z,
            n_in: p.n_z,
            x: z,
        },
        Term {
            w: &p.w1_a,
            n_in: p.n_a,
            x: a,
        },
    ];
    layer::<S, R, V, FMA>(p.hidden, &first, &p.b1, Epilogue::Gelu, width, hp);
    let second = [
        Term {
            w: &p.w2,
            n_in: p.hidden,
            x: &*hp,
        },
        Term {
            w: &p.s_z,
            n_in: p.n_z,
            x: z,
        },
        Term {
            w: &p.s_a,
            n_in: p.n_a,
            x: a,
        },
    ];
    layer::<S, R, V, FMA>(
        p.out,
        &second,
        &p.b2,
        Epilogue::ResidualClip(z),
        width,
        next,
    );
    let hq = &mut hidden[..q.hidden * width];
    layer::<S, R, V, FMA>(
        q.hidden,
        &[Term {
            w: &q.w1_z,
            n_in: q.n_z,
            x: &*next,
        }],
        &q.b1,
        Epilogue::Gelu,
        width,
        hq,
    );
    let out = [
        Term {
            w: &q.w2,
            n_in: q.hidden,
            x: &*hq,
        },
        Term {
            w: &q.s_z,
            n_in: q.n_z,
            x: &*next,
        },
    ];
    layer::<S, R, V, FMA>(
        q.out,
        &out,
        &q.b2,
        Epilogue::Affine(state_out),
        width,
        probe,
    );
}

/// `out = epilogue(Σ terms + bias)` for `rows` output rows of `width` samples, in tiles of
/// `R` rows by `V` vectors of samples (one vector where `width` is narrower than `V`).
#[inline(always)]
fn layer<S: Simd, const R: usize, const V: usize, const FMA: bool>(
    rows: usize,
    terms: &[Term],
    bias: &[f32],
    epilogue: Epilogue,
    width: usize,
    out: &mut [f32],
) {
    assert!(
        width % S::LANES == 0 && bias.len() == rows && out.len() >= rows * width,
        "layer buffers"
    );
    for t in terms {
        assert!(
            t.w.len() >= rows * t.n_in && t.x.len() >= t.n_in * width,
            "term buffers"
        );
    }
    if let Epilogue::ResidualClip(residual) = epilogue {
        assert!(residual.len() >= rows * width, "residual buffer");
    }
    // SAFETY (all tiles): the asserts above bound every index a tile reads and writes.
    if width % (V * S::LANES) == 0 {
        let mut row = 0;
        while row + R <= rows {
            for lane in (0..width).step_by(V * S::LANES) {
                unsafe { tile::<S, R, V>(row, lane, terms, bias, width, out) };
            }
            row += R;
        }
        for row in row..rows {
            for lane in (0..width).step_by(V * S::LANES) {
                unsafe { tile::<S, 1, V>(row, lane, terms, bias, width, out) };
            }
        }
    } else {
        let mut row = 0;
        while row + R <= rows {
            for lane in (0..width).step_by(S::LANES) {
                unsafe { tile::<S, R, 1>(row, lane, terms, bias, width, out) };
            }
            row += R;
        }
        for row in row..rows {
            for lane in (0..width).step_by(S::LANES) {
                unsafe { tile::<S, 1, 1>(row, lane, terms, bias, width, out) };
            }
        }
    }
    // The epilogue runs over the rows just written, still in L1.
    let out = &mut out[..rows * width];
    match epilogue {
        Epilogue::Gelu => {
            for v in out.iter_mut() {
                *v = gelu_fast::<FMA>(*v);
            }
        }
        Epilogue::ResidualClip(residual) => {
            // Compare and select rather than `max`/`min`, which would turn NaN into a bound and
            // hide a non-finite input from the planner's status checks.
            for (v, r) in out.iter_mut().zip(residual) {
                let x = *v + r;
                *v = if x < -LATENT_BOUND {
                    -LATENT_BOUND
                } else if x > LATENT_BOUND {
                    LATENT_BOUND
                } else {
                    x
                };
            }
        }
        Epilogue::Affine(map) => {
            for (r, row) in out.chunks_exact_mut(width).enumerate() {
                let (scale, offset) = (map.scale[r], map.offset[r]);
                for v in row.iter_mut() {
                    *v = madd::<FMA>(*v, scale, offset);
                }
            }
        }
    }
}

/// Rows `row..row + R`, samples `lane..lane + V · LANES` of `Σ terms + bias` into `out`.
///
/// # Safety
///
/// The instruction set of `S` must be available, and the indices in bounds (see `layer`).
#[inline(always)]
unsafe fn tile<S: Simd, const R: usize, const V: usize>(
    row: usize,
    lane: usize,
    terms: &[Term],
    bias: &[f32],
    width: usize,
    out: &mut [f32],
) {
    unsafe {
        let mut acc = [[S::splat(0.0); V]; R];
        for (r, acc_r) in acc.iter_mut().enumerate() {
            *acc_r = [S::splat(*bias.get_unchecked(row + r)); V];
        }
        for term in terms {
            let n_in = term.n_in;
            let w = term.w.as_ptr().add(row * n_in);
            let x = term.x.as_ptr().add(lane);
            for i in 0..n_in {
                let mut xs = [S::splat(0.0); V];
                for (v, xv) in xs.iter_mut().enumerate() {
                    *xv = S::load(x.add(i * width + v * S::LANES));
                }
                for (r, acc_r) in acc.iter_mut().enumerate() {
                    let wr = S::splat(*w.add(r * n_in + i));
                    for v in 0..V {
                        acc_r[v] = S::madd(wr, xs[v], acc_r[v]);
                    }
                }
            }
        }
        let o = out.as_mut_ptr();
        for (r, acc_r) in acc.iter().enumerate() {
            for (v, value) in acc_r.iter().enumerate() {
                value.store(o.add((row + r) * width + lane + v * S::LANES));
            }
        }
    }
}

/// `a · b + c`, fused where the instruction set has it (`mul_add` without hardware FMA would
/// be a library call).
#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

/// `eˣ` to about 2e-7 relative for `x` in `[−87, 88]` (clamped there), branch-free so it
/// vectorizes: `eˣ = 2ⁿ eʳ` with `n` the nearest integer to `x / ln 2` and a degree-6 Taylor
/// polynomial for `eʳ`, `|r| ≤ ln 2 / 2`.
#[inline(always)]
fn exp_fast<const FMA: bool>(x: f32) -> f32 {
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2²³: adding it rounds to an integer.
    let x = x.max(-87.0).min(88.0);
    let shifted = madd::<FMA>(x, std::f32::consts::LOG2_E, ROUND);
    let n = shifted - ROUND;
    let r = madd::<FMA>(n, -0.693_145_75, x);
    let r = madd::<FMA>(n, -1.428_606_8e-6, r);
    let mut p = 1.0 / 720.0;
    p = madd::<FMA>(p, r, 1.0 / 120.0);
    p = madd::<FMA>(p, r, 1.0 / 24.0);
    p = madd::<FMA>(p, r, 1.0 / 6.0);
    p = madd::<FMA>(p, r, 0.5);
    p = madd::<FMA>(p, r, 1.0);
    p = madd::<FMA>(p, r, 1.0);
    // The low mantissa bits of `shifted` hold `n`; `(n + 127) << 23` is `2ⁿ`.
    let n_int = (shifted.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    p * f32::from_bits((n_int.wrapping_add(127) as u32) << 23)
}

/// GELU with candle's tanh formula, as `x / (1 + exp(−2u))`, `u = √(2/π) (x + 0.044715 x³)`.
#[inline(always)]
fn gelu_fast<const FMA: bool>(x: f32) -> f32 {
    let u = x * madd::<FMA>(GELU_B * x, x, GELU_A);
    x / (1.0 + exp_fast::<FMA>(-2.0 * u))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_fast_is_accurate() {
        for i in -870..=880 {
            let x = i as f32 / 10.0;
            let (got, want) = (exp_fast::<false>(x), f64::from(x).exp());
            assert!(
                ((f64::from(got) - want) / want).abs() < 5e-7,
                "exp({x}) = {got}, expected {want}"
            );
        }
        assert!(exp_fast::<false>(-1e4) >= 0.0);
        assert!(exp_fast::<false>(1e4).is_finite());
    }

    #[test]
    fn gelu_fast_matches_candle_formula() {
        for i in -2000..=2000 {
            let x = i as f32 / 100.0;
            let (got, want) = (gelu_fast::<false>(x), gelu_exact(x));
            assert!(
                (got - want).abs() <= 1e-6 * (1.0 + want.abs()),
                "gelu({x}) = {got}, expected {want}"
            );
        }
    }

    #[test]
    fn gelu_slope_matches_differences() {
        for i in -40..=40 {
            let x = f64::from(i) / 10.0;
            let f = |x: f64| {
                0.5 * x * (1.0 + (f64::from(GELU_A) * x * (1.0 + 0.044715 * x * x)).tanh())
            };
            let numeric = (f(x + 1e-5) - f(x - 1e-5)) / 2e-5;
            let got = f64::from(gelu_slope(x as f32));
            assert!(
                (got - numeric).abs() < 1e-5,
                "gelu'({x}) = {got}, expected {numeric}"
            );
        }
    }
}
