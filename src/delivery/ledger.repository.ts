import { sql } from 'kysely';
import type { Db, DeliveryStatus } from '../db/database.ts';

/**
 * Materialises a send's recipients in one statement: confirmed readers of the newsletter who are
 * neither blocklisted nor suppressed at this moment. Readers who confirm later are not added.
 */
export async function materialiseRecipients(
  db: Db,
  send: { id: number; newsletterId: number },
): Promise<number> {
  const result = await sql`
    insert into deliveries (send_id, subscriber_id)
    select ${send.id}, subscription.subscriber_id
    from subscriptions subscription
    join subscribers reader on reader.id = subscription.subscriber_id
    where subscription.newsletter_id = ${send.newsletterId}
      and subscription.status = 'confirmed'
      and reader.status = 'active'
      and not exists (
        select 1 from suppressions suppression
        where suppression.email_normalized = reader.email_normalized)`.execute(db);
  return Number(result.numAffectedRows ?? 0);
}

/** Rows whose lease ran out belonged to a worker that died; each may already have been sent once. */
export async function reclaimExpiredLeases(db: Db): Promise<number> {
  const result = await sql`
    update deliveries set status = 'queued', lease_until = null, reclaims = reclaims + 1
    where status = 'sending' and lease_until < now()`.execute(db);
  return Number(result.numAffectedRows ?? 0);
}

export type Ineligibility = 'unsubscribed' | 'blocklisted' | 'suppressed';

export interface ClaimedDelivery {
  sendId: number;
  subscriberId: number;
  /** The claim's fencing token: outcomes are only recorded while it still matches. */
  attempts: number;
  email: string;
  emailNormalized: string;
  /** Set when the reader left after the send started; the row is skipped, not mailed. */
  ineligible: Ineligibility | null;
  /** Where this row sits in claim order; a worker's next claim starts after it. */
  nextAttemptAt: Date;
}

/** A worker's place in a send's claim order (next_attempt_at, subscriber_id). */
export interface ClaimCursor {
  nextAttemptAt: Date;
  subscriberId: number;
}

/**
 * Claims due deliveries of one send under a lease. SKIP LOCKED lets many workers claim side by
 * side; the send's status is checked in the same statement so a pause stops claims at once.
 * `after` starts the index scan past what this worker already claimed: rows it left behind are
 * dead index entries until vacuum, and on a send of a million, scanning over them made every
 * claim slower than the last.
 */
export async function claimDeliveries(
  db: Db,
  send: { id: number; newsletterId: number },
  limit: number,
  leaseSeconds: number,
  after?: ClaimCursor,
): Promise<ClaimedDelivery[]> {
  const result = await sql<{
    subscriber_id: number;
    attempts: number;
    email: string;
    email_normalized: string;
    ineligible: Ineligibility | null;
    next_attempt_at: Date;
  }>`
    with claimed as (
      update deliveries delivery
      set status = 'sending', attempts = delivery.attempts + 1,
        lease_until = now() + make_interval(secs => ${leaseSeconds})
      where delivery.send_id = ${send.id} and delivery.subscriber_id in (
        select due.subscriber_id from deliveries due
        where due.send_id = ${send.id} and due.status = 'queued' and due.next_attempt_at <= now()
          ${after ? sql`and (due.next_attempt_at, due.subscriber_id) > (${after.nextAttemptAt}::timestamptz, ${after.subscriberId}::bigint)` : sql``}
          and exists (select 1 from sends where sends.id = ${send.id} and sends.status = 'sending')
        order by due.next_attempt_at, due.subscriber_id
        limit ${limit}
        for update skip locked)
      returning delivery.subscriber_id, delivery.attempts, delivery.next_attempt_at)
    select claimed.subscriber_id, claimed.attempts, claimed.next_attempt_at, reader.email,
      reader.email_normalized,
      case
        when reader.status <> 'active' then 'blocklisted'
        when subscription.status is distinct from 'confirmed' then 'unsubscribed'
        when exists (select 1 from suppressions suppression
                     where suppression.email_normalized = reader.email_normalized) then 'suppressed'
      end as ineligible
    from claimed
    join subscribers reader on reader.id = claimed.subscriber_id
    left join subscriptions subscription
      on subscription.subscriber_id = claimed.subscriber_id
      and subscription.newsletter_id = ${send.newsletterId}
    order by claimed.subscriber_id`.execute(db);
  return result.rows.map((row) => ({
    sendId: send.id,
    subscriberId: row.subscriber_id,
    attempts: row.attempts,
    email: row.email,
    emailNormalized: row.email_normalized,
    ineligible: row.ineligible,
    nextAttemptAt: row.next_attempt_at,
  }));
}

/** Gives claimed rows back untouched (the worker is stopping or its lease is nearly out). */
export async function releaseDeliveries(db: Db, claims: ClaimedDelivery[]): Promise<void> {
  if (claims.length === 0) return;
  await sql`
    update deliveries delivery
    set status = 'queued', attempts = delivery.attempts - 1, lease_until = null
    from unnest(${claims.map((c) => c.sendId)}::bigint[], ${claims.map((c) => c.subscriberId)}::bigint[],
                ${claims.map((c) => c.attempts)}::integer[]) as given(send_id, subscriber_id, attempts)
    where delivery.send_id = given.send_id and delivery.subscriber_id = given.subscriber_id
      and delivery.attempts = given.attempts and delivery.status = 'sending'`.execute(db);
}

export type Outcome =
  | { kind: 'sent'; messageId: string; at: Date }
  | { kind: 'retry'; error: string }
  | { kind: 'failed'; error: string; unknownMailbox: boolean }
  | { kind: 'skipped'; reason: string };

