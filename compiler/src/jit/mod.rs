//! A cranelift JIT for plan energies: compiles a plan's total energy, and optionally its
//! gradient, into one native function over the flat buffers of [`Inputs`].
//!
//! The semantics are those of `spec/energy.md`, and the reference interpreter
//! (`energy::evaluate`, `energy::gradient`) is the oracle: `tests/jit.rs` checks that both
//! agree on every example and on random graphs. The gradient is a reverse sweep generated
//! with the forward code (adjoint code), not a second graph walk at run time.
//!
//! # The generated function
//!
//! ```text
//! extern "C" fn(states: *const f64, actions: *const f64, design: *const f64,
//!               params: *const f64, fields: *const *const DistanceGrid, time0: f64,
//!               terms: *mut f64, grad_states: *mut f64, grad_actions: *mut f64,
//!               grad_design: *mut f64, scratch: *mut f64) -> f64
//! ```
//!
//! - The input buffers have the layout of [`Inputs`] and the lengths of [`Shape::of`] the
//!   plan. `fields` has one pointer per plan context, null for contexts that are not maps.
//! - It returns the total energy, the sum of the term energies in term order.
//! - With [`Outputs::terms`], it writes each term's energy to `terms[i]`.
//! - With [`Outputs::gradient`], it writes the gradient of the total into the three gradient
//!   buffers, which have the layout and lengths of the decision buffers. It overwrites them,
//!   so they need no clearing.
//! - `scratch` has room for [`JitEnergy::scratch_len`] values: node values over the steps they are
//!   needed at, adjoint rows and work rows. Its contents on entry do not matter.
//! - Outputs that were not compiled in are not touched, and their pointers may be null.
//!
//! The function does not judge finiteness: [`JitEnergy::evaluate`] and
//! [`JitEnergy::gradient`] derive the [`Status`] afterwards, with the interpreter's rules.
//!
//! Transcendental functions and distance lookups are calls to the `extern "C"` helpers in
//! `helpers.rs`, registered under the symbols `basin_exp`, `basin_ln`, `basin_ln_1p`,
//! `basin_sin`, `basin_cos`, `basin_tan`, `basin_atan2`, `basin_powi` and `basin_distance`.
//!
//! # How the code is laid out
//!
//! `layout.rs` decides, before any code exists, at which steps each node is needed and so
//! whether it is computed once, at one step, or in a loop over steps; `translate.rs` emits
//! the forward items and then the same items in reverse for the gradient, with one method
//! per node kind in `pointwise.rs` and `temporal.rs`.

mod helpers;
mod layout;
mod pointwise;
mod temporal;
mod translate;

use cranelift_codegen::Context;
use cranelift_codegen::ir::UserFuncName;
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{FuncId, Linkage, Module, ModuleError, default_libcall_names};

use crate::energy::{DistanceGrid, Evaluation, Gradient, Inputs, Shape, Status};
use crate::plan::{Node, Plan};

use self::helpers::Helper;
use self::layout::Layout;
use self::translate::{Translator, energy_signature};

/// The signature of a compiled energy function; see the module documentation.
pub type EnergyFn = unsafe extern "C" fn(
    *const f64,
    *const f64,
    *const f64,
    *const f64,
    *const *const DistanceGrid,
    f64,
    *mut f64,
    *mut f64,
    *mut f64,
    *mut f64,
    *mut f64,
) -> f64;

/// The outputs a compiled function writes besides the total energy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outputs {
    /// Write each term's energy (for explanations and statuses that name a term).
    pub terms: bool,
    /// Compute the gradient of the total energy by a reverse sweep.
    pub gradient: bool,
}

impl Outputs {
    /// The total energy only, for samplers.
    pub const ENERGY: Outputs = Outputs { terms: false, gradient: false };
    /// The total energy and its gradient, for gradient steps.
    pub const GRADIENT: Outputs = Outputs { terms: false, gradient: true };
    /// Everything: the term energies, their total and the gradient.
    pub const ALL: Outputs = Outputs { terms: true, gradient: true };
}

