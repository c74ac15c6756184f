//! The batched tensor backend of the energy: the term energies of `N` decisions at once, in
//! `f32`, on a candle [`Device`].
//!
//! The semantics are those of `spec/energy.md`, and the tests check them against the
//! reference interpreter `basin_compiler::energy::evaluate`. [`BatchEnergy::new`] translates
//! the plan's graph once (leaf columns, window tables, the `sum` matrix, distance fields on
//! the device); [`BatchEnergy::evaluate`] then runs it for any batch.
//!
//! Every node becomes a tensor `[S, T]`. `S` is `N`, or 1 for a node that reads no decision
//! (constants, parameters, `time`). `T` is `H + 1`, or 1 for a node that is constant over
//! time. Binary operations broadcast. Temporal nodes always have `T = H + 1`, except `final`.
//!
//! The results are ordinary candle tensors, so a caller can backpropagate the total energy
//! into whatever produced the inputs (a world-model rollout, a `Var` of actions). The
//! gradient follows the conventions of `spec/energy.md` at kinks: `|a|` and `√a` have
//! derivative 0 at 0, `min` and `max` split a tie, `select` passes no gradient to its index,
//! and soft extrema use the exact log-sum-exp weights.
//!
//! NOTE: the zero-adjoint rule of the spec (a node whose adjoint is exactly 0 passes 0 to its
//! operands even where a partial derivative is infinite) holds for `select`, `sqrt`,
//! `atan2`, `softplus`, `sigmoid`, `norm` and distance lookups, but not for `div`, `log`, `exp`,
//! `tan` or negative powers: candle's backward pass multiplies the zero adjoint by the
//! infinite partial and yields NaN. Those cases arise only in a branch that does not affect
//! the energy and whose value is already infinite or NaN.

mod distance;
mod ops;
mod temporal;

use basin_compiler::energy::{DistanceGrid, Shape};
use basin_compiler::plan::{Node, Plan};
use candle_core::{DType, Device, Result, Tensor, bail};

use distance::FieldTensor;
use temporal::{UntilTable, WindowTable, sum_matrix};

/// The decision buffers of a batch of `N` samples, all `f32` on the evaluator's device.
#[derive(Clone, Copy, Debug)]
pub struct BatchInputs<'a> {
    /// `[N, H + 1, n_states]`: row `k` of sample `i` contains the states at step `k`, in the
    /// column order of `basin_compiler::energy::Shape`.
    pub states: &'a Tensor,
    /// `[N, max(H, 1), n_actions]`: the action at step `H` is row `H − 1` (held).
    pub actions: &'a Tensor,
    /// `[N, n_design]`: one value per design variable, the choice index for a discrete one.
    pub design: &'a Tensor,
    /// `[n_params]`: the plan's parameters, shared by every sample.
    pub params: &'a Tensor,
    /// Seconds since the start of the run at step 0, shared by every sample.
    pub time0: f64,
}

/// The energies of a batch.
#[derive(Clone, Debug)]
pub struct BatchEvaluation {
    /// `[N, n_terms]`, `f32`: each term's energy, in plan order.
    pub terms: Tensor,
    /// `[N]`, `f32`: the sum of the term energies.
    pub total: Tensor,
    /// `[N]`, `u8`: 1 where the sample's term energies, its total and its inputs (its states,
    /// actions and design, plus the shared parameters and `time0`) are all finite, else 0.
    /// The same rule as `Status::Finite` of the interpreter.
    pub finite: Tensor,
}

impl BatchEvaluation {
    /// Copies the finiteness flag of every sample to the host.
    pub fn finite_flags(&self) -> Result<Vec<bool>> {
        Ok(self.finite.to_vec1::<u8>()?.into_iter().map(|flag| flag == 1).collect())
    }
}

/// Per-node tables besides the operands, prepared once per plan.
#[derive(Debug)]
enum Prepared {
    None,
    Constant(Tensor),
    Window(WindowTable),
}

/// A plan's energy translated for batched evaluation on one device.
#[derive(Debug)]
pub struct BatchEnergy {
    plan: Plan,
    shape: Shape,
    device: Device,
    /// Seconds per step `Δt`; 0 without a horizon.
    step: f64,
    prepared: Vec<Prepared>,
    /// Whether a node is needed for some term's energy.
    live: Vec<bool>,
    fields: Vec<Option<FieldTensor>>,
    until: Option<UntilTable>,
    sum: Option<Tensor>,
}

