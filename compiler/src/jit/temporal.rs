//! Temporal nodes (`always`, `eventually`, `until`, `sum`, `final`) as loops over steps, and
//! their adjoints, which carry a node's adjoint at step `k` back to its operands at the steps
//! `j` it read.
//!
//! The loops follow the reference interpreter step for step. A window's soft extreme is a
//! pass for the maximum and a pass for the sum of exponentials. `sum` adds `Δt · body(j)` in
//! order of `j`, and `until` keeps a running log-sum-exp of its left operand. A window or
//! `until` whose adjoint at `k` is 0 passes nothing on, even where its weights are not
//! finite, as in the interpreter.
//!
//! Costs per step `k`: a window `O(window)`, `sum` `O(H)` forward and `O(1)` backward,
//! `until` `O(H)` forward and `O(H²)` backward. A node needed at one step only (most of them,
//! since terms are read at step 0) pays that once.

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{InstBuilder, Value, types};
use cranelift_module::Module;

use super::helpers::Helper;
use super::translate::{Bound, Step, Translator};
use crate::plan::{Node, NodeId};

/// Windows of at most this many steps, known when compiling, are unrolled.
const UNROLL_STEPS: usize = 4;

impl<M: Module> Translator<'_, '_, M> {
    /// Emits the value of temporal node `id` at `step` and returns it.
    pub(super) fn temporal_single(&mut self, id: NodeId, step: Step) -> Value {
        let plan = self.plan;
        let steps = self.layout.steps;
        match &plan.graph.nodes[id as usize] {
            Node::Always { body, from, to, temperature } => {
                let (first, last) = self.window(step, *from, *to);
                self.window_extreme(*body, -1.0, temperature.0, first, last)
            }
            Node::Eventually { body, from, to, temperature } => {
                let (first, last) = self.window(step, *from, *to);
                self.window_extreme(*body, 1.0, temperature.0, first, last)
            }
            Node::Until { lhs, rhs, temperature } => {
                self.until_inner(id, *lhs, *rhs, temperature.0, step);
                self.until_outer(id, temperature.0, step)
            }
            Node::SumOver { body } => self.sum_over(*body, step),
            Node::Final { body } => self.value(*body, Step::Fixed(steps)),
            node => unreachable!("{node:?} is not temporal"),
        }
    }

    /// Emits a loop computing temporal node `id` at every step of `lo..=hi` into its row.
    pub(super) fn temporal_row(&mut self, id: NodeId, lo: usize, hi: usize) {
        let base = self.layout.nodes[id as usize].values.expect("temporal rows are stored");
        self.emit_loop(Bound::Fixed(lo), Bound::Fixed(hi), false, &mut |t, k| {
            let value = t.temporal_single(id, Step::At(k));
            t.store_scratch(base, Step::At(k), value);
        });
    }

    /// Emits the adjoint of temporal node `id` at `step`, whose adjoint there is `adjoint`.
    pub(super) fn temporal_single_adjoint(&mut self, id: NodeId, step: Step, adjoint: Value) {
        let plan = self.plan;
        let steps = self.layout.steps;
        match &plan.graph.nodes[id as usize] {
            Node::Always { body, from, to, temperature } => self.window_adjoint(id, *body, *from, *to, -1.0, temperature.0, step, adjoint),
            Node::Eventually { body, from, to, temperature } => self.window_adjoint(id, *body, *from, *to, 1.0, temperature.0, step, adjoint),
            Node::Until { lhs, rhs, temperature } => self.until_adjoint(id, *lhs, *rhs, temperature.0, step, adjoint),
            Node::SumOver { body } => {
                // Needed at one step `k` only, the adjoint reaches body(j) for j = k..H−1
                // as Δt times the adjoint.
                let Step::Fixed(k) = step else { unreachable!("single-step nodes have a fixed step") };
                if k >= steps || !self.is_active(*body) {
                    return;
                }
                let dt = self.constant(self.layout.step);
                let d = self.b.ins().fmul(dt, adjoint);
                self.emit_steps(Bound::Fixed(k), Bound::Fixed(steps - 1), &mut |t, j| t.accumulate(*body, j, d));
            }
            Node::Final { body } => self.accumulate(*body, Step::Fixed(steps), adjoint),
            node => unreachable!("{node:?} is not temporal"),
        }
    }

