//! Delivery as observe → plan → apply.
//!
//! [`plan`] decides, purely, what should happen to each environment and why;
//! the rest of delivery finds out what is true now and carries decisions out.

pub mod plan;
