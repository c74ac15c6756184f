//! `std.furniture.office_chair` under load: a rigid chair on five casters, pressed down at an
//! armrest tip.
//!
//! The chair is one rigid body made of a seat, a column, two armrests, a five-arm star base
//! and five ball casters, standing on a fixed floor with Coulomb friction. The masses follow
//! the model: the frame mass is split between seat and column, each armrest is a solid bar
//! of its material, each base arm weighs `base_arm_mass_per_length · base_radius`, and the
//! casters are massless. Every part is symmetric about the column except the load, so the
//! centre of mass lies on the column axis, as the static tip formula of `std.mechanics`
//! assumes.
//!
//! The armrests are cantilevers along ±x whose tips sit `armrest_offset` from the column
//! axis. The base is turned so that +x bisects two arms, so the load acts towards the
//! nearest tipping line, the edge between two casters at `base_radius · cos 36°` from the
//! column. That is the worst case the static formula checks.
//!
//! The action is the vertical load in newtons, applied downwards at the top of the +x
//! armrest tip wherever the tip moves. The state reports:
//! - `tilt`: the angle between the chair's axis and the vertical, rad;
//! - `tip_margin`: how far inside the support pentagon of the caster contacts the resultant
//!   of the load and the weight meets the floor, metres, negative outside (the chair tips);
//! - `slip`: the largest horizontal travel of a caster that touches the floor, metres;
//! - `displacement`: the largest travel of the loaded armrest tip, metres.

use rapier3d::prelude::*;

use super::physics::{GRAVITY, Physics};
use super::{Channel, Event, Layout, Scenario, Step, clamp_action, substeps};

/// Tilt beyond which the chair counts as tipped over, rad (10°).
pub const TIP_ANGLE: f64 = 10.0 * std::f64::consts::PI / 180.0;
/// Tilt below which the chair counts as upright for the tip margin of a load test, rad
/// (0.25°). Contact compliance tilts a loaded chair that does not tip by about 0.1°, and a tilt of
/// 0.25° moves the armrest tip by 3 mm.
pub const UPRIGHT_TILT: f64 = 0.25 * std::f64::consts::PI / 180.0;
/// Radius of the ball casters, metres.
pub const CASTER_RADIUS: f64 = 0.025;
/// Friction coefficient of casters on the floor.
/// NOTE: an estimate for locked casters on a hard floor; free-rolling casters resist much
/// less, so slip is a lower bound for them.
pub const CASTER_FRICTION: f64 = 0.3;
/// Height of the armrests' top surface above the floor, metres.
pub const ARMREST_HEIGHT: f64 = 0.68;
/// Number of base arms, and of casters.
pub const BASE_ARMS: usize = 5;

const SEAT_HALF_EXTENTS: [f64; 3] = [0.25, 0.25, 0.03];
const SEAT_CENTER_HEIGHT: f64 = 0.48;
/// Share of `frame_mass` in the seat; the column has the rest.
const SEAT_SHARE: f64 = 0.6;
const COLUMN_RADIUS: f64 = 0.03;
const ARM_HALF_WIDTH: f64 = 0.02;
const ARM_HALF_HEIGHT: f64 = 0.015;
/// Caster centres sit one caster radius above the floor, and the arms just above them.
const ARM_CENTER_HEIGHT: f64 = 2.0 * CASTER_RADIUS + ARM_HALF_HEIGHT;
/// Height above which a caster's centre counts as lifted off the floor, metres.
const CASTER_CONTACT_HEIGHT: f64 = CASTER_RADIUS + 0.003;

/// Parameters of `std.furniture.office_chair`, SI units, with the chosen material's density.
#[derive(Clone, Debug, PartialEq)]
pub struct ChairParams {
    pub armrest_thickness: f64,
    pub armrest_width: f64,
    pub armrest_length: f64,
    pub armrest_offset: f64,
    /// Density of the armrest material, kg/m³.
    pub armrest_density: f64,
    pub base_radius: f64,
    pub frame_mass: f64,
    pub base_arm_mass_per_length: f64,
}

