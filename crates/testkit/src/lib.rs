//! Local fakes that speak the real protocols of Herald's providers, for tests: nothing here is
//! used by the service itself.

pub mod apns;
pub mod fcm;
pub mod python;
pub mod smtp;
pub mod tls;
pub mod twilio;
pub mod web_push;
