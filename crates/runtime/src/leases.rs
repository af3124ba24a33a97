//! This node's leases. Claimed work may wait in a lane before it is decided, and a claim whose
//! lease would run out by then is renewed first, or dropped when another node took it over
//! meanwhile (its lease ran out and it was claimed anew, so it is that node's to decide). Open
//! deliveries are held for as long as they wait for their next attempt, so their leases are
//! renewed together in the background, which also adopts the deliveries no live lease holds.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use herald_store::{DeliveryRecord, Lease, LeaseToken, Store, Work};
use jiff::{SignedDuration, Timestamp};

use crate::clock::Clock;

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
/// running out are renewed for a whole lease of `holder`'s; those lost are left out.
pub(crate) async fn keep_held(store: &dyn Store, now: Timestamp, holder: Holder, work: Vec<Work>) -> Vec<Work> {
    let half = SignedDuration::try_from(holder.length / 2).unwrap_or(SignedDuration::MAX);
    let running_out = |w: &Work| now.duration_until(w.lease().until) < half;
    let stale: Vec<Work> = work.iter().filter(|w| running_out(w)).cloned().collect();
    if stale.is_empty() {
        return work;
    }
    let asked = stale.len();
    let renewed: HashMap<Key, Work> = match store.renew(stale, holder.lease(now).until).await {
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

/// This node as a holder of leases: its token and how long each lease lasts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Holder {
    /// Names this node in every lease it holds.
    pub(crate) token: LeaseToken,
    /// How long a lease lasts unless renewed.
    pub(crate) length: Duration,
}

impl Holder {
    /// A new node's holder.
    pub(crate) fn mint(length: Duration) -> Self {
        Self { token: LeaseToken::mint(), length }
    }

    /// A lease from `now`.
    pub(crate) fn lease(&self, now: Timestamp) -> Lease {
        Lease::new(self.token, now, self.length)
    }
}

/// Deliveries adopted per store round trip.
const ADOPT_BATCH: u32 = 1024;

/// Keeps this node's deliveries: every third of a lease, renews all it holds and adopts what no
/// live lease holds (at start: what the previous run left once its lease ran out, or at once after
/// a clean stop), handing each adopted delivery to `dispatch`.
pub(crate) async fn keep_deliveries(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    holder: Holder,
    dispatch: impl Fn(DeliveryRecord) + Send + 'static,
) {
    loop {
        let now = clock.now();
        if let Err(e) = store.renew_deliveries(holder.lease(now)).await {
            tracing::warn!(error = %e, "cannot renew the leases of deliveries");
        }
        loop {
            match store.adopt_deliveries(holder.lease(now), now, ADOPT_BATCH).await {
                Ok(adopted) => {
                    let full = adopted.len() == ADOPT_BATCH as usize;
                    if !adopted.is_empty() {
                        tracing::info!(count = adopted.len(), "adopting deliveries no live lease holds");
                    }
                    adopted.into_iter().for_each(&dispatch);
                    if !full {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot adopt deliveries");
                    break;
                }
            }
        }
        tokio::time::sleep(holder.length / 3).await;
    }
}
