//! Global navigation over a map's distance field: a grid planner whose route feeds the local
//! model-predictive controller a target it can reach within its horizon.
//!
//! The closed loop samples action sequences over a few seconds. A reach energy that pulls
//! straight at a site behind a shelf drives the robot into the shelf and keeps it there. The remedy
//! of mobile-robot practice is a global planner: shortest paths over the occupancy grid with
//! obstacles inflated by the robot's radius plus its required clearance, from which the
//! local controller takes a nearby point along the path as its target.
//!
//! - [`NavMap`] is a planning grid laid over the same signed distance field the energy's
//!   `clearance` reads ([`DistanceGrid`]), so planner and energy agree on what is free: a cell
//!   is free when the field at its centre is at least the required clearance. Cells are a
//!   quarter of that clearance wide, so a corridor the robot fits through is not lost to
//!   rounding, but never finer than the field's own cells.
//! - [`NavMap::cost_to_go`] runs Dijkstra's algorithm from the goal over 8-connected cells
//!   (a diagonal step only where both cells beside it are free, so no path cuts a corner). A
//!   step costs its length, times a penalty that grows as the cell gets closer to the
//!   obstacles than [`COMFORT_BAND`] beyond the required clearance, so routes keep to the
//!   middle of aisles where there is room. The result is a geodesic cost-to-go field,
//!   computed once per goal and map and read from wherever the robot is.
//! - [`CostToGo::path_from`] follows the field downhill from a position to the goal, and
//!   [`CostToGo::lookahead`] picks the farthest point of that path, within a distance, that
//!   the robot sees along a straight line clear of the inflated obstacles: the target for the
//!   local controller, which is the goal itself once the goal is in sight and near.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use basin_compiler::energy::DistanceGrid;

/// Distance beyond the required clearance over which routes are pushed away from obstacles,
/// metres.
pub const COMFORT_BAND: f64 = 0.5;
/// Extra cost per metre of a step taken right at the required clearance, relative to a step
/// in open space.
const PROXIMITY_PENALTY: f64 = 2.0;
/// Finest planning cell, metres; finer fields are sampled at this spacing.
const MIN_CELL: f64 = 0.05;

/// Error raised when no route can be planned.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum NavError {
    #[error(
        "site `{site}` at ({x:.2}, {y:.2}) m cannot be reached: it is {clearance:.2} m from the nearest obstacle, \
         and the robot needs {required:.2} m (its radius plus the required clearance); try moving the site into open floor"
    )]
    GoalBlocked { site: String, x: f64, y: f64, clearance: f64, required: f64 },
    #[error(
        "site `{site}` at ({x:.2}, {y:.2}) m cannot be reached from ({from_x:.2}, {from_y:.2}) m: every way there passes \
         closer than {required:.2} m to an obstacle; try a smaller robot or clearance, or move the site"
    )]
    Unreachable { site: String, x: f64, y: f64, from_x: f64, from_y: f64, required: f64 },
    #[error("site `{site}` at ({x}, {y}) m lies outside the map")]
    OutsideMap { site: String, x: f64, y: f64 },
}

/// A planning grid over a distance field; see the module documentation.
#[derive(Clone, Debug)]
pub struct NavMap {
    width: usize,
    height: usize,
    cell: f64,
    /// World position of the centre of cell (0, 0), the bottom-left one; rows grow with y.
    origin: [f64; 2],
    /// Field value at each cell centre, metres, row-major from the bottom row.
    clearance: Vec<f64>,
    /// Radius plus required clearance, metres.
    required: f64,
    /// Distance beyond `required` over which steps cost more, metres.
    comfort: f64,
}

