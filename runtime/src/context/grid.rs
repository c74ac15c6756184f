//! Occupancy grids: the common form of floor-plan images and grid maps.
//!
//! Axis convention, shared by every loader that produces a grid:
//!
//! - Cells are stored row-major. Column `col` counts from the left, row `row` counts from the
//!   top, both from 0, so row 0 is the first line of a `.map` file and the top row of an image.
//! - World coordinates are in metres with x to the right and y up. The grid's `origin` is the
//!   world position of the lower-left corner of the lower-left cell (column 0, row
//!   `height - 1`), so the grid covers `origin.x ..= origin.x + width·cell_size` and
//!   `origin.y ..= origin.y + height·cell_size`.
//! - The centre of cell `(col, row)` is therefore at
//!   `x = origin.x + (col + ½)·cell_size`, `y = origin.y + (height − row − ½)·cell_size`.
//!
//! This is the convention of ROS map images (row 0 at the top, origin at the lower-left
//! corner), so floor plans exported from such tools line up without flipping.

/// An occupancy grid: which cells of a rectangle of square cells are blocked.
#[derive(Clone, Debug, PartialEq)]
pub struct Grid {
    width: usize,
    height: usize,
    cell_size: f64,
    origin: [f64; 2],
    blocked: Vec<bool>,
}

impl Grid {
    /// Creates a grid of `width × height` free cells of side `cell_size` metres, with its
    /// origin at (0, 0).
    ///
    /// # Panics
    ///
    /// Panics if `cell_size` is not a positive finite number.
    pub fn free(width: usize, height: usize, cell_size: f64) -> Self {
        Self::from_cells(width, height, cell_size, vec![false; width * height])
    }

    /// Creates a grid from row-major cells (`true` is blocked, row 0 at the top), with its
    /// origin at (0, 0).
    ///
    /// # Panics
    ///
    /// Panics if `blocked.len() != width * height` or if `cell_size` is not a positive finite
    /// number.
    pub fn from_cells(width: usize, height: usize, cell_size: f64, blocked: Vec<bool>) -> Self {
        assert!(
            cell_size.is_finite() && cell_size > 0.0,
            "cell size must be a positive finite number of metres, got {cell_size}"
        );
        assert_eq!(
            blocked.len(),
            width * height,
            "expected {width}×{height} cells, got {}",
            blocked.len()
        );
        Grid {
            width,
            height,
            cell_size,
            origin: [0.0, 0.0],
            blocked,
        }
    }

    /// Moves the grid so that its lower-left corner lies at `origin` (metres).
    pub fn with_origin(mut self, origin: [f64; 2]) -> Self {
        self.origin = origin;
        self
    }

    /// Number of columns.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Number of rows.
    pub fn height(&self) -> usize {
        self.height
    }

    /// Side of a cell in metres.
    pub fn cell_size(&self) -> f64 {
        self.cell_size
    }

    /// World position of the grid's lower-left corner in metres.
    pub fn origin(&self) -> [f64; 2] {
        self.origin
    }

    /// The cells in row-major order, row 0 at the top; `true` is blocked.
    pub fn cells(&self) -> &[bool] {
        &self.blocked
    }

    /// Whether cell `(col, row)` is blocked. Cells outside the grid count as blocked.
    pub fn is_blocked(&self, col: usize, row: usize) -> bool {
        if col >= self.width || row >= self.height {
            return true;
        }
        self.blocked[row * self.width + col]
    }

    /// Marks cell `(col, row)` as blocked or free.
    ///
    /// # Panics
    ///
    /// Panics if the cell lies outside the grid.
    pub fn set_blocked(&mut self, col: usize, row: usize, blocked: bool) {
        assert!(
            col < self.width && row < self.height,
            "cell ({col}, {row}) is outside the {}×{} grid",
            self.width,
            self.height
        );
        self.blocked[row * self.width + col] = blocked;
    }

