//! Bilinear lookups in a distance field with tensor operations, by the rules of
//! `DistanceGrid::sample` in the compiler: clamping to the rectangle of cell centres, the
//! cell choice on cell borders, and the distance subtracted outside.

use basin_compiler::energy::DistanceGrid;
use candle_core::{DType, Device, Result, Tensor, bail};

use super::ops::{common_shape, sqrt};

/// A distance field on the device: `values` is the row-major grid flattened to
/// `[height · width]`.
#[derive(Debug)]
pub struct FieldTensor {
    values: Tensor,
    width: usize,
    height: usize,
    cell: f64,
    origin: (f64, f64),
}

impl FieldTensor {
    pub fn new(grid: &DistanceGrid, device: &Device) -> Result<FieldTensor> {
        if grid.width == 0 || grid.height == 0 {
            bail!("the distance grid is empty ({}×{} cells)", grid.width, grid.height);
        }
        if grid.values.len() != grid.width * grid.height {
            bail!("a {}×{} distance grid needs {} values, got {}", grid.width, grid.height, grid.width * grid.height, grid.values.len());
        }
        if !(grid.cell > 0.0 && grid.cell.is_finite()) {
            bail!("the distance grid's cell size must be a positive finite number, got {}", grid.cell);
        }
        let values: Vec<f32> = grid.values.iter().map(|&v| v as f32).collect();
        Ok(FieldTensor { values: Tensor::from_vec(values, grid.values.len(), device)?, width: grid.width, height: grid.height, cell: grid.cell, origin: grid.origin })
    }

    /// Samples the field at the world points `(x, y)` (`[S, T]` each, broadcasting).
    ///
    /// The four corner values are read with one `index_select` on the flattened grid. The cell
    /// indices are detached, so the gradient is that of the bilinear weights. The clamp is a
    /// `where`, so a point on the border gets the full inside gradient.
    pub fn sample(&self, x: &Tensor, y: &Tensor) -> Result<Tensor> {
        let shape = common_shape(&[x, y])?;
        let (x, y) = (x.broadcast_as(&shape)?, y.broadcast_as(&shape)?);
        let (column, fraction_x, outside_x) = self.axis(&x, self.origin.0, self.width)?;
        let (row, fraction_y, outside_y) = self.axis(&y, self.origin.1, self.height)?;

        let upper_column = if self.width > 1 { column.affine(1.0, 1.0)? } else { column.clone() };
        let upper_row = if self.height > 1 { row.affine(1.0, 1.0)? } else { row.clone() };
        let width = self.width as f64;
        let corner = |c: &Tensor, r: &Tensor| -> Result<Tensor> {
            // Indices go through i64 so that grids beyond 2^24 cells index exactly.
            let index = r.to_dtype(DType::I64)?.affine(width, 0.0)?.add(&c.to_dtype(DType::I64)?)?;
            self.values.index_select(&index.flatten_all()?, 0)?.reshape(&shape)
        };
        let one_minus = |t: &Tensor| t.affine(-1.0, 1.0);
        let bottom = corner(&column, &row)?.mul(&one_minus(&fraction_x)?)?.add(&corner(&upper_column, &row)?.mul(&fraction_x)?)?;
        let top = corner(&column, &upper_row)?.mul(&one_minus(&fraction_x)?)?.add(&corner(&upper_column, &upper_row)?.mul(&fraction_x)?)?;
        let inside = bottom.mul(&one_minus(&fraction_y)?)?.add(&top.mul(&fraction_y)?)?;
        let outside = sqrt(&outside_x.sqr()?.add(&outside_y.sqr()?)?)?;
        inside.sub(&outside)
    }

    /// Clamps coordinates to the span of `count` cell centres from `origin` and locates them:
    /// the lower cell index (detached, as `f32`), the fraction towards the next centre, and
    /// the signed distance outside the span.
    fn axis(&self, coordinate: &Tensor, origin: f64, count: usize) -> Result<(Tensor, Tensor, Tensor)> {
        let last = origin + (count - 1) as f64 * self.cell;
        let low = coordinate.lt(origin)?;
        let high = coordinate.gt(last)?;
        let clamped = low.where_cond(&coordinate.ones_like()?.affine(0.0, origin)?, coordinate)?;
        let clamped = high.where_cond(&coordinate.ones_like()?.affine(0.0, last)?, &clamped)?;
        let outside = coordinate.sub(&clamped)?;
        if count == 1 {
            let zeros = coordinate.zeros_like()?;
            return Ok((zeros.clone(), zeros, outside));
        }
        let position = clamped.affine(1.0 / self.cell, -origin / self.cell)?;
        // The last centre belongs to the cell before it.
        let lower = position.detach().clamp(0.0, (count - 1) as f64)?.floor()?.clamp(0.0, (count - 2) as f64)?;
        let fraction = position.sub(&lower)?;
        Ok((lower, fraction, outside))
    }
}
