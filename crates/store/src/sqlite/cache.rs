//! In-memory copies of what every decision and every send reads: users with their preferences,
//! devices and blocked addresses, templates, and the notifications just accepted. The embedded store is the only writer of its
//! database, so it can keep them exact: every write that touches them invalidates them when it
//! commits, and while such a write is in flight nothing is served from (or added to) the cache,
//! so a reader never sees a value older than the last committed write. Consent re-checked just
//! before a send therefore reads the truth. Both maps are bounded: when
//! full, they start over.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use herald_domain::UserId;
use herald_domain::ids::TemplateKey;

use uuid::Uuid;

use crate::{NotificationRecord, TemplateRecord, UserState};

/// Users kept at most.
const MAX_USERS: usize = 100_000;
/// Templates kept at most.
const MAX_TEMPLATES: usize = 10_000;
/// Notifications kept at most: those accepted last, which lanes are about to decide.
const MAX_NOTIFICATIONS: usize = 50_000;

/// What a write may have changed.
pub(super) enum Touches {
    /// One user's profile, preferences or devices.
    User(UserId),
    /// One template.
    Template(TemplateKey),
    /// One notification (cancelled).
    Notification(Uuid),
    /// Anything (address blocks and provider feedback reach users by address).
    Everything,
}

/// The cached copies.
#[derive(Default)]
pub(super) struct Cache {
    users: Mutex<HashMap<UserId, UserState>>,
    templates: Mutex<HashMap<TemplateKey, TemplateRecord>>,
    notifications: Mutex<HashMap<Uuid, Arc<NotificationRecord>>>,
    /// Bumped whenever a write commits: a read that started before must not be cached.
    epoch: AtomicU64,
    /// Writes that may change cached values and have not finished.
    writing: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The maps only hold copies; after a panic elsewhere they are still usable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Cache {
    /// The moment a read starts: `None` while a write is in flight (then read the database).
    pub(super) fn snapshot(&self) -> Option<u64> {
        let epoch = self.epoch.load(Ordering::SeqCst);
        (self.writing.load(Ordering::SeqCst) == 0).then_some(epoch)
    }

    /// Whether values read since `snapshot` may be cached.
    fn still(&self, snapshot: u64) -> bool {
        self.writing.load(Ordering::SeqCst) == 0 && self.epoch.load(Ordering::SeqCst) == snapshot
    }

    /// The cached states of `users` (`None` where not cached).
    pub(super) fn users(&self, users: &[UserId]) -> Vec<Option<UserState>> {
        let map = lock(&self.users);
        users.iter().map(|u| map.get(u).cloned()).collect()
    }

    /// Caches states read since `snapshot`; users that do not exist are not cached (a send can
    /// create them at any time).
    pub(super) fn keep_users(&self, snapshot: u64, states: &[UserState]) {
        let mut map = lock(&self.users);
        if !self.still(snapshot) {
            return;
        }
        if map.len() + states.len() > MAX_USERS {
            map.clear();
        }
        for s in states.iter().filter(|s| s.user.is_some()) {
            map.insert(s.id.clone(), s.clone());
        }
    }

    /// A cached template.
    pub(super) fn template(&self, key: &TemplateKey) -> Option<TemplateRecord> {
        lock(&self.templates).get(key).cloned()
    }

    /// Caches a template read since `snapshot`.
    pub(super) fn keep_template(&self, snapshot: u64, key: &TemplateKey, record: &TemplateRecord) {
        let mut map = lock(&self.templates);
        if !self.still(snapshot) {
            return;
        }
        if map.len() >= MAX_TEMPLATES {
            map.clear();
        }
        map.insert(key.clone(), record.clone());
    }

    /// The cached notifications among `ids` (`None` where not cached).
    pub(super) fn notifications(&self, ids: &[Uuid]) -> Vec<Option<Arc<NotificationRecord>>> {
        let map = lock(&self.notifications);
        ids.iter().map(|id| map.get(id).cloned()).collect()
    }

    /// Keeps notifications just accepted (current by construction).
    pub(super) fn keep_notifications(&self, records: impl IntoIterator<Item = NotificationRecord>) {
        let mut map = lock(&self.notifications);
        if map.len() >= MAX_NOTIFICATIONS {
            map.clear();
        }
        map.extend(records.into_iter().map(|n| (n.id, Arc::new(n))));
    }

    /// Keeps notifications read since `snapshot`.
    pub(super) fn keep_read_notifications(&self, snapshot: u64, records: &[Arc<NotificationRecord>]) {
        if self.still(snapshot) {
            let mut map = lock(&self.notifications);
            if map.len() >= MAX_NOTIFICATIONS {
                map.clear();
            }
            map.extend(records.iter().map(|n| (n.id, n.clone())));
        }
    }

    /// Marks a write in flight until the guard drops, then forgets what it touched.
    pub(super) fn write(&self, touches: Touches) -> WriteGuard<'_> {
        self.writing.fetch_add(1, Ordering::SeqCst);
        WriteGuard { cache: self, touches }
    }
}

/// A write in flight; dropping it (committed, failed or cancelled) invalidates what it touched.
pub(super) struct WriteGuard<'a> {
    cache: &'a Cache,
    touches: Touches,
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        match &self.touches {
            Touches::User(u) => {
                lock(&self.cache.users).remove(u);
            }
            Touches::Template(k) => {
                lock(&self.cache.templates).remove(k);
            }
            Touches::Notification(id) => {
                lock(&self.cache.notifications).remove(id);
            }
            Touches::Everything => {
                lock(&self.cache.users).clear();
                lock(&self.cache.templates).clear();
            }
        }
        self.cache.epoch.fetch_add(1, Ordering::SeqCst);
        self.cache.writing.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn state(id: &str) -> UserState {
        let id = UserId::parse("u", id).unwrap();
        UserState {
            user: Some(crate::UserRecord {
                user: herald_domain::user::User::bare(id.clone()),
                created_at: jiff::Timestamp::UNIX_EPOCH,
                updated_at: jiff::Timestamp::UNIX_EPOCH,
                erased_at: None,
            }),
            id,
            preferences: None,
            devices: Vec::new(),
            blocked: BTreeMap::new(),
        }
    }

    #[test]
    fn a_read_that_overlaps_a_write_is_not_kept() {
        let cache = Cache::default();
        let ana = state("ana");
        // Read, then a write commits before the value is kept: it must not be kept.
        let before = cache.snapshot().unwrap();
        drop(cache.write(Touches::User(ana.id.clone())));
        cache.keep_users(before, std::slice::from_ref(&ana));
        assert!(cache.users(std::slice::from_ref(&ana.id))[0].is_none());
        // While a write is in flight nothing is served.
        let guard = cache.write(Touches::Everything);
        assert!(cache.snapshot().is_none());
        drop(guard);
        let now = cache.snapshot().unwrap();
        cache.keep_users(now, std::slice::from_ref(&ana));
        assert!(cache.users(std::slice::from_ref(&ana.id))[0].is_some());
        // A write to the user forgets it.
        drop(cache.write(Touches::User(ana.id.clone())));
        assert!(cache.users(std::slice::from_ref(&ana.id))[0].is_none());
    }

    #[test]
    fn users_that_do_not_exist_are_not_kept() {
        let cache = Cache::default();
        let mut ghost = state("ghost");
        ghost.user = None;
        cache.keep_users(cache.snapshot().unwrap(), std::slice::from_ref(&ghost));
        assert!(cache.users(std::slice::from_ref(&ghost.id))[0].is_none());
    }
}
