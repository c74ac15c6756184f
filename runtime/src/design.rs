//! Design problems: choosing the design variables of a plan that minimize its energy, and
//! explaining the solution term by term.
//!
//! The solver is the cross-entropy method over continuous variables (a Gaussian per
//! variable, clipped to its range) and discrete choices (a categorical distribution per
//! variable), followed by projected gradient descent on the continuous variables through
//! the energy's gradient. Both read the plan's `cem` and `gradient` solver stages. A warm
//! start (the previous solution) centres the first distribution there, which is how a
//! refinement re-solves from the previous answer instead of from scratch.
//!
//! Explanations report every term's energy and share, the dominant term, the hard term
//! with the smallest margin and, for an infeasible problem, a smallest set of hard terms
//! that no design satisfies together, found by a deletion filter: drop one term at a time
//! and keep it dropped when the rest stay infeasible.

use basin_compiler::energy::{self, Inputs, Shape};
use basin_compiler::plan::{Domain, Edit, Plan, SettingValue, TermKind};

use crate::model::Rng;

/// Settings of the design solver, from the plan's solver stages where given.
#[derive(Clone, Debug, PartialEq)]
pub struct DesignSettings {
    pub samples: usize,
    pub iterations: usize,
    pub elites: usize,
    pub gradient_steps: usize,
    /// Initial step of the projected gradient descent, as a fraction of each variable's range.
    pub learning_rate: f64,
    pub seed: u64,
}

impl Default for DesignSettings {
    fn default() -> Self {
        DesignSettings { samples: 256, iterations: 8, elites: 16, gradient_steps: 20, learning_rate: 0.05, seed: 0 }
    }
}

impl DesignSettings {
    pub fn from_plan(plan: &Plan) -> DesignSettings {
        let mut s = DesignSettings::default();
        for stage in &plan.solver {
            for setting in &stage.settings {
                let SettingValue::Number(v) = setting.value else { continue };
                let n = v.0.max(0.0);
                match (stage.name.as_str(), setting.name.as_str()) {
                    ("cem" | "mppi", "samples") => s.samples = (n as usize).max(2),
                    ("cem" | "mppi", "iterations") => s.iterations = (n as usize).max(1),
                    ("cem", "elites") => s.elites = (n as usize).max(1),
                    ("gradient", "steps") => s.gradient_steps = n as usize,
                    ("gradient", "learning_rate") => s.learning_rate = n,
                    _ => {}
                }
            }
        }
        s.elites = s.elites.min(s.samples);
        s
    }
}

/// Computes every parameter's value after applying the named refinements in order (timed
/// steps included, since a design has no time).
pub fn params_after(plan: &Plan, refinements: &[&str]) -> Vec<f64> {
    let mut values: Vec<f64> = plan.params.iter().map(|p| p.value.0).collect();
    for name in refinements {
        let Some(r) = plan.refinements.iter().find(|r| r.name == *name) else { continue };
        for step in &r.steps {
            if let Edit::Param { param, op, value } = &step.edit {
                let Some(i) = plan.params.iter().position(|p| &p.name == param) else { continue };
                let v = value.0;
                values[i] = match op.as_str() {
                    "=" => v,
                    "+=" => values[i] + v,
                    "-=" => values[i] - v,
                    "*=" => values[i] * v,
                    "/=" => values[i] / v,
                    _ => values[i],
                };
            }
        }
    }
    values
}

/// One term in an explanation.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TermReport {
    pub name: String,
    pub line: u32,
    pub source: String,
    pub hard: bool,
    pub energy: f64,
    /// Fraction of the total energy, from 0 to 1 (0 when the total is not positive).
    pub share: f64,
    /// Positive when the term's condition holds, by that margin in SI units.
    pub robustness: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Explanation {
    pub total: f64,
    pub terms: Vec<TermReport>,
    /// Index into `terms` of the term with the largest energy.
    pub dominant: Option<usize>,
    /// Index of the hard term with the smallest robustness, and that robustness.
    pub tightest_hard: Option<(usize, f64)>,
    /// Hard terms violated at this design.
    pub violated: Vec<usize>,
}

