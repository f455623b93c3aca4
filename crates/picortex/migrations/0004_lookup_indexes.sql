-- Indexes for lookups that scanned whole tables on hot paths (found with EXPLAIN QUERY PLAN
-- after the ingest benchmark's profile showed the writer walking b-tree cells):
-- a turn's context messages (read when every turn is claimed),
CREATE INDEX messages_by_context_turn ON messages(context_turn_id) WHERE context_turn_id IS NOT NULL;
-- the chat's last agent session and its spend today (every turn),
CREATE INDEX turns_by_chat ON turns(chat_id, id);
CREATE INDEX turns_by_chat_finished ON turns(chat_id, finished_at);
-- a delivery found by the channel's message id (every message.sent/delivered/read webhook),
CREATE INDEX outbox_by_channel_message ON outbox(channel_message_id) WHERE channel_message_id IS NOT NULL;
-- the owner's DM found by handle (owner notices),
CREATE INDEX participants_by_handle ON participants(handle);
-- and the gate counters of /health (decisions since a time).
CREATE INDEX messages_by_gate_at ON messages(gate_at) WHERE gate_at IS NOT NULL;
