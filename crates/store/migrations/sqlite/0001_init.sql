CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL
);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    prefix TEXT NOT NULL,
    hash BLOB NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    profile TEXT NOT NULL,
    preferences TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    erased_at INTEGER
);

CREATE TABLE devices (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    spec TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX devices_user ON devices (user_id);

CREATE TABLE templates (
    key TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    version INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE notifications (
    id TEXT PRIMARY KEY,
    template TEXT NOT NULL,
    class TEXT NOT NULL,
    category TEXT,
    spec TEXT NOT NULL,
    recipients_total INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    cancelled_at INTEGER
);

CREATE TABLE idempotency_keys (
    key TEXT PRIMARY KEY,
    request_hash TEXT NOT NULL,
    notification_id TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE recipients (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    notification_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    state TEXT NOT NULL,
    due_at INTEGER NOT NULL,
    decision TEXT,
    reason TEXT,
    updated_at INTEGER NOT NULL,
    UNIQUE (notification_id, user_id)
);
CREATE INDEX recipients_due ON recipients (due_at, seq) WHERE state = 'pending';
CREATE INDEX recipients_claimed ON recipients (seq) WHERE state = 'claimed';

CREATE TABLE inbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL,
    notification_id TEXT NOT NULL,
    title TEXT,
    body TEXT,
    action_url TEXT,
    category TEXT,
    created_at INTEGER NOT NULL,
    read_at INTEGER,
    UNIQUE (user_id, notification_id)
);
CREATE INDEX inbox_user ON inbox (user_id, seq);
CREATE INDEX inbox_unread ON inbox (user_id) WHERE read_at IS NULL;

CREATE TABLE deliveries (
    id TEXT PRIMARY KEY,
    notification_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    provider TEXT,
    error TEXT,
    payload TEXT NOT NULL,
    next_attempt_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX deliveries_notification ON deliveries (notification_id, user_id);
CREATE INDEX deliveries_open ON deliveries (next_attempt_at) WHERE status IN ('queued', 'sending');

CREATE TABLE audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    user_id TEXT NOT NULL,
    notification_id TEXT NOT NULL,
    channel TEXT,
    decision TEXT NOT NULL,
    reason TEXT
);
CREATE INDEX audit_user ON audit (user_id, seq);

CREATE TABLE topic_subscribers (
    topic TEXT NOT NULL,
    user_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (topic, user_id)
);
