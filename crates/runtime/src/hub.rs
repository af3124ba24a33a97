//! The live inbox hub: per-user broadcast of new inbox items and unread counts to open streams.
//! A user with at least one open stream is *online*.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use herald_store::InboxItem;
use tokio::sync::broadcast;

/// An event for a user's open streams.
#[derive(Debug, Clone)]
pub enum LiveEvent {
    /// A new inbox item.
    Notification(Box<InboxItem>),
    /// The unread count changed.
    UnreadCount(u64),
}

/// Events a slow stream may lag behind before it is told to resync.
const BUFFER: usize = 256;

/// Shared handle to the hub.
#[derive(Clone, Default)]
pub struct Hub {
    users: Arc<Mutex<HashMap<String, broadcast::Sender<LiveEvent>>>>,
}

/// An open stream's subscription; dropping it may take the user offline.
pub struct Subscription {
    /// Receives the user's events.
    pub events: broadcast::Receiver<LiveEvent>,
    user: String,
    hub: Hub,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut users = self.hub.users.lock().unwrap_or_else(|p| p.into_inner());
        // Our receiver is still alive here, hence `<= 1`.
        if users.get(&self.user).is_some_and(|tx| tx.receiver_count() <= 1) {
            users.remove(&self.user);
            metrics::gauge!("herald_online_users").set(users.len() as f64);
        }
    }
}

impl Hub {
    /// Opens a subscription for `user`.
    pub fn subscribe(&self, user: &str) -> Subscription {
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        let events = users.entry(user.to_owned()).or_insert_with(|| broadcast::channel(BUFFER).0).subscribe();
        metrics::gauge!("herald_online_users").set(users.len() as f64);
        Subscription { events, user: user.to_owned(), hub: self.clone() }
    }

    /// Sends `event` to the user's open streams, if any.
    pub fn publish(&self, user: &str, event: LiveEvent) {
        let users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = users.get(user) {
            let _ = tx.send(event);
        }
    }

    /// Whether the user has an open stream.
    pub fn is_online(&self, user: &str) -> bool {
        self.users.lock().unwrap_or_else(|p| p.into_inner()).contains_key(user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presence_follows_subscriptions() {
        let hub = Hub::default();
        assert!(!hub.is_online("u1"));
        let a = hub.subscribe("u1");
        let b = hub.subscribe("u1");
        assert!(hub.is_online("u1"));
        drop(a);
        assert!(hub.is_online("u1"));
        drop(b);
        assert!(!hub.is_online("u1"));
    }

    #[tokio::test]
    async fn events_reach_every_stream_of_the_user_only() {
        let hub = Hub::default();
        let mut a = hub.subscribe("u1");
        let mut b = hub.subscribe("u1");
        let mut other = hub.subscribe("u2");
        hub.publish("u1", LiveEvent::UnreadCount(3));
        assert!(matches!(a.events.recv().await, Ok(LiveEvent::UnreadCount(3))));
        assert!(matches!(b.events.recv().await, Ok(LiveEvent::UnreadCount(3))));
        assert!(other.events.try_recv().is_err());
    }
}
