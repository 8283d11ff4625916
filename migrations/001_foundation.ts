import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    create table api_tokens (
      id bigint generated always as identity primary key,
      name text not null,
      role text not null check (role in ('admin', 'editor')),
      token_hash text not null unique,
      created_at timestamptz not null default now(),
      last_used_at timestamptz,
      revoked_at timestamptz
    )`.execute(db);

  await sql`
    create table newsletters (
      id bigint generated always as identity primary key,
      slug text not null constraint newsletters_slug_key unique,
      name text not null,
      description text not null default '',
      from_name text not null,
      from_email text not null,
      reply_to text,
      locale text not null default 'en',
      status text not null default 'active' check (status in ('active', 'archived')),
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now()
    )`.execute(db);

  await sql`
    create table subscribers (
      id bigint generated always as identity primary key,
      email text not null,
      email_normalized text not null constraint subscribers_email_normalized_key unique,
      status text not null default 'active' check (status in ('active', 'blocklisted')),
      created_at timestamptz not null default now()
    )`.execute(db);

  await sql`
    create table subscriptions (
      subscriber_id bigint not null references subscribers (id) on delete cascade,
      newsletter_id bigint not null references newsletters (id) on delete cascade,
      status text not null check (status in ('pending', 'confirmed', 'unsubscribed')),
      requested_at timestamptz not null default now(),
      confirmed_at timestamptz,
      unsubscribed_at timestamptz,
      source text,
      primary key (subscriber_id, newsletter_id)
    )`.execute(db);
  // Sends read "confirmed readers of one newsletter" in subscriber order.
  await sql`create index subscriptions_newsletter_status on subscriptions (newsletter_id, status, subscriber_id)`.execute(
    db,
  );

  await sql`
    create table consent_events (
      id bigint generated always as identity primary key,
      subscriber_id bigint not null references subscribers (id) on delete cascade,
      newsletter_id bigint references newsletters (id) on delete cascade,
      action text not null check (action in ('requested', 'confirmed', 'unsubscribed', 'bounced', 'complained', 'erased')),
      occurred_at timestamptz not null default now(),
      ip text,
      user_agent text,
      source text,
      consent_text_version text
    )`.execute(db);
  await sql`create index consent_events_subscriber on consent_events (subscriber_id, occurred_at)`.execute(
    db,
  );

  await sql`
    create table suppressions (
      email_normalized text primary key,
      reason text not null check (reason in ('hard_bounce', 'complaint', 'erasure', 'manual')),
      details text,
      created_at timestamptz not null default now()
    )`.execute(db);

  // Transactional mail (confirmations, welcomes) waits here, written in the same transaction as its cause.
  await sql`
    create table outbox (
      id bigint generated always as identity primary key,
      kind text not null,
      subscriber_id bigint references subscribers (id) on delete cascade,
      to_address text not null,
      from_address text not null,
      subject text not null,
      html text not null,
      text text not null,
      headers jsonb not null default '{}',
      status text not null default 'queued' check (status in ('queued', 'sending', 'sent', 'failed')),
      attempts integer not null default 0,
      next_attempt_at timestamptz not null default now(),
      lease_until timestamptz,
      last_error text,
      message_id text,
      created_at timestamptz not null default now(),
      sent_at timestamptz
    )`.execute(db);
  await sql`create index outbox_due on outbox (next_attempt_at) where status in ('queued', 'sending')`.execute(
    db,
  );
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const table of [
    'outbox',
    'suppressions',
    'consent_events',
    'subscriptions',
    'subscribers',
    'newsletters',
    'api_tokens',
  ]) {
    await sql`drop table if exists ${sql.table(table)}`.execute(db);
  }
}