    /// Emits the adjoint of temporal row node `id`, reading its adjoint row.
    pub(super) fn temporal_row_adjoint(&mut self, id: NodeId, lo: usize, hi: usize) {
        let adjoints = self.layout.nodes[id as usize].adjoints.expect("active temporal rows have an adjoint row");
        if let Node::SumOver { body } = self.plan.graph.nodes[id as usize] {
            self.sum_row_adjoint(body, adjoints, lo, hi);
            return;
        }
        self.emit_loop(Bound::Fixed(lo), Bound::Fixed(hi), true, &mut |t, k| {
            let adjoint = t.load_scratch(adjoints, Step::At(k));
            t.temporal_single_adjoint(id, Step::At(k), adjoint);
        });
    }

    /// Returns the first and last step of the window `[from, to]` at `step`, as the
    /// interpreter's `energy::window` defines them: clipped to `H`, and the single step `H`
    /// when the window starts after the horizon.
    fn window(&mut self, step: Step, from: u32, to: u32) -> (Bound, Bound) {
        let steps = self.layout.steps;
        match step {
            Step::Fixed(k) => {
                let range = crate::energy::window(k, from, to, steps);
                (Bound::Fixed(*range.start()), Bound::Fixed(*range.end()))
            }
            Step::At(k) => {
                let horizon = self.b.ins().iconst(types::I64, steps as i64);
                let start = self.b.ins().iadd_imm_s(k, from as i64);
                let start = self.b.ins().umin(start, horizon);
                let end = self.b.ins().iadd_imm_s(k, to as i64);
                let end = self.b.ins().umin(end, horizon);
                let end = self.b.ins().umax(end, start);
                (Bound::At(start), Bound::At(end))
            }
        }
    }

    /// Calls `body` for each step `j = first..=last`: unrolled with fixed steps for a short
    /// range known when compiling, else as a loop.
    pub(super) fn emit_steps(&mut self, first: Bound, last: Bound, body: &mut dyn FnMut(&mut Self, Step)) {
        if let (Bound::Fixed(a), Bound::Fixed(b)) = (first, last)
            && b.saturating_sub(a) < UNROLL_STEPS
        {
            for j in a..=b {
                body(self, Step::Fixed(j));
            }
            return;
        }
        self.emit_loop(first, last, false, &mut |t, j| body(t, Step::At(j)));
    }

    /// `sign · softmax_τ(sign · body(j) for j = first..=last)`: the soft minimum over the
    /// window for `sign = −1` (`always`) and the soft maximum for `sign = 1` (`eventually`).
    fn window_extreme(&mut self, body: NodeId, sign: f64, temperature: f64, first: Bound, last: Bound) -> Value {
        let any_nan = self.b.declare_var(types::I8);
        let maximum = self.b.declare_var(types::F64);
        let sum = self.b.declare_var(types::F64);
        let no = self.b.ins().iconst(types::I8, 0);
        self.b.def_var(any_nan, no);
        let minus_infinity = self.constant(f64::NEG_INFINITY);
        self.b.def_var(maximum, minus_infinity);
        let minus_zero = self.constant(-0.0);
        self.b.def_var(sum, minus_zero);

        self.emit_steps(first, last, &mut |t, j| {
            let x = t.signed_value(body, j, sign);
            let nan = t.is_nan(x);
            let seen = t.b.use_var(any_nan);
            let seen = t.b.ins().bor(seen, nan);
            t.b.def_var(any_nan, seen);
            let m = t.b.use_var(maximum);
            let larger = t.b.ins().fcmp(FloatCC::GreaterThan, x, m);
            let m = t.b.ins().select(larger, x, m);
            t.b.def_var(maximum, m);
        });
        let m = self.b.use_var(maximum);
        let tau = self.constant(temperature);
        self.emit_steps(first, last, &mut |t, j| {
            let x = t.signed_value(body, j, sign);
            let shifted = t.b.ins().fsub(x, m);
            let scaled = t.b.ins().fdiv(shifted, tau);
            let e = t.call(Helper::Exp, &[scaled]);
            let total = t.b.use_var(sum);
            let total = t.b.ins().fadd(total, e);
            t.b.def_var(sum, total);
        });
        let total = self.b.use_var(sum);
        let nan = self.b.use_var(any_nan);
        let result = self.finish_soft_maximum(m, total, nan, temperature);
        if sign < 0.0 { self.b.ins().fneg(result) } else { result }
    }

