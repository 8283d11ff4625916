import { sql, type Insertable } from 'kysely';
import type { Db, DeliveryStatus, SendRow, SendStatus, SendsTable } from '../db/database.ts';

export async function insertSend(db: Db, row: Insertable<SendsTable>): Promise<SendRow> {
  return db.insertInto('sends').values(row).returningAll().executeTakeFirstOrThrow();
}

export async function findSendById(db: Db, id: number): Promise<SendRow | undefined> {
  return db.selectFrom('sends').selectAll().where('id', '=', id).executeTakeFirst();
}

/** Newest first, keyset-paged by id. */
export async function listSendsOfNewsletter(
  db: Db,
  newsletterId: number,
  page: { before?: number; limit: number },
): Promise<SendRow[]> {
  let query = db
    .selectFrom('sends')
    .selectAll()
    .where('newsletter_id', '=', newsletterId)
    .orderBy('id', 'desc')
    .limit(page.limit);
  if (page.before !== undefined) query = query.where('id', '<', page.before);
  return query.execute();
}

/** Locks the send so status changes on it happen one at a time. */
export async function lockSend(db: Db, id: number): Promise<SendRow | undefined> {
  return db.selectFrom('sends').selectAll().where('id', '=', id).forUpdate().executeTakeFirst();
}

export async function findSendByIdempotencyKey(
  db: Db,
  newsletterId: number,
  key: string,
): Promise<SendRow | undefined> {
  return db
    .selectFrom('sends')
    .selectAll()
    .where('newsletter_id', '=', newsletterId)
    .where('idempotency_key', '=', key)
    .executeTakeFirst();
}

export async function updateSend(
  db: Db,
  id: number,
  changes: Partial<
    Pick<
      SendRow,
      | 'status'
      | 'status_reason'
      | 'scheduled_at'
      | 'started_at'
      | 'started_by'
      | 'finished_at'
      | 'recipients'
      | 'window_sent'
      | 'window_failed'
    >
  >,
): Promise<SendRow> {
  return db
    .updateTable('sends')
    .set({ ...changes, updated_at: sql<Date>`now()` })
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirstOrThrow();
}

/** Whichever instance locks a due scheduled send first starts it; the others skip it. */
export async function lockDueScheduledSend(db: Db): Promise<SendRow | undefined> {
  return db
    .selectFrom('sends')
    .selectAll()
    .where('status', '=', 'scheduled')
    .where('scheduled_at', '<=', sql<Date>`now()`)
    .orderBy('scheduled_at')
    .limit(1)
    .forUpdate()
    .skipLocked()
    .executeTakeFirst();
}

export async function listSendingSends(db: Db): Promise<{ id: number; newsletterId: number }[]> {
  const rows = await db
    .selectFrom('sends')
    .select(['id', 'newsletter_id'])
    .where('status', '=', 'sending')
    .orderBy('id')
    .execute();
  return rows.map((row) => ({ id: row.id, newsletterId: row.newsletter_id }));
}

/** Queued rows of a cancelled send will never go out; claimed ones finish. */
export async function skipQueuedDeliveries(
  db: Db,
  sendId: number,
  reason: string,
): Promise<number> {
  const result = await db
    .updateTable('deliveries')
    .set({ status: 'skipped', last_error: reason })
    .where('send_id', '=', sendId)
    .where('status', '=', 'queued')
    .executeTakeFirst();
  return Number(result.numUpdatedRows);
}

export async function requeueFailedDeliveries(db: Db, sendId: number): Promise<number> {
  const result = await db
    .updateTable('deliveries')
    .set({ status: 'queued', next_attempt_at: sql<Date>`now()` })
    .where('send_id', '=', sendId)
    .where('status', '=', 'failed')
    .executeTakeFirst();
  return Number(result.numUpdatedRows);
}

export interface DeliveryListing {
  subscriberId: number;
  email: string;
  status: DeliveryStatus;
  attempts: number;
  lastError: string | null;
  messageId: string | null;
  sentAt: Date | null;
}

