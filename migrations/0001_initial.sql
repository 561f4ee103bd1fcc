-- Rollcall history, schema version 1.
-- Public contract: the tables, views and columns below may gain columns, never lose or rename them.
-- Every time column is INTEGER milliseconds since the Unix epoch (UTC) and ends in _ms.

-- One row per agent the server has ever seen or registered.
CREATE TABLE agents (
    id              TEXT PRIMARY KEY NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('online', 'suspect', 'offline', 'unknown')),
    state_since_ms  INTEGER NOT NULL,
    first_seen_ms   INTEGER NOT NULL,
    last_seen_ms    INTEGER,
    labels          TEXT NOT NULL DEFAULT '{}',   -- JSON object of strings, from the agent's hello or registration
    token_hash      TEXT,                          -- SHA-256 of the agent's token; NULL when none was issued
    disabled        INTEGER NOT NULL DEFAULT 0,
    hostname        TEXT,
    agent_version   TEXT,
    metadata        TEXT,                          -- the agent's latest hello message, JSON
    status          TEXT,                          -- the agent's latest heartbeat status object, JSON
    interval_ms     INTEGER,                       -- interval granted to its latest session
    timeout_ms      INTEGER                        -- timeout granted to its latest session
) WITHOUT ROWID;

-- One row per run of `rollcall serve` against this file.
CREATE TABLE server_runs (
    id              INTEGER PRIMARY KEY,
    started_at_ms   INTEGER NOT NULL,
    stopped_at_ms   INTEGER,                       -- NULL while running, or after a crash
    stop_reason     TEXT,                          -- 'graceful' once stopped cleanly
    last_alive_ms   INTEGER NOT NULL,              -- periodic checkpoint: the run was alive at least until here
    pid             INTEGER,
    version         TEXT
);

-- One row per accepted agent connection.
CREATE TABLE sessions (
    id                INTEGER PRIMARY KEY,
    agent_id          TEXT NOT NULL,
    started_at_ms     INTEGER NOT NULL,
    ended_at_ms       INTEGER,                     -- NULL while open
    end_reason        TEXT,                        -- goodbye, disconnected, timeout, superseded, kicked, removed, protocol_error, server_stopped, server_crashed
    close_code        INTEGER,
    remote_addr       TEXT,
    boot_id           TEXT,
    heartbeats        INTEGER NOT NULL DEFAULT 0,
    last_seen_ms      INTEGER,                     -- last sign of life on this session (checkpointed)
    interval_ms       INTEGER,
    timeout_ms        INTEGER,
    agent_restarted   INTEGER,                     -- 1: new boot id (agent restart), 0: same boot id (network blip), NULL: unknown
    server_run_id     INTEGER,
    rtt_ms            REAL                         -- smoothed WebSocket ping round-trip time, when measured
);
CREATE INDEX sessions_by_agent ON sessions (agent_id, id);
CREATE INDEX sessions_open ON sessions (ended_at_ms) WHERE ended_at_ms IS NULL;

-- Every presence change. `id` is the event cursor of /v1/events and /v1/watch.
CREATE TABLE transitions (
    id               INTEGER PRIMARY KEY,
    agent_id         TEXT NOT NULL,
    from_state       TEXT,                         -- NULL for an agent's first transition
    to_state         TEXT NOT NULL,
    reason           TEXT NOT NULL,
    effective_at_ms  INTEGER NOT NULL,             -- when it became true
    detected_at_ms   INTEGER NOT NULL,             -- when the server noticed
    session_id       INTEGER
);
CREATE INDEX transitions_by_agent ON transitions (agent_id, id);
CREATE INDEX transitions_by_time ON transitions (effective_at_ms);

-- Contiguous, non-overlapping presence intervals per agent; the current one has a NULL end.
CREATE VIEW presence_intervals AS
SELECT
    agent_id,
    to_state AS state,
    effective_at_ms AS started_at_ms,
    LEAD(effective_at_ms) OVER (PARTITION BY agent_id ORDER BY id) AS ended_at_ms,
    reason
FROM transitions;

-- Milliseconds per state per agent per UTC day; the open interval counts up to now.
-- uptime_ratio = (online + suspect) / (online + suspect + offline), NULL when nothing was observed.
CREATE VIEW uptime_daily AS
WITH RECURSIVE
    bounded AS (
        SELECT agent_id, state, started_at_ms AS s,
               COALESCE(ended_at_ms, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)) AS e
        FROM presence_intervals
    ),
    pieces (agent_id, state, s, e, day_ms) AS (
        SELECT agent_id, state, s, e, s - (s % 86400000) FROM bounded WHERE e > s
        UNION ALL
        SELECT agent_id, state, s, e, day_ms + 86400000 FROM pieces WHERE day_ms + 86400000 < e
    ),
    per_day AS (
        SELECT agent_id, day_ms, state, MIN(e, day_ms + 86400000) - MAX(s, day_ms) AS ms FROM pieces
    )
SELECT
    agent_id,
    strftime('%Y-%m-%d', day_ms / 1000, 'unixepoch') AS day,
    SUM(CASE WHEN state = 'online' THEN ms ELSE 0 END) AS online_ms,
    SUM(CASE WHEN state = 'suspect' THEN ms ELSE 0 END) AS suspect_ms,
    SUM(CASE WHEN state = 'offline' THEN ms ELSE 0 END) AS offline_ms,
    SUM(CASE WHEN state = 'unknown' THEN ms ELSE 0 END) AS unknown_ms,
    CASE
        WHEN SUM(CASE WHEN state IN ('online', 'suspect', 'offline') THEN ms ELSE 0 END) = 0 THEN NULL
        ELSE CAST(SUM(CASE WHEN state IN ('online', 'suspect') THEN ms ELSE 0 END) AS REAL)
             / SUM(CASE WHEN state IN ('online', 'suspect', 'offline') THEN ms ELSE 0 END)
    END AS uptime_ratio
FROM per_day
GROUP BY agent_id, day_ms;
