//! The reference interpreter: evaluates a plan's energy in `f64`, written for clarity rather
//! than speed.
//!
//! Every node is computed as a [`Signal`] over the time grid `k = 0..=H`, in node order, so
//! each node's operands are ready when it is reached. A node whose operands do not change over
//! time is stored once as [`Signal::Constant`]. The rules are those of `spec/energy.md`; the
//! other backends (the JIT and the batched tensor backend) are tested against this one.
//!
//! Costs: pointwise nodes take `O(H)`, windowed `always` and `eventually` `O(H · window)`,
//! and `until` `O(H²)`. That is fine for checking backends, not for solving long horizons.

use super::{DistanceGrid, Evaluation, Inputs, Shape, Status};
use crate::plan::{Node, NodeId, Plan};

/// The value of one node over the time grid.
#[derive(Clone, Debug, PartialEq)]
pub enum Signal {
    /// The same value at every step.
    Constant(f64),
    /// One value per step `k = 0..=H`.
    Steps(Vec<f64>),
}

impl Signal {
    /// The value at step `k`.
    pub fn at(&self, k: usize) -> f64 {
        match self {
            Signal::Constant(v) => *v,
            Signal::Steps(values) => values[k],
        }
    }

    pub fn is_constant(&self) -> bool {
        matches!(self, Signal::Constant(_))
    }
}

/// Evaluates every term of `plan` at `inputs`: the term energies (node values at `k = 0`),
/// their sum and whether all of it is finite.
///
/// The status is [`Status::NonFinite`] when a term energy or the total is NaN or infinite,
/// naming the first such term. It is also `NonFinite` when any number in `inputs.states`,
/// `actions`, `design`, `params` or `time0` is NaN or infinite, even if no term reads it, and
/// then the term is `None` unless some term is non-finite as well. Distance fields are not
/// scanned: a non-finite field value counts only where a lookup reads it.
///
/// # Panics
///
/// Panics if a decision buffer's length does not match [`Shape::of`] the plan, or if the
/// graph reads a distance field that `inputs.fields` does not provide or that is malformed.
pub fn evaluate(plan: &Plan, inputs: &Inputs) -> Evaluation {
    let values = evaluate_nodes(plan, inputs);
    evaluation_of(plan, inputs, &values)
}

/// Computes the value of every node of `plan.graph`, indexed by node id.
///
/// # Panics
///
/// As [`evaluate`].
pub fn evaluate_nodes(plan: &Plan, inputs: &Inputs) -> Vec<Signal> {
    let evaluator = Evaluator::new(plan, inputs);
    let mut values: Vec<Signal> = Vec::with_capacity(plan.graph.nodes.len());
    for node in &plan.graph.nodes {
        let value = evaluator.node(node, &values);
        values.push(value);
    }
    values
}

/// Reads the term energies at `k = 0` from node values and judges them.
pub(crate) fn evaluation_of(plan: &Plan, inputs: &Inputs, values: &[Signal]) -> Evaluation {
    let terms: Vec<f64> = plan.terms.iter().map(|t| values[t.energy as usize].at(0)).collect();
    let total: f64 = terms.iter().sum();

    let first_bad_term = terms.iter().position(|e| !e.is_finite());
    let status = if first_bad_term.is_some() || !total.is_finite() || !inputs_are_finite(inputs) {
        Status::NonFinite { term: first_bad_term }
    } else {
        Status::Finite
    };
    Evaluation { total, terms, status }
}

fn inputs_are_finite(inputs: &Inputs) -> bool {
    let buffers = [inputs.states, inputs.actions, inputs.design, inputs.params];
    inputs.time0.is_finite() && buffers.iter().all(|b| b.iter().all(|v| v.is_finite()))
}

/// The steps `j` that a windowed `always` or `eventually` at step `k` reads: `k + from ..=
/// k + to`, clipped to the horizon `H`.
///
/// A window that would be empty because it starts after the horizon (`k + from > H`) reads
/// the single step `H`, so the end of the horizon stands for every later step. A window with
/// `from > to`, which the compiler never produces, reads the single step `min(k + from, H)`.
pub fn window(k: usize, from: u32, to: u32, steps: usize) -> std::ops::RangeInclusive<usize> {
    let start = (k as u64 + from as u64).min(steps as u64) as usize;
    let end = (k as u64 + to as u64).min(steps as u64) as usize;
    start..=end.max(start)
}

