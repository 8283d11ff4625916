import { sql, type RawBuilder } from 'kysely';
import type { ConsentAction, Db, SubscriptionStatus } from '../db/database.ts';

export interface SubscriberRow {
  id: number;
  email: string;
  email_normalized: string;
  status: 'active' | 'blocklisted';
}

export interface ConsentEvent {
  subscriberId: number;
  newsletterId: number | null;
  action: ConsentAction;
  ip: string | null;
  userAgent: string | null;
  source: string | null;
  consentTextVersion: string | null;
}

/**
 * Counts one hit on each key and returns the counts. A window starts at its first hit and a
 * hit after it ends starts a new one; the upsert is atomic on PostgreSQL and PGlite alike.
 */
export async function hitRateLimits(
  db: Db,
  hits: { key: string; windowSeconds: number }[],
): Promise<Map<string, number>> {
  const rows = await db
    .insertInto('rate_limit_counters')
    .values(
      hits.map(({ key, windowSeconds }) => ({
        key,
        hits: 1,
        expires_at: sql<Date>`now() + make_interval(secs => ${windowSeconds})`,
      })),
    )
    .onConflict((conflict) =>
      conflict.column('key').doUpdateSet({
        hits: sql<number>`case when rate_limit_counters.expires_at <= now() then 1 else rate_limit_counters.hits + 1 end`,
        expires_at: sql<Date>`case when rate_limit_counters.expires_at <= now() then excluded.expires_at else rate_limit_counters.expires_at end`,
      }),
    )
    .returning(['key', 'hits'])
    .execute();
  return new Map(rows.map((row) => [row.key, Number(row.hits)]));
}

export async function pruneRateLimits(db: Db): Promise<void> {
  await db
    .deleteFrom('rate_limit_counters')
    .where('expires_at', '<', sql<Date>`now()`)
    .execute();
}

export async function isSuppressed(db: Db, normalized: string): Promise<boolean> {
  const row = await db
    .selectFrom('suppressions')
    .select('email_normalized')
    .where('email_normalized', '=', normalized)
    .executeTakeFirst();
  return row !== undefined;
}

export async function findSubscriberById(db: Db, id: number): Promise<SubscriberRow | undefined> {
  return db
    .selectFrom('subscribers')
    .select(['id', 'email', 'email_normalized', 'status'])
    .where('id', '=', id)
    .executeTakeFirst();
}

export async function appendConsentEvents(db: Db, events: ConsentEvent[]): Promise<void> {
  if (events.length === 0) return;
  await db
    .insertInto('consent_events')
    .values(
      events.map((event) => ({
        subscriber_id: event.subscriberId,
        newsletter_id: event.newsletterId,
        action: event.action,
        ip: event.ip,
        user_agent: event.userAgent,
        source: event.source,
        consent_text_version: event.consentTextVersion,
      })),
    )
    .execute();
}

/** Confirms the pending subscriptions among `newsletterIds`; returns the ones it changed. */
export async function confirmPending(
  db: Db,
  subscriberId: number,
  newsletterIds: number[],
): Promise<number[]> {
  const rows = await db
    .updateTable('subscriptions')
    .set({ status: 'confirmed', confirmed_at: sql<Date>`now()`, unsubscribed_at: null })
    .where('subscriber_id', '=', subscriberId)
    .where('newsletter_id', 'in', newsletterIds)
    .where('status', '=', 'pending')
    .returning('newsletter_id')
    .execute();
  return rows.map((row) => row.newsletter_id);
}

/** Joins without a second confirmation (the link proves the mailbox); returns the ones it changed. */
export async function confirmDirectly(
  db: Db,
  subscriberId: number,
  newsletterIds: number[],
  source: string,
): Promise<number[]> {
  if (newsletterIds.length === 0) return [];
  const rows = await db
    .insertInto('subscriptions')
    .values(
      newsletterIds.map((newsletterId) => ({
        subscriber_id: subscriberId,
        newsletter_id: newsletterId,
        status: 'confirmed' as const,
        confirmed_at: sql<Date>`now()`,
        source,
      })),
    )
    .onConflict((conflict) =>
      conflict
        .columns(['subscriber_id', 'newsletter_id'])
        .doUpdateSet({
          status: 'confirmed',
          confirmed_at: sql<Date>`now()`,
          unsubscribed_at: null,
          source: (eb) => eb.ref('excluded.source'),
        })
        .where('subscriptions.status', '<>', 'confirmed'),
    )
    .returning('newsletter_id')
    .execute();
  return rows.map((row) => row.newsletter_id);
}

