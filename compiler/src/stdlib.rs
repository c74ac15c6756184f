//! The standard library: `.basin` modules compiled into the program, so that `basin` works
//! from any folder without installing library files.

/// One module of the standard library.
pub struct Module {
    /// The path used in `use`, e.g. `std.robots`.
    pub path: &'static str,
    pub source: &'static str,
}

pub const MODULES: &[Module] = &[
    Module { path: "std.furniture", source: include_str!("../../stdlib/std/furniture.basin") },
    Module { path: "std.geometry", source: include_str!("../../stdlib/std/geometry.basin") },
    Module { path: "std.materials", source: include_str!("../../stdlib/std/materials.basin") },
    Module { path: "std.mechanics", source: include_str!("../../stdlib/std/mechanics.basin") },
    Module { path: "std.robots", source: include_str!("../../stdlib/std/robots.basin") },
];
