//! The Basin runtime: context loaders, and later scenarios, the world model and planners.

pub mod context;
pub mod model;

pub use context::{ContextError, DistanceField, Grid};
