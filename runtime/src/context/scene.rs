//! Scenes: obstacles and named sites written as JSON, for `context s = scene("s.json")`.
//!
//! The format is specified in `spec/scene.md`. In short:
//!
//! ```json
//! {
//!   "version": 1,
//!   "obstacles": [
//!     { "name": "shelf", "pose": { "xyz": [2, 1, 0.5], "rpy": [0, 0, 1.5708] },
//!       "shape": { "type": "box", "size": [1.2, 0.4, 1.0] } }
//!   ],
//!   "sites": [ { "name": "pick", "pose": { "xyz": [1, 2, 0] } } ]
//! }
//! ```
//!
//! Unknown fields are errors, so a misspelt key cannot silently drop an obstacle.

use std::collections::HashSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::{ContextError, read_text};
use super::pose::Pose;

/// The scene format version this loader reads and writes.
pub const SCENE_VERSION: u32 = 1;

/// A scene file: obstacles and named sites, in metres and radians.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scene {
    /// Format version; must be [`SCENE_VERSION`].
    pub version: u32,
    #[serde(default)]
    pub obstacles: Vec<SceneObstacle>,
    #[serde(default)]
    pub sites: Vec<SceneSite>,
}

/// A solid obstacle placed in the world frame.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SceneObstacle {
    /// Optional name, unique among obstacles when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Pose of the shape's centre.
    pub pose: Pose,
    pub shape: SceneShape,
}

/// The shape of an obstacle, centred on its pose.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum SceneShape {
    /// A box with full extents `size` along its local x, y and z axes.
    Box { size: [f64; 3] },
    /// A cylinder whose axis is its local z axis.
    Cylinder { radius: f64, length: f64 },
}

/// A named place in the world, such as a pick or drop location.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SceneSite {
    /// Name that specs refer to; unique among sites.
    pub name: String,
    pub pose: Pose,
}

impl Scene {
    /// The site called `name`.
    pub fn site(&self, name: &str) -> Option<&SceneSite> {
        self.sites.iter().find(|site| site.name == name)
    }
}

/// Loads and checks a scene file.
#[tracing::instrument(skip_all, fields(path = %path.display()))]
pub fn load_scene(path: &Path) -> Result<Scene, ContextError> {
    let text = read_text(path)?;
    parse_scene(path, &text)
}

/// Parses and checks the JSON text of a scene; `path` only names the file in errors.
pub fn parse_scene(path: &Path, text: &str) -> Result<Scene, ContextError> {
    let scene: Scene = serde_json::from_str(text).map_err(|error| {
        // serde_json ends its messages with the position, which the error already carries.
        let message = error.to_string();
        let suffix = format!(" at line {} column {}", error.line(), error.column());
        let message = message.strip_suffix(&suffix).unwrap_or(&message);
        ContextError::format_at(
            path,
            error.line(),
            Some(error.column()),
            format!("invalid scene JSON: {message}"),
        )
    })?;
    check_scene(&scene).map_err(|message| ContextError::invalid(path, message))?;
    Ok(scene)
}

fn check_scene(scene: &Scene) -> Result<(), String> {
    if scene.version != SCENE_VERSION {
        return Err(format!(
            "scene version {} is not supported; this loader reads version {SCENE_VERSION}",
            scene.version
        ));
    }

    let mut obstacle_names = HashSet::new();
    for (index, obstacle) in scene.obstacles.iter().enumerate() {
        let label = match &obstacle.name {
            Some(name) => format!("obstacle {index} (`{name}`)"),
            None => format!("obstacle {index}"),
        };
        if let Some(name) = &obstacle.name
            && !obstacle_names.insert(name.as_str())
        {
            return Err(format!("{label}: two obstacles are named `{name}`"));
        }
        check_pose(&obstacle.pose).map_err(|message| format!("{label}: {message}"))?;
        let dimensions: Vec<(&str, f64)> = match &obstacle.shape {
            SceneShape::Box { size } => vec![
                ("size x", size[0]),
                ("size y", size[1]),
                ("size z", size[2]),
            ],
            SceneShape::Cylinder { radius, length } => {
                vec![("radius", *radius), ("length", *length)]
            }
        };
        for (what, value) in dimensions {
            if !(value.is_finite() && value > 0.0) {
                return Err(format!(
                    "{label}: {what} must be a positive number of metres, found {value}"
                ));
            }
        }
    }

    let mut site_names = HashSet::new();
    for (index, site) in scene.sites.iter().enumerate() {
        if site.name.trim().is_empty() {
            return Err(format!("site {index} has an empty name"));
        }
        if !site_names.insert(site.name.as_str()) {
            return Err(format!("two sites are named `{}`", site.name));
        }
        check_pose(&site.pose).map_err(|message| format!("site `{}`: {message}", site.name))?;
    }
    Ok(())
}

