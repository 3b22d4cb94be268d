-- Runs: one row per run of a monitor, from its start (or its finish, when the start was never
-- seen) to its outcome. Derived from the event log; rebuilt with the other read models.
CREATE TABLE rm_runs (
    client         TEXT    NOT NULL,
    slug           TEXT    NOT NULL,
    run_id         TEXT    NOT NULL,
    first_position INTEGER NOT NULL,
    -- running, completed, failed or timed_out
    status         TEXT    NOT NULL,
    started_at     TEXT,
    finished_at    TEXT,
    timed_out_at   TEXT,
    exit_code      INTEGER,
    duration_ms    INTEGER,
    host           TEXT,
    output         TEXT,
    output_lossy   INTEGER NOT NULL DEFAULT 0,
    message        TEXT,
    PRIMARY KEY (client, slug, run_id)
);
CREATE INDEX rm_runs_monitor ON rm_runs (client, slug, first_position);
