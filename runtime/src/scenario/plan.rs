//! Building scenarios from a compiled plan: each agent's model picks its scenario, the
//! plan's parameters fill it, and the map contexts the agent is simulated in become its
//! obstacles.
//!
//! Parameters are read by their plan names, `AGENT.PARAM` (`robot.max_speed`). The start
//! state is the `start` of each state component. The contexts of an agent are the other
//! inputs of the first world whose `from` expression names it, as `floor` in
//! `simulate(robot, floor)`. When no world names the agent, it gets every `image`, `map` and
//! `scene` context of the plan.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use basin_compiler::plan::{AgentPlan, Component, ContextPlan, Domain, Plan, SettingValue};

use super::cart_pole::{CartPole, CartPoleParams};
use super::chair::{Chair, ChairParams};
use super::diff_drive::{DiffDrive, DiffDriveParams, StartRegion};
use super::double_integrator::{DoubleIntegrator, DoubleIntegratorParams};
use super::obstacles::{Obstacle, obstacles_from_grid, obstacles_from_scene};
use super::pendulum::{Pendulum, PendulumParams};
use super::rng::derive_seed;
use super::{Channel, Event, Layout, Scenario, ScenarioError, Step};
use crate::context::{DistanceField, Grid, ObstacleRule, load_image, load_map, load_scene};

/// The agent models that have a scenario.
const AGENT_MODELS: [&str; 4] = [
    "std.robots.diff_drive",
    "std.robots.pendulum",
    "std.robots.cart_pole",
    "std.robots.double_integrator",
];
/// The design model that has a scenario.
const CHAIR_MODEL: &str = "std.furniture.office_chair";

/// Start state of the agents after a reset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// The plan's start state, the same for every seed.
    Plan,
    /// A state drawn from the seed over the region each scenario documents, for training
    /// data that covers more than one start.
    Random,
}

/// One agent's scenario.
enum AgentScenario {
    DiffDrive(DiffDrive),
    Pendulum(Pendulum),
    CartPole(CartPole),
    DoubleIntegrator(DoubleIntegrator),
}

impl AgentScenario {
    fn scenario(&self) -> &dyn Scenario {
        match self {
            AgentScenario::DiffDrive(s) => s,
            AgentScenario::Pendulum(s) => s,
            AgentScenario::CartPole(s) => s,
            AgentScenario::DoubleIntegrator(s) => s,
        }
    }

    fn scenario_mut(&mut self) -> &mut dyn Scenario {
        match self {
            AgentScenario::DiffDrive(s) => s,
            AgentScenario::Pendulum(s) => s,
            AgentScenario::CartPole(s) => s,
            AgentScenario::DoubleIntegrator(s) => s,
        }
    }

    fn duplicate(&self) -> Self {
        match self {
            AgentScenario::DiffDrive(s) => AgentScenario::DiffDrive(s.duplicate()),
            AgentScenario::Pendulum(s) => AgentScenario::Pendulum(s.duplicate()),
            AgentScenario::CartPole(s) => AgentScenario::CartPole(s.duplicate()),
            AgentScenario::DoubleIntegrator(s) => AgentScenario::DoubleIntegrator(s.duplicate()),
        }
    }

    fn reset_random(&mut self, seed: u64) -> Vec<f64> {
        match self {
            AgentScenario::DiffDrive(s) => s.reset_random(seed),
            AgentScenario::Pendulum(s) => s.reset_random(seed),
            AgentScenario::CartPole(s) => s.reset_random(seed),
            AgentScenario::DoubleIntegrator(s) => s.reset_random(seed),
        }
    }
}

/// The agents of a plan, each in its own world, stepped together in the plan's layout.
///
/// NOTE: agents do not interact: two bases on one floor pass through each other.
pub struct PlanScenario {
    layout: Layout,
    agents: Vec<AgentScenario>,
    start: Start,
}

impl PlanScenario {
    pub fn start(&self) -> Start {
        self.start
    }

    pub fn set_start(&mut self, start: Start) {
        self.start = start;
    }

    /// Creates a fresh copy in the start state that shares loaded maps, for running episodes
    /// in parallel.
    pub fn duplicate(&self) -> Self {
        PlanScenario {
            layout: self.layout.clone(),
            agents: self.agents.iter().map(AgentScenario::duplicate).collect(),
            start: self.start,
        }
    }

