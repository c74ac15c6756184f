//! Pointwise nodes: one forward method per node kind, and one adjoint method that adds the
//! node's adjoint times each partial derivative to its operands.
//!
//! Every formula is written in the same operation order as the reference interpreter
//! (`energy::interpret`), with the same helper functions, so the two backends agree to the
//! last bit or close to it. The gradient conventions at kinks are those of
//! `spec/energy.md`, section 8.

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{InstBuilder, Value, types};
use cranelift_module::Module;

use super::helpers::Helper;
use super::translate::{Buffer, Step, Translator, flags};
use crate::plan::{Node, NodeId};

impl<M: Module> Translator<'_, '_, M> {
    /// Emits the value of pointwise (or leaf) node `id` at `step`.
    pub(super) fn pointwise(&mut self, id: NodeId, step: Step) -> Value {
        let plan = self.plan;
        match &plan.graph.nodes[id as usize] {
            Node::Const { value } => self.constant(value.0),
            Node::Param { index } => {
                let params = self.buffer(Buffer::Params);
                self.b.ins().load(types::F64, flags(), params, (*index as usize * 8) as i32)
            }
            Node::Design { variable } => {
                let design = self.buffer(Buffer::Design);
                self.b.ins().load(types::F64, flags(), design, (*variable as usize * 8) as i32)
            }
            Node::Distance { context, x, y } => self.distance(id, *context, *x, *y, step),
            Node::Neg { a } => {
                let a = self.value(*a, step);
                self.b.ins().fneg(a)
            }
            Node::Add { a, b } => {
                let (a, b) = (self.value(*a, step), self.value(*b, step));
                self.b.ins().fadd(a, b)
            }
            Node::Sub { a, b } => {
                let (a, b) = (self.value(*a, step), self.value(*b, step));
                self.b.ins().fsub(a, b)
            }
            Node::Mul { a, b } => {
                let (a, b) = (self.value(*a, step), self.value(*b, step));
                self.b.ins().fmul(a, b)
            }
            Node::Div { a, b } => {
                let (a, b) = (self.value(*a, step), self.value(*b, step));
                self.b.ins().fdiv(a, b)
            }
            Node::Powi { a, n } => {
                let a = self.value(*a, step);
                self.powi(a, *n)
            }
            Node::Abs { a } => {
                let a = self.value(*a, step);
                self.b.ins().fabs(a)
            }
            Node::Sqrt { a } => {
                let a = self.value(*a, step);
                self.b.ins().sqrt(a)
            }
            Node::Sin { a } => self.unary_call(Helper::Sin, *a, step),
            Node::Cos { a } => self.unary_call(Helper::Cos, *a, step),
            Node::Tan { a } => self.unary_call(Helper::Tan, *a, step),
            Node::Exp { a } => self.unary_call(Helper::Exp, *a, step),
            Node::Log { a } => self.unary_call(Helper::Ln, *a, step),
            Node::Atan2 { y, x } => {
                let (y, x) = (self.value(*y, step), self.value(*x, step));
                self.call(Helper::Atan2, &[y, x])
            }
            Node::Min { a, b } => {
                let (a, b) = (self.value(*a, step), self.value(*b, step));
                self.minimum(a, b)
            }
            Node::Max { a, b } => {
                let (a, b) = (self.value(*a, step), self.value(*b, step));
                self.maximum(a, b)
            }
            Node::SoftMin { args, temperature } => {
                let xs: Vec<Value> = args.iter().map(|&a| self.value(a, step)).collect();
                self.soft_extreme(&xs, -1.0, temperature.0)
            }
            Node::SoftMax { args, temperature } => {
                let xs: Vec<Value> = args.iter().map(|&a| self.value(a, step)).collect();
                self.soft_extreme(&xs, 1.0, temperature.0)
            }
            Node::SoftPlus { a, temperature } => {
                let a = self.value(*a, step);
                self.soft_plus(a, temperature.0)
            }
            Node::Sigmoid { a, temperature } => {
                let a = self.value(*a, step);
                self.sigmoid(a, temperature.0)
            }
            Node::Norm { args, epsilon } => {
                let xs: Vec<Value> = args.iter().map(|&a| self.value(a, step)).collect();
                self.norm(&xs, epsilon.0)
            }
            Node::Select { index, options } => {
                let index = self.value(*index, step);
                let options: Vec<Value> = options.iter().map(|&o| self.value(o, step)).collect();
                self.select(index, &options)
            }
            Node::Time | Node::State { .. } | Node::Action { .. } => self.value(id, step),
            node @ (Node::Always { .. } | Node::Eventually { .. } | Node::Until { .. } | Node::SumOver { .. } | Node::Final { .. }) => {
                unreachable!("{node:?} is not pointwise")
            }
        }
    }

