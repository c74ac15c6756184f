//! Signed distance fields of occupancy grids.
//!
//! The field is computed by an exact Euclidean distance transform in time linear in the number
//! of cells: the separable transform of Felzenszwalb and Huttenlocher ("Distance Transforms of
//! Sampled Functions", Theory of Computing 8, 2012). A 1-D transform runs along one axis, and
//! its result feeds a second 1-D transform along the other axis.
//!
//! - The first pass runs down the columns. Its input is 0 on obstacle cells and ∞ elsewhere,
//!   and for such input the 1-D transform is the squared distance to the nearest obstacle in the
//!   column. Two sweeps, top-down and bottom-up, compute it one whole row at a time.
//! - The second pass runs along the rows with the general 1-D transform, the lower envelope of
//!   the parabolas `(q − p)² + f(p)`.
//!
//! Both passes read memory in row order, which makes them several times faster than a column
//! pass that strides through the grid. All arithmetic is on integers (squared distances counted
//! in cells), so the result equals a brute-force search exactly.
//!
//! What a value means:
//!
//! - The grid is treated as if a ring of blocked cells surrounded it, so the edge of the grid is
//!   a wall and every free cell has a finite distance.
//! - At the centre of a free cell the value is `(d − ½)·cell_size`, where `d` is the distance in
//!   cells from this centre to the nearest blocked cell centre. At the centre of a blocked cell
//!   it is `−(d − ½)·cell_size`, with `d` measured to the nearest free cell centre. Values are
//!   in metres: positive outside obstacles, negative inside.
//! - The half cell puts the zero level between a free cell and its blocked neighbour, on the
//!   cell edge. Along the grid axes the value is the exact distance to the obstacle's edge. In
//!   other directions it exceeds the exact distance to the union of blocked squares by at most
//!   (√2 − 1)/2 ≈ 0.21 cell, so keep that margin where clearance matters.
//! - Between centres, [`DistanceField::sample`] interpolates bilinearly.

use super::grid::Grid;

/// Squared distance of a cell with no feature cell on its line, or in the whole grid.
const NO_FEATURE: i64 = i64::MAX;

/// A signed distance field over an occupancy grid, in metres; see the module documentation for
/// what the values mean.
#[derive(Clone, Debug)]
pub struct DistanceField {
    width: usize,
    height: usize,
    cell_size: f64,
    origin: [f64; 2],
    /// Values at the centres of the grid cells and of the ring of blocked cells around them:
    /// `(width + 2) × (height + 2)`, row-major, row 0 is the ring row above the grid.
    values: Vec<f64>,
    /// Whether the grid has no free cell, so every value is −∞.
    all_blocked: bool,
}

impl DistanceField {
    /// Computes the signed distance field of `grid`.
    pub fn new(grid: &Grid) -> Self {
        let _span = tracing::debug_span!(
            "distance_field",
            width = grid.width(),
            height = grid.height()
        )
        .entered();

        let padded_width = grid.width() + 2;
        let padded_height = grid.height() + 2;
        let mut blocked = vec![true; padded_width * padded_height];
        for row in 0..grid.height() {
            let source = &grid.cells()[row * grid.width()..(row + 1) * grid.width()];
            let start = (row + 1) * padded_width + 1;
            blocked[start..start + grid.width()].copy_from_slice(source);
        }
        let column_to_obstacle = column_distances(padded_width, padded_height, &blocked, true);
        let column_to_free = column_distances(padded_width, padded_height, &blocked, false);

        // The row pass runs one row at a time and turns each row into signed values at once, so
        // no full-size array of squared distances is ever allocated.
        let cell_size = grid.cell_size();
        let mut values = Vec::with_capacity(blocked.len());
        let mut to_obstacle_rows = RowTransform::new(padded_width);
        let mut to_free_rows = RowTransform::new(padded_width);
        for row in 0..padded_height {
            let range = row * padded_width..(row + 1) * padded_width;
            let to_obstacle = to_obstacle_rows.run(&column_to_obstacle[range.clone()]);
            let to_free = to_free_rows.run(&column_to_free[range.clone()]);
            let row_values = blocked[range]
                .iter()
                .zip(to_obstacle.iter().zip(to_free))
                .map(|(&is_blocked, (&outside, &inside))| {
                    signed_value(is_blocked, outside, inside, cell_size)
                });
            values.extend(row_values);
        }

        DistanceField {
            width: grid.width(),
            height: grid.height(),
            cell_size,
            origin: grid.origin(),
            values,
            all_blocked: !blocked.contains(&false),
        }
    }

    /// Number of columns of the grid the field was computed from.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Number of rows of the grid the field was computed from.
    pub fn height(&self) -> usize {
        self.height
    }

