//! Reading URDF XML into [`UrdfRobot`].
//!
//! Errors carry the line of the offending element. The checks follow the URDF specification on
//! the ROS wiki. `<robot>` is the root element and names are unique. `<mass>` is required in
//! `<inertial>`, and `effort` and `velocity` are required in `<limit>`. Revolute and prismatic
//! joints need a `<limit>`, and the joints connect the links into one tree.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use roxmltree::{Document, Node};

use super::super::error::ContextError;
use super::super::pose::Pose;
use super::{
    Geometry, Inertial, Joint, JointLimit, JointType, Link, Shape, UrdfRobot, UrdfWarning,
};

pub(super) fn parse_robot(path: &Path, text: &str) -> Result<UrdfRobot, ContextError> {
    let document = Document::parse(text).map_err(|error| {
        let position = error.pos();
        // roxmltree ends most messages with the position, which the error already carries.
        let message = error.to_string();
        let suffix = format!(" at {}:{}", position.row, position.col);
        let message = message.strip_suffix(&suffix).unwrap_or(&message);
        ContextError::format_at(
            path,
            position.row as usize,
            Some(position.col as usize),
            format!("invalid XML: {message}"),
        )
    })?;

    let mut reader = Reader {
        path,
        document: &document,
        base_dir: path.parent().unwrap_or(Path::new("")).to_path_buf(),
        warnings: Vec::new(),
        reported_meshes: HashSet::new(),
    };

    let root = document.root_element();
    if root.tag_name().name() != "robot" {
        return Err(reader.error(
            root,
            format!(
                "expected the root element <robot>, found <{}>",
                root.tag_name().name()
            ),
        ));
    }
    let name = reader.required_attribute(root, "name")?.to_string();

    let mut links = Vec::new();
    let mut joints = Vec::new();
    for node in root.children().filter(Node::is_element) {
        match node.tag_name().name() {
            "link" => links.push(reader.link(node)?),
            "joint" => joints.push(reader.joint(node)?),
            "gazebo" => reader.gazebo(node),
            _ => {}
        }
    }

    let root_link = reader.check_tree(root, &links, &joints)?;
    Ok(UrdfRobot {
        name,
        path: path.to_path_buf(),
        links,
        joints,
        warnings: reader.warnings,
        root: root_link,
    })
}

struct Reader<'a, 'input> {
    path: &'a Path,
    document: &'a Document<'input>,
    base_dir: PathBuf,
    warnings: Vec<UrdfWarning>,
    /// Mesh filenames already warned about, so a mesh used by four wheels warns once.
    reported_meshes: HashSet<String>,
}

impl Reader<'_, '_> {
    fn line(&self, node: Node) -> usize {
        self.document.text_pos_at(node.range().start).row as usize
    }

    fn error(&self, node: Node, message: impl Into<String>) -> ContextError {
        ContextError::format_at(self.path, self.line(node), None, message)
    }

