//! The contract between `cargo xtask` and the `mirror-e2e` runner it starts: the runner's
//! command line as typed arguments (`args`: mirror-e2e parses them, xtask builds them and
//! passes `to_args()`), the environment variables both read (`env`), the exit codes
//! (`exit`), the run id (`run_id`) and the patience both take (`patience`). Nothing here
//! does I/O beyond reading the clock and the environment.

// Every function stays under clippy's default 100 lines (issue 25).
#![warn(clippy::too_many_lines)]

pub mod args;
pub mod env;
pub mod exit;
pub mod patience;
pub mod run_id;

pub use args::RunnerCommand;
pub use patience::{parse_seconds, seconds_arg};
pub use run_id::new_run_id;
