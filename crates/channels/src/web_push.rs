//! Web Push: RFC 8291 payload encryption and RFC 8292 VAPID.
