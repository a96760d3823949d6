-- aria_engine's characters (character_store.py): one row per character, written
-- through by its actor after every change that matters (a run accepted, each command
-- executed, a run finished). state, todo and executed are msgpack of the wire data
-- of wire.py (int keys, floats and bools exactly as they were). owner is the token
-- of the actor instance that may write the row (each one claims it when it starts,
-- so a stale writer -- a run orphaned by a killed actor, another node -- is refused).
-- Times are epoch seconds (DOUBLE PRECISION).

CREATE TABLE engine_characters (
    id TEXT PRIMARY KEY,
    domain TEXT NOT NULL,
    state BYTEA NOT NULL,
    todo BYTEA NOT NULL,
    phase TEXT NOT NULL
        CHECK (phase IN ('idle', 'planning', 'acting', 'done', 'failed')),
    executed BYTEA NOT NULL,
    replans INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    trace TEXT,
    runs INTEGER NOT NULL DEFAULT 0,
    owner TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);
