//! One module per `l4lb` subcommand (see `cli.rs`).

pub mod check;
pub mod r#gen;
pub mod replay;
pub mod run;
pub mod sink;
pub mod table;
