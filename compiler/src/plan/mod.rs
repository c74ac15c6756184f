//! The compiled plan: what the runtime solves and what snapshot tests pin.
//!
//! A plan is deterministic and SI-normalized: the same source gives the same bytes, every
//! number is in SI units, terms are numbered in source order, and the energy graph is
//! hash-consed so equal subexpressions appear once. `spec/plan.md` documents the text and
//! JSON forms; `spec/energy.md` documents what each node and term computes.

mod checks;
pub mod graph;
mod lower;
pub mod refine;
mod text;

use serde::Serialize;

pub use graph::{Graph, Node, NodeId, Num};
pub use lower::{CompileOptions, compile};
pub use text::{format_number, to_text};
pub(crate) use text::node_text;

/// Format version of the compiled plan; bumped when the text or JSON form changes shape.
pub const PLAN_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Plan {
    pub version: u32,
    /// The spec's file name as given to the compiler.
    pub source: String,
    pub source_sha256: String,
    pub contexts: Vec<ContextPlan>,
    pub agents: Vec<AgentPlan>,
    pub designs: Vec<DesignPlan>,
    pub sites: Vec<SitePlan>,
    /// Named numbers the energy reads; refinements edit them.
    pub params: Vec<ParamPlan>,
    pub horizon: Option<HorizonPlan>,
    pub solver: Vec<SolverStage>,
    pub worlds: Vec<WorldPlan>,
    pub terms: Vec<Term>,
    pub graph: Graph,
    pub refinements: Vec<RefinementPlan>,
}

impl Plan {
    /// Returns the owner's name and the component of the graph's `state agent component`
    /// node: an agent's state, or for `agent ≥ agents.len()` an outcome of design
    /// `agent − agents.len()`.
    pub fn state_component(&self, agent: u32, component: u32) -> Option<(&str, &Component)> {
        let agent = agent as usize;
        match self.agents.get(agent) {
            Some(a) => a.states.get(component as usize).map(|c| (a.name.as_str(), c)),
            None => {
                let d = self.designs.get(agent - self.agents.len())?;
                d.states.get(component as usize).map(|c| (d.name.as_str(), c))
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ContextPlan {
    pub name: String,
    pub loader: String,
    pub path: String,
    /// Hex sha256 of the file's bytes, or of the inline text for `text("…")` notes.
    pub sha256: Option<String>,
    pub size: Option<u64>,
    pub settings: Vec<Setting>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Setting {
    pub name: String,
    /// The value in SI units, or a word such as `dark`.
    pub value: SettingValue,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum SettingValue {
    Number(Num),
    Word(String),
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AgentPlan {
    pub name: String,
    /// The model's full path, e.g. `std.robots.diff_drive`.
    pub model: String,
    pub states: Vec<Component>,
    pub actions: Vec<Component>,
}

/// A state or action component with its SI unit and bounds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Component {
    pub name: String,
    pub unit: String,
    pub lower: Option<Num>,
    pub upper: Option<Num>,
    /// The initial value (states only).
    pub initial: Option<Num>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DesignPlan {
    pub name: String,
    pub model: String,
    pub variables: Vec<DesignVariable>,
    /// The model's `state` members: the outcomes of the design's scenario (such as the
    /// tip margin under a load test), which a surrogate or the simulator supplies. In the
    /// energy layout they are state columns after every agent's states, at step 0.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub states: Vec<Component>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DesignVariable {
    /// `chair.base_radius`
    pub name: String,
    pub unit: String,
    pub domain: Domain,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Domain {
    Continuous { lower: Num, upper: Num },
    /// A choice among named options, sampled as an index.
    Discrete { choices: Vec<String> },
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SitePlan {
    pub name: String,
    pub position: Vec<Num>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ParamPlan {
    /// `robot.max_speed`, `today`, `chair.armrest_material.abs_plastic.tensile_strength`
    pub name: String,
    pub value: Num,
    pub unit: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HorizonPlan {
    /// Seconds per step.
    pub step: Num,
    /// Seconds.
    pub horizon: Num,
    pub steps: u32,
    /// Wall-clock limit of a closed-loop run, seconds.
    pub time_limit: Option<Num>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SolverStage {
    pub name: String,
    pub settings: Vec<Setting>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WorldPlan {
    pub name: String,
    pub kind: String,
    /// The `from` expression as written, e.g. `simulate(robot, floor)`.
    pub source: Option<String>,
    /// Agents, designs and contexts the source names.
    pub inputs: Vec<String>,
    pub settings: Vec<Setting>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TermKind {
    /// Tracking a `reach` target; active while the run is in its phase.
    Reach,
    /// `finish_by`: a penalty on the estimated finishing time past the deadline.
    Deadline,
    Minimize,
    Maximize,
    /// A condition (temporal or not) scored by its robustness.
    Condition,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Term {
    pub id: u32,
    /// `BLOCK.INDEX` with the clause's index in its block, from 1.
    pub name: String,
    pub block: String,
    /// Line of the clause in the spec, from 1.
    pub line: u32,
    /// The clause as written, for reports.
    pub source: String,
    pub kind: TermKind,
    pub hard: bool,
    pub weight: Num,
    /// The node whose value at step 0 is this term's energy.
    pub energy: NodeId,
    /// The node whose value at step 0 is the clause's robustness (positive = satisfied).
    pub robustness: Option<NodeId>,
    /// For `reach` clauses: the position in the `then` sequence, from 0.
    pub phase: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RefinementPlan {
    pub name: String,
    pub steps: Vec<RefinementStep>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RefinementStep {
    /// Seconds into a run, for timed steps.
    pub at: Option<Num>,
    pub edit: Edit,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "edit", rename_all = "snake_case")]
pub enum Edit {
    /// Change a parameter: `op` is one of `=`, `+=`, `-=`, `*=`, `/=`, with the operand in SI.
    Param { param: String, op: String, value: Num },
    /// Add an axis-aligned box obstacle of the given size centred at a point, metres.
    AddBox { width: Num, depth: Num, x: Num, y: Num },
    /// Add a round obstacle, metres.
    AddCircle { radius: Num, x: Num, y: Num },
    /// Solve again with the named world model, goal or constraint refreshed.
    Rerun { name: String },
}
