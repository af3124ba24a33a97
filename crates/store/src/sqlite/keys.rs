//! API keys. An active key's name is unique (a partial unique index), so a name given to
//! `revoke` means one key, and a revoked key's name can be used again.

use jiff::Timestamp;
use rusqlite::{Connection, params};
use uuid::Uuid;

use async_trait::async_trait;

use super::SqliteStore;
use super::rows::{all, api_key_row, col0, exec, first, one, parse_uuid};
use crate::ApiKeyRecord;
use crate::{KeyStore, StoreError, StoreResult, to_ms};

/// Inserts `key`, unless an active key has its name: then that key's id, and nothing is written.
pub(super) fn create(c: &Connection, key: &ApiKeyRecord) -> StoreResult<Option<Uuid>> {
    // Looked up in the same write as the insert (the writer is the only one): a clash is an
    // answer, not a failed statement that would roll back the writes sharing the transaction.
    let taken: Option<String> =
        first(c, "SELECT id FROM api_keys WHERE name = ? AND revoked_at IS NULL", [&key.name], col0)?;
    if let Some(id) = taken {
        return Ok(Some(parse_uuid(&id)?));
    }
    exec(
        c,
        "INSERT INTO api_keys (id, name, prefix, hash, created_at) VALUES (?, ?, ?, ?, ?)",
        params![key.id.to_string(), key.name, key.prefix, key.hash, to_ms(key.created_at)],
    )?;
    Ok(None)
}

/// Revokes the active key whose id is `target`, else the active key named `target`; returns it.
pub(super) fn revoke(c: &Connection, target: &str, now: Timestamp) -> StoreResult<Option<ApiKeyRecord>> {
    // A name that happens to be another key's id loses to the id.
    first(
        c,
        "UPDATE api_keys SET revoked_at = ?1 WHERE id = (
             SELECT id FROM api_keys WHERE revoked_at IS NULL AND (id = ?2 OR name = ?2)
             ORDER BY id = ?2 DESC LIMIT 1
         ) RETURNING *",
        params![to_ms(now), target],
        api_key_row,
    )
}

#[async_trait]
impl KeyStore for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        self.reads.read(|c| one(c, "SELECT 1", [], col0::<i64>).map(drop)).await
    }

    async fn secret(&self, name: &str, init: Vec<u8>) -> StoreResult<Vec<u8>> {
        let name = name.to_owned();
        self.writer
            .write(move |c| {
                exec(
                    c,
                    "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
                    params![name, init],
                )?;
                one(c, "SELECT value FROM settings WHERE key = ?", [&name], col0)
            })
            .await
    }

    async fn create_api_key(&self, key: ApiKeyRecord) -> StoreResult<()> {
        let name = key.name.clone();
        let taken = self.writer.write(move |c| create(c, &key)).await?;
        match taken {
            Some(id) => Err(StoreError::ApiKeyNameTaken { name, id }),
            None => Ok(()),
        }
    }

    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKeyRecord>> {
        self.reads.read(|c| all(c, "SELECT * FROM api_keys ORDER BY created_at DESC", [], api_key_row)).await
    }

    async fn revoke_api_key(&self, id_or_name: &str, now: Timestamp) -> StoreResult<Option<ApiKeyRecord>> {
        let target = id_or_name.to_owned();
        self.writer.write(move |c| revoke(c, &target, now)).await
    }

    async fn find_api_key(&self, hash: &[u8]) -> StoreResult<Option<ApiKeyRecord>> {
        let hash = hash.to_vec();
        self.reads
            .read(move |c| {
                first(c, "SELECT * FROM api_keys WHERE hash = ? AND revoked_at IS NULL", [hash], api_key_row)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::SqliteStore;
    use crate::{OpenMode, StoreError};

    fn key(name: &str, n: u8) -> ApiKeyRecord {
        ApiKeyRecord {
            id: Uuid::now_v7(),
            name: name.into(),
            prefix: format!("hk_{n:05}"),
            hash: vec![n; 32],
            created_at: Timestamp::from_second(1_700_000_000 + i64::from(n)).unwrap(),
            revoked_at: None,
        }
    }

    fn url(dir: &tempfile::TempDir) -> String {
        format!("sqlite://{}", dir.path().join("herald.db").display())
    }

    #[tokio::test]
    async fn an_active_name_is_taken_until_its_key_is_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&url(&dir), OpenMode::Create).await.unwrap();
        let first = key("ci", 1);
        store.create_api_key(first.clone()).await.unwrap();
        match store.create_api_key(key("ci", 2)).await {
            Err(StoreError::ApiKeyNameTaken { name, id }) => assert_eq!((name.as_str(), id), ("ci", first.id)),
            other => panic!("expected the name to be taken, got {other:?}"),
        }
        store.create_api_key(key("deploy", 3)).await.unwrap();

        let revoked = store.revoke_api_key("ci", Timestamp::now()).await.unwrap().expect("revoked by name");
        assert_eq!((revoked.id, revoked.prefix.as_str()), (first.id, "hk_00001"));
        assert!(revoked.revoked_at.is_some());
        assert!(store.revoke_api_key("ci", Timestamp::now()).await.unwrap().is_none(), "nothing active is left");

        let again = key("ci", 4);
        store.create_api_key(again.clone()).await.unwrap();
        let by_id = store.revoke_api_key(&again.id.to_string(), Timestamp::now()).await.unwrap();
        assert_eq!(by_id.map(|k| k.id), Some(again.id));
        assert_eq!(store.list_api_keys().await.unwrap().len(), 3);
    }

    #[tokio::test]
    async fn an_older_database_with_duplicate_names_keeps_every_key_working() {
        let dir = tempfile::tempdir().unwrap();
        let (older, newer) = (key("ci", 1), key("ci", 2));
        {
            let store = SqliteStore::open(&url(&dir), OpenMode::Create).await.unwrap();
            store.create_api_key(older.clone()).await.unwrap();
        }
        // The database as it was before names were unique: two active keys called `ci`.
        let conn = Connection::open(dir.path().join("herald.db")).unwrap();
        conn.execute_batch("DROP INDEX api_keys_active_name; DELETE FROM herald_migrations WHERE version = 6").unwrap();
        conn.execute(
            "INSERT INTO api_keys (id, name, prefix, hash, created_at) VALUES (?, ?, ?, ?, ?)",
            params![newer.id.to_string(), newer.name, newer.prefix, newer.hash, to_ms(newer.created_at)],
        )
        .unwrap();
        conn.close().map_err(|(_, e)| e).unwrap();

        let store = SqliteStore::open(&url(&dir), OpenMode::Existing).await.unwrap();
        let names: Vec<(Uuid, String)> =
            store.list_api_keys().await.unwrap().into_iter().map(|k| (k.id, k.name)).collect();
        assert_eq!(names, vec![(newer.id, "ci".into()), (older.id, "ci-hk_00001".into())]);
        assert!(store.find_api_key(&older.hash).await.unwrap().is_some(), "the older key still works");
    }

    #[tokio::test]
    async fn opening_an_existing_database_never_creates_one() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nowhere");
        let url = format!("sqlite://{}", missing.join("herald.db").display());
        match SqliteStore::open(&url, OpenMode::Existing).await {
            Err(StoreError::NoDatabase(path)) => assert_eq!(path, missing.join("herald.db")),
            Err(e) => panic!("expected no database, got {e}"),
            Ok(_) => panic!("expected no database, got a store"),
        }
        assert!(!missing.exists());
    }
}