/// `softmax_τ(x) = m + τ · ln Σ exp((xᵢ − m) / τ)` with `m = max(x)`: the overflow-free form.
/// An empty list gives −∞, a NaN anywhere gives NaN, and an infinite maximum is returned as
/// it is.
pub fn soft_maximum(xs: &[f64], temperature: f64) -> f64 {
    if xs.iter().any(|x| x.is_nan()) {
        return f64::NAN;
    }
    let m = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if m.is_infinite() {
        return m;
    }
    let sum: f64 = xs.iter().map(|x| ((x - m) / temperature).exp()).sum();
    m + temperature * sum.ln()
}

/// `softmin_τ(x) = −softmax_τ(−x)`.
pub fn soft_minimum(xs: &[f64], temperature: f64) -> f64 {
    let negated: Vec<f64> = xs.iter().map(|x| -x).collect();
    -soft_maximum(&negated, temperature)
}

/// `softplus_τ(a) = max(a, 0) + τ · ln(1 + exp(−|a| / τ))`.
/// `atan2(y, x)` in `(−π, π]`, as `spec/energy.md` states. The energy is a function of real
/// numbers, so a negative zero `y` counts as zero: on the negative `x` axis the angle is `π`
/// whatever the sign bit of `y`, and every backend (which may not keep the sign of a zero
/// through its arithmetic) agrees.
pub fn angle(y: f64, x: f64) -> f64 {
    // `-0.0 + 0.0` is `+0.0` under round-to-nearest; every other value is unchanged.
    (y + 0.0).atan2(x)
}

pub fn soft_plus(a: f64, temperature: f64) -> f64 {
    a.max(0.0) + temperature * (-a.abs() / temperature).exp().ln_1p()
}

/// `σ_τ(a) = 1 / (1 + exp(−a / τ))`.
pub fn sigmoid(a: f64, temperature: f64) -> f64 {
    1.0 / (1.0 + (-a / temperature).exp())
}

/// The option that `select` picks for an index value: `clamp(round(index), 0, count − 1)`,
/// or `None` for a NaN index.
pub fn selected_option(index: f64, count: usize) -> Option<usize> {
    if index.is_nan() || count == 0 {
        return None;
    }
    Some(index.round().clamp(0.0, (count - 1) as f64) as usize)
}

/// The inner values of `until` at step `k`: for `j = k..=H`, the smooth minimum
/// `m(k, j) = softmin_τ(r_j, l_k, …, l_{j−1})`, element `j − k` of the result.
///
/// The set grows by one `l` per step, so the sum `Σ exp(−l_i / τ)` is kept as a running
/// log-sum-exp rather than recomputed.
pub(crate) fn until_inner(lhs: &Signal, rhs: &Signal, k: usize, steps: usize, temperature: f64) -> Vec<f64> {
    let mut lhs_sum = LogSumExp::EMPTY;
    let mut inner = Vec::with_capacity(steps + 1 - k);
    for j in k..=steps {
        let mut with_rhs = lhs_sum;
        with_rhs.add(-rhs.at(j) / temperature);
        inner.push(-temperature * with_rhs.value());
        lhs_sum.add(-lhs.at(j) / temperature);
    }
    inner
}

/// A running `ln Σ exp(zᵢ)`, stored as `shift + ln(sum)` so that no term overflows.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LogSumExp {
    shift: f64,
    sum: f64,
}

impl LogSumExp {
    pub(crate) const EMPTY: LogSumExp = LogSumExp { shift: f64::NEG_INFINITY, sum: 0.0 };

    pub(crate) fn add(&mut self, z: f64) {
        if z == f64::NEG_INFINITY {
            // exp(−∞) = 0 adds nothing; adding it would compute −∞ − (−∞) = NaN.
            return;
        }
        if z > self.shift {
            self.sum = self.sum * (self.shift - z).exp() + 1.0;
            self.shift = z;
        } else {
            self.sum += (z - self.shift).exp();
        }
    }

