//! The `herald` binary's library: configuration loading and the start-up that builds the whole
//! application, shared by `main` and the integration tests.

pub mod config;
pub mod startup;
