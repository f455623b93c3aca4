-- The model gateway: per-chat tokens the agents authenticate with, and metered model use.

-- One token per chat. Only its SHA-256 (hex) is stored: the token itself is derived when the
-- chat's runner is launched and lives only in that chat's environment.
CREATE TABLE gateway_tokens (
    chat_id    TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);

-- Model use per chat per UTC day, through the gateway and the discriminator. Cost is in
-- micro-dollars (USD × 1 000 000), priced by the gateway's table when the request finished.
CREATE TABLE gateway_usage (
    chat_id            TEXT NOT NULL,
    day                TEXT NOT NULL,          -- YYYY-MM-DD, UTC
    requests           INTEGER NOT NULL DEFAULT 0,
    input_tokens       INTEGER NOT NULL DEFAULT 0,
    output_tokens      INTEGER NOT NULL DEFAULT 0,
    cache_read_tokens  INTEGER NOT NULL DEFAULT 0,
    cache_write_tokens INTEGER NOT NULL DEFAULT 0,
    cost_micros        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (chat_id, day)
);
