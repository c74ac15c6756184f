//! The translator: walks a [`Layout`] and emits one Cranelift function that computes the
//! term energies, their total and, optionally, the gradient by a reverse sweep.
//!
//! The forward methods for each node kind are in `pointwise.rs` and `temporal.rs`, next to
//! their adjoint methods. This file contains what they share: reading a node at a step,
//! adding an adjoint contribution, addresses and loops.

use std::collections::HashMap;

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{AbiParam, Block, BlockArg, FuncRef, InstBuilder, MemFlagsData, Signature, Value, types};
use cranelift_codegen::isa::CallConv;
use cranelift_frontend::FunctionBuilder;
use cranelift_module::{Linkage, Module};

use super::helpers::Helper;
use super::layout::{Item, Layout, Place};
use super::{JitError, Outputs};
use crate::energy::Shape;
use crate::plan::{Node, NodeId, Plan};

/// A step of the time grid, known when compiling or held in a register.
#[derive(Clone, Copy, Debug)]
pub(super) enum Step {
    Fixed(usize),
    /// An `i64` loop counter.
    At(Value),
}

/// One end of a loop's range of steps.
#[derive(Clone, Copy, Debug)]
pub(super) enum Bound {
    Fixed(usize),
    At(Value),
}

/// The buffers the generated function reads and writes, by their parameters' order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Buffer {
    States,
    Actions,
    Design,
    Params,
    Fields,
    Terms,
    GradStates,
    GradActions,
    GradDesign,
    Scratch,
}

/// Returns the signature of the generated function, which the module documentation of `jit`
/// describes.
pub(super) fn energy_signature(call_conv: CallConv) -> Signature {
    let mut sig = Signature::new(call_conv);
    let pointer = AbiParam::new(types::I64);
    for _ in 0..5 {
        sig.params.push(pointer);
    }
    sig.params.push(AbiParam::new(types::F64));
    for _ in 0..5 {
        sig.params.push(pointer);
    }
    sig.returns.push(AbiParam::new(types::F64));
    sig
}

/// Loads and stores of the buffers: aligned, and never trapping because the wrapper checks
/// every buffer's length before the call.
pub(super) fn flags() -> MemFlagsData {
    MemFlagsData::trusted()
}

pub(super) struct Translator<'a, 'f, M: Module> {
    pub b: FunctionBuilder<'f>,
    pub module: &'a mut M,
    pub plan: &'a Plan,
    pub layout: &'a Layout,
    pub shape: Shape,
    pub outputs: Outputs,
    buffers: HashMap<Buffer, Value>,
    time0: Value,
    helpers: HashMap<Helper, FuncRef>,
    /// SSA values of uniform and single-step nodes, with the block that computed them.
    values: Vec<Option<(Block, Value)>>,
    /// Uniform and single-step values reloaded in other blocks, with the block they were
    /// loaded in (see [`Translator::value`]).
    reloaded: HashMap<NodeId, (Block, Value)>,
    /// Forward: values of the row nodes computed so far in the current loop iteration.
    pub current: HashMap<NodeId, Value>,
    /// Reverse: adjoint contributions collected in the current loop iteration, for rows of
    /// the same loop and for inputs.
    pending: HashMap<NodeId, Value>,
    /// The loop item whose body is being emitted.
    active_loop: Option<usize>,
    /// Row start addresses computed in the current block, by buffer and loop counter.
    rows: HashMap<(Buffer, Value), (Block, Value)>,
    pub errors: Vec<JitError>,
}

