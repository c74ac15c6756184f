//! Wheel radius, track width and body speed limits of a wheeled mobile base.
//!
//! The base frame is the robot's root link with x forward and y to the left (ROS REP 103).
//! Wheels are, unless the caller names them, the continuous joints whose child link has a
//! cylinder geometry. A wheel is on the left when its joint origin has y > 0 in the root frame
//! with every joint at zero, so wheels hung from steering hinges are placed correctly.
//!
//! The speed limits follow the differential-drive model: `v_max = ω_max · r`, and the turn rate
//! is largest when the wheels on the two sides spin in opposite directions at full speed, so
//! `turn_rate_max = 2 · v_max / track`. For an Ackermann base this turn rate is an upper bound
//! that its steering cannot reach.

use super::super::error::ContextError;
use super::{Geometry, JointType, UrdfRobot};

/// Wheels with a joint origin closer than this to the centre line (metres) are on neither side.
const CENTRE_LINE_TOLERANCE: f64 = 1e-6;

/// Values a spec declares to override or complete what the URDF file gives.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MobileBaseOptions {
    /// Names of the wheel joints. By default, every continuous joint whose child link has a
    /// cylinder collision or visual geometry.
    pub wheel_joints: Option<Vec<String>>,
    /// Wheel radius in metres, in place of the wheels' cylinder radius.
    pub wheel_radius: Option<f64>,
    /// Maximum wheel speed in rad/s, in place of the wheel joints' velocity limits.
    pub max_wheel_speed: Option<f64>,
}

/// The kinematic quantities of a wheeled base.
#[derive(Clone, Debug, PartialEq)]
pub struct MobileBase {
    /// Names of the wheel joints, in file order.
    pub wheel_joints: Vec<String>,
    /// Wheel radius in metres.
    pub wheel_radius: f64,
    /// Distance in metres between the mean lateral positions of the left and right wheels.
    pub track_width: f64,
    /// Maximum wheel speed in rad/s: the declared value, or the smallest velocity limit of the
    /// wheel joints; `None` when neither is known.
    pub max_wheel_speed: Option<f64>,
    /// Maximum forward speed in m/s, `max_wheel_speed · wheel_radius`.
    pub max_speed: Option<f64>,
    /// Maximum turn rate in rad/s, `2 · max_speed / track_width`.
    pub max_turn_rate: Option<f64>,
}

pub(super) fn derive(
    robot: &UrdfRobot,
    options: &MobileBaseOptions,
) -> Result<MobileBase, ContextError> {
    let invalid = |message: String| ContextError::invalid(&robot.path, message);
    let wheels = find_wheels(robot, options)?;

    let wheel_radius = match options.wheel_radius {
        Some(radius) if radius.is_finite() && radius > 0.0 => radius,
        Some(radius) => {
            return Err(invalid(format!(
                "the declared wheel radius must be a positive number of metres, got {radius}"
            )));
        }
        None => radius_from_geometry(robot, &wheels)?,
    };

    let positions = robot.link_positions();
    let (mut left, mut right) = (Vec::new(), Vec::new());
    for name in &wheels {
        let joint = robot.joint(name).expect("wheel joints were looked up");
        let y = positions
            .get(&joint.child)
            .map_or(0.0, |position| position[1]);
        if y > CENTRE_LINE_TOLERANCE {
            left.push(y);
        } else if y < -CENTRE_LINE_TOLERANCE {
            right.push(y);
        } else {
            return Err(invalid(format!(
                "wheel joint `{name}` lies on the centre line (y = {y} m), so it is on neither side"
            )));
        }
    }
    if left.is_empty() || right.is_empty() {
        let side = if left.is_empty() {
            "left (y > 0)"
        } else {
            "right (y < 0)"
        };
        return Err(invalid(format!(
            "no wheel on the {side} side among {}; the track width needs wheels on both sides",
            quoted(&wheels)
        )));
    }
    let mean = |values: &[f64]| values.iter().sum::<f64>() / values.len() as f64;
    let track_width = mean(&left) - mean(&right);

    let max_wheel_speed = match options.max_wheel_speed {
        Some(speed) if speed.is_finite() && speed > 0.0 => Some(speed),
        Some(speed) => {
            return Err(invalid(format!(
                "the declared maximum wheel speed must be a positive number of rad/s, got {speed}"
            )));
        }
        None => wheels
            .iter()
            .map(|name| {
                let limit = robot.joint(name).and_then(|joint| joint.limit);
                limit
                    .map(|limit| limit.velocity)
                    .filter(|&velocity| velocity > 0.0)
            })
            .collect::<Option<Vec<f64>>>()
            .map(|speeds| speeds.into_iter().fold(f64::INFINITY, f64::min)),
    };
    let max_speed = max_wheel_speed.map(|speed| speed * wheel_radius);
    let max_turn_rate = max_speed.map(|speed| 2.0 * speed / track_width);

    Ok(MobileBase {
        wheel_joints: wheels,
        wheel_radius,
        track_width,
        max_wheel_speed,
        max_speed,
        max_turn_rate,
    })
}