    /// Splits every cell into `factor × factor` cells of the same state, covering the same
    /// rectangle; a factor of 0 or 1 returns a copy.
    pub fn refined(&self, factor: usize) -> Grid {
        if factor <= 1 {
            return self.clone();
        }
        let (width, height) = (self.width * factor, self.height * factor);
        let mut blocked = Vec::with_capacity(width * height);
        for row in 0..height {
            blocked.extend(
                (0..width).map(|col| self.blocked[(row / factor) * self.width + col / factor]),
            );
        }
        Grid {
            width,
            height,
            cell_size: self.cell_size / factor as f64,
            origin: self.origin,
            blocked,
        }
    }

    /// Number of blocked cells.
    pub fn blocked_count(&self) -> usize {
        self.blocked.iter().filter(|&&blocked| blocked).count()
    }

    /// World position in metres of the centre of cell `(col, row)`.
    pub fn cell_center(&self, col: usize, row: usize) -> [f64; 2] {
        [
            self.origin[0] + (col as f64 + 0.5) * self.cell_size,
            self.origin[1] + ((self.height - row) as f64 - 0.5) * self.cell_size,
        ]
    }

    /// The cell `(col, row)` that contains the world point `point`, or `None` outside the grid.
    /// A point on the edge between two cells belongs to the cell to its right or below it, so
    /// the grid's left and top edges are inside and its right and bottom edges are outside.
    pub fn cell_at(&self, point: [f64; 2]) -> Option<(usize, usize)> {
        let fx = (point[0] - self.origin[0]) / self.cell_size;
        let fy_from_top = self.height as f64 - (point[1] - self.origin[1]) / self.cell_size;
        if !(fx >= 0.0 && fy_from_top >= 0.0) {
            return None;
        }
        let (col, row) = (fx.floor() as usize, fy_from_top.floor() as usize);
        (col < self.width && row < self.height).then_some((col, row))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cell_centres_put_row_zero_at_the_top() {
        let grid = Grid::free(4, 3, 0.5).with_origin([10.0, 20.0]);

        assert_eq!(grid.cell_center(0, 2), [10.25, 20.25]);
        assert_eq!(grid.cell_center(0, 0), [10.25, 21.25]);
        assert_eq!(grid.cell_center(3, 0), [11.75, 21.25]);
    }

    #[test]
    fn cell_at_inverts_cell_center() {
        let grid = Grid::free(5, 7, 0.2).with_origin([-1.0, 3.0]);
        for row in 0..7 {
            for col in 0..5 {
                assert_eq!(grid.cell_at(grid.cell_center(col, row)), Some((col, row)));
            }
        }
    }

    #[test]
    fn cell_at_is_none_outside() {
        let grid = Grid::free(2, 2, 1.0);

        assert_eq!(grid.cell_at([-0.1, 0.5]), None);
        assert_eq!(grid.cell_at([0.5, 2.1]), None);
        assert_eq!(grid.cell_at([2.0, 0.5]), None);
        assert_eq!(grid.cell_at([0.5, 0.0]), None);
        assert_eq!(grid.cell_at([f64::NAN, 0.5]), None);
    }

    #[test]
    fn cell_at_edges_go_right_and_down() {
        let grid = Grid::free(2, 2, 1.0);

        assert_eq!(grid.cell_at([0.0, 2.0]), Some((0, 0)));
        assert_eq!(grid.cell_at([1.0, 1.0]), Some((1, 1)));
    }

    #[test]
    fn refined_grid_covers_the_same_cells() {
        let mut grid = Grid::free(3, 2, 2.0).with_origin([1.0, -1.0]);
        grid.set_blocked(2, 0, true);
        let fine = grid.refined(4);

        assert_eq!(
            (fine.width(), fine.height(), fine.cell_size(), fine.origin()),
            (12, 8, 0.5, [1.0, -1.0])
        );
        for row in 0..8 {
            for col in 0..12 {
                let centre = fine.cell_center(col, row);
                let (c, r) = grid.cell_at(centre).unwrap();
                assert_eq!(
                    fine.is_blocked(col, row),
                    grid.is_blocked(c, r),
                    "cell ({col}, {row})"
                );
            }
        }
        assert_eq!(fine.blocked_count(), 16);
    }

    #[test]
    fn outside_cells_are_blocked() {
        let grid = Grid::free(2, 2, 1.0);

        assert!(!grid.is_blocked(1, 1));
        assert!(grid.is_blocked(2, 0));
        assert!(grid.is_blocked(0, 2));
    }
}
