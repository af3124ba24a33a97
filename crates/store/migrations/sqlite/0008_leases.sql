-- A claim is a lease: it names its holder's token and runs out. A claim whose lease ran out is
-- due again (its holder crashed or stalled), and a holder's writes count only while its token
-- is still the row's, so a node that took over is never overwritten by one that came back.
ALTER TABLE recipients ADD COLUMN lease_token INTEGER;
ALTER TABLE recipients ADD COLUMN lease_until INTEGER;
CREATE INDEX recipients_leases ON recipients (lease_until) WHERE state = 'claimed';
ALTER TABLE digest_timers ADD COLUMN lease_token INTEGER;
ALTER TABLE digest_timers ADD COLUMN lease_until INTEGER;
CREATE INDEX digest_timers_leases ON digest_timers (lease_until) WHERE state = 'claimed';
-- Claims made before leases existed belong to no running node: they are due at once.
UPDATE recipients SET lease_until = 0 WHERE state = 'claimed';
UPDATE digest_timers SET lease_until = 0 WHERE state = 'claimed';