impl<'a, 'f, M: Module> Translator<'a, 'f, M> {
    pub(super) fn new(mut b: FunctionBuilder<'f>, module: &'a mut M, plan: &'a Plan, layout: &'a Layout, outputs: Outputs) -> Self {
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        b.seal_block(entry);
        let params = b.block_params(entry).to_vec();
        let order = [Buffer::States, Buffer::Actions, Buffer::Design, Buffer::Params, Buffer::Fields];
        let mut buffers: HashMap<Buffer, Value> = order.iter().copied().zip(params[..5].iter().copied()).collect();
        let outputs_order = [Buffer::Terms, Buffer::GradStates, Buffer::GradActions, Buffer::GradDesign, Buffer::Scratch];
        buffers.extend(outputs_order.iter().copied().zip(params[6..].iter().copied()));
        let count = plan.graph.nodes.len();
        Translator {
            b,
            module,
            plan,
            layout,
            shape: Shape::of(plan),
            outputs,
            buffers,
            time0: params[5],
            helpers: HashMap::new(),
            values: vec![None; count],
            reloaded: HashMap::new(),
            current: HashMap::new(),
            pending: HashMap::new(),
            active_loop: None,
            rows: HashMap::new(),
            errors: Vec::new(),
        }
    }

    /// Emits the whole function body and finishes the builder.
    pub(super) fn translate(mut self) -> Result<(), JitError> {
        let layout = self.layout;
        if self.outputs.gradient {
            self.zero_gradient();
        }
        for (index, item) in layout.items.iter().enumerate() {
            match item {
                Item::Node(id) => self.forward_item(*id),
                Item::Loop { lo, hi, nodes } => self.forward_loop(index, *lo, *hi, nodes),
            }
        }

        let mut total = self.b.ins().f64const(-0.0);
        for (index, term) in self.plan.terms.iter().enumerate() {
            let energy = self.value(term.energy, Step::Fixed(0));
            if self.outputs.terms {
                let terms = self.buffer(Buffer::Terms);
                self.b.ins().store(flags(), energy, terms, (index * 8) as i32);
            }
            total = self.b.ins().fadd(total, energy);
        }

        if self.outputs.gradient {
            self.seed_terms();
            for (index, item) in layout.items.iter().enumerate().rev() {
                match item {
                    Item::Node(id) => self.reverse_item(*id),
                    Item::Loop { lo, hi, nodes } => self.reverse_loop(index, *lo, *hi, nodes),
                }
            }
            self.store_design_gradient();
        }

        self.b.ins().return_(&[total]);
        self.b.seal_all_blocks();
        if let Some(error) = self.errors.pop() {
            return Err(error);
        }
        let config = self.module.target_config();
        self.b.finalize(config);
        Ok(())
    }

    // ---- forward and reverse items ----

    fn forward_item(&mut self, id: NodeId) {
        let node = &self.plan.graph.nodes[id as usize];
        let value = match self.layout.nodes[id as usize].place {
            Place::Uniform if is_temporal(node) => self.temporal_single(id, Step::Fixed(self.layout.steps)),
            Place::Uniform => self.pointwise(id, Step::Fixed(0)),
            Place::Single(k) if is_temporal(node) => self.temporal_single(id, Step::Fixed(k)),
            Place::Single(k) => self.pointwise(id, Step::Fixed(k)),
            Place::Row { lo, hi } => {
                self.temporal_row(id, lo, hi);
                return;
            }
            Place::Unused | Place::Input => return,
        };
        let block = self.b.current_block().expect("code is emitted into a block");
        self.values[id as usize] = Some((block, value));
        if let Some(cell) = self.layout.nodes[id as usize].cell {
            self.store_scratch(cell, Step::Fixed(0), value);
        }
    }

    fn forward_loop(&mut self, index: usize, lo: usize, hi: usize, nodes: &[NodeId]) {
        self.active_loop = Some(index);
        self.emit_loop(Bound::Fixed(lo), Bound::Fixed(hi), false, &mut |t, k| {
            t.current.clear();
            for &id in nodes {
                let value = t.pointwise(id, Step::At(k));
                t.current.insert(id, value);
                if let Some(base) = t.layout.nodes[id as usize].values {
                    t.store_scratch(base, Step::At(k), value);
                }
            }
            t.current.clear();
        });
        self.active_loop = None;
    }

