//! Turns one task run into image jobs: repository matching, path mapping, tag-set expansion.

pub mod mapping;
pub mod pattern;
pub mod semver;
pub mod tags;