impl BatchEnergy {
    /// Translates `plan` for `device`. `fields` has one entry per plan context, as in
    /// `basin_compiler::energy::Inputs::fields`: the distance field of every map context that
    /// the graph reads.
    ///
    /// # Errors
    ///
    /// Fails if the graph reads a distance field that `fields` does not provide or that is
    /// malformed, or if a tensor cannot be created on `device`.
    pub fn new(plan: &Plan, fields: &[Option<DistanceGrid>], device: &Device) -> Result<BatchEnergy> {
        let shape = Shape::of(plan);
        let steps = shape.steps;
        let step = plan.horizon.as_ref().map_or(0.0, |h| h.step.0);
        let nodes = &plan.graph.nodes;

        let mut live = vec![false; nodes.len()];
        for term in &plan.terms {
            live[term.energy as usize] = true;
        }
        for i in (0..nodes.len()).rev() {
            if live[i] {
                for child in nodes[i].children() {
                    live[child as usize] = true;
                }
            }
        }

        let mut prepared = Vec::with_capacity(nodes.len());
        let (mut needs_until, mut needs_sum) = (false, false);
        let mut tensors: Vec<Option<FieldTensor>> = (0..plan.contexts.len()).map(|_| None).collect();
        for (node, &needed) in nodes.iter().zip(&live) {
            let entry = match node {
                _ if !needed => Prepared::None,
                Node::Const { value } => Prepared::Constant(Tensor::full(value.0 as f32, (1, 1), device)?),
                Node::Always { from, to, .. } | Node::Eventually { from, to, .. } => Prepared::Window(WindowTable::new(*from, *to, steps, device)?),
                Node::Until { .. } => {
                    needs_until = true;
                    Prepared::None
                }
                Node::SumOver { .. } => {
                    needs_sum = true;
                    Prepared::None
                }
                Node::Distance { context, .. } => {
                    let index = *context as usize;
                    if tensors.get(index).is_some_and(|t| t.is_none()) {
                        let name = plan.contexts.get(index).map_or("?", |c| c.name.as_str());
                        let Some(Some(grid)) = fields.get(index) else {
                            bail!("the plan reads the distance field of context `{name}` (number {context}), but no field was given for it: pass its `DistanceGrid` in `fields`");
                        };
                        tensors[index] = Some(FieldTensor::new(grid, device)?);
                    } else if tensors.get(index).is_none() {
                        bail!("the plan reads context number {context}, but it has only {} contexts", plan.contexts.len());
                    }
                    Prepared::None
                }
                _ => Prepared::None,
            };
            prepared.push(entry);
        }

        Ok(BatchEnergy {
            plan: plan.clone(),
            shape,
            device: device.clone(),
            step,
            prepared,
            live,
            fields: tensors,
            until: if needs_until { Some(UntilTable::new(steps, device)?) } else { None },
            sum: if needs_sum { Some(sum_matrix(steps, step, device)?) } else { None },
        })
    }

    /// Replaces the distance field of context `context`, for instance after a refinement
    /// added an obstacle.
    pub fn set_field(&mut self, context: usize, grid: &DistanceGrid) -> Result<()> {
        if context >= self.fields.len() {
            bail!("context number {context} does not exist: the plan has {} contexts", self.fields.len());
        }
        self.fields[context] = Some(FieldTensor::new(grid, &self.device)?);
        Ok(())
    }

    /// The sizes of the decision buffers this plan reads.
    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// The device the evaluator's tensors live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Evaluates the term energies of every sample of `inputs`.
    ///
    /// # Errors
    ///
    /// Fails if an input is not `f32`, is on another device, or has the wrong shape. The
    /// message names the input, the expected and the actual shape.
    pub fn evaluate(&self, inputs: &BatchInputs) -> Result<BatchEvaluation> {
        let samples = self.check(inputs)?;
        let values = self.node_values(inputs, &self.live)?;

        let mut columns = Vec::with_capacity(self.plan.terms.len());
        for term in &self.plan.terms {
            let value = values[term.energy as usize].as_ref().expect("term energies are live");
            columns.push(value.narrow(1, 0, 1)?.broadcast_as((samples, 1))?);
        }
        let terms = if columns.is_empty() { Tensor::zeros((samples, 0), DType::F32, &self.device)? } else { Tensor::cat(&columns, 1)? };
        let total = if columns.is_empty() { Tensor::zeros(samples, DType::F32, &self.device)? } else { terms.sum(1)? };

        let mut finite = ops::rows_finite(&terms)?.minimum(&ops::rows_finite(&total.unsqueeze(1)?)?)?;
        for buffer in [inputs.states, inputs.actions, inputs.design] {
            finite = finite.minimum(&ops::rows_finite(buffer)?)?;
        }
        let shared_finite = inputs.time0.is_finite() && ops::rows_finite(&inputs.params.unsqueeze(0)?)?.to_vec1::<u8>()?[0] == 1;
        if !shared_finite {
            finite = finite.zeros_like()?;
        }
        Ok(BatchEvaluation { terms, total, finite })
    }

