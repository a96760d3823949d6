-- aria_auth: users, roles, token families with their root keys, tokens, MFA.
-- Times are epoch seconds (DOUBLE PRECISION); flags are 0/1 integers (as in SQLite).

CREATE TABLE auth_users (
    id TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until DOUBLE PRECISION NOT NULL DEFAULT 0,
    created_at DOUBLE PRECISION NOT NULL
);

CREATE TABLE auth_roles (
    name TEXT PRIMARY KEY,
    permissions TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at DOUBLE PRECISION NOT NULL
);

CREATE TABLE auth_user_roles (
    user_id TEXT NOT NULL REFERENCES auth_users (id) ON DELETE CASCADE,
    role TEXT NOT NULL REFERENCES auth_roles (name) ON DELETE CASCADE,
    PRIMARY KEY (user_id, role)
);

-- A family: the tokens of one login (or of one service), refreshed in turn.
CREATE TABLE auth_families (
    id TEXT PRIMARY KEY,
    principal TEXT NOT NULL,
    kind TEXT NOT NULL,
    mfa INTEGER NOT NULL DEFAULT 0,
    created_at DOUBLE PRECISION NOT NULL,
    revoked_at DOUBLE PRECISION,
    revoked_reason TEXT
);
CREATE INDEX auth_families_principal ON auth_families (principal);

-- Root keys, wrapped by aria_security (never stored in the clear).
CREATE TABLE auth_root_keys (
    id TEXT PRIMARY KEY,
    family_id TEXT NOT NULL REFERENCES auth_families (id) ON DELETE CASCADE,
    wrapped BYTEA NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    retired_at DOUBLE PRECISION
);
CREATE INDEX auth_root_keys_family ON auth_root_keys (family_id);

CREATE TABLE auth_tokens (
    id TEXT PRIMARY KEY,
    family_id TEXT NOT NULL REFERENCES auth_families (id) ON DELETE CASCADE,
    key_id TEXT NOT NULL REFERENCES auth_root_keys (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    used_at DOUBLE PRECISION,
    revoked_at DOUBLE PRECISION
);
CREATE INDEX auth_tokens_family ON auth_tokens (family_id);
CREATE INDEX auth_tokens_expires ON auth_tokens (expires_at);

CREATE TABLE auth_mfa (
    user_id TEXT PRIMARY KEY REFERENCES auth_users (id) ON DELETE CASCADE,
    wrapped_secret BYTEA NOT NULL,
    confirmed INTEGER NOT NULL DEFAULT 0,
    last_step BIGINT,
    created_at DOUBLE PRECISION NOT NULL
);

CREATE TABLE auth_recovery_codes (
    user_id TEXT NOT NULL REFERENCES auth_users (id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    used_at DOUBLE PRECISION,
    PRIMARY KEY (user_id, code_hash)
);
