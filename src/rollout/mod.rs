//! Rollouts: which release each environment may take now, and why not.
//!
//! Pure: waves, soak times, holds and skipped releases in, one decision per
//! environment out. No IO, no clock (the caller passes the time), no git.

pub mod budget;
pub mod duration;
pub mod freeze;
pub mod gate;
pub mod holds;
