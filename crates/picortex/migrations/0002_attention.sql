-- Attention gating: every inbound message gets a recorded decision before it can start a turn.

-- 'pending' until the gate decides; then 'respond', 'skip', 'command' or 'refused'.
-- NULL for the bot's own messages.
ALTER TABLE messages ADD COLUMN gate_status TEXT;
ALTER TABLE messages ADD COLUMN gate_rule TEXT;          -- command, reply_to_bot, mention, mode, model, non_text, fallback, budget
ALTER TABLE messages ADD COLUMN gate_reason TEXT;
ALTER TABLE messages ADD COLUMN gate_latency_us INTEGER;
ALTER TABLE messages ADD COLUMN gate_cost_usd REAL;
ALTER TABLE messages ADD COLUMN gate_at INTEGER;
-- The request id of the webhook that brought the message, for the turn it starts.
ALTER TABLE messages ADD COLUMN request_id TEXT;
-- A skipped message handed to the agent as context with the chat's next answered turn (once).
ALTER TABLE messages ADD COLUMN context_turn_id INTEGER REFERENCES turns(id);
CREATE INDEX messages_gate_pending ON messages(chat_id, created_at) WHERE gate_status = 'pending';

-- Discriminator calls and spend per chat per local day, for the daily budget.
CREATE TABLE discriminator_spend (
    chat_id  TEXT NOT NULL REFERENCES chats(id),
    day      TEXT NOT NULL,          -- YYYY-MM-DD in the configured local time
    calls    INTEGER NOT NULL DEFAULT 0,
    cost_usd REAL NOT NULL DEFAULT 0,
    budget_notice_sent INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (chat_id, day)
);

-- The gate's per-message reads and writes stay small as chats grow: the recent-context read
-- walks one chat by rowid, and attaching skipped messages to a turn touches only those.
CREATE INDEX messages_by_chat_rowid ON messages(chat_id);
CREATE INDEX messages_skipped_context ON messages(chat_id)
    WHERE gate_status = 'skip' AND context_turn_id IS NULL;