impl Explanation {
    pub fn render(&self) -> String {
        let mut out = format!("{:<24} {:>5} {:>14} {:>7} {:>14}\n", "term", "line", "energy", "share", "margin");
        for (i, t) in self.terms.iter().enumerate() {
            let margin = t.robustness.map_or("-".to_string(), |r| format!("{r:.6}"));
            let mark = match (Some(i) == self.dominant, self.violated.contains(&i)) {
                (_, true) => "  violated",
                (true, false) => "  dominant",
                _ => "",
            };
            let kind = if t.hard { "hard" } else { "soft" };
            out.push_str(&format!("{:<24} {:>5} {:>14.6} {:>6.1}% {:>14} {kind}{mark}\n", t.name, t.line, t.energy, t.share * 100.0, margin));
        }
        out.push_str(&format!("total energy {:.6}\n", self.total));
        if let Some((i, r)) = self.tightest_hard {
            out.push_str(&format!("smallest hard margin: {} (line {}) at {r:.6}\n", self.terms[i].name, self.terms[i].line));
        }
        out
    }
}

fn inputs<'a>(design: &'a [f64], params: &'a [f64]) -> Inputs<'a> {
    Inputs { time0: 0.0, states: &[], actions: &[], design, params, fields: &[] }
}

/// Explains the energy of `design` term by term.
pub fn explain(plan: &Plan, design: &[f64], params: &[f64]) -> Explanation {
    let inp = inputs(design, params);
    let evaluation = energy::evaluate(plan, &inp);
    let nodes = energy::evaluate_nodes(plan, &inp);
    let positive: f64 = evaluation.terms.iter().filter(|e| e.is_finite() && **e > 0.0).sum();
    let terms: Vec<TermReport> = plan
        .terms
        .iter()
        .zip(&evaluation.terms)
        .map(|(t, &e)| TermReport {
            name: t.name.clone(),
            line: t.line,
            source: t.source.clone(),
            hard: t.hard,
            energy: e,
            share: if positive > 0.0 && e > 0.0 { e / positive } else { 0.0 },
            robustness: t.robustness.map(|r| nodes[r as usize].at(0)),
        })
        .collect();
    let dominant = terms.iter().enumerate().filter(|(_, t)| t.energy.is_finite()).max_by(|a, b| a.1.energy.total_cmp(&b.1.energy)).map(|(i, _)| i);
    let tightest_hard = terms
        .iter()
        .enumerate()
        .filter_map(|(i, t)| if t.hard { t.robustness.map(|r| (i, r)) } else { None })
        .min_by(|a, b| a.1.total_cmp(&b.1));
    let violated = terms.iter().enumerate().filter(|(_, t)| t.hard && t.robustness.is_some_and(|r| r < 0.0)).map(|(i, _)| i).collect();
    Explanation { total: evaluation.total, terms, dominant, tightest_hard, violated }
}

/// The solution of the design solver.
#[derive(Clone, Debug, PartialEq)]
pub struct DesignSolution {
    /// One value per design variable; a discrete variable stores its choice's index.
    pub values: Vec<f64>,
    pub total: f64,
    pub explanation: Explanation,
    /// Energy evaluations spent.
    pub evaluations: usize,
}

/// The quantity the solver minimizes: every term, or only the violation of some hard terms
/// (used when searching for a conflicting set).
#[derive(Clone, Copy)]
enum Objective<'a> {
    Total,
    HardViolation(&'a [usize]),
}

/// A design's rank: total violation of the hard terms, then the energy of the soft terms.
/// Feasible designs always rank before infeasible ones, so hard terms act as constraints
/// rather than as large penalties whose smoothing would keep the solution off the boundary.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Score {
    violation: f64,
    soft: f64,
}

impl Score {
    const WORST: Score = Score { violation: f64::INFINITY, soft: f64::INFINITY };

    fn better_than(self, other: Score) -> bool {
        self.cmp(other) == std::cmp::Ordering::Less
    }

    fn cmp(self, other: Score) -> std::cmp::Ordering {
        self.violation.total_cmp(&other.violation).then(self.soft.total_cmp(&other.soft))
    }
}

