//! `std.robots.cart_pole`: a cart on a rail with a pole hinged on top.
//!
//! A multibody of three links: a fixed rail, the cart on a prismatic joint along x limited to
//! `±rail_limit`, and the pole on a revolute joint about y at the top of the cart. The pole is
//! a uniform rod of `pole_length` and `pole_mass`, hinged at its lower end. Its angle is 0
//! upright and grows as it leans towards +x, and it is not wrapped. The force drives the
//! prismatic joint's motor, saturated at the commanded force, which is clamped to
//! `±max_force`. Neither joint has friction.

use rapier3d::prelude::*;

use super::physics::Physics;
use super::rng::Rng;
use super::{Channel, Event, Layout, Scenario, Step, clamp_action, substeps};

/// Cross-section side of the pole, metres; thin enough that the pole's inertia about its
/// hinge is `m·L²/3` within 0.1 % for poles of 0.3 m and longer.
pub const POLE_THICKNESS: f64 = 0.02;
/// Half extents of the cart box, metres.
pub const CART_HALF_EXTENTS: [f64; 3] = [0.2, 0.1, 0.05];

/// Parameters of `std.robots.cart_pole`, SI units.
#[derive(Clone, Debug, PartialEq)]
pub struct CartPoleParams {
    pub cart_mass: f64,
    pub pole_mass: f64,
    pub pole_length: f64,
    pub max_force: f64,
    pub rail_limit: f64,
    /// Start `(cart position, cart velocity, pole angle, pole angular velocity)`.
    pub start: [f64; 4],
}

impl Default for CartPoleParams {
    /// Returns the defaults of `std.robots.cart_pole`.
    fn default() -> Self {
        CartPoleParams {
            cart_mass: 1.0,
            pole_mass: 0.1,
            pole_length: 1.0,
            max_force: 10.0,
            rail_limit: 2.4,
            start: [0.0; 4],
        }
    }
}

/// A cart-pole; see the module documentation.
pub struct CartPole {
    name: String,
    agent: usize,
    params: CartPoleParams,
    layout: Layout,
    /// Maximum length of a physics substep, seconds.
    pub max_substep: f64,
    physics: Physics,
    cart: RigidBodyHandle,
    pole: RigidBodyHandle,
}

/// Indices of the joint coordinates in rapier's 6-vector: x translation and x rotation.
const CART_AXIS: usize = 0;
const POLE_AXIS: usize = 3;

impl CartPole {
    /// Default maximum substep length: 1/600 s.
    pub const DEFAULT_MAX_SUBSTEP: f64 = 1.0 / 600.0;

    pub fn new(name: &str, params: CartPoleParams) -> Self {
        Self::with_agent(name, 0, params)
    }

    pub(crate) fn with_agent(name: &str, agent: usize, params: CartPoleParams) -> Self {
        let layout = Layout {
            states: vec![
                Channel::bounded(
                    format!("{name}.cart_position"),
                    "m",
                    -params.rail_limit,
                    params.rail_limit,
                ),
                Channel::new(format!("{name}.cart_velocity"), "m/s"),
                Channel::new(format!("{name}.pole_angle"), "rad"),
                Channel::new(format!("{name}.pole_angular_velocity"), "rad/s"),
            ],
            actions: vec![Channel::bounded(
                format!("{name}.force"),
                "N",
                -params.max_force,
                params.max_force,
            )],
        };
        let start = params.start;
        let (physics, cart, pole) = build_world(&params, start);
        CartPole {
            name: name.to_string(),
            agent,
            params,
            layout,
            max_substep: Self::DEFAULT_MAX_SUBSTEP,
            physics,
            cart,
            pole,
        }
    }

    /// Creates a fresh copy in its start state, for another thread.
    pub(crate) fn duplicate(&self) -> Self {
        Self::with_agent(&self.name, self.agent, self.params.clone())
    }

    pub fn params(&self) -> &CartPoleParams {
        &self.params
    }

    /// Rebuilds the world in `state` (cart position, cart velocity, pole angle, pole angular
    /// velocity); the cart position is clamped to the rail.
    pub fn reset_to(&mut self, state: [f64; 4]) {
        let (physics, cart, pole) = build_world(&self.params, state);
        self.physics = physics;
        self.cart = cart;
        self.pole = pole;
    }

    /// Resets to a random state drawn from the seed: the cart anywhere on the middle half of
    /// the rail, the pole at any angle, and velocities up to 1 m/s and 2 rad/s.
    pub(crate) fn reset_random(&mut self, seed: u64) -> Vec<f64> {
        let mut rng = Rng::new(seed);
        let half_rail = self.params.rail_limit / 2.0;
        let state = [
            rng.range(-half_rail, half_rail),
            rng.range(-1.0, 1.0),
            rng.range(-std::f64::consts::PI, std::f64::consts::PI),
            rng.range(-2.0, 2.0),
        ];
        self.reset_to(state);
        self.observe()
    }
}

