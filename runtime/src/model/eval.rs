//! Evaluation of a trained model against two baselines, the latent's effective rank, and
//! the surprise energy.
//!
//! Open-loop error at `k` steps: from every start `t` of a held-out episode with at least
//! `k` steps after it, predict `s_{t+k}` from `s_t` and the recorded actions, and take the
//! root mean square of the error over all starts and state components, each component
//! measured in units of its training standard deviation (so metres and radians weigh
//! alike). Baselines: constant velocity (`s_{t+k} = s_t + k · (s_t − s_{t−1})`) and a linear
//! model `s_{t+1} = A s_t + B a_t + c` fitted by least squares on the training episodes.
//! Where the model integrates states from rates (`super::kinematics`), the evaluation
//! integrates them too, so the errors are those of the rollouts planners use.

use candle_core::{Device, Result, Tensor};

use super::data::{Dataset, Normalization};
use super::kinematics::Kinematics;
use super::net::WorldModel;
use super::patch::Observer;

/// Prediction errors at each horizon in `HORIZONS`, for the model and both baselines.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EvalTable {
    pub horizons: Vec<usize>,
    pub learned: Vec<f64>,
    pub constant_velocity: Vec<f64>,
    pub linear: Vec<f64>,
    /// Number of start points averaged at each horizon.
    pub starts: Vec<usize>,
}

pub const HORIZONS: [usize; 3] = [1, 10, 40];

impl EvalTable {
    /// Renders a plain-text table, one row per horizon.
    pub fn render(&self) -> String {
        let mut out =
            String::from("steps   learned   constant velocity   linear least squares   starts\n");
        for (i, h) in self.horizons.iter().enumerate() {
            out.push_str(&format!(
                "{h:>5}   {:>7.4}   {:>17.4}   {:>20.4}   {:>6}\n",
                self.learned[i], self.constant_velocity[i], self.linear[i], self.starts[i]
            ));
        }
        out
    }

    /// Checks that the learned model beats both baselines at every horizon of at least `from`.
    pub fn learned_wins_from(&self, from: usize) -> bool {
        self.horizons
            .iter()
            .enumerate()
            .filter(|(_, h)| **h >= from)
            .all(|(i, _)| {
                self.learned[i] < self.constant_velocity[i] && self.learned[i] < self.linear[i]
            })
    }
}

/// A linear model `s' = W^T [s, a, 1]` in normalized units.
pub struct LinearModel {
    /// `(n_states + n_actions + 1) × n_states`, row-major.
    weights: Vec<f64>,
    n_in: usize,
    n_out: usize,
}

impl LinearModel {
    /// Least squares by the normal equations with a small ridge term, solved by Gaussian
    /// elimination with partial pivoting, on every transition of `data` in normalized units.
    pub fn fit(data: &Dataset, norm: &Normalization) -> LinearModel {
        let (ns, na) = (data.n_states(), data.n_actions());
        let rows = data.episodes.iter().enumerate().flat_map(|(e, ep)| {
            (0..data.len(e)).map(move |t| {
                (
                    norm.state(&ep.states[t * ns..(t + 1) * ns]),
                    norm.action(&ep.actions[t * na..(t + 1) * na]),
                    norm.state(&ep.states[(t + 1) * ns..(t + 2) * ns]),
                )
            })
        });
        LinearModel::fit_rows(rows, ns, na)
    }

    /// Least squares on transitions `(s, a, s')` given in normalized units.
    pub fn fit_rows(
        rows: impl Iterator<Item = (Vec<f32>, Vec<f32>, Vec<f32>)>,
        ns: usize,
        na: usize,
    ) -> LinearModel {
        let n_in = ns + na + 1;
        let mut xtx = vec![0f64; n_in * n_in];
        let mut xty = vec![0f64; n_in * ns];
        for (s, a, y) in rows {
            let mut x: Vec<f64> = s.iter().chain(&a).map(|v| f64::from(*v)).collect();
            x.push(1.0);
            for i in 0..n_in {
                for j in 0..n_in {
                    xtx[i * n_in + j] += x[i] * x[j];
                }
                for j in 0..ns {
                    xty[i * ns + j] += x[i] * f64::from(y[j]);
                }
            }
        }
        for i in 0..n_in {
            xtx[i * n_in + i] += 1e-6;
        }
        let weights = solve(xtx, xty, n_in, ns);
        LinearModel {
            weights,
            n_in,
            n_out: ns,
        }
    }

    /// The coefficient of input `i` (state components, then actions, then the constant 1)
    /// in output `j`.
    pub fn coefficient(&self, i: usize, j: usize) -> f64 {
        self.weights[i * self.n_out + j]
    }

    pub fn step(&self, s: &[f32], a: &[f32]) -> Vec<f32> {
        let mut x: Vec<f64> = s.iter().chain(a).map(|v| *v as f64).collect();
        x.push(1.0);
        (0..self.n_out)
            .map(|j| {
                (0..self.n_in)
                    .map(|i| x[i] * self.weights[i * self.n_out + j])
                    .sum::<f64>() as f32
            })
            .collect()
    }
}

