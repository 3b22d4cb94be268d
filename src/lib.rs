//! telltale: watches unattended processes and tells a team, once and only when it matters,
//! that one of them has gone silent, failed or hung.
//!
//! The binary is `src/main.rs`; this library is everything it runs, so that black-box tests
//! can start the real application in-process with an injected clock.

pub mod agent;
pub mod api;
pub mod app;
pub mod clock;
pub mod commands;
pub mod config;
pub mod detector;
pub mod hosts;
pub mod keys;
pub mod limits;
pub mod notify;
pub mod replay;
pub mod startup;
pub mod store;
pub mod users;
pub mod web;
