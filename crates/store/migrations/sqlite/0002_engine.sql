ALTER TABLE recipients ADD COLUMN phase INTEGER NOT NULL DEFAULT 0;
ALTER TABLE recipients ADD COLUMN group_key TEXT;
ALTER TABLE recipients ADD COLUMN collapse_key TEXT;
ALTER TABLE recipients ADD COLUMN digest_id TEXT;
CREATE INDEX recipients_batched ON recipients (user_id, seq) WHERE state = 'batched';
CREATE INDEX recipients_collapse ON recipients (user_id, collapse_key) WHERE collapse_key IS NOT NULL AND state IN ('pending', 'batched');

CREATE TABLE interruptions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,
    at INTEGER NOT NULL,
    spend TEXT NOT NULL,
    notification_id TEXT NOT NULL
);
CREATE INDEX interruptions_user ON interruptions (user_id, at);

CREATE TABLE digest_timers (
    user_id TEXT PRIMARY KEY,
    due_at INTEGER NOT NULL,
    state TEXT NOT NULL
);
CREATE INDEX digest_timers_due ON digest_timers (due_at) WHERE state = 'pending';

ALTER TABLE notifications ADD COLUMN fingerprint TEXT;
CREATE INDEX notifications_fingerprint ON notifications (fingerprint, created_at) WHERE fingerprint IS NOT NULL;
