-- Less work per notification. The inbox item of a recipient is marked on the recipient
-- (inbox_at) instead of a delivery row of its own; claims are found without an index of their
-- own (only at start); unread counts live in inbox_counts; and a recipient's claim already keeps
-- its inbox item single, so (user_id, notification_id) needs no unique index.
ALTER TABLE recipients ADD COLUMN inbox_at INTEGER;
UPDATE recipients SET inbox_at = (
    SELECT d.created_at FROM deliveries d
    WHERE d.notification_id = recipients.notification_id AND d.user_id = recipients.user_id
      AND d.channel = 'in_app' AND d.status = 'delivered'
);
DELETE FROM deliveries WHERE channel = 'in_app' AND status = 'delivered';
DROP INDEX recipients_claimed;

-- Whether another notification with the same content was accepted within the duplicate window:
-- only those need the duplicate check when they are decided. Older rows are checked as before.
ALTER TABLE notifications ADD COLUMN repeated INTEGER NOT NULL DEFAULT 0;
UPDATE notifications SET repeated = 1 WHERE fingerprint IS NOT NULL;

CREATE TABLE inbox_new (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL,
    notification_id TEXT NOT NULL,
    title TEXT,
    body TEXT,
    action_url TEXT,
    category TEXT,
    created_at INTEGER NOT NULL,
    read_at INTEGER
);
INSERT INTO inbox_new (seq, id, user_id, notification_id, title, body, action_url, category, created_at, read_at)
    SELECT seq, id, user_id, notification_id, title, body, action_url, category, created_at, read_at FROM inbox;
DROP TABLE inbox;
ALTER TABLE inbox_new RENAME TO inbox;
CREATE INDEX inbox_user ON inbox (user_id, seq);
