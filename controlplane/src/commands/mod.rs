//! One module per `l4lb` subcommand (see `cli.rs`).

pub mod check;
pub mod table;
