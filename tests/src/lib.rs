//! Shared helpers for l4lb's integration tests: an independent packet builder,
//! capture helpers, and (for root-only tests) network namespaces.

pub mod builder;
pub mod captures;
pub mod netns;
