-- Tether's records on PostgreSQL (server/src/store/postgres.rs). Each record is the same serde
-- JSON the redb backend stores, in a JSONB column, so both backends read and write one layout and
-- records gain fields without a migration; the columns beside it are what queries select on.

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    body JSONB NOT NULL
);

CREATE TABLE device_groups (
    id TEXT PRIMARY KEY,
    body JSONB NOT NULL
);

CREATE TABLE devices (
    id TEXT PRIMARY KEY,
    group_id TEXT NOT NULL,
    body JSONB NOT NULL
);
CREATE INDEX devices_by_group ON devices (group_id);

-- Ids come from a sequence: they grow monotonically and are never reused, even after pruning.
CREATE SEQUENCE event_ids AS BIGINT;
CREATE TABLE events (
    id BIGINT PRIMARY KEY,
    time_ms BIGINT NOT NULL,
    body JSONB NOT NULL
);
CREATE INDEX events_by_time ON events (time_ms);

CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Login sessions, keyed by the SHA-256 hex of the cookie.
CREATE TABLE login_sessions (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    expires BIGINT NOT NULL,
    body JSONB NOT NULL
);
CREATE INDEX login_sessions_by_user ON login_sessions (user_id);

CREATE TABLE enrolment_keys (
    key TEXT PRIMARY KEY,
    group_id TEXT NOT NULL,
    body JSONB NOT NULL
);

CREATE TABLE group_enrolment_keys (
    group_id TEXT PRIMARY KEY,
    key TEXT NOT NULL
);

CREATE TABLE invites (
    id TEXT PRIMARY KEY,
    group_id TEXT NOT NULL,
    body JSONB NOT NULL
);

CREATE TABLE shares (
    id TEXT PRIMARY KEY,
    body JSONB NOT NULL
);

CREATE TABLE blocked_devices (
    device_id TEXT PRIMARY KEY,
    group_id TEXT NOT NULL,
    body JSONB NOT NULL
);