    fn reverse_item(&mut self, id: NodeId) {
        let info = &self.layout.nodes[id as usize];
        if !info.active {
            return;
        }
        let node = &self.plan.graph.nodes[id as usize];
        match info.place {
            Place::Row { lo, hi } => self.temporal_row_adjoint(id, lo, hi),
            Place::Uniform | Place::Single(_) => {
                let cell = info.adjoints.expect("active uniform and single-step nodes have an adjoint cell");
                let cell_step = match info.place {
                    Place::Single(k) => k,
                    _ => 0,
                };
                let adjoint = self.load_scratch(cell, Step::Fixed(cell_step));
                // A uniform temporal node is `final`, which reads its body at step H.
                let step = if is_temporal(node) && info.place == Place::Uniform { self.layout.steps } else { cell_step };
                if is_temporal(node) {
                    self.temporal_single_adjoint(id, Step::Fixed(step), adjoint);
                } else {
                    self.pointwise_adjoint(id, Step::Fixed(step), adjoint);
                }
            }
            Place::Unused | Place::Input => {}
        }
    }

    fn reverse_loop(&mut self, index: usize, lo: usize, hi: usize, nodes: &[NodeId]) {
        if !nodes.iter().any(|&id| self.layout.nodes[id as usize].active) {
            return;
        }
        self.active_loop = Some(index);
        self.emit_loop(Bound::Fixed(lo), Bound::Fixed(hi), true, &mut |t, k| {
            t.pending.clear();
            for &id in nodes.iter().rev() {
                let info = &t.layout.nodes[id as usize];
                if !info.active {
                    continue;
                }
                let stored = info.adjoints.map(|base| t.load_scratch(base, Step::At(k)));
                let collected = t.pending.remove(&id);
                let adjoint = match (stored, collected) {
                    (Some(s), Some(c)) => t.b.ins().fadd(s, c),
                    (Some(v), None) | (None, Some(v)) => v,
                    (None, None) => continue,
                };
                t.pointwise_adjoint(id, Step::At(k), adjoint);
            }
            // What is left are contributions to inputs (states and actions) at this step.
            let mut inputs: Vec<(NodeId, Value)> = t.pending.drain().collect();
            inputs.sort_by_key(|(id, _)| *id);
            for (id, value) in inputs {
                t.add_to_input(id, Step::At(k), value);
            }
        });
        self.active_loop = None;
    }

    // ---- gradient bookkeeping ----

    fn zero_gradient(&mut self) {
        let zero = self.b.ins().f64const(0.0);
        let adjoint_len = self.layout.adjoint_len;
        for (buffer, len) in [
            (Buffer::Scratch, adjoint_len),
            (Buffer::GradStates, self.shape.state_len()),
            (Buffer::GradActions, self.shape.action_len()),
            (Buffer::GradDesign, self.shape.n_design),
        ] {
            if len == 0 {
                continue;
            }
            let base = self.buffer(buffer);
            if len <= 8 {
                for i in 0..len {
                    self.b.ins().store(flags(), zero, base, (i * 8) as i32);
                }
                continue;
            }
            self.emit_loop(Bound::Fixed(0), Bound::Fixed(len - 1), false, &mut |t, i| {
                let offset = t.b.ins().ishl_imm_u(i, 3);
                let address = t.b.ins().iadd(base, offset);
                t.b.ins().store(flags(), zero, address, 0);
            });
        }
    }

    /// Seeds the reverse sweep: the total is the sum of the terms, so each term's energy node
    /// gets adjoint 1 at step 0 (2 if two terms share the node, and so on).
    fn seed_terms(&mut self) {
        let one = self.b.ins().f64const(1.0);
        let plan = self.plan;
        for term in &plan.terms {
            if self.layout.nodes[term.energy as usize].active {
                self.accumulate(term.energy, Step::Fixed(0), one);
            }
        }
    }