fn find_wheels(
    robot: &UrdfRobot,
    options: &MobileBaseOptions,
) -> Result<Vec<String>, ContextError> {
    if let Some(names) = &options.wheel_joints {
        for name in names {
            if robot.joint(name).is_none() {
                return Err(ContextError::invalid(
                    &robot.path,
                    format!("the declared wheel joint `{name}` is not in the robot"),
                ));
            }
        }
        return Ok(names.clone());
    }

    let wheels: Vec<String> = robot
        .joints
        .iter()
        .filter(|joint| joint.joint_type == JointType::Continuous)
        .filter(|joint| cylinder_radius(robot, &joint.child).is_some())
        .map(|joint| joint.name.clone())
        .collect();
    if wheels.is_empty() {
        return Err(ContextError::invalid(
            &robot.path,
            "found no wheels (continuous joints whose child link has a cylinder geometry); try declaring the wheel joints",
        ));
    }
    Ok(wheels)
}

/// Radius of the first cylinder among a link's collision geometry, or else its visual geometry.
fn cylinder_radius(robot: &UrdfRobot, link: &str) -> Option<f64> {
    let link = robot.link(link)?;
    link.collisions
        .iter()
        .chain(&link.visuals)
        .find_map(|shape| match shape.geometry {
            Geometry::Cylinder { radius, .. } => Some(radius),
            _ => None,
        })
}

