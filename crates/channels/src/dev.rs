//! The dev provider: writes what would have been sent to `<data_dir>/outbox/<channel>/<delivery id>.json`,
//! so a newcomer sees every channel work without credentials.

use std::path::PathBuf;

use async_trait::async_trait;

use crate::{Provider, SendCommand, SendError, Sent};

/// Writes each send as a JSON file.
pub struct DevOutbox {
    dir: PathBuf,
}

impl DevOutbox {
    /// An outbox rooted at `<data_dir>/outbox`.
    pub fn new(data_dir: &std::path::Path) -> Self {
        Self { dir: data_dir.join("outbox") }
    }
}

#[async_trait]
impl Provider for DevOutbox {
    fn name(&self) -> &'static str {
        "dev"
    }

    async fn send(&self, cmd: &SendCommand) -> Result<Sent, SendError> {
        let dir = self.dir.join(cmd.channel.as_str());
        let to: Vec<&str> = cmd.targets.iter().map(|t| t.address()).collect();
        let doc = serde_json::json!({
            "delivery_id": cmd.delivery_id,
            "channel": cmd.channel,
            "user_id": cmd.user_id,
            "to": to,
            "content": cmd.payload,
            "class": cmd.class,
            "collapse_key": cmd.collapse_key,
            "ttl_seconds": cmd.ttl.map(|t| t.as_secs()),
            "unsubscribe_url": cmd.unsubscribe_url,
        });
        let io = |e: std::io::Error| SendError::Transient {
            message: format!("outbox write failed: {e}"),
            retry_after: None,
        };
        tokio::fs::create_dir_all(&dir).await.map_err(io)?;
        let path = dir.join(format!("{}.json", cmd.delivery_id));
        let tmp = dir.join(format!(".{}.tmp", cmd.delivery_id));
        let bytes = serde_json::to_vec_pretty(&doc).map_err(|e| SendError::Permanent(e.to_string()))?;
        tokio::fs::write(&tmp, bytes).await.map_err(io)?;
        tokio::fs::rename(&tmp, &path).await.map_err(io)?;
        Ok(Sent::default())
    }
}
