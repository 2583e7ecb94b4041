//! Envoy: the configuration istiod would give a sidecar, and the process that runs it.

pub mod access_log;
pub mod config;
pub mod process;