/** Pages by subscriber id (keyset), so a page deep into a million rows costs what the first does. */
export async function listDeliveries(
  db: Db,
  sendId: number,
  page: { status?: DeliveryStatus; after?: number; limit: number },
): Promise<DeliveryListing[]> {
  let query = db
    .selectFrom('deliveries')
    .innerJoin('subscribers', 'subscribers.id', 'deliveries.subscriber_id')
    .select([
      'deliveries.subscriber_id',
      'subscribers.email',
      'deliveries.status',
      'deliveries.attempts',
      'deliveries.last_error',
      'deliveries.message_id',
      'deliveries.sent_at',
    ])
    .where('deliveries.send_id', '=', sendId)
    .orderBy('deliveries.subscriber_id')
    .limit(page.limit);
  if (page.status) query = query.where('deliveries.status', '=', page.status);
  if (page.after !== undefined) query = query.where('deliveries.subscriber_id', '>', page.after);
  const rows = await query.execute();
  return rows.map((row) => ({
    subscriberId: row.subscriber_id,
    email: row.email,
    status: row.status,
    attempts: row.attempts,
    lastError: row.last_error,
    messageId: row.message_id,
    sentAt: row.sent_at,
  }));
}

/**
 * Adds a flush's outcomes to the send's failure window and pauses the send, with its reason, when
 * the share of failures crosses the threshold. Returns the sends that paused themselves.
 */
export async function tallyOutcomes(
  db: Db,
  totals: { sendId: number; sent: number; failed: number }[],
  threshold: { failureRate: number; minOutcomes: number },
): Promise<{ id: number; reason: string }[]> {
  const paused: { id: number; reason: string }[] = [];
  for (const total of totals) {
    const result = await sql<{
      id: number;
      status: SendStatus;
      status_reason: string | null;
      previous: SendStatus;
    }>`
      update sends set
        window_sent = sends.window_sent + ${total.sent}::integer,
        window_failed = sends.window_failed + ${total.failed}::integer,
        status = case when ${crossed(total, threshold)} then 'paused' else sends.status end,
        status_reason = case when ${crossed(total, threshold)}
          then 'paused automatically: ' || (sends.window_failed + ${total.failed}::integer) || ' of '
            || (sends.window_sent + sends.window_failed + ${total.sent + total.failed}::integer)
            || ' messages failed, over the threshold of ' || ${threshold.failureRate * 100}::float8 || '%'
          else sends.status_reason end,
        updated_at = now()
      from (select status as previous from sends where id = ${total.sendId}) as before
      where sends.id = ${total.sendId}
      returning sends.id, sends.status, sends.status_reason, before.previous`.execute(db);
    const row = result.rows[0];
    if (row && row.previous === 'sending' && row.status === 'paused') {
      paused.push({ id: row.id, reason: row.status_reason ?? '' });
    }
  }
  return paused;
}

function crossed(
  total: { sent: number; failed: number },
  threshold: { failureRate: number; minOutcomes: number },
) {
  return sql<boolean>`(sends.status = 'sending'
    and sends.window_sent + sends.window_failed + ${total.sent + total.failed}::integer >= ${threshold.minOutcomes}::integer
    and (sends.window_failed + ${total.failed}::integer)::float8
      > ${threshold.failureRate}::float8 * (sends.window_sent + sends.window_failed + ${total.sent + total.failed}::integer))`;
}

export interface SendForMail {
  id: number;
  newsletterId: number;
  subject: string;
  html: string;
  text: string;
  newsletter: {
    slug: string;
    name: string;
    fromName: string;
    fromEmail: string;
    replyTo: string | null;
  };
}

/** The frozen content and the newsletter's identity, as every reader's copy is built from them. */
export async function findSendForMail(db: Db, id: number): Promise<SendForMail | undefined> {
  const row = await db
    .selectFrom('sends')
    .innerJoin('newsletters', 'newsletters.id', 'sends.newsletter_id')
    .select([
      'sends.id',
      'sends.newsletter_id',
      'sends.subject',
      'sends.html',
      'sends.text',
      'newsletters.slug',
      'newsletters.name',
      'newsletters.from_name',
      'newsletters.from_email',
      'newsletters.reply_to',
    ])
    .where('sends.id', '=', id)
    .executeTakeFirst();
  if (!row) return undefined;
  return {
    id: row.id,
    newsletterId: row.newsletter_id,
    subject: row.subject,
    html: row.html,
    text: row.text,
    newsletter: {
      slug: row.slug,
      name: row.name,
      fromName: row.from_name,
      fromEmail: row.from_email,
      replyTo: row.reply_to,
    },
  };
}

export async function findNewsletterById(db: Db, id: number) {
  return db.selectFrom('newsletters').selectAll().where('id', '=', id).executeTakeFirst();
}