#[derive(Debug, thiserror::Error)]
pub enum JitError {
    #[error("cranelift does not support this machine: {0}")]
    Host(String),
    #[error("cranelift could not compile the energy function: {0}")]
    Module(#[from] Box<ModuleError>),
}

/// A plan's energy compiled to native code.
///
/// The compiled code lives in `module`, which is freed when this value is dropped, so the
/// function pointer is only valid while it is alive.
pub struct JitEnergy {
    module: Option<JITModule>,
    function: EnergyFn,
    shape: Shape,
    outputs: Outputs,
    scratch_len: usize,
    term_count: usize,
    /// Numbers and names of the contexts whose distance field some node of the graph reads.
    distance_contexts: Vec<(u32, String)>,
    context_count: usize,
}

// SAFETY: `&JitEnergy` only reads plain data and calls the compiled function, which keeps
// no state between calls and writes only into the caller's buffers. The module, the one
// part that is not `Sync`, is touched only by `Drop`, through `&mut self`.
unsafe impl Sync for JitEnergy {}

/// Buffers for repeated calls of one [`JitEnergy`]: the scratch space, the term energies and
/// the gradient of the last call.
pub struct Workspace {
    scratch: Vec<f64>,
    pub terms: Vec<f64>,
    pub gradient: Gradient,
    /// The `fields` argument of the last call. It is refilled from `Inputs::fields` by every
    /// call and never read in between.
    fields: Vec<*const DistanceGrid>,
}

// SAFETY: the only pointers in a workspace are the field table's, which `JitEnergy::run`
// overwrites before each call and nothing dereferences outside it.
unsafe impl Send for Workspace {}

/// Compiles `plan`'s energy with the given outputs.
pub fn compile(plan: &Plan, outputs: Outputs) -> Result<JitEnergy, JitError> {
    let _span = tracing::info_span!("jit_compile", nodes = plan.graph.nodes.len(), gradient = outputs.gradient).entered();
    let layout = Layout::new(plan, outputs.gradient);
    let mut module = new_module()?;
    let (mut context, id) = build(&mut module, plan, &layout, outputs)?;
    module.define_function(id, &mut context).map_err(Box::new)?;
    module.clear_context(&mut context);
    module.finalize_definitions().map_err(Box::new)?;
    let code = module.get_finalized_function(id);
    // SAFETY: `build` declared the function with the signature that `EnergyFn` spells out,
    // and the code stays mapped while `module` lives inside the returned value.
    let function = unsafe { std::mem::transmute::<*const u8, EnergyFn>(code) };

    let mut distance_contexts: Vec<(u32, String)> = plan
        .graph
        .nodes
        .iter()
        .filter_map(|n| match n {
            Node::Distance { context, .. } => Some((*context, plan.contexts.get(*context as usize).map_or("?".into(), |c| c.name.clone()))),
            _ => None,
        })
        .collect();
    distance_contexts.sort_unstable();
    distance_contexts.dedup();

    Ok(JitEnergy {
        module: Some(module),
        function,
        shape: Shape::of(plan),
        outputs,
        scratch_len: layout.scratch_len,
        term_count: plan.terms.len(),
        distance_contexts,
        context_count: plan.contexts.len(),
    })
}

/// The Cranelift IR of `plan`'s energy function with the given outputs, as text, before
/// Cranelift optimizes it. A comment header names the helper each external function is.
pub fn clif(plan: &Plan, outputs: Outputs) -> Result<String, JitError> {
    let layout = Layout::new(plan, outputs.gradient);
    let mut module = new_module()?;
    let (context, _) = build(&mut module, plan, &layout, outputs)?;
    let mut text = String::new();
    for (id, declaration) in module.declarations().get_functions() {
        if let Some(name) = &declaration.name {
            text.push_str(&format!("; u0:{} = {name}\n", id.as_u32()));
        }
    }
    text.push_str(&context.func.display().to_string());
    Ok(text)
}

fn new_module() -> Result<JITModule, JitError> {
    let mut flags = settings::builder();
    let host = |e: settings::SetError| JitError::Host(e.to_string());
    flags.set("use_colocated_libcalls", "false").map_err(host)?;
    // `JITModule::new` requires position-dependent code.
    flags.set("is_pic", "false").map_err(host)?;
    flags.set("opt_level", "speed").map_err(host)?;
    // The verifier takes about a fifth of the compile time, so only debug builds run it.
    flags.set("enable_verifier", if cfg!(debug_assertions) { "true" } else { "false" }).map_err(host)?;
    let isa = cranelift_native::builder()
        .map_err(|e| JitError::Host(e.to_string()))?
        .finish(settings::Flags::new(flags))
        .map_err(|e| JitError::Host(e.to_string()))?;
    let mut builder = JITBuilder::with_isa(isa, default_libcall_names());
    for helper in Helper::ALL {
        builder.symbol(helper.symbol(), helper.address());
    }
    Ok(JITModule::new(builder))
}

/// Declares the energy function in `module` and builds its body.
fn build(module: &mut JITModule, plan: &Plan, layout: &Layout, outputs: Outputs) -> Result<(Context, FuncId), JitError> {
    let signature = energy_signature(module.isa().default_call_conv());
    let id = module.declare_function("basin_energy", Linkage::Local, &signature).map_err(Box::new)?;
    let mut context = module.make_context();
    context.func.signature = signature;
    context.func.name = UserFuncName::user(0, id.as_u32());
    let mut builder_context = FunctionBuilderContext::new();
    let builder = FunctionBuilder::new(&mut context.func, &mut builder_context);
    Translator::new(builder, module, plan, layout, outputs).translate()?;
    Ok((context, id))
}

impl Drop for JitEnergy {
    fn drop(&mut self) {
        if let Some(module) = self.module.take() {
            // SAFETY: the only pointer into the module's code is `self.function`, which dies
            // with `self`.
            unsafe { module.free_memory() };
        }
    }
}

impl JitEnergy {
    pub fn shape(&self) -> Shape {
        self.shape
    }

