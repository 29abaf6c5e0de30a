//! hydrant renders a vendor's release channel, layered with per-environment
//! overrides kept in git, into Kubernetes manifests delivered as pull requests.
//!
//! The pure parts ([`spec`], [`render`], [`manifest`], [`pipeline`], [`yaml`])
//! do no IO; [`channel`], [`repo`] and [`output`] are the edges; [`project`]
//! composes them and [`cli`] drives it.

pub mod auth;
pub mod backoff;
pub mod channel;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod delivery;
pub mod forge;
#[doc(hidden)]
pub mod fuzzing;
pub mod gates;
pub mod git;
pub mod manifest;
pub mod names;
pub(crate) mod outbound;
pub mod output;
pub mod pipeline;
pub mod project;
pub mod reconcile;
pub mod render;
pub mod repo;
pub mod rollout;
pub mod settings;
pub mod spec;
pub mod tree;
pub mod yaml;