    /// Returns the obstacles of agent `agent` when it is a mobile base, for reading contact
    /// events.
    pub fn obstacles(&self, agent: usize) -> &[Obstacle] {
        match self.agents.get(agent) {
            Some(AgentScenario::DiffDrive(base)) => base.obstacles(),
            _ => &[],
        }
    }
}

impl Scenario for PlanScenario {
    fn layout(&self) -> &Layout {
        &self.layout
    }

    fn reset(&mut self, seed: u64) -> Vec<f64> {
        let start = self.start;
        let mut state = Vec::with_capacity(self.layout.states.len());
        for (index, agent) in self.agents.iter_mut().enumerate() {
            let agent_seed = derive_seed(seed, index as u64);
            state.extend(match start {
                Start::Plan => agent.scenario_mut().reset(agent_seed),
                Start::Random => agent.reset_random(agent_seed),
            });
        }
        state
    }

    fn observe(&self) -> Vec<f64> {
        self.agents
            .iter()
            .flat_map(|agent| agent.scenario().observe())
            .collect()
    }

    fn step(&mut self, action: &[f64], dt: f64) -> Step {
        assert_eq!(
            action.len(),
            self.layout.actions.len(),
            "expected {} action values, found {}",
            self.layout.actions.len(),
            action.len()
        );
        let mut state = Vec::with_capacity(self.layout.states.len());
        let mut applied = Vec::with_capacity(action.len());
        let mut events = Vec::new();
        let mut offset = 0;
        for (index, agent) in self.agents.iter_mut().enumerate() {
            let scenario = agent.scenario_mut();
            let count = scenario.layout().actions.len();
            let step = scenario.step(&action[offset..offset + count], dt);
            offset += count;
            state.extend(step.state);
            applied.extend(step.action);
            // Bounds are checked below against the plan's columns for every agent alike.
            events.extend(step.events.into_iter().filter_map(|event| match event {
                Event::OutOfBounds { .. } => None,
                Event::ContactStarted { obstacle, .. } => Some(Event::ContactStarted {
                    agent: index,
                    obstacle,
                }),
                Event::ContactStopped { obstacle, .. } => Some(Event::ContactStopped {
                    agent: index,
                    obstacle,
                }),
                Event::JointLimit { .. } => Some(Event::JointLimit { agent: index }),
                other => Some(other),
            }));
        }
        for (column, (value, channel)) in state.iter().zip(&self.layout.states).enumerate() {
            if !channel.contains(*value) {
                events.push(Event::OutOfBounds { column });
            }
        }
        Step {
            state,
            action: applied,
            events,
        }
    }

    /// Adds the obstacle to every mobile base's world (agents do not share one).
    fn add_obstacle(&mut self, obstacle: &Obstacle) -> bool {
        let mut added = false;
        for agent in &mut self.agents {
            if let AgentScenario::DiffDrive(base) = agent {
                added |= base.add_obstacle(obstacle);
            }
        }
        added
    }
}

/// Builds the scenario of every agent of `plan`; context paths are relative to `base_dir`.
///
/// # Errors
///
/// Fails when the plan has no agent, an agent's model has no scenario, a parameter is missing
/// or invalid, or a context file cannot be loaded.
pub fn scenario_from_plan(
    plan: &Plan,
    base_dir: Option<&Path>,
    start: Start,
) -> Result<PlanScenario, ScenarioError> {
    if plan.agents.is_empty() {
        return Err(ScenarioError::NothingToSimulate);
    }
    let mut agents = Vec::with_capacity(plan.agents.len());
    let mut layout = Layout::default();
    for (index, agent) in plan.agents.iter().enumerate() {
        let built = build_agent(plan, index, agent, base_dir)?;
        check_components(agent, built.scenario().layout())?;
        layout
            .states
            .extend(agent.states.iter().map(|c| plan_channel(&agent.name, c)));
        layout
            .actions
            .extend(agent.actions.iter().map(|c| plan_channel(&agent.name, c)));
        agents.push(built);
    }
    Ok(PlanScenario {
        layout,
        agents,
        start,
    })
}

fn plan_channel(agent: &str, component: &Component) -> Channel {
    Channel {
        name: format!("{agent}.{}", component.name),
        unit: component.unit.clone(),
        lower: component.lower.map(|n| n.0),
        upper: component.upper.map(|n| n.0),
    }
}