    pub fn outputs(&self) -> Outputs {
        self.outputs
    }

    /// Number of `f64` values the function needs in its scratch buffer.
    pub fn scratch_len(&self) -> usize {
        self.scratch_len
    }

    /// The raw function, for callers that manage the buffers themselves.
    ///
    /// # Safety
    ///
    /// The pointer is valid only while `self` lives, and calling it requires buffers of the
    /// lengths the module documentation gives, distance grids that [`check_field`] accepts,
    /// and no aliasing between output buffers.
    pub unsafe fn function(&self) -> EnergyFn {
        self.function
    }

    /// Buffers sized for this function.
    pub fn workspace(&self) -> Workspace {
        let gradient = if self.outputs.gradient {
            Gradient { states: vec![0.0; self.shape.state_len()], actions: vec![0.0; self.shape.action_len()], design: vec![0.0; self.shape.n_design] }
        } else {
            Gradient { states: Vec::new(), actions: Vec::new(), design: Vec::new() }
        };
        Workspace {
            scratch: vec![0.0; self.scratch_len],
            terms: vec![0.0; if self.outputs.terms { self.term_count } else { 0 }],
            gradient,
            fields: vec![std::ptr::null(); self.context_count],
        }
    }

    /// Runs the function on `inputs`, leaving the term energies and the gradient (as far as
    /// they were compiled in) in `workspace`, and returns the total energy.
    ///
    /// # Panics
    ///
    /// Panics if a buffer of `inputs` does not have the length the plan needs, if `workspace`
    /// was made for another function, or if the graph reads a distance field that
    /// `inputs.fields` lacks or that is malformed (see [`check_field`]).
    pub fn run(&self, inputs: &Inputs, workspace: &mut Workspace) -> f64 {
        let shape = &self.shape;
        let check = |name: &str, got: usize, expected: usize| {
            assert_eq!(got, expected, "Inputs::{name} has {got} values, but the compiled plan needs {expected}");
        };
        check("states", inputs.states.len(), shape.state_len());
        check("actions", inputs.actions.len(), shape.action_len());
        check("design", inputs.design.len(), shape.n_design);
        check("params", inputs.params.len(), shape.n_params);
        assert!(
            workspace.scratch.len() == self.scratch_len && workspace.fields.len() == self.context_count,
            "the workspace was made for another compiled energy"
        );

        for slot in workspace.fields.iter_mut() {
            *slot = std::ptr::null();
        }
        for (context, name) in &self.distance_contexts {
            let grid = match inputs.fields.get(*context as usize) {
                Some(Some(grid)) => grid,
                _ => panic!("the plan reads the distance field of context `{name}` (number {context}), but Inputs::fields has none for it"),
            };
            check_field(grid);
            workspace.fields[*context as usize] = grid;
        }

        let null = std::ptr::null_mut();
        let terms = if self.outputs.terms { workspace.terms.as_mut_ptr() } else { null };
        let (grad_states, grad_actions, grad_design) = if self.outputs.gradient {
            let g = &mut workspace.gradient;
            (g.states.as_mut_ptr(), g.actions.as_mut_ptr(), g.design.as_mut_ptr())
        } else {
            (null, null, null)
        };
        // SAFETY: every buffer has the length the generated code assumes (checked above or
        // made by `workspace`), every distance grid it reads was checked, and `self` keeps the
        // code alive for the call.
        unsafe {
            (self.function)(
                inputs.states.as_ptr(),
                inputs.actions.as_ptr(),
                inputs.design.as_ptr(),
                inputs.params.as_ptr(),
                workspace.fields.as_ptr(),
                inputs.time0,
                terms,
                grad_states,
                grad_actions,
                grad_design,
                workspace.scratch.as_mut_ptr(),
            )
        }
    }