    /// Side of a cell in metres.
    pub fn cell_size(&self) -> f64 {
        self.cell_size
    }

    /// Signed distance in metres at the centre of cell `(col, row)`; −∞ when the grid has no
    /// free cell.
    ///
    /// # Panics
    ///
    /// Panics if the cell lies outside the grid.
    pub fn value(&self, col: usize, row: usize) -> f64 {
        assert!(
            col < self.width && row < self.height,
            "cell ({col}, {row}) is outside the {}×{} grid",
            self.width,
            self.height
        );
        self.values[(row + 1) * (self.width + 2) + col + 1]
    }

    /// Signed distance in metres at a world point (x, y in metres, y up).
    ///
    /// Inside the grid rectangle the value is interpolated bilinearly between cell centres,
    /// using the surrounding ring of blocked cells near the edge, so it falls to zero or below
    /// on the grid boundary. Outside the rectangle, which counts as blocked, the value is the
    /// value at the nearest boundary point minus the distance to that point: it is negative and
    /// keeps falling with distance, and it is continuous across the boundary. The value is −∞
    /// everywhere when the grid has no free cell, and NaN for a NaN coordinate.
    pub fn sample(&self, point: [f64; 2]) -> f64 {
        if point[0].is_nan() || point[1].is_nan() {
            return f64::NAN;
        }
        if self.all_blocked {
            return f64::NEG_INFINITY;
        }

        let right = self.origin[0] + self.width as f64 * self.cell_size;
        let top = self.origin[1] + self.height as f64 * self.cell_size;
        let x = point[0].clamp(self.origin[0], right);
        let y = point[1].clamp(self.origin[1], top);
        let outside_by = (point[0] - x).hypot(point[1] - y);

        // Continuous coordinates in the padded sample array, whose sample (c, r) sits at the
        // centre of grid cell (c − 1, r − 1). Clamped points map to [½, width + ½] and
        // [½, height + ½], so all four neighbours exist.
        let col = (x - self.origin[0]) / self.cell_size + 0.5;
        let row = self.height as f64 + 0.5 - (y - self.origin[1]) / self.cell_size;
        let col0 = (col.floor() as usize).min(self.width);
        let row0 = (row.floor() as usize).min(self.height);
        let tx = col - col0 as f64;
        let ty = row - row0 as f64;

        let stride = self.width + 2;
        let at = |c: usize, r: usize| self.values[r * stride + c];
        let upper = at(col0, row0) * (1.0 - tx) + at(col0 + 1, row0) * tx;
        let lower = at(col0, row0 + 1) * (1.0 - tx) + at(col0 + 1, row0 + 1) * tx;
        let inside = upper * (1.0 - ty) + lower * ty;

        inside - outside_by
    }
}

/// Signed distance in metres of a cell from its squared distances, in cells, to the nearest
/// blocked and the nearest free cell.
fn signed_value(is_blocked: bool, to_obstacle: i64, to_free: i64, cell_size: f64) -> f64 {
    let squared = if is_blocked { to_free } else { to_obstacle };
    if squared == NO_FEATURE {
        return if is_blocked {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        };
    }
    let magnitude = ((squared as f64).sqrt() - 0.5) * cell_size;
    if is_blocked { -magnitude } else { magnitude }
}

/// Computes, for each cell of a row-major `width × height` array, the distance in cells to the
/// nearest cell of its column whose `blocked` value equals `target`. The distance is
/// `u32::MAX` when the column has no such cell.
///
/// This is the first, column pass of the transform: two sweeps, top-down then bottom-up, each
/// updating one whole row from its neighbour.
fn column_distances(width: usize, height: usize, blocked: &[bool], target: bool) -> Vec<u32> {
    let mut distances: Vec<u32> = blocked
        .iter()
        .map(|&cell| if cell == target { 0 } else { u32::MAX })
        .collect();
    for row in 1..height {
        let (above, rest) = distances.split_at_mut(row * width);
        let above = &above[(row - 1) * width..];
        for (cell, &up) in rest[..width].iter_mut().zip(above) {
            *cell = (*cell).min(up.saturating_add(1));
        }
    }
    for row in (0..height.saturating_sub(1)).rev() {
        let (upper, below) = distances.split_at_mut((row + 1) * width);
        let cells = &mut upper[row * width..];
        for (cell, &down) in cells.iter_mut().zip(&below[..width]) {
            *cell = (*cell).min(down.saturating_add(1));
        }
    }
    distances
}

/// The second, row pass of the transform, with buffers reused from row to row.
struct RowTransform {
    squared: Vec<i64>,
    output: Vec<i64>,
    envelope: Envelope,
}