    fn store_design_gradient(&mut self) {
        let base = self.buffer(Buffer::GradDesign);
        let plan = self.plan;
        for (id, node) in plan.graph.nodes.iter().enumerate() {
            if let Node::Design { variable } = node
                && let Some(cell) = self.layout.nodes[id].adjoints
            {
                let value = self.load_scratch(cell, Step::Fixed(0));
                self.b.ins().store(flags(), value, base, (*variable as usize * 8) as i32);
            }
        }
    }

    /// Adds `contribution` to the adjoint of node `id` at `step`.
    pub(super) fn accumulate(&mut self, id: NodeId, step: Step, contribution: Value) {
        let info = &self.layout.nodes[id as usize];
        if !info.active {
            return;
        }
        let in_this_loop = self.active_loop.is_some() && info.loop_index == self.active_loop;
        match info.place {
            Place::Uniform | Place::Single(_) => {
                // Scalar adjoints live in memory rather than in variables: a variable would
                // need a block parameter at every loop between its first and last use.
                let cell = info.adjoints.expect("active uniform and single-step nodes have an adjoint cell");
                let at = match info.place {
                    Place::Single(k) => Step::Fixed(k),
                    _ => Step::Fixed(0),
                };
                let old = self.load_scratch(cell, at);
                let new = self.b.ins().fadd(old, contribution);
                self.store_scratch(cell, at, new);
            }
            Place::Row { .. } if in_this_loop => self.add_pending(id, contribution),
            Place::Row { .. } => {
                let base = info.adjoints.expect("rows read outside their loop have an adjoint row");
                let old = self.load_scratch(base, step);
                let new = self.b.ins().fadd(old, contribution);
                self.store_scratch(base, step, new);
            }
            Place::Input if self.active_loop.is_some() && matches!(step, Step::At(_)) => self.add_pending(id, contribution),
            Place::Input => self.add_to_input(id, step, contribution),
            Place::Unused => unreachable!("an unused node gets no adjoint"),
        }
    }

    fn add_pending(&mut self, id: NodeId, contribution: Value) {
        let sum = match self.pending.get(&id) {
            Some(&old) => self.b.ins().fadd(old, contribution),
            None => contribution,
        };
        self.pending.insert(id, sum);
    }

    /// Adds to the gradient entry of a state or action node at `step`.
    fn add_to_input(&mut self, id: NodeId, step: Step, contribution: Value) {
        let (row, offset) = match self.plan.graph.nodes[id as usize] {
            Node::State { agent, component } => {
                let column = Shape::state_column(self.plan, agent, component);
                (self.state_row(Buffer::GradStates, step), column)
            }
            Node::Action { agent, component } => {
                let column = Shape::action_column(self.plan, agent, component);
                (self.action_row(Buffer::GradActions, step), column)
            }
            _ => return,
        };
        let old = self.b.ins().load(types::F64, flags(), row.0, row.1 + (offset * 8) as i32);
        let new = self.b.ins().fadd(old, contribution);
        self.b.ins().store(flags(), new, row.0, row.1 + (offset * 8) as i32);
    }

    // ---- reading nodes ----

    /// Emits (or looks up) the value of node `id` at `step`.
    ///
    /// A uniform or single-step node is read from its SSA value in the block that computed
    /// it. Other blocks reload it once per block (from its scratch cell, from the inputs for
    /// parameters and design variables, or as a new constant), so that no value stays in a
    /// register across the loops between its computation and its readers. Long-lived values
    /// made register allocation, and so compile time, grow faster than the graph.
    pub(super) fn value(&mut self, id: NodeId, step: Step) -> Value {
        let info = &self.layout.nodes[id as usize];
        match info.place {
            Place::Uniform | Place::Single(_) => {
                let (defined_in, value) = self.values[id as usize].expect("uniform and single-step nodes are computed before their readers");
                if Some(defined_in) == self.b.current_block() { value } else { self.reload(id) }
            }
            Place::Input => self.input(id, step),
            Place::Row { .. } => {
                if let Some(&value) = self.current.get(&id) {
                    return value;
                }
                let base = info.values.expect("rows read outside their loop are stored");
                self.load_scratch(base, step)
            }
            Place::Unused => unreachable!("node n{id} is read but has no demand"),
        }
    }