    /// Emits the adjoint of pointwise node `id` at `step`: adds `adjoint` times each partial
    /// derivative to the node's active operands.
    pub(super) fn pointwise_adjoint(&mut self, id: NodeId, step: Step, adjoint: Value) {
        let plan = self.plan;
        let g = adjoint;
        match &plan.graph.nodes[id as usize] {
            Node::Const { .. } | Node::Param { .. } | Node::Design { .. } | Node::Time | Node::State { .. } | Node::Action { .. } => {}
            Node::Distance { x, y, .. } => self.distance_adjoint(id, *x, *y, step, g),
            Node::Neg { a } => {
                let d = self.b.ins().fneg(g);
                self.accumulate(*a, step, d);
            }
            Node::Add { a, b } => {
                self.accumulate(*a, step, g);
                self.accumulate(*b, step, g);
            }
            Node::Sub { a, b } => {
                self.accumulate(*a, step, g);
                if self.is_active(*b) {
                    let d = self.b.ins().fneg(g);
                    self.accumulate(*b, step, d);
                }
            }
            Node::Mul { a, b } => {
                if self.is_active(*a) {
                    let vb = self.value(*b, step);
                    self.chain(*a, step, g, vb);
                }
                if self.is_active(*b) {
                    let va = self.value(*a, step);
                    self.chain(*b, step, g, va);
                }
            }
            Node::Div { a, b } => self.div_adjoint(id, *a, *b, step, g),
            Node::Powi { a, n } => self.powi_adjoint(*a, *n, step, g),
            Node::Abs { a } => self.abs_adjoint(*a, step, g),
            Node::Sqrt { a } => {
                // 1 / (2√a) as 0.5 / √a, and 0 at a = 0 where the derivative is infinite.
                let root = self.value(id, step);
                let half = self.constant(0.5);
                let slope = self.divide_or_zero(half, root);
                self.chain(*a, step, g, slope);
            }
            Node::Sin { a } => {
                let slope = match self.layout.nodes[id as usize].derivative {
                    Some(cos) => self.value(cos, step),
                    None => self.unary_call(Helper::Cos, *a, step),
                };
                self.chain(*a, step, g, slope);
            }
            Node::Cos { a } => {
                let sine = match self.layout.nodes[id as usize].derivative {
                    Some(sin) => self.value(sin, step),
                    None => self.unary_call(Helper::Sin, *a, step),
                };
                let slope = self.b.ins().fneg(sine);
                self.chain(*a, step, g, slope);
            }
            Node::Tan { a } => {
                // d tan(a) / da = 1 + tan(a)².
                let t = self.value(id, step);
                let square = self.b.ins().fmul(t, t);
                let one = self.constant(1.0);
                let slope = self.b.ins().fadd(one, square);
                self.chain(*a, step, g, slope);
            }
            Node::Exp { a } => {
                let e = self.value(id, step);
                self.chain(*a, step, g, e);
            }
            Node::Log { a } => {
                let va = self.value(*a, step);
                let one = self.constant(1.0);
                let slope = self.b.ins().fdiv(one, va);
                self.chain(*a, step, g, slope);
            }
            Node::Atan2 { y, x } => self.atan2_adjoint(*y, *x, step, g),
            Node::Min { a, b } => {
                let (va, vb) = (self.value(*a, step), self.value(*b, step));
                self.below_chain(*a, va, vb, step, g);
                self.below_chain(*b, vb, va, step, g);
            }
            Node::Max { a, b } => {
                let (va, vb) = (self.value(*a, step), self.value(*b, step));
                self.below_chain(*a, vb, va, step, g);
                self.below_chain(*b, va, vb, step, g);
            }
            Node::SoftMin { args, temperature } => self.soft_extreme_adjoint(id, args, step, g, -1.0, temperature.0),
            Node::SoftMax { args, temperature } => self.soft_extreme_adjoint(id, args, step, g, 1.0, temperature.0),
            Node::SoftPlus { a, temperature } => {
                // d softplus_τ(a) / da = σ_τ(a), read from a sigmoid node of the graph if
                // there is one.
                let slope = match self.layout.nodes[id as usize].derivative {
                    Some(sigmoid) => self.value(sigmoid, step),
                    None => {
                        let va = self.value(*a, step);
                        self.sigmoid(va, temperature.0)
                    }
                };
                self.chain(*a, step, g, slope);
            }
            Node::Sigmoid { a, temperature } => {
                // d σ_τ(a) / da = σ_τ(a) · (1 − σ_τ(a)) / τ.
                let s = self.value(id, step);
                let one = self.constant(1.0);
                let rest = self.b.ins().fsub(one, s);
                let product = self.b.ins().fmul(s, rest);
                let tau = self.constant(temperature.0);
                let slope = self.b.ins().fdiv(product, tau);
                self.chain(*a, step, g, slope);
            }
            Node::Norm { args, .. } => {
                // d‖a‖_ε / daᵢ = aᵢ / ‖a‖_ε, finite because ‖a‖_ε ≥ ε > 0.
                let length = self.value(id, step);
                for &arg in args {
                    if self.is_active(arg) {
                        let va = self.value(arg, step);
                        let slope = self.b.ins().fdiv(va, length);
                        self.chain(arg, step, g, slope);
                    }
                }
            }
            Node::Select { index, options } => self.select_adjoint(*index, options, step, g),
            node @ (Node::Always { .. } | Node::Eventually { .. } | Node::Until { .. } | Node::SumOver { .. } | Node::Final { .. }) => {
                unreachable!("{node:?} is not pointwise")
            }
        }
    }

