-- The time to live a document's expiry was set with, so that the same `ttlSeconds` sent again keeps the expiry
-- (docs/contract.md, "Ingest"). It was read as `expires_at - updated_at`, which any other change to the document
-- moved: a later ingest with the same ttlSeconds then set the expiry from now. Existing expiries get that reading,
-- the best there is. Null exactly when `expires_at` is.
alter table documents add column if not exists ttl_seconds integer;
--> statement-breakpoint
update documents set ttl_seconds = greatest(1, round(extract(epoch from expires_at - updated_at)))::int
where expires_at is not null and ttl_seconds is null;
