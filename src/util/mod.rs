//! Leaf utilities: escaping, roles strings and property keys.

pub(crate) mod escape;
pub(crate) mod properties;
pub(crate) mod roles;