    fn signed_value(&mut self, id: NodeId, step: Step, sign: f64) -> Value {
        let x = self.value(id, step);
        if sign < 0.0 { self.b.ins().fneg(x) } else { x }
    }

    /// Emits the adjoint of a window: body(j) gets `adjoint · exp(gap / τ)` for every `j` in
    /// the window, with `gap = value − body(j)` for `always` and `body(j) − value` for
    /// `eventually`.
    #[allow(clippy::too_many_arguments)]
    fn window_adjoint(&mut self, id: NodeId, body: NodeId, from: u32, to: u32, sign: f64, temperature: f64, step: Step, adjoint: Value) {
        if !self.is_active(body) {
            return;
        }
        self.unless_zero(adjoint, &mut |t| {
            let value = t.value(id, step);
            let tau = t.constant(temperature);
            let (first, last) = t.window(step, from, to);
            t.emit_steps(first, last, &mut |t, j| {
                let x = t.value(body, j);
                let gap = if sign < 0.0 { t.b.ins().fsub(value, x) } else { t.b.ins().fsub(x, value) };
                let scaled = t.b.ins().fdiv(gap, tau);
                let weight = t.call(Helper::Exp, &[scaled]);
                let d = t.b.ins().fmul(adjoint, weight);
                t.accumulate(body, j, d);
            });
        });
    }

    /// Runs `body` only where `value` is not 0.
    pub(super) fn unless_zero(&mut self, value: Value, body: &mut dyn FnMut(&mut Self)) {
        let work = self.b.create_block();
        let done = self.b.create_block();
        let zero = self.constant(0.0);
        let is_zero = self.b.ins().fcmp(FloatCC::Equal, value, zero);
        self.b.ins().brif(is_zero, done, &[], work, &[]);
        self.b.seal_block(work);
        self.b.switch_to_block(work);
        body(self);
        self.b.ins().jump(done, &[]);
        self.b.seal_block(done);
        self.b.switch_to_block(done);
    }

    /// `Σ_{j=k}^{H−1} Δt · body(j)`, added in order of `j` from −0 as `Iterator::sum` does.
    fn sum_over(&mut self, body: NodeId, step: Step) -> Value {
        let steps = self.layout.steps;
        let sum = self.b.declare_var(types::F64);
        let minus_zero = self.constant(-0.0);
        self.b.def_var(sum, minus_zero);
        if steps > 0 {
            let first = match step {
                Step::Fixed(k) => Bound::Fixed(k),
                Step::At(k) => Bound::At(k),
            };
            let dt = self.constant(self.layout.step);
            self.emit_steps(first, Bound::Fixed(steps - 1), &mut |t, j| {
                let x = t.value(body, j);
                let term = t.b.ins().fmul(dt, x);
                let total = t.b.use_var(sum);
                let total = t.b.ins().fadd(total, term);
                t.b.def_var(sum, total);
            });
        }
        self.b.use_var(sum)
    }

