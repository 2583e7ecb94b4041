//! mirror-e2e's model: what the manifests say and what istiod would make of them, with no
//! I/O beyond reading the files a user names.
//!
//! It reads manifests ([`manifest`]) into Istio's types ([`istio`]), the Gateway API's
//! ([`gateway_api`]) and a [`topology`],
//! reads what the mesh must do ([`expectations`]), admits routing as istiod's webhook does
//! ([`validation`]), analyzes it offline ([`lint`]), and translates it into the Envoy
//! configuration istiod would push ([`envoy`]). The runner (the `e2e` crate) starts
//! processes, talks to clusters and runs the checks on top of it.

#![warn(clippy::too_many_lines)]

pub mod envoy;
pub mod expectations;
pub mod gateway_api;
pub mod hostname;
pub mod istio;
pub mod lint;
pub mod manifest;
pub mod sampling;
pub mod topology;
pub mod validation;
pub mod version;
