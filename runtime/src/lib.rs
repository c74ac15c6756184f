//! The Basin runtime: context loaders, physics scenarios, the world model, and later planners.

pub mod context;
pub mod design;
pub mod energy;
pub mod model;
pub mod mpc;
pub mod scenario;

pub use context::{ContextError, DistanceField, Grid};
