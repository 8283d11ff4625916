import { sql } from 'kysely';
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

/**
 * One round trip before a subscription request: a hit on each rate-limit key and the requested
 * newsletters. (Each round trip costs more than all the request's own work; see bench/subscribe.)
 */
export async function countAttemptAndFindNewsletters(
  db: Db,
  slugs: string[],
  hits: { key: string; windowSeconds: number }[],
): Promise<{ newsletters: RequestedNewsletter[]; hits: Map<string, number> }> {
  const result = await sql<{
    hits: { key: string; hits: number }[];
    newsletters: RequestedNewsletter[];
  }>`
    with counted as (
      insert into rate_limit_counters as counter (key, hits, expires_at)
      values ${sql.join(hits.map(({ key, windowSeconds }) => sql`(${key}::text, 1, now() + make_interval(secs => ${windowSeconds}::int))`))}
      on conflict (key) do update set
        hits = case when counter.expires_at <= now() then 1 else counter.hits + 1 end,
        expires_at = case when counter.expires_at <= now() then excluded.expires_at else counter.expires_at end
      returning key, hits
    )
    select
      (select coalesce(json_agg(json_build_object('key', key, 'hits', hits)), '[]') from counted) as hits,
      (select coalesce(json_agg(json_build_object(
          'id', id, 'slug', slug, 'name', name, 'description', description,
          'locale', locale, 'status', status, 'updated_at', updated_at)), '[]')
        from newsletters where slug in (${sql.join(slugs.map((slug) => sql`${slug}::text`))})) as newsletters
  `.execute(db);
  const row = result.rows[0]!;
  return {
    newsletters: row.newsletters.map((newsletter) => ({
      ...newsletter,
      id: Number(newsletter.id),
    })),
    hits: new Map(row.hits.map((hit) => [hit.key, Number(hit.hits)])),
  };
}

export interface RecordedRequest {
  subscriber: SubscriberRow;
  pendingNewsletterIds: number[];
  /** Confirmation mails counted for this address today, this one included; 0 when none is due. */
  confirmationMailsToday: number;
}

/**
 * Records a subscription request in one statement: the subscriber (found or created), every
 * requested subscription (new and unsubscribed ones become pending, confirmed ones stay),
 * a `requested` consent event per pending one and a hit on the daily confirmation-mail counter.
 * A suppressed address changes nothing and returns undefined; a blocklisted one only its row.
 */
export async function recordSubscriptionRequest(
  db: Db,
  request: {
    email: string;
    normalized: string;
    newsletterIds: number[];
    source: string | null;
    ip: string | null;
    userAgent: string | null;
    consentTextVersion: string;
    capWindowSeconds: number;
  },
): Promise<RecordedRequest | undefined> {
  const result = await sql<{
    id: number;
    email: string;
    email_normalized: string;
    status: 'active' | 'blocklisted';
    pending: number[];
    cap_hits: number | null;
  }>`
    with subscriber as (
      insert into subscribers (email, email_normalized)
      select ${request.email}::text, ${request.normalized}::text
      where not exists (select 1 from suppressions where email_normalized = ${request.normalized}::text)
      on conflict (email_normalized) do update set email_normalized = excluded.email_normalized
      returning id, email, email_normalized, status
    ),
    requested as (
      insert into subscriptions as existing (subscriber_id, newsletter_id, status, source)
      select subscriber.id, wanted.newsletter_id, 'pending', ${request.source}::text
      from subscriber,
        (values ${sql.join(inLockOrder(request.newsletterIds).map((id) => sql`(${id}::bigint)`))}) as wanted (newsletter_id)
      where subscriber.status = 'active'
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
      select 'confirmation-mail:' || subscriber.id, 1, now() + make_interval(secs => ${request.capWindowSeconds}::int)
      from subscriber where exists (select 1 from requested where status = 'pending')
      on conflict (key) do update set
        hits = case when counter.expires_at <= now() then 1 else counter.hits + 1 end,
        expires_at = case when counter.expires_at <= now() then excluded.expires_at else counter.expires_at end
      returning hits
    )
    select subscriber.id, subscriber.email, subscriber.email_normalized, subscriber.status,
      (select coalesce(json_agg(newsletter_id), '[]') from requested where status = 'pending') as pending,
      (select hits from cap) as cap_hits
    from subscriber
  `.execute(db);
  const row = result.rows[0];
  if (!row) return undefined;
  return {
    subscriber: {
      id: Number(row.id),
      email: row.email,
      email_normalized: row.email_normalized,
      status: row.status,
    },
    pendingNewsletterIds: row.pending.map(Number),
    confirmationMailsToday: Number(row.cap_hits ?? 0),
  };
}

// Rows of one reader are always locked in newsletter order, so two requests cannot deadlock.
function inLockOrder(ids: number[]): number[] {
  return [...ids].sort((a, b) => a - b);
}
