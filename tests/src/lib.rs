//! Shared helpers for l4lb's integration tests.

pub mod netns;
