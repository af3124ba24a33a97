//! Keeping claims: claimed work may wait in a lane before it is decided, and a claim whose lease
//! would run out by then is renewed first, or dropped when another node took it over meanwhile
//! (its lease ran out and it was claimed anew, so it is that node's to decide).

use std::collections::HashMap;
use std::time::Duration;

use herald_store::{Store, Work};
use jiff::{SignedDuration, Timestamp};

/// Which queue row a claim is on.
#[derive(PartialEq, Eq, Hash)]
enum Key {
    Recipient(i64),
    Flush(String),
}

fn key(w: &Work) -> Key {
    match w {
        Work::Decide(i) => Key::Recipient(i.seq),
        Work::Flush(f) => Key::Flush(f.user_id.as_str().to_owned()),
    }
}

/// `work` in its order, its claims good for at least half a lease from `now`: the ones closer to
/// running out are renewed for a whole `lease`; those lost are left out.
pub(crate) async fn keep_held(store: &dyn Store, now: Timestamp, lease: Duration, work: Vec<Work>) -> Vec<Work> {
    let half = SignedDuration::try_from(lease / 2).unwrap_or(SignedDuration::MAX);
    let running_out = |w: &Work| now.duration_until(w.lease().until) < half;
    let stale: Vec<Work> = work.iter().filter(|w| running_out(w)).cloned().collect();
    if stale.is_empty() {
        return work;
    }
    let until =
        now.checked_add(SignedDuration::try_from(lease).unwrap_or(SignedDuration::MAX)).unwrap_or(Timestamp::MAX);
    let asked = stale.len();
    let renewed: HashMap<Key, Work> = match store.renew(stale, until).await {
        Ok(kept) => kept.into_iter().map(|w| (key(&w), w)).collect(),
        Err(e) => {
            // The ack is fenced by the lease token anyway: deciding on is safe, at worst wasted.
            tracing::warn!(error = %e, "cannot renew leases; deciding on");
            return work;
        }
    };
    if renewed.len() < asked {
        tracing::info!(lost = asked - renewed.len(), "claims taken over after their lease ran out are left");
        metrics::counter!("herald_leases_lost_total").increment((asked - renewed.len()) as u64);
    }
    work.into_iter().filter_map(|w| if running_out(&w) { renewed.get(&key(&w)).cloned() } else { Some(w) }).collect()
}