    /// Emits the adjoint of a `sum` row over `lo..=hi`: body(j) gets the running sum
    /// `Δt · Σ_{k ≤ j} adjoint(k)` for `j = lo..H−1`.
    fn sum_row_adjoint(&mut self, body: NodeId, adjoints: i64, lo: usize, hi: usize) {
        let steps = self.layout.steps;
        if !self.is_active(body) || lo >= steps {
            return;
        }
        let running = self.b.declare_var(types::F64);
        let zero = self.constant(0.0);
        self.b.def_var(running, zero);
        let dt = self.constant(self.layout.step);
        let last_with_adjoint = hi.min(steps - 1);
        self.emit_loop(Bound::Fixed(lo), Bound::Fixed(last_with_adjoint), false, &mut |t, j| {
            let adjoint = t.load_scratch(adjoints, Step::At(j));
            let total = t.b.use_var(running);
            let total = t.b.ins().fadd(total, adjoint);
            t.b.def_var(running, total);
            let d = t.b.ins().fmul(dt, total);
            t.accumulate(body, Step::At(j), d);
        });
        if last_with_adjoint < steps - 1 {
            let total = self.b.use_var(running);
            let d = self.b.ins().fmul(dt, total);
            self.emit_loop(Bound::Fixed(last_with_adjoint + 1), Bound::Fixed(steps - 1), false, &mut |t, j| t.accumulate(body, Step::At(j), d));
        }
    }

    /// Fills the inner row of `until` node `id` at `step` `k`: for `j = k..=H`, the smooth
    /// minimum `m(k, j) = softmin_τ(r_j, l_k, …, l_{j−1})`, kept as a running log-sum-exp of
    /// `−l / τ` to which each `−r_j / τ` is added.
    fn until_inner(&mut self, id: NodeId, lhs: NodeId, rhs: NodeId, temperature: f64, step: Step) {
        let steps = self.layout.steps;
        let (inner, _) = self.layout.nodes[id as usize].until_rows.expect("until nodes have work rows");
        let shift = self.b.declare_var(types::F64);
        let sum = self.b.declare_var(types::F64);
        let minus_infinity = self.constant(f64::NEG_INFINITY);
        let zero = self.constant(0.0);
        self.b.def_var(shift, minus_infinity);
        self.b.def_var(sum, zero);
        let tau = self.constant(temperature);
        let minus_tau = self.constant(-temperature);
        let first = match step {
            Step::Fixed(k) => Bound::Fixed(k),
            Step::At(k) => Bound::At(k),
        };
        self.emit_loop(first, Bound::Fixed(steps), false, &mut |t, j| {
            // m(k, j) from the running sum with −r_j / τ added to a copy.
            let r = t.value(rhs, Step::At(j));
            let negated = t.b.ins().fneg(r);
            let z = t.b.ins().fdiv(negated, tau);
            let (s0, t0) = (t.b.use_var(shift), t.b.use_var(sum));
            let (with_shift, with_sum) = t.log_sum_exp_add(s0, t0, z);
            let log = t.log_sum_exp_value(with_shift, with_sum);
            let m = t.b.ins().fmul(minus_tau, log);
            t.store_scratch(inner, Step::At(j), m);

            // Then l_j joins the running sum, for j < H (l_H is never read, and no l is
            // read when k = H).
            if !t.is_needed(lhs) {
                return;
            }
            let more = t.b.ins().icmp_imm_s(IntCC::SignedLessThan, j, steps as i64);
            let join = t.b.create_block();
            let done = t.b.create_block();
            t.b.ins().brif(more, join, &[], done, &[]);
            t.b.seal_block(join);
            t.b.switch_to_block(join);
            let l = t.value(lhs, Step::At(j));
            let negated = t.b.ins().fneg(l);
            let z = t.b.ins().fdiv(negated, tau);
            let (s0, t0) = (t.b.use_var(shift), t.b.use_var(sum));
            let (s1, t1) = t.log_sum_exp_add(s0, t0, z);
            t.b.def_var(shift, s1);
            t.b.def_var(sum, t1);
            t.b.ins().jump(done, &[]);
            t.b.seal_block(done);
            t.b.switch_to_block(done);
        });
    }