fn score(plan: &Plan, design: &[f64], params: &[f64], objective: Objective<'_>) -> Score {
    let inp = inputs(design, params);
    let nodes = energy::evaluate_nodes(plan, &inp);
    let violation_of = |i: usize| -> f64 {
        match plan.terms[i].robustness {
            Some(r) => {
                let v = nodes[r as usize].at(0);
                if v.is_finite() { (-v).max(0.0) } else { f64::INFINITY }
            }
            None => 0.0,
        }
    };
    match objective {
        Objective::Total => {
            let violation: f64 = (0..plan.terms.len()).filter(|&i| plan.terms[i].hard).map(violation_of).sum();
            let soft: f64 = plan.terms.iter().filter(|t| !t.hard).map(|t| nodes[t.energy as usize].at(0)).sum();
            Score { violation, soft: if soft.is_finite() { soft } else { f64::INFINITY } }
        }
        Objective::HardViolation(subset) => Score { violation: subset.iter().map(|&i| violation_of(i)).sum(), soft: 0.0 },
    }
}

struct Variable {
    continuous: Option<(f64, f64)>,
    choices: usize,
}

fn variables(plan: &Plan) -> Vec<Variable> {
    plan.designs
        .iter()
        .flat_map(|d| d.variables.iter())
        .map(|v| match &v.domain {
            Domain::Continuous { lower, upper } => Variable { continuous: Some((lower.0, upper.0)), choices: 0 },
            Domain::Discrete { choices } => Variable { continuous: None, choices: choices.len().max(1) },
        })
        .collect()
}