impl NavMap {
    /// Lays a planning grid over `field` for a robot that must keep `required` metres (its
    /// radius plus clearance) between its centre and every obstacle.
    pub fn new(field: &DistanceGrid, required: f64) -> NavMap {
        let required = required.max(0.0);
        let cell = (required / 4.0).max(field.cell).max(MIN_CELL);
        // The field's centres span (width − 1)·cell; cover that span and half a field cell
        // beyond it on each side.
        let span_x = field.width as f64 * field.cell;
        let span_y = field.height as f64 * field.cell;
        let width = (span_x / cell).floor().max(1.0) as usize;
        let height = (span_y / cell).floor().max(1.0) as usize;
        let left = field.origin.0 - field.cell / 2.0;
        let bottom = field.origin.1 - field.cell / 2.0;
        let origin = [left + cell / 2.0, bottom + cell / 2.0];
        let mut clearance = Vec::with_capacity(width * height);
        for row in 0..height {
            for col in 0..width {
                let [x, y] = [origin[0] + col as f64 * cell, origin[1] + row as f64 * cell];
                clearance.push(field.sample(x, y).value);
            }
        }
        NavMap { width, height, cell, origin, clearance, required, comfort: COMFORT_BAND }
    }

    /// Replaces the comfort band ([`COMFORT_BAND`]); 0 plans plain shortest paths.
    pub fn with_comfort_band(mut self, band: f64) -> NavMap {
        self.comfort = band.max(0.0);
        self
    }

    /// Side of a planning cell, metres.
    pub fn cell_size(&self) -> f64 {
        self.cell
    }

    /// Returns the robot's radius plus its required clearance, in metres.
    pub fn required(&self) -> f64 {
        self.required
    }

    fn index(&self, col: usize, row: usize) -> usize {
        row * self.width + col
    }

    fn center(&self, index: usize) -> [f64; 2] {
        let (col, row) = (index % self.width, index / self.width);
        [self.origin[0] + col as f64 * self.cell, self.origin[1] + row as f64 * self.cell]
    }

    /// Returns the cell whose centre is nearest to `point`, or `None` outside the grid.
    fn cell_of(&self, point: [f64; 2]) -> Option<usize> {
        let col = ((point[0] - self.origin[0]) / self.cell).round();
        let row = ((point[1] - self.origin[1]) / self.cell).round();
        let inside = col >= 0.0 && row >= 0.0 && (col as usize) < self.width && (row as usize) < self.height;
        inside.then(|| self.index(col as usize, row as usize))
    }

    fn is_free(&self, index: usize) -> bool {
        self.clearance[index] >= self.required
    }

    /// Cost multiplier of moving through a cell: 1 in open space, up to
    /// `1 + PROXIMITY_PENALTY` at the required clearance; see [`NavMap::with_comfort_band`].
    fn step_factor(&self, index: usize) -> f64 {
        if self.comfort <= 0.0 {
            return 1.0;
        }
        let closeness = ((self.required + self.comfort - self.clearance[index]) / self.comfort).clamp(0.0, 1.0);
        1.0 + PROXIMITY_PENALTY * closeness
    }

