//! States integrated from the rates the world model predicts: the pose of a mobile base
//! and a periodic angle.
//!
//! A network that predicts a base's absolute position has to learn `x' = x + v cos θ · dt`
//! across the whole map. In its data one step moves the base by a few hundredths of the
//! position's spread, since a 0.1 m step is small next to a 20 m floor. That step is lost in
//! the network's own error, and such a model could not tell driving forward from driving
//! backward. The relation is known exactly, so Basin does not learn it. When the state
//! contains a base's forward velocity and turn rate next to its pose, the encoder gets
//! neither the position nor the heading. The occupancy patch, cut in the robot's frame,
//! describes the surroundings. The network predicts the velocities, which is where
//! acceleration limits and contacts with obstacles act, and the pose follows from them by
//! the trapezoidal rule:
//!
//! ```text
//! θ_{k+1} = θ_k + dt (ω_k + ω_{k+1}) / 2
//! x_{k+1} = x_k + dt (v_k + v_{k+1}) / 2 · cos((θ_k + θ_{k+1}) / 2)
//! y_{k+1} = y_k + dt (v_k + v_{k+1}) / 2 · sin((θ_k + θ_{k+1}) / 2)
//! ```
//!
//! The velocity of an acceleration-limited base changes linearly within a step, where the
//! trapezoidal rule is exact, so the remaining error is where a step starts or stops a
//! ramp or meets an obstacle. The model is the same anywhere on the map and at any heading,
//! which lets a few hundred episodes cover it.
//!
//! A periodic angle with its rate beside it (a pendulum's `angle` and `angular_velocity`)
//! is handled alike: the encoder reads its sine and cosine (`super::patch::Observer`), so a
//! pendulum that has swung over the top three times looks as it did after the first, and the
//! angle follows from the predicted rate by the same rule, `θ_{k+1} = θ_k + dt (ω_k +
//! ω_{k+1}) / 2`. A network that read the raw angle would see values past any it trained
//! on once the pendulum kept turning.

use super::net::Dims;

/// The states that rollouts integrate, and the rates they come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Kinematics {
    /// Columns of `x`, `y` (metres) and `heading` (radians), and of the forward velocity
    /// (m/s) and turn rate (rad/s) that move them.
    pub base: Option<([usize; 3], [usize; 2])>,
    /// Columns of a periodic angle and its rate.
    pub angle: Option<[usize; 2]>,
}

impl Kinematics {
    /// Returns what a model with dimensions `dims` integrates; `None` when it predicts every
    /// state.
    pub fn of(dims: &Dims) -> Option<Kinematics> {
        let base = dims
            .patch
            .and_then(|spec| spec.velocity.map(|velocity| (spec.pose, velocity)));
        (base.is_some() || dims.angle.is_some()).then_some(Kinematics {
            base,
            angle: dims.angle,
        })
    }

    /// Overwrites the integrated columns of rows `1..` of `rows` (`[steps + 1, n_states]`,
    /// SI units) by integrating their rates from row 0.
    pub fn integrate(&self, rows: &mut [f64], n_states: usize, dt: f64) {
        let steps = rows.len() / n_states.max(1);
        if let Some([ca, cr]) = self.angle {
            for k in 1..steps {
                let (previous, row) = ((k - 1) * n_states, k * n_states);
                rows[row + ca] = rows[previous + ca] + 0.5 * dt * (rows[previous + cr] + rows[row + cr]);
            }
        }
        let Some(([cx, cy, ch], [cv, cw])) = self.base else {
            return;
        };
        for k in 1..steps {
            let (before, after) = rows.split_at_mut(k * n_states);
            let previous = &before[(k - 1) * n_states..];
            let row = &mut after[..n_states];
            let heading = previous[ch] + 0.5 * dt * (previous[cw] + row[cw]);
            let mid = 0.5 * (previous[ch] + heading);
            let distance = 0.5 * dt * (previous[cv] + row[cv]);
            row[cx] = previous[cx] + distance * mid.cos();
            row[cy] = previous[cy] + distance * mid.sin();
            row[ch] = heading;
        }
    }

