//! Cluster mode: the suite against a real Kubernetes cluster with Istio, through the API.
//!
//! This crate does not create clusters or install Istio (xtask does); it applies the
//! manifests, waits for them, drives traffic through the ingress gateway, reads the mirror's
//! logs, and collects evidence.

pub mod apply;
pub mod ready;
#[cfg(test)]
mod test_api;
