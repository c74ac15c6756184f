//! The networks of the world model.
//!
//! - encoder `E`: normalized observation `[B, n_states]` → latent `[B, L]`;
//! - target encoder `Ē`: same shape, an exponential moving average of `E`, never trained
//!   by gradients;
//! - predictor `P`: latent `[B, L]` and normalized action `[B, n_actions]` → next latent
//!   `[B, L]`, as a residual `z + f([z, a])`;
//! - probe `D`: latent `[B, L]` → normalized state `[B, n_states]`, the physical quantities
//!   the energy terms read.
//!
//! Each network `f` is a two-layer perceptron with a GELU between, plus a linear skip:
//! `f(x) = W₂ gelu(W₁ x + b₁) + b₂ + S x`. The skip lets the model express linear dynamics
//! exactly (a double integrator is linear, and linear least squares fits it to round-off),
//! and the perceptron learns what is not linear. Latents are not squashed by a `tanh`,
//! which would bend the linear part; predicted latents are clipped to [`LATENT_BOUND`]
//! instead, far outside the unit spread the variance term trains them to.
//!
//! Variable names, which checkpoints and the fast rollout kernel read: `NET.first.weight`
//! `[hidden, in]`, `NET.first.bias` `[hidden]`, `NET.second.weight` `[out, hidden]`,
//! `NET.second.bias` `[out]` and `NET.skip.weight` `[out, in]`, for `NET` in `encoder`,
//! `predictor` and `probe`.

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder, VarMap, linear, linear_no_bias};

/// Bound of every predicted latent entry. Latents are trained to unit spread, so the bound
/// sits far outside the states seen in training and leaves the map there unchanged (linear
/// dynamics stay exact), while a long rollout that leaves the data cannot grow without end.
pub const LATENT_BOUND: f32 = 4.0;

/// Sizes of the networks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Dims {
    pub n_states: usize,
    pub n_actions: usize,
    pub latent: usize,
    pub hidden: usize,
}

/// A two-layer perceptron `in → hidden → out` with a GELU between, plus a linear skip
/// `in → out` without bias.
pub struct Mlp {
    first: Linear,
    second: Linear,
    skip: Linear,
}

impl Mlp {
    fn new(input: usize, hidden: usize, output: usize, vb: VarBuilder) -> Result<Mlp> {
        Ok(Mlp {
            first: linear(input, hidden, vb.pp("first"))?,
            second: linear(hidden, output, vb.pp("second"))?,
            skip: linear_no_bias(input, output, vb.pp("skip"))?,
        })
    }
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.second.forward(&self.first.forward(x)?.gelu()?)? + self.skip.forward(x)?
    }
}

/// The trainable networks and the target encoder, each in its own variable map so the
/// optimizer never updates the target.
pub struct WorldModel {
    pub dims: Dims,
    pub device: Device,
    pub vars: VarMap,
    pub target_vars: VarMap,
    pub encoder: Mlp,
    pub target: Mlp,
    pub predictor: Mlp,
    pub probe: Mlp,
}

impl WorldModel {
    /// Builds the networks with weights drawn from a generator seeded with `seed`, so the
    /// same data, configuration and seed train the same model.
    pub fn new(dims: Dims, device: &Device, seed: u64) -> Result<WorldModel> {
        let vars = VarMap::new();
        let vb = VarBuilder::from_varmap(&vars, DType::F32, device);
        let encoder = Mlp::new(dims.n_states, dims.hidden, dims.latent, vb.pp("encoder"))?;
        let predictor = Mlp::new(
            dims.latent + dims.n_actions,
            dims.hidden,
            dims.latent,
            vb.pp("predictor"),
        )?;
        let probe = Mlp::new(dims.latent, dims.hidden, dims.n_states, vb.pp("probe"))?;
        let target_vars = VarMap::new();
        let tvb = VarBuilder::from_varmap(&target_vars, DType::F32, device);
        let target = Mlp::new(dims.n_states, dims.hidden, dims.latent, tvb.pp("encoder"))?;
        let model = WorldModel {
            dims,
            device: device.clone(),
            vars,
            target_vars,
            encoder,
            target,
            predictor,
            probe,
        };
        model.reinitialize(seed)?;
        model.update_target(0.0)?;
        Ok(model)
    }

    /// Draws every weight uniformly from `±1/√fan_in` and sets biases to zero, in name order,
    /// because candle's own initialization draws from an unseeded generator.
    fn reinitialize(&self, seed: u64) -> Result<()> {
        let mut rng = super::train::Rng::new(seed);
        let data = self.vars.data().lock().expect("variable map lock");
        let mut names: Vec<&String> = data.keys().collect();
        names.sort();
        for name in names {
            let var = &data[name];
            let dims = var.as_tensor().dims().to_vec();
            let count: usize = dims.iter().product();
            let values: Vec<f32> = if name.ends_with("bias") {
                vec![0.0; count]
            } else {
                let bound = 1.0 / (dims.last().copied().unwrap_or(1) as f64).sqrt();
                (0..count)
                    .map(|_| {
                        let unit = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                        ((unit * 2.0 - 1.0) * bound) as f32
                    })
                    .collect()
            };
            var.set(&Tensor::from_vec(values, dims, &self.device)?)?;
        }
        Ok(())
    }

    /// `Ē ← decay · Ē + (1 − decay) · E`; `decay = 0` copies the encoder.
    pub fn update_target(&self, decay: f64) -> Result<()> {
        let online = self.vars.data().lock().expect("variable map lock");
        let target = self.target_vars.data().lock().expect("variable map lock");
        for (name, t) in target.iter() {
            let Some(o) = online.get(name) else { continue };
            let mixed = ((t.as_tensor() * decay)? + (o.as_tensor() * (1.0 - decay))?)?;
            t.set(&mixed)?;
        }
        Ok(())
    }

    pub fn encode(&self, obs: &Tensor) -> Result<Tensor> {
        self.encoder.forward(obs)
    }

    pub fn encode_target(&self, obs: &Tensor) -> Result<Tensor> {
        Ok(self.target.forward(obs)?.detach())
    }

    /// Predicts one step: `clip(z + f([z, a]))`, each entry clipped to `±LATENT_BOUND`.
    pub fn predict(&self, z: &Tensor, action: &Tensor) -> Result<Tensor> {
        let input = Tensor::cat(&[z, action], 1)?;
        (z + self.predictor.forward(&input)?)?.clamp(-LATENT_BOUND, LATENT_BOUND)
    }

    pub fn probe(&self, z: &Tensor) -> Result<Tensor> {
        self.probe.forward(z)
    }

    /// Rolls the predictor from normalized states `[B, n_states]` through normalized actions
    /// `[K, B, n_actions]`, returning the probed normalized states `[K, B, n_states]`.
    pub fn rollout(&self, states: &Tensor, actions: &[Tensor]) -> Result<Vec<Tensor>> {
        let mut z = self.encode(states)?;
        let mut out = Vec::with_capacity(actions.len());
        for a in actions {
            z = self.predict(&z, a)?;
            out.push(self.probe(&z)?);
        }
        Ok(out)
    }
}