/** Unsubscribes from the given newsletters; returns the ones it changed (so a repeat is a no-op). */
export async function unsubscribe(
  db: Db,
  subscriberId: number,
  newsletterIds: number[] | 'all',
): Promise<number[]> {
  if (newsletterIds !== 'all' && newsletterIds.length === 0) return [];
  let query = db
    .updateTable('subscriptions')
    .set({ status: 'unsubscribed', unsubscribed_at: sql<Date>`now()` })
    .where('subscriber_id', '=', subscriberId)
    .where('status', '<>', 'unsubscribed');
  if (newsletterIds !== 'all') query = query.where('newsletter_id', 'in', newsletterIds);
  const rows = await query.returning('newsletter_id').execute();
  return rows.map((row) => row.newsletter_id);
}

export async function subscriptionStates(
  db: Db,
  subscriberId: number,
): Promise<Map<number, SubscriptionStatus>> {
  const rows = await db
    .selectFrom('subscriptions')
    .select(['newsletter_id', 'status'])
    .where('subscriber_id', '=', subscriberId)
    .execute();
  return new Map(rows.map((row) => [row.newsletter_id, row.status]));
}

export interface ReaderRow {
  subscriber_id: number;
  email: string;
  status: SubscriptionStatus;
  requested_at: Date;
  confirmed_at: Date | null;
  unsubscribed_at: Date | null;
  source: string | null;
}

/** One page of a newsletter's readers in subscriber order, after `afterSubscriberId`. */
export async function listReaders(
  db: Db,
  newsletterId: number,
  filter: { status?: SubscriptionStatus; afterSubscriberId?: number; limit: number },
): Promise<ReaderRow[]> {
  let query = db
    .selectFrom('subscriptions')
    .innerJoin('subscribers', 'subscribers.id', 'subscriptions.subscriber_id')
    .select([
      'subscriptions.subscriber_id',
      'subscribers.email',
      'subscriptions.status',
      'subscriptions.requested_at',
      'subscriptions.confirmed_at',
      'subscriptions.unsubscribed_at',
      'subscriptions.source',
    ])
    .where('subscriptions.newsletter_id', '=', newsletterId)
    .orderBy('subscriptions.subscriber_id')
    .limit(filter.limit);
  if (filter.status) query = query.where('subscriptions.status', '=', filter.status);
  if (filter.afterSubscriberId !== undefined) {
    query = query.where('subscriptions.subscriber_id', '>', filter.afterSubscriberId);
  }
  return query.execute();
}

/** The newsletter fields a subscription request needs (and the confirmation mail shows). */
export interface RequestedNewsletter {
  id: number;
  slug: string;
  name: string;
  description: string;
  locale: string;
  status: 'active' | 'archived';
  updated_at: string;
}

/** A hit on a rate-limit counter and the most hits its window allows. */
export interface CountedHit {
  key: string;
  windowSeconds: number;
  most: number;
}

/**
 * The confirmation mail of one request, complete but for its link: the link names the subscriber
 * id, which only the statement knows, so PostgreSQL signs it (tokens.ts `signingPads`).
 */
export interface ConfirmationDraft {
  /** The newsletters the mail asks to confirm, in the order it lists them. */
  newsletterIds: number[];
  from: string;
  subject: string;
  /** html and text with `slot` where the confirmation URL goes. */
  html: string;
  text: string;
  slot: string;
  headers: Record<string, string>;
  /** The URL before the token, as is and HTML-escaped. */
  linkPrefix: string;
  htmlLinkPrefix: string;
  payload: { before: string; after: string };
  pads: { inner: Buffer; outer: Buffer };
  /** The confirmation mails an address may get per day, and their window. */
  mailsPerDay: number;
  capWindowSeconds: number;
}

export interface SubscriptionRequest {
  email: string;
  normalized: string;
  slugs: string[];
  source: string | null;
  ip: string | null;
  userAgent: string | null;
  consentTextVersion: string;
  hits: CountedHit[];
  /** Every requested newsletter as the draft was made from it; none when nothing is known yet. */
  expected: { id: number; updatedAt: string }[];
  draft: ConfirmationDraft | undefined;
}

