-- 3: the verifier instances serving this database and the master keys each holds: ids and
-- fingerprints only, never a key. Each instance writes its row when it starts and every few
-- seconds (so a key file it reloaded shows), and deletes it when it stops; `master-key status`
-- lists the rows seen lately, and `master-key activate` and `rewrap` refuse while one of them
-- lacks the key. Times are Unix seconds of the database's clock (hosts' clocks may disagree).
-- The embedded store has no such table: its instances share one host and one key file.
CREATE TABLE verifier_instances (
    instance_id text COLLATE "C" PRIMARY KEY,
    host text NOT NULL,
    listen text NOT NULL,
    pid bigint NOT NULL,
    version text NOT NULL,
    active_key text NOT NULL,
    -- JSON object: key id -> fingerprint, as the server wrote it.
    key_fingerprints text NOT NULL,
    started_at bigint NOT NULL,
    seen_at bigint NOT NULL
);