fn uniform(rng: &mut Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

fn normal(rng: &mut Rng) -> f64 {
    // Box-Muller with a guard against ln(0).
    let u1 = uniform(rng).max(1e-300);
    let u2 = uniform(rng);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn minimize(plan: &Plan, params: &[f64], settings: &DesignSettings, warm: Option<&[f64]>, objective: Objective<'_>) -> (Vec<f64>, Score, usize) {
    let vars = variables(plan);
    let mut rng = Rng::new(settings.seed);
    let mut mean: Vec<f64> = Vec::new();
    let mut std: Vec<f64> = Vec::new();
    let mut probs: Vec<Vec<f64>> = Vec::new();
    for (i, v) in vars.iter().enumerate() {
        match v.continuous {
            Some((lo, hi)) => {
                let start = warm.map_or(0.5 * (lo + hi), |w| w[i].clamp(lo, hi));
                mean.push(start);
                // A warm start searches near the previous answer first.
                std.push(if warm.is_some() { 0.1 * (hi - lo) } else { 0.3 * (hi - lo) });
                probs.push(Vec::new());
            }
            None => {
                let mut p = vec![1.0 / v.choices as f64; v.choices];
                if let Some(w) = warm {
                    let k = (w[i].round().max(0.0) as usize).min(v.choices - 1);
                    p = vec![0.3 / v.choices as f64; v.choices];
                    p[k] += 0.7;
                }
                mean.push(0.0);
                std.push(0.0);
                probs.push(p);
            }
        }
    }
    let mut best: (Vec<f64>, Score) = match warm {
        Some(w) => (w.to_vec(), score(plan, w, params, objective)),
        None => (mean.clone(), Score::WORST),
    };
    let mut evaluations = 0;
    for _ in 0..settings.iterations {
        let mut population: Vec<(Vec<f64>, Score)> = Vec::with_capacity(settings.samples);
        for _ in 0..settings.samples {
            let x: Vec<f64> = vars
                .iter()
                .enumerate()
                .map(|(i, v)| match v.continuous {
                    Some((lo, hi)) => (mean[i] + std[i] * normal(&mut rng)).clamp(lo, hi),
                    None => {
                        let r = uniform(&mut rng);
                        let mut acc = 0.0;
                        let mut pick = v.choices - 1;
                        for (k, p) in probs[i].iter().enumerate() {
                            acc += p;
                            if r < acc {
                                pick = k;
                                break;
                            }
                        }
                        pick as f64
                    }
                })
                .collect();
            let s = score(plan, &x, params, objective);
            evaluations += 1;
            population.push((x, s));
        }
        population.sort_by(|a, b| a.1.cmp(b.1));
        if population[0].1.better_than(best.1) {
            best = population[0].clone();
        }
        let elites = &population[..settings.elites.max(1).min(population.len())];
        for (i, v) in vars.iter().enumerate() {
            match v.continuous {
                Some((lo, hi)) => {
                    let m = elites.iter().map(|e| e.0[i]).sum::<f64>() / elites.len() as f64;
                    let var = elites.iter().map(|e| (e.0[i] - m).powi(2)).sum::<f64>() / elites.len() as f64;
                    mean[i] = m;
                    std[i] = var.sqrt().max(1e-4 * (hi - lo));
                }
                None => {
                    let mut counts = vec![0.0; v.choices];
                    for e in elites {
                        counts[e.0[i] as usize] += 1.0;
                    }
                    // Keep every choice possible, so a later iteration can still find it.
                    for (k, c) in counts.iter().enumerate() {
                        probs[i][k] = 0.9 * c / elites.len() as f64 + 0.1 / v.choices as f64;
                    }
                }
            }
        }
    }
    (best.0, best.1, evaluations)
}

/// Projected gradient descent on the continuous variables, with a step halved whenever it
/// does not lower the energy.
fn refine_gradient(plan: &Plan, params: &[f64], settings: &DesignSettings, start: Vec<f64>, start_score: Score) -> (Vec<f64>, Score, usize) {
    let vars = variables(plan);
    let shape = Shape::of(plan);
    let mut x = start;
    let mut fx = start_score;
    let mut rate = settings.learning_rate;
    let mut evaluations = 0;
    for _ in 0..settings.gradient_steps {
        let (evaluation, grad) = energy::gradient(plan, &inputs(&x, params));
        evaluations += 1;
        if !evaluation.total.is_finite() || grad.design.len() != shape.n_design {
            break;
        }
        let mut candidate = x.clone();
        for (i, v) in vars.iter().enumerate() {
            if let Some((lo, hi)) = v.continuous {
                let g = grad.design[i];
                if g.is_finite() && g != 0.0 {
                    // Normalized step: `rate` of the range along the sign of the gradient,
                    // scaled by the gradient's relative size.
                    let norm: f64 = grad.design.iter().filter(|g| g.is_finite()).map(|g| g * g).sum::<f64>().sqrt();
                    candidate[i] = (x[i] - rate * (hi - lo) * g / norm).clamp(lo, hi);
                }
            }
        }
        let fc = score(plan, &candidate, params, Objective::Total);
        evaluations += 1;
        if fc.better_than(fx) {
            x = candidate;
            fx = fc;
        } else {
            rate *= 0.5;
            if rate < 1e-6 {
                break;
            }
        }
    }
    (x, fx, evaluations)
}

/// Solves the design problem of `plan` with parameters `params`, optionally warm-started.
pub fn solve(plan: &Plan, params: &[f64], settings: &DesignSettings, warm: Option<&[f64]>) -> DesignSolution {
    let _span = tracing::info_span!("design solve", samples = settings.samples, iterations = settings.iterations).entered();
    let (x, fx, n1) = minimize(plan, params, settings, warm, Objective::Total);
    let (x, _, n2) = refine_gradient(plan, params, settings, x, fx);
    let explanation = explain(plan, &x, params);
    DesignSolution { values: x, total: explanation.total, explanation, evaluations: n1 + n2 }
}

/// Finds a smallest set of hard terms that no design in the declared ranges satisfies
/// together, or returns an empty list when the best design found satisfies every hard term.
pub fn conflicting_hard_terms(plan: &Plan, params: &[f64], settings: &DesignSettings) -> Vec<usize> {
    let hard: Vec<usize> = plan.terms.iter().enumerate().filter(|(_, t)| t.hard && t.kind == TermKind::Condition && t.robustness.is_some()).map(|(i, _)| i).collect();
    let infeasible = |subset: &[usize]| -> bool {
        if subset.is_empty() {
            return false;
        }
        let (_, best, _) = minimize(plan, params, settings, None, Objective::HardViolation(subset));
        best.violation > 1e-9
    };
    if !infeasible(&hard) {
        return Vec::new();
    }
    let mut set = hard;
    let mut i = 0;
    while i < set.len() {
        let mut without = set.clone();
        without.remove(i);
        if infeasible(&without) {
            set = without;
        } else {
            i += 1;
        }
    }
    set
}