export interface SubscriptionOutcome {
  hits: Map<string, number>;
  /** The requested newsletters as they are now. */
  newsletters: RequestedNewsletter[];
  /** The address's subscriptions as they were before this request. */
  states: Map<number, SubscriptionStatus>;
  /** False when the draft no longer fits (limits, newsletters, states): nothing was written. */
  recorded: boolean;
  pendingNewsletterIds: number[];
  subscriberId: number | null;
  /** Confirmation mails counted for this address today, this one included; 0 when none is due. */
  confirmationMailsToday: number;
  /** The signed token of the queued confirmation mail; undefined when none was queued. */
  confirmToken: string | undefined;
}

const base64url = (bytes: RawBuilder<unknown>) =>
  sql<string>`translate(encode(${bytes}, 'base64'), ${'+/=\n'}, '-_')`;

/**
 * A subscription request in one statement, so one round trip and one commit: a hit on each
 * rate-limit counter; then, only when every hit is within its limit, the newsletters and the
 * address's subscriptions are still as the draft was made from them and the address is not
 * suppressed: the subscriber (found or created), the pending subscriptions, a `requested` consent
 * event for each, a hit on the daily confirmation-mail counter and, under that cap, the
 * confirmation mail in the outbox (invariant 3: one statement is one transaction).
 * Otherwise only the counters change, and the answer says what the draft should have been.
 */
