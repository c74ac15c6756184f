//! Observations: what the encoder reads. A state alone for most agents; for a mobile robot
//! on a map, its state plus an egocentric occupancy patch cut from that map, so the latent
//! encodes the obstacles near the robot, whose contacts change its motion.
//!
//! ## The patch
//!
//! A square of [`PatchSpec::cells`]² cells of [`PatchSpec::resolution`] metres, fixed to the
//! robot: its forward axis is the robot's heading, it reaches [`PatchSpec::behind`] metres
//! behind the robot's centre and the rest of its length ahead, and it is centred sideways.
//! The default, [`PatchSpec::standard`], is 16 × 16 cells of 25 cm: 3 m ahead, 1 m behind and
//! 2 m to each side. Why these figures:
//!
//! - 3 m ahead is what a warehouse base at about 1 m/s covers in 3 s, most of the 2 to 4 s
//!   a plan looks ahead, and several times its stopping distance (0.5 m from 1 m/s at
//!   1 m/s²). The metre behind covers reversing and turning in place, and 2 m to each side
//!   a turn's swept area.
//! - 25 cm is finer than the smallest robot Basin's examples use (30 cm radius) and the
//!   clearances their specs ask for, yet coarse enough that 256 numbers cover the area; a
//!   finer patch would grow the encoder's first layer for detail the planner's own distance
//!   field already resolves (the energy terms read the map exactly, not the patch).
//! - Rotating the patch into the robot frame makes "a wall 1 m ahead" the same input
//!   wherever the robot is, which is what lets a small network generalize across the map.
//!
//! Each patch cell holds the fraction of its area that is blocked, from 0 (free) to 1
//! (blocked), averaged over the grid cells under it, with area outside the map counting as
//! blocked (as [`Grid::is_blocked`] does). The average is exact for the square of side
//! `resolution` around the patch cell's centre, taken axis-aligned in the map frame: a
//! summed-area table of the grid gives it with four bilinear lookups, whatever the ratio of
//! patch and grid resolution. Nearest-cell sampling would alias walls thinner than a patch
//! cell (a 5 cm wall on a 25 cm patch would flicker in and out as the robot moved); area
//! averaging keeps it visible as a partial value. The square is not rotated with the patch,
//! which blurs an edge by at most a fraction of a cell at 45°.
//!
//! Patches are computed from the states and the grid when needed, never stored in datasets:
//! training computes them once for every state of its episodes, in parallel.

use rayon::prelude::*;

use super::data::Normalization;
use crate::context::Grid;

/// Shape of the egocentric occupancy patch and where the pose is in the state.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PatchSpec {
    /// Cells per side; the patch has `cells × cells` values.
    pub cells: usize,
    /// Side of a patch cell, metres.
    pub resolution: f64,
    /// Reach behind the robot's centre, metres; the rest of the patch's length is ahead.
    pub behind: f64,
    /// Columns of `x`, `y` (metres) and `heading` (radians) in the state.
    pub pose: [usize; 3],
    /// Columns of the base's forward velocity (m/s) and turn rate (rad/s), when the state
    /// contains them. Then the encoder gets no pose, and rollouts integrate the pose from the
    /// predicted velocities (`super::kinematics`).
    #[serde(default)]
    pub velocity: Option<[usize; 2]>,
}

impl PatchSpec {
    /// Returns the default patch (see the module documentation) for a state whose `x`, `y`
    /// and `heading` are in columns `pose`.
    pub fn standard(pose: [usize; 3]) -> PatchSpec {
        PatchSpec {
            cells: 16,
            resolution: 0.25,
            behind: 1.0,
            pose,
            velocity: None,
        }
    }

    /// Returns the same patch for a state that also contains the base's velocities in
    /// columns `velocity` (forward, turn).
    pub fn with_velocity(self, velocity: [usize; 2]) -> PatchSpec {
        PatchSpec {
            velocity: Some(velocity),
            ..self
        }
    }

    /// Number of values in a patch.
    pub fn len(&self) -> usize {
        self.cells * self.cells
    }

    pub fn is_empty(&self) -> bool {
        self.cells == 0
    }

    /// Centre of patch cell `index` in the robot frame (metres, x forward, y left). Cells
    /// are row-major: `index = i · cells + j`, with `i` counting forward from the rear
    /// edge and `j` counting leftward from the right edge.
    pub fn cell_offset(&self, index: usize) -> [f64; 2] {
        let (i, j) = (index / self.cells, index % self.cells);
        let half = self.cells as f64 * self.resolution / 2.0;
        [
            -self.behind + (i as f64 + 0.5) * self.resolution,
            -half + (j as f64 + 0.5) * self.resolution,
        ]
    }
}

