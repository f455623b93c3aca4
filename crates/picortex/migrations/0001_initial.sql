-- picortex canonical store, version 1. Portable SQL where possible (integers for times: Unix
-- milliseconds), so a move to Postgres stays possible.

CREATE TABLE chats (
    id              TEXT PRIMARY KEY,            -- the channel's chat id (Linq chat uuid)
    channel         TEXT NOT NULL DEFAULT 'linq',
    is_group        INTEGER NOT NULL DEFAULT 0,
    display_name    TEXT,
    our_handle      TEXT,                        -- the bot's line in this chat
    state           TEXT NOT NULL DEFAULT 'active',
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    last_inbound_at INTEGER
);

CREATE TABLE participants (
    chat_id   TEXT NOT NULL REFERENCES chats(id),
    handle    TEXT NOT NULL,
    is_me     INTEGER NOT NULL DEFAULT 0,
    joined_at INTEGER NOT NULL,
    left_at   INTEGER,
    PRIMARY KEY (chat_id, handle)
);

CREATE TABLE messages (
    id              TEXT PRIMARY KEY,            -- the channel's message id
    chat_id         TEXT NOT NULL REFERENCES chats(id),
    direction       TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    sender          TEXT,
    text            TEXT NOT NULL DEFAULT '',
    parts_json      TEXT NOT NULL DEFAULT '[]',
    reply_to        TEXT,
    reply_to_part   INTEGER,
    sent_at         TEXT,
    delivery_status TEXT,
    created_at      INTEGER NOT NULL
);
CREATE INDEX messages_by_chat ON messages(chat_id, created_at);

CREATE TABLE reactions (
    message_id   TEXT NOT NULL,
    handle       TEXT NOT NULL,
    kind         TEXT NOT NULL,
    custom_emoji TEXT NOT NULL DEFAULT '',
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (message_id, handle, kind, custom_emoji)
);

CREATE TABLE webhook_events (
    event_id          TEXT PRIMARY KEY,          -- dedupe key (webhook-id / event_id)
    event_type        TEXT NOT NULL,
    webhook_version   TEXT NOT NULL,
    webhook_timestamp INTEGER NOT NULL,
    received_at       INTEGER NOT NULL,
    request_id        TEXT NOT NULL,
    body              BLOB NOT NULL,
    outcome           TEXT NOT NULL              -- what ingest did with it
);
CREATE INDEX webhook_events_by_time ON webhook_events(received_at);

CREATE TABLE turns (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    chat_id     TEXT NOT NULL REFERENCES chats(id),
    status      TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed')),
    attempts    INTEGER NOT NULL DEFAULT 0,   -- starts that ended in an agent failure or ran now
    restarts    INTEGER NOT NULL DEFAULT 0,   -- times a daemon restart interrupted it
    request_id  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    started_at  INTEGER,
    finished_at INTEGER,
    error       TEXT,
    session_id  TEXT,                         -- the agent session the turn ran in
    cost_usd    REAL,                         -- as the agent reported it
    usage_json  TEXT                          -- token usage as the agent reported it
);
CREATE INDEX turns_by_status ON turns(status, chat_id);

-- Which inbound messages a turn answers (messages that arrive during a turn fold into the next).
CREATE TABLE turn_messages (
    turn_id    INTEGER NOT NULL REFERENCES turns(id),
    message_id TEXT NOT NULL UNIQUE REFERENCES messages(id),
    PRIMARY KEY (turn_id, message_id)
);

CREATE TABLE outbox (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    chat_id           TEXT NOT NULL REFERENCES chats(id),
    turn_id           INTEGER REFERENCES turns(id),
    idempotency_key   TEXT NOT NULL UNIQUE,
    content_json      TEXT NOT NULL,             -- the channel message content to send
    status            TEXT NOT NULL CHECK (status IN ('pending', 'accepted', 'sent', 'delivered', 'read', 'failed')),
    attempts          INTEGER NOT NULL DEFAULT 0,
    next_attempt_at   INTEGER NOT NULL,
    last_error        TEXT,
    channel_message_id TEXT,
    request_id        TEXT NOT NULL,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);
CREATE INDEX outbox_due ON outbox(status, next_attempt_at);
CREATE INDEX outbox_by_chat ON outbox(chat_id, status, id);

CREATE TABLE chat_config (
    chat_id        TEXT PRIMARY KEY REFERENCES chats(id),
    attention_mode TEXT,
    agent          TEXT,
    settings_json  TEXT NOT NULL DEFAULT '{}',
    updated_at     INTEGER NOT NULL
);

CREATE TABLE audit_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    kind        TEXT NOT NULL,
    chat_id     TEXT,
    detail_json TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_by_chat ON audit_events(chat_id, at);
