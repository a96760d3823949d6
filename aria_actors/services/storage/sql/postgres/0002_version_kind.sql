-- What a version holds: 'blob' (a file; its index is a .caibx) or 'archive' (a
-- directory; its index is the .caidx of its catar archive). Versions made before
-- directories were supported are files.

ALTER TABLE storage_versions ADD COLUMN kind TEXT NOT NULL DEFAULT 'blob'
    CHECK (kind IN ('blob', 'archive'));
