import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  // Counters shared by every instance: per-IP and per-address limits, the daily confirmation cap.
  await sql`
    create table rate_limit_counters (
      key text primary key,
      hits integer not null,
      expires_at timestamptz not null
    )`.execute(db);
  await sql`create index rate_limit_counters_expiry on rate_limit_counters (expires_at)`.execute(
    db,
  );

  // Editors page through one newsletter's readers by subscriber id, optionally by status.
  await sql`create index subscriptions_newsletter_subscriber on subscriptions (newsletter_id, subscriber_id)`.execute(
    db,
  );
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop index if exists subscriptions_newsletter_subscriber`.execute(db);
  await sql`drop table if exists rate_limit_counters`.execute(db);
}