    /// Neighbours of a cell with the length of the step, diagonals only where both cells
    /// beside the diagonal are free.
    fn neighbours(&self, index: usize, out: &mut Vec<(usize, f64)>) {
        out.clear();
        let (col, row) = ((index % self.width) as isize, (index / self.width) as isize);
        let free = |c: isize, r: isize| {
            c >= 0 && r >= 0 && (c as usize) < self.width && (r as usize) < self.height && self.is_free(self.index(c as usize, r as usize))
        };
        for (dc, dr) in [(1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (1, -1), (-1, 1), (-1, -1)] {
            let (c, r) = (col + dc, row + dr);
            if !free(c, r) {
                continue;
            }
            let diagonal = dc != 0 && dr != 0;
            if diagonal && !(free(col + dc, row) && free(col, row + dr)) {
                continue;
            }
            let length = if diagonal { std::f64::consts::SQRT_2 } else { 1.0 } * self.cell;
            out.push((self.index(c as usize, r as usize), length));
        }
    }

    /// Computes the geodesic cost-to-go field towards `goal`; errors name the goal `site`.
    ///
    /// # Errors
    ///
    /// Fails when the goal lies outside the map or closer to an obstacle than the required
    /// clearance.
    pub fn cost_to_go(&self, site: &str, goal: [f64; 2]) -> Result<CostToGo, NavError> {
        let goal_cell = self.cell_of(goal).ok_or_else(|| NavError::OutsideMap { site: site.to_string(), x: goal[0], y: goal[1] })?;
        if !self.is_free(goal_cell) {
            return Err(NavError::GoalBlocked {
                site: site.to_string(),
                x: goal[0],
                y: goal[1],
                clearance: self.clearance[goal_cell],
                required: self.required,
            });
        }
        let mut cost = vec![f64::INFINITY; self.clearance.len()];
        let mut heap = BinaryHeap::new();
        cost[goal_cell] = 0.0;
        heap.push(Entry { cost: 0.0, index: goal_cell });
        let mut neighbours = Vec::with_capacity(8);
        while let Some(Entry { cost: c, index }) = heap.pop() {
            if c > cost[index] {
                continue;
            }
            self.neighbours(index, &mut neighbours);
            for &(next, length) in &neighbours {
                let step = length * 0.5 * (self.step_factor(index) + self.step_factor(next));
                if c + step < cost[next] {
                    cost[next] = c + step;
                    heap.push(Entry { cost: c + step, index: next });
                }
            }
        }
        Ok(CostToGo { site: site.to_string(), goal, goal_cell, cost })
    }

    /// Checks whether the straight segment from `a` to `b` keeps the required clearance.
    /// From a start that is already closer than that, the segment must not get any closer.
    pub fn line_is_clear(&self, a: [f64; 2], b: [f64; 2]) -> bool {
        let length = (b[0] - a[0]).hypot(b[1] - a[1]);
        let samples = (length / (self.cell / 2.0)).ceil().max(1.0) as usize;
        let start = self.sample(a);
        (0..=samples).all(|i| {
            let t = i as f64 / samples as f64;
            let value = self.sample([a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])]);
            value >= self.required || value >= start
        })
    }

    /// Samples the field at the nearest cell centre, returning −∞ outside the grid.
    fn sample(&self, point: [f64; 2]) -> f64 {
        self.cell_of(point).map_or(f64::NEG_INFINITY, |index| self.clearance[index])
    }
}

/// A heap entry of Dijkstra's algorithm, smallest cost first.
#[derive(Clone, Copy, PartialEq)]
struct Entry {
    cost: f64,
    index: usize,
}

impl Eq for Entry {}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        other.cost.total_cmp(&self.cost).then_with(|| other.index.cmp(&self.index))
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Geodesic cost-to-go towards one goal over a [`NavMap`].
#[derive(Clone, Debug)]
pub struct CostToGo {
    site: String,
    goal: [f64; 2],
    goal_cell: usize,
    /// Weighted path length to the goal from each cell's centre; ∞ where none exists.
    cost: Vec<f64>,
}

impl CostToGo {
    pub fn site(&self) -> &str {
        &self.site
    }

    pub fn goal(&self) -> [f64; 2] {
        self.goal
    }

    /// Builds the route from `from` to the goal: `from`, then cell centres downhill, then the goal.
    /// A start closer to an obstacle than the required clearance first moves to the nearest
    /// cell from which the goal can be reached.
    ///
    /// # Errors
    ///
    /// Fails when no cell near `from` reaches the goal.
    pub fn path_from(&self, map: &NavMap, from: [f64; 2]) -> Result<Vec<[f64; 2]>, NavError> {
        let unreachable = || NavError::Unreachable {
            site: self.site.clone(),
            x: self.goal[0],
            y: self.goal[1],
            from_x: from[0],
            from_y: from[1],
            required: map.required,
        };
        let mut index = self.entry_cell(map, from).ok_or_else(unreachable)?;
        let mut path = vec![from, map.center(index)];
        let mut neighbours = Vec::with_capacity(8);
        while index != self.goal_cell {
            map.neighbours(index, &mut neighbours);
            let next = neighbours
                .iter()
                .map(|&(n, _)| n)
                .filter(|&n| self.cost[n] < self.cost[index])
                .min_by(|&a, &b| self.cost[a].total_cmp(&self.cost[b]));
            let Some(next) = next else { return Err(unreachable()) };
            index = next;
            path.push(map.center(index));
        }
        path.push(self.goal);
        Ok(path)
    }

