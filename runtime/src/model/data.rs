//! Episodes of states and actions, and the normalization the networks train on.

/// One simulated or recorded episode: `states` has `len + 1` rows of `n_states` values and
/// `actions` has `len` rows of `n_actions` values, all in SI units.
#[derive(Clone, Debug, PartialEq)]
pub struct Episode {
    pub states: Vec<f32>,
    pub actions: Vec<f32>,
}

/// Episodes of one plan's agent, with the names that tie columns to the plan.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    pub state_names: Vec<String>,
    pub action_names: Vec<String>,
    /// Seconds per step.
    pub step: f64,
    pub episodes: Vec<Episode>,
}

impl Dataset {
    pub fn n_states(&self) -> usize {
        self.state_names.len()
    }

    pub fn n_actions(&self) -> usize {
        self.action_names.len()
    }

    /// Steps in episode `e`.
    pub fn len(&self, e: usize) -> usize {
        self.episodes[e].actions.len() / self.n_actions().max(1)
    }

    /// Checks that every episode has consistent row lengths and only finite values.
    pub fn validate(&self) -> Result<(), String> {
        let (ns, na) = (self.n_states(), self.n_actions());
        if ns == 0 {
            return Err("the dataset has no state components".into());
        }
        for (i, e) in self.episodes.iter().enumerate() {
            if na == 0 || e.actions.len() % na != 0 {
                return Err(format!(
                    "episode {i}: {} action values do not fill rows of {na}",
                    e.actions.len()
                ));
            }
            let steps = e.actions.len() / na;
            if e.states.len() != (steps + 1) * ns {
                return Err(format!(
                    "episode {i}: expected {} state values for {steps} steps, found {}",
                    (steps + 1) * ns,
                    e.states.len()
                ));
            }
            if let Some(bad) = e
                .states
                .iter()
                .chain(&e.actions)
                .position(|v| !v.is_finite())
            {
                return Err(format!("episode {i}: value {bad} is not finite"));
            }
        }
        Ok(())
    }

    /// Splits off the last `fraction` of the episodes (at least one) for evaluation.
    pub fn split(&self, fraction: f64) -> (Dataset, Dataset) {
        let held = ((self.episodes.len() as f64 * fraction).round() as usize)
            .clamp(1, self.episodes.len().saturating_sub(1).max(1));
        let cut = self.episodes.len() - held.min(self.episodes.len());
        let train = Dataset {
            episodes: self.episodes[..cut].to_vec(),
            ..self.clone_empty()
        };
        let test = Dataset {
            episodes: self.episodes[cut..].to_vec(),
            ..self.clone_empty()
        };
        (train, test)
    }

    fn clone_empty(&self) -> Dataset {
        Dataset {
            state_names: self.state_names.clone(),
            action_names: self.action_names.clone(),
            step: self.step,
            episodes: Vec::new(),
        }
    }
}

/// Per-component mean and standard deviation; networks see `(x - mean) / std`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Normalization {
    pub state_mean: Vec<f32>,
    pub state_std: Vec<f32>,
    pub action_mean: Vec<f32>,
    pub action_std: Vec<f32>,
}

fn stats(rows: impl Iterator<Item = Vec<f32>>, n: usize) -> (Vec<f32>, Vec<f32>) {
    let mut sum = vec![0f64; n];
    let mut sq = vec![0f64; n];
    let mut count = 0f64;
    for row in rows {
        for i in 0..n {
            sum[i] += row[i] as f64;
            sq[i] += (row[i] as f64).powi(2);
        }
        count += 1.0;
    }
    let count = count.max(1.0);
    let mean: Vec<f32> = sum.iter().map(|s| (s / count) as f32).collect();
    // A component that never varies gets std 1, so it is centred but not blown up.
    let std: Vec<f32> = (0..n)
        .map(|i| {
            let var = (sq[i] / count - (sum[i] / count).powi(2)).max(0.0);
            if var.sqrt() < 1e-6 {
                1.0
            } else {
                var.sqrt() as f32
            }
        })
        .collect();
    (mean, std)
}

impl Normalization {
    pub fn fit(data: &Dataset) -> Normalization {
        let (ns, na) = (data.n_states(), data.n_actions());
        let states = data
            .episodes
            .iter()
            .flat_map(|e| e.states.chunks(ns).map(|c| c.to_vec()).collect::<Vec<_>>());
        let (state_mean, state_std) = stats(states, ns);
        let actions = data.episodes.iter().flat_map(|e| {
            e.actions
                .chunks(na.max(1))
                .map(|c| c.to_vec())
                .collect::<Vec<_>>()
        });
        let (action_mean, action_std) = stats(actions, na);
        Normalization {
            state_mean,
            state_std,
            action_mean,
            action_std,
        }
    }

    pub fn state(&self, s: &[f32]) -> Vec<f32> {
        s.iter()
            .enumerate()
            .map(|(i, v)| (v - self.state_mean[i]) / self.state_std[i])
            .collect()
    }

    pub fn action(&self, a: &[f32]) -> Vec<f32> {
        a.iter()
            .enumerate()
            .map(|(i, v)| (v - self.action_mean[i]) / self.action_std[i])
            .collect()
    }

    pub fn unstate(&self, s: &[f32]) -> Vec<f32> {
        s.iter()
            .enumerate()
            .map(|(i, v)| v * self.state_std[i] + self.state_mean[i])
            .collect()
    }
}
