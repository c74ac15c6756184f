//! Static obstacles for planar scenarios: occupancy grids merged into few boxes, and the
//! shapes of scene files.
//!
//! A grid of `w × h` cells could become `w·h` colliders; merging keeps the broad phase
//! small. Runs of blocked cells in a row become one box, and a run continues into the row
//! below when it covers exactly the same columns, so a wall or a shelf of any length is one
//! box. The boxes cover exactly the blocked cells, without overlaps.

use rapier3d::prelude::*;

use super::physics::Physics;
use crate::context::{Grid, Scene, SceneShape};

/// Height of the boxes built from 2-D maps, metres; any height above the robots works.
pub const MAP_OBSTACLE_HEIGHT: f64 = 1.0;

/// A fixed obstacle in the world frame, metres and radians.
#[derive(Clone, Debug, PartialEq)]
pub enum Obstacle {
    /// A box with half extents `half`, centred at `center`, turned by `yaw` about z.
    Box {
        center: [f64; 3],
        half: [f64; 3],
        yaw: f64,
    },
    /// A vertical cylinder.
    Cylinder {
        center: [f64; 3],
        radius: f64,
        half_height: f64,
    },
}

/// A rectangle of cells: columns `col..col + cols`, rows `row..row + rows` (row 0 at the top).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CellRect {
    pub col: usize,
    pub row: usize,
    pub cols: usize,
    pub rows: usize,
}

/// Merges the blocked cells of `grid` into rectangles that cover them exactly once.
pub fn merge_blocked_cells(grid: &Grid) -> Vec<CellRect> {
    let mut done = Vec::new();
    // Rectangles still growing downwards, keyed by their column span.
    let mut open: Vec<CellRect> = Vec::new();
    for row in 0..grid.height() {
        let runs = blocked_runs(grid, row);
        let mut next_open = Vec::with_capacity(runs.len());
        for (col, cols) in runs {
            match open
                .iter()
                .position(|rect| rect.col == col && rect.cols == cols)
            {
                Some(index) => {
                    let mut rect = open.swap_remove(index);
                    rect.rows += 1;
                    next_open.push(rect);
                }
                None => next_open.push(CellRect {
                    col,
                    row,
                    cols,
                    rows: 1,
                }),
            }
        }
        done.append(&mut open);
        open = next_open;
    }
    done.append(&mut open);
    // Closing order depends on the swap_remove above; sort for a stable collider order.
    done.sort_by_key(|rect| (rect.row, rect.col));
    done
}

/// Finds the runs of blocked cells in one row as `(first column, length)`.
fn blocked_runs(grid: &Grid, row: usize) -> Vec<(usize, usize)> {
    let mut runs = Vec::new();
    let mut col = 0;
    while col < grid.width() {
        if grid.is_blocked(col, row) {
            let start = col;
            while col < grid.width() && grid.is_blocked(col, row) {
                col += 1;
            }
            runs.push((start, col - start));
        } else {
            col += 1;
        }
    }
    runs
}

/// Builds the obstacles of an occupancy grid: its merged blocked cells, plus four walls just
/// outside its edges, because cells outside a grid count as blocked.
pub fn obstacles_from_grid(grid: &Grid) -> Vec<Obstacle> {
    let cell = grid.cell_size();
    let [origin_x, origin_y] = grid.origin();
    let half_z = MAP_OBSTACLE_HEIGHT / 2.0;
    let mut obstacles: Vec<Obstacle> = merge_blocked_cells(grid)
        .into_iter()
        .map(|rect| {
            // Rows count from the top, so the rectangle's lowest row is `row + rows − 1`.
            let bottom_row = grid.height() - rect.row - rect.rows;
            let x = origin_x + (rect.col as f64 + rect.cols as f64 / 2.0) * cell;
            let y = origin_y + (bottom_row as f64 + rect.rows as f64 / 2.0) * cell;
            Obstacle::Box {
                center: [x, y, half_z],
                half: [
                    rect.cols as f64 * cell / 2.0,
                    rect.rows as f64 * cell / 2.0,
                    half_z,
                ],
                yaw: 0.0,
            }
        })
        .collect();

    let width = grid.width() as f64 * cell;
    let height = grid.height() as f64 * cell;
    let thickness = cell.max(0.1);
    let (center_x, center_y) = (origin_x + width / 2.0, origin_y + height / 2.0);
    let walls = [
        (
            [center_x, origin_y - thickness / 2.0],
            [width / 2.0 + thickness, thickness / 2.0],
        ),
        (
            [center_x, origin_y + height + thickness / 2.0],
            [width / 2.0 + thickness, thickness / 2.0],
        ),
        (
            [origin_x - thickness / 2.0, center_y],
            [thickness / 2.0, height / 2.0],
        ),
        (
            [origin_x + width + thickness / 2.0, center_y],
            [thickness / 2.0, height / 2.0],
        ),
    ];
    for ([x, y], [half_x, half_y]) in walls {
        obstacles.push(Obstacle::Box {
            center: [x, y, half_z],
            half: [half_x, half_y, half_z],
            yaw: 0.0,
        });
    }
    obstacles
}

