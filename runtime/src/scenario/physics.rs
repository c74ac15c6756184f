//! The rapier3d world every scenario owns, with z up and collision events collected in the
//! order rapier reports them.

use std::sync::Mutex;

use rapier3d::prelude::*;

/// Standard gravity g0 in m/s², the value of the `g0` unit in specs.
pub const GRAVITY: f64 = 9.806_65;

/// A rapier world plus the collision events of its last step.
pub(crate) struct Physics {
    pub world: PhysicsWorld,
    events: EventLog,
}

#[derive(Default)]
struct EventLog {
    collisions: Mutex<Vec<CollisionEvent>>,
}

impl EventHandler for EventLog {
    fn handle_collision_event(
        &self,
        _bodies: &RigidBodySet,
        _colliders: &ColliderSet,
        event: CollisionEvent,
        _contact_pair: Option<&ContactPair>,
    ) {
        // The pipeline calls this from one thread at a time (rapier3d is built without its
        // `parallel` feature), so the lock is never contended and never poisoned by us.
        self.collisions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(event);
    }

    fn handle_contact_force_event(
        &self,
        _dt: Real,
        _bodies: &RigidBodySet,
        _colliders: &ColliderSet,
        _contact_pair: &ContactPair,
        _total_force_magnitude: Real,
    ) {
    }

    fn handle_soft_body_tear_event(&self, _soft_bodies: &SoftBodySet, _event: &SoftBodyTearEvent) {}
}

impl Physics {
    /// Creates an empty world with gravity along −z.
    pub fn new() -> Self {
        let mut world = PhysicsWorld::new();
        world.gravity = Vector::new(0.0, 0.0, -GRAVITY as f32);
        // Clustering merges the contacts of one body pair that share a normal and keeps at
        // most four points, which drops a caster of a five-caster chair. Recycling reuses
        // contact points for up to 5 cm of motion. Both trade accuracy for speed in large
        // scenes; these scenes are small.
        world.integration_parameters.contact_clustering = false;
        world.integration_parameters.contact_recycling = false;
        Physics {
            world,
            events: EventLog::default(),
        }
    }

    /// Advances the world by `h` seconds.
    pub fn substep(&mut self, h: f64) {
        self.world.integration_parameters.dt = h as f32;
        self.world.step_with_events(&(), &self.events);
    }

    /// Takes the collision events recorded since the last call.
    pub fn take_collisions(&mut self) -> Vec<CollisionEvent> {
        std::mem::take(
            self.events
                .collisions
                .get_mut()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }

    pub fn body(&self, handle: RigidBodyHandle) -> &RigidBody {
        &self.world.bodies[handle]
    }

    pub fn body_mut(&mut self, handle: RigidBodyHandle) -> &mut RigidBody {
        &mut self.world.bodies[handle]
    }

    /// Returns the position and velocity of the one degree of freedom of the multibody joint
    /// that moves `link_body`. The position is entry `axis` of the joint's 6-vector of
    /// coordinates: 0 for a prismatic joint along its x axis, 3 for a revolute joint about it.
    pub fn joint_state(&self, link_body: RigidBodyHandle, axis: usize) -> (f64, f64) {
        let joints = &self.world.multibody_joints;
        let link_id = joints
            .rigid_body_link(link_body)
            .expect("the body is a multibody link");
        let multibody = joints
            .get_multibody(link_id.multibody)
            .expect("the multibody exists");
        let link = multibody.link(link_id.id).expect("the link exists");
        let position = link.joint().coords()[axis];
        let velocity = multibody.joint_velocity(link)[0];
        (f64::from(position), f64::from(velocity))
    }

    /// Sets the single joint coordinate and velocity of `link_body` and moves the links to
    /// match, for resets.
    pub fn set_joint_state(
        &mut self,
        link_body: RigidBodyHandle,
        axis: usize,
        position: f64,
        velocity: f64,
    ) {
        let (current, _) = self.joint_state(link_body, axis);
        let world = &mut self.world;
        let link_id = *world
            .multibody_joints
            .rigid_body_link(link_body)
            .expect("the body is a multibody link");
        let multibody = world
            .multibody_joints
            .get_multibody_mut(link_id.multibody)
            .expect("the multibody exists");
        let dof = multibody
            .link(link_id.id)
            .expect("the link exists")
            .assembly_id();
        let mut displacement = vec![0.0; multibody.ndofs()];
        displacement[dof] = (position - current) as f32;
        multibody.apply_displacements(&displacement);
        multibody.generalized_velocity_mut()[dof] = velocity as f32;
        multibody.forward_kinematics(&world.bodies, false);
        multibody.update_rigid_bodies(&mut world.bodies, false);
    }

    /// Removes the default joint damping that rapier gives angular degrees of freedom, so
    /// joints are frictionless unless a scenario adds friction itself.
    pub fn clear_joint_damping(&mut self, link_body: RigidBodyHandle) {
        let joints = &mut self.world.multibody_joints;
        let link_id = *joints
            .rigid_body_link(link_body)
            .expect("the body is a multibody link");
        let multibody = joints
            .get_multibody_mut(link_id.multibody)
            .expect("the multibody exists");
        multibody.damping_mut().fill(0.0);
    }

    /// Drives joint `axis` of `link_body` with a force or torque of `effort` (N or N·m).
    ///
    /// rapier's joint motors are velocity servos with a bounded effort. A target velocity far
    /// beyond any reachable one keeps the servo saturated, so it applies exactly its bound
    /// `|effort|` in the direction of the target: a pure force or torque source.
    pub fn drive_joint(&mut self, link_body: RigidBodyHandle, axis: JointAxis, effort: f64) {
        const UNREACHABLE_VELOCITY: f32 = 1.0e6;
        let joints = &mut self.world.multibody_joints;
        let link_id = *joints
            .rigid_body_link(link_body)
            .expect("the body is a multibody link");
        let multibody = joints
            .get_multibody_mut(link_id.multibody)
            .expect("the multibody exists");
        let link = multibody.link_mut(link_id.id).expect("the link exists");
        let target = if effort >= 0.0 {
            UNREACHABLE_VELOCITY
        } else {
            -UNREACHABLE_VELOCITY
        };
        link.joint
            .data
            .set_motor_model(axis, MotorModel::ForceBased);
        link.joint.data.set_motor_velocity(axis, target, 1.0);
        link.joint
            .data
            .set_motor_max_force(axis, effort.abs() as f32);
    }
}