impl RowTransform {
    fn new(width: usize) -> Self {
        RowTransform {
            squared: vec![0; width],
            output: vec![0; width],
            envelope: Envelope::default(),
        }
    }

    /// Computes the squared Euclidean distance, in cells, from each cell of a row to the nearest
    /// target cell anywhere in the grid, from the row's column distances; [`NO_FEATURE`] when
    /// the grid has no target cell.
    fn run(&mut self, column_distances: &[u32]) -> &[i64] {
        for (value, &distance) in self.squared.iter_mut().zip(column_distances) {
            *value = if distance == u32::MAX {
                NO_FEATURE
            } else {
                i64::from(distance) * i64::from(distance)
            };
        }
        transform_line(&self.squared, &mut self.output, &mut self.envelope);
        &self.output
    }
}

/// Scratch space of [`transform_line`], kept between lines to avoid allocations.
#[derive(Default)]
struct Envelope {
    /// Positions `p` of the parabolas in the lower envelope, left to right.
    roots: Vec<usize>,
    /// `starts[k]` is where parabola `k` becomes the lowest, as a fraction
    /// `(numerator, denominator)` with a positive denominator; `starts[0]` is unused.
    starts: Vec<(i64, i64)>,
}

/// Computes the 1-D transform `out[q] = min over p of (q − p)² + f[p]`, skipping entries equal
/// to [`NO_FEATURE`].
fn transform_line(f: &[i64], out: &mut [i64], envelope: &mut Envelope) {
    let Envelope { roots, starts } = envelope;
    roots.clear();
    starts.clear();

    for q in 0..f.len() {
        if f[q] == NO_FEATURE {
            continue;
        }
        // The new parabola hides the top one when it crosses it no later than where the top
        // one started to be lowest.
        let mut start = (0, 1);
        while let Some(&top) = roots.last() {
            start = intersection(f, top, q);
            let hides_top = roots.len() >= 2 && not_after(start, starts[starts.len() - 1]);
            if !hides_top {
                break;
            }
            roots.pop();
            starts.pop();
        }
        roots.push(q);
        starts.push(start);
    }

    if roots.is_empty() {
        out.fill(NO_FEATURE);
        return;
    }

    let mut k = 0;
    for (q, value) in out.iter_mut().enumerate() {
        // Numerators are at most width² + height² and q · denominator at most 2 · width², so
        // both fit in i64 for grid sides below 2^31.
        while k + 1 < roots.len() && starts[k + 1].0 < q as i64 * starts[k + 1].1 {
            k += 1;
        }
        let p = roots[k];
        let offset = q as i64 - p as i64;
        *value = offset * offset + f[p];
    }
}

/// Returns the abscissa where the parabolas rooted at `i < j` intersect, as the fraction
/// `(numerator, denominator)` with a positive denominator.
fn intersection(f: &[i64], i: usize, j: usize) -> (i64, i64) {
    let (i_, j_) = (i as i64, j as i64);
    ((f[j] + j_ * j_) - (f[i] + i_ * i_), 2 * (j_ - i_))
}

