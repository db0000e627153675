//! `controlplane`: the `l4lb` binary's library: commands, config loading,
//! snapshot publication, replay and traffic generation drivers.
pub mod cli;
pub mod live_gen;
