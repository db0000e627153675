//! `controlplane`: the `l4lb` binary's library: commands, config loading,
//! snapshot publication, replay and traffic generation drivers.
pub mod cli;
pub mod commands;
pub mod events;
pub mod flow_memory;
pub mod r#gen;
pub mod live_gen;
pub mod publish;
pub mod replay;
pub mod run;
pub mod stats;
