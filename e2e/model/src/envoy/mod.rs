//! The configuration istiod would give a sidecar and the ingress gateway: routes
//! ([`routes`], [`gateway`]), their parts ([`matches`], [`headers`], [`mirrors`],
//! [`policies`], [`order`]), the bootstrap and xDS files ([`config`]), and the one assembly of them
//! for a topology ([`translation`]).

pub mod config;
pub mod gateway;
pub mod headers;
pub mod matches;
pub mod mirrors;
pub mod order;
pub mod policies;
pub mod routes;
pub mod translation;