/// Cuts patches out of one occupancy grid. Build it once per grid, because building it
/// computes the grid's summed-area table.
#[derive(Clone, Debug)]
pub struct PatchSampler {
    spec: PatchSpec,
    width: usize,
    height: usize,
    cell_size: f64,
    origin: [f64; 2],
    /// `(height + 1) × (width + 1)`: entry `(r, c)` counts the blocked cells in rows `< r`
    /// and columns `< c` (row 0 at the top, as in [`Grid`]).
    table: Vec<f64>,
    /// Cell centres in the robot frame, in patch order.
    offsets: Vec<[f64; 2]>,
}

impl PatchSampler {
    pub fn new(spec: PatchSpec, grid: &Grid) -> PatchSampler {
        let (width, height) = (grid.width(), grid.height());
        let cells = grid.cells();
        let mut table = vec![0.0; (width + 1) * (height + 1)];
        for r in 0..height {
            let mut row_sum = 0.0;
            for c in 0..width {
                row_sum += f64::from(u8::from(cells[r * width + c]));
                table[(r + 1) * (width + 1) + c + 1] = table[r * (width + 1) + c + 1] + row_sum;
            }
        }
        PatchSampler {
            spec,
            width,
            height,
            cell_size: grid.cell_size(),
            origin: grid.origin(),
            table,
            offsets: (0..spec.len()).map(|k| spec.cell_offset(k)).collect(),
        }
    }

    pub fn spec(&self) -> &PatchSpec {
        &self.spec
    }

    /// Blocked area in grid cells of `[0, u] × [0, v]` (columns from the left, rows from the
    /// top), for `u`, `v` already within the grid: the bilinear interpolation of the table.
    fn blocked_below(&self, u: f64, v: f64) -> f64 {
        let stride = self.width + 1;
        let (c, r) = (
            (u.floor() as usize).min(self.width.saturating_sub(1)),
            (v.floor() as usize).min(self.height.saturating_sub(1)),
        );
        let (fu, fv) = (u - c as f64, v - r as f64);
        let at = |r: usize, c: usize| self.table[r * stride + c];
        let top = at(r, c) + fu * (at(r, c + 1) - at(r, c));
        let bottom = at(r + 1, c) + fu * (at(r + 1, c + 1) - at(r + 1, c));
        top + fv * (bottom - top)
    }

    /// Blocked fraction of the axis-aligned square of side `resolution` centred at the world
    /// point `(x, y)`; area outside the grid counts as blocked.
    fn blocked_fraction(&self, x: f64, y: f64) -> f32 {
        let half = self.spec.resolution / 2.0 / self.cell_size;
        let u = (x - self.origin[0]) / self.cell_size;
        let v = self.height as f64 - (y - self.origin[1]) / self.cell_size;
        let (w, h) = (self.width as f64, self.height as f64);
        let (u0, u1) = ((u - half).clamp(0.0, w), (u + half).clamp(0.0, w));
        let (v0, v1) = ((v - half).clamp(0.0, h), (v + half).clamp(0.0, h));
        let inside = (u1 - u0) * (v1 - v0);
        let blocked = if inside > 0.0 {
            self.blocked_below(u1, v1) - self.blocked_below(u0, v1) - self.blocked_below(u1, v0)
                + self.blocked_below(u0, v0)
        } else {
            0.0
        };
        let area = 4.0 * half * half;
        ((blocked + (area - inside)) / area).clamp(0.0, 1.0) as f32
    }

    /// Writes the patch seen from `pose` `(x, y, heading)` into `out` (`spec.len()` values).
    /// A pose with a non-finite entry gets a fully blocked patch.
    pub fn sample(&self, pose: [f64; 3], out: &mut [f32]) {
        if self.width == 0 || self.height == 0 || pose.iter().any(|v| !v.is_finite()) {
            out.fill(1.0);
            return;
        }
        let (sin, cos) = pose[2].sin_cos();
        for (value, [fx, fy]) in out.iter_mut().zip(&self.offsets) {
            let x = pose[0] + fx * cos - fy * sin;
            let y = pose[1] + fx * sin + fy * cos;
            *value = self.blocked_fraction(x, y);
        }
    }

    /// Returns the pose of a state row (SI units) in the columns of the spec.
    fn pose_of(&self, state: &[f32]) -> [f64; 3] {
        self.spec.pose.map(|c| f64::from(state[c]))
    }
}

/// Builds encoder inputs `[normalized state, sin and cos of the angle, patch]` from states
/// in SI units. The entry of a periodic angle is zero, and so are the pose entries of a base
/// with velocities in its state ([`PatchSpec::velocity`]).
#[derive(Clone, Debug)]
pub struct Observer {
    pub normalization: Normalization,
    pub patches: Option<PatchSampler>,
    /// Columns of a periodic angle and its rate ([`super::Dims::angle`]).
    pub angle: Option<[usize; 2]>,
}