/// Tests whether fraction `a` is at most fraction `b`; both have positive denominators.
fn not_after(a: (i64, i64), b: (i64, i64)) -> bool {
    // Cross-multiplied in 128 bits, because numerator times denominator grows with the cube of
    // the grid side.
    i128::from(a.0) * i128::from(b.1) <= i128::from(b.0) * i128::from(a.1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Computes the field by its definition: for each cell, an exhaustive search over the grid
    /// and its blocked ring for the nearest cell of the other kind.
    fn brute_force(grid: &Grid) -> Vec<f64> {
        let (width, height) = (grid.width() as i64, grid.height() as i64);
        let blocked = |col: i64, row: i64| {
            col < 0 || row < 0 || col >= width || row >= height || {
                grid.is_blocked(col as usize, row as usize)
            }
        };
        let mut values = Vec::new();
        for row in 0..height {
            for col in 0..width {
                let here = blocked(col, row);
                let mut best = NO_FEATURE;
                for other_row in -1..=height {
                    for other_col in -1..=width {
                        if blocked(other_col, other_row) != here {
                            let (dx, dy) = (other_col - col, other_row - row);
                            best = best.min(dx * dx + dy * dy);
                        }
                    }
                }
                let (to_obstacle, to_free) = if here { (0, best) } else { (best, 0) };
                values.push(signed_value(here, to_obstacle, to_free, grid.cell_size()));
            }
        }
        values
    }

    fn field_values(field: &DistanceField) -> Vec<f64> {
        let mut values = Vec::new();
        for row in 0..field.height() {
            for col in 0..field.width() {
                values.push(field.value(col, row));
            }
        }
        values
    }

    fn random_grid() -> impl Strategy<Value = Grid> {
        (1usize..14, 1usize..14, 0u32..=100).prop_flat_map(|(width, height, percent)| {
            let cell = proptest::bool::weighted(f64::from(percent) / 100.0);
            proptest::collection::vec(cell, width * height)
                .prop_map(move |cells| Grid::from_cells(width, height, 0.25, cells))
        })
    }

    proptest! {
        #[test]
        fn field_matches_brute_force(grid in random_grid()) {
            let field = DistanceField::new(&grid);
            prop_assert_eq!(field_values(&field), brute_force(&grid));
        }

        #[test]
        fn sample_at_cell_centre_is_cell_value(grid in random_grid()) {
            let field = DistanceField::new(&grid);
            for row in 0..grid.height() {
                for col in 0..grid.width() {
                    let sampled = field.sample(grid.cell_center(col, row));
                    let value = field.value(col, row);
                    prop_assert!(
                        sampled == value || (sampled - value).abs() <= 1e-12,
                        "cell ({}, {}): sampled {} but the cell value is {}",
                        col, row, sampled, value
                    );
                }
            }
        }
    }

    #[test]
    fn single_obstacle_gives_distances_along_axes() {
        let mut grid = Grid::free(9, 9, 0.1);
        grid.set_blocked(4, 4, true);
        let field = DistanceField::new(&grid);

        assert_eq!(field.value(4, 4), -0.05);
        assert!(
            (field.value(6, 4) - 0.15).abs() < 1e-12,
            "{}",
            field.value(6, 4)
        );
        assert!(
            (field.value(4, 2) - 0.15).abs() < 1e-12,
            "{}",
            field.value(4, 2)
        );
        // Cell (4, 0) is 4 cells from the obstacle but 1 from the ring above the grid.
        assert!(
            (field.value(4, 0) - 0.05).abs() < 1e-12,
            "{}",
            field.value(4, 0)
        );
    }

    #[test]
    fn zero_level_lies_on_cell_edges() {
        let mut grid = Grid::free(6, 1, 1.0);
        grid.set_blocked(3, 0, true);
        let field = DistanceField::new(&grid);

        // The edge between free cell 2 and blocked cell 3 is at x = 3.
        assert!(
            field.sample([3.0, 0.5]).abs() < 1e-12,
            "{}",
            field.sample([3.0, 0.5])
        );
        assert!(field.sample([2.9, 0.5]) > 0.0);
        assert!(field.sample([3.1, 0.5]) < 0.0);
    }

    #[test]
    fn sample_outside_is_negative_and_continuous() {
        let grid = Grid::free(10, 10, 1.0);
        let field = DistanceField::new(&grid);

        let on_edge = field.sample([5.5, 0.0]);
        let just_outside = field.sample([5.5, -1e-9]);
        assert!(on_edge.abs() < 1e-12, "{on_edge}");
        assert!(
            (just_outside - on_edge).abs() < 1e-6,
            "{just_outside} vs {on_edge}"
        );
        assert!(field.sample([5.5, -2.0]) < field.sample([5.5, -1.0]));
        assert!(field.sample([-3.0, -4.0]) <= -5.0);
        assert_eq!(field.sample([f64::INFINITY, 1.0]), f64::NEG_INFINITY);
        assert!(field.sample([f64::NAN, 1.0]).is_nan());
    }

    #[test]
    fn free_grid_measures_to_its_edge() {
        let grid = Grid::free(10, 4, 0.5).with_origin([-2.0, 1.0]);
        let field = DistanceField::new(&grid);

        // Cell (4, 1) is 2 cell centres from the ring above the grid and 3 from the ring below,
        // so 1.5 cells from the top edge.
        assert!(
            (field.value(4, 1) - 0.75).abs() < 1e-12,
            "{}",
            field.value(4, 1)
        );
        // Halfway between the top and bottom edges the four nearest centres all hold 0.75 m, so
        // the interpolated value is 0.75 m, below the true 1 m on this ridge.
        assert!(
            (field.sample([0.5, 2.0]) - 0.75).abs() < 1e-12,
            "{}",
            field.sample([0.5, 2.0])
        );
    }

    #[test]
    fn fully_blocked_grid_is_negative_infinity() {
        let grid = Grid::from_cells(3, 2, 1.0, vec![true; 6]);
        let field = DistanceField::new(&grid);

        assert_eq!(field.value(1, 1), f64::NEG_INFINITY);
        assert_eq!(field.sample([1.5, 1.0]), f64::NEG_INFINITY);
    }

    #[test]
    fn empty_grid_has_no_values() {
        let grid = Grid::free(0, 0, 1.0);
        let field = DistanceField::new(&grid);

        assert_eq!(field.sample([0.0, 0.0]), f64::NEG_INFINITY);
    }
}