    pub(super) fn is_active(&self, id: NodeId) -> bool {
        self.layout.nodes[id as usize].active
    }

    /// Returns whether some step of node `id` is read.
    pub(super) fn is_needed(&self, id: NodeId) -> bool {
        self.layout.nodes[id as usize].place != super::layout::Place::Unused
    }

    /// Adds `adjoint · factor` to the adjoint of `id`, except that the product is 0 wherever
    /// the adjoint is 0, even if `factor` is not finite: a branch the energy does not take
    /// passes no NaN on.
    pub(super) fn chain(&mut self, id: NodeId, step: Step, adjoint: Value, factor: Value) {
        if !self.is_active(id) {
            return;
        }
        let product = self.b.ins().fmul(adjoint, factor);
        let zero = self.constant(0.0);
        let no_adjoint = self.b.ins().fcmp(FloatCC::Equal, adjoint, zero);
        let d = self.b.ins().select(no_adjoint, zero, product);
        self.accumulate(id, step, d);
    }

    /// `a / b`, or 0 where `b = 0`.
    fn divide_or_zero(&mut self, a: Value, b: Value) -> Value {
        let quotient = self.b.ins().fdiv(a, b);
        let zero = self.constant(0.0);
        let at_zero = self.b.ins().fcmp(FloatCC::Equal, b, zero);
        self.b.ins().select(at_zero, zero, quotient)
    }

    fn unary_call(&mut self, helper: Helper, a: NodeId, step: Step) -> Value {
        let a = self.value(a, step);
        self.call(helper, &[a])
    }

    fn powi(&mut self, a: Value, n: i32) -> Value {
        let n = self.b.ins().iconst(types::I32, n as i64);
        self.call(Helper::Powi, &[a, n])
    }

    fn powi_adjoint(&mut self, a: NodeId, n: i32, step: Step, g: Value) {
        if n == 0 || !self.is_active(a) {
            return;
        }
        // d aⁿ / da = n · aⁿ⁻¹, with a⁰ = 1 and a¹ = a written out.
        let va = self.value(a, step);
        let lower = match n - 1 {
            0 => self.constant(1.0),
            1 => va,
            m => self.powi(va, m),
        };
        let slope = if n == 1 {
            lower
        } else {
            let count = self.constant(n as f64);
            self.b.ins().fmul(count, lower)
        };
        self.chain(a, step, g, slope);
    }

    fn div_adjoint(&mut self, id: NodeId, a: NodeId, b: NodeId, step: Step, g: Value) {
        // ∂(a / b)/∂a = 1 / b and ∂(a / b)/∂b = −(a / b) / b.
        let vb = self.value(b, step);
        if self.is_active(a) {
            let one = self.constant(1.0);
            let inverse = self.b.ins().fdiv(one, vb);
            self.chain(a, step, g, inverse);
        }
        if self.is_active(b) {
            let value = self.value(id, step);
            let quotient = self.b.ins().fdiv(value, vb);
            let slope = self.b.ins().fneg(quotient);
            self.chain(b, step, g, slope);
        }
    }

