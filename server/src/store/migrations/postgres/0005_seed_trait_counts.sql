-- 5 (SQLite migration 5, "seed trait counts"): of the seed-form calls verified per minute, those
-- that carried plan or MRR beside a signature that does not cover them (the console's Security
-- page recommends signed claims when there are any). Added to by every instance, as the others.
ALTER TABLE call_counts ADD COLUMN seed_with_traits bigint NOT NULL DEFAULT 0;