    /// Turns `grad`, the gradient of an energy with respect to the integrated `rows`, into
    /// the gradient with respect to the predicted rows, in place. The integrated entries of
    /// rows `1..` pass their share on to the rates and to the earlier rows they were
    /// integrated from. They end up zero, since the network's outputs there are not used.
    /// Row 0 is the observed state and keeps its entries.
    pub fn pull_back(&self, rows: &[f64], grad: &mut [f64], n_states: usize, dt: f64) {
        let steps = rows.len() / n_states.max(1);
        if let Some([ca, cr]) = self.angle {
            for k in (1..steps).rev() {
                let g = grad[k * n_states + ca];
                grad[(k - 1) * n_states + ca] += g;
                grad[(k - 1) * n_states + cr] += 0.5 * dt * g;
                grad[k * n_states + cr] += 0.5 * dt * g;
                grad[k * n_states + ca] = 0.0;
            }
        }
        let Some(([cx, cy, ch], [cv, cw])) = self.base else {
            return;
        };
        for k in (1..steps).rev() {
            let previous = &rows[(k - 1) * n_states..k * n_states];
            let row = &rows[k * n_states..(k + 1) * n_states];
            let (gx, gy, gh) = (grad[k * n_states + cx], grad[k * n_states + cy], grad[k * n_states + ch]);
            let mid = 0.5 * (previous[ch] + row[ch]);
            let (sin, cos) = mid.sin_cos();
            let distance = 0.5 * dt * (previous[cv] + row[cv]);
            // Through `mid = θ_{k-1} + dt (ω_{k-1} + ω_k) / 4`.
            let g_mid = distance * (gy * cos - gx * sin);
            let g_speed = 0.5 * dt * (gx * cos + gy * sin);
            let g_turn = 0.5 * dt * gh + 0.25 * dt * g_mid;
            for r in [k - 1, k] {
                grad[r * n_states + cv] += g_speed;
                grad[r * n_states + cw] += g_turn;
            }
            grad[(k - 1) * n_states + cx] += gx;
            grad[(k - 1) * n_states + cy] += gy;
            grad[(k - 1) * n_states + ch] += gh + g_mid;
            grad[k * n_states + cx] = 0.0;
            grad[k * n_states + cy] = 0.0;
            grad[k * n_states + ch] = 0.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Kinematics = Kinematics {
        base: Some(([0, 1, 2], [3, 4])),
        angle: None,
    };
    /// A pendulum's `[angle, angular_velocity]`.
    const SWING: Kinematics = Kinematics {
        base: None,
        angle: Some([0, 1]),
    };

    #[test]
    fn angle_follows_its_rate_past_a_full_turn() {
        // A rate rising linearly from 0 to 10 rad/s over 1 s turns the angle by 5 rad.
        let mut rows: Vec<f64> = (0..=10).flat_map(|k| [if k == 0 { 3.0 } else { -99.0 }, k as f64]).collect();
        SWING.integrate(&mut rows, 2, 0.1);
        assert!((rows[20] - 8.0).abs() < 1e-12, "angle {}", rows[20]);
        let mut grad = vec![0.0; rows.len()];
        grad[20] = 1.0;
        SWING.pull_back(&rows, &mut grad, 2, 0.1);
        // dθ_10/dω_k is dt for the inner rates and dt/2 at both ends.
        for k in 1..=10 {
            let expected = if k == 10 { 0.05 } else { 0.1 };
            assert!((grad[2 * k + 1] - expected).abs() < 1e-12, "rate {k}: {}", grad[2 * k + 1]);
            assert_eq!(grad[2 * k], 0.0, "angle {k} kept its gradient");
        }
    }

    /// Rows `[x, y, heading, v, ω]` with the given velocities and a zero pose after row 0.
    fn rows(start: [f64; 3], velocities: &[[f64; 2]]) -> Vec<f64> {
        let mut out = Vec::new();
        for (k, [v, w]) in velocities.iter().enumerate() {
            let pose = if k == 0 { start } else { [0.0; 3] };
            out.extend(pose);
            out.extend([*v, *w]);
        }
        out
    }

    #[test]
    fn constant_turn_follows_the_circle() {
        // At 1 m/s and 0.5 rad/s the base runs on a circle of radius 2 m about (0, 2).
        let steps = 40;
        let mut states = rows([0.0, 0.0, 0.0], &vec![[1.0, 0.5]; steps + 1]);
        BASE.integrate(&mut states, 5, 0.1);
        let last = &states[steps * 5..];
        let angle: f64 = 0.5 * 0.1 * steps as f64;
        let expected = [2.0 * angle.sin(), 2.0 - 2.0 * angle.cos(), angle];
        for i in 0..3 {
            assert!((last[i] - expected[i]).abs() < 1e-3, "{i}: {} vs {}", last[i], expected[i]);
        }
    }

    #[test]
    fn ramp_integrates_exactly() {
        // Accelerating at 1 m/s² from rest along +y covers t²/2.
        let velocities: Vec<[f64; 2]> = (0..=10).map(|k| [0.1 * k as f64, 0.0]).collect();
        let mut states = rows([1.0, 2.0, std::f64::consts::FRAC_PI_2], &velocities);
        BASE.integrate(&mut states, 5, 0.1);
        let last = &states[10 * 5..];
        assert!((last[0] - 1.0).abs() < 1e-12, "x {}", last[0]);
        assert!((last[1] - 2.5).abs() < 1e-12, "y {}", last[1]);
    }

    #[test]
    fn pull_back_matches_finite_differences() {
        let velocities = [[0.2, 0.3], [0.5, -0.4], [0.9, 0.8], [0.7, 1.1], [0.1, -0.6]];
        let base = rows([0.5, -1.0, 0.7], &velocities);
        let n = base.len();
        // An energy `Σ c_i s_i` with fixed weights over the integrated rows.
        let weights: Vec<f64> = (0..n).map(|i| ((i * 7 % 11) as f64 - 5.0) / 3.0).collect();
        let energy = |input: &[f64]| {
            let mut integrated = input.to_vec();
            BASE.integrate(&mut integrated, 5, 0.1);
            integrated.iter().zip(&weights).map(|(s, w)| s * w).sum::<f64>()
        };
        let mut integrated = base.clone();
        BASE.integrate(&mut integrated, 5, 0.1);
        let mut grad = weights.clone();
        BASE.pull_back(&integrated, &mut grad, 5, 0.1);
        for k in 1..velocities.len() {
            for c in [3, 4] {
                let i = k * 5 + c;
                let h = 1e-6;
                let (mut up, mut down) = (base.clone(), base.clone());
                up[i] += h;
                down[i] -= h;
                let numeric = (energy(&up) - energy(&down)) / (2.0 * h);
                assert!((numeric - grad[i]).abs() < 1e-6, "row {k} column {c}: {numeric} vs {}", grad[i]);
            }
            for c in 0..3 {
                assert_eq!(grad[k * 5 + c], 0.0, "pose gradient of row {k} is passed on");
            }
        }
    }
}
