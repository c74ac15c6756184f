//! `std.robots.diff_drive`: a round differential-drive base among fixed obstacles.
//!
//! The base is a dynamic cylinder of the model's `radius` that moves in the x–y plane: its
//! height and its roll and pitch are locked. The wheels are modelled by their effect, an
//! acceleration-limited velocity controller. Before every substep it moves the forward speed
//! towards the commanded one by at most `max_accel · h`, the turn rate towards its command by
//! at most `max_accel / radius · h`, and it cancels sideways velocity, as wheels that do not
//! slip sideways do. The commands are clamped to `max_speed` and `max_turn_rate`. Contacts
//! with obstacles, with Coulomb friction, then change the velocity during the substep, and
//! the controller starts from the velocity they leave.
//!
//! The state is the pose `(x, y, heading)` followed by the forward velocity and the turn
//! rate the base has at the end of the step. A planner that knew only the pose would have to
//! guess whether the base is still coasting towards a wall, and at `max_accel` below the
//! speed limit the base needs over a second to stop.

use std::sync::Arc;

use rapier3d::prelude::*;

use super::obstacles::{Obstacle, insert_obstacle, insert_obstacles};
use super::physics::Physics;
use super::rng::Rng;
use super::{Channel, Event, Layout, Scenario, Step, clamp_action, substeps, wrap_angle};

/// Mass of the base, kg.
/// NOTE: `diff_drive` has no mass parameter; contacts with fixed obstacles do not depend on
/// it, because the obstacles do not move.
pub const BASE_MASS: f64 = 20.0;
/// Height of the base cylinder, metres.
pub const BASE_HEIGHT: f64 = 0.3;
/// Friction coefficient between the base and obstacles.
/// NOTE: an estimate for a plastic bumper on painted walls, not a measured value.
pub const BASE_FRICTION: f64 = 0.3;

/// Parameters of `std.robots.diff_drive`, SI units.
#[derive(Clone, Debug, PartialEq)]
pub struct DiffDriveParams {
    /// Radius of the base, metres; the wheels sit on its rim, so the track is `2·radius`.
    pub radius: f64,
    pub max_speed: f64,
    pub max_accel: f64,
    pub max_turn_rate: f64,
    /// Start pose `(x, y, heading)`.
    pub start: [f64; 3],
}

impl Default for DiffDriveParams {
    /// Returns the defaults of `std.robots.diff_drive`.
    fn default() -> Self {
        DiffDriveParams {
            radius: 0.3,
            max_speed: 1.0,
            max_accel: 1.0,
            max_turn_rate: 2.0,
            start: [0.0; 3],
        }
    }
}

/// Region that random starts are drawn from: centres of cells far enough from obstacles.
#[derive(Clone, Debug, Default)]
pub(crate) struct StartRegion {
    pub points: Vec<[f64; 2]>,
    /// Half the side of each cell, metres, for jitter within the cell.
    pub jitter: f64,
}

/// A differential-drive base; see the module documentation.
pub struct DiffDrive {
    name: String,
    agent: usize,
    params: DiffDriveParams,
    obstacles: Arc<Vec<Obstacle>>,
    start_region: Option<Arc<StartRegion>>,
    layout: Layout,
    /// Maximum length of a physics substep, seconds.
    pub max_substep: f64,
    physics: Physics,
    body: RigidBodyHandle,
    base_collider: ColliderHandle,
    /// Heading without wrapping, so a full turn reads 2π.
    heading: f64,
}

impl DiffDrive {
    /// Default maximum substep length: 1/120 s.
    pub const DEFAULT_MAX_SUBSTEP: f64 = 1.0 / 120.0;

    /// Creates a base named `name` (the agent's name in the plan) among `obstacles`.
    pub fn new(name: &str, params: DiffDriveParams, obstacles: Vec<Obstacle>) -> Self {
        Self::with_parts(name, 0, params, Arc::new(obstacles), None)
    }

