-- Fewer b-tree pages written per message. Every page a transaction touches is written whole to
-- the WAL and fsynced at commit, and the ingest benchmark counted 12 of them per webhook
-- (docs/benchmarks.md, "Pages written per webhook"); most were index pages that a message,
-- turn or delivery touched at a place of its own.

-- A turn's messages are a column of the message: the gate's decision rewrites the row anyway,
-- while turn_messages cost three b-trees, one of them ordered by the channel's random ids.
ALTER TABLE messages ADD COLUMN turn_id INTEGER REFERENCES turns(id);
UPDATE messages SET turn_id = (SELECT tm.turn_id FROM turn_messages tm WHERE tm.message_id = messages.id)
 WHERE id IN (SELECT message_id FROM turn_messages);
DROP TABLE turn_messages;
-- New entries go to the end: only the newest turns gain messages.
CREATE INDEX messages_by_turn ON messages(turn_id) WHERE turn_id IS NOT NULL;

-- Per-chat reads walk messages_by_chat_rowid in arrival order; (chat_id, created_at) repeated it.
DROP INDEX messages_by_chat;

-- Indexes over live rows only: a turn or a delivery leaves them when it ends, instead of moving
-- to a new place in a chat-ordered index at every change of status. (A partial index on
-- `status IN (...)` would not serve `status = 'queued'`, so there is one per status.)
DROP INDEX turns_by_status;
CREATE INDEX turns_queued ON turns(chat_id, id) WHERE status = 'queued';
CREATE INDEX turns_running ON turns(chat_id) WHERE status = 'running';
-- The chat's last agent session and its spend: only turns that have them.
DROP INDEX turns_by_chat;
CREATE INDEX turns_with_session ON turns(chat_id, id) WHERE session_id IS NOT NULL;
DROP INDEX turns_by_chat_finished;
CREATE INDEX turns_costed ON turns(chat_id, finished_at) WHERE cost_usd IS NOT NULL;
DROP INDEX outbox_due;
CREATE INDEX outbox_pending_due ON outbox(next_attempt_at) WHERE status = 'pending';
DROP INDEX outbox_by_chat;
CREATE INDEX outbox_pending_by_chat ON outbox(chat_id, id) WHERE status = 'pending';