    fn reload(&mut self, id: NodeId) -> Value {
        let block = self.b.current_block().expect("code is emitted into a block");
        if let Some(&(loaded_in, value)) = self.reloaded.get(&id)
            && loaded_in == block
        {
            return value;
        }
        let value = match (self.layout.nodes[id as usize].cell, &self.plan.graph.nodes[id as usize]) {
            (Some(cell), _) => self.load_scratch(cell, Step::Fixed(0)),
            (None, Node::Const { .. } | Node::Param { .. } | Node::Design { .. }) => self.pointwise(id, Step::Fixed(0)),
            (None, node) => unreachable!("{node:?} has no scratch cell to reload from"),
        };
        self.reloaded.insert(id, (block, value));
        value
    }

    fn input(&mut self, id: NodeId, step: Step) -> Value {
        match self.plan.graph.nodes[id as usize] {
            Node::Time => {
                let offset = match step {
                    Step::Fixed(k) => self.b.ins().f64const(k as f64 * self.layout.step),
                    Step::At(k) => {
                        let k = self.b.ins().fcvt_from_sint(types::F64, k);
                        let step = self.b.ins().f64const(self.layout.step);
                        self.b.ins().fmul(k, step)
                    }
                };
                self.b.ins().fadd(self.time0, offset)
            }
            Node::State { agent, component } => {
                let column = Shape::state_column(self.plan, agent, component);
                let (base, offset) = self.state_row(Buffer::States, step);
                self.b.ins().load(types::F64, flags(), base, offset + (column * 8) as i32)
            }
            Node::Action { agent, component } => {
                let column = Shape::action_column(self.plan, agent, component);
                let (base, offset) = self.action_row(Buffer::Actions, step);
                self.b.ins().load(types::F64, flags(), base, offset + (column * 8) as i32)
            }
            ref node => unreachable!("{node:?} is not an input"),
        }
    }

    // ---- addresses ----

    pub(super) fn buffer(&self, buffer: Buffer) -> Value {
        self.buffers[&buffer]
    }

    /// Returns a base address and byte offset of row `step` of a buffer with `width` values
    /// per row. The row address for a loop counter is computed once per block.
    fn row(&mut self, buffer: Buffer, width: usize, step: Step, clamp_to: Option<usize>) -> (Value, i32) {
        let base = self.buffer(buffer);
        match step {
            Step::Fixed(k) => {
                let row = clamp_to.map_or(k, |last| k.min(last));
                (base, (row * width * 8) as i32)
            }
            Step::At(k) => {
                let block = self.b.current_block().expect("code is emitted into a block");
                if let Some(&(cached, address)) = self.rows.get(&(buffer, k))
                    && cached == block
                {
                    return (address, 0);
                }
                let row = match clamp_to {
                    Some(last) => {
                        let last = self.b.ins().iconst(types::I64, last as i64);
                        self.b.ins().umin(k, last)
                    }
                    None => k,
                };
                let offset = self.b.ins().imul_imm_s(row, (width * 8) as i64);
                let address = self.b.ins().iadd(base, offset);
                self.rows.insert((buffer, k), (block, address));
                (address, 0)
            }
        }
    }

    fn state_row(&mut self, buffer: Buffer, step: Step) -> (Value, i32) {
        self.row(buffer, self.shape.n_states, step, None)
    }

    /// Action rows stop at `max(H, 1) − 1`: the last action is held at step `H`.
    fn action_row(&mut self, buffer: Buffer, step: Step) -> (Value, i32) {
        let last = self.shape.steps.max(1) - 1;
        self.row(buffer, self.shape.n_actions, step, Some(last))
    }

