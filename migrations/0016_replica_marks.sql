-- Each tenant's last write, as a WAL position of the primary (core/db/replica.ts): with a read replica
-- configured, a tenant's searches go to the replica only once it has replayed this far, so a caller's
-- search sees its own ingest. Written only when DATABASE_READ_URL is set. Logged, not UNLOGGED like the cache:
-- the primary crashing must not forget one; it is one small row per tenant.
create table if not exists replica_marks (
  tenant_id uuid primary key references tenants (id) on delete cascade,
  lsn pg_lsn not null
);
