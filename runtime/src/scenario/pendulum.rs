//! `std.robots.pendulum`: a mass on a massless rod, swung by a torque-limited motor at the
//! pivot.
//!
//! The pivot is a fixed body and the bob a ball of radius [`BOB_RADIUS`] holding the whole
//! mass, joined to the pivot by a multibody revolute joint about the y axis. The joint's
//! coordinate is the state's angle: 0 when the bob hangs straight down, π when it is
//! upright, and not wrapped. The joint has no friction. The torque drives the joint's motor,
//! saturated at the commanded torque, which is clamped to `±max_torque`.

use rapier3d::prelude::*;

use super::physics::Physics;
use super::rng::Rng;
use super::{Channel, Event, Layout, Scenario, Step, clamp_action, substeps};

/// Radius of the bob, metres. Its moment of inertia about the pivot is
/// `m·length² + (2/5)·m·BOB_RADIUS²`.
pub const BOB_RADIUS: f64 = 0.02;

/// Parameters of `std.robots.pendulum`, SI units.
#[derive(Clone, Debug, PartialEq)]
pub struct PendulumParams {
    pub mass: f64,
    pub length: f64,
    pub max_torque: f64,
    /// Start `(angle, angular velocity)`.
    pub start: [f64; 2],
}

impl Default for PendulumParams {
    /// Returns the defaults of `std.robots.pendulum`.
    fn default() -> Self {
        PendulumParams {
            mass: 1.0,
            length: 1.0,
            max_torque: 2.0,
            start: [0.0, 0.0],
        }
    }
}

/// A motor-driven pendulum; see the module documentation.
pub struct Pendulum {
    name: String,
    params: PendulumParams,
    layout: Layout,
    /// Maximum length of a physics substep, seconds.
    pub max_substep: f64,
    physics: Physics,
    bob: RigidBodyHandle,
}

/// Index of the revolute joint's angle in rapier's 6-vector of joint coordinates.
const ANGLE_AXIS: usize = 3;

impl Pendulum {
    /// Default maximum substep length: 1/600 s.
    pub const DEFAULT_MAX_SUBSTEP: f64 = 1.0 / 600.0;

    pub fn new(name: &str, params: PendulumParams) -> Self {
        let layout = Layout {
            states: vec![
                Channel::new(format!("{name}.angle"), "rad"),
                Channel::new(format!("{name}.angular_velocity"), "rad/s"),
            ],
            actions: vec![Channel::bounded(
                format!("{name}.torque"),
                "N*m",
                -params.max_torque,
                params.max_torque,
            )],
        };
        let start = params.start;
        let (physics, bob) = build_world(&params, start);
        Pendulum {
            name: name.to_string(),
            params,
            layout,
            max_substep: Self::DEFAULT_MAX_SUBSTEP,
            physics,
            bob,
        }
    }

    /// Creates a fresh copy in its start state, for another thread.
    pub(crate) fn duplicate(&self) -> Self {
        Self::new(&self.name, self.params.clone())
    }

    pub fn params(&self) -> &PendulumParams {
        &self.params
    }

    /// Rebuilds the world with the given angle (rad) and angular velocity (rad/s).
    pub fn reset_to(&mut self, state: [f64; 2]) {
        let (physics, bob) = build_world(&self.params, state);
        self.physics = physics;
        self.bob = bob;
    }

    /// Resets to an angle uniform in `[−π, π)` and an angular velocity uniform in
    /// `[−2, 2)` rad/s, drawn from the seed.
    pub(crate) fn reset_random(&mut self, seed: u64) -> Vec<f64> {
        let mut rng = Rng::new(seed);
        let angle = rng.range(-std::f64::consts::PI, std::f64::consts::PI);
        let velocity = rng.range(-2.0, 2.0);
        self.reset_to([angle, velocity]);
        self.observe()
    }
}

fn build_world(params: &PendulumParams, state: [f64; 2]) -> (Physics, RigidBodyHandle) {
    let mut physics = Physics::new();
    let world = &mut physics.world;
    let pivot_height = params.length as f32 + 1.0;
    let pivot = world
        .bodies
        .insert(RigidBodyBuilder::fixed().translation(Vector::new(0.0, 0.0, pivot_height)));
    let bob = world.bodies.insert(
        RigidBodyBuilder::dynamic()
            .translation(Vector::new(0.0, 0.0, pivot_height - params.length as f32))
            .can_sleep(false),
    );
    let ball = ColliderBuilder::ball(BOB_RADIUS as f32)
        .mass(params.mass as f32)
        .build();
    world
        .colliders
        .insert_with_parent(ball, bob, &mut world.bodies);
    let joint = RevoluteJointBuilder::new(Vector::Y)
        .local_anchor1(Vector::ZERO)
        .local_anchor2(Vector::new(0.0, 0.0, params.length as f32))
        .contacts_enabled(false);
    world
        .multibody_joints
        .insert(pivot, bob, joint, true)
        .expect("a pivot and a bob form a valid multibody");
    physics.clear_joint_damping(bob);
    physics.set_joint_state(bob, ANGLE_AXIS, state[0], state[1]);
    (physics, bob)
}

impl Scenario for Pendulum {
    fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Returns to the start state of the parameters; the seed is unused.
    fn reset(&mut self, _seed: u64) -> Vec<f64> {
        self.reset_to(self.params.start);
        self.observe()
    }

    fn observe(&self) -> Vec<f64> {
        let (angle, velocity) = self.physics.joint_state(self.bob, ANGLE_AXIS);
        vec![angle, velocity]
    }

    fn step(&mut self, action: &[f64], dt: f64) -> Step {
        let action = clamp_action(&self.layout, action);
        let (count, h) = substeps(dt, self.max_substep);
        self.physics
            .drive_joint(self.bob, JointAxis::AngX, action[0]);
        for _ in 0..count {
            self.physics.substep(h);
        }
        let events: Vec<Event> = Vec::new();
        Step {
            state: self.observe(),
            action,
            events,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hanging_pendulum_stays_at_rest() {
        let mut pendulum = Pendulum::new("arm", PendulumParams::default());
        for _ in 0..20 {
            pendulum.step(&[0.0], 0.05);
        }
        let state = pendulum.observe();
        assert!(state[0].abs() < 1e-5, "angle {}", state[0]);
        assert!(state[1].abs() < 1e-5, "angular velocity {}", state[1]);
    }

    #[test]
    fn reset_sets_the_start_state() {
        let params = PendulumParams {
            start: [1.0, -0.5],
            ..PendulumParams::default()
        };
        let mut pendulum = Pendulum::new("arm", params);
        let state = pendulum.reset(0);
        assert!((state[0] - 1.0).abs() < 1e-6, "angle {}", state[0]);
        assert!(
            (state[1] + 0.5).abs() < 1e-6,
            "angular velocity {}",
            state[1]
        );
    }

    #[test]
    fn torque_gives_its_angular_acceleration() {
        // Starting at rest at the bottom, gravity's torque is zero, so for a short time the
        // angular acceleration is τ / I.
        let params = PendulumParams::default();
        let inertia = params.mass * params.length.powi(2) + 0.4 * params.mass * BOB_RADIUS.powi(2);
        let mut pendulum = Pendulum::new("arm", params);
        let step = pendulum.step(&[1.5], 0.02);
        let expected = 1.5 / inertia * 0.02;
        let velocity = step.state[1];
        assert!(
            (velocity - expected).abs() < 0.01 * expected,
            "angular velocity {velocity}, expected {expected}"
        );
    }
}