impl Observer {
    pub fn new(normalization: Normalization, patches: Option<PatchSampler>) -> Observer {
        Observer {
            normalization,
            patches,
            angle: None,
        }
    }

    /// Returns the same observer for a state with a periodic angle and its rate in columns
    /// `angle`.
    pub fn with_angle(self, angle: Option<[usize; 2]>) -> Observer {
        Observer { angle, ..self }
    }

    pub fn n_states(&self) -> usize {
        self.normalization.state_mean.len()
    }

    /// Values per observation: the state's components, the sine and cosine of the angle,
    /// and the patch's cells.
    pub fn width(&self) -> usize {
        self.patch_offset() + self.patches.as_ref().map_or(0, |p| p.spec.len())
    }

    /// Returns the index where the patch starts in an observation.
    fn patch_offset(&self) -> usize {
        self.n_states() + self.angle.map_or(0, |_| 2)
    }

    pub fn patch_spec(&self) -> Option<PatchSpec> {
        self.patches.as_ref().map(|p| p.spec)
    }

    /// Returns the observations of `states` (rows of `n_states` SI values), row-major with
    /// [`Observer::width`] values per row. Rows are computed in parallel.
    pub fn observe(&self, states: &[f32]) -> Vec<f32> {
        let (ns, width, offset) = (self.n_states(), self.width(), self.patch_offset());
        let rows = states.len() / ns.max(1);
        let mut out = vec![0.0; rows * width];
        let fill = |(row, out): (usize, &mut [f32])| {
            let state = &states[row * ns..(row + 1) * ns];
            for (o, (v, (m, s))) in out.iter_mut().zip(
                state.iter().zip(
                    self.normalization
                        .state_mean
                        .iter()
                        .zip(&self.normalization.state_std),
                ),
            ) {
                *o = (v - m) / s;
            }
            // A periodic angle is read through its sine and cosine, which do not jump when
            // it wraps, and is integrated from its rate in rollouts.
            if let Some([angle, _]) = self.angle {
                let (sin, cos) = f64::from(state[angle]).sin_cos();
                out[angle] = 0.0;
                out[ns] = sin as f32;
                out[ns + 1] = cos as f32;
            }
            if let Some(patches) = &self.patches {
                patches.sample(patches.pose_of(state), &mut out[offset..]);
                // A base whose pose is integrated is seen only through its surroundings.
                if patches.spec.velocity.is_some() {
                    for c in patches.spec.pose {
                        out[c] = 0.0;
                    }
                }
            }
        };
        // Patches are worth spreading over threads; a normalized state alone is not.
        if self.patches.is_some() && rows > 1 {
            out.par_chunks_mut(width.max(1)).enumerate().for_each(fill);
        } else {
            out.chunks_mut(width.max(1)).enumerate().for_each(fill);
        }
        out
    }