    /// `ln Σ exp(zᵢ)`; −∞ for no terms.
    pub(crate) fn value(&self) -> f64 {
        if self.sum == 0.0 { f64::NEG_INFINITY } else { self.shift + self.sum.ln() }
    }
}

/// A distance lookup: the value and its partial derivatives by `x` and `y`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DistanceSample {
    pub value: f64,
    pub slope_x: f64,
    pub slope_y: f64,
}

impl DistanceGrid {
    /// Samples the field at the world point `(x, y)`, metres.
    ///
    /// Between cell centres the value is interpolated bilinearly. A point outside the
    /// rectangle of cell centres counts as blocked. Its value is the value at the nearest
    /// point of the rectangle minus the distance to that point, so it keeps falling away from
    /// the grid and is continuous at the border. A NaN coordinate gives NaN.
    ///
    /// The slopes are the exact partial derivatives inside a cell. On a boundary between two
    /// cells they are those of the cell with the larger column (for `x`) or row (for `y`)
    /// index, except on the last column or row of centres, where they are those of the cell
    /// before it. Outside the
    /// rectangle the border value does not change along the clamped axis, and the distance
    /// outside adds `−(x − x_border) / outside` (likewise for `y`); on the border itself that
    /// term is 0.
    ///
    /// # Panics
    ///
    /// Panics if the grid is empty, its `values` do not hold `width · height` numbers, or its
    /// cell size is not a positive finite number.
    pub fn sample(&self, x: f64, y: f64) -> DistanceSample {
        assert!(self.width > 0, "the distance grid is empty ({}×{} cells)", self.width, self.height);
        assert!(self.height > 0, "the distance grid is empty ({}×{} cells)", self.width, self.height);
        assert_eq!(self.values.len(), self.width * self.height, "a {}×{} distance grid needs {} values", self.width, self.height, self.width * self.height);
        assert!(self.cell > 0.0, "the distance grid's cell size must be positive, got {}", self.cell);
        assert!(self.cell.is_finite(), "the distance grid's cell size must be finite, got {}", self.cell);
        if x.is_nan() || y.is_nan() {
            return DistanceSample { value: f64::NAN, slope_x: f64::NAN, slope_y: f64::NAN };
        }

        let (column, outside_x) = axis_position(x, self.origin.0, self.cell, self.width);
        let (row, outside_y) = axis_position(y, self.origin.1, self.cell, self.height);
        let outside = outside_x.hypot(outside_y);

        let at = |c: usize, r: usize| self.values[r * self.width + c];
        let (c0, c1, tx) = (column.lower, column.upper, column.fraction);
        let (r0, r1, ty) = (row.lower, row.upper, row.fraction);
        let bottom = at(c0, r0) * (1.0 - tx) + at(c1, r0) * tx;
        let top = at(c0, r1) * (1.0 - tx) + at(c1, r1) * tx;
        let inside = bottom * (1.0 - ty) + top * ty;

        // The bilinear part changes with x only while x is not clamped (and has a nonzero
        // cell span); likewise for y.
        let mut slope_x = 0.0;
        if outside_x == 0.0 && c1 != c0 {
            slope_x = ((at(c1, r0) - at(c0, r0)) * (1.0 - ty) + (at(c1, r1) - at(c0, r1)) * ty) / self.cell;
        }
        let mut slope_y = 0.0;
        if outside_y == 0.0 && r1 != r0 {
            slope_y = (top - bottom) / self.cell;
        }
        if outside > 0.0 {
            slope_x -= outside_x / outside;
            slope_y -= outside_y / outside;
        }
        DistanceSample { value: inside - outside, slope_x, slope_y }
    }
}

/// The position of a coordinate among `count` cell centres spaced `cell` apart from `origin`.
struct AxisPosition {
    lower: usize,
    upper: usize,
    /// Position between `lower` and `upper`, from 0 to 1.
    fraction: f64,
}

