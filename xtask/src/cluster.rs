//! The ways to get a cluster, one module each: `kind` (Docker, `kind create`, istioctl),
//! `kwok` (a real control plane as local processes, no Docker) and `existing` (someone's
//! cluster, only a namespace of the run's own). Each owns its cluster's lifetime under one
//! rule: delete only what this run created. After "the cluster exists" every provider hands
//! `mirror-e2e cluster` a kubeconfig and runs the same suite (ARCHITECTURE.md, "Cluster
//! providers, and where a fourth goes").

pub mod existing;
pub mod keep;
pub mod kind;
pub mod kwok;
pub mod lifetime;

#[cfg(test)]
pub use kind::fakes;
pub use kind::{Istioctl, Kind, docker_is_running};