    pub(crate) fn with_parts(
        name: &str,
        agent: usize,
        params: DiffDriveParams,
        obstacles: Arc<Vec<Obstacle>>,
        start_region: Option<Arc<StartRegion>>,
    ) -> Self {
        let layout = Layout {
            states: vec![
                Channel::new(format!("{name}.x"), "m"),
                Channel::new(format!("{name}.y"), "m"),
                Channel::new(format!("{name}.heading"), "rad"),
                Channel::new(format!("{name}.forward_velocity"), "m/s"),
                Channel::new(format!("{name}.turn_velocity"), "rad/s"),
            ],
            actions: vec![
                Channel::bounded(
                    format!("{name}.forward_speed"),
                    "m/s",
                    -params.max_speed,
                    params.max_speed,
                ),
                Channel::bounded(
                    format!("{name}.turn_rate"),
                    "rad/s",
                    -params.max_turn_rate,
                    params.max_turn_rate,
                ),
            ],
        };
        let start = params.start;
        let (physics, body, base_collider) = build_world(&params, &obstacles, start, [0.0; 2]);
        DiffDrive {
            name: name.to_string(),
            agent,
            params,
            obstacles,
            start_region,
            layout,
            max_substep: Self::DEFAULT_MAX_SUBSTEP,
            physics,
            body,
            base_collider,
            heading: start[2],
        }
    }

    /// Creates a fresh copy in its start pose that shares the obstacles, for another thread.
    pub(crate) fn duplicate(&self) -> Self {
        Self::with_parts(
            &self.name,
            self.agent,
            self.params.clone(),
            Arc::clone(&self.obstacles),
            self.start_region.clone(),
        )
    }

    pub fn params(&self) -> &DiffDriveParams {
        &self.params
    }

    /// Returns the fixed obstacles, the list that [`Event::ContactStarted`] indexes.
    pub fn obstacles(&self) -> &[Obstacle] {
        &self.obstacles
    }

    /// Rebuilds the world with the base at `pose` `(x, y, heading)` and at rest.
    pub fn reset_to(&mut self, pose: [f64; 3]) {
        self.reset_moving(pose, [0.0; 2]);
    }

    /// Rebuilds the world with the base at `pose` moving at `velocity`: forward speed (m/s)
    /// and turn rate (rad/s), the last two columns of the state.
    pub fn reset_moving(&mut self, pose: [f64; 3], velocity: [f64; 2]) {
        let (physics, body, base_collider) =
            build_world(&self.params, &self.obstacles, pose, velocity);
        self.physics = physics;
        self.body = body;
        self.base_collider = base_collider;
        self.heading = pose[2];
    }

    /// Returns the base's current forward speed (m/s) and turn rate (rad/s).
    pub fn velocity(&self) -> (f64, f64) {
        let body = self.physics.body(self.body);
        let (sin, cos) = self.yaw().sin_cos();
        let linvel = body.linvel();
        (
            f64::from(linvel.x) * cos + f64::from(linvel.y) * sin,
            f64::from(body.angvel().z),
        )
    }

    fn yaw(&self) -> f64 {
        let rotation = self.physics.body(self.body).rotation();
        2.0 * f64::from(rotation.z).atan2(f64::from(rotation.w))
    }

    /// Sets the base velocity for the next substep from the commands; see the module docs.
    fn control(&mut self, forward_command: f64, turn_command: f64, h: f64) {
        let (forward, turn) = self.velocity();
        let max_change = self.params.max_accel * h;
        let max_turn_change = self.params.max_accel / self.params.radius * h;
        let forward = forward + (forward_command - forward).clamp(-max_change, max_change);
        let turn = turn + (turn_command - turn).clamp(-max_turn_change, max_turn_change);
        let (sin, cos) = self.yaw().sin_cos();
        let body = self.physics.body_mut(self.body);
        body.set_linvel(
            Vector::new((forward * cos) as f32, (forward * sin) as f32, 0.0),
            true,
        );
        body.set_angvel(Vector::new(0.0, 0.0, turn as f32), true);
    }