fn build_world(
    params: &CartPoleParams,
    state: [f64; 4],
) -> (Physics, RigidBodyHandle, RigidBodyHandle) {
    let mut physics = Physics::new();
    let world = &mut physics.world;
    let [cart_x, cart_y, cart_z] = CART_HALF_EXTENTS.map(|half| half as f32);
    let length = params.pole_length as f32;
    let rail_height = 0.5_f32;

    let rail = world
        .bodies
        .insert(RigidBodyBuilder::fixed().translation(Vector::new(0.0, 0.0, rail_height)));
    let cart = world.bodies.insert(
        RigidBodyBuilder::dynamic()
            .translation(Vector::new(0.0, 0.0, rail_height))
            .can_sleep(false),
    );
    let cart_box = ColliderBuilder::cuboid(cart_x, cart_y, cart_z)
        .mass(params.cart_mass as f32)
        .build();
    world
        .colliders
        .insert_with_parent(cart_box, cart, &mut world.bodies);

    let hinge_height = rail_height + cart_z;
    let pole = world.bodies.insert(
        RigidBodyBuilder::dynamic()
            .translation(Vector::new(0.0, 0.0, hinge_height + length / 2.0))
            .can_sleep(false),
    );
    let half_thickness = (POLE_THICKNESS / 2.0) as f32;
    let rod = ColliderBuilder::cuboid(half_thickness, half_thickness, length / 2.0)
        .mass(params.pole_mass as f32)
        .build();
    world
        .colliders
        .insert_with_parent(rod, pole, &mut world.bodies);

    let slider = PrismaticJointBuilder::new(Vector::X)
        .limits([-params.rail_limit as f32, params.rail_limit as f32])
        .contacts_enabled(false);
    world
        .multibody_joints
        .insert(rail, cart, slider, true)
        .expect("a rail and a cart form a valid multibody");
    let hinge = RevoluteJointBuilder::new(Vector::Y)
        .local_anchor1(Vector::new(0.0, 0.0, cart_z))
        .local_anchor2(Vector::new(0.0, 0.0, -length / 2.0))
        .contacts_enabled(false);
    world
        .multibody_joints
        .insert(cart, pole, hinge, true)
        .expect("a cart and a pole form a valid multibody");

    physics.clear_joint_damping(pole);
    let position = state[0].clamp(-params.rail_limit, params.rail_limit);
    physics.set_joint_state(cart, CART_AXIS, position, state[1]);
    physics.set_joint_state(pole, POLE_AXIS, state[2], state[3]);
    (physics, cart, pole)
}

impl Scenario for CartPole {
    fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Returns to the start state of the parameters; the seed is unused.
    fn reset(&mut self, _seed: u64) -> Vec<f64> {
        self.reset_to(self.params.start);
        self.observe()
    }

    fn observe(&self) -> Vec<f64> {
        let (position, velocity) = self.physics.joint_state(self.cart, CART_AXIS);
        let (angle, angular_velocity) = self.physics.joint_state(self.pole, POLE_AXIS);
        vec![position, velocity, angle, angular_velocity]
    }

    fn step(&mut self, action: &[f64], dt: f64) -> Step {
        let action = clamp_action(&self.layout, action);
        let (count, h) = substeps(dt, self.max_substep);
        self.physics
            .drive_joint(self.cart, JointAxis::LinX, action[0]);
        let mut at_limit = false;
        // The limit constraint keeps the cart within about a millimetre of the rail's end.
        let touching = self.params.rail_limit - 1.0e-3;
        for _ in 0..count {
            self.physics.substep(h);
            at_limit |= self.physics.joint_state(self.cart, CART_AXIS).0.abs() >= touching;
        }
        let events = if at_limit {
            vec![Event::JointLimit { agent: self.agent }]
        } else {
            Vec::new()
        };
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
    fn upright_pole_balances_without_force() {
        let mut cart_pole = CartPole::new("pole", CartPoleParams::default());
        for _ in 0..10 {
            cart_pole.step(&[0.0], 0.05);
        }
        let state = cart_pole.observe();
        assert!(state[2].abs() < 1e-4, "pole angle {}", state[2]);
    }

    #[test]
    fn pushing_the_cart_tips_the_pole_backwards() {
        // Pushing towards +x accelerates the cart, and the pole lags behind it.
        let mut cart_pole = CartPole::new("pole", CartPoleParams::default());
        let step = cart_pole.step(&[10.0], 0.1);
        assert!(step.state[1] > 0.5, "cart velocity {}", step.state[1]);
        assert!(step.state[2] < -0.01, "pole angle {}", step.state[2]);
    }

    #[test]
    fn initial_cart_acceleration_matches_rigid_body_dynamics() {
        // From rest upright, the equations of motion of a cart with a hinged uniform rod give
        // ẍ = F·(4/3) / ((4/3)(M + m) − m) at the first instant (θ = θ̇ = 0).
        let params = CartPoleParams::default();
        let (cart, pole, force) = (params.cart_mass, params.pole_mass, 5.0);
        let expected = force * (4.0 / 3.0) / ((4.0 / 3.0) * (cart + pole) - pole);
        let mut cart_pole = CartPole::new("pole", params);
        let dt = 0.01;
        let velocity = cart_pole.step(&[force], dt).state[1];
        let measured = velocity / dt;
        assert!(
            (measured - expected).abs() < 0.01 * expected,
            "acceleration {measured}, expected {expected}"
        );
    }

    #[test]
    fn rail_end_stops_the_cart_and_reports_it() {
        let mut cart_pole = CartPole::new("pole", CartPoleParams::default());
        let mut limit_events = 0;
        for _ in 0..60 {
            let step = cart_pole.step(&[10.0], 0.05);
            limit_events += step
                .events
                .iter()
                .filter(|event| matches!(event, Event::JointLimit { .. }))
                .count();
        }
        let position = cart_pole.observe()[0];
        assert!(position <= 2.4 + 0.01, "cart at {position}");
        assert!(limit_events > 0, "no joint-limit event");
    }
}
