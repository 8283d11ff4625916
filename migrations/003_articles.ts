import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    create table articles (
      id bigint generated always as identity primary key,
      external_id text constraint articles_external_id_key unique,
      url text not null constraint articles_url_key unique,
      title text not null,
      summary text not null default '',
      authors text[] not null default '{}',
      image_url text,
      image_alt text,
      image_width integer,
      image_height integer,
      section text,
      tags text[] not null default '{}',
      published_at timestamptz not null,
      updated_at timestamptz,
      source text not null default 'api',
      created_at timestamptz not null default now(),
      ingested_at timestamptz not null default now()
    )`.execute(db);
  // Digests and the list read "latest first", keyset-paged on (published_at, id).
  await sql`create index articles_latest on articles (published_at desc, id desc)`.execute(db);
  await sql`create index articles_tags on articles using gin (tags)`.execute(db);

  await sql`
    alter table newsletters
      add column digest_sections text[] not null default '{}',
      add column digest_tags text[] not null default '{}',
      add column digest_max_articles integer not null default 10
        check (digest_max_articles between 1 and 50),
      add column digest_window text not null default 'since_last_send'
        check (digest_window in ('since_last_send', 'hours')),
      add column digest_window_hours integer not null default 24
        check (digest_window_hours between 1 and 2160),
      add column digest_subject text,
      add column feed_url text,
      add column feed_poll_minutes integer not null default 30
        check (feed_poll_minutes between 5 and 1440),
      add column feed_next_poll_at timestamptz,
      add column feed_polled_at timestamptz,
      add column feed_last_error text`.execute(db);
  // Pollers on any machine claim due feeds with skip locked; this finds them.
  await sql`create index newsletters_feed_due on newsletters (feed_next_poll_at) where feed_url is not null`.execute(
    db,
  );
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop index if exists newsletters_feed_due`.execute(db);
  await sql`
    alter table newsletters
      drop column if exists digest_sections,
      drop column if exists digest_tags,
      drop column if exists digest_max_articles,
      drop column if exists digest_window,
      drop column if exists digest_window_hours,
      drop column if exists digest_subject,
      drop column if exists feed_url,
      drop column if exists feed_poll_minutes,
      drop column if exists feed_next_poll_at,
      drop column if exists feed_polled_at,
      drop column if exists feed_last_error`.execute(db);
  await sql`drop table if exists articles`.execute(db);
}