/// Checks that the plan's components are the ones the scenario produces, in its order.
fn check_components(agent: &AgentPlan, layout: &Layout) -> Result<(), ScenarioError> {
    let names = |channels: &[Channel]| channels.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
    let expected_states = names(&layout.states);
    let expected_actions = names(&layout.actions);
    let qualified = |components: &[Component]| {
        components
            .iter()
            .map(|c| format!("{}.{}", agent.name, c.name))
            .collect::<Vec<_>>()
    };
    if qualified(&agent.states) != expected_states || qualified(&agent.actions) != expected_actions
    {
        return Err(ScenarioError::UnsupportedModel {
            name: agent.name.clone(),
            model: format!(
                "{} with states {:?} and actions {:?} (the scenario has {expected_states:?} and {expected_actions:?})",
                agent.model,
                qualified(&agent.states),
                qualified(&agent.actions)
            ),
            known: AGENT_MODELS.join(", "),
        });
    }
    Ok(())
}

fn build_agent(
    plan: &Plan,
    index: usize,
    agent: &AgentPlan,
    base_dir: Option<&Path>,
) -> Result<AgentScenario, ScenarioError> {
    let name = agent.name.as_str();
    let param = |key: &str| param(plan, &format!("{name}.{key}"));
    let start = |component: usize| {
        agent
            .states
            .get(component)
            .and_then(|c| c.initial)
            .map_or(0.0, |n| n.0)
    };
    let built = match agent.model.as_str() {
        "std.robots.diff_drive" => {
            let params = DiffDriveParams {
                radius: positive(name, "radius", param("radius")?)?,
                max_speed: positive(name, "max_speed", param("max_speed")?)?,
                max_accel: positive(name, "max_accel", param("max_accel")?)?,
                max_turn_rate: positive(name, "max_turn_rate", param("max_turn_rate")?)?,
                start: [start(0), start(1), start(2)],
            };
            let (obstacles, region) = load_agent_contexts(plan, name, base_dir, params.radius)?;
            AgentScenario::DiffDrive(DiffDrive::with_parts(
                name,
                index,
                params,
                Arc::new(obstacles),
                region.map(Arc::new),
            ))
        }
        "std.robots.pendulum" => AgentScenario::Pendulum(Pendulum::new(
            name,
            PendulumParams {
                mass: positive(name, "mass", param("mass")?)?,
                length: positive(name, "length", param("length")?)?,
                max_torque: non_negative(name, "max_torque", param("max_torque")?)?,
                start: [start(0), start(1)],
            },
        )),
        "std.robots.cart_pole" => AgentScenario::CartPole(CartPole::with_agent(
            name,
            index,
            CartPoleParams {
                cart_mass: positive(name, "cart_mass", param("cart_mass")?)?,
                pole_mass: positive(name, "pole_mass", param("pole_mass")?)?,
                pole_length: positive(name, "pole_length", param("pole_length")?)?,
                max_force: non_negative(name, "max_force", param("max_force")?)?,
                rail_limit: positive(name, "rail_limit", param("rail_limit")?)?,
                start: [start(0), start(1), start(2), start(3)],
            },
        )),
        "std.robots.double_integrator" => AgentScenario::DoubleIntegrator(DoubleIntegrator::new(
            name,
            DoubleIntegratorParams {
                max_accel: non_negative(name, "max_accel", param("max_accel")?)?,
                max_speed: positive(name, "max_speed", param("max_speed")?)?,
                start: [start(0), start(1)],
            },
        )),
        other => {
            return Err(ScenarioError::UnsupportedModel {
                name: name.to_string(),
                model: other.to_string(),
                known: AGENT_MODELS.join(", "),
            });
        }
    };
    Ok(built)
}

/// Looks up the value of plan parameter `name`.
fn param(plan: &Plan, name: &str) -> Result<f64, ScenarioError> {
    plan.params
        .iter()
        .find(|p| p.name == name)
        .map(|p| p.value.0)
        .ok_or_else(|| ScenarioError::MissingParam(name.to_string()))
}

fn positive(agent: &str, key: &str, value: f64) -> Result<f64, ScenarioError> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(ScenarioError::InvalidParam {
            name: format!("{agent}.{key}"),
            value,
            reason: "it must be a positive number".into(),
        })
    }
}

fn non_negative(agent: &str, key: &str, value: f64) -> Result<f64, ScenarioError> {
    if value.is_finite() && value >= 0.0 {
        Ok(value)
    } else {
        Err(ScenarioError::InvalidParam {
            name: format!("{agent}.{key}"),
            value,
            reason: "it must be zero or positive".into(),
        })
    }
}