/// Clamps a coordinate to the span of cell centres and locates it, returning also how far it
/// lay outside that span (signed: positive past the last centre).
fn axis_position(coordinate: f64, origin: f64, cell: f64, count: usize) -> (AxisPosition, f64) {
    let last = origin + (count - 1) as f64 * cell;
    let clamped = coordinate.clamp(origin, last);
    let outside = coordinate - clamped;
    if count == 1 {
        return (AxisPosition { lower: 0, upper: 0, fraction: 0.0 }, outside);
    }
    let position = ((clamped - origin) / cell).clamp(0.0, (count - 1) as f64);
    let lower = (position.floor() as usize).min(count - 2);
    (AxisPosition { lower, upper: lower + 1, fraction: position - lower as f64 }, outside)
}

/// Evaluates single nodes, given the values of the nodes before them.
pub(crate) struct Evaluator<'a> {
    plan: &'a Plan,
    inputs: &'a Inputs<'a>,
    shape: Shape,
    /// Seconds per step `Δt`; 0 for a plan without a horizon.
    step: f64,
}

impl<'a> Evaluator<'a> {
    pub(crate) fn new(plan: &'a Plan, inputs: &'a Inputs<'a>) -> Evaluator<'a> {
        let shape = Shape::of(plan);
        let check = |name: &str, got: usize, expected: usize, layout: String| {
            assert_eq!(got, expected, "Inputs::{name} has {got} values, but the plan needs {expected} ({layout})");
        };
        check("states", inputs.states.len(), shape.state_len(), format!("{} rows of {} states", shape.steps + 1, shape.n_states));
        check("actions", inputs.actions.len(), shape.action_len(), format!("{} rows of {} actions", shape.steps.max(1), shape.n_actions));
        check("design", inputs.design.len(), shape.n_design, "one per design variable".into());
        check("params", inputs.params.len(), shape.n_params, "one per plan parameter".into());
        let step = plan.horizon.as_ref().map_or(0.0, |h| h.step.0);
        Evaluator { plan, inputs, shape, step }
    }

    /// Horizon steps `H`.
    pub(crate) fn steps(&self) -> usize {
        self.shape.steps
    }

    /// Seconds per step `Δt`.
    pub(crate) fn step(&self) -> f64 {
        self.step
    }

    /// A signal with `value(k)` at every step.
    pub(crate) fn steps_signal(&self, value: impl FnMut(usize) -> f64) -> Signal {
        Signal::Steps((0..=self.shape.steps).map(value).collect())
    }

    /// The distance field of context `context`.
    pub(crate) fn field(&self, context: u32) -> &'a DistanceGrid {
        let name = self.plan.contexts.get(context as usize).map_or("?", |c| c.name.as_str());
        match self.inputs.fields.get(context as usize) {
            Some(Some(grid)) => grid,
            _ => panic!("the plan reads the distance field of context `{name}` (number {context}), but Inputs::fields has none for it"),
        }
    }

    /// Computes `node`, whose operands are in `values`.
    pub(crate) fn node(&self, node: &Node, values: &[Signal]) -> Signal {
        let value = |id: NodeId| &values[id as usize];
        let h = self.shape.steps;
        match node {
            Node::Const { value } => Signal::Constant(value.0),
            Node::Param { index } => Signal::Constant(self.inputs.params[*index as usize]),
            Node::Design { variable } => Signal::Constant(self.inputs.design[*variable as usize]),
            Node::Time => self.steps_signal(|k| self.inputs.time0 + k as f64 * self.step),
            Node::State { agent, component } => {
                let column = Shape::state_column(self.plan, *agent, *component);
                self.steps_signal(|k| self.inputs.states[k * self.shape.n_states + column])
            }
            Node::Action { agent, component } => {
                let column = Shape::action_column(self.plan, *agent, *component);
                let last_row = self.shape.steps.max(1) - 1;
                self.steps_signal(|k| self.inputs.actions[k.min(last_row) * self.shape.n_actions + column])
            }
            Node::Always { body, from, to, temperature } => {
                let body = value(*body);
                self.steps_signal(|k| {
                    let window: Vec<f64> = window(k, *from, *to, h).map(|j| body.at(j)).collect();
                    soft_minimum(&window, temperature.0)
                })
            }
            Node::Eventually { body, from, to, temperature } => {
                let body = value(*body);
                self.steps_signal(|k| {
                    let window: Vec<f64> = window(k, *from, *to, h).map(|j| body.at(j)).collect();
                    soft_maximum(&window, temperature.0)
                })
            }
            Node::Until { lhs, rhs, temperature } => {
                let (lhs, rhs) = (value(*lhs), value(*rhs));
                self.steps_signal(|k| soft_maximum(&until_inner(lhs, rhs, k, h, temperature.0), temperature.0))
            }
            Node::SumOver { body } => {
                let body = value(*body);
                self.steps_signal(|k| (k..h).map(|j| self.step * body.at(j)).sum())
            }
            Node::Final { body } => Signal::Constant(value(*body).at(h)),
            _ => self.pointwise(node, values),
        }
    }

