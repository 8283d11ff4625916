import { sql, type Kysely } from 'kysely';
import * as subscribeRequest from './005_subscribe_request.ts';

/**
 * A confirmation mail's 12 KB of HTML is the same for everyone who asks for the same newsletters;
 * only the link differs. It is stored once in mail_bodies and each outbox row keeps the token,
 * which the worker splices in where the body has `%%{token}%%`. Compressing that HTML for every
 * request took an eighth of the database's time on it.
 *
 * Subscription requests are also taken in batches now: many readers who press "subscribe" at the
 * same moment share one statement, one round trip and one commit (src/db/group-commit.ts).
 * request_subscriptions does for each request of the batch what request_subscription (migration
 * 005) did for one; see `requestSubscriptions` in src/subscriptions/subscriptions.repository.ts.
 * Parameters: 1 the requests (jsonb) · 2 rate-limit window (s) · 3 consent text version
 * · 4 cap window (s) · 5 confirmation mails per day · 6-7 outer and inner HMAC pads
 * (tokens.ts signingPads) · 8 token payload before the subscriber id.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    create table mail_bodies (
      id bigint generated always as identity primary key,
      digest text not null unique,
      from_address text not null,
      subject text not null,
      html text not null,
      text text not null,
      headers jsonb not null default '{}',
      created_at timestamptz not null default now()
    )`.execute(db);
  await sql`
    alter table outbox
      add column body_id bigint references mail_bodies (id),
      add column token text,
      alter column from_address drop not null,
      alter column subject drop not null,
      alter column html drop not null,
      alter column text drop not null,
      add constraint outbox_has_content check (
        (body_id is not null and token is not null)
        or (from_address is not null and subject is not null and html is not null and text is not null))
    `.execute(db);
  await sql`drop function request_subscription`.execute(db);
  await sql`
    create function request_subscriptions(
      jsonb, int, text, int, int, bytea, bytea, text)
    returns table (
      ord int, hits json, newsletters json, states json, recorded boolean,
      subscriber_id bigint, pending json, cap_hits int, token text)
    language plpgsql as $body$
    #variable_conflict use_column
    begin
      return query
      with request as (
        select * from jsonb_to_recordset($1) as request (
          ord int, email text, normalized text, source text, ip text, user_agent text,
          hit_keys text[], hit_most int[], slugs text[],
          seen_ids bigint[], seen_updated_at timestamptz[], in_mail bigint[],
          body_id bigint, payload_after text)
      ),
      hit as (
        select request.ord, hit.key, hit.most
        from request, unnest(request.hit_keys, request.hit_most) as hit (key, most)
      ),
      counted as (
        insert into rate_limit_counters as counter (key, hits, expires_at)
        select key, count(*), now() + make_interval(secs => $2::int) from hit group by key order by key
        on conflict (key) do update set
          hits = case when counter.expires_at <= now() then excluded.hits else counter.hits + excluded.hits end,
          expires_at = case when counter.expires_at <= now() then excluded.expires_at else counter.expires_at end
        returning key, hits
      ),
      -- Requests of one batch that share a counter (one network, say) hit it one after the other.
      hit_count as (
        select hit.ord, hit.key, hit.most,
          (counted.hits - count(*) over (partition by hit.key)
            + row_number() over (partition by hit.key order by hit.ord))::int as hits
        from hit join counted using (key)
      ),
      found as (
        select id, slug, name, description, locale, status, updated_at from newsletters
        where slug in (select unnest(request.slugs) from request)
      ),
      states as (
        select subscribers.email_normalized, subscriptions.newsletter_id, subscriptions.status
        from subscriptions join subscribers on subscribers.id = subscriptions.subscriber_id
        where subscribers.email_normalized in (select request.normalized from request)
      ),
      -- A draft holds when every hit is within its limit, every requested newsletter is active and
      -- unchanged, and exactly the ones the address has not confirmed are in the mail.
      verdict as (
        select request.ord,
          not exists (select 1 from hit_count where hit_count.ord = request.ord and hit_count.hits > hit_count.most)
          and cardinality(request.seen_ids) = cardinality(request.slugs)
          and (select count(*) from found
            join unnest(request.seen_ids, request.seen_updated_at) as seen (id, updated_at)
              on found.id = seen.id and found.updated_at = seen.updated_at
            where found.status = 'active' and found.slug = any(request.slugs)
          ) = cardinality(request.seen_ids)
          and not exists (
            select 1 from unnest(request.seen_ids) as wanted (newsletter_id)
            left join states on states.newsletter_id = wanted.newsletter_id
              and states.email_normalized = request.normalized
            where (wanted.newsletter_id = any(request.in_mail))
              = (states.status is not distinct from 'confirmed')
          ) as go
        from request
      ),
      subscriber as (
        insert into subscribers (email, email_normalized)
        select request.email, request.normalized from request join verdict using (ord)
        where verdict.go and not exists (
          select 1 from suppressions where suppressions.email_normalized = request.normalized)
        order by request.normalized
        on conflict (email_normalized) do update set email_normalized = excluded.email_normalized
        returning id, email, email_normalized, status
      ),
      requested as (
        insert into subscriptions as existing (subscriber_id, newsletter_id, status, source)
        select subscriber.id, wanted.newsletter_id, 'pending', request.source
        from request join subscriber on subscriber.email_normalized = request.normalized,
          unnest(request.in_mail) as wanted (newsletter_id)
        where subscriber.status = 'active'
        order by subscriber.id, wanted.newsletter_id
        on conflict (subscriber_id, newsletter_id) do update set
          status = case when existing.status = 'confirmed' then 'confirmed' else 'pending' end,
          requested_at = case when existing.status = 'confirmed' then existing.requested_at else now() end,
          source = case when existing.status = 'confirmed' then existing.source else excluded.source end
        returning subscriber_id, newsletter_id, status
      ),
      consent as (
        insert into consent_events (subscriber_id, newsletter_id, action, ip, user_agent, source, consent_text_version)
        select requested.subscriber_id, requested.newsletter_id, 'requested',
          request.ip, request.user_agent, request.source, $3::text
        from requested
          join subscriber on subscriber.id = requested.subscriber_id
          join request on request.normalized = subscriber.email_normalized
        where requested.status = 'pending'
      ),
      cap as (
        insert into rate_limit_counters as counter (key, hits, expires_at)
        select 'confirmation-mail:' || subscriber.id, 1, now() + make_interval(secs => $4::int)
        from subscriber
        where exists (
          select 1 from requested where requested.subscriber_id = subscriber.id and requested.status = 'pending')
        order by subscriber.id
        on conflict (key) do update set
          hits = case when counter.expires_at <= now() then 1 else counter.hits + 1 end,
          expires_at = case when counter.expires_at <= now() then excluded.expires_at else counter.expires_at end
        returning key, hits
      ),
      -- The link's HMAC-SHA256 (tokens.ts signingPads): H(outer || H(inner || payload)), 16 bytes.
      link as (
        select subscriber.id, request.ord, subscriber.email, request.body_id, cap.hits as cap_hits,
          signed.payload || '.' || translate(encode(substring(sha256($6::bytea || sha256($7::bytea || convert_to(signed.payload, 'UTF8'))) from 1 for 16), 'base64'), '+/=' || chr(10), '-_') as token
        from subscriber
          join request on request.normalized = subscriber.email_normalized
          join cap on cap.key = 'confirmation-mail:' || subscriber.id,
          lateral (select translate(encode(convert_to($8::text || subscriber.id || request.payload_after, 'UTF8'), 'base64'), '+/=' || chr(10), '-_') as payload) as signed
      ),
      mail as (
        insert into outbox (kind, subscriber_id, to_address, body_id, token)
        select 'confirmation', link.id, link.email, link.body_id, link.token
        from link where link.cap_hits <= $5::int
        order by link.id
        returning subscriber_id
      )
      select request.ord,
        (select coalesce(json_agg(json_build_object('key', hit_count.key, 'hits', hit_count.hits)), '[]')
          from hit_count where hit_count.ord = request.ord),
        (select coalesce(json_agg(json_build_object(
            'id', found.id, 'slug', found.slug, 'name', found.name, 'description', found.description,
            'locale', found.locale, 'status', found.status, 'updated_at', found.updated_at)), '[]')
          from found where found.slug = any(request.slugs)),
        (select coalesce(json_agg(json_build_object('newsletter_id', states.newsletter_id, 'status', states.status)), '[]')
          from states where states.email_normalized = request.normalized),
        verdict.go,
        subscriber.id,
        (select coalesce(json_agg(requested.newsletter_id), '[]') from requested
          where requested.subscriber_id = subscriber.id and requested.status = 'pending'),
        link.cap_hits,
        (select link.token where exists (select 1 from mail where mail.subscriber_id = link.id))
      from request
        join verdict using (ord)
        left join subscriber on subscriber.email_normalized = request.normalized
        left join link on link.ord = request.ord
      order by request.ord;
    end
    $body$`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop function request_subscriptions`.execute(db);
  await subscribeRequest.up(db);
  await sql`
    update outbox set
      from_address = body.from_address,
      subject = body.subject,
      html = replace(body.html, '%%{token}%%', outbox.token),
      text = replace(body.text, '%%{token}%%', outbox.token),
      headers = body.headers
    from mail_bodies body where body.id = outbox.body_id`.execute(db);
  await sql`
    alter table outbox
      drop constraint outbox_has_content,
      drop column body_id,
      drop column token,
      alter column from_address set not null,
      alter column subject set not null,
      alter column html set not null,
      alter column text set not null`.execute(db);
  await sql`drop table mail_bodies`.execute(db);
}