impl ChairParams {
    /// Mass of both armrests, kg (the model's `armrest_mass`).
    pub fn armrest_mass(&self) -> f64 {
        2.0 * self.armrest_density
            * self.armrest_thickness
            * self.armrest_width
            * self.armrest_length
    }

    /// Mass of the star base, kg (the model's `base_mass`).
    pub fn base_mass(&self) -> f64 {
        BASE_ARMS as f64 * self.base_arm_mass_per_length * self.base_radius
    }

    /// Mass of the chair, kg (the model's `mass`).
    pub fn mass(&self) -> f64 {
        self.frame_mass + self.armrest_mass() + self.base_mass()
    }

    fn validate(&self) -> Result<(), String> {
        let positive = [
            ("armrest_thickness", self.armrest_thickness),
            ("armrest_width", self.armrest_width),
            ("armrest_length", self.armrest_length),
            ("armrest_offset", self.armrest_offset),
            ("base_radius", self.base_radius),
            ("frame_mass", self.frame_mass),
        ];
        for (name, value) in positive {
            if !(value.is_finite() && value > 0.0) {
                return Err(format!("`{name}` must be a positive number, got {value}"));
            }
        }
        for (name, value) in [
            ("armrest_density", self.armrest_density),
            ("base_arm_mass_per_length", self.base_arm_mass_per_length),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(format!("`{name}` must be zero or positive, got {value}"));
            }
        }
        Ok(())
    }
}

/// A static load test: the load rises linearly to `load` over `ramp` seconds, then stays
/// constant until `duration`.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadTest {
    /// Vertical load at the armrest tip, N.
    pub load: f64,
    /// Seconds to reach the full load; a gradual load avoids an impact.
    pub ramp: f64,
    /// Seconds of the whole test, ramp included.
    pub duration: f64,
    /// Seconds per recorded step.
    pub step: f64,
}

impl LoadTest {
    /// Creates a test with the given load: 0.3 s of ramp, 1.5 s in all, in steps of 10 ms.
    pub fn new(load: f64) -> Self {
        LoadTest {
            load,
            ramp: 0.3,
            duration: 1.5,
            step: 0.01,
        }
    }
}

/// Measurements of a load test.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadTestOutcome {
    /// The tip margin under the full load in the last upright pose (tilt below
    /// [`UPRIGHT_TILT`]), metres: the simulated counterpart of the static moment balance.
    pub tip_margin: f64,
    /// Largest horizontal travel of a caster on the floor, metres.
    pub slip: f64,
    /// Largest travel of the loaded armrest tip, metres.
    pub max_displacement: f64,
    /// Largest tilt, rad.
    pub max_tilt: f64,
    /// Whether the tilt passed [`TIP_ANGLE`].
    pub tipped: bool,
}

/// The chair and its measurements since the last reset; see the module documentation.
pub struct Chair {
    params: ChairParams,
    layout: Layout,
    /// Maximum length of a physics substep, seconds.
    pub max_substep: f64,
    physics: Physics,
    body: RigidBodyHandle,
    /// Caster centres and the loaded point in the body frame.
    casters: [Vector; BASE_ARMS],
    tip: Vector,
    /// Where the casters and the tip were at the reset, world frame.
    caster_starts: [Vector; BASE_ARMS],
    tip_start: Vector,
    load: f64,
    max_slip: f64,
    max_displacement: f64,
    max_tilt: f64,
    tipped: bool,
}

impl Chair {
    /// Default maximum substep length: 1/480 s.
    pub const DEFAULT_MAX_SUBSTEP: f64 = 1.0 / 480.0;

