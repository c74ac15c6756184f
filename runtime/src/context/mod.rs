//! Loaders for the files that a spec's `context` items point at, and the grid types they
//! produce.
//!
//! Every loader takes a path, reads the whole file (at most [`MAX_FILE_BYTES`]) and returns
//! either a typed value or a [`ContextError`] that names the file and what is wrong with it.
//! No loader panics on the content of a file.

mod distance;
mod error;
mod grid;
mod image;
mod movingai;
mod navigation;
mod pose;
mod scene;
mod text;
mod urdf;

pub use distance::DistanceField;
pub use error::{ContextError, MAX_FILE_BYTES};
pub use grid::Grid;
pub use image::{ColourMatch, FloorImage, MAX_IMAGE_SIDE, ObstacleRule, Rgb, Site, load_image};
pub use movingai::{Scenario, load_map, load_scen, parse_map, parse_scen};
pub use navigation::{COMFORT_BAND, CostToGo, NavError, NavMap, path_length};
pub use pose::Pose;
pub use scene::{
    SCENE_VERSION, Scene, SceneObstacle, SceneShape, SceneSite, load_scene, parse_scene,
};
pub use text::{TextNote, load_text};
pub use urdf::{
    Geometry, Inertial, Joint, JointLimit, JointType, Link, MobileBase, MobileBaseOptions, Shape,
    UrdfRobot, UrdfWarning, load_urdf,
};