    fn contact_events(&mut self, events: &mut Vec<Event>) {
        for collision in self.physics.take_collisions() {
            let other = if collision.collider1() == self.base_collider {
                collision.collider2()
            } else {
                collision.collider1()
            };
            let Some(collider) = self.physics.world.colliders.get(other) else {
                continue;
            };
            let obstacle = collider.user_data as usize;
            events.push(if collision.started() {
                Event::ContactStarted {
                    agent: self.agent,
                    obstacle,
                }
            } else {
                Event::ContactStopped {
                    agent: self.agent,
                    obstacle,
                }
            });
        }
    }

    fn random_pose(&self, rng: &mut Rng) -> [f64; 3] {
        let heading = rng.range(-std::f64::consts::PI, std::f64::consts::PI);
        match self.start_region.as_deref() {
            Some(region) if !region.points.is_empty() => {
                let [x, y] = region.points[rng.index(region.points.len())];
                [
                    x + rng.range(-region.jitter, region.jitter),
                    y + rng.range(-region.jitter, region.jitter),
                    heading,
                ]
            }
            // NOTE: without a map the start is drawn within 2 m of the plan's start, and a
            // scene obstacle there is not avoided.
            _ => {
                let [x, y, _] = self.params.start;
                [x + rng.range(-2.0, 2.0), y + rng.range(-2.0, 2.0), heading]
            }
        }
    }

    /// Resets to a random pose drawn from the seed (a free cell of the map if there is one),
    /// moving at a random velocity up to half of each limit, so that training data contains
    /// the base arriving at obstacles at speed as well as starting next to them.
    pub(crate) fn reset_random(&mut self, seed: u64) -> Vec<f64> {
        let mut rng = Rng::new(seed);
        let pose = self.random_pose(&mut rng);
        let forward = 0.5 * self.params.max_speed;
        let turn = 0.5 * self.params.max_turn_rate;
        let velocity = [rng.range(-forward, forward), rng.range(-turn, turn)];
        self.reset_moving(pose, velocity);
        self.observe()
    }
}

fn build_world(
    params: &DiffDriveParams,
    obstacles: &[Obstacle],
    pose: [f64; 3],
    velocity: [f64; 2],
) -> (Physics, RigidBodyHandle, ColliderHandle) {
    let mut physics = Physics::new();
    insert_obstacles(&mut physics, obstacles, BASE_FRICTION);

    // A small lift keeps the base off the z = 0 plane where map boxes start.
    let height = BASE_HEIGHT / 2.0 + 0.01;
    let body = RigidBodyBuilder::dynamic()
        .translation(Vector::new(pose[0] as f32, pose[1] as f32, height as f32))
        .rotation(Vector::new(0.0, 0.0, pose[2] as f32))
        .linvel(Vector::new(
            (velocity[0] * pose[2].cos()) as f32,
            (velocity[0] * pose[2].sin()) as f32,
            0.0,
        ))
        .angvel(Vector::new(0.0, 0.0, velocity[1] as f32))
        .locked_axes(
            LockedAxes::TRANSLATION_LOCKED_Z
                | LockedAxes::ROTATION_LOCKED_X
                | LockedAxes::ROTATION_LOCKED_Y,
        )
        .can_sleep(false)
        .build();
    let body = physics.world.bodies.insert(body);
    // rapier's cylinders have their axis along y, so a quarter turn about x puts it along z.
    let collider = ColliderBuilder::cylinder((BASE_HEIGHT / 2.0) as f32, params.radius as f32)
        .rotation(Vector::new(std::f32::consts::FRAC_PI_2, 0.0, 0.0))
        .mass(BASE_MASS as f32)
        .friction(BASE_FRICTION as f32)
        .restitution(0.0)
        .active_events(ActiveEvents::COLLISION_EVENTS)
        .build();
    let world = &mut physics.world;
    let base_collider = world
        .colliders
        .insert_with_parent(collider, body, &mut world.bodies);
    (physics, body, base_collider)
}

impl Scenario for DiffDrive {
    fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Returns to the start pose of the parameters; the seed is unused.
    fn reset(&mut self, _seed: u64) -> Vec<f64> {
        self.reset_to(self.params.start);
        self.observe()
    }

    fn observe(&self) -> Vec<f64> {
        let position = self.physics.body(self.body).translation();
        let (forward, turn) = self.velocity();
        vec![
            f64::from(position.x),
            f64::from(position.y),
            self.heading,
            forward,
            turn,
        ]
    }

