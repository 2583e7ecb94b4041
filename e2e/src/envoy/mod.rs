//! Envoy: the process that runs the configuration, and its access log. The configuration
//! itself is the model's (`mirror_e2e_model::envoy`), re-exported here.

pub mod access_log;
pub mod process;

pub use mirror_e2e_model::envoy::{
    config, gateway, headers, matches, mirrors, policies, routes, translation,
};
