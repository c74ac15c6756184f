//! Robot descriptions in URDF: links with their mass and geometry, joints with their type,
//! axis, limits and origin, and the quantities a mobile base derives from them.
//!
//! The loader reads the XML with `roxmltree` and keeps what the runtime needs. Real URDF files
//! carry leftovers of their ROS and Gazebo origins, which the loader tolerates and records as a
//! [`UrdfWarning`] in the loaded robot. These are meshes that are missing or given by a
//! `package://` URI, `<gazebo>` plugin libraries, and attribute values with unexpanded xacro
//! substitutions such as `$(optenv …)`. Missing geometry becomes an error only when a caller needs it, through
//! [`UrdfRobot::require_meshes`].
//!
//! Units are those of URDF: metres, radians, kilograms, newtons (or newton-metres) and
//! seconds.

mod mobile_base;
mod parse;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use super::error::{ContextError, read_text};
use super::pose::{Pose, Transform};

pub use mobile_base::{MobileBase, MobileBaseOptions};

/// A robot description loaded from a URDF file.
#[derive(Clone, Debug)]
pub struct UrdfRobot {
    /// The `name` attribute of `<robot>`.
    pub name: String,
    /// The file the robot was loaded from; meshes are resolved relative to its folder.
    pub path: PathBuf,
    /// Links in file order.
    pub links: Vec<Link>,
    /// Joints in file order.
    pub joints: Vec<Joint>,
    /// Problems the loader tolerated, in file order.
    pub warnings: Vec<UrdfWarning>,
    /// Name of the link that is no joint's child.
    pub root: String,
}

/// A rigid body of the robot.
#[derive(Clone, Debug, PartialEq)]
pub struct Link {
    pub name: String,
    pub inertial: Option<Inertial>,
    pub visuals: Vec<Shape>,
    pub collisions: Vec<Shape>,
}

/// Mass properties of a link.
#[derive(Clone, Debug, PartialEq)]
pub struct Inertial {
    /// Mass in kilograms.
    pub mass: f64,
    /// Centre of mass and inertia frame, relative to the link frame.
    pub origin: Pose,
    /// Inertia tensor entries `[ixx, ixy, ixz, iyy, iyz, izz]` in kg·m²; zero where the file
    /// gives no `<inertia>`.
    pub inertia: [f64; 6],
}

/// A `<visual>` or `<collision>` geometry placed in its link's frame.
#[derive(Clone, Debug, PartialEq)]
pub struct Shape {
    pub origin: Pose,
    pub geometry: Geometry,
}

/// The geometry of a visual or collision element, in metres.
#[derive(Clone, Debug, PartialEq)]
pub enum Geometry {
    /// Full extents along x, y and z.
    Box {
        size: [f64; 3],
    },
    /// Axis along the local z axis, centred on the origin.
    Cylinder {
        radius: f64,
        length: f64,
    },
    Sphere {
        radius: f64,
    },
    /// A mesh file; `resolved` is its path on disk when the file was found.
    Mesh {
        filename: String,
        scale: [f64; 3],
        resolved: Option<PathBuf>,
    },
}

/// The kind of motion a joint allows, as named by URDF's `type` attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JointType {
    Revolute,
    Continuous,
    Prismatic,
    Fixed,
    Floating,
    Planar,
}

impl JointType {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "revolute" => JointType::Revolute,
            "continuous" => JointType::Continuous,
            "prismatic" => JointType::Prismatic,
            "fixed" => JointType::Fixed,
            "floating" => JointType::Floating,
            "planar" => JointType::Planar,
            _ => return None,
        })
    }
}

/// A joint between a parent and a child link.
#[derive(Clone, Debug, PartialEq)]
pub struct Joint {
    pub name: String,
    pub joint_type: JointType,
    pub parent: String,
    pub child: String,
    /// Pose of the child link frame in the parent link frame at joint position zero.
    pub origin: Pose,
    /// Axis of rotation or translation in the joint frame; (1, 0, 0) where the file gives none.
    pub axis: [f64; 3],
    pub limit: Option<JointLimit>,
}

/// The `<limit>` of a joint.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct JointLimit {
    /// Maximum effort in N·m (rotary joints) or N (prismatic joints).
    pub effort: f64,
    /// Maximum speed in rad/s (rotary joints) or m/s (prismatic joints).
    pub velocity: f64,
    /// Lower position limit in rad or m; 0 where the file gives none.
    pub lower: f64,
    /// Upper position limit in rad or m; 0 where the file gives none.
    pub upper: f64,
}

/// Something in a URDF file that the loader tolerated; each names the file path or value.
#[derive(Clone, Debug, PartialEq)]
pub enum UrdfWarning {
    /// A mesh file that does not exist at `looked_at`.
    MissingMesh {
        filename: String,
        looked_at: PathBuf,
    },
    /// A mesh given by a URI the loader cannot resolve, such as `package://…`, which needs a
    /// ROS package path.
    UnresolvedMeshUri { filename: String },
    /// A Gazebo plugin library, which Basin does not load.
    GazeboPlugin { filename: String, name: String },
    /// An attribute with an unexpanded xacro substitution; the loader used `used` in its place.
    UnexpandedXacro {
        element: String,
        attribute: String,
        value: String,
        line: usize,
        used: String,
    },
    /// A geometry element the loader does not know; the shape was skipped.
    UnknownGeometry {
        link: String,
        element: String,
        line: usize,
    },
}

