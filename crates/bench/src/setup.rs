//! What a run needs on the server, made idempotently at the start of every run: the four bench
//! templates, the bench users each with exactly one webhook device (pointing at this run's
//! sink), and user tokens for the inboxes to watch.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures::{StreamExt, TryStreamExt};
use reqwest::Method;
use serde_json::{Value, json};

use crate::api::Api;
use crate::cli::Class;
use crate::error::BenchError;

/// Setup calls in flight: enough to be quick, few enough not to look like load.
const SETUP_CONCURRENCY: usize = 16;

/// The id of bench user number `i`.
pub fn user_id(i: u64) -> String {
    format!("bench-u{i}")
}

/// Whether user `i` of `users` is one of the `streams` whose inbox is watched. The watched users
/// are spread evenly (every tenth of 1000 for 100 streams), so that any stretch of round-robin
/// sends, a short run's included, reaches watched and unwatched users in proportion.
pub fn watched(i: u64, users: u64, streams: u64) -> bool {
    (i * streams) % users < streams
}

/// The template of `class`: the title names the class and the body is the send time, in the
/// inbox and in the webhook alike, so that both paths can be timed.
fn template(class: Class) -> Value {
    let block = json!({"title": class.as_str(), "body": "{{ t }}"});
    json!({"class": class.as_str(), "channels": {"in_app": block, "webhook": block}})
}

/// Creates or replaces the four bench templates.
pub async fn templates(api: &Api) -> Result<(), BenchError> {
    for class in Class::ALL {
        api.call(Method::PUT, &format!("/v1/templates/{}", class.template()), Some(&template(class))).await?;
    }
    Ok(())
}

/// Creates `bench-u0`.. up to `users`, each with one webhook device pointing at `sink_url`;
/// webhook devices left by earlier runs (whose sinks are gone) are removed.
pub async fn users(api: &Api, users: u32, sink_url: &str) -> Result<(), BenchError> {
    futures::stream::iter(0..u64::from(users))
        .map(|i| user(api, i, sink_url))
        .buffer_unordered(SETUP_CONCURRENCY)
        .try_collect::<()>()
        .await
}

async fn user(api: &Api, i: u64, sink_url: &str) -> Result<(), BenchError> {
    let id = user_id(i);
    api.call(Method::PUT, &format!("/v1/users/{id}"), Some(&json!({"name": format!("Bench user {i}")}))).await?;
    let devices = api.call(Method::GET, &format!("/v1/users/{id}/devices"), None).await?;
    let mut ours = false;
    for d in devices["items"].as_array().into_iter().flatten().filter(|d| d["kind"] == "webhook") {
        if d["url"] == sink_url && !ours {
            ours = true;
            continue;
        }
        if let Some(device) = d["id"].as_str() {
            api.call(Method::DELETE, &format!("/v1/users/{id}/devices/{device}"), None).await?;
        }
    }
    if !ours {
        let secret = format!("whsec_{}", STANDARD.encode(rand::random::<[u8; 24]>()));
        let device = json!({"kind": "webhook", "url": sink_url, "secret": secret});
        api.call(Method::POST, &format!("/v1/users/{id}/devices"), Some(&device)).await?;
    }
    Ok(())
}

/// User tokens for the `streams` users whose inboxes are watched.
pub async fn tokens(api: &Api, users: u32, streams: u32) -> Result<Vec<String>, BenchError> {
    let (users, streams) = (u64::from(users), u64::from(streams));
    futures::stream::iter((0..users).filter(move |i| watched(*i, users, streams)))
        .map(|i| async move {
            let t = api.call(Method::POST, &format!("/v1/users/{}/token", user_id(i)), Some(&json!({}))).await?;
            t["token"].as_str().map(str::to_owned).ok_or_else(|| BenchError::Other(format!("no token in {t}")))
        })
        .buffered(SETUP_CONCURRENCY)
        .try_collect()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watched_users_are_spread_evenly() {
        let of = |users, streams| (0..users).filter(|i| watched(*i, users, streams)).collect::<Vec<u64>>();
        assert_eq!(of(20, 5), vec![0, 4, 8, 12, 16]);
        assert_eq!(of(7, 3), vec![0, 3, 5]);
        assert_eq!(of(5, 5), vec![0, 1, 2, 3, 4]);
        assert_eq!(of(5, 0), Vec::<u64>::new());
        let many = of(1000, 100);
        assert_eq!((many.len(), many[1], many[99]), (100, 10, 990));
    }

    #[test]
    fn templates_carry_the_class_and_the_send_time() {
        let t = template(Class::Marketing);
        assert_eq!(t["class"], "marketing");
        for block in ["in_app", "webhook"] {
            assert_eq!(t["channels"][block], json!({"title": "marketing", "body": "{{ t }}"}));
        }
    }
}
