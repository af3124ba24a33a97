-- Delivery that survives: the class for metrics, when a delivery first went to a provider
-- (hourly ceiling and daily budgets count these), when it became a dead letter.
ALTER TABLE deliveries ADD COLUMN class TEXT;
ALTER TABLE deliveries ADD COLUMN dispatched_at INTEGER;
ALTER TABLE deliveries ADD COLUMN dead_at INTEGER;
UPDATE deliveries SET class = (SELECT class FROM notifications WHERE notifications.id = deliveries.notification_id);
CREATE INDEX deliveries_user_dispatched ON deliveries (user_id, channel, dispatched_at) WHERE dispatched_at IS NOT NULL;
CREATE INDEX deliveries_channel_dispatched ON deliveries (channel, dispatched_at) WHERE dispatched_at IS NOT NULL;
CREATE INDEX deliveries_dead ON deliveries (dead_at) WHERE dead_at IS NOT NULL;

-- Addresses a provider reported as hard-bounced: never sent to again.
CREATE TABLE address_blocks (
    channel TEXT NOT NULL,
    address TEXT NOT NULL,
    kind TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (channel, address)
);

-- Finding the users behind an address that a provider reports on.
CREATE INDEX users_email ON users (json_extract(profile, '$.email'));
CREATE INDEX users_phone ON users (json_extract(profile, '$.phone'));