    /// Computes every node of the graph: `[S, T]` tensors indexed by node id. Meant for tests
    /// and diagnostics; [`evaluate`](Self::evaluate) computes only the nodes the terms need.
    pub fn evaluate_nodes(&self, inputs: &BatchInputs) -> Result<Vec<Tensor>> {
        self.check(inputs)?;
        let values = self.node_values(inputs, &vec![true; self.plan.graph.nodes.len()])?;
        Ok(values.into_iter().map(|v| v.expect("every node is computed")).collect())
    }

    /// Checks the inputs against the plan and returns the sample count `N`.
    fn check(&self, inputs: &BatchInputs) -> Result<usize> {
        let s = self.shape;
        let samples = inputs.states.dims().first().copied().unwrap_or(0);
        let expected: [(&str, &Tensor, Vec<usize>); 4] = [
            ("states", inputs.states, vec![samples, s.steps + 1, s.n_states]),
            ("actions", inputs.actions, vec![samples, s.steps.max(1), s.n_actions]),
            ("design", inputs.design, vec![samples, s.n_design]),
            ("params", inputs.params, vec![s.n_params]),
        ];
        for (name, tensor, dims) in expected {
            if tensor.dims() != dims.as_slice() {
                bail!("the {name} input must have shape {dims:?}, got {:?}", tensor.dims());
            }
            if tensor.dtype() != DType::F32 {
                bail!("the {name} input must be f32, got {:?}", tensor.dtype());
            }
            if !tensor.device().same_device(&self.device) {
                bail!("the {name} input is on {:?}, but the evaluator is on {:?}", tensor.device(), self.device);
            }
        }
        Ok(samples)
    }

    /// Computes the nodes marked in `needed`, in graph order. Nodes outside the term energies
    /// have no prepared tables, so their tables are built on the fly.
    fn node_values(&self, inputs: &BatchInputs, needed: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let nodes = &self.plan.graph.nodes;
        let mut values: Vec<Option<Tensor>> = Vec::with_capacity(nodes.len());
        for (i, node) in nodes.iter().enumerate() {
            let value = if needed[i] { Some(self.node(i, node, inputs, &values)?) } else { None };
            values.push(value);
        }
        Ok(values)
    }

