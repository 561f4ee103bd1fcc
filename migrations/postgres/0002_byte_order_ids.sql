-- Agent ids sort by their bytes, as in SQLite, whatever the database's locale: the API's listings
-- and their cursors (`after=`) must page the same on both stores, and a literal-prefix LIKE can
-- use the index. The views read transitions.agent_id, so they are dropped and made again, unchanged.
DROP VIEW uptime_daily;
DROP VIEW presence_intervals;
ALTER TABLE agents ALTER COLUMN id TYPE text COLLATE "C";
ALTER TABLE sessions ALTER COLUMN agent_id TYPE text COLLATE "C";
ALTER TABLE transitions ALTER COLUMN agent_id TYPE text COLLATE "C";
ALTER TABLE agent_owners ALTER COLUMN agent_id TYPE text COLLATE "C";

-- Contiguous, non-overlapping presence intervals per agent; the current one has a NULL end.
CREATE VIEW presence_intervals AS
SELECT
    agent_id,
    to_state AS state,
    effective_at_ms AS started_at_ms,
    LEAD(effective_at_ms) OVER (PARTITION BY agent_id ORDER BY id) AS ended_at_ms,
    reason
FROM transitions;

-- Milliseconds per state per agent per UTC day; the open interval counts up to now (the start of
-- the statement, so that one query sees one "now").
-- uptime_ratio = (online + suspect) / (online + suspect + offline), NULL when nothing was observed.
CREATE VIEW uptime_daily AS
WITH
    bounded AS (
        SELECT agent_id, state, started_at_ms AS s,
               COALESCE(ended_at_ms, (extract(epoch FROM statement_timestamp()) * 1000)::bigint) AS e
        FROM presence_intervals
    ),
    per_day AS (
        SELECT agent_id, day_ms, state, LEAST(e, day_ms + 86400000) - GREATEST(s, day_ms) AS ms
        FROM bounded, generate_series(s - (s % 86400000), e - 1, 86400000::bigint) AS day_ms
        WHERE e > s
    )
SELECT
    agent_id,
    to_char(to_timestamp(day_ms / 1000) AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day,
    SUM(CASE WHEN state = 'online' THEN ms ELSE 0 END)::bigint AS online_ms,
    SUM(CASE WHEN state = 'suspect' THEN ms ELSE 0 END)::bigint AS suspect_ms,
    SUM(CASE WHEN state = 'offline' THEN ms ELSE 0 END)::bigint AS offline_ms,
    SUM(CASE WHEN state = 'unknown' THEN ms ELSE 0 END)::bigint AS unknown_ms,
    CASE
        WHEN SUM(CASE WHEN state IN ('online', 'suspect', 'offline') THEN ms ELSE 0 END) = 0 THEN NULL
        ELSE SUM(CASE WHEN state IN ('online', 'suspect') THEN ms ELSE 0 END)::double precision
             / SUM(CASE WHEN state IN ('online', 'suspect', 'offline') THEN ms ELSE 0 END)
    END AS uptime_ratio
FROM per_day
GROUP BY agent_id, day_ms;
