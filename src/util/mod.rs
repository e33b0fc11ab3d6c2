//! Leaf utilities: escaping, roles strings, property keys and `matches`
//! regular expressions.

pub(crate) mod escape;
pub(crate) mod properties;
pub(crate) mod regex;
pub(crate) mod roles;