    /// Emits the adjoint of `abs`: the sign of `a`, where the sign of 0 (and of NaN) is the
    /// value itself.
    fn abs_adjoint(&mut self, a: NodeId, step: Step, g: Value) {
        if !self.is_active(a) {
            return;
        }
        let va = self.value(a, step);
        let zero = self.constant(0.0);
        let one = self.constant(1.0);
        let unit = self.b.ins().fcopysign(one, va);
        let nonzero = self.b.ins().fcmp(FloatCC::OrderedNotEqual, va, zero);
        let sign = self.b.ins().select(nonzero, unit, va);
        self.chain(a, step, g, sign);
    }

    fn atan2_adjoint(&mut self, y: NodeId, x: NodeId, step: Step, g: Value) {
        // ∂/∂y = x / (x² + y²) and ∂/∂x = −y / (x² + y²), both 0 at the origin.
        let (vy, vx) = (self.value(y, step), self.value(x, step));
        let xx = self.b.ins().fmul(vx, vx);
        let yy = self.b.ins().fmul(vy, vy);
        let radius2 = self.b.ins().fadd(xx, yy);
        if self.is_active(y) {
            let slope = self.divide_or_zero(vx, radius2);
            self.chain(y, step, g, slope);
        }
        if self.is_active(x) {
            let minus_y = self.b.ins().fneg(vy);
            let slope = self.divide_or_zero(minus_y, radius2);
            self.chain(x, step, g, slope);
        }
    }

    /// Chains the derivative of `min(a, b)` by `a` into `id`: 1 where `a < b`, ½ where
    /// `a = b`, 0 where `a > b`, NaN if either is NaN.
    fn below_chain(&mut self, id: NodeId, a: Value, b: Value, step: Step, g: Value) {
        if !self.is_active(id) {
            return;
        }
        let one = self.constant(1.0);
        let half = self.constant(0.5);
        let zero = self.constant(0.0);
        let nan = self.constant(f64::NAN);
        let less = self.b.ins().fcmp(FloatCC::LessThan, a, b);
        let equal = self.b.ins().fcmp(FloatCC::Equal, a, b);
        let unordered = self.b.ins().fcmp(FloatCC::Unordered, a, b);
        let slope = self.b.ins().select(equal, half, zero);
        let slope = self.b.ins().select(less, one, slope);
        let slope = self.b.ins().select(unordered, nan, slope);
        self.chain(id, step, g, slope);
    }

    /// `min(a, b)`, or NaN when either operand is NaN.
    pub(super) fn minimum(&mut self, a: Value, b: Value) -> Value {
        let b_smaller = self.b.ins().fcmp(FloatCC::LessThan, b, a);
        let smaller = self.b.ins().select(b_smaller, b, a);
        let unordered = self.b.ins().fcmp(FloatCC::Unordered, a, b);
        let nan = self.constant(f64::NAN);
        self.b.ins().select(unordered, nan, smaller)
    }

    /// `max(a, b) = −min(−a, −b)`, or NaN when either operand is NaN.
    fn maximum(&mut self, a: Value, b: Value) -> Value {
        let (na, nb) = (self.b.ins().fneg(a), self.b.ins().fneg(b));
        let smaller = self.minimum(na, nb);
        self.b.ins().fneg(smaller)
    }

    /// `softmax_τ` of `sign · xs`, times `sign`: the soft maximum for `sign = 1` and the soft
    /// minimum for `sign = −1`, in the interpreter's overflow-free form with its NaN and
    /// infinity rules.
    fn soft_extreme(&mut self, xs: &[Value], sign: f64, temperature: f64) -> Value {
        let signed: Vec<Value> = xs.iter().map(|&x| if sign < 0.0 { self.b.ins().fneg(x) } else { x }).collect();
        let mut any_nan = self.b.ins().iconst(types::I8, 0);
        let mut m = self.constant(f64::NEG_INFINITY);
        for &x in &signed {
            let nan = self.is_nan(x);
            any_nan = self.b.ins().bor(any_nan, nan);
            let larger = self.b.ins().fcmp(FloatCC::GreaterThan, x, m);
            m = self.b.ins().select(larger, x, m);
        }
        let tau = self.constant(temperature);
        let mut sum: Option<Value> = None;
        for &x in &signed {
            let shifted = self.b.ins().fsub(x, m);
            let scaled = self.b.ins().fdiv(shifted, tau);
            let e = self.call(Helper::Exp, &[scaled]);
            sum = Some(match sum {
                Some(s) => self.b.ins().fadd(s, e),
                None => e,
            });
        }
        let sum = sum.unwrap_or_else(|| self.constant(0.0));
        let result = self.finish_soft_maximum(m, sum, any_nan, temperature);
        if sign < 0.0 { self.b.ins().fneg(result) } else { result }
    }

