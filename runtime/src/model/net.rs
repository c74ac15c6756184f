//! The networks of the world model.
//!
//! - encoder `E`: observation `[B, n_obs]` → latent `[B, L]`, where an observation is the
//!   normalized state, the sine and cosine of a periodic angle if the state has one, and
//!   the occupancy patch, if any (`super::patch`), so `n_obs = n_states + 2 + patch cells`
//!   at most;
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

use super::eval::LinearModel;
use super::patch::PatchSpec;

/// Bound of every predicted latent entry. Latents are trained to unit spread, so the bound
/// sits far outside the states seen in training and leaves the map there unchanged (linear
/// dynamics stay exact), while a long rollout that leaves the data cannot grow without end.
pub const LATENT_BOUND: f32 = 4.0;

/// Sizes of the networks, and the occupancy patch the encoder reads.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Dims {
    pub n_states: usize,
    pub n_actions: usize,
    pub latent: usize,
    pub hidden: usize,
    /// The egocentric occupancy patch appended to each observation; `None` for agents
    /// without a map.
    pub patch: Option<PatchSpec>,
    /// Columns of a periodic angle and its rate (a pendulum's `angle` and
    /// `angular_velocity`): the encoder reads the angle as its sine and cosine, appended
    /// after the state, and rollouts integrate it from the predicted rate
    /// (`super::kinematics`).
    #[serde(default)]
    pub angle: Option<[usize; 2]>,
}

impl Dims {
    /// Values per observation, the encoder's input width: the state, the sine and cosine of
    /// the angle if any, then the patch.
    pub fn n_obs(&self) -> usize {
        self.n_states + self.angle.map_or(0, |_| 2) + self.patch.map_or(0, |p| p.len())
    }
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
        let encoder = Mlp::new(dims.n_obs(), dims.hidden, dims.latent, vb.pp("encoder"))?;
        let predictor = Mlp::new(
            dims.latent + dims.n_actions,
            dims.hidden,
            dims.latent,
            vb.pp("predictor"),
        )?;
        let probe = Mlp::new(dims.latent, dims.hidden, dims.n_states, vb.pp("probe"))?;
        let target_vars = VarMap::new();
        let tvb = VarBuilder::from_varmap(&target_vars, DType::F32, device);
        let target = Mlp::new(dims.n_obs(), dims.hidden, dims.latent, tvb.pp("encoder"))?;
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
    ///
    /// The predictor starts close to the identity `z' = z`: its skip is zero and its
    /// perceptron's output layer is drawn ten times smaller. A random skip of that size has
    /// a spectral radius near one, so `z + S z` would grow about twofold per step and a
    /// window of 16 steps would start far outside the clip; starting from the identity,
    /// rollouts of any length begin bounded and training only has to learn the change per
    /// step, which for linear dynamics is the exact linear map.
    fn reinitialize(&self, seed: u64) -> Result<()> {
        let mut rng = super::train::Rng::new(seed);
        let data = self.vars.data().lock().expect("variable map lock");
        let mut names: Vec<&String> = data.keys().collect();
        names.sort();
        for name in names {
            let var = &data[name];
            let dims = var.as_tensor().dims().to_vec();
            let count: usize = dims.iter().product();
            let values: Vec<f32> = if name.ends_with("bias") || name == "predictor.skip.weight" {
                vec![0.0; count]
            } else {
                let scale = if name == "predictor.second.weight" {
                    0.1
                } else {
                    1.0
                };
                let bound = scale / (dims.last().copied().unwrap_or(1) as f64).sqrt();
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

    /// Sets the model's linear part to the least-squares model `s' = A s + B a + c` (in
    /// normalized units), so training starts from that baseline and learns what it misses:
    ///
    /// - the encoder's first `n_states` latent entries are the normalized state: identity
    ///   skip, zero perceptron output on those rows;
    /// - the predictor moves those entries by `(A − I) s + B a + c` through its skip and
    ///   output bias, with zero perceptron output on those rows;
    /// - the probe reads them back: identity skip, zero perceptron output.
    ///
    /// The other latent entries keep their random start, the target encoder is set to the
    /// encoder, and a latent smaller than the state is left unchanged. At this point every
    /// rollout of the model equals the least-squares rollout; for linear dynamics that is
    /// already the exact answer, which gradient steps from a random start reach only to a
    /// tolerance.
    pub fn start_from_linear(&self, linear: &LinearModel) -> Result<()> {
        let Dims {
            n_states: ns,
            n_actions: na,
            latent,
            ..
        } = self.dims;
        if latent < ns {
            return Ok(());
        }
        {
            let data = self.vars.data().lock().expect("variable map lock");
            let edit = |name: &str, change: &dyn Fn(&mut [f32], usize)| -> Result<()> {
                let var = &data[name];
                let dims = var.as_tensor().dims().to_vec();
                let width = dims.get(1).copied().unwrap_or(1);
                let mut values: Vec<f32> = var.as_tensor().flatten_all()?.to_vec1()?;
                change(&mut values, width);
                var.set(&Tensor::from_vec(values, dims, &self.device)?)
            };
            let zero_rows = |values: &mut [f32], width: usize| values[..ns * width].fill(0.0);
            edit("encoder.skip.weight", &|v, w| {
                v[..ns * w].fill(0.0);
                for i in 0..ns {
                    v[i * w + i] = 1.0;
                }
            })?;
            edit("encoder.second.weight", &zero_rows)?;
            edit("encoder.second.bias", &|v, _| v[..ns].fill(0.0))?;
            edit("predictor.skip.weight", &|v, w| {
                v[..ns * w].fill(0.0);
                for i in 0..ns {
                    for j in 0..ns {
                        let identity = if i == j { 1.0 } else { 0.0 };
                        v[i * w + j] = (linear.coefficient(j, i) - identity) as f32;
                    }
                    for j in 0..na {
                        v[i * w + latent + j] = linear.coefficient(ns + j, i) as f32;
                    }
                }
            })?;
            edit("predictor.second.weight", &zero_rows)?;
            edit("predictor.second.bias", &|v, _| {
                for (i, b) in v[..ns].iter_mut().enumerate() {
                    *b = linear.coefficient(ns + na, i) as f32;
                }
            })?;
            edit("probe.skip.weight", &|v, w| {
                v.fill(0.0);
                for i in 0..ns {
                    v[i * w + i] = 1.0;
                }
            })?;
            edit("probe.second.weight", &|v, _| v.fill(0.0))?;
            edit("probe.second.bias", &|v, _| v.fill(0.0))?;
        }
        self.update_target(0.0)
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

    /// Rolls the predictor from observations `[B, n_obs]` through normalized actions
    /// `[K, B, n_actions]`, returning the probed normalized states `[K, B, n_states]`.
    pub fn rollout(&self, observations: &Tensor, actions: &[Tensor]) -> Result<Vec<Tensor>> {
        let mut z = self.encode(observations)?;
        let mut out = Vec::with_capacity(actions.len());
        for a in actions {
            z = self.predict(&z, a)?;
            out.push(self.probe(&z)?);
        }
        Ok(out)
    }
}
