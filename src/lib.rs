//! hydrant renders a vendor's release channel, layered with per-environment
//! overrides kept in git, into Kubernetes manifests delivered as pull requests.

pub mod render;
pub mod yaml;
