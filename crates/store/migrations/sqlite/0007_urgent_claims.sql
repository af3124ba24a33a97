-- Critical and transactional recipients are claimed ahead of everything else that is due, so a
-- large marketing or topic send never holds them back: the queue index leads with the urgency.
ALTER TABLE recipients ADD COLUMN urgent INTEGER NOT NULL DEFAULT 0;
DROP INDEX recipients_due;
CREATE INDEX recipients_due ON recipients (urgent, due_at, seq) WHERE state = 'pending';
