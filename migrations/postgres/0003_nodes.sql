-- Several nodes on one database (SPEC §10).
--
-- Session ids: each node reserves blocks of 65,536 ids (block k is k*65536 up to (k+1)*65536),
-- so nodes never hand out the same id and none waits for the database to open a session. The
-- first block starts above every id written so far.
CREATE SEQUENCE session_id_blocks;
SELECT setval('session_id_blocks', COALESCE((SELECT MAX(id) FROM sessions), 0) / 65536 + 1, false);

-- A node finds the agents it owns (at start, and when it takes over a lapsed node's).
CREATE INDEX agent_owners_by_node ON agent_owners (node_id);

-- A node closes the sessions of its own runs (at start, and a lapsed node's at a takeover).
CREATE INDEX sessions_by_run ON sessions (server_run_id) WHERE ended_at_ms IS NULL;
