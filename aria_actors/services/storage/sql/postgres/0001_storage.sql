-- aria_storage's catalogue: assets, their versions (each an index file of chunks in
-- the asset's store), and the chunks the garbage collector found unreferenced.
-- Times are epoch seconds (DOUBLE PRECISION); flags are 0/1 integers (as in SQLite).

CREATE TABLE storage_assets (
    name TEXT PRIMARY KEY,
    store TEXT NOT NULL,
    next_version INTEGER NOT NULL DEFAULT 1,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);

-- One version of an asset: its index file is <indexes>/<index_path>, named by the
-- SHA-256 of its bytes (index_digest), so identical versions share one file.
CREATE TABLE storage_versions (
    asset TEXT NOT NULL REFERENCES storage_assets (name) ON DELETE CASCADE,
    number INTEGER NOT NULL,
    index_digest TEXT NOT NULL,
    index_path TEXT NOT NULL,
    size BIGINT NOT NULL,
    chunks BIGINT NOT NULL,
    unique_chunks BIGINT NOT NULL,
    new_chunks BIGINT NOT NULL,
    new_bytes BIGINT NOT NULL,
    digest TEXT NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}',
    created_at DOUBLE PRECISION NOT NULL,
    retired INTEGER NOT NULL DEFAULT 0,
    retired_at DOUBLE PRECISION,
    PRIMARY KEY (asset, number)
);
CREATE INDEX storage_versions_index ON storage_versions (index_digest);
CREATE INDEX storage_versions_live ON storage_versions (retired, asset);

-- Chunks no live version uses, since first_seen: removed once older than the grace.
CREATE TABLE storage_gc_candidates (
    store TEXT NOT NULL,
    chunk_id TEXT NOT NULL,
    first_seen DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (store, chunk_id)
);
