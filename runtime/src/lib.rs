//! The Basin runtime: context loaders, and later scenarios, the world model and planners.

pub mod context;

pub use context::{ContextError, DistanceField, Grid};
