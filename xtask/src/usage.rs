//! A command line that is wrong (exit 2, as clap's own usage errors): a flag that would be
//! ignored, a version that is not supported. A leaf module: the flags and the version table
//! both raise it, and neither imports the other for it.

/// A usage error, with the text the user reads.
#[derive(Debug)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}