    fn step(&mut self, action: &[f64], dt: f64) -> Step {
        let action = clamp_action(&self.layout, action);
        let (count, h) = substeps(dt, self.max_substep);
        let mut events = Vec::new();
        for _ in 0..count {
            let yaw_before = self.yaw();
            self.control(action[0], action[1], h);
            self.physics.substep(h);
            self.heading += wrap_angle(self.yaw() - yaw_before);
            self.contact_events(&mut events);
        }
        Step {
            state: self.observe(),
            action,
            events,
        }
    }

    /// Adds the obstacle to the list (contact events index it at the end) and to the running
    /// world, so the base keeps its pose and velocity.
    fn add_obstacle(&mut self, obstacle: &Obstacle) -> bool {
        let index = self.obstacles.len();
        Arc::make_mut(&mut self.obstacles).push(obstacle.clone());
        insert_obstacle(&mut self.physics, index, obstacle, BASE_FRICTION);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn straight_run_reaches_commanded_speed() {
        let mut base = DiffDrive::new("robot", DiffDriveParams::default(), Vec::new());
        for _ in 0..30 {
            base.step(&[0.5, 0.0], 0.1);
        }
        let (forward, turn) = base.velocity();
        assert!((forward - 0.5).abs() < 1e-4, "forward speed {forward}");
        assert!(turn.abs() < 1e-6, "turn rate {turn}");
        let state = base.observe();
        // 0.5 s of acceleration at 1 m/s² covers 0.125 m, then 2.5 s at 0.5 m/s cover 1.25 m.
        assert!((state[0] - 1.375).abs() < 0.01, "x {}", state[0]);
        assert!(state[1].abs() < 1e-4, "y {}", state[1]);
    }

    #[test]
    fn acceleration_is_limited() {
        let params = DiffDriveParams {
            max_accel: 0.5,
            ..DiffDriveParams::default()
        };
        let mut base = DiffDrive::new("robot", params, Vec::new());
        base.step(&[1.0, 0.0], 0.5);
        let (forward, _) = base.velocity();
        assert!(
            (forward - 0.25).abs() < 1e-4,
            "after 0.5 s at 0.5 m/s² the speed is {forward}"
        );
    }

    #[test]
    fn commands_are_clamped_to_limits() {
        let mut base = DiffDrive::new("robot", DiffDriveParams::default(), Vec::new());
        let step = base.step(&[5.0, -9.0], 0.1);
        assert_eq!(step.action, vec![1.0, -2.0]);
    }

    #[test]
    fn wall_stops_the_base_and_reports_contact() {
        // A wall whose near face is at x = 1; the base of radius 0.3 touches it at x = 0.7.
        let wall = Obstacle::Box {
            center: [1.5, 0.0, 0.5],
            half: [0.5, 2.0, 0.5],
            yaw: 0.0,
        };
        let mut base = DiffDrive::new("robot", DiffDriveParams::default(), vec![wall]);
        let mut events = Vec::new();
        for _ in 0..40 {
            events.extend(base.step(&[1.0, 0.0], 0.1).events);
        }
        let x = base.observe()[0];
        assert!((x - 0.7).abs() < 0.02, "the base stopped at x = {x}");
        assert!(
            events.contains(&Event::ContactStarted {
                agent: 0,
                obstacle: 0
            }),
            "events {events:?}"
        );
    }

    #[test]
    fn heading_is_continuous_over_full_turns() {
        let mut base = DiffDrive::new("robot", DiffDriveParams::default(), Vec::new());
        for _ in 0..50 {
            base.step(&[0.0, 2.0], 0.1);
        }
        // 1 s to reach 2 rad/s at 3.33 rad/s² (0.6 s, 0.6 rad), then 4.4 s at 2 rad/s.
        let heading = base.observe()[2];
        let expected = 0.5 * 2.0 * 0.6 + 2.0 * 4.4;
        assert!(
            (heading - expected).abs() < 0.02,
            "heading {heading}, expected {expected}"
        );
    }
}
