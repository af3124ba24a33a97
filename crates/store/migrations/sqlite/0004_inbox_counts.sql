-- Unread counts kept as the inbox changes, so that reading one costs a lookup, not a count over
-- every unread item (which grows without bound for users who never read).
CREATE TABLE inbox_counts (
    user_id TEXT PRIMARY KEY,
    unread INTEGER NOT NULL
);
INSERT INTO inbox_counts (user_id, unread)
    SELECT user_id, COUNT(*) FROM inbox WHERE read_at IS NULL GROUP BY user_id;
