//! Seeded random numbers for scenarios: a SplitMix64 generator, seed derivation for
//! parallel episodes, and the Ornstein–Uhlenbeck process that makes smooth random actions.
//!
//! Every random draw in a scenario comes from here, so a seed fixes a whole run on every
//! platform that rounds `f64` arithmetic the same way.

/// SplitMix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number generators",
/// OOPSLA 2014): a 64-bit state advanced by a fixed odd constant and mixed on output.
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.state)
    }

    /// Draws a uniform sample in `[0, 1)` with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Draws a uniform sample in `[lower, upper)`.
    pub fn range(&mut self, lower: f64, upper: f64) -> f64 {
        lower + (upper - lower) * self.uniform()
    }

    /// Draws a uniform index in `0..count`, which must not be empty.
    pub fn index(&mut self, count: usize) -> usize {
        ((self.uniform() * count as f64) as usize).min(count - 1)
    }

    /// Draws a standard normal sample by the Box–Muller transform.
    pub fn normal(&mut self) -> f64 {
        // 1 − u lies in (0, 1], so the logarithm is finite.
        let radius = (-2.0 * (1.0 - self.uniform()).ln()).sqrt();
        radius * (std::f64::consts::TAU * self.uniform()).cos()
    }
}

/// The SplitMix64 output function, a bijection on `u64` that spreads every input bit.
fn mix(value: u64) -> u64 {
    let mut z = value;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Derives the seed of stream `index` from a base seed, for episodes that run in any order.
pub fn derive_seed(seed: u64, index: u64) -> u64 {
    mix(seed ^ mix(index.wrapping_add(0x6a09_e667_f3bc_c909)))
}

/// An Ornstein–Uhlenbeck process per action component, scaled to the component's bounds.
///
/// Each component moves as `dx = −θ·x·dt + σ·√dt·N(0, 1)` on the normalized range
/// `[−1, 1]`, then maps linearly onto `[lower, upper]`, and a value that would leave the
/// range is clamped to its edge. The stationary standard deviation is `σ / √(2θ)`.
#[derive(Clone, Debug)]
pub struct OrnsteinUhlenbeck {
    /// Mean reversion rate θ, 1/s.
    pub theta: f64,
    /// Noise intensity σ, 1/√s on the normalized range.
    pub sigma: f64,
    bounds: Vec<(f64, f64)>,
    normalized: Vec<f64>,
}

impl OrnsteinUhlenbeck {
    /// Mean reversion rate of [`OrnsteinUhlenbeck::new`]: a correlation time of 1 s.
    pub const DEFAULT_THETA: f64 = 1.0;
    /// Noise intensity of [`OrnsteinUhlenbeck::new`]: a stationary standard deviation of
    /// half the range (σ / √(2θ) = 0.5).
    pub const DEFAULT_SIGMA: f64 = std::f64::consts::FRAC_1_SQRT_2;

    /// Creates a process over components with the given `(lower, upper)` bounds, started from
    /// its stationary distribution.
    pub fn new(bounds: Vec<(f64, f64)>, rng: &mut Rng) -> Self {
        let mut process = OrnsteinUhlenbeck {
            theta: Self::DEFAULT_THETA,
            sigma: Self::DEFAULT_SIGMA,
            normalized: vec![0.0; bounds.len()],
            bounds,
        };
        let spread = process.sigma / (2.0 * process.theta).sqrt();
        for value in &mut process.normalized {
            *value = (spread * rng.normal()).clamp(-1.0, 1.0);
        }
        process
    }

    /// Returns the current action in SI units.
    pub fn action(&self) -> Vec<f64> {
        self.normalized
            .iter()
            .zip(&self.bounds)
            .map(|(&value, &(lower, upper))| lower + (value + 1.0) * 0.5 * (upper - lower))
            .collect()
    }

    /// Advances the process by `dt` seconds (exact discretization of the linear drift).
    pub fn advance(&mut self, dt: f64, rng: &mut Rng) {
        let decay = (-self.theta * dt).exp();
        let noise = self.sigma * ((1.0 - decay * decay) / (2.0 * self.theta)).sqrt();
        for value in &mut self.normalized {
            *value = (*value * decay + noise * rng.normal()).clamp(-1.0, 1.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_stays_in_unit_interval() {
        let mut rng = Rng::new(7);
        for _ in 0..10_000 {
            let value = rng.uniform();
            assert!((0.0..1.0).contains(&value), "{value} is outside [0, 1)");
        }
    }

    #[test]
    fn normal_has_unit_variance() {
        let mut rng = Rng::new(11);
        let samples: Vec<f64> = (0..50_000).map(|_| rng.normal()).collect();
        let mean = samples.iter().sum::<f64>() / samples.len() as f64;
        let variance =
            samples.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / samples.len() as f64;
        assert!(mean.abs() < 0.02, "mean {mean}");
        assert!((variance - 1.0).abs() < 0.03, "variance {variance}");
    }

    #[test]
    fn derived_seeds_differ_per_index() {
        let seeds: Vec<u64> = (0..100).map(|index| derive_seed(42, index)).collect();
        let mut unique = seeds.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), seeds.len());
    }

    #[test]
    fn ornstein_uhlenbeck_stays_within_bounds() {
        let mut rng = Rng::new(3);
        let mut process = OrnsteinUhlenbeck::new(vec![(-2.0, 2.0), (0.5, 1.5)], &mut rng);
        for _ in 0..5_000 {
            process.advance(0.05, &mut rng);
            let action = process.action();
            assert!((-2.0..=2.0).contains(&action[0]), "{action:?}");
            assert!((0.5..=1.5).contains(&action[1]), "{action:?}");
        }
    }

    #[test]
    fn ornstein_uhlenbeck_is_smooth() {
        // With θ = 1/s the change over 10 ms has standard deviation σ·√0.01 ≈ 0.07 of the
        // normalized range, far below the jumps of white noise.
        let mut rng = Rng::new(5);
        let mut process = OrnsteinUhlenbeck::new(vec![(-1.0, 1.0)], &mut rng);
        let mut largest_jump: f64 = 0.0;
        let mut previous = process.action()[0];
        for _ in 0..2_000 {
            process.advance(0.01, &mut rng);
            let current = process.action()[0];
            largest_jump = largest_jump.max((current - previous).abs());
            previous = current;
        }
        assert!(largest_jump < 0.35, "largest jump {largest_jump}");
    }
}