    /// Weighted distance to the goal from `from`, or `None` when it cannot reach it.
    pub fn distance_from(&self, map: &NavMap, from: [f64; 2]) -> Option<f64> {
        self.entry_cell(map, from).map(|index| self.cost[index])
    }

    /// Finds the cell a route from `from` starts at. This is its own cell when that reaches the
    /// goal, or else the nearest cell that does within twice the required clearance.
    fn entry_cell(&self, map: &NavMap, from: [f64; 2]) -> Option<usize> {
        let own = map.cell_of(from)?;
        if self.cost[own].is_finite() {
            return Some(own);
        }
        let reach = ((2.0 * map.required) / map.cell).ceil() as isize + 1;
        let (col, row) = ((own % map.width) as isize, (own / map.width) as isize);
        let mut best: Option<(f64, usize)> = None;
        for dr in -reach..=reach {
            for dc in -reach..=reach {
                let (c, r) = (col + dc, row + dr);
                if c < 0 || r < 0 || c as usize >= map.width || r as usize >= map.height {
                    continue;
                }
                let index = map.index(c as usize, r as usize);
                if !self.cost[index].is_finite() {
                    continue;
                }
                let distance = ((dc * dc + dr * dr) as f64).sqrt();
                if best.is_none_or(|(d, _)| distance < d) {
                    best = Some((distance, index));
                }
            }
        }
        best.map(|(_, index)| index)
    }

    /// Picks the target for a local controller at `from`. The target is the farthest point of
    /// the route within `distance` metres along it that is visible along a clear straight
    /// line. When the goal itself is visible and within `distance`, the target is the goal.
    ///
    /// # Errors
    ///
    /// Fails when no route leads from `from` to the goal.
    pub fn lookahead(&self, map: &NavMap, from: [f64; 2], distance: f64) -> Result<[f64; 2], NavError> {
        let path = self.path_from(map, from)?;
        let mut along = 0.0;
        let mut best = path[1.min(path.len() - 1)];
        for pair in path.windows(2) {
            along += (pair[1][0] - pair[0][0]).hypot(pair[1][1] - pair[0][1]);
            if along > distance {
                break;
            }
            if map.line_is_clear(from, pair[1]) {
                best = pair[1];
            }
        }
        Ok(best)
    }
}

