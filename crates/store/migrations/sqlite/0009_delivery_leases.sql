-- An open delivery is held by one node under a lease, like a claim in the work queue: the node
-- renews what it holds, and what no live lease holds is adopted by another. Deliveries open
-- before leases existed are held by no one, so the first node to look adopts them.
ALTER TABLE deliveries ADD COLUMN lease_token INTEGER;
ALTER TABLE deliveries ADD COLUMN lease_until INTEGER;
CREATE INDEX deliveries_leases ON deliveries (lease_until) WHERE status IN ('queued', 'sending');
CREATE INDEX deliveries_held ON deliveries (lease_token) WHERE status IN ('queued', 'sending');