/// Lists the contexts agent `name` is simulated in, as the module documentation describes.
fn agent_contexts<'a>(plan: &'a Plan, name: &str) -> Vec<&'a ContextPlan> {
    let is_map =
        |context: &&ContextPlan| matches!(context.loader.as_str(), "image" | "map" | "scene");
    match plan
        .worlds
        .iter()
        .find(|world| world.inputs.iter().any(|input| input == name))
    {
        Some(world) => plan
            .contexts
            .iter()
            .filter(|c| world.inputs.contains(&c.name))
            .filter(is_map)
            .collect(),
        None => plan.contexts.iter().filter(is_map).collect(),
    }
}

/// Loads the obstacles of agent `name` and, from its first grid, the region random starts
/// are drawn from: cells whose centre is at least `radius` + 5 cm from every obstacle.
fn load_agent_contexts(
    plan: &Plan,
    name: &str,
    base_dir: Option<&Path>,
    radius: f64,
) -> Result<(Vec<Obstacle>, Option<StartRegion>), ScenarioError> {
    let mut obstacles = Vec::new();
    let mut region = None;
    for context in agent_contexts(plan, name) {
        let path = context_path(context, base_dir)?;
        match context.loader.as_str() {
            "scene" => obstacles.extend(obstacles_from_scene(&load_scene(&path)?)),
            _ => {
                let grid = load_grid(context, base_dir)?;
                obstacles.extend(obstacles_from_grid(&grid));
                if region.is_none() {
                    region = Some(start_region(&grid, radius + 0.05));
                }
            }
        }
    }
    Ok((obstacles, region))
}

/// Loads an `image` or `map` context as an occupancy grid.
pub(crate) fn load_grid(
    context: &ContextPlan,
    base_dir: Option<&Path>,
) -> Result<Grid, ScenarioError> {
    let path = context_path(context, base_dir)?;
    if context.loader == "image" {
        load_image_context(context, &path)
    } else {
        load_map_context(context, &path)
    }
}

fn context_path(context: &ContextPlan, base_dir: Option<&Path>) -> Result<PathBuf, ScenarioError> {
    let base = base_dir.ok_or(ScenarioError::NoBaseDir)?;
    Ok(base.join(&context.path))
}

fn number_setting(context: &ContextPlan, name: &str) -> Option<f64> {
    context
        .settings
        .iter()
        .find(|s| s.name == name)
        .and_then(|s| match &s.value {
            SettingValue::Number(n) => Some(n.0),
            SettingValue::Word(_) => None,
        })
}

fn word_setting<'a>(context: &'a ContextPlan, name: &str) -> Option<&'a str> {
    context
        .settings
        .iter()
        .find(|s| s.name == name)
        .and_then(|s| match &s.value {
            SettingValue::Word(word) => Some(word.as_str()),
            SettingValue::Number(_) => None,
        })
}

fn load_image_context(context: &ContextPlan, path: &Path) -> Result<Grid, ScenarioError> {
    let scale = number_setting(context, "scale").ok_or_else(|| ScenarioError::MissingSetting {
        name: context.name.clone(),
        setting: "scale".into(),
    })?;
    let rule_word = word_setting(context, "obstacles").unwrap_or("dark");
    let mut rule =
        ObstacleRule::from_str(rule_word).map_err(|reason| ScenarioError::InvalidSetting {
            name: context.name.clone(),
            reason,
        })?;
    if let Some(value) = number_setting(context, "threshold") {
        match &mut rule {
            ObstacleRule::Dark { threshold } | ObstacleRule::Light { threshold } => {
                *threshold = value
            }
            ObstacleRule::Colour(_) => {}
        }
    }
    Ok(load_image(path, scale, &rule)?)
}

fn load_map_context(context: &ContextPlan, path: &Path) -> Result<Grid, ScenarioError> {
    // NOTE: MovingAI maps have no unit; without `cell_size` a cell is taken as 1 m.
    let cell_size = number_setting(context, "cell_size").unwrap_or(1.0);
    Ok(load_map(path, cell_size)?)
}

fn start_region(grid: &Grid, clearance: f64) -> StartRegion {
    let field = DistanceField::new(grid);
    let mut points = Vec::new();
    for row in 0..grid.height() {
        for col in 0..grid.width() {
            if field.value(col, row) >= clearance + grid.cell_size() / 2.0 {
                points.push(grid.cell_center(col, row));
            }
        }
    }
    StartRegion {
        points,
        jitter: grid.cell_size() / 2.0,
    }
}

