-- An active API key's name names exactly one key (`herald keys revoke NAME`); a revoked key's
-- name may be used again. Databases from before this rule may hold several active keys under one
-- name: the older ones get their prefix appended (`ci` -> `ci-hk_AbCd1`) instead of being
-- revoked, so no client loses access.
UPDATE api_keys SET name = name || '-' || prefix
WHERE revoked_at IS NULL AND EXISTS (
    SELECT 1 FROM api_keys newer
    WHERE newer.name = api_keys.name AND newer.revoked_at IS NULL
      AND (newer.created_at > api_keys.created_at OR (newer.created_at = api_keys.created_at AND newer.id > api_keys.id))
);
CREATE UNIQUE INDEX api_keys_active_name ON api_keys (name) WHERE revoked_at IS NULL;