/// Builds the obstacles of a scene file.
///
/// NOTE: a planar scenario keeps only the yaw of an obstacle's pose and drops roll and
/// pitch. That is exact for upright boxes and cylinders, the usual case in scenes.
pub fn obstacles_from_scene(scene: &Scene) -> Vec<Obstacle> {
    scene
        .obstacles
        .iter()
        .map(|obstacle| {
            let center = obstacle.pose.xyz;
            match obstacle.shape {
                SceneShape::Box { size } => Obstacle::Box {
                    center,
                    half: [size[0] / 2.0, size[1] / 2.0, size[2] / 2.0],
                    yaw: obstacle.pose.rpy[2],
                },
                SceneShape::Cylinder { radius, length } => Obstacle::Cylinder {
                    center,
                    radius,
                    half_height: length / 2.0,
                },
            }
        })
        .collect()
}

/// Inserts `obstacles` as fixed colliders with the given friction coefficient; each
/// collider's `user_data` is its index in `obstacles`.
pub(crate) fn insert_obstacles(physics: &mut Physics, obstacles: &[Obstacle], friction: f64) {
    for (index, obstacle) in obstacles.iter().enumerate() {
        insert_obstacle(physics, index, obstacle, friction);
    }
}

/// Inserts one fixed collider whose `user_data` is `index`.
pub(crate) fn insert_obstacle(
    physics: &mut Physics,
    index: usize,
    obstacle: &Obstacle,
    friction: f64,
) {
    let builder = match *obstacle {
        Obstacle::Box { center, half, yaw } => {
            ColliderBuilder::cuboid(half[0] as f32, half[1] as f32, half[2] as f32)
                .translation(vector3(center))
                .rotation(Vector::new(0.0, 0.0, yaw as f32))
        }
        // rapier's cylinders have their axis along y, so a quarter turn about x puts it along z.
        Obstacle::Cylinder {
            center,
            radius,
            half_height,
        } => ColliderBuilder::cylinder(half_height as f32, radius as f32)
            .translation(vector3(center))
            .rotation(Vector::new(std::f32::consts::FRAC_PI_2, 0.0, 0.0)),
    };
    physics.world.colliders.insert(
        builder
            .friction(friction as f32)
            .user_data(index as u128)
            .build(),
    );
}

fn vector3(point: [f64; 3]) -> Vector {
    Vector::new(point[0] as f32, point[1] as f32, point[2] as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid_from_rows(rows: &[&str], cell: f64) -> Grid {
        let width = rows[0].len();
        let cells = rows
            .iter()
            .flat_map(|row| row.chars().map(|c| c == '#'))
            .collect();
        Grid::from_cells(width, rows.len(), cell, cells)
    }

    fn covered_cells(rects: &[CellRect]) -> Vec<(usize, usize)> {
        let mut cells: Vec<(usize, usize)> = rects
            .iter()
            .flat_map(|r| {
                (r.row..r.row + r.rows)
                    .flat_map(move |row| (r.col..r.col + r.cols).map(move |col| (col, row)))
            })
            .collect();
        cells.sort_unstable();
        cells
    }

    #[test]
    fn merge_covers_blocked_cells_once() {
        let grid = grid_from_rows(&["##..#", "##..#", ".#..#", "....."], 1.0);
        let rects = merge_blocked_cells(&grid);

        let mut expected: Vec<(usize, usize)> = (0..grid.height())
            .flat_map(|row| (0..grid.width()).map(move |col| (col, row)))
            .filter(|&(col, row)| grid.is_blocked(col, row))
            .collect();
        expected.sort_unstable();
        assert_eq!(covered_cells(&rects), expected);
    }

    #[test]
    fn merge_joins_a_wall_into_one_box() {
        let grid = grid_from_rows(&["#....", "#....", "#....", "#...."], 1.0);
        assert_eq!(
            merge_blocked_cells(&grid),
            vec![CellRect {
                col: 0,
                row: 0,
                cols: 1,
                rows: 4
            }]
        );

        let grid = grid_from_rows(&[".....", "#####", "....."], 1.0);
        assert_eq!(
            merge_blocked_cells(&grid),
            vec![CellRect {
                col: 0,
                row: 1,
                cols: 5,
                rows: 1
            }]
        );
    }

    #[test]
    fn merge_splits_an_l_shape_into_two_boxes() {
        let grid = grid_from_rows(&["#..", "#..", "###"], 1.0);
        let rects = merge_blocked_cells(&grid);
        assert_eq!(rects.len(), 2);
        assert_eq!(covered_cells(&rects).len(), 5);
    }

    #[test]
    fn grid_box_sits_on_its_cells() {
        // One blocked cell in the top-left corner of a 4×3 grid of 0.5 m cells whose lower-left
        // corner is at (10, 20): the cell spans x 10..10.5 and y 21..21.5.
        let grid = grid_from_rows(&["#...", "....", "...."], 0.5).with_origin([10.0, 20.0]);
        let obstacles = obstacles_from_grid(&grid);
        assert_eq!(obstacles.len(), 1 + 4, "one cell box and four border walls");
        let Obstacle::Box { center, half, .. } = &obstacles[0] else {
            panic!("expected a box")
        };
        assert_eq!(center[0], 10.25);
        assert_eq!(center[1], 21.25);
        assert_eq!(half[0], 0.25);
        assert_eq!(half[1], 0.25);
    }
}
