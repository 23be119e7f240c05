-- 4 (SQLite migration 4, "team invites"): the console's Team page: each account's last login,
-- and invitations into a workspace. An invitation's link token is stored as its SHA-256 only;
-- one invitation is pending per workspace and email.
ALTER TABLE console_accounts ADD COLUMN last_login_at bigint;

CREATE TABLE console_invites (
    token_sha256 bytea PRIMARY KEY,
    app_id text COLLATE "C" NOT NULL REFERENCES workspaces (app_id) ON DELETE CASCADE,
    -- Lower-cased by the server, as console_accounts.email.
    email text COLLATE "C" NOT NULL,
    role text NOT NULL,
    created_by text NOT NULL,
    created_at bigint NOT NULL,
    expires_at bigint NOT NULL
);
CREATE UNIQUE INDEX console_invites_app_email ON console_invites (app_id, email);
