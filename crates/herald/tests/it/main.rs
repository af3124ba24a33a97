//! Herald's integration tests: each starts the real application on port 0 (or the real binary,
//! for crash tests) and talks HTTP to it.

mod cli;
mod common;
mod crash;
mod delivery;
mod engine;
mod errors;
mod inbox;
mod notifications;
mod outbound;
mod providers;
mod readme;
mod rest;
mod twilio;
mod webhook;
