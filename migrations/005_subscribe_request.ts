import { sql, type Kysely } from 'kysely';

/**
 * A subscription request in one statement, so one round trip and one commit (see
 * `requestSubscription` in src/subscriptions/subscriptions.repository.ts for what it does and
 * returns). It is a PL/pgSQL function because PL/pgSQL keeps the plan per connection: planning
 * this statement costs more than running it. Parameters, in order:
 *  1-3 rate-limit keys, windows (s), most hits · 4 slugs · 5 normalized address · 6 address as typed
 *  7-9 requested newsletters as the draft saw them: ids, updated_at, in the mail
 *  10 newsletter ids to make pending, in lock order · 11 source · 12 ip · 13 user agent
 *  14 consent text version · 15 cap window (s) · 16 confirmation mails per day
 *  17-18 outer and inner HMAC pads (tokens.ts signingPads) · 19-20 token payload around the id
 *  21 from · 22 subject · 23 html · 24 text · 25 link slot · 26 link prefix, HTML-escaped
 *  27 link prefix · 28 headers
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    create function request_subscription(
      text[], int[], int[], text[], text, text, bigint[], timestamptz[], boolean[], bigint[],
      text, text, text, text, int, int, bytea, bytea, text, text,
      text, text, text, text, text, text, text, jsonb)
    returns table (
      hits json, newsletters json, states json, recorded boolean, subscriber_id bigint,
      pending json, cap_hits int, token text)
    language plpgsql as $body$
    #variable_conflict use_column
    begin
      return query
      with counted as (
        insert into rate_limit_counters as counter (key, hits, expires_at)
        select key, 1, now() + make_interval(secs => window_seconds)
        from unnest($1::text[], $2::int[]) as hit (key, window_seconds)
        on conflict (key) do update set
          hits = case when counter.expires_at <= now() then 1 else counter.hits + 1 end,
          expires_at = case when counter.expires_at <= now() then excluded.expires_at else counter.expires_at end
        returning key, hits
      ),
      allowance as (
        select coalesce(bool_and(counted.hits <= hit.most), true) as allowed
        from counted join unnest($1::text[], $3::int[]) as hit (key, most) using (key)
      ),
      found as (
        select id, slug, name, description, locale, status, updated_at from newsletters
        where slug = any($4::text[])
      ),
      states as (
        select subscriptions.newsletter_id, subscriptions.status
        from subscriptions join subscribers on subscribers.id = subscriptions.subscriber_id
        where subscribers.email_normalized = $5::text
      ),
      -- The draft holds when every requested newsletter is active and unchanged, and exactly the
      -- ones the address has not confirmed are in the mail.
      verdict as (
        select (select allowed from allowance)
          and cardinality($7::bigint[]) = cardinality($4::text[])
          and (select count(*) from found
            join unnest($7::bigint[], $8::timestamptz[]) as seen (id, updated_at)
              on found.id = seen.id and found.updated_at = seen.updated_at and found.status = 'active'
          ) = cardinality($7::bigint[])
          and not exists (
            select 1 from unnest($7::bigint[], $9::boolean[]) as wanted (newsletter_id, in_mail)
            left join states using (newsletter_id)
            where wanted.in_mail = (states.status is not distinct from 'confirmed')
          ) as go
      ),
      subscriber as (
        insert into subscribers (email, email_normalized)
        select $6::text, $5::text from verdict
        where go and not exists (select 1 from suppressions where email_normalized = $5::text)
        on conflict (email_normalized) do update set email_normalized = excluded.email_normalized
        returning id, email, status
      ),
      requested as (
        insert into subscriptions as existing (subscriber_id, newsletter_id, status, source)
        select subscriber.id, wanted.newsletter_id, 'pending', $11::text
        from subscriber, unnest($10::bigint[]) as wanted (newsletter_id)
        where subscriber.status = 'active'
        on conflict (subscriber_id, newsletter_id) do update set
          status = case when existing.status = 'confirmed' then 'confirmed' else 'pending' end,
          requested_at = case when existing.status = 'confirmed' then existing.requested_at else now() end,
          source = case when existing.status = 'confirmed' then existing.source else excluded.source end
        returning subscriber_id, newsletter_id, status
      ),
      consent as (
        insert into consent_events (subscriber_id, newsletter_id, action, ip, user_agent, source, consent_text_version)
        select subscriber_id, newsletter_id, 'requested', $12::text, $13::text, $11::text, $14::text
        from requested where status = 'pending'
      ),
      cap as (
        insert into rate_limit_counters as counter (key, hits, expires_at)
        select 'confirmation-mail:' || subscriber.id, 1, now() + make_interval(secs => $15::int)
        from subscriber where exists (select 1 from requested where status = 'pending')
        on conflict (key) do update set
          hits = case when counter.expires_at <= now() then 1 else counter.hits + 1 end,
          expires_at = case when counter.expires_at <= now() then excluded.expires_at else counter.expires_at end
        returning hits
      ),
      -- The link's HMAC-SHA256 (tokens.ts signingPads): H(outer || H(inner || payload)), 16 bytes.
      link as (
        select subscriber.id, subscriber.email, signed.payload || '.' || translate(encode(substring(sha256($17::bytea || sha256($18::bytea || convert_to(signed.payload, 'UTF8'))) from 1 for 16), 'base64'), '+/=' || chr(10), '-_') as token
        from subscriber,
          lateral (select translate(encode(convert_to($19::text || subscriber.id || $20::text, 'UTF8'), 'base64'), '+/=' || chr(10), '-_') as payload) as signed
      ),
      mail as (
        insert into outbox (kind, subscriber_id, to_address, from_address, subject, html, text, headers)
        select 'confirmation', link.id, link.email, $21::text, $22::text,
          replace($23::text, $25::text, $26::text || link.token),
          replace($24::text, $25::text, $27::text || link.token),
          $28::jsonb
        from link
        where exists (select 1 from requested where status = 'pending') and (select hits from cap) <= $16::int
        returning id
      )
      select
        (select coalesce(json_agg(json_build_object('key', key, 'hits', hits)), '[]') from counted) as hits,
        (select coalesce(json_agg(json_build_object(
            'id', id, 'slug', slug, 'name', name, 'description', description,
            'locale', locale, 'status', status, 'updated_at', updated_at)), '[]') from found) as newsletters,
        (select coalesce(json_agg(json_build_object('newsletter_id', newsletter_id, 'status', status)), '[]') from states) as states,
        (select go from verdict) as recorded,
        (select id from subscriber) as subscriber_id,
        (select coalesce(json_agg(newsletter_id), '[]') from requested where status = 'pending') as pending,
        (select hits from cap) as cap_hits,
        (select token from link where exists (select 1 from mail)) as token;
    end
    $body$`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop function if exists request_subscription`.execute(db);
}