fn check_pose(pose: &Pose) -> Result<(), String> {
    if pose
        .xyz
        .iter()
        .chain(&pose.rpy)
        .all(|value| value.is_finite())
    {
        Ok(())
    } else {
        Err(format!(
            "the pose must be finite numbers, found xyz {:?} rpy {:?}",
            pose.xyz, pose.rpy
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(text: &str) -> Result<Scene, ContextError> {
        parse_scene(Path::new("scene.json"), text)
    }

    const WAREHOUSE: &str = r#"{
  "version": 1,
  "obstacles": [
    { "name": "shelf", "pose": { "xyz": [2, 1, 0.5], "rpy": [0, 0, 0.75] },
      "shape": { "type": "box", "size": [1.2, 0.4, 1.0] } },
    { "pose": { "xyz": [5, 5, 1.5] }, "shape": { "type": "cylinder", "radius": 0.3, "length": 3 } }
  ],
  "sites": [ { "name": "pick", "pose": { "xyz": [1, 2, 0] } } ]
}"#;

    #[test]
    fn reads_obstacles_and_sites() {
        let scene = parse(WAREHOUSE).unwrap();

        assert_eq!(scene.obstacles.len(), 2);
        assert_eq!(scene.obstacles[0].name.as_deref(), Some("shelf"));
        assert_eq!(scene.obstacles[0].pose.rpy, [0.0, 0.0, 0.75]);
        assert_eq!(
            scene.obstacles[1].shape,
            SceneShape::Cylinder {
                radius: 0.3,
                length: 3.0
            }
        );
        assert_eq!(scene.obstacles[1].pose.rpy, [0.0; 3]);
        assert_eq!(scene.site("pick").unwrap().pose.xyz, [1.0, 2.0, 0.0]);
    }

    #[test]
    fn round_trips_through_json() {
        let scene = parse(WAREHOUSE).unwrap();
        let written = serde_json::to_string_pretty(&scene).unwrap();

        assert_eq!(parse(&written).unwrap(), scene);
    }

    #[test]
    fn errors_name_position_or_item() {
        let cases = [
            (
                "",
                "scene.json:1:0: invalid scene JSON: EOF while parsing a value",
            ),
            (
                "{\"version\": 1,\n \"obstacle\": []}",
                "scene.json:2:11: invalid scene JSON: unknown field `obstacle`, expected one of `version`, `obstacles`, `sites`",
            ),
            (
                "{\"version\": 1, \"obstacles\": [{\"pose\": {}, \"shape\": {\"type\": \"cone\"}}]}",
                "scene.json:1:66: invalid scene JSON: unknown variant `cone`, expected `box` or `cylinder`",
            ),
            (
                "{\"version\": 2}",
                "scene.json: scene version 2 is not supported; this loader reads version 1",
            ),
            (
                "{\"version\": 1, \"obstacles\": [{\"name\": \"p\", \"pose\": {}, \"shape\": {\"type\": \"cylinder\", \"radius\": 0, \"length\": 1}}]}",
                "scene.json: obstacle 0 (`p`): radius must be a positive number of metres, found 0",
            ),
            (
                "{\"version\": 1, \"sites\": [{\"name\": \"a\", \"pose\": {}}, {\"name\": \"a\", \"pose\": {}}]}",
                "scene.json: two sites are named `a`",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(
                parse(text).unwrap_err().to_string(),
                expected,
                "scene {text:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn parser_never_panics(text in any::<String>()) {
            let _ = parse(&text);
        }
    }
}
