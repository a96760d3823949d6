-- The tenants every tenant-scoped table of every service refers to.
CREATE TABLE aria_tenants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
