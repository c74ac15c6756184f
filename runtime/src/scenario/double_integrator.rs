//! `std.robots.double_integrator`: a block sliding along x on a frictionless floor, pushed by
//! a force.
//!
//! The block is a dynamic box of [`BLOCK_MASS`] resting on a fixed floor under gravity, with
//! zero friction on both, and its rotations and its y translation are locked. The commanded
//! acceleration, clamped to `±max_accel`, becomes the force `BLOCK_MASS · acceleration`
//! along x for the whole step. The speed limit `max_speed` is a bound of the state in the
//! plan, not something the block obeys, so a step that leaves it reports
//! [`Event::OutOfBounds`].

use rapier3d::prelude::*;

use super::physics::Physics;
use super::rng::Rng;
use super::{Channel, Event, Layout, Scenario, Step, clamp_action, substeps};

/// Mass of the block, kg. The model is commanded by acceleration, so the mass only converts
/// it to a force.
pub const BLOCK_MASS: f64 = 1.0;
/// Half the side of the cubic block, metres.
pub const BLOCK_HALF_SIDE: f64 = 0.1;

/// Parameters of `std.robots.double_integrator`, SI units.
#[derive(Clone, Debug, PartialEq)]
pub struct DoubleIntegratorParams {
    pub max_accel: f64,
    pub max_speed: f64,
    /// Start `(position, velocity)`.
    pub start: [f64; 2],
}

impl Default for DoubleIntegratorParams {
    /// Returns the defaults of `std.robots.double_integrator`.
    fn default() -> Self {
        DoubleIntegratorParams {
            max_accel: 1.0,
            max_speed: 10.0,
            start: [0.0, 0.0],
        }
    }
}

/// A frictionless sliding block; see the module documentation.
pub struct DoubleIntegrator {
    name: String,
    params: DoubleIntegratorParams,
    layout: Layout,
    /// Maximum length of a physics substep, seconds.
    pub max_substep: f64,
    physics: Physics,
    block: RigidBodyHandle,
}

impl DoubleIntegrator {
    /// Default maximum substep length: 1/200 s.
    pub const DEFAULT_MAX_SUBSTEP: f64 = 1.0 / 200.0;

    pub fn new(name: &str, params: DoubleIntegratorParams) -> Self {
        let layout = Layout {
            states: vec![
                Channel::new(format!("{name}.position"), "m"),
                Channel::bounded(
                    format!("{name}.velocity"),
                    "m/s",
                    -params.max_speed,
                    params.max_speed,
                ),
            ],
            actions: vec![Channel::bounded(
                format!("{name}.acceleration"),
                "m/s^2",
                -params.max_accel,
                params.max_accel,
            )],
        };
        let start = params.start;
        let (physics, block) = build_world(start);
        DoubleIntegrator {
            name: name.to_string(),
            params,
            layout,
            max_substep: Self::DEFAULT_MAX_SUBSTEP,
            physics,
            block,
        }
    }

    /// Creates a fresh copy in its start state, for another thread.
    pub(crate) fn duplicate(&self) -> Self {
        Self::new(&self.name, self.params.clone())
    }

    pub fn params(&self) -> &DoubleIntegratorParams {
        &self.params
    }

    /// Rebuilds the world with the block at `state` (position, velocity).
    pub fn reset_to(&mut self, state: [f64; 2]) {
        let (physics, block) = build_world(state);
        self.physics = physics;
        self.block = block;
    }

    /// Resets to a random state drawn from the seed: a position within 10 m of the plan's
    /// start and a velocity within half the speed limit.
    pub(crate) fn reset_random(&mut self, seed: u64) -> Vec<f64> {
        let mut rng = Rng::new(seed);
        let half_speed = self.params.max_speed / 2.0;
        let state = [
            self.params.start[0] + rng.range(-10.0, 10.0),
            rng.range(-half_speed, half_speed),
        ];
        self.reset_to(state);
        self.observe()
    }
}

