import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  // One editor-triggered issue; its content is frozen here so what was previewed is what goes out.
  await sql`
    create table sends (
      id bigint generated always as identity primary key,
      newsletter_id bigint not null references newsletters (id) on delete cascade,
      status text not null default 'draft'
        check (status in ('draft', 'scheduled', 'sending', 'paused', 'sent', 'cancelled')),
      status_reason text,
      subject text not null,
      preheader text not null default '',
      html text not null,
      text text not null,
      article_ids bigint[] not null default '{}',
      created_by text,
      idempotency_key text,
      request_fingerprint text,
      scheduled_at timestamptz,
      started_at timestamptz,
      started_by text,
      finished_at timestamptz,
      recipients integer not null default 0,
      window_sent integer not null default 0,
      window_failed integer not null default 0,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now(),
      constraint sends_idempotency_key unique (newsletter_id, idempotency_key)
    )`.execute(db);
  await sql`create index sends_due on sends (scheduled_at) where status = 'scheduled'`.execute(db);
  await sql`create index sends_newsletter on sends (newsletter_id, created_at)`.execute(db);

  // The ledger: one row per send and reader; the primary key is what makes "exactly once" checkable.
  await sql`
    create table deliveries (
      send_id bigint not null references sends (id) on delete cascade,
      subscriber_id bigint not null references subscribers (id) on delete cascade,
      status text not null default 'queued'
        check (status in ('queued', 'sending', 'sent', 'failed', 'skipped')),
      attempts integer not null default 0,
      reclaims integer not null default 0,
      next_attempt_at timestamptz not null default now(),
      lease_until timestamptz,
      last_error text,
      message_id text,
      sent_at timestamptz,
      primary key (send_id, subscriber_id)
    )`.execute(db);
  // Claims and "is anything left?" only look at unfinished rows, so finished ones leave this index.
  await sql`create index deliveries_pending on deliveries (send_id, next_attempt_at) where status in ('queued', 'sending')`.execute(
    db,
  );
  await sql`create index deliveries_by_status on deliveries (send_id, status, subscriber_id)`.execute(
    db,
  );
  // Finding rows whose worker died reads only what is in flight.
  await sql`create index deliveries_leased on deliveries (lease_until) where status = 'sending'`.execute(
    db,
  );

  // Throttles hold across every worker, so their state lives here and not in process memory.
  await sql`
    create table delivery_rate_buckets (
      transport text primary key,
      tokens double precision not null,
      refreshed_at timestamptz not null default clock_timestamp()
    )`.execute(db);
  await sql`
    create table delivery_connection_slots (
      transport text not null,
      slot integer not null,
      holder text,
      lease_until timestamptz,
      primary key (transport, slot)
    )`.execute(db);
  await sql`
    create table delivery_workers (
      id text primary key,
      seen_at timestamptz not null default clock_timestamp()
    )`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const table of [
    'delivery_workers',
    'delivery_connection_slots',
    'delivery_rate_buckets',
    'deliveries',
    'sends',
  ]) {
    await sql`drop table if exists ${sql.table(table)}`.execute(db);
  }
}