/// Length of a polyline, metres.
pub fn path_length(path: &[[f64; 2]]) -> f64 {
    path.windows(2).map(|pair| (pair[1][0] - pair[0][0]).hypot(pair[1][1] - pair[0][1])).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a distance grid of `rows` ('#' blocked) with 1 m cells. Distances to the nearest
    /// blocked cell edge are computed by brute force, so tests do not depend on the transform.
    fn field(rows: &[&str]) -> DistanceGrid {
        let height = rows.len();
        let width = rows[0].len();
        let blocked: Vec<(f64, f64)> = rows
            .iter()
            .enumerate()
            .flat_map(|(r, line)| line.chars().enumerate().filter(|&(_, ch)| ch == '#').map(move |(c, _)| (c as f64, (height - 1 - r) as f64)))
            .collect();
        let mut values = Vec::new();
        for row in 0..height {
            for col in 0..width {
                let (x, y) = (col as f64, row as f64);
                let d = blocked
                    .iter()
                    .map(|&(bx, by)| {
                        let dx = ((x - bx).abs() - 0.5).max(0.0);
                        let dy = ((y - by).abs() - 0.5).max(0.0);
                        dx.hypot(dy)
                    })
                    .fold(f64::INFINITY, f64::min)
                    // The map's edge is a wall half a cell beyond the outer centres.
                    .min(x + 0.5)
                    .min(y + 0.5)
                    .min(width as f64 - 0.5 - x)
                    .min(height as f64 - 0.5 - y);
                values.push(if rows[height - 1 - row].as_bytes()[col] == b'#' { -0.5 } else { d });
            }
        }
        DistanceGrid { width, height, cell: 1.0, origin: (0.0, 0.0), values }
    }

    #[test]
    fn open_room_route_is_the_straight_line() {
        let grid = field(&["..........", "..........", "..........", "..........", ".........."]);
        // No obstacles but the walls; the planning cells are the field's 1 m cells.
        let map = NavMap::new(&grid, 0.2);
        let to_go = map.cost_to_go("dock", [8.0, 2.0]).unwrap();
        let path = to_go.path_from(&map, [1.0, 2.0]).unwrap();
        // Along the middle row every step is straight and far from the walls: 7 m.
        assert!((path_length(&path) - 7.0).abs() < 1e-9, "length {}", path_length(&path));
        assert_eq!(to_go.lookahead(&map, [1.0, 2.0], 3.0).unwrap(), [4.0, 2.0]);
        assert_eq!(to_go.lookahead(&map, [1.0, 2.0], 10.0).unwrap(), [8.0, 2.0]);
    }

    #[test]
    fn route_goes_around_a_wall() {
        // A wall in column 4 from y = 0 up to y = 3 leaves rows 4 and 5 open above it.
        let rows = ["..........", "..........", "....#.....", "....#.....", "....#.....", "....#....."];
        let grid = field(&rows);
        let map = NavMap::new(&grid, 0.25).with_comfort_band(0.0);
        let to_go = map.cost_to_go("drop", [7.0, 0.0]).unwrap();
        let path = to_go.path_from(&map, [1.0, 0.0]).unwrap();
        // By hand: (1, 0) to (3, 4) is two diagonal and two straight steps. The step (3, 3) to
        // (4, 4) would cut the wall's corner, so the route crosses above the wall by (3, 4),
        // (4, 4), (5, 4), then goes down to (7, 0) likewise. The length is 4·√2 + 6 metres.
        let expected = 4.0 * std::f64::consts::SQRT_2 + 6.0;
        assert!((path_length(&path) - expected).abs() < 1e-9, "length {}, expected {expected}: {path:?}", path_length(&path));
        assert!(path.iter().all(|p| grid.sample(p[0], p[1]).value >= 0.25), "{path:?}");
        // Up the left side first: the lookahead from the start is not straight at the goal.
        let target = to_go.lookahead(&map, [1.0, 0.0], 3.0).unwrap();
        assert!(target[1] >= 2.0 && target[0] < 3.5, "target {target:?}");
        // With the comfort band the route is no shorter, and still clear.
        let comfortable = NavMap::new(&grid, 0.25);
        let path = comfortable.cost_to_go("drop", [7.0, 0.0]).unwrap().path_from(&comfortable, [1.0, 0.0]).unwrap();
        assert!(path_length(&path) >= expected - 1e-9, "{path:?}");
    }

    #[test]
    fn unreachable_goal_names_the_site() {
        let rows = ["....#.....", "....#.....", "....#.....", "....#....."];
        let map = NavMap::new(&field(&rows), 0.3);
        let to_go = map.cost_to_go("pick", [8.0, 1.0]).unwrap();
        let error = to_go.path_from(&map, [1.0, 1.0]).unwrap_err();
        assert!(matches!(error, NavError::Unreachable { .. }));
        let message = error.to_string();
        assert!(message.contains("site `pick` at (8.00, 1.00) m cannot be reached from (1.00, 1.00) m"), "{message}");
        assert!(message.contains("try"), "{message}");
    }

    #[test]
    fn goal_next_to_a_wall_is_blocked() {
        let rows = ["....#.....", ".........."];
        let map = NavMap::new(&field(&rows), 0.6);
        let error = map.cost_to_go("shelf", [4.0, 0.0]).unwrap_err();
        assert!(error.to_string().contains("site `shelf`"), "{error}");
        assert!(matches!(error, NavError::GoalBlocked { .. }), "{error:?}");
    }
}