    /// Computes a node whose value at `k` reads its operands at `k` only.
    fn pointwise(&self, node: &Node, values: &[Signal]) -> Signal {
        let children = node.children();
        if children.iter().all(|&c| values[c as usize].is_constant()) {
            return Signal::Constant(self.scalar(node, |id| values[id as usize].at(0)));
        }
        self.steps_signal(|k| self.scalar(node, |id| values[id as usize].at(k)))
    }

    /// The value of a pointwise node, with `arg` giving its operands' values at one step.
    fn scalar(&self, node: &Node, arg: impl Fn(NodeId) -> f64) -> f64 {
        let args = |ids: &[NodeId]| ids.iter().map(|&id| arg(id)).collect::<Vec<f64>>();
        match node {
            Node::Distance { context, x, y } => self.field(*context).sample(arg(*x), arg(*y)).value,
            Node::Neg { a } => -arg(*a),
            Node::Add { a, b } => arg(*a) + arg(*b),
            Node::Sub { a, b } => arg(*a) - arg(*b),
            Node::Mul { a, b } => arg(*a) * arg(*b),
            Node::Div { a, b } => arg(*a) / arg(*b),
            Node::Powi { a, n } => arg(*a).powi(*n),
            Node::Abs { a } => arg(*a).abs(),
            Node::Sqrt { a } => arg(*a).sqrt(),
            Node::Sin { a } => arg(*a).sin(),
            Node::Cos { a } => arg(*a).cos(),
            Node::Tan { a } => arg(*a).tan(),
            Node::Atan2 { y, x } => angle(arg(*y), arg(*x)),
            Node::Exp { a } => arg(*a).exp(),
            Node::Log { a } => arg(*a).ln(),
            Node::Min { a, b } => exact_minimum(arg(*a), arg(*b)),
            Node::Max { a, b } => -exact_minimum(-arg(*a), -arg(*b)),
            Node::SoftMin { args: ids, temperature } => soft_minimum(&args(ids), temperature.0),
            Node::SoftMax { args: ids, temperature } => soft_maximum(&args(ids), temperature.0),
            Node::SoftPlus { a, temperature } => soft_plus(arg(*a), temperature.0),
            Node::Sigmoid { a, temperature } => sigmoid(arg(*a), temperature.0),
            Node::Norm { args: ids, epsilon } => {
                let squares: f64 = args(ids).iter().map(|a| a * a).sum();
                (squares + epsilon.0 * epsilon.0).sqrt()
            }
            Node::Select { index, options } => match selected_option(arg(*index), options.len()) {
                Some(chosen) => arg(options[chosen]),
                None => f64::NAN,
            },
            Node::Const { .. }
            | Node::Param { .. }
            | Node::Time
            | Node::State { .. }
            | Node::Action { .. }
            | Node::Design { .. }
            | Node::Always { .. }
            | Node::Eventually { .. }
            | Node::Until { .. }
            | Node::SumOver { .. }
            | Node::Final { .. } => unreachable!("{node:?} is not a pointwise node"),
        }
    }
}