    /// Like [`Observer::observe`] for states in `f64`.
    pub fn observe_f64(&self, states: &[f64]) -> Vec<f32> {
        let rows: Vec<f32> = states.iter().map(|&v| v as f32).collect();
        self.observe(&rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 10 m × 10 m map of 10 cm cells, blocked where `x ≥ 6 m`.
    fn wall_grid() -> Grid {
        let (w, h) = (100, 100);
        let cells = (0..w * h).map(|i| i % w >= 60).collect();
        Grid::from_cells(w, h, 0.1, cells)
    }

    fn patch(spec: PatchSpec, grid: &Grid, pose: [f64; 3]) -> Vec<f32> {
        let mut out = vec![0.0; spec.len()];
        PatchSampler::new(spec, grid).sample(pose, &mut out);
        out
    }

    /// Mean over the patch's row `i` (one distance ahead of the robot).
    fn row_mean(spec: &PatchSpec, values: &[f32], i: usize) -> f32 {
        values[i * spec.cells..(i + 1) * spec.cells]
            .iter()
            .sum::<f32>()
            / spec.cells as f32
    }

    #[test]
    fn a_wall_ahead_fills_the_far_rows() {
        let spec = PatchSpec::standard([0, 1, 2]);
        let grid = wall_grid();
        // Facing +x at x = 4.5 m: the wall starts 1.5 m ahead, at the far edge of row 9
        // (rows cover -1 m + 0.25 m · i ..), so rows 0..=9 are free and 10..16 blocked.
        let values = patch(spec, &grid, [4.5, 5.0, 0.0]);
        for i in 0..16 {
            let expected = if i >= 10 { 1.0 } else { 0.0 };
            let mean = row_mean(&spec, &values, i);
            assert!(
                (mean - expected).abs() < 1e-5,
                "row {i}: {mean}, expected {expected}"
            );
        }
        // Facing -x, the wall is behind, beyond the patch's metre: all free.
        let behind = patch(spec, &grid, [4.5, 5.0, std::f64::consts::PI]);
        assert!(behind.iter().all(|v| v.abs() < 1e-5), "{behind:?}");
    }

    #[test]
    fn partial_cells_hold_the_blocked_fraction() {
        let spec = PatchSpec::standard([0, 1, 2]);
        let grid = wall_grid();
        // Facing +x at x = 4.625 m, row 9 spans 1.25..1.5 m ahead, x = 5.875..6.125 m: the
        // wall at 6 m covers half of it.
        let values = patch(spec, &grid, [4.625, 5.0, 0.0]);
        let mean = row_mean(&spec, &values, 9);
        assert!((mean - 0.5).abs() < 1e-5, "row 9: {mean}, expected 0.5");
    }

    #[test]
    fn outside_the_map_counts_as_blocked() {
        let spec = PatchSpec::standard([0, 1, 2]);
        let grid = Grid::free(20, 20, 0.1);
        // Facing +y at the centre of a 2 m map: the patch reaches 3 m ahead, past the top
        // edge at 1 m ahead, and 2 m to each side, past both side edges at 1 m.
        let values = patch(spec, &grid, [1.0, 1.0, std::f64::consts::FRAC_PI_2]);
        let inside = |k: usize| {
            let [f, l] = spec.cell_offset(k);
            f.abs() < 1.0 && l.abs() < 1.0
        };
        for (k, v) in values.iter().enumerate() {
            let expected = if inside(k) { 0.0 } else { 1.0 };
            assert!(
                (v - expected).abs() < 1e-5,
                "cell {k} at {:?}: {v}",
                spec.cell_offset(k)
            );
        }
        let bad = patch(spec, &grid, [f64::NAN, 1.0, 0.0]);
        assert!(bad.iter().all(|v| *v == 1.0));
    }

    #[test]
    fn patches_turn_with_the_robot() {
        let spec = PatchSpec::standard([0, 1, 2]);
        // A wall along x ≥ 6 m seen facing +x equals a wall along y ≥ 6 m seen facing +y.
        let east = patch(spec, &wall_grid(), [4.5, 5.0, 0.0]);
        let (w, h) = (100, 100);
        let north_cells = (0..w * h).map(|i| i / w < 40).collect();
        let north = Grid::from_cells(w, h, 0.1, north_cells);
        let turned = patch(spec, &north, [5.0, 4.5, std::f64::consts::FRAC_PI_2]);
        for (k, (a, b)) in east.iter().zip(&turned).enumerate() {
            assert!((a - b).abs() < 1e-4, "cell {k}: {a} vs {b}");
        }
        // Blocked where y ≥ 6.5 m, seen facing +x from y = 5 m: the wall is on the left,
        // 1.5 m away, which is columns j ≥ 14 (centres -2 m + 0.25 m · (j + ½) to the left).
        let left_cells = (0..w * h).map(|i| i / w < 35).collect();
        let left = Grid::from_cells(w, h, 0.1, left_cells);
        let values = patch(spec, &left, [5.0, 5.0, 0.0]);
        for (k, v) in values.iter().enumerate() {
            let expected = if k % spec.cells >= 14 { 1.0 } else { 0.0 };
            assert!(
                (v - expected).abs() < 1e-5,
                "cell {k}: {v}, expected {expected}"
            );
        }
    }

    #[test]
    fn observations_are_normalized_state_then_patch() {
        let spec = PatchSpec::standard([0, 1, 2]);
        let grid = wall_grid();
        let norm = Normalization {
            state_mean: vec![5.0, 5.0, 0.0],
            state_std: vec![2.0, 2.0, 1.0],
            action_mean: vec![0.0, 0.0],
            action_std: vec![1.0, 1.0],
        };
        let observer = Observer::new(norm, Some(PatchSampler::new(spec, &grid)));
        assert_eq!(observer.width(), 3 + 256);
        let states = [4.5f32, 5.0, 0.0, 7.0, 3.0, 1.0];
        let obs = observer.observe(&states);
        assert_eq!(obs.len(), 2 * 259);
        assert_eq!(&obs[..3], &[-0.25, 0.0, 0.0]);
        assert_eq!(&obs[259..262], &[1.0, -1.0, 1.0]);
        assert_eq!(&obs[3..259], patch(spec, &grid, [4.5, 5.0, 0.0]).as_slice());
    }
}