    /// `m + τ · ln(sum)`, or `m` itself when it is infinite, or NaN when `any_nan` is set.
    pub(super) fn finish_soft_maximum(&mut self, m: Value, sum: Value, any_nan: Value, temperature: f64) -> Value {
        let tau = self.constant(temperature);
        let log = self.call(Helper::Ln, &[sum]);
        let scaled = self.b.ins().fmul(tau, log);
        let finite_result = self.b.ins().fadd(m, scaled);
        let magnitude = self.b.ins().fabs(m);
        let infinity = self.constant(f64::INFINITY);
        let infinite = self.b.ins().fcmp(FloatCC::Equal, magnitude, infinity);
        let result = self.b.ins().select(infinite, m, finite_result);
        let nan = self.constant(f64::NAN);
        self.b.ins().select(any_nan, nan, result)
    }

    /// Emits the adjoint of `softmin` (`sign = −1`) or `softmax` (`sign = 1`). Argument `x`
    /// gets the weight `exp((value − x) / τ)` or `exp((x − value) / τ)`, at most 1 either way.
    fn soft_extreme_adjoint(&mut self, id: NodeId, args: &[NodeId], step: Step, g: Value, sign: f64, temperature: f64) {
        let value = self.value(id, step);
        let tau = self.constant(temperature);
        for &arg in args {
            if !self.is_active(arg) {
                continue;
            }
            let x = self.value(arg, step);
            let gap = if sign < 0.0 { self.b.ins().fsub(value, x) } else { self.b.ins().fsub(x, value) };
            let scaled = self.b.ins().fdiv(gap, tau);
            let weight = self.call(Helper::Exp, &[scaled]);
            self.chain(arg, step, g, weight);
        }
    }

    /// `softplus_τ(a) = max(a, 0) + τ · ln(1 + exp(−|a| / τ))`.
    fn soft_plus(&mut self, a: Value, temperature: f64) -> Value {
        let zero = self.constant(0.0);
        let positive = self.b.ins().fcmp(FloatCC::GreaterThan, a, zero);
        let ramp = self.b.ins().select(positive, a, zero);
        let magnitude = self.b.ins().fabs(a);
        let negated = self.b.ins().fneg(magnitude);
        let tau = self.constant(temperature);
        let scaled = self.b.ins().fdiv(negated, tau);
        let e = self.call(Helper::Exp, &[scaled]);
        let log = self.call(Helper::Ln1p, &[e]);
        let smooth = self.b.ins().fmul(tau, log);
        self.b.ins().fadd(ramp, smooth)
    }

    /// `σ_τ(a) = 1 / (1 + exp(−a / τ))`.
    pub(super) fn sigmoid(&mut self, a: Value, temperature: f64) -> Value {
        let negated = self.b.ins().fneg(a);
        let tau = self.constant(temperature);
        let scaled = self.b.ins().fdiv(negated, tau);
        let e = self.call(Helper::Exp, &[scaled]);
        let one = self.constant(1.0);
        let denominator = self.b.ins().fadd(one, e);
        self.b.ins().fdiv(one, denominator)
    }

    /// `√(Σ aᵢ² + ε²)`.
    fn norm(&mut self, xs: &[Value], epsilon: f64) -> Value {
        let mut sum: Option<Value> = None;
        for &x in xs {
            let square = self.b.ins().fmul(x, x);
            sum = Some(match sum {
                Some(s) => self.b.ins().fadd(s, square),
                None => square,
            });
        }
        let squares = sum.unwrap_or_else(|| self.constant(0.0));
        let epsilon2 = self.constant(epsilon * epsilon);
        let total = self.b.ins().fadd(squares, epsilon2);
        self.b.ins().sqrt(total)
    }