export async function requestSubscription(
  db: Db,
  request: SubscriptionRequest,
): Promise<SubscriptionOutcome> {
  const { draft, expected } = request;
  const mailed = new Set(draft?.newsletterIds ?? []);
  const values = <T>(rows: T[], row: (item: T) => RawBuilder<unknown>) =>
    sql.join(rows.map((item) => sql`(${row(item)})`));
  const counted =
    request.hits.length === 0
      ? sql`select null::text as key, null::int as hits, null::int as most where false`
      : sql`insert into rate_limit_counters as counter (key, hits, expires_at)
          select key, 1, now() + make_interval(secs => window_seconds)
          from (values ${values(request.hits, (hit) => sql`${hit.key}::text, ${hit.windowSeconds}::int`)}) as hit (key, window_seconds)
          on conflict (key) do update set
            hits = case when counter.expires_at <= now() then 1 else counter.hits + 1 end,
            expires_at = case when counter.expires_at <= now() then excluded.expires_at else counter.expires_at end
          returning key, hits`;
  const limits =
    request.hits.length === 0
      ? sql`select true as allowed`
      : sql`select coalesce(bool_and(counted.hits <= hit.most), true) as allowed
          from counted join (values ${values(request.hits, (hit) => sql`${hit.key}::text, ${hit.most}::int`)}) as hit (key, most) using (key)`;
  // The draft holds when every requested newsletter is active and unchanged, and exactly the
  // ones the address has not confirmed are in the mail.
  const current =
    expected.length === 0
      ? sql`select false as holds`
      : sql`select
          (select count(*) from found join (values ${values(expected, (row) => sql`${row.id}::bigint, ${row.updatedAt}::timestamptz`)}) as seen (id, updated_at)
            on found.id = seen.id and found.updated_at = seen.updated_at and found.status = 'active') = ${expected.length}
          and not exists (
            select 1 from (values ${values(expected, (row) => sql`${row.id}::bigint, ${mailed.has(row.id)}::boolean`)}) as wanted (newsletter_id, in_mail)
            left join states using (newsletter_id)
            where wanted.in_mail = (states.status is not distinct from 'confirmed')) as holds`;
  const token = draft
    ? sql`select subscriber.id, subscriber.email, payload || '.' || ${base64url(
        sql`substring(sha256(${draft.pads.outer}::bytea || sha256(${draft.pads.inner}::bytea || convert_to(payload, 'UTF8'))) from 1 for 16)`,
      )} as token
        from subscriber, lateral (select ${base64url(
          sql`convert_to(${draft.payload.before}::text || subscriber.id || ${draft.payload.after}::text, 'UTF8')`,
        )} as payload) as signed`
    : sql`select null::bigint as id, null::text as email, null::text as token where false`;
  const mail = draft
    ? sql`insert into outbox (kind, subscriber_id, to_address, from_address, subject, html, text, headers)
        select 'confirmation', link.id, link.email, ${draft.from}::text, ${draft.subject}::text,
          replace(${draft.html}::text, ${draft.slot}::text, ${draft.htmlLinkPrefix}::text || link.token),
          replace(${draft.text}::text, ${draft.slot}::text, ${draft.linkPrefix}::text || link.token),
          ${JSON.stringify(draft.headers)}::jsonb
        from link
        where exists (select 1 from requested where status = 'pending')
          and (select hits from cap) <= ${draft.mailsPerDay}::int
        returning id`
    : sql`select null::bigint as id where false`;
  const inMail = draft ? inLockOrder(draft.newsletterIds) : [];

  const result = await sql<{
    hits: { key: string; hits: number }[];
    newsletters: RequestedNewsletter[];
    states: { newsletter_id: number; status: SubscriptionStatus }[];
    recorded: boolean;
    subscriber_id: number | null;
    pending: number[];
    cap_hits: number | null;
    token: string | null;
  }>`
    with counted as (${counted}),
    allowance as (${limits}),
    found as (
      select id, slug, name, description, locale, status, updated_at from newsletters
      where slug in (${sql.join(request.slugs.map((slug) => sql`${slug}::text`))})
    ),
    states as (
      select subscriptions.newsletter_id, subscriptions.status
      from subscriptions join subscribers on subscribers.id = subscriptions.subscriber_id
      where subscribers.email_normalized = ${request.normalized}::text
    ),
    verdict as (select (select allowed from allowance) and (${current}) as go),
    subscriber as (
      insert into subscribers (email, email_normalized)
      select ${request.email}::text, ${request.normalized}::text
      from verdict
      where go and not exists (select 1 from suppressions where email_normalized = ${request.normalized}::text)
      on conflict (email_normalized) do update set email_normalized = excluded.email_normalized
      returning id, email, status
    ),
    requested as (
      insert into subscriptions as existing (subscriber_id, newsletter_id, status, source)
      select subscriber.id, wanted.newsletter_id, 'pending', ${request.source}::text
      from subscriber, unnest(${sql`array[${sql.join(inMail.length ? inMail.map((id) => sql`${id}::bigint`) : [sql`null::bigint`])}]`}) as wanted (newsletter_id)
      where subscriber.status = 'active' and wanted.newsletter_id is not null
      on conflict (subscriber_id, newsletter_id) do update set
        status = case when existing.status = 'confirmed' then 'confirmed' else 'pending' end,
        requested_at = case when existing.status = 'confirmed' then existing.requested_at else now() end,
        source = case when existing.status = 'confirmed' then existing.source else excluded.source end
      returning subscriber_id, newsletter_id, status
    ),
    consent as (
      insert into consent_events (subscriber_id, newsletter_id, action, ip, user_agent, source, consent_text_version)
      select subscriber_id, newsletter_id, 'requested', ${request.ip}::text, ${request.userAgent}::text,
        ${request.source}::text, ${request.consentTextVersion}::text
      from requested where status = 'pending'
    ),
    cap as (
      insert into rate_limit_counters as counter (key, hits, expires_at)
      select 'confirmation-mail:' || subscriber.id, 1, now() + make_interval(secs => ${draft?.capWindowSeconds ?? 0}::int)
      from subscriber where exists (select 1 from requested where status = 'pending')
      on conflict (key) do update set
        hits = case when counter.expires_at <= now() then 1 else counter.hits + 1 end,
        expires_at = case when counter.expires_at <= now() then excluded.expires_at else counter.expires_at end
      returning hits
    ),
    link as (${token}),
    mail as (${mail})
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
      (select token from link where exists (select 1 from mail)) as token
  `.execute(db);
  const row = result.rows[0]!;
  return {
    hits: new Map(row.hits.map((hit) => [hit.key, Number(hit.hits)])),
    newsletters: row.newsletters.map((newsletter) => ({
      ...newsletter,
      id: Number(newsletter.id),
    })),
    states: new Map(row.states.map((state) => [Number(state.newsletter_id), state.status])),
    recorded: row.recorded,
    subscriberId: row.subscriber_id === null ? null : Number(row.subscriber_id),
    pendingNewsletterIds: row.pending.map(Number),
    confirmationMailsToday: Number(row.cap_hits ?? 0),
    confirmToken: row.token ?? undefined,
  };
}

// Rows of one reader are always locked in newsletter order, so two requests cannot deadlock.
function inLockOrder(ids: number[]): number[] {
  return [...ids].sort((a, b) => a - b);
}
