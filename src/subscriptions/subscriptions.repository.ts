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

/** Finds or creates the one subscriber of a normalized address; the first-typed form is kept. */
export async function upsertSubscriber(
  db: Db,
  address: { email: string; normalized: string },
): Promise<SubscriberRow> {
  return db
    .insertInto('subscribers')
    .values({ email: address.email, email_normalized: address.normalized })
    .onConflict((conflict) =>
      conflict
        .constraint('subscribers_email_normalized_key')
        .doUpdateSet({ email_normalized: (eb) => eb.ref('excluded.email_normalized') }),
    )
    .returning(['id', 'email', 'email_normalized', 'status'])
    .executeTakeFirstOrThrow();
}

export async function findSubscriberById(db: Db, id: number): Promise<SubscriberRow | undefined> {
  return db
    .selectFrom('subscribers')
    .select(['id', 'email', 'email_normalized', 'status'])
    .where('id', '=', id)
    .executeTakeFirst();
}

/**
 * Marks the newsletters as asked for: new and unsubscribed ones become pending, pending ones are
 * asked again, confirmed ones stay as they are. Returns each newsletter's state afterwards.
 */
export async function requestSubscriptions(
  db: Db,
  subscriberId: number,
  newsletterIds: number[],
  source: string | null,
): Promise<{ newsletter_id: number; status: SubscriptionStatus }[]> {
  const keepConfirmed = <T>(column: string, otherwise: ReturnType<typeof sql<T>>) =>
    sql<T>`case when subscriptions.status = 'confirmed' then ${sql.ref(`subscriptions.${column}`)} else ${otherwise} end`;
  return db
    .insertInto('subscriptions')
    .values(
      newsletterIds.map((newsletterId) => ({
        subscriber_id: subscriberId,
        newsletter_id: newsletterId,
        status: 'pending' as const,
        source,
      })),
    )
    .onConflict((conflict) =>
      conflict.columns(['subscriber_id', 'newsletter_id']).doUpdateSet({
        status: keepConfirmed<SubscriptionStatus>('status', sql`'pending'`),
        requested_at: keepConfirmed<Date>('requested_at', sql`now()`),
        source: keepConfirmed<string | null>('source', sql`excluded.source`),
      }),
    )
    .returning(['newsletter_id', 'status'])
    .execute();
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