/// Solves `A X = B` for `X` (`n × m`), with `A` `n × n`.
fn solve(mut a: Vec<f64>, mut b: Vec<f64>, n: usize, m: usize) -> Vec<f64> {
    for col in 0..n {
        let pivot = (col..n)
            .max_by(|&i, &j| a[i * n + col].abs().total_cmp(&a[j * n + col].abs()))
            .unwrap_or(col);
        if pivot != col {
            for k in 0..n {
                a.swap(col * n + k, pivot * n + k);
            }
            for k in 0..m {
                b.swap(col * m + k, pivot * m + k);
            }
        }
        let p = a[col * n + col];
        if p.abs() < 1e-300 {
            continue;
        }
        for row in 0..n {
            if row == col {
                continue;
            }
            let f = a[row * n + col] / p;
            if f == 0.0 {
                continue;
            }
            for k in 0..n {
                a[row * n + k] -= f * a[col * n + k];
            }
            for k in 0..m {
                b[row * m + k] -= f * b[col * m + k];
            }
        }
    }
    for row in 0..n {
        let p = a[row * n + row];
        for k in 0..m {
            b[row * m + k] = if p.abs() < 1e-300 {
                0.0
            } else {
                b[row * m + k] / p
            };
        }
    }
    b
}

/// Evaluates the model and the baselines on held-out episodes. The model starts from the
/// observation of each start state; the baselines see the normalized state alone.
pub fn evaluate(
    model: &WorldModel,
    train: &Dataset,
    test: &Dataset,
    observer: &Observer,
    device: &Device,
) -> Result<EvalTable> {
    let norm = &observer.normalization;
    let (ns, na) = (test.n_states(), test.n_actions());
    let linear = LinearModel::fit(train, norm);
    let mut table = EvalTable {
        horizons: HORIZONS.to_vec(),
        learned: Vec::new(),
        constant_velocity: Vec::new(),
        linear: Vec::new(),
        starts: Vec::new(),
    };
    for &k in &HORIZONS {
        let mut starts: Vec<(usize, usize)> = Vec::new();
        for e in 0..test.episodes.len() {
            let len = test.len(e);
            if len >= k + 1 {
                // Start at t ≥ 1 so constant velocity has a previous state.
                for t in (1..=len - k).step_by(((len - k) / 16).max(1)) {
                    starts.push((e, t));
                }
            }
        }
        if starts.is_empty() {
            table.learned.push(f64::NAN);
            table.constant_velocity.push(f64::NAN);
            table.linear.push(f64::NAN);
            table.starts.push(0);
            continue;
        }
        let b = starts.len();
        let mut s0 = Vec::with_capacity(b * ns);
        let mut truth = Vec::with_capacity(b * ns);
        let mut cv_err = 0f64;
        let mut lin_err = 0f64;
        let mut actions = vec![Vec::with_capacity(b * na); k];
        for &(e, t) in &starts {
            let ep = &test.episodes[e];
            let now = norm.state(&ep.states[t * ns..(t + 1) * ns]);
            let before = norm.state(&ep.states[(t - 1) * ns..t * ns]);
            let target = norm.state(&ep.states[(t + k) * ns..(t + k + 1) * ns]);
            for i in 0..ns {
                let cv = now[i] + k as f32 * (now[i] - before[i]);
                cv_err += ((cv - target[i]) as f64).powi(2);
            }
            let mut s = now;
            for j in 0..k {
                let a = norm.action(&ep.actions[(t + j) * na..(t + j + 1) * na]);
                s = linear.step(&s, &a);
                actions[j].extend(a);
            }
            for i in 0..ns {
                lin_err += ((s[i] - target[i]) as f64).powi(2);
            }
            s0.extend_from_slice(&ep.states[t * ns..(t + 1) * ns]);
            truth.extend(target);
        }
        let observations = Tensor::from_vec(observer.observe(&s0), (b, observer.width()), device)?;
        let acts = actions
            .into_iter()
            .map(|v| Tensor::from_vec(v, (b, na), device))
            .collect::<Result<Vec<_>>>()?;
        let predicted = model.rollout(&observations, &acts)?;
        let last: Vec<f32> = match Kinematics::of(&model.dims) {
            None => predicted.last().expect("k ≥ 1").flatten_all()?.to_vec1()?,
            Some(kinematics) => {
                integrated_last(&kinematics, &predicted, &s0, norm, test.step)?
            }
        };
        let learned_err: f64 = last
            .iter()
            .zip(&truth)
            .map(|(p, t)| ((p - t) as f64).powi(2))
            .sum();
        let count = (b * ns) as f64;
        table.learned.push((learned_err / count).sqrt());
        table.constant_velocity.push((cv_err / count).sqrt());
        table.linear.push((lin_err / count).sqrt());
        table.starts.push(b);
    }
    Ok(table)
}

