-- The writer's two commonest steps, each one round trip instead of eight: a node's writer calls
-- these inside its transaction (holding the writers' advisory lock), so a fleet reconnecting at
-- once is written at the database's pace, not at the pace of round trips.

-- A transition of p_node's, fenced by its epoch and reconciled against the history: it lands only
-- if agent_owners still names p_node with p_epoch (t_owned false otherwise), starts from the state
-- the history holds, never before that state began, and is no transition at all (t_id NULL) if it
-- would not change the state.
CREATE FUNCTION rollcall_transition(
    p_agent text, p_node text, p_epoch bigint, p_to text, p_reason text, p_effective bigint, p_detected bigint, p_session bigint)
RETURNS TABLE (t_id bigint, t_from text, t_effective bigint, t_owned boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_state text;
    v_since bigint;
    v_effective bigint;
    v_id bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM agent_owners o WHERE o.agent_id = p_agent AND o.node_id = p_node AND o.epoch = p_epoch) THEN
        RETURN QUERY SELECT NULL::bigint, NULL::text, NULL::bigint, false;
        RETURN;
    END IF;
    SELECT a.state, a.state_since_ms INTO v_state, v_since FROM agents a WHERE a.id = p_agent;
    IF v_state IS NOT DISTINCT FROM p_to THEN
        RETURN QUERY SELECT NULL::bigint, v_state, NULL::bigint, true;
        RETURN;
    END IF;
    v_effective := GREATEST(p_effective, COALESCE(v_since, p_effective));
    INSERT INTO transitions (agent_id, from_state, to_state, reason, effective_at_ms, detected_at_ms, session_id)
    VALUES (p_agent, v_state, p_to, p_reason, v_effective, p_detected, p_session) RETURNING transitions.id INTO v_id;
    INSERT INTO agents (id, state, state_since_ms, first_seen_ms) VALUES (p_agent, p_to, v_effective, v_effective)
    ON CONFLICT (id) DO UPDATE SET state = EXCLUDED.state, state_since_ms = EXCLUDED.state_since_ms;
    RETURN QUERY SELECT v_id, v_state, v_effective, true;
END
$$;

-- A new session of p_node's: records it, claims its agent (epoch + 1, telling the old owner) unless
-- p_node was taken over, the session predates p_claims_from, or the owner holds a newer open
-- session; and, when claimed, makes the agent online from whatever state the history holds.
CREATE FUNCTION rollcall_open_session(
    p_session bigint, p_agent text, p_started bigint, p_remote text, p_boot text, p_interval bigint, p_timeout bigint,
    p_restarted integer, p_run bigint, p_node text, p_claims_from bigint)
RETURNS TABLE (t_claimed boolean, t_epoch bigint, t_id bigint, t_from text, t_effective bigint, t_reason text)
LANGUAGE plpgsql AS $$
DECLARE
    v_owner text;
    v_epoch bigint;
    v_started bigint;
    v_ended bigint;
    v_found boolean := false;
    v_claimed boolean := false;
    v_before text;
    v_since bigint;
    v_effective bigint;
    v_reason text;
    v_id bigint;
BEGIN
    IF p_started >= p_claims_from AND EXISTS (SELECT 1 FROM nodes n WHERE n.id = p_node AND n.stopped_at_ms IS NULL) THEN
        SELECT o.node_id, o.epoch, s.started_at_ms, s.ended_at_ms INTO v_owner, v_epoch, v_started, v_ended
        FROM agent_owners o LEFT JOIN sessions s ON s.id = o.session_id WHERE o.agent_id = p_agent FOR UPDATE OF o;
        v_found := FOUND;
        IF NOT (v_found AND v_owner <> p_node AND v_started IS NOT NULL AND v_ended IS NULL AND v_started > p_started) THEN
            INSERT INTO agent_owners (agent_id, node_id, epoch, session_id) VALUES (p_agent, p_node, 1, p_session)
            ON CONFLICT (agent_id) DO UPDATE SET node_id = EXCLUDED.node_id, epoch = agent_owners.epoch + 1, session_id = EXCLUDED.session_id
            RETURNING agent_owners.epoch INTO v_epoch;
            v_claimed := true;
            IF v_found AND v_owner <> p_node THEN
                PERFORM pg_notify('rollcall', 'o ' || v_epoch || ' ' || p_agent);
            END IF;
        END IF;
    END IF;
    SELECT a.state INTO v_before FROM agents a WHERE a.id = p_agent;
    INSERT INTO sessions (id, agent_id, started_at_ms, remote_addr, boot_id, interval_ms, timeout_ms, agent_restarted, server_run_id, last_seen_ms)
    VALUES (p_session, p_agent, p_started, p_remote, p_boot, p_interval, p_timeout, p_restarted, p_run, p_started);
    INSERT INTO agents (id, state, state_since_ms, first_seen_ms, last_seen_ms, interval_ms, timeout_ms)
    VALUES (p_agent, 'offline', p_started, p_started, p_started, p_interval, p_timeout)
    ON CONFLICT (id) DO UPDATE SET interval_ms = EXCLUDED.interval_ms, timeout_ms = EXCLUDED.timeout_ms,
        last_seen_ms = GREATEST(COALESCE(agents.last_seen_ms, 0), EXCLUDED.last_seen_ms);
    IF v_claimed AND v_before IS DISTINCT FROM 'online' THEN
        SELECT a.state_since_ms INTO v_since FROM agents a WHERE a.id = p_agent;
        v_effective := CASE WHEN v_before IS NULL THEN p_started ELSE GREATEST(p_started, v_since) END;
        v_reason := CASE WHEN v_before = 'suspect' THEN 'reconnected' ELSE 'connected' END;
        INSERT INTO transitions (agent_id, from_state, to_state, reason, effective_at_ms, detected_at_ms, session_id)
        VALUES (p_agent, v_before, 'online', v_reason, v_effective, p_started, p_session) RETURNING transitions.id INTO v_id;
        UPDATE agents SET state = 'online', state_since_ms = v_effective WHERE agents.id = p_agent;
    END IF;
    RETURN QUERY SELECT v_claimed, CASE WHEN v_claimed THEN v_epoch END, v_id, v_before, v_effective, v_reason;
END
$$;