    /// A chair named `name` (the design's name in the plan).
    ///
    /// # Errors
    ///
    /// Returns a message naming the parameter when a length or mass is not positive.
    pub fn new(name: &str, params: ChairParams) -> Result<Self, String> {
        params.validate()?;
        let layout = Layout {
            states: vec![
                Channel::new(format!("{name}.tilt"), "rad"),
                Channel::new(format!("{name}.tip_margin"), "m"),
                Channel::new(format!("{name}.slip"), "m"),
                Channel::new(format!("{name}.displacement"), "m"),
            ],
            actions: vec![Channel {
                name: format!("{name}.load"),
                unit: "N".into(),
                lower: Some(0.0),
                upper: None,
            }],
        };
        let parts = build_world(&params);
        let mut chair = Chair {
            params,
            layout,
            max_substep: Self::DEFAULT_MAX_SUBSTEP,
            physics: parts.physics,
            body: parts.body,
            casters: parts.casters,
            tip: parts.tip,
            caster_starts: parts.casters,
            tip_start: parts.tip,
            load: 0.0,
            max_slip: 0.0,
            max_displacement: 0.0,
            max_tilt: 0.0,
            tipped: false,
        };
        chair.reset(0);
        Ok(chair)
    }

    pub fn params(&self) -> &ChairParams {
        &self.params
    }

    /// Runs `test` from a fresh reset and returns its measurements.
    pub fn load_test(&mut self, test: &LoadTest) -> LoadTestOutcome {
        self.reset(0);
        let steps = (test.duration / test.step).round().max(1.0) as usize;
        // The static check asks whether the upright chair holds the full load, so the
        // margin is taken with the full load in the last pose that was still upright.
        let mut tip_margin = self.margin_under(test.load);
        for index in 1..=steps {
            let time = index as f64 * test.step;
            let fraction = if test.ramp > 0.0 {
                (time / test.ramp).min(1.0)
            } else {
                1.0
            };
            self.step(&[test.load * fraction], test.step);
            if self.tilt() < UPRIGHT_TILT {
                tip_margin = self.margin_under(test.load);
            }
        }
        LoadTestOutcome {
            tip_margin,
            slip: self.max_slip,
            max_displacement: self.max_displacement,
            max_tilt: self.max_tilt,
            tipped: self.tipped,
        }
    }

    fn pose(&self) -> Pose {
        *self.physics.body(self.body).position()
    }

    fn tilt(&self) -> f64 {
        let up = self.pose().rotation * Vector::Z;
        f64::from(up.z).clamp(-1.0, 1.0).acos()
    }

    /// Signed distance from the support pentagon's nearest edge to where the resultant of the
    /// current load and the weight meets the floor; positive inside.
    fn tip_margin(&self) -> f64 {
        self.margin_under(self.load)
    }

    /// The tip margin in the current pose if the load were `load` newtons.
    fn margin_under(&self, load: f64) -> f64 {
        let pose = self.pose();
        let weight = self.params.mass() * GRAVITY;
        let tip = pose.transform_point(self.tip);
        let center = self.physics.body(self.body).center_of_mass();
        let total = load + weight;
        let resultant = [
            (load * f64::from(tip.x) + weight * f64::from(center.x)) / total,
            (load * f64::from(tip.y) + weight * f64::from(center.y)) / total,
        ];
        let corners: Vec<[f64; 2]> = self
            .casters
            .iter()
            .map(|&caster| {
                let point = pose.transform_point(caster);
                [f64::from(point.x), f64::from(point.y)]
            })
            .collect();
        signed_distance_inside(&corners, resultant)
    }

    fn measure(&mut self, events: &mut Vec<Event>) {
        let pose = self.pose();
        let tip = pose.transform_point(self.tip);
        self.max_displacement = self
            .max_displacement
            .max(f64::from((tip - self.tip_start).length()));
        for (caster, start) in self.casters.iter().zip(&self.caster_starts) {
            let point = pose.transform_point(*caster);
            if f64::from(point.z) <= CASTER_CONTACT_HEIGHT {
                let travel = f64::from((point.x - start.x).hypot(point.y - start.y));
                self.max_slip = self.max_slip.max(travel);
            }
        }
        let tilt = self.tilt();
        self.max_tilt = self.max_tilt.max(tilt);
        if tilt > TIP_ANGLE && !self.tipped {
            self.tipped = true;
            events.push(Event::Tipped);
        }
    }
}