    /// Adds `exp(z)` to a log-sum-exp kept as `shift + ln(sum)`, returning the new pair: a
    /// −∞ adds nothing, a larger `z` becomes the new shift.
    fn log_sum_exp_add(&mut self, shift: Value, sum: Value, z: Value) -> (Value, Value) {
        let new_shift = self.b.declare_var(types::F64);
        let new_sum = self.b.declare_var(types::F64);
        self.b.def_var(new_shift, shift);
        self.b.def_var(new_sum, sum);

        let check = self.b.create_block();
        let larger = self.b.create_block();
        let smaller = self.b.create_block();
        let done = self.b.create_block();
        let minus_infinity = self.constant(f64::NEG_INFINITY);
        let nothing = self.b.ins().fcmp(FloatCC::Equal, z, minus_infinity);
        self.b.ins().brif(nothing, done, &[], check, &[]);
        self.b.seal_block(check);

        self.b.switch_to_block(check);
        let above = self.b.ins().fcmp(FloatCC::GreaterThan, z, shift);
        self.b.ins().brif(above, larger, &[], smaller, &[]);
        self.b.seal_block(larger);
        self.b.seal_block(smaller);

        self.b.switch_to_block(larger);
        let gap = self.b.ins().fsub(shift, z);
        let scale = self.call(Helper::Exp, &[gap]);
        let scaled = self.b.ins().fmul(sum, scale);
        let one = self.constant(1.0);
        let total = self.b.ins().fadd(scaled, one);
        self.b.def_var(new_sum, total);
        self.b.def_var(new_shift, z);
        self.b.ins().jump(done, &[]);

        self.b.switch_to_block(smaller);
        let gap = self.b.ins().fsub(z, shift);
        let e = self.call(Helper::Exp, &[gap]);
        let total = self.b.ins().fadd(sum, e);
        self.b.def_var(new_sum, total);
        self.b.ins().jump(done, &[]);

        self.b.seal_block(done);
        self.b.switch_to_block(done);
        (self.b.use_var(new_shift), self.b.use_var(new_sum))
    }

    /// `shift + ln(sum)`, or −∞ for an empty sum.
    fn log_sum_exp_value(&mut self, shift: Value, sum: Value) -> Value {
        let log = self.call(Helper::Ln, &[sum]);
        let value = self.b.ins().fadd(shift, log);
        let zero = self.constant(0.0);
        let empty = self.b.ins().fcmp(FloatCC::Equal, sum, zero);
        let minus_infinity = self.constant(f64::NEG_INFINITY);
        self.b.ins().select(empty, minus_infinity, value)
    }

    /// `softmax_τ` of the inner row over `j = k..=H`: the value of `until` at `k`.
    fn until_outer(&mut self, id: NodeId, temperature: f64, step: Step) -> Value {
        let (inner, _) = self.layout.nodes[id as usize].until_rows.expect("until nodes have work rows");
        let steps = self.layout.steps;
        let first = match step {
            Step::Fixed(k) => Bound::Fixed(k),
            Step::At(k) => Bound::At(k),
        };
        let any_nan = self.b.declare_var(types::I8);
        let maximum = self.b.declare_var(types::F64);
        let sum = self.b.declare_var(types::F64);
        let no = self.b.ins().iconst(types::I8, 0);
        self.b.def_var(any_nan, no);
        let minus_infinity = self.constant(f64::NEG_INFINITY);
        self.b.def_var(maximum, minus_infinity);
        let minus_zero = self.constant(-0.0);
        self.b.def_var(sum, minus_zero);
        self.emit_loop(first, Bound::Fixed(steps), false, &mut |t, j| {
            let x = t.load_scratch(inner, Step::At(j));
            let nan = t.is_nan(x);
            let seen = t.b.use_var(any_nan);
            let seen = t.b.ins().bor(seen, nan);
            t.b.def_var(any_nan, seen);
            let m = t.b.use_var(maximum);
            let larger = t.b.ins().fcmp(FloatCC::GreaterThan, x, m);
            let m = t.b.ins().select(larger, x, m);
            t.b.def_var(maximum, m);
        });
        let m = self.b.use_var(maximum);
        let tau = self.constant(temperature);
        self.emit_loop(first, Bound::Fixed(steps), false, &mut |t, j| {
            let x = t.load_scratch(inner, Step::At(j));
            let shifted = t.b.ins().fsub(x, m);
            let scaled = t.b.ins().fdiv(shifted, tau);
            let e = t.call(Helper::Exp, &[scaled]);
            let total = t.b.use_var(sum);
            let total = t.b.ins().fadd(total, e);
            t.b.def_var(sum, total);
        });
        let total = self.b.use_var(sum);
        let nan = self.b.use_var(any_nan);
        self.finish_soft_maximum(m, total, nan, temperature)
    }