    /// Computes node `index`, whose operands are in `values`.
    fn node(&self, index: usize, node: &Node, inputs: &BatchInputs, values: &[Option<Tensor>]) -> Result<Tensor> {
        let value = |id: u32| values[id as usize].as_ref().expect("operands come before their node and are computed");
        let list = |ids: &[u32]| ids.iter().map(|&id| value(id).clone()).collect::<Vec<Tensor>>();
        let steps = self.shape.steps;
        let t = steps + 1;
        Ok(match node {
            Node::Const { value: v } => match &self.prepared[index] {
                Prepared::Constant(c) => c.clone(),
                _ => Tensor::full(v.0 as f32, (1, 1), &self.device)?,
            },
            Node::Param { index } => inputs.params.narrow(0, *index as usize, 1)?.reshape((1, 1))?,
            Node::Design { variable } => inputs.design.narrow(1, *variable as usize, 1)?,
            Node::Time => {
                let times: Vec<f32> = (0..t).map(|k| (inputs.time0 + k as f64 * self.step) as f32).collect();
                Tensor::from_vec(times, (1, t), &self.device)?
            }
            Node::State { agent, component } => {
                let column = Shape::state_column(&self.plan, *agent, *component);
                inputs.states.narrow(2, column, 1)?.squeeze(2)?
            }
            Node::Action { agent, component } => {
                let column = Shape::action_column(&self.plan, *agent, *component);
                let rows = inputs.actions.narrow(2, column, 1)?.squeeze(2)?;
                if steps == 0 { rows } else { Tensor::cat(&[&rows, &rows.narrow(1, steps - 1, 1)?], 1)? }
            }
            Node::Distance { context, x, y } => {
                let field = self.fields[*context as usize].as_ref();
                let Some(field) = field else {
                    bail!("no distance field was given for context number {context}");
                };
                field.sample(value(*x), value(*y))?
            }
            Node::Neg { a } => value(*a).neg()?,
            Node::Add { a, b } => value(*a).broadcast_add(value(*b))?,
            Node::Sub { a, b } => value(*a).broadcast_sub(value(*b))?,
            Node::Mul { a, b } => value(*a).broadcast_mul(value(*b))?,
            Node::Div { a, b } => value(*a).broadcast_div(value(*b))?,
            Node::Powi { a, n } => ops::powi(value(*a), *n)?,
            Node::Abs { a } => ops::abs(value(*a))?,
            Node::Sqrt { a } => ops::sqrt(value(*a))?,
            Node::Sin { a } => value(*a).sin()?,
            Node::Cos { a } => value(*a).cos()?,
            Node::Tan { a } => value(*a).sin()?.div(&value(*a).cos()?)?,
            Node::Atan2 { y, x } => ops::atan2(value(*y), value(*x))?,
            Node::Exp { a } => value(*a).exp()?,
            Node::Log { a } => value(*a).log()?,
            Node::Min { a, b } => ops::extremum(value(*a), value(*b), false)?,
            Node::Max { a, b } => ops::extremum(value(*a), value(*b), true)?,
            Node::SoftMin { args, temperature } => ops::soft_extremum_of(&list(args), temperature.0, false)?,
            Node::SoftMax { args, temperature } => ops::soft_extremum_of(&list(args), temperature.0, true)?,
            Node::SoftPlus { a, temperature } => ops::soft_plus(value(*a), temperature.0)?,
            Node::Sigmoid { a, temperature } => ops::sigmoid(value(*a), temperature.0)?,
            Node::Norm { args, epsilon } => ops::norm(&list(args), epsilon.0)?,
            Node::Select { index, options } => ops::select(value(*index), &list(options))?,
            Node::Always { body, from, to, temperature } | Node::Eventually { body, from, to, temperature } => {
                let maximum = matches!(node, Node::Eventually { .. });
                let body = self.over_time(value(*body))?;
                match &self.prepared[index] {
                    Prepared::Window(table) => table.apply(&body, temperature.0, maximum)?,
                    _ => WindowTable::new(*from, *to, steps, &self.device)?.apply(&body, temperature.0, maximum)?,
                }
            }
            Node::Until { lhs, rhs, temperature } => {
                let (lhs, rhs) = (value(*lhs), value(*rhs));
                let shape = ops::common_shape(&[lhs, rhs])?;
                let samples = shape.dims()[0];
                let lhs = lhs.broadcast_as((samples, t))?.contiguous()?;
                let rhs = rhs.broadcast_as((samples, t))?.contiguous()?;
                let table = match &self.until {
                    Some(table) => table,
                    None => &UntilTable::new(steps, &self.device)?,
                };
                table.apply(&lhs, &rhs, temperature.0)?
            }
            Node::SumOver { body } => {
                let body = self.over_time(value(*body))?;
                let matrix = match &self.sum {
                    Some(matrix) => matrix.clone(),
                    None => sum_matrix(steps, self.step, &self.device)?,
                };
                if steps == 0 {
                    // An empty sum, whatever the body holds.
                    body.zeros_like()?
                } else {
                    // The sum never reads step H, so that column is left out of the product
                    // rather than multiplied by zero: a value that overflows f32 there must
                    // not turn the sum into NaN (0 · ∞).
                    body.narrow(1, 0, steps)?.contiguous()?.matmul(&matrix.narrow(0, 0, steps)?.contiguous()?)?
                }
            }
            Node::Final { body } => {
                let body = value(*body);
                if body.dim(1)? == 1 { body.clone() } else { body.narrow(1, steps, 1)? }
            }
        })
    }

    /// `value` (`[S, 1]` or `[S, T]`) as a contiguous `[S, T]` tensor.
    fn over_time(&self, value: &Tensor) -> Result<Tensor> {
        let samples = value.dim(0)?;
        value.broadcast_as((samples, self.shape.steps + 1))?.contiguous()
    }
}
