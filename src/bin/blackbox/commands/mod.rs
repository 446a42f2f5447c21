//! The commands, one file each.

pub(crate) mod convert;
pub(crate) mod events;
pub(crate) mod export;
pub(crate) mod open;
pub(crate) mod recover;
pub(crate) mod render;
pub(crate) mod spans;
pub(crate) mod summary;
pub(crate) mod validate;