    /// Emits the adjoint of `until` at step `k`, with `α(k, j) = exp((m(k, j) − p(k)) / τ)`:
    /// `r_j` gets `adjoint · α(k, j) · exp((m(k, j) − r_j) / τ)` for `j ≥ k`, and `l_i` gets
    /// the sum over `j > i` of `adjoint · α(k, j) · exp((m(k, j) − l_i) / τ)` for `k ≤ i < H`.
    fn until_adjoint(&mut self, id: NodeId, lhs: NodeId, rhs: NodeId, temperature: f64, step: Step, adjoint: Value) {
        let steps = self.layout.steps;
        let (inner, outer) = self.layout.nodes[id as usize].until_rows.expect("until nodes have work rows");
        let lhs_active = self.is_active(lhs) && self.is_needed(lhs);
        let rhs_active = self.is_active(rhs);
        if !lhs_active && !rhs_active {
            return;
        }
        self.unless_zero(adjoint, &mut |t| {
            if matches!(step, Step::At(_)) {
                // A row's inner row contains the last step computed, so refill it for this one.
                t.until_inner(id, lhs, rhs, temperature, step);
            }
            let p = t.value(id, step);
            let tau = t.constant(temperature);
            let first = match step {
                Step::Fixed(k) => Bound::Fixed(k),
                Step::At(k) => Bound::At(k),
            };
            // The adjoint times the outer weight of each j, kept for the lhs loops.
            t.emit_loop(first, Bound::Fixed(steps), false, &mut |t, j| {
                let m = t.load_scratch(inner, Step::At(j));
                let gap = t.b.ins().fsub(m, p);
                let scaled = t.b.ins().fdiv(gap, tau);
                let alpha = t.call(Helper::Exp, &[scaled]);
                let weighted = t.b.ins().fmul(adjoint, alpha);
                t.store_scratch(outer, Step::At(j), weighted);
                if rhs_active {
                    let r = t.value(rhs, Step::At(j));
                    let gap = t.b.ins().fsub(m, r);
                    let scaled = t.b.ins().fdiv(gap, tau);
                    let e = t.call(Helper::Exp, &[scaled]);
                    let d = t.b.ins().fmul(weighted, e);
                    t.accumulate(rhs, Step::At(j), d);
                }
            });
            if lhs_active && steps > 0 {
                t.emit_loop(first, Bound::Fixed(steps - 1), false, &mut |t, i| {
                    let l = t.value(lhs, Step::At(i));
                    let total = t.b.declare_var(types::F64);
                    let minus_zero = t.constant(-0.0);
                    t.b.def_var(total, minus_zero);
                    let after = t.b.ins().iadd_imm_s(i, 1);
                    t.emit_loop(Bound::At(after), Bound::Fixed(steps), false, &mut |t, j| {
                        let m = t.load_scratch(inner, Step::At(j));
                        let weighted = t.load_scratch(outer, Step::At(j));
                        let gap = t.b.ins().fsub(m, l);
                        let scaled = t.b.ins().fdiv(gap, tau);
                        let e = t.call(Helper::Exp, &[scaled]);
                        let d = t.b.ins().fmul(weighted, e);
                        let sum = t.b.use_var(total);
                        let sum = t.b.ins().fadd(sum, d);
                        t.b.def_var(total, sum);
                    });
                    let d = t.b.use_var(total);
                    t.accumulate(lhs, Step::At(i), d);
                });
            }
        });
    }
}