    /// Evaluates the energy with the interpreter's status rules (see `energy::evaluate`).
    /// Without [`Outputs::terms`] the returned term list is empty and a non-finite status
    /// names no term.
    ///
    /// # Panics
    ///
    /// As [`JitEnergy::run`].
    pub fn evaluate(&self, inputs: &Inputs) -> Evaluation {
        let mut workspace = self.workspace();
        let total = self.run(inputs, &mut workspace);
        let status = status(&workspace.terms, total, inputs);
        Evaluation { total, terms: workspace.terms, status }
    }

    /// As [`JitEnergy::evaluate`], reusing `workspace` (made by [`JitEnergy::workspace`])
    /// instead of allocating one, for callers that evaluate many trajectories.
    ///
    /// # Panics
    ///
    /// As [`JitEnergy::run`].
    pub fn evaluate_with(&self, inputs: &Inputs, workspace: &mut Workspace) -> Evaluation {
        let total = self.run(inputs, workspace);
        let status = status(&workspace.terms, total, inputs);
        Evaluation { total, terms: workspace.terms.clone(), status }
    }

    /// Evaluates the energy and its gradient with the interpreter's status rules (see
    /// `energy::gradient`): the status is also non-finite, naming no term, when the energy is
    /// finite but a gradient entry is not.
    ///
    /// # Panics
    ///
    /// Panics if the function was compiled without [`Outputs::gradient`], and as
    /// [`JitEnergy::run`].
    pub fn gradient(&self, inputs: &Inputs) -> (Evaluation, Gradient) {
        assert!(self.outputs.gradient, "the energy was compiled without its gradient; compile it with `Outputs::gradient` set");
        let mut workspace = self.workspace();
        let total = self.run(inputs, &mut workspace);
        let mut status = status(&workspace.terms, total, inputs);
        let gradient = workspace.gradient;
        let all_finite = [&gradient.states, &gradient.actions, &gradient.design].iter().all(|b| b.iter().all(|v| v.is_finite()));
        if status == Status::Finite && !all_finite {
            status = Status::NonFinite { term: None };
        }
        (Evaluation { total, terms: workspace.terms, status }, gradient)
    }
}

/// Applies the interpreter's status rule: non-finite when a term, the total or any input
/// number is NaN or infinite, naming the first non-finite term.
fn status(terms: &[f64], total: f64, inputs: &Inputs) -> Status {
    let first_bad_term = terms.iter().position(|e| !e.is_finite());
    let buffers = [inputs.states, inputs.actions, inputs.design, inputs.params];
    let inputs_finite = inputs.time0.is_finite() && buffers.iter().all(|b| b.iter().all(|v| v.is_finite()));
    if first_bad_term.is_some() || !total.is_finite() || !inputs_finite { Status::NonFinite { term: first_bad_term } } else { Status::Finite }
}

/// Checks that sampling `grid` cannot panic, because a panic inside the generated code's
/// call to the distance helper would abort the process.
///
/// # Panics
///
/// Panics if the grid is empty, its `values` do not hold `width · height` numbers, or its
/// cell size is not a positive finite number.
pub fn check_field(grid: &DistanceGrid) {
    assert!(grid.width > 0 && grid.height > 0, "the distance grid is empty ({}×{} cells)", grid.width, grid.height);
    assert_eq!(grid.values.len(), grid.width * grid.height, "a {}×{} distance grid needs {} values", grid.width, grid.height, grid.width * grid.height);
    assert!(grid.cell.is_finite() && grid.cell > 0.0, "the distance grid's cell size must be positive and finite, got {}", grid.cell);
}
