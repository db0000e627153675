//! `controlplane`: the `l4lb` binary's library: commands, config loading,
//! snapshot publication, replay and traffic generation drivers.
pub mod cli;
pub mod commands;
pub mod events;
pub mod r#gen;
pub mod publish;
pub mod replay;
pub mod stats;
pub mod run;
pub mod live_gen;