    fn required_attribute<'n>(
        &self,
        node: Node<'n, '_>,
        name: &str,
    ) -> Result<&'n str, ContextError> {
        node.attribute(name).ok_or_else(|| {
            self.error(
                node,
                format!(
                    "<{}> is missing the attribute `{name}`",
                    node.tag_name().name()
                ),
            )
        })
    }

    fn child<'n>(&self, node: Node<'n, 'n>, name: &str) -> Option<Node<'n, 'n>> {
        node.children()
            .find(|child| child.is_element() && child.tag_name().name() == name)
    }

    /// Parses a finite number; an unexpanded xacro substitution is an error here because the
    /// value has no default.
    fn number(&self, node: Node, attribute: &str, text: &str) -> Result<f64, ContextError> {
        let hint = if is_xacro(text) {
            " (an unexpanded xacro substitution; try expanding the file with xacro first)"
        } else {
            ""
        };
        text.trim()
            .parse::<f64>()
            .ok()
            .filter(|value| value.is_finite())
            .ok_or_else(|| {
                self.error(
                    node,
                    format!(
                        "`{attribute}` of <{}> must be a number, found `{text}`{hint}",
                        node.tag_name().name()
                    ),
                )
            })
    }

    fn required_number(&self, node: Node, attribute: &str) -> Result<f64, ContextError> {
        let text = self.required_attribute(node, attribute)?;
        self.number(node, attribute, text)
    }

    fn optional_number(
        &self,
        node: Node,
        attribute: &str,
        default: f64,
    ) -> Result<f64, ContextError> {
        match node.attribute(attribute) {
            Some(text) => self.number(node, attribute, text),
            None => Ok(default),
        }
    }

    /// Parses a vector of three numbers, or returns `default` when the attribute is absent. An
    /// unexpanded xacro substitution gives `default` and a warning.
    fn vector(
        &mut self,
        node: Node,
        attribute: &str,
        default: [f64; 3],
    ) -> Result<[f64; 3], ContextError> {
        let Some(text) = node.attribute(attribute) else {
            return Ok(default);
        };
        if is_xacro(text) {
            self.warnings.push(UrdfWarning::UnexpandedXacro {
                element: node.tag_name().name().to_string(),
                attribute: attribute.to_string(),
                value: text.to_string(),
                line: self.line(node),
                used: format!("{} {} {}", default[0], default[1], default[2]),
            });
            return Ok(default);
        }
        let parts: Vec<&str> = text.split_whitespace().collect();
        if parts.len() != 3 {
            return Err(self.error(
                node,
                format!(
                    "`{attribute}` of <{}> must be three numbers, found `{text}`",
                    node.tag_name().name()
                ),
            ));
        }
        let mut vector = [0.0; 3];
        for (value, part) in vector.iter_mut().zip(parts) {
            *value = self.number(node, attribute, part)?;
        }
        Ok(vector)
    }

    /// Reads the `<origin>` child of `node`; the identity pose when there is none.
    fn origin(&mut self, node: Node) -> Result<Pose, ContextError> {
        match self.child(node, "origin") {
            Some(origin) => Ok(Pose {
                xyz: self.vector(origin, "xyz", [0.0; 3])?,
                rpy: self.vector(origin, "rpy", [0.0; 3])?,
            }),
            None => Ok(Pose::default()),
        }
    }

    fn link(&mut self, node: Node) -> Result<Link, ContextError> {
        let name = self.required_attribute(node, "name")?.to_string();
        let inertial = match self.child(node, "inertial") {
            Some(inertial) => Some(self.inertial(inertial)?),
            None => None,
        };

        let mut visuals = Vec::new();
        let mut collisions = Vec::new();
        for child in node.children().filter(Node::is_element) {
            let shapes = match child.tag_name().name() {
                "visual" => &mut visuals,
                "collision" => &mut collisions,
                _ => continue,
            };
            if let Some(shape) = self.shape(&name, child)? {
                shapes.push(shape);
            }
        }

        Ok(Link {
            name,
            inertial,
            visuals,
            collisions,
        })
    }

    fn inertial(&mut self, node: Node) -> Result<Inertial, ContextError> {
        let mass_node = self
            .child(node, "mass")
            .ok_or_else(|| self.error(node, "<inertial> is missing its <mass> element"))?;
        let mass = self.required_number(mass_node, "value")?;
        if mass < 0.0 {
            return Err(self.error(
                mass_node,
                format!("mass must not be negative, found {mass}"),
            ));
        }

        let mut inertia = [0.0; 6];
        if let Some(tensor) = self.child(node, "inertia") {
            for (value, attribute) in inertia
                .iter_mut()
                .zip(["ixx", "ixy", "ixz", "iyy", "iyz", "izz"])
            {
                *value = self.optional_number(tensor, attribute, 0.0)?;
            }
        }

        Ok(Inertial {
            mass,
            origin: self.origin(node)?,
            inertia,
        })
    }

    /// Reads a `<visual>` or `<collision>` element; `None` when its geometry is unknown.
    fn shape(&mut self, link: &str, node: Node) -> Result<Option<Shape>, ContextError> {
        let geometry_node = self.child(node, "geometry").ok_or_else(|| {
            self.error(
                node,
                format!(
                    "<{}> in link `{link}` is missing its <geometry> element",
                    node.tag_name().name()
                ),
            )
        })?;
        let Some(shape_node) = geometry_node.children().find(Node::is_element) else {
            return Err(self.error(
                geometry_node,
                format!("<geometry> in link `{link}` is empty"),
            ));
        };

        let positive = |reader: &Self, attribute: &str| -> Result<f64, ContextError> {
            let value = reader.required_number(shape_node, attribute)?;
            if value > 0.0 {
                Ok(value)
            } else {
                Err(reader.error(
                    shape_node,
                    format!(
                        "`{attribute}` of <{}> in link `{link}` must be positive, found {value}",
                        shape_node.tag_name().name()
                    ),
                ))
            }
        };

        let geometry = match shape_node.tag_name().name() {
            "box" => Geometry::Box {
                size: self.vector(shape_node, "size", [0.0; 3])?,
            },
            "cylinder" => Geometry::Cylinder {
                radius: positive(self, "radius")?,
                length: positive(self, "length")?,
            },
            "sphere" => Geometry::Sphere {
                radius: positive(self, "radius")?,
            },
            "mesh" => {
                let filename = self.required_attribute(shape_node, "filename")?.to_string();
                Geometry::Mesh {
                    scale: self.vector(shape_node, "scale", [1.0; 3])?,
                    resolved: self.resolve_mesh(&filename),
                    filename,
                }
            }
            other => {
                self.warnings.push(UrdfWarning::UnknownGeometry {
                    link: link.to_string(),
                    element: other.to_string(),
                    line: self.line(shape_node),
                });
                return Ok(None);
            }
        };

        Ok(Some(Shape {
            origin: self.origin(node)?,
            geometry,
        }))
    }

    /// Finds a mesh file relative to the URDF file's folder, or records why it cannot.
    fn resolve_mesh(&mut self, filename: &str) -> Option<PathBuf> {
        let candidate = if let Some(local) = filename.strip_prefix("file://") {
            PathBuf::from(local)
        } else if filename.contains("://") {
            if self.reported_meshes.insert(filename.to_string()) {
                self.warnings.push(UrdfWarning::UnresolvedMeshUri {
                    filename: filename.to_string(),
                });
            }
            return None;
        } else {
            self.base_dir.join(filename)
        };

        if candidate.is_file() {
            return Some(candidate);
        }
        if self.reported_meshes.insert(filename.to_string()) {
            self.warnings.push(UrdfWarning::MissingMesh {
                filename: filename.to_string(),
                looked_at: candidate,
            });
        }
        None
    }

    fn joint(&mut self, node: Node) -> Result<Joint, ContextError> {
        let name = self.required_attribute(node, "name")?.to_string();
        let type_text = self.required_attribute(node, "type")?;
        let joint_type = JointType::parse(type_text).ok_or_else(|| {
            self.error(
                node,
                format!(
                    "joint `{name}` has the unknown type `{type_text}`; expected revolute, continuous, prismatic, fixed, floating or planar"
                ),
            )
        })?;

        let link_of = |reader: &Self, element: &str| -> Result<String, ContextError> {
            let child = reader.child(node, element).ok_or_else(|| {
                reader.error(
                    node,
                    format!("joint `{name}` is missing its <{element}> element"),
                )
            })?;
            Ok(reader.required_attribute(child, "link")?.to_string())
        };
        let parent = link_of(self, "parent")?;
        let child = link_of(self, "child")?;

        let axis = match self.child(node, "axis") {
            Some(axis) => self.vector(axis, "xyz", [1.0, 0.0, 0.0])?,
            None => [1.0, 0.0, 0.0],
        };

        let limit = match self.child(node, "limit") {
            Some(limit) => Some(JointLimit {
                effort: self.required_number(limit, "effort")?,
                velocity: self.required_number(limit, "velocity")?,
                lower: self.optional_number(limit, "lower", 0.0)?,
                upper: self.optional_number(limit, "upper", 0.0)?,
            }),
            None => None,
        };
        if limit.is_none() && matches!(joint_type, JointType::Revolute | JointType::Prismatic) {
            return Err(self.error(
                node,
                format!("joint `{name}` is {type_text} and needs a <limit> element"),
            ));
        }

        Ok(Joint {
            name,
            joint_type,
            parent,
            child,
            origin: self.origin(node)?,
            axis,
            limit,
        })
    }

    /// Records the plugin libraries under a `<gazebo>` element.
    fn gazebo(&mut self, node: Node) {
        for plugin in node
            .descendants()
            .filter(|child| child.is_element() && child.tag_name().name() == "plugin")
        {
            self.warnings.push(UrdfWarning::GazeboPlugin {
                filename: plugin.attribute("filename").unwrap_or("").to_string(),
                name: plugin.attribute("name").unwrap_or("").to_string(),
            });
        }
    }

    /// Checks that names are unique and that the joints connect all links into one tree, and
    /// returns the root link's name.
    fn check_tree(
        &self,
        robot: Node,
        links: &[Link],
        joints: &[Joint],
    ) -> Result<String, ContextError> {
        let mut link_names = HashSet::new();
        for link in links {
            if !link_names.insert(link.name.as_str()) {
                return Err(self.invalid(format!("two links are named `{}`", link.name)));
            }
        }
        let mut joint_names = HashSet::new();
        let mut parent_of: HashMap<&str, &str> = HashMap::new();
        for joint in joints {
            if !joint_names.insert(joint.name.as_str()) {
                return Err(self.invalid(format!("two joints are named `{}`", joint.name)));
            }
            for link in [&joint.parent, &joint.child] {
                if !link_names.contains(link.as_str()) {
                    return Err(self.invalid(format!(
                        "joint `{}` refers to the link `{link}`, which is not defined",
                        joint.name
                    )));
                }
            }
            if parent_of.insert(&joint.child, &joint.name).is_some() {
                return Err(self.invalid(format!(
                    "link `{}` is the child of more than one joint",
                    joint.child
                )));
            }
        }

        let roots: Vec<&str> = links
            .iter()
            .map(|link| link.name.as_str())
            .filter(|name| !parent_of.contains_key(name))
            .collect();
        let root = match roots[..] {
            [root] => root,
            [] if links.is_empty() => {
                return Err(self.error(robot, "<robot> has no <link> elements"));
            }
            [] => return Err(self.invalid("the joints form a cycle: every link has a parent")),
            _ => {
                return Err(self.invalid(format!(
                    "the links do not form one tree: {} have no parent joint",
                    roots
                        .iter()
                        .map(|name| format!("`{name}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        };

        // One root and one parent per other link leave only cycles detached from the root.
        let mut reached = HashSet::from([root]);
        let mut pending = vec![root];
        while let Some(link) = pending.pop() {
            for joint in joints.iter().filter(|joint| joint.parent == link) {
                if reached.insert(joint.child.as_str()) {
                    pending.push(&joint.child);
                }
            }
        }
        if let Some(detached) = links
            .iter()
            .find(|link| !reached.contains(link.name.as_str()))
        {
            return Err(self.invalid(format!(
                "link `{}` is on a cycle of joints and not connected to the root link `{root}`",
                detached.name
            )));
        }
        Ok(root.to_string())
    }

    fn invalid(&self, message: impl Into<String>) -> ContextError {
        ContextError::invalid(self.path, message)
    }
}

fn is_xacro(text: &str) -> bool {
    text.contains("$(") || text.contains("${")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(text: &str) -> Result<UrdfRobot, ContextError> {
        parse_robot(Path::new("robot.urdf"), text)
    }

    fn message(text: &str) -> String {
        parse(text).expect_err("expected an error").to_string()
    }

    const TWO_LINKS: &str = r#"<robot name="r">
  <link name="base"><inertial><mass value="2.5"/></inertial></link>
  <link name="arm">
    <inertial><mass value=".5"/><origin xyz="0 0 0.1"/><inertia ixx="1E-3" iyy="2" izz="3"/></inertial>
    <collision><origin xyz="0 0 0.2" rpy="0 0.75 0"/><geometry><cylinder radius="0.05" length="0.4"/></geometry></collision>
    <visual><geometry><box size="0.1 0.2 0.3"/></geometry></visual>
  </link>
  <joint name="shoulder" type="revolute">
    <parent link="base"/><child link="arm"/>
    <origin xyz="0 0 1"/>
    <axis xyz="0 1 0"/>
    <limit effort="30" velocity="2" lower="-1.5" upper="1.5"/>
  </joint>
</robot>"#;

    #[test]
    fn reads_links_joints_and_limits() {
        let robot = parse(TWO_LINKS).unwrap();

        assert_eq!(robot.name, "r");
        assert_eq!(robot.root, "base");
        assert_eq!(robot.total_mass(), 3.0);
        let arm = robot.link("arm").unwrap();
        let inertial = arm.inertial.as_ref().unwrap();
        assert_eq!(inertial.origin.xyz, [0.0, 0.0, 0.1]);
        assert_eq!(inertial.inertia, [1e-3, 0.0, 0.0, 2.0, 0.0, 3.0]);
        assert_eq!(
            arm.collisions[0].geometry,
            Geometry::Cylinder {
                radius: 0.05,
                length: 0.4
            }
        );
        assert_eq!(arm.collisions[0].origin.rpy, [0.0, 0.75, 0.0]);
        assert_eq!(
            arm.visuals[0].geometry,
            Geometry::Box {
                size: [0.1, 0.2, 0.3]
            }
        );

        let shoulder = robot.joint("shoulder").unwrap();
        assert_eq!(shoulder.joint_type, JointType::Revolute);
        assert_eq!(
            (shoulder.parent.as_str(), shoulder.child.as_str()),
            ("base", "arm")
        );
        assert_eq!(shoulder.axis, [0.0, 1.0, 0.0]);
        assert_eq!(
            shoulder.limit,
            Some(JointLimit {
                effort: 30.0,
                velocity: 2.0,
                lower: -1.5,
                upper: 1.5
            })
        );
        assert!(robot.warnings.is_empty(), "{:?}", robot.warnings);
    }

    #[test]
    fn errors_name_line_and_problem() {
        let cases = [
            (
                "<robot",
                "robot.urdf:1:1: invalid XML: the document does not have a root node",
            ),
            (
                "<robot name='r'>\n<link name='a'></robot>",
                "robot.urdf:2:16: invalid XML: expected 'link' tag, not 'robot'",
            ),
            (
                "<model/>",
                "robot.urdf:1: expected the root element <robot>, found <model>",
            ),
            (
                "<robot/>",
                "robot.urdf:1: <robot> is missing the attribute `name`",
            ),
            (
                "<robot name='r'/>",
                "robot.urdf:1: <robot> has no <link> elements",
            ),
            (
                "<robot name='r'>\n<link name='a'><inertial><mass value='heavy'/></inertial></link></robot>",
                "robot.urdf:2: `value` of <mass> must be a number, found `heavy`",
            ),
            (
                "<robot name='r'>\n<link name='a'><inertial><mass value='$(arg m)'/></inertial></link></robot>",
                "robot.urdf:2: `value` of <mass> must be a number, found `$(arg m)` (an unexpanded xacro substitution; try expanding the file with xacro first)",
            ),
            (
                "<robot name='r'>\n<link name='a'><inertial/></link></robot>",
                "robot.urdf:2: <inertial> is missing its <mass> element",
            ),
            (
                "<robot name='r'><link name='a'/><link name='b'/>\n<joint name='j' type='hinge'><parent link='a'/><child link='b'/></joint></robot>",
                "robot.urdf:2: joint `j` has the unknown type `hinge`; expected revolute, continuous, prismatic, fixed, floating or planar",
            ),
            (
                "<robot name='r'><link name='a'/><link name='b'/>\n<joint name='j' type='revolute'><parent link='a'/><child link='b'/></joint></robot>",
                "robot.urdf:2: joint `j` is revolute and needs a <limit> element",
            ),
            (
                "<robot name='r'><link name='a'/><link name='b'/>\n<joint name='j' type='fixed'><parent link='a'/></joint></robot>",
                "robot.urdf:2: joint `j` is missing its <child> element",
            ),
            (
                "<robot name='r'><link name='a'/><link name='b'/><joint name='j' type='fixed'>\n<origin xyz='0 1'/><parent link='a'/><child link='b'/></joint></robot>",
                "robot.urdf:2: `xyz` of <origin> must be three numbers, found `0 1`",
            ),
            (
                "<robot name='r'><link name='a'/><link name='b'/><joint name='j' type='continuous'><parent link='a'/><child link='b'/>\n<limit velocity='1'/></joint></robot>",
                "robot.urdf:2: <limit> is missing the attribute `effort`",
            ),
            (
                "<robot name='r'><link name='a'>\n<collision><geometry><cylinder radius='0' length='1'/></geometry></collision></link></robot>",
                "robot.urdf:2: `radius` of <cylinder> in link `a` must be positive, found 0",
            ),
            (
                "<robot name='r'><link name='a'>\n<visual/></link></robot>",
                "robot.urdf:2: <visual> in link `a` is missing its <geometry> element",
            ),
            (
                "<robot name='r'><link name='a'/><link name='a'/></robot>",
                "robot.urdf: two links are named `a`",
            ),
            (
                "<robot name='r'><link name='a'/><link name='b'/></robot>",
                "robot.urdf: the links do not form one tree: `a`, `b` have no parent joint",
            ),
            (
                "<robot name='r'><link name='a'/><joint name='j' type='fixed'><parent link='a'/><child link='c'/></joint></robot>",
                "robot.urdf: joint `j` refers to the link `c`, which is not defined",
            ),
            (
                "<robot name='r'><link name='a'/><link name='b'/><link name='c'/>\
                 <joint name='j1' type='fixed'><parent link='b'/><child link='c'/></joint>\
                 <joint name='j2' type='fixed'><parent link='c'/><child link='b'/></joint></robot>",
                "robot.urdf: link `b` is on a cycle of joints and not connected to the root link `a`",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(message(text), expected, "URDF text {text:?}");
        }
    }

    #[test]
    fn tolerates_xacro_in_origin() {
        let robot = parse(
            "<robot name='r'><link name='a'/><link name='b'/><joint name='j' type='fixed'>\n\
             <origin xyz='$(optenv X 0 0 1)' rpy='0 0 0'/><parent link='a'/><child link='b'/></joint></robot>",
        )
        .unwrap();

        assert_eq!(robot.joint("j").unwrap().origin.xyz, [0.0; 3]);
        assert_eq!(robot.warnings.len(), 1);
        assert_eq!(
            robot.warnings[0].to_string(),
            "line 2: `xyz` of <origin> has the unexpanded xacro substitution `$(optenv X 0 0 1)`; using `0 0 0` (try expanding the file with xacro first)"
        );
    }

    #[test]
    fn warns_about_unresolvable_meshes_once() {
        let robot = parse(
            "<robot name='r'><link name='a'>\
             <visual><geometry><mesh filename='package://pkg/meshes/a.dae'/></geometry></visual>\
             <collision><geometry><mesh filename='package://pkg/meshes/a.dae'/></geometry></collision>\
             <visual><geometry><mesh filename='meshes/none.stl' scale='2 2 2'/></geometry></visual>\
             <visual><geometry><capsule radius='1' length='2'/></geometry></visual>\
             </link></robot>",
        )
        .unwrap();

        let warnings: Vec<String> = robot.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(
            warnings,
            [
                "mesh `package://pkg/meshes/a.dae` uses a ROS `package://` URI, which the loader cannot resolve; try a path relative to the URDF file",
                "mesh `meshes/none.stl` not found (looked for meshes/none.stl)",
                "line 1: unknown geometry <capsule> in link `a` skipped",
            ]
        );
        assert_eq!(robot.link("a").unwrap().visuals.len(), 2);
        let error = robot.require_meshes().unwrap_err();
        assert_eq!(
            error.to_string(),
            "robot.urdf: missing geometry: package://pkg/meshes/a.dae, meshes/none.stl"
        );
    }

    #[test]
    fn records_gazebo_plugins() {
        let robot = parse(
            "<robot name='r'><link name='a'/>\
             <gazebo><plugin filename='libcontrol.so' name='control'/></gazebo>\
             <gazebo reference='a'><sensor name='s'><plugin filename='libcamera.so' name='cam'/></sensor></gazebo>\
             </robot>",
        )
        .unwrap();

        assert_eq!(
            robot.warnings,
            [
                UrdfWarning::GazeboPlugin {
                    filename: "libcontrol.so".to_string(),
                    name: "control".to_string()
                },
                UrdfWarning::GazeboPlugin {
                    filename: "libcamera.so".to_string(),
                    name: "cam".to_string()
                },
            ]
        );
        assert_eq!(robot.require_meshes().unwrap(), Vec::<PathBuf>::new());
    }

    #[test]
    fn link_positions_compose_joint_origins() {
        let robot = parse(
            "<robot name='r'><link name='a'/><link name='b'/><link name='c'/>\
             <joint name='j1' type='fixed'><origin xyz='1 0 0' rpy='0 0 1.5707963267948966'/><parent link='a'/><child link='b'/></joint>\
             <joint name='j2' type='fixed'><origin xyz='2 0 0'/><parent link='b'/><child link='c'/></joint>\
             </robot>",
        )
        .unwrap();

        let positions = robot.link_positions();
        let c = positions["c"];
        assert!((c[0] - 1.0).abs() < 1e-12, "{c:?}");
        assert!((c[1] - 2.0).abs() < 1e-12, "{c:?}");
        assert_eq!(positions["a"], [0.0; 3]);
    }

    proptest! {
        #[test]
        fn parser_never_panics(text in any::<String>()) {
            let _ = parse(&text);
        }

        #[test]
        fn parser_never_panics_on_mangled_urdf(cut in 0usize..TWO_LINKS.len(), insert in "[<>/=\"' a-z0-9$(){}.-]{0,12}") {
            let mut text = TWO_LINKS.to_string();
            let cut = (0..=cut).rev().find(|&index| text.is_char_boundary(index)).unwrap_or(0);
            text.insert_str(cut, &insert);
            let _ = parse(&text);
        }
    }
}
