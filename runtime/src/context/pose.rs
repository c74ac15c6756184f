//! Poses in the URDF convention, shared by robot descriptions and scenes.
//!
//! A pose is a translation `xyz` in metres and fixed-axis roll, pitch and yaw `rpy` in radians:
//! the rotation is `Rz(yaw) · Ry(pitch) · Rx(roll)`, applied before the translation.

use serde::{Deserialize, Serialize};

/// A position and orientation: `xyz` in metres, `rpy` (roll, pitch, yaw) in radians.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pose {
    #[serde(default)]
    pub xyz: [f64; 3],
    #[serde(default)]
    pub rpy: [f64; 3],
}

/// A rigid transform as a rotation matrix and a translation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Transform {
    rotation: [[f64; 3]; 3],
    translation: [f64; 3],
}

impl Transform {
    pub(crate) const IDENTITY: Transform = Transform {
        rotation: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        translation: [0.0, 0.0, 0.0],
    };

    pub(crate) fn from_pose(pose: &Pose) -> Self {
        let [roll, pitch, yaw] = pose.rpy;
        let (sr, cr) = roll.sin_cos();
        let (sp, cp) = pitch.sin_cos();
        let (sy, cy) = yaw.sin_cos();
        Transform {
            rotation: [
                [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
                [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
                [-sp, cp * sr, cp * cr],
            ],
            translation: pose.xyz,
        }
    }

    /// Composes `self · child`: the pose of a frame given relative to `self`'s frame.
    pub(crate) fn then(&self, child: &Transform) -> Transform {
        let mut rotation = [[0.0; 3]; 3];
        for (row, output) in rotation.iter_mut().enumerate() {
            for (col, value) in output.iter_mut().enumerate() {
                *value = (0..3)
                    .map(|k| self.rotation[row][k] * child.rotation[k][col])
                    .sum();
            }
        }
        Transform {
            rotation,
            translation: self.apply(child.translation),
        }
    }

    /// Maps a point from this transform's child frame into its parent frame.
    pub(crate) fn apply(&self, point: [f64; 3]) -> [f64; 3] {
        let mut output = self.translation;
        for (row, value) in output.iter_mut().enumerate() {
            *value += (0..3)
                .map(|k| self.rotation[row][k] * point[k])
                .sum::<f64>();
        }
        output
    }

    pub(crate) fn translation(&self) -> [f64; 3] {
        self.translation
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::FRAC_PI_2;

    fn assert_close(actual: [f64; 3], expected: [f64; 3]) {
        for axis in 0..3 {
            assert!(
                (actual[axis] - expected[axis]).abs() < 1e-12,
                "got {actual:?}, expected {expected:?}"
            );
        }
    }

    #[test]
    fn yaw_turns_x_into_y() {
        let turn = Transform::from_pose(&Pose {
            xyz: [1.0, 0.0, 0.0],
            rpy: [0.0, 0.0, FRAC_PI_2],
        });

        assert_close(turn.apply([1.0, 0.0, 0.0]), [1.0, 1.0, 0.0]);
    }

    #[test]
    fn rotations_apply_roll_first() {
        // Roll by 90° maps y to z, then yaw by 90° leaves z alone.
        let pose = Pose {
            xyz: [0.0; 3],
            rpy: [FRAC_PI_2, 0.0, FRAC_PI_2],
        };

        assert_close(
            Transform::from_pose(&pose).apply([0.0, 1.0, 0.0]),
            [0.0, 0.0, 1.0],
        );
        assert_close(
            Transform::from_pose(&pose).apply([1.0, 0.0, 0.0]),
            [0.0, 1.0, 0.0],
        );
    }

    #[test]
    fn composition_applies_child_then_parent() {
        let parent = Transform::from_pose(&Pose {
            xyz: [0.0, 0.0, 1.0],
            rpy: [0.0, FRAC_PI_2, 0.0],
        });
        let child = Transform::from_pose(&Pose {
            xyz: [0.0, 0.0, 2.0],
            rpy: [0.0; 3],
        });

        // Pitch by 90° maps z to x.
        assert_close(parent.then(&child).translation(), [2.0, 0.0, 1.0]);
        assert_close(
            parent.then(&child).apply([0.0, 0.0, 1.0]),
            parent.apply(child.apply([0.0, 0.0, 1.0])),
        );
        assert_eq!(Transform::IDENTITY.then(&child), child);
    }
}