/// Builds the load-test scenario of the plan's first chair design at `design`, the design
/// vector in the plan's layout (one value per design variable, a discrete choice as its
/// index).
///
/// Each chair parameter is the design variable of that name if there is one, else the plan
/// parameter `DESIGN.PARAM`. The armrest density is the chosen material's `density`.
///
/// # Errors
///
/// Fails when the plan has no office chair design, `design` has the wrong length, or a
/// parameter is missing or invalid.
pub fn chair_from_plan(plan: &Plan, design: &[f64]) -> Result<Chair, ScenarioError> {
    let expected: usize = plan.designs.iter().map(|d| d.variables.len()).sum();
    if design.len() != expected {
        return Err(ScenarioError::Shape {
            what: "design",
            expected,
            found: design.len(),
        });
    }
    let mut offset = 0;
    for chair in &plan.designs {
        if chair.model != CHAIR_MODEL {
            offset += chair.variables.len();
            continue;
        }
        let name = chair.name.as_str();
        let values = &design[offset..offset + chair.variables.len()];
        let variable = |key: &str| {
            let qualified = format!("{name}.{key}");
            chair
                .variables
                .iter()
                .position(|v| v.name == qualified)
                .map(|index| (&chair.variables[index], values[index]))
        };
        let number = |key: &str| match variable(key) {
            Some((_, value)) => Ok(value),
            None => param(plan, &format!("{name}.{key}")),
        };
        let density = match variable("armrest_material") {
            Some((variable, value)) => {
                let Domain::Discrete { choices } = &variable.domain else {
                    return Err(ScenarioError::InvalidParam {
                        name: variable.name.clone(),
                        value,
                        reason: "a material must be a choice among materials".into(),
                    });
                };
                let index = value.round();
                let choice = (index >= 0.0 && (index as usize) < choices.len())
                    .then(|| &choices[index as usize])
                    .ok_or_else(|| ScenarioError::InvalidParam {
                        name: variable.name.clone(),
                        value,
                        reason: format!(
                            "expected a choice index from 0 to {}",
                            choices.len().saturating_sub(1)
                        ),
                    })?;
                param(plan, &format!("{name}.armrest_material.{choice}.density"))
                    .or_else(|_| param(plan, &format!("{choice}.density")))?
            }
            None => param(plan, &format!("{name}.armrest_material.density"))?,
        };
        let params = ChairParams {
            armrest_thickness: number("armrest_thickness")?,
            armrest_width: number("armrest_width")?,
            armrest_length: number("armrest_length")?,
            armrest_offset: number("armrest_offset")?,
            armrest_density: density,
            base_radius: number("base_radius")?,
            frame_mass: number("frame_mass")?,
            base_arm_mass_per_length: number("base_arm_mass_per_length")?,
        };
        return Chair::new(name, params).map_err(|reason| ScenarioError::InvalidDesign {
            name: name.to_string(),
            reason,
        });
    }
    Err(match plan.designs.first() {
        Some(other) => ScenarioError::UnsupportedModel {
            name: other.name.clone(),
            model: other.model.clone(),
            known: CHAIR_MODEL.to_string(),
        },
        None => ScenarioError::NothingToSimulate,
    })
}

/// Finds the load of the plan's load test in newtons: the parameter named in `load_test(NAME)` in the
/// `from` expression of a world, such as `occupant` in
/// `simulate(chair, load_test(occupant))`.
///
/// # Errors
///
/// Fails when no world has a `load_test` or its argument is not a plan parameter.
/// NOTE: a literal argument such as `load_test(300 lbf)` is not read; name it with `let`.
pub fn load_test_force(plan: &Plan) -> Result<f64, ScenarioError> {
    for world in &plan.worlds {
        let Some(source) = &world.source else {
            continue;
        };
        let Some(start) = source.find("load_test(") else {
            continue;
        };
        let rest = &source[start + "load_test(".len()..];
        let argument = rest.split(')').next().unwrap_or("").trim();
        return param(plan, argument).map_err(|_| {
            ScenarioError::LoadTest(format!(
                "`{argument}` in `load_test({argument})` is not a parameter of the plan, which keeps only the values its goals and constraints read; try using it in a constraint"
            ))
        });
    }
    Err(ScenarioError::LoadTest(
        "no world's `from` expression has a `load_test(…)`; try `world NAME = learned { from simulate(DESIGN, load_test(LOAD)) }`".into(),
    ))
}