fn radius_from_geometry(robot: &UrdfRobot, wheels: &[String]) -> Result<f64, ContextError> {
    let mut radii = Vec::new();
    for name in wheels {
        let child = &robot
            .joint(name)
            .expect("wheel joints were looked up")
            .child;
        let radius = cylinder_radius(robot, child).ok_or_else(|| {
            ContextError::invalid(
                &robot.path,
                format!(
                    "cannot find the radius of wheel `{name}`: link `{child}` has no cylinder geometry; try declaring the wheel radius"
                ),
            )
        })?;
        radii.push(radius);
    }

    let first = radii[0];
    if radii
        .iter()
        .any(|&radius| (radius - first).abs() > 1e-9 * first)
    {
        let listed: Vec<String> = wheels
            .iter()
            .zip(&radii)
            .map(|(name, radius)| format!("`{name}` {radius} m"))
            .collect();
        return Err(ContextError::invalid(
            &robot.path,
            format!(
                "the wheels have different radii ({}); try declaring the wheel radius",
                listed.join(", ")
            ),
        ));
    }
    Ok(first)
}

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn robot(joints: &str) -> UrdfRobot {
        let text = format!(
            "<robot name='r'><link name='base'/>\
             <link name='left'><collision><geometry><cylinder radius='0.1' length='0.05'/></geometry></collision></link>\
             <link name='right'><visual><geometry><cylinder radius='0.1' length='0.05'/></geometry></visual></link>\
             {joints}</robot>"
        );
        UrdfRobot::parse(Path::new("base.urdf"), &text).unwrap()
    }

    const DIFF_DRIVE: &str = "\
        <joint name='wl' type='continuous'><origin xyz='0 0.25 0'/><parent link='base'/><child link='left'/><limit effort='5' velocity='10'/></joint>\
        <joint name='wr' type='continuous'><origin xyz='0 -0.25 0'/><parent link='base'/><child link='right'/><limit effort='5' velocity='8'/></joint>";

    #[test]
    fn derives_speed_limits_from_joint_limits() {
        let base = robot(DIFF_DRIVE)
            .mobile_base(&MobileBaseOptions::default())
            .unwrap();

        assert_eq!(base.wheel_joints, ["wl", "wr"]);
        assert_eq!(base.wheel_radius, 0.1);
        assert_eq!(base.track_width, 0.5);
        assert_eq!(base.max_wheel_speed, Some(8.0));
        assert!((base.max_speed.unwrap() - 0.8).abs() < 1e-12);
        assert!((base.max_turn_rate.unwrap() - 3.2).abs() < 1e-12);
    }

    #[test]
    fn declared_values_override_the_file() {
        let options = MobileBaseOptions {
            wheel_joints: Some(vec!["wl".to_string(), "wr".to_string()]),
            wheel_radius: Some(0.2),
            max_wheel_speed: Some(5.0),
        };
        let base = robot(DIFF_DRIVE).mobile_base(&options).unwrap();

        assert_eq!(base.wheel_radius, 0.2);
        assert_eq!(base.max_speed, Some(1.0));
        assert_eq!(base.max_turn_rate, Some(4.0));
    }

    #[test]
    fn speed_limits_unknown_without_joint_limits() {
        let base = robot(
            "<joint name='wl' type='continuous'><origin xyz='0 0.25 0'/><parent link='base'/><child link='left'/></joint>\
             <joint name='wr' type='continuous'><origin xyz='0 -0.25 0'/><parent link='base'/><child link='right'/></joint>",
        )
        .mobile_base(&MobileBaseOptions::default())
        .unwrap();

        assert_eq!(base.track_width, 0.5);
        assert_eq!(base.max_wheel_speed, None);
        assert_eq!(base.max_speed, None);
        assert_eq!(base.max_turn_rate, None);
    }

    #[test]
    fn errors_explain_what_to_declare() {
        let one_side = "\
            <joint name='wl' type='continuous'><origin xyz='0 0.25 0'/><parent link='base'/><child link='left'/></joint>\
            <joint name='wr' type='continuous'><origin xyz='0.5 0.25 0'/><parent link='base'/><child link='right'/></joint>";
        let no_wheels = "\
            <joint name='wl' type='fixed'><parent link='base'/><child link='left'/></joint>\
            <joint name='wr' type='fixed'><parent link='base'/><child link='right'/></joint>";
        let cases = [
            (
                one_side,
                MobileBaseOptions::default(),
                "base.urdf: no wheel on the right (y < 0) side among `wl`, `wr`; the track width needs wheels on both sides",
            ),
            (
                no_wheels,
                MobileBaseOptions::default(),
                "base.urdf: found no wheels (continuous joints whose child link has a cylinder geometry); try declaring the wheel joints",
            ),
            (
                DIFF_DRIVE,
                MobileBaseOptions {
                    wheel_joints: Some(vec!["axle".to_string()]),
                    ..MobileBaseOptions::default()
                },
                "base.urdf: the declared wheel joint `axle` is not in the robot",
            ),
            (
                DIFF_DRIVE,
                MobileBaseOptions {
                    wheel_radius: Some(-1.0),
                    ..MobileBaseOptions::default()
                },
                "base.urdf: the declared wheel radius must be a positive number of metres, got -1",
            ),
        ];
        for (joints, options, expected) in cases {
            let error = robot(joints).mobile_base(&options).unwrap_err();
            assert_eq!(error.to_string(), expected);
        }
    }
}
