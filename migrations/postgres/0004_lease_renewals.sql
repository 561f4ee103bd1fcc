-- When each node last renewed its lease, on the database's clock: a node that crashed is taken over
-- as of this moment, whatever lease length the taker itself runs with.
ALTER TABLE nodes ADD COLUMN renewed_at_ms bigint;
UPDATE nodes SET renewed_at_ms = lease_until_ms - 10000;