/// Signed distance from `point` to the boundary of the convex polygon `corners` (in
/// counter-clockwise order): positive inside, negative outside.
fn signed_distance_inside(corners: &[[f64; 2]], point: [f64; 2]) -> f64 {
    let mut nearest = f64::INFINITY;
    for (index, a) in corners.iter().enumerate() {
        let b = corners[(index + 1) % corners.len()];
        let edge = [b[0] - a[0], b[1] - a[1]];
        let length = edge[0].hypot(edge[1]);
        // The inward normal of a counter-clockwise edge points to its left.
        let inside = (edge[0] * (point[1] - a[1]) - edge[1] * (point[0] - a[0])) / length;
        nearest = nearest.min(inside);
    }
    nearest
}

struct ChairParts {
    physics: Physics,
    body: RigidBodyHandle,
    casters: [Vector; BASE_ARMS],
    tip: Vector,
}

fn build_world(params: &ChairParams) -> ChairParts {
    let mut physics = Physics::new();
    let world = &mut physics.world;
    let floor = ColliderBuilder::cuboid(5.0, 5.0, 0.5)
        .translation(Vector::new(0.0, 0.0, -0.5))
        .friction(CASTER_FRICTION as f32)
        .build();
    world.colliders.insert(floor);

    let body = world
        .bodies
        .insert(RigidBodyBuilder::dynamic().can_sleep(false));
    let mut attach = |collider: Collider| {
        world
            .colliders
            .insert_with_parent(collider, body, &mut world.bodies);
    };
    let f = |value: f64| value as f32;

    let [seat_x, seat_y, seat_z] = SEAT_HALF_EXTENTS;
    attach(
        ColliderBuilder::cuboid(f(seat_x), f(seat_y), f(seat_z))
            .translation(Vector::new(0.0, 0.0, f(SEAT_CENTER_HEIGHT)))
            .mass(f(params.frame_mass * SEAT_SHARE))
            .build(),
    );
    let column_bottom = ARM_CENTER_HEIGHT + ARM_HALF_HEIGHT;
    let column_top = SEAT_CENTER_HEIGHT - seat_z;
    // rapier's cylinders have their axis along y, so a quarter turn about x puts it along z.
    attach(
        ColliderBuilder::cylinder(f((column_top - column_bottom) / 2.0), f(COLUMN_RADIUS))
            .translation(Vector::new(0.0, 0.0, f((column_top + column_bottom) / 2.0)))
            .rotation(Vector::new(std::f32::consts::FRAC_PI_2, 0.0, 0.0))
            .mass(f(params.frame_mass * (1.0 - SEAT_SHARE)))
            .build(),
    );

    let armrest_mass = params.armrest_mass() / 2.0;
    let armrest_center = params.armrest_offset - params.armrest_length / 2.0;
    let armrest_z = ARMREST_HEIGHT - params.armrest_thickness / 2.0;
    for side in [1.0, -1.0] {
        attach(
            ColliderBuilder::cuboid(
                f(params.armrest_length / 2.0),
                f(params.armrest_width / 2.0),
                f(params.armrest_thickness / 2.0),
            )
            .translation(Vector::new(f(side * armrest_center), 0.0, f(armrest_z)))
            .mass(f(armrest_mass))
            .build(),
        );
    }

    let radius = params.base_radius;
    let arm_mass = params.base_arm_mass_per_length * radius;
    let mut casters = [Vector::ZERO; BASE_ARMS];
    for (index, caster) in casters.iter_mut().enumerate() {
        // Arms at 36° + 72°·k, so the +x direction of the load bisects the arms at ±36°.
        let angle = (36.0 + 72.0 * index as f64).to_radians();
        let (sin, cos) = angle.sin_cos();
        attach(
            ColliderBuilder::cuboid(f(radius / 2.0), f(ARM_HALF_WIDTH), f(ARM_HALF_HEIGHT))
                .translation(Vector::new(
                    f(radius / 2.0 * cos),
                    f(radius / 2.0 * sin),
                    f(ARM_CENTER_HEIGHT),
                ))
                .rotation(Vector::new(0.0, 0.0, f(angle)))
                .mass(f(arm_mass))
                .build(),
        );
        *caster = Vector::new(f(radius * cos), f(radius * sin), f(CASTER_RADIUS));
        attach(
            ColliderBuilder::ball(f(CASTER_RADIUS))
                .translation(*caster)
                .density(0.0)
                .friction(CASTER_FRICTION as f32)
                .build(),
        );
    }

    let tip = Vector::new(f(params.armrest_offset), 0.0, f(ARMREST_HEIGHT));
    ChairParts {
        physics,
        body,
        casters,
        tip,
    }
}

