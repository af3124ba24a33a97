//! `KeyStore`: health, server secrets made once, and API keys (created by hash, listed newest
//! first, found by hash while active, revoked by id or by name, names unique among active keys).

use herald_store::{ApiKeyRecord, StoreError};
use uuid::Uuid;

use crate::backends;
use crate::fixtures::at;

fn api_key(name: &str, n: u8, created: i64) -> ApiKeyRecord {
    ApiKeyRecord {
        id: Uuid::now_v7(),
        name: name.into(),
        prefix: format!("hk_{n:05}"),
        hash: vec![n; 32],
        created_at: at(created),
        revoked_at: None,
    }
}

#[tokio::test]
async fn ping_answers() {
    for b in backends().await {
        b.ping().await.unwrap_or_else(|e| panic!("{b}: ping failed: {e}"));
    }
}

#[tokio::test]
async fn a_secret_is_created_once_and_read_back_the_same() {
    for b in backends().await {
        let first = b.secret("signing", vec![1, 2, 3]).await.unwrap();
        assert_eq!(first, vec![1, 2, 3], "{b}: the first call stores its init");
        // Another process starting later offers its own fresh secret: the stored one wins.
        let again = b.secret("signing", vec![9, 9]).await.unwrap();
        assert_eq!(again, vec![1, 2, 3], "{b}: a secret is never replaced");
        let other = b.secret("vapid", vec![7]).await.unwrap();
        assert_eq!(other, vec![7], "{b}: secrets are kept by name");
    }
}

#[tokio::test]
async fn api_keys_are_listed_newest_first_and_found_by_hash_while_active() {
    for b in backends().await {
        assert!(b.list_api_keys().await.unwrap().is_empty(), "{b}: no keys at first");
        let (older, newer) = (api_key("ci", 1, 10), api_key("deploy", 2, 20));
        b.create_api_key(older.clone()).await.unwrap();
        b.create_api_key(newer.clone()).await.unwrap();

        let listed = b.list_api_keys().await.unwrap();
        let ids: Vec<Uuid> = listed.iter().map(|k| k.id).collect();
        assert_eq!(ids, vec![newer.id, older.id], "{b}: newest first");
        let ci = &listed[1];
        assert_eq!(
            (ci.name.as_str(), ci.prefix.as_str(), ci.hash.as_slice(), ci.created_at, ci.revoked_at),
            ("ci", "hk_00001", older.hash.as_slice(), at(10), None),
            "{b}: a key reads back as created"
        );

        let found = b.find_api_key(&older.hash).await.unwrap().map(|k| k.id);
        assert_eq!(found, Some(older.id), "{b}: found by hash");
        assert!(b.find_api_key(&[0; 32]).await.unwrap().is_none(), "{b}: an unknown hash finds nothing");
    }
}

#[tokio::test]
async fn keys_are_revoked_by_id_or_by_name_and_stop_working() {
    for b in backends().await {
        let (ci, deploy) = (api_key("ci", 1, 10), api_key("deploy", 2, 20));
        b.create_api_key(ci.clone()).await.unwrap();
        b.create_api_key(deploy.clone()).await.unwrap();

        let revoked = b.revoke_api_key("ci", at(30)).await.unwrap().expect("revoked by name");
        assert_eq!((revoked.id, revoked.revoked_at), (ci.id, Some(at(30))), "{b}: the key named, revoked now");
        let revoked = b.revoke_api_key(&deploy.id.to_string(), at(31)).await.unwrap().expect("revoked by id");
        assert_eq!(revoked.id, deploy.id, "{b}: revoked by id");

        assert!(b.find_api_key(&ci.hash).await.unwrap().is_none(), "{b}: a revoked key no longer authenticates");
        assert!(b.revoke_api_key("ci", at(32)).await.unwrap().is_none(), "{b}: nothing active has that name");
        assert!(b.revoke_api_key("nobody", at(32)).await.unwrap().is_none(), "{b}: an unknown key is not revoked");
        let listed = b.list_api_keys().await.unwrap();
        assert!(
            listed.iter().all(|k| k.revoked_at.is_some()) && listed.len() == 2,
            "{b}: revoked keys stay listed, marked revoked"
        );
    }
}

#[tokio::test]
async fn an_active_name_is_unique_and_a_revoked_name_can_be_used_again() {
    for b in backends().await {
        let first = api_key("ci", 1, 10);
        b.create_api_key(first.clone()).await.unwrap();
        match b.create_api_key(api_key("ci", 2, 20)).await {
            Err(StoreError::ApiKeyNameTaken { name, id }) => {
                assert_eq!((name.as_str(), id), ("ci", first.id), "{b}: the clash names the active key")
            }
            other => panic!("{b}: expected the name to be taken, got {other:?}"),
        }
        assert!(b.find_api_key(&[2; 32]).await.unwrap().is_none(), "{b}: the refused key was not stored");

        b.revoke_api_key("ci", at(30)).await.unwrap();
        let second = api_key("ci", 3, 40);
        b.create_api_key(second.clone()).await.unwrap_or_else(|e| panic!("{b}: a revoked name is free: {e}"));
        let revoked = b.revoke_api_key("ci", at(50)).await.unwrap().map(|k| k.id);
        assert_eq!(revoked, Some(second.id), "{b}: the name now means the new key");
    }
}
