-- 7: room on every users page for the next version of its rows. Most identify calls are for a
-- user already stored and change no indexed column (only last_seen and the traits), so with
-- free space on its page PostgreSQL writes the new version beside the old one (a HOT update):
-- no new entry in the primary key or in users_verified, and less WAL. Applies to pages written
-- from now on; `VACUUM FULL users` (or pg_repack) rewrites the existing ones.
ALTER TABLE users SET (fillfactor = 80);
