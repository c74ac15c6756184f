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
//! Terms may read the design's *outcomes* (its model's `state` members, such as the tip
//! margin of a load test), which no formula gives. During the search they come from an
//! [`OutcomeModel`], normally the learned surrogate of the design's scenario: each CEM
//! population is predicted in one batch, and the gradient stage chains the energy's
//! gradient with respect to the outcomes through the surrogate's autograd. Formulas of the
//! compiled energy (such as `std.mechanics.bending_stress`) are evaluated exactly beside them.
//!
//! Explanations report every term's energy and share, the dominant term, the hard term
//! with the smallest margin and, for an infeasible problem, a smallest set of hard terms
//! that no design satisfies together, found by a deletion filter: drop one term at a time
//! and keep it dropped when the rest stay infeasible.

use basin_compiler::energy::{self, Inputs, Shape};
use basin_compiler::plan::{Domain, Edit, Node, Plan, SettingValue, TermKind};

use crate::model::{Rng, Surrogate, SurrogateTarget};

/// Supplies the outcomes a plan's terms read, for designs in the plan's design layout.
pub trait OutcomeModel: Sync {
    /// Computes the state row (every state column of the plan at step 0) of each design.
    fn states(&self, designs: &[Vec<f64>]) -> Vec<Vec<f64>>;
    /// Computes the gradient of `Σ cotangent_j · state_j` with respect to the design variables.
    fn vjp(&self, design: &[f64], cotangent: &[f64]) -> Vec<f64>;
}

/// The outcomes of a design's scenario predicted by its learned surrogate.
pub struct SurrogateOutcomes<'a> {
    pub surrogate: &'a Surrogate,
    pub target: SurrogateTarget<'a>,
    /// Width of the plan's state row.
    pub n_states: usize,
}

impl OutcomeModel for SurrogateOutcomes<'_> {
    fn states(&self, designs: &[Vec<f64>]) -> Vec<Vec<f64>> {
        let n_out = self.target.design.states.len();
        let predicted = self
            .surrogate
            .predict(&self.target, designs)
            .unwrap_or_else(|e| {
                tracing::warn!("surrogate prediction failed: {e}");
                vec![vec![f64::NAN; n_out]; designs.len()]
            });
        predicted
            .into_iter()
            .map(|outcome| {
                let mut row = vec![0.0; self.n_states];
                row[self.target.state_offset..self.target.state_offset + n_out]
                    .copy_from_slice(&outcome);
                row
            })
            .collect()
    }

    fn vjp(&self, design: &[f64], cotangent: &[f64]) -> Vec<f64> {
        let n_out = self.target.design.states.len();
        let own = &cotangent[self.target.state_offset..self.target.state_offset + n_out];
        match self.surrogate.vjp(&self.target, design, own) {
            Ok((_, grad)) => grad,
            Err(e) => {
                tracing::warn!("surrogate gradient failed: {e}");
                vec![0.0; design.len()]
            }
        }
    }
}

/// A design problem: the plan, its parameter values and where its outcomes come from.
#[derive(Clone, Copy)]
pub struct Problem<'a> {
    pub plan: &'a Plan,
    pub params: &'a [f64],
    /// `None` when no term reads an outcome.
    pub outcomes: Option<&'a dyn OutcomeModel>,
}

impl<'a> Problem<'a> {
    pub fn new(plan: &'a Plan, params: &'a [f64], outcomes: Option<&'a dyn OutcomeModel>) -> Self {
        Problem {
            plan,
            params,
            outcomes,
        }
    }

    /// The state rows of `designs`: predicted outcomes, or empty rows without a model.
    fn states(&self, designs: &[Vec<f64>]) -> Vec<Vec<f64>> {
        let n = Shape::of(self.plan).n_states;
        match self.outcomes {
            Some(m) if n > 0 => m.states(designs),
            // Without a model an outcome reads NaN, so a term that needs one is not finite.
            _ => vec![vec![f64::NAN; n]; designs.len()],
        }
    }
}

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
        DesignSettings {
            samples: 256,
            iterations: 8,
            elites: 16,
            gradient_steps: 20,
            learning_rate: 0.05,
            seed: 0,
        }
    }
}