impl fmt::Display for UrdfWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UrdfWarning::MissingMesh {
                filename,
                looked_at,
            } => write!(
                f,
                "mesh `{filename}` not found (looked for {})",
                looked_at.display()
            ),
            UrdfWarning::UnresolvedMeshUri { filename } if filename.starts_with("package://") => {
                write!(
                    f,
                    "mesh `{filename}` uses a ROS `package://` URI, which the loader cannot resolve; try a path relative to the URDF file"
                )
            }
            UrdfWarning::UnresolvedMeshUri { filename } => write!(
                f,
                "mesh `{filename}` uses a URI scheme the loader cannot resolve; try a path relative to the URDF file"
            ),
            UrdfWarning::GazeboPlugin { filename, name } => write!(
                f,
                "Gazebo plugin `{name}` from library `{filename}` is not loaded"
            ),
            UrdfWarning::UnexpandedXacro {
                element,
                attribute,
                value,
                line,
                used,
            } => write!(
                f,
                "line {line}: `{attribute}` of <{element}> has the unexpanded xacro substitution `{value}`; using `{used}` (try expanding the file with xacro first)"
            ),
            UrdfWarning::UnknownGeometry {
                link,
                element,
                line,
            } => write!(
                f,
                "line {line}: unknown geometry <{element}> in link `{link}` skipped"
            ),
        }
    }
}

/// Loads a URDF file; see [`UrdfRobot::load`].
pub fn load_urdf(path: &Path) -> Result<UrdfRobot, ContextError> {
    UrdfRobot::load(path)
}

impl UrdfRobot {
    /// Loads a URDF file and checks that its links form a tree. Mesh paths are resolved
    /// relative to the file's folder.
    #[tracing::instrument(skip_all, fields(path = %path.display()))]
    pub fn load(path: &Path) -> Result<Self, ContextError> {
        let text = read_text(path)?;
        let robot = Self::parse(path, &text)?;
        for warning in &robot.warnings {
            tracing::warn!(path = %path.display(), "{warning}");
        }
        Ok(robot)
    }

    /// Parses URDF text; `path` names the file in errors, and mesh paths are resolved relative
    /// to its folder.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ContextError> {
        parse::parse_robot(path, text)
    }

    /// The link called `name`.
    pub fn link(&self, name: &str) -> Option<&Link> {
        self.links.iter().find(|link| link.name == name)
    }

    /// The joint called `name`.
    pub fn joint(&self, name: &str) -> Option<&Joint> {
        self.joints.iter().find(|joint| joint.name == name)
    }

    /// Sum of the masses of all links in kilograms; links without `<inertial>` count as 0.
    pub fn total_mass(&self) -> f64 {
        self.links
            .iter()
            .filter_map(|link| link.inertial.as_ref())
            .map(|inertial| inertial.mass)
            .sum()
    }

    /// Position in metres of each link frame in the root link frame, with every joint at
    /// position zero, keyed by link name.
    pub fn link_positions(&self) -> HashMap<String, [f64; 3]> {
        self.link_transforms()
            .into_iter()
            .map(|(name, transform)| (name, transform.translation()))
            .collect()
    }

    /// Paths on disk of every mesh the robot uses, each once, in file order. Returns
    /// [`ContextError::MissingGeometry`] naming every mesh that was not found or could not be
    /// resolved.
    pub fn require_meshes(&self) -> Result<Vec<PathBuf>, ContextError> {
        let mut found = Vec::new();
        let mut missing = Vec::new();
        let shapes = self
            .links
            .iter()
            .flat_map(|link| link.visuals.iter().chain(&link.collisions));
        for shape in shapes {
            if let Geometry::Mesh {
                filename, resolved, ..
            } = &shape.geometry
            {
                match resolved {
                    Some(path) if !found.contains(path) => found.push(path.clone()),
                    Some(_) => {}
                    None if !missing.contains(filename) => missing.push(filename.clone()),
                    None => {}
                }
            }
        }
        if missing.is_empty() {
            Ok(found)
        } else {
            Err(ContextError::MissingGeometry {
                path: self.path.clone(),
                missing,
            })
        }
    }

    /// Derives the wheel radius, track width and speed limits of a wheeled base; see
    /// [`MobileBase`].
    pub fn mobile_base(&self, options: &MobileBaseOptions) -> Result<MobileBase, ContextError> {
        mobile_base::derive(self, options)
    }

    /// Pose of each link frame in the root link frame with every joint at position zero.
    fn link_transforms(&self) -> HashMap<String, Transform> {
        let mut children: HashMap<&str, Vec<&Joint>> = HashMap::new();
        for joint in &self.joints {
            children.entry(&joint.parent).or_default().push(joint);
        }

        let mut transforms = HashMap::new();
        transforms.insert(self.root.clone(), Transform::IDENTITY);
        let mut pending = vec![self.root.as_str()];
        let mut visited = HashSet::new();
        while let Some(link) = pending.pop() {
            if !visited.insert(link) {
                continue;
            }
            let parent = transforms[link];
            for joint in children.get(link).into_iter().flatten() {
                let child = parent.then(&Transform::from_pose(&joint.origin));
                transforms.insert(joint.child.clone(), child);
                pending.push(&joint.child);
            }
        }
        transforms
    }
}
