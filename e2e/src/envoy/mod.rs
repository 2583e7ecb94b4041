//! Envoy: the configuration istiod would give a sidecar and the ingress gateway, and the
//! process that runs it.

pub mod access_log;
pub mod config;
pub mod gateway;
pub mod headers;
pub mod matches;
pub mod mirrors;
pub mod policies;
pub mod process;
pub mod routes;