impl DesignSettings {
    pub fn from_plan(plan: &Plan) -> DesignSettings {
        let mut s = DesignSettings::default();
        for stage in &plan.solver {
            for setting in &stage.settings {
                let SettingValue::Number(v) = setting.value else {
                    continue;
                };
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
        let Some(r) = plan.refinements.iter().find(|r| r.name == *name) else {
            continue;
        };
        for step in &r.steps {
            if let Edit::Param { param, op, value } = &step.edit {
                let Some(i) = plan.params.iter().position(|p| &p.name == param) else {
                    continue;
                };
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
    /// The margin over the larger magnitude of the two compared sides, when the condition
    /// compares two values (`a <= b`): margins in pascals and in metres become comparable.
    pub relative: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Explanation {
    pub total: f64,
    pub terms: Vec<TermReport>,
    /// Index into `terms` of the term with the largest energy.
    pub dominant: Option<usize>,
    /// Index of the hard term with the smallest margin and that margin (in SI units).
    /// Margins are compared relative to the compared sides where the term has them, since
    /// raw margins of different units cannot be compared.
    pub tightest_hard: Option<(usize, f64)>,
    /// Hard terms violated at this design.
    pub violated: Vec<usize>,
}

impl Explanation {
    pub fn render(&self) -> String {
        let mut out = format!(
            "{:<24} {:>5} {:>14} {:>7} {:>16} {:>9}\n",
            "term", "line", "energy", "share", "margin (SI)", "relative"
        );
        for (i, t) in self.terms.iter().enumerate() {
            let margin = t.robustness.map_or("-".to_string(), |r| format!("{r:.6}"));
            let relative = t
                .relative
                .map_or("-".to_string(), |r| format!("{:.2}%", r * 100.0));
            let mark = match (Some(i) == self.dominant, self.violated.contains(&i)) {
                (_, true) => "  violated",
                (true, false) => "  dominant",
                _ => "",
            };
            let kind = if t.hard { "hard" } else { "soft" };
            out.push_str(&format!(
                "{:<24} {:>5} {:>14.6} {:>6.1}% {:>16} {:>9} {kind}{mark}\n",
                t.name,
                t.line,
                t.energy,
                t.share * 100.0,
                margin,
                relative
            ));
        }
        out.push_str(&format!("total energy {:.6}\n", self.total));
        if let Some((i, r)) = self.tightest_hard {
            out.push_str(&format!(
                "smallest hard margin: {} (line {}) at {r:.6}\n",
                self.terms[i].name, self.terms[i].line
            ));
        }
        out
    }
}

/// The margin of a comparison relative to its sides: the robustness of `a <= b` lowers to
/// `b − a` (under an `always` without effect in a design problem), so the margin divided by
/// `max(|a|, |b|)`. `None` for a robustness of another shape, or sides that are both zero.
fn relative_margin(plan: &Plan, nodes: &[energy::Signal], robustness: u32) -> Option<f64> {
    let mut id = robustness;
    while let Node::Always { body, .. } | Node::Eventually { body, .. } =
        &plan.graph.nodes[id as usize]
    {
        id = *body;
    }
    let Node::Sub { a, b } = &plan.graph.nodes[id as usize] else {
        return None;
    };
    let scale = nodes[*a as usize]
        .at(0)
        .abs()
        .max(nodes[*b as usize].at(0).abs());
    (scale > 0.0 && scale.is_finite()).then(|| nodes[id as usize].at(0) / scale)
}

fn inputs<'a>(design: &'a [f64], params: &'a [f64], states: &'a [f64]) -> Inputs<'a> {
    Inputs {
        time0: 0.0,
        states,
        actions: &[],
        design,
        params,
        fields: &[],
    }
}

/// Explains the energy of `design` term by term, with the outcomes of the problem's model.
pub fn explain_in(problem: &Problem<'_>, design: &[f64]) -> Explanation {
    let states = problem
        .states(std::slice::from_ref(&design.to_vec()))
        .pop()
        .unwrap_or_default();
    explain(problem.plan, design, problem.params, &states)
}

/// Explains the energy of `design` term by term, given the state row of its outcomes
/// (empty when the plan has none).
pub fn explain(plan: &Plan, design: &[f64], params: &[f64], states: &[f64]) -> Explanation {
    let inp = inputs(design, params, states);
    let evaluation = energy::evaluate(plan, &inp);
    let nodes = energy::evaluate_nodes(plan, &inp);
    let positive: f64 = evaluation
        .terms
        .iter()
        .filter(|e| e.is_finite() && **e > 0.0)
        .sum();
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
            share: if positive > 0.0 && e > 0.0 {
                e / positive
            } else {
                0.0
            },
            robustness: t.robustness.map(|r| nodes[r as usize].at(0)),
            relative: t.robustness.and_then(|r| relative_margin(plan, &nodes, r)),
        })
        .collect();
    let dominant = terms
        .iter()
        .enumerate()
        .filter(|(_, t)| t.energy.is_finite())
        .max_by(|a, b| a.1.energy.total_cmp(&b.1.energy))
        .map(|(i, _)| i);
    let tightest_hard = terms
        .iter()
        .enumerate()
        .filter_map(|(i, t)| {
            if t.hard {
                t.robustness.map(|r| (i, r, t.relative.unwrap_or(r)))
            } else {
                None
            }
        })
        .min_by(|a, b| a.2.total_cmp(&b.2))
        .map(|(i, r, _)| (i, r));
    let violated = terms
        .iter()
        .enumerate()
        .filter(|(_, t)| t.hard && t.robustness.is_some_and(|r| r < 0.0))
        .map(|(i, _)| i)
        .collect();
    Explanation {
        total: evaluation.total,
        terms,
        dominant,
        tightest_hard,
        violated,
    }
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

/// A design's rank: total violation of the hard terms (each relative to the sides it
/// compares, so pascals and metres add up), then the energy of the soft terms.
/// Feasible designs always rank before infeasible ones, so hard terms act as constraints
/// rather than as large penalties whose smoothing would keep the solution off the boundary.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Score {
    violation: f64,
    soft: f64,
}

impl Score {
    const WORST: Score = Score {
        violation: f64::INFINITY,
        soft: f64::INFINITY,
    };

    fn better_than(self, other: Score) -> bool {
        self.cmp(other) == std::cmp::Ordering::Less
    }

    fn cmp(self, other: Score) -> std::cmp::Ordering {
        self.violation
            .total_cmp(&other.violation)
            .then(self.soft.total_cmp(&other.soft))
    }
}

fn score(
    plan: &Plan,
    design: &[f64],
    params: &[f64],
    states: &[f64],
    objective: Objective<'_>,
) -> Score {
    let inp = inputs(design, params, states);
    let nodes = energy::evaluate_nodes(plan, &inp);
    let violation_of = |i: usize| -> f64 {
        match plan.terms[i].robustness {
            Some(r) => {
                // Violations of different units are summed relative to their sides.
                let v = relative_margin(plan, &nodes, r).unwrap_or_else(|| nodes[r as usize].at(0));
                if v.is_finite() {
                    (-v).max(0.0)
                } else {
                    f64::INFINITY
                }
            }
            None => 0.0,
        }
    };
    match objective {
        Objective::Total => {
            let violation: f64 = (0..plan.terms.len())
                .filter(|&i| plan.terms[i].hard)
                .map(violation_of)
                .sum();
            let soft: f64 = plan
                .terms
                .iter()
                .filter(|t| !t.hard)
                .map(|t| nodes[t.energy as usize].at(0))
                .sum();
            Score {
                violation,
                soft: if soft.is_finite() {
                    soft
                } else {
                    f64::INFINITY
                },
            }
        }
        Objective::HardViolation(subset) => Score {
            violation: subset.iter().map(|&i| violation_of(i)).sum(),
            soft: 0.0,
        },
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
            Domain::Continuous { lower, upper } => Variable {
                continuous: Some((lower.0, upper.0)),
                choices: 0,
            },
            Domain::Discrete { choices } => Variable {
                continuous: None,
                choices: choices.len().max(1),
            },
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

fn minimize(
    problem: &Problem<'_>,
    settings: &DesignSettings,
    warm: Option<&[f64]>,
    objective: Objective<'_>,
) -> (Vec<f64>, Score, usize) {
    let (plan, params) = (problem.plan, problem.params);
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
                std.push(if warm.is_some() {
                    0.1 * (hi - lo)
                } else {
                    0.3 * (hi - lo)
                });
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
        Some(w) => {
            let states = problem.states(&[w.to_vec()]).pop().unwrap_or_default();
            (w.to_vec(), score(plan, w, params, &states, objective))
        }
        None => (mean.clone(), Score::WORST),
    };
    let mut evaluations = 0;
    for _ in 0..settings.iterations {
        let mut designs: Vec<Vec<f64>> = Vec::with_capacity(settings.samples);
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
            designs.push(x);
        }
        // One batch through the outcome model per population.
        let states = problem.states(&designs);
        evaluations += designs.len();
        let mut population: Vec<(Vec<f64>, Score)> = designs
            .into_iter()
            .zip(&states)
            .map(|(x, st)| {
                let s = score(plan, &x, params, st, objective);
                (x, s)
            })
            .collect();
        population.sort_by(|a, b| a.1.cmp(b.1));
        if population[0].1.better_than(best.1) {
            best = population[0].clone();
        }
        let elites = &population[..settings.elites.max(1).min(population.len())];
        for (i, v) in vars.iter().enumerate() {
            match v.continuous {
                Some((lo, hi)) => {
                    let m = elites.iter().map(|e| e.0[i]).sum::<f64>() / elites.len() as f64;
                    let var = elites.iter().map(|e| (e.0[i] - m).powi(2)).sum::<f64>()
                        / elites.len() as f64;
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
fn refine_gradient(
    problem: &Problem<'_>,
    settings: &DesignSettings,
    start: Vec<f64>,
    start_score: Score,
) -> (Vec<f64>, Score, usize) {
    let (plan, params) = (problem.plan, problem.params);
    let vars = variables(plan);
    let shape = Shape::of(plan);
    let mut x = start;
    let mut fx = start_score;
    let mut rate = settings.learning_rate;
    let mut evaluations = 0;
    for _ in 0..settings.gradient_steps {
        let states = problem
            .states(std::slice::from_ref(&x))
            .pop()
            .unwrap_or_default();
        let (evaluation, mut grad) = energy::gradient(plan, &inputs(&x, params, &states));
        evaluations += 1;
        if !evaluation.total.is_finite() || grad.design.len() != shape.n_design {
            break;
        }
        // Chain rule through the outcome model: dE/dx += (dE/dstates) · (dstates/dx).
        if let Some(model) = problem.outcomes {
            if grad.states.iter().any(|g| *g != 0.0) {
                for (g, extra) in grad.design.iter_mut().zip(model.vjp(&x, &grad.states)) {
                    *g += extra;
                }
            }
        }
        let mut candidate = x.clone();
        for (i, v) in vars.iter().enumerate() {
            if let Some((lo, hi)) = v.continuous {
                let g = grad.design[i];
                if g.is_finite() && g != 0.0 {
                    // Normalized step: `rate` of the range along the sign of the gradient,
                    // scaled by the gradient's relative size.
                    let norm: f64 = grad
                        .design
                        .iter()
                        .filter(|g| g.is_finite())
                        .map(|g| g * g)
                        .sum::<f64>()
                        .sqrt();
                    candidate[i] = (x[i] - rate * (hi - lo) * g / norm).clamp(lo, hi);
                }
            }
        }
        let candidate_states = problem
            .states(std::slice::from_ref(&candidate))
            .pop()
            .unwrap_or_default();
        let fc = score(
            plan,
            &candidate,
            params,
            &candidate_states,
            Objective::Total,
        );
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

/// Solves a design problem, optionally warm-started from a previous answer.
pub fn solve(
    problem: &Problem<'_>,
    settings: &DesignSettings,
    warm: Option<&[f64]>,
) -> DesignSolution {
    let _span = tracing::info_span!(
        "design solve",
        samples = settings.samples,
        iterations = settings.iterations
    )
    .entered();
    let (x, fx, n1) = minimize(problem, settings, warm, Objective::Total);
    let (x, _, n2) = refine_gradient(problem, settings, x, fx);
    let explanation = explain_in(problem, &x);
    DesignSolution {
        values: x,
        total: explanation.total,
        explanation,
        evaluations: n1 + n2,
    }
}

/// Finds a smallest set of hard terms that no design in the declared ranges satisfies
/// together, or returns an empty list when the best design found satisfies every hard term.
pub fn conflicting_hard_terms(problem: &Problem<'_>, settings: &DesignSettings) -> Vec<usize> {
    let plan = problem.plan;
    let hard: Vec<usize> = plan
        .terms
        .iter()
        .enumerate()
        .filter(|(_, t)| t.hard && t.kind == TermKind::Condition && t.robustness.is_some())
        .map(|(i, _)| i)
        .collect();
    let infeasible = |subset: &[usize]| -> bool {
        if subset.is_empty() {
            return false;
        }
        let (_, best, _) = minimize(problem, settings, None, Objective::HardViolation(subset));
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