impl Scenario for Chair {
    fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Rebuilds the chair standing unloaded on its casters; the seed is unused.
    fn reset(&mut self, _seed: u64) -> Vec<f64> {
        let parts = build_world(&self.params);
        self.physics = parts.physics;
        self.body = parts.body;
        self.casters = parts.casters;
        self.tip = parts.tip;
        self.caster_starts = parts.casters;
        self.tip_start = parts.tip;
        self.load = 0.0;
        self.max_slip = 0.0;
        self.max_displacement = 0.0;
        self.max_tilt = 0.0;
        self.tipped = false;
        self.observe()
    }

    fn observe(&self) -> Vec<f64> {
        vec![
            self.tilt(),
            self.tip_margin(),
            self.max_slip,
            self.max_displacement,
        ]
    }

    fn step(&mut self, action: &[f64], dt: f64) -> Step {
        let action = clamp_action(&self.layout, action);
        self.load = action[0];
        let (count, h) = substeps(dt, self.max_substep);
        let mut events = Vec::new();
        for _ in 0..count {
            let tip = self.pose().transform_point(self.tip);
            let body = self.physics.body_mut(self.body);
            // rapier keeps forces and torques until they are reset, each separately.
            body.reset_forces(true);
            body.reset_torques(true);
            body.add_force_at_point(Vector::new(0.0, 0.0, -self.load as f32), tip, true);
            self.physics.substep(h);
            self.measure(&mut events);
        }
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

    fn light_chair() -> ChairParams {
        ChairParams {
            armrest_thickness: 0.02,
            armrest_width: 0.05,
            armrest_length: 0.25,
            armrest_offset: 0.3,
            armrest_density: 2700.0,
            base_radius: 0.35,
            frame_mass: 8.0,
            base_arm_mass_per_length: 2.5,
        }
    }

    #[test]
    fn body_mass_matches_the_model() {
        let chair = Chair::new("chair", light_chair()).unwrap();
        let simulated = f64::from(chair.physics.body(chair.body).mass());
        let expected = light_chair().mass();
        assert!(
            (simulated - expected).abs() < 1e-4 * expected,
            "mass {simulated}, expected {expected}"
        );
    }

    #[test]
    fn unloaded_chair_stands_still() {
        let mut chair = Chair::new("chair", light_chair()).unwrap();
        for _ in 0..50 {
            chair.step(&[0.0], 0.01);
        }
        let [tilt, margin, slip, displacement] = chair.observe()[..] else {
            unreachable!()
        };
        assert!(tilt < 1e-3, "tilt {tilt}");
        let tipping_line = 0.35 * 36f64.to_radians().cos();
        assert!(
            (margin - tipping_line).abs() < 2e-3,
            "margin {margin}, expected {tipping_line}"
        );
        assert!(slip < 1e-3, "slip {slip}");
        assert!(displacement < 5e-3, "displacement {displacement}");
    }

    #[test]
    fn polygon_distance_is_signed() {
        let square = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]];
        assert!((signed_distance_inside(&square, [0.5, 0.25]) - 0.25).abs() < 1e-12);
        assert!((signed_distance_inside(&square, [1.5, 0.5]) + 0.5).abs() < 1e-12);
    }

    #[test]
    fn invalid_radius_is_rejected() {
        let params = ChairParams {
            base_radius: 0.0,
            ..light_chair()
        };
        let error = Chair::new("chair", params)
            .err()
            .expect("a zero radius is invalid");
        assert!(error.contains("base_radius"), "{error}");
    }
}
