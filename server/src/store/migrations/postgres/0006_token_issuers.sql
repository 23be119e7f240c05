-- 6: the workspace's token issuers (public keys and identity providers), a JSON array of their
-- configurations (issuers::IssuerConfig): public keys and URLs only, nothing secret.
ALTER TABLE workspaces ADD COLUMN token_issuers text NOT NULL DEFAULT '[]';