/// Returns the normalized last rows of `predicted` (one `[B, n_states]` tensor per step),
/// with the integrated states computed from the predicted rates, starting at the SI states
/// `start`.
fn integrated_last(
    kinematics: &Kinematics,
    predicted: &[Tensor],
    start: &[f32],
    norm: &Normalization,
    dt: f64,
) -> Result<Vec<f32>> {
    let ns = norm.state_mean.len();
    let b = start.len() / ns.max(1);
    let steps: Vec<Vec<f32>> = predicted
        .iter()
        .map(|t| t.flatten_all()?.to_vec1())
        .collect::<Result<_>>()?;
    let mut last = Vec::with_capacity(b * ns);
    let mut rows = vec![0f64; (steps.len() + 1) * ns];
    for i in 0..b {
        for (c, v) in rows[..ns].iter_mut().enumerate() {
            *v = f64::from(start[i * ns + c]);
        }
        for (k, step) in steps.iter().enumerate() {
            let si = norm.unstate(&step[i * ns..(i + 1) * ns]);
            for (c, v) in rows[(k + 1) * ns..(k + 2) * ns].iter_mut().enumerate() {
                *v = f64::from(si[c]);
            }
        }
        kinematics.integrate(&mut rows, ns, dt);
        let final_row: Vec<f32> = rows[steps.len() * ns..].iter().map(|&v| v as f32).collect();
        last.extend(norm.state(&final_row));
    }
    Ok(last)
}

/// Effective rank of the latent embeddings of `observations` (`[B, n_obs]`): `exp(H)` where
/// `H` is the entropy of the normalized eigenvalues of the covariance.
pub fn effective_rank(model: &WorldModel, observations: &Tensor) -> Result<f64> {
    let z = model.encode(observations)?;
    let (b, l) = z.dims2()?;
    let centred = z.broadcast_sub(&z.mean_keepdim(0)?)?;
    let cov: Vec<Vec<f32>> =
        (centred.t()?.matmul(&centred)? / (b as f64 - 1.0).max(1.0))?.to_vec2()?;
    let mut m: Vec<f64> = cov.into_iter().flatten().map(|v| v as f64).collect();
    let eig = symmetric_eigenvalues(&mut m, l);
    let total: f64 = eig.iter().map(|e| e.max(0.0)).sum();
    if total <= 0.0 {
        return Ok(0.0);
    }
    let entropy: f64 = eig
        .iter()
        .map(|e| e.max(0.0) / total)
        .filter(|p| *p > 0.0)
        .map(|p| -p * p.ln())
        .sum();
    Ok(entropy.exp())
}

/// Eigenvalues of a symmetric `n × n` matrix by cyclic Jacobi rotations.
fn symmetric_eigenvalues(a: &mut [f64], n: usize) -> Vec<f64> {
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j].powi(2))
            .sum();
        if off < 1e-18 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq.abs() < 1e-300 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let akp = a[k * n + p];
                    let akq = a[k * n + q];
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let apk = a[p * n + k];
                    let aqk = a[q * n + k];
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
            }
        }
    }
    (0..n).map(|i| a[i * n + i]).collect()
}

/// Surprise energy of observed transitions: `‖P(E(o), a) − Ē(o')‖²` per row, for
/// observations `[B, n_obs]`, normalized actions `[B, n_actions]` and next observations
/// `[B, n_obs]`.
pub fn surprise(model: &WorldModel, o: &Tensor, a: &Tensor, next: &Tensor) -> Result<Vec<f32>> {
    let predicted = model.predict(&model.encode(o)?, a)?;
    let target = model.encode_target(next)?;
    (predicted - target)?.sqr()?.sum(1)?.to_vec1()
}

/// Computes the surprise threshold: the 99th percentile of the surprise over every
/// transition of `data`. A transition above it is less plausible than 99% of what the model trained on.
pub fn surprise_threshold(
    model: &WorldModel,
    data: &Dataset,
    observer: &Observer,
    device: &Device,
) -> Result<f64> {
    let norm = &observer.normalization;
    let (ns, na, no) = (data.n_states(), data.n_actions(), observer.width());
    let (mut s, mut a, mut n) = (Vec::new(), Vec::new(), Vec::new());
    for (e, ep) in data.episodes.iter().enumerate() {
        let observations = observer.observe(&ep.states);
        for t in 0..data.len(e) {
            s.extend_from_slice(&observations[t * no..(t + 1) * no]);
            a.extend(norm.action(&ep.actions[t * na..(t + 1) * na]));
            n.extend_from_slice(&observations[(t + 1) * no..(t + 2) * no]);
        }
    }
    let rows = s.len() / no.max(1);
    if rows == 0 || ns == 0 {
        return Ok(f64::INFINITY);
    }
    let mut values = surprise(
        model,
        &Tensor::from_vec(s, (rows, no), device)?,
        &Tensor::from_vec(a, (rows, na), device)?,
        &Tensor::from_vec(n, (rows, no), device)?,
    )?;
    values.sort_by(|x, y| x.total_cmp(y));
    let index = ((rows as f64 * 0.99).ceil() as usize).clamp(1, rows) - 1;
    Ok(values[index] as f64)
}
