-- 8: the verified index leads with `verified`. A filtered user list reads it as before
-- (verified = $2 AND app_id = $1 AND user_id > $3, in user_id order), but a lookup of one user
-- by (app_id, user_id) can no longer use it: with the index on (app_id, verified, user_id) and
-- the statistics of a new, still empty table, the planner took it for the identify batch's
-- lookup as readily as the primary key, and kept that plan (made once per connection) while
-- the table grew, walking a workspace's whole slice of the index for every call until
-- autovacuum analyzed the table (measured: 3k new users per second instead of 30k). Rebuilding
-- the index blocks identify writes while it runs: 1.6 s per million users on a busy 2-core machine.
DROP INDEX users_verified;
CREATE INDEX users_verified ON users (verified, app_id, user_id);