export interface RecordedOutcome {
  claim: ClaimedDelivery;
  outcome: Outcome;
}

export interface OutcomeTotals {
  sendId: number;
  sent: number;
  failed: number;
}

/**
 * Records many outcomes in one statement. The attempts column fences each row: a worker whose
 * lease expired and whose row was claimed again cannot overwrite the newer claim.
 * A temporary failure goes back to the queue with exponential backoff until attempts run out.
 */
export async function recordOutcomes(
  db: Db,
  outcomes: RecordedOutcome[],
  retry: { maxAttempts: number; baseSeconds: number },
): Promise<OutcomeTotals[]> {
  if (outcomes.length === 0) return [];
  const column = <T>(pick: (o: RecordedOutcome) => T) => outcomes.map(pick);
  const result = await sql<{ send_id: number; status: DeliveryStatus }>`
    update deliveries delivery set
      status = case given.outcome
        when 'retry' then case when delivery.attempts >= ${retry.maxAttempts} then 'failed' else 'queued' end
        else given.outcome end,
      next_attempt_at = case given.outcome
        when 'retry' then now() + least(${retry.baseSeconds}::float8 * power(2, least(delivery.attempts, 20) - 1), 3600) * interval '1 second'
        else delivery.next_attempt_at end,
      sent_at = given.at,
      message_id = coalesce(given.message_id, delivery.message_id),
      last_error = given.error,
      lease_until = null
    from unnest(
      ${column((o) => o.claim.sendId)}::bigint[],
      ${column((o) => o.claim.subscriberId)}::bigint[],
      ${column((o) => o.claim.attempts)}::integer[],
      ${column((o) => o.outcome.kind)}::text[],
      ${column((o) => (o.outcome.kind === 'sent' ? o.outcome.messageId : null))}::text[],
      ${column((o) => describeOutcome(o.outcome))}::text[],
      ${column((o) => (o.outcome.kind === 'sent' ? o.outcome.at.toISOString() : null))}::timestamptz[]
    ) as given(send_id, subscriber_id, attempts, outcome, message_id, error, at)
    where delivery.send_id = given.send_id and delivery.subscriber_id = given.subscriber_id
      and delivery.attempts = given.attempts and delivery.status = 'sending'
    returning delivery.send_id, delivery.status`.execute(db);

  const totals = new Map<number, OutcomeTotals>();
  for (const row of result.rows) {
    const total = totals.get(row.send_id) ?? { sendId: row.send_id, sent: 0, failed: 0 };
    if (row.status === 'sent') total.sent += 1;
    if (row.status === 'failed') total.failed += 1;
    totals.set(row.send_id, total);
  }
  return [...totals.values()];
}

function describeOutcome(outcome: Outcome): string | null {
  switch (outcome.kind) {
    case 'sent':
      return null;
    case 'skipped':
      return outcome.reason;
    default:
      return outcome.error.slice(0, 1000);
  }
}

/** An unknown mailbox is never tried again, for any newsletter. */
export async function suppressUnknownMailboxes(
  db: Db,
  bounces: { subscriberId: number; newsletterId: number; emailNormalized: string; error: string }[],
): Promise<void> {
  for (const bounce of bounces) {
    await db
      .insertInto('suppressions')
      .values({
        email_normalized: bounce.emailNormalized,
        reason: 'hard_bounce',
        details: bounce.error.slice(0, 1000),
      })
      .onConflict((oc) => oc.column('email_normalized').doNothing())
      .execute();
    await db
      .insertInto('consent_events')
      .values({
        subscriber_id: bounce.subscriberId,
        newsletter_id: bounce.newsletterId,
        action: 'bounced',
        source: 'delivery',
      })
      .execute();
  }
}

/** A send with nothing left to claim or in flight is finished. */
export async function finishSendIfDone(db: Db, sendId: number): Promise<boolean> {
  const result = await sql`
    update sends set status = 'sent', finished_at = now(), updated_at = now()
    where id = ${sendId} and status = 'sending'
      and not exists (
        select 1 from deliveries
        where send_id = ${sendId} and status in ('queued', 'sending'))`.execute(db);
  return Number(result.numAffectedRows ?? 0) > 0;
}

export async function countDeliveriesByStatus(
  db: Db,
  sendId: number,
): Promise<Record<DeliveryStatus, number> & { possibleDuplicates: number }> {
  const rows = await db
    .selectFrom('deliveries')
    .select([
      'status',
      (eb) => eb.fn.countAll<number>().as('count'),
      (eb) => eb.fn.sum<number>('reclaims').as('reclaims'),
    ])
    .where('send_id', '=', sendId)
    .groupBy('status')
    .execute();
  const counts = { queued: 0, sending: 0, sent: 0, failed: 0, skipped: 0, possibleDuplicates: 0 };
  for (const row of rows) {
    counts[row.status] = Number(row.count);
    counts.possibleDuplicates += Number(row.reclaims ?? 0);
  }
  return counts;
}

/** Messages accepted in the last minute; the rate an estimate of the end is drawn from. */
export async function countSentSince(db: Db, sendId: number, seconds: number): Promise<number> {
  const row = await db
    .selectFrom('deliveries')
    .select((eb) => eb.fn.countAll<number>().as('count'))
    .where('send_id', '=', sendId)
    .where('status', '=', 'sent')
    .where('sent_at', '>', sql<Date>`now() - make_interval(secs => ${seconds})`)
    .executeTakeFirstOrThrow();
  return Number(row.count);
}