/// `min(a, b)`, NaN when either is NaN (`f64::min` would return the other operand).
fn exact_minimum(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() { f64::NAN } else { a.min(b) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_clips_to_horizon() {
        assert_eq!(window(0, 0, u32::MAX, 4), 0..=4);
        assert_eq!(window(3, 1, 2, 4), 4..=4);
        assert_eq!(window(1, 1, 2, 4), 2..=3);
    }

    #[test]
    fn window_after_horizon_reads_last_step() {
        assert_eq!(window(3, 2, 5, 4), 4..=4);
        assert_eq!(window(0, 7, 9, 4), 4..=4);
    }

    #[test]
    fn soft_maximum_matches_definition() {
        let xs = [0.3, -0.2, 0.25];
        let tau = 0.1;
        let direct = tau * xs.iter().map(|x: &f64| (x / tau).exp()).sum::<f64>().ln();
        assert!((soft_maximum(&xs, tau) - direct).abs() < 1e-12);
        let direct_min = -tau * xs.iter().map(|x: &f64| (-x / tau).exp()).sum::<f64>().ln();
        assert!((soft_minimum(&xs, tau) - direct_min).abs() < 1e-12);
    }

    #[test]
    fn soft_maximum_does_not_overflow() {
        let v = soft_maximum(&[1000.0, 999.0], 0.01);
        assert!((v - 1000.0).abs() < 1e-12, "{v}");
    }

    #[test]
    fn soft_maximum_propagates_nan() {
        assert!(soft_maximum(&[1.0, f64::NAN], 0.1).is_nan());
        assert!(soft_minimum(&[f64::NAN, 1.0], 0.1).is_nan());
    }

    #[test]
    fn soft_plus_matches_definition() {
        for a in [-0.05f64, 0.0, 0.02, 3.0] {
            let direct = 0.01 * (1.0f64 + (a / 0.01).exp()).ln();
            assert!((soft_plus(a, 0.01) - direct).abs() < 1e-12, "{a}");
        }
        assert_eq!(soft_plus(-1e6, 0.01), 0.0);
    }

    #[test]
    fn log_sum_exp_matches_direct_sum() {
        let zs = [1.0, -3.0, 2.5, 0.0];
        let mut acc = LogSumExp::EMPTY;
        for z in zs {
            acc.add(z);
        }
        let direct = zs.iter().map(|z: &f64| z.exp()).sum::<f64>().ln();
        assert!((acc.value() - direct).abs() < 1e-12);
        assert_eq!(LogSumExp::EMPTY.value(), f64::NEG_INFINITY);
    }

    #[test]
    fn select_rounds_and_clamps_index() {
        assert_eq!(selected_option(0.4, 3), Some(0));
        assert_eq!(selected_option(1.6, 3), Some(2));
        assert_eq!(selected_option(7.0, 3), Some(2));
        assert_eq!(selected_option(-2.0, 3), Some(0));
        assert_eq!(selected_option(f64::NAN, 3), None);
    }

    fn ramp_grid() -> DistanceGrid {
        // value = 2·x + 3·y at the centres, a 3×2 grid with 0.5 m cells from (1, 1).
        let (width, height, cell, origin) = (3, 2, 0.5, (1.0, 1.0));
        let mut values = Vec::new();
        for row in 0..height {
            for col in 0..width {
                values.push(2.0 * (origin.0 + col as f64 * cell) + 3.0 * (origin.1 + row as f64 * cell));
            }
        }
        DistanceGrid { width, height, cell, origin, values }
    }

    #[test]
    fn distance_bilinear_reproduces_plane() {
        let grid = ramp_grid();
        let s = grid.sample(1.7, 1.2);
        assert!((s.value - (2.0 * 1.7 + 3.0 * 1.2)).abs() < 1e-12, "{s:?}");
        assert!((s.slope_x - 2.0).abs() < 1e-12, "{s:?}");
        assert!((s.slope_y - 3.0).abs() < 1e-12, "{s:?}");
    }

    #[test]
    fn distance_outside_subtracts_gap() {
        let grid = ramp_grid();
        // The centres span x in [1, 2] and y in [1, 1.5]; (2.3, 1.9) is 0.3 right, 0.4 above.
        let s = grid.sample(2.3, 1.9);
        let border = 2.0 * 2.0 + 3.0 * 1.5;
        assert!((s.value - (border - 0.5)).abs() < 1e-12, "{s:?}");
        assert!((s.slope_x + 0.6).abs() < 1e-12, "{s:?}");
        assert!((s.slope_y + 0.8).abs() < 1e-12, "{s:?}");
    }

    #[test]
    fn distance_nan_coordinate_is_nan() {
        assert!(ramp_grid().sample(f64::NAN, 1.0).value.is_nan());
    }
}
