//! The configuration istiod would give a sidecar and the ingress gateway: routes
//! ([`routes`], [`gateway`]), their parts ([`matches`], [`headers`], [`mirrors`],
//! [`policies`]), and the bootstrap and xDS files ([`config`]).

pub mod config;
pub mod gateway;
pub mod headers;
pub mod matches;
pub mod mirrors;
pub mod policies;
pub mod routes;
