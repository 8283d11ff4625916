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

/** A hit on a rate-limit counter and the most hits its window allows. */
export interface CountedHit {
  key: string;
  most: number;
}

/**
 * The confirmation mail of one request, complete but for its link: the link names the subscriber
 * id, which only the statement knows, so PostgreSQL signs it (tokens.ts `signingPads`).
 */
export interface ConfirmationDraft {
  /** The newsletters the mail asks to confirm, in the order it lists them. */
  newsletterIds: number[];
  /** The stored mail (outbox.repository.ts `saveMailBody`) that takes the signed token. */
  bodyId: number;
  /** The token's payload after the subscriber id (tokens.ts `confirmPayloadParts`). */
  payloadAfter: string;
}

/** What is the same for every request of a batch: limits, the consent text and the link key. */
export interface RequestRules {
  hitWindowSeconds: number;
  consentTextVersion: string;
  confirmationMailsPerDay: number;
  capWindowSeconds: number;
  pads: { inner: Buffer; outer: Buffer };
  payloadBefore: string;
}

export interface SubscriptionRequest {
  email: string;
  normalized: string;
  /** The inbox the daily cap counts (email-address.ts `mailboxOf`). */
  mailbox: string;
  slugs: string[];
  source: string | null;
  ip: string | null;
  userAgent: string | null;
  hits: CountedHit[];
  /** Every requested newsletter as the draft was made from it; none when nothing is known yet. */
  expected: { id: number; updatedAt: string }[];
  draft: ConfirmationDraft | undefined;
}

export interface SubscriptionOutcome {
  hits: Map<string, number>;
  /** The requested newsletters as they are now; undefined when they are as the draft expected. */
  newsletters: RequestedNewsletter[] | undefined;
  /** False when a limit is reached or the draft no longer fits: only the counters changed. */
  recorded: boolean;
  pendingNewsletterIds: number[];
  subscriberId: number | null;
  /** Confirmation mails counted for this inbox today, this one included; 0 when none is due. */
  confirmationMailsToday: number;
  /** The signed token of the queued confirmation mail; undefined when none was queued. */
  confirmToken: string | undefined;
}

/**
 * Subscription requests in one round trip and one commit, each as if it were alone: a hit on each
 * of its rate-limit counters; then, only when every hit is within its limit, the newsletters are
 * still as the draft was made from them, the draft's mail covers all of them and the address is
 * not suppressed: the subscriber (found or created), the subscriptions not yet confirmed made
 * pending, a `requested` consent event for each, a hit on the daily confirmation-mail counter and,
 * under that cap, the confirmation mail in the outbox (invariant 3: one statement is one
 * transaction); a reader who has confirmed every one gets no mail. Otherwise only the counters
 * change, and the answer says what the draft should have been. Two requests of one batch must not
 * share an inbox. The statement is the PL/pgSQL function of migrations 007 to 010, which keeps
 * its plan per connection.
 */
export async function requestSubscriptions(
  db: Db,
  requests: SubscriptionRequest[],
  rules: RequestRules,
): Promise<SubscriptionOutcome[]> {
  const batch = requests.map((request, ord) => ({
    ord,
    email: request.email,
    normalized: request.normalized,
    mailbox: request.mailbox,
    source: request.source,
    ip: request.ip,
    user_agent: request.userAgent,
    hit_keys: request.hits.map((hit) => hit.key),
    hit_most: request.hits.map((hit) => hit.most),
    slugs: request.slugs,
    seen_ids: request.expected.map((row) => row.id),
    seen_updated_at: request.expected.map((row) => row.updatedAt),
    in_mail: request.draft?.newsletterIds ?? [],
    body_id: request.draft?.bodyId ?? null,
    payload_after: request.draft?.payloadAfter ?? null,
    newsletters_known: request.draft !== undefined,
  }));
  const result = await sql<{
    ord: number;
    hits: { key: string; hits: number }[];
    newsletters: RequestedNewsletter[] | null;
    recorded: boolean;
    subscriber_id: number | null;
    pending: number[];
    cap_hits: number | null;
    token: string | null;
  }>`select * from request_subscriptions(
    ${JSON.stringify(batch)}::jsonb, ${rules.hitWindowSeconds}::int,
    ${rules.consentTextVersion}::text, ${rules.capWindowSeconds}::int,
    ${rules.confirmationMailsPerDay}::int, ${rules.pads.outer}::bytea, ${rules.pads.inner}::bytea,
    ${rules.payloadBefore}::text)`.execute(db);
  return result.rows.map((row) => ({
    hits: new Map(row.hits.map((hit) => [hit.key, Number(hit.hits)])),
    newsletters: row.newsletters?.map((newsletter) => ({
      ...newsletter,
      id: Number(newsletter.id),
    })),
    recorded: row.recorded,
    subscriberId: row.subscriber_id === null ? null : Number(row.subscriber_id),
    pendingNewsletterIds: row.pending.map(Number),
    confirmationMailsToday: Number(row.cap_hits ?? 0),
    confirmToken: row.token ?? undefined,
  }));
}