fn build_world(state: [f64; 2]) -> (Physics, RigidBodyHandle) {
    let mut physics = Physics::new();
    let world = &mut physics.world;
    // A floor 10 km long, so a block cannot slide off it within any plausible run.
    let floor = ColliderBuilder::cuboid(5_000.0, 1.0, 0.5)
        .translation(Vector::new(0.0, 0.0, -0.5))
        .friction(0.0)
        .build();
    world.colliders.insert(floor);
    let half = BLOCK_HALF_SIDE as f32;
    let block = world.bodies.insert(
        RigidBodyBuilder::dynamic()
            .translation(Vector::new(state[0] as f32, 0.0, half))
            .linvel(Vector::new(state[1] as f32, 0.0, 0.0))
            .locked_axes(LockedAxes::ROTATION_LOCKED | LockedAxes::TRANSLATION_LOCKED_Y)
            .can_sleep(false),
    );
    let cube = ColliderBuilder::cuboid(half, half, half)
        .mass(BLOCK_MASS as f32)
        .friction(0.0)
        .friction_combine_rule(CoefficientCombineRule::Min)
        .restitution(0.0)
        .build();
    world
        .colliders
        .insert_with_parent(cube, block, &mut world.bodies);
    (physics, block)
}

impl Scenario for DoubleIntegrator {
    fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Returns to the start state of the parameters; the seed is unused.
    fn reset(&mut self, _seed: u64) -> Vec<f64> {
        self.reset_to(self.params.start);
        self.observe()
    }

    fn observe(&self) -> Vec<f64> {
        let body = self.physics.body(self.block);
        vec![f64::from(body.translation().x), f64::from(body.linvel().x)]
    }

    fn step(&mut self, action: &[f64], dt: f64) -> Step {
        let action = clamp_action(&self.layout, action);
        let (count, h) = substeps(dt, self.max_substep);
        let body = self.physics.body_mut(self.block);
        body.reset_forces(true);
        body.add_force(Vector::new((BLOCK_MASS * action[0]) as f32, 0.0, 0.0), true);
        for _ in 0..count {
            self.physics.substep(h);
        }
        let state = self.observe();
        let events = if self.layout.states[1].contains(state[1]) {
            Vec::new()
        } else {
            vec![Event::OutOfBounds { column: 1 }]
        };
        Step {
            state,
            action,
            events,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_acceleration_follows_kinematics() {
        let mut block = DoubleIntegrator::new("block", DoubleIntegratorParams::default());
        for _ in 0..20 {
            block.step(&[0.5], 0.1);
        }
        let [position, velocity] = block.observe()[..] else {
            unreachable!()
        };
        // v = a·t = 1 m/s and x = a·t²/2 = 1 m after 2 s; semi-implicit Euler adds a·h·t/2.
        assert!((velocity - 1.0).abs() < 1e-4, "velocity {velocity}");
        assert!((position - 1.0).abs() < 0.01, "position {position}");
    }

    #[test]
    fn block_coasts_without_friction() {
        let params = DoubleIntegratorParams {
            start: [0.0, 2.0],
            ..DoubleIntegratorParams::default()
        };
        let mut block = DoubleIntegrator::new("block", params);
        for _ in 0..10 {
            block.step(&[0.0], 0.1);
        }
        let [position, velocity] = block.observe()[..] else {
            unreachable!()
        };
        assert!((velocity - 2.0).abs() < 1e-4, "velocity {velocity}");
        assert!((position - 2.0).abs() < 1e-3, "position {position}");
    }

    #[test]
    fn speed_past_the_bound_is_reported() {
        let params = DoubleIntegratorParams {
            max_speed: 0.2,
            ..DoubleIntegratorParams::default()
        };
        let mut block = DoubleIntegrator::new("block", params);
        let events: Vec<Event> = (0..5)
            .flat_map(|_| block.step(&[1.0], 0.1).events)
            .collect();
        assert!(
            events.contains(&Event::OutOfBounds { column: 1 }),
            "events {events:?}"
        );
    }
}
