//! One module per `l4lb` subcommand (see `cli.rs`).

/// `println!` that ignores a closed stdout (`l4lb table | head` must not panic).
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($t)*);
    }};
}
/// `print!` that ignores a closed stdout.
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout().lock(), $($t)*);
    }};
}
pub(crate) use {out, outln};

pub mod check;
pub mod r#gen;
pub mod replay;
pub mod run;
pub mod table;
