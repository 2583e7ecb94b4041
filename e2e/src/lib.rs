//! mirror-e2e's library: everything between "here are the manifests" and "here is the report".
//!
//! What the manifests say and what istiod would make of them is the pure model crate
//! (`mirror_e2e_model`: [`manifest`], [`topology`], [`istio`], [`expectations`],
//! [`validation`], [`lint`], the translation in [`envoy`]), re-exported here under the paths
//! the runner has always used. This crate runs things: the mirroring [`suite`] against a
//! [`mesh::Mesh`], local mode ([`local`]) on a real Envoy ([`envoy::process`]), cluster
//! mode and a kwok node's data plane ([`cluster`]), and parity with istiod ([`parity`]). It
//! never provisions clusters: that is xtask's job.

#![warn(clippy::too_many_lines)]
// Tests may read as one long story; production functions stay under 100 lines.
#![cfg_attr(test, allow(clippy::too_many_lines))]

pub mod backend;
pub mod bookinfo;
pub mod cluster;
pub mod compare;
pub mod envoy;
pub mod exit;
pub mod local;
pub mod mesh;
pub mod mirror_log;
pub mod parent;
pub mod parity;
pub mod productpage;
pub mod progress;
pub mod report;
pub mod retry;
pub mod run;
pub mod suite;
pub mod wait;
pub mod workload;

// The pure model, under the paths the runner has always used.
pub use mirror_e2e_model::{
    expectations, hostname, istio, lint, manifest, sampling, topology, validation, version,
};