    /// Returns the address and offset of cell `base + step` of the scratch buffer.
    fn scratch_cell(&mut self, base: i64, step: Step) -> (Value, i32) {
        let (address, offset) = self.row(Buffer::Scratch, 1, step, None);
        (address, offset + (base * 8) as i32)
    }

    pub(super) fn load_scratch(&mut self, base: i64, step: Step) -> Value {
        let (address, offset) = self.scratch_cell(base, step);
        self.b.ins().load(types::F64, flags(), address, offset)
    }

    pub(super) fn store_scratch(&mut self, base: i64, step: Step, value: Value) {
        let (address, offset) = self.scratch_cell(base, step);
        self.b.ins().store(flags(), value, address, offset);
    }

    /// Emits a pointer to cell `base + step` of the scratch buffer, for helpers that write
    /// into it.
    pub(super) fn scratch_pointer(&mut self, base: i64, step: Step) -> Value {
        let (address, offset) = self.scratch_cell(base, step);
        self.b.ins().iadd_imm_s(address, offset as i64)
    }

    // ---- calls, constants and loops ----

    /// Calls a helper and returns its result.
    pub(super) fn call(&mut self, helper: Helper, args: &[Value]) -> Value {
        let func = match self.helpers.get(&helper) {
            Some(&func) => func,
            None => {
                let call_conv = self.module.isa().default_call_conv();
                let declared = self.module.declare_function(helper.symbol(), Linkage::Import, &helper.signature(call_conv));
                let id = match declared {
                    Ok(id) => id,
                    Err(error) => {
                        self.errors.push(JitError::Module(Box::new(error)));
                        return self.b.ins().f64const(f64::NAN);
                    }
                };
                let func = self.module.declare_func_in_func(id, self.b.func);
                self.helpers.insert(helper, func);
                func
            }
        };
        let call = self.b.ins().call(func, args);
        self.b.inst_results(call)[0]
    }

    pub(super) fn constant(&mut self, value: f64) -> Value {
        self.b.ins().f64const(value)
    }

    /// Emits whether `value` is NaN, as an `i8` truth value.
    pub(super) fn is_nan(&mut self, value: Value) -> Value {
        self.b.ins().fcmp(FloatCC::Unordered, value, value)
    }

    /// Emits a loop over `k = first..=last` (or from `last` down to `first` when `descending`),
    /// calling `body` with the `i64` counter. The range may be empty.
    pub(super) fn emit_loop(&mut self, first: Bound, last: Bound, descending: bool, body: &mut dyn FnMut(&mut Self, Value)) {
        let header = self.b.create_block();
        let counter = self.b.append_block_param(header, types::I64);
        let inside = self.b.create_block();
        let exit = self.b.create_block();

        let (start, stop) = if descending { (last, first) } else { (first, last) };
        let start = self.bound(start);
        self.b.ins().jump(header, &[BlockArg::Value(start)]);

        self.b.switch_to_block(header);
        let stop = self.bound(stop);
        let condition = if descending { IntCC::SignedGreaterThanOrEqual } else { IntCC::SignedLessThanOrEqual };
        let go_on = self.b.ins().icmp(condition, counter, stop);
        self.b.ins().brif(go_on, inside, &[], exit, &[]);
        self.b.seal_block(inside);
        self.b.seal_block(exit);

        self.b.switch_to_block(inside);
        body(self, counter);
        let next = self.b.ins().iadd_imm_s(counter, if descending { -1 } else { 1 });
        self.b.ins().jump(header, &[BlockArg::Value(next)]);
        self.b.seal_block(header);

        self.b.switch_to_block(exit);
    }

    fn bound(&mut self, bound: Bound) -> Value {
        match bound {
            Bound::Fixed(k) => self.b.ins().iconst(types::I64, k as i64),
            Bound::At(value) => value,
        }
    }
}

pub(super) fn is_temporal(node: &Node) -> bool {
    matches!(node, Node::Always { .. } | Node::Eventually { .. } | Node::Until { .. } | Node::SumOver { .. } | Node::Final { .. })
}