    /// Emits the option index `clamp(round(index), 0, count − 1)` as an `i64`, where `round`
    /// rounds half away from zero like `f64::round`.
    fn option_index(&mut self, index: Value, count: usize) -> Value {
        let whole = self.b.ins().trunc(index);
        let difference = self.b.ins().fsub(index, whole);
        let fraction = self.b.ins().fabs(difference);
        let half = self.constant(0.5);
        let one = self.constant(1.0);
        let away = self.b.ins().fcopysign(one, index);
        let rounded_away = self.b.ins().fadd(whole, away);
        let round_up = self.b.ins().fcmp(FloatCC::GreaterThanOrEqual, fraction, half);
        let rounded = self.b.ins().select(round_up, rounded_away, whole);
        let integer = self.b.ins().fcvt_to_sint_sat(types::I64, rounded);
        let zero = self.b.ins().iconst(types::I64, 0);
        let last = self.b.ins().iconst(types::I64, count.saturating_sub(1) as i64);
        let clamped = self.b.ins().smax(integer, zero);
        self.b.ins().smin(clamped, last)
    }

    /// `options[clamp(round(index))]`, or NaN for a NaN index or no options.
    fn select(&mut self, index: Value, options: &[Value]) -> Value {
        let nan = self.constant(f64::NAN);
        let Some((&first, rest)) = options.split_first() else { return nan };
        let chosen_index = self.option_index(index, options.len());
        let mut chosen = first;
        for (j, &option) in rest.iter().enumerate() {
            let is_this = self.b.ins().icmp_imm_s(IntCC::Equal, chosen_index, (j + 1) as i64);
            chosen = self.b.ins().select(is_this, option, chosen);
        }
        let index_nan = self.is_nan(index);
        self.b.ins().select(index_nan, nan, chosen)
    }

    /// Emits the adjoint of `select`. The chosen option gets the adjoint through a mask that
    /// is 1 at its position and 0 elsewhere (NaN for a NaN index), and the index gets none.
    fn select_adjoint(&mut self, index: NodeId, options: &[NodeId], step: Step, g: Value) {
        let vi = self.value(index, step);
        let chosen_index = self.option_index(vi, options.len());
        let one = self.constant(1.0);
        let zero = self.constant(0.0);
        let nan = self.constant(f64::NAN);
        let index_nan = self.is_nan(vi);
        for (j, &option) in options.iter().enumerate() {
            if !self.is_active(option) {
                continue;
            }
            let is_this = self.b.ins().icmp_imm_s(IntCC::Equal, chosen_index, j as i64);
            let mask = self.b.ins().select(is_this, one, zero);
            let mask = self.b.ins().select(index_nan, nan, mask);
            self.chain(option, step, g, mask);
        }
    }

    /// Emits a distance lookup through the `basin_distance` helper. With the gradient, the
    /// helper also writes the slopes into the node's slope rows for the reverse sweep.
    fn distance(&mut self, id: NodeId, context: u32, x: NodeId, y: NodeId, step: Step) -> Value {
        let (vx, vy) = (self.value(x, step), self.value(y, step));
        let fields = self.buffer(Buffer::Fields);
        let grid = self.b.ins().load(types::I64, flags(), fields, (context as usize * 8) as i32);
        let slope_step = self.slope_step(id, step);
        let (slope_x, slope_y) = match self.layout.nodes[id as usize].slopes {
            Some((sx, sy)) => (self.scratch_pointer(sx, slope_step), self.scratch_pointer(sy, slope_step)),
            None => {
                let null = self.b.ins().iconst(types::I64, 0);
                (null, null)
            }
        };
        self.call(Helper::Distance, &[grid, vx, vy, slope_x, slope_y])
    }

    fn distance_adjoint(&mut self, id: NodeId, x: NodeId, y: NodeId, step: Step, g: Value) {
        let (sx, sy) = self.layout.nodes[id as usize].slopes.expect("active distance nodes store their slopes");
        let slope_step = self.slope_step(id, step);
        if self.is_active(x) {
            let slope = self.load_scratch(sx, slope_step);
            self.chain(x, step, g, slope);
        }
        if self.is_active(y) {
            let slope = self.load_scratch(sy, slope_step);
            self.chain(y, step, g, slope);
        }
    }

    /// Returns the step at which a distance node's slopes are stored: 0 for a uniform node.
    fn slope_step(&self, id: NodeId, step: Step) -> Step {
        match self.layout.nodes[id as usize].place {
            super::layout::Place::Uniform => Step::Fixed(0),
            _ => step,
        }
    }
}
