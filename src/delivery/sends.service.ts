import { createHash } from 'node:crypto';
import type { Config } from '../config.ts';
import { isUniqueViolation } from '../db/constraint.ts';
import type { Kysely } from 'kysely';
import type { Database, Db, DeliveryStatus, SendRow, SendStatus } from '../db/database.ts';
import { personalise } from '../digests/mail-templates.ts';
import { DomainError } from '../errors.ts';
import { findNewsletterBySlug } from '../newsletters/newsletters.repository.ts';
import { newsletterNotFound } from '../newsletters/newsletters.service.ts';
import {
  countDeliveriesByStatus,
  countSentSince,
  materialiseRecipients,
} from './ledger.repository.ts';
import { enqueueMail } from './outbox.repository.ts';
import * as repository from './sends.repository.ts';

export interface Send {
  id: number;
  newsletter: string;
  status: SendStatus;
  statusReason: string | null;
  subject: string;
  preheader: string;
  articleIds: number[];
  recipients: number;
  createdBy: string | null;
  scheduledAt: Date | null;
  startedAt: Date | null;
  finishedAt: Date | null;
  createdAt: Date;
}

export interface SendProgress extends Send {
  deliveries: Record<DeliveryStatus, number> & { total: number };
  /** Rows whose worker died holding them: each may have reached its reader twice. */
  possibleDuplicates: number;
  /** Messages accepted by the relay per second, over the last minute. */
  ratePerSecond: number;
  estimatedFinishAt: Date | null;
}

/** What a send freezes: built by the digests room from the newsletter's latest articles. */
export interface FrozenDigest {
  subject: string;
  preheader: string;
  html: string;
  text: string;
  articleIds: number[];
}

export type BuildDigest = (
  slug: string,
  options: { articleIds?: number[] },
) => Promise<FrozenDigest>;

export interface CreateSendInput {
  subject?: string;
  articleIds?: number[];
}

/**
 * Freezes the digest into a new draft send. The same Idempotency-Key with the same request gives
 * back the send it made the first time; with a different request it is refused.
 */
export async function createSend(
  db: Db,
  buildDigest: BuildDigest,
  slug: string,
  input: CreateSendInput,
  caller: { createdBy: string; idempotencyKey?: string },
): Promise<{ send: Send; replayed: boolean }> {
  const newsletter = await findNewsletterBySlug(db, slug);
  if (!newsletter) throw newsletterNotFound(slug);
  const fingerprint = createHash('sha256')
    .update(
      JSON.stringify({
        slug,
        subject: input.subject ?? null,
        articleIds: input.articleIds ?? null,
      }),
    )
    .digest('hex');
  const replay = async () => {
    const existing = await repository.findSendByIdempotencyKey(
      db,
      newsletter.id,
      caller.idempotencyKey!,
    );
    if (!existing) return undefined;
    if (existing.request_fingerprint !== fingerprint) {
      throw new DomainError(
        'unprocessable',
        'idempotency_key_reused',
        'this idempotency key was used for a different request',
        { sendId: existing.id },
      );
    }
    return { send: toSend(existing, slug), replayed: true };
  };
  if (caller.idempotencyKey) {
    const replayed = await replay();
    if (replayed) return replayed;
  }
  if (newsletter.status === 'archived') {
    throw new DomainError('conflict', 'newsletter_archived', `newsletter "${slug}" is archived`);
  }
  const digest = await buildDigest(slug, { articleIds: input.articleIds });
  try {
    const row = await repository.insertSend(db, {
      newsletter_id: newsletter.id,
      subject: input.subject ?? digest.subject,
      preheader: digest.preheader,
      html: digest.html,
      text: digest.text,
      article_ids: digest.articleIds,
      created_by: caller.createdBy,
      idempotency_key: caller.idempotencyKey ?? null,
      request_fingerprint: caller.idempotencyKey ? fingerprint : null,
    });
    return { send: toSend(row, slug), replayed: false };
  } catch (error) {
    if (caller.idempotencyKey && isUniqueViolation(error, 'sends_idempotency_key')) {
      const replayed = await replay();
      if (replayed) return replayed;
    }
    throw error;
  }
}

export async function listSends(
  db: Db,
  slug: string,
  page: { before?: number; limit: number },
): Promise<{ sends: Send[]; nextBefore: number | null }> {
  const newsletter = await findNewsletterBySlug(db, slug);
  if (!newsletter) throw newsletterNotFound(slug);
  const rows = await repository.listSendsOfNewsletter(db, newsletter.id, page);
  const last = rows.at(-1);
  return {
    sends: rows.map((row) => toSend(row, slug)),
    nextBefore: rows.length === page.limit && last ? last.id : null,
  };
}

export async function getSend(db: Db, id: number): Promise<Send> {
  const row = await repository.findSendById(db, id);
  if (!row) throw sendNotFound(id);
  return toSend(row, await slugOf(db, row));
}

/** Status, counts by delivery status, rate and an estimated end, all read from the ledger. */
export async function getSendProgress(db: Db, id: number): Promise<SendProgress> {
  const send = await getSend(db, id);
  const { possibleDuplicates, ...counts } = await countDeliveriesByStatus(db, id);
  const recentSeconds = 60;
  const recent = send.status === 'sending' ? await countSentSince(db, id, recentSeconds) : 0;
  const ratePerSecond = recent / recentSeconds;
  const remaining = counts.queued + counts.sending;
  const total = Object.values(counts).reduce((sum, n) => sum + n, 0);
  return {
    ...send,
    deliveries: { ...counts, total },
    possibleDuplicates,
    ratePerSecond: Math.round(ratePerSecond * 100) / 100,
    estimatedFinishAt:
      send.status === 'sending' && ratePerSecond > 0
        ? new Date(Date.now() + (remaining / ratePerSecond) * 1000)
        : null,
  };
}

/**
 * Mails the frozen content to a few addresses through the outbox, marked as a test; it never
 * touches the ledger or the send's counts.
 */
export async function sendTest(
  db: Kysely<Database>,
  config: Pick<Config, 'publicUrl'>,
  id: number,
  emails: string[],
): Promise<{ queued: number }> {
  const row = await repository.findSendById(db, id);
  if (!row) throw sendNotFound(id);
  const newsletter = (await repository.findNewsletterById(db, row.newsletter_id))!;
  const body = personalise(
    { html: row.html, text: row.text },
    {
      unsubscribe_url: `${config.publicUrl}/unsubscribe/test-send`,
      preferences_url: `${config.publicUrl}/preferences/test-send`,
    },
  );
  const from = `"${newsletter.from_name.replace(/["\\]/g, '')}" <${newsletter.from_email}>`;
  await db.transaction().execute(async (trx) => {
    for (const to of emails) {
      await enqueueMail(trx, {
        kind: 'send_test',
        subscriberId: null,
        to,
        from,
        subject: `[Test] ${row.subject}`,
        html: body.html,
        text: body.text,
        headers: { 'X-Broadsheet-Test': `send ${id}` },
      });
    }
  });
  return { queued: emails.length };
}

/**
 * Starts a draft (or scheduled) send now, or schedules it. Starting materialises the recipients
 * in the same transaction as the status change, so a send is never "sending" with half a list.
 */
export async function startSend(
  db: Kysely<Database>,
  id: number,
  options: { scheduledAt?: Date; startedBy: string },
): Promise<Send> {
  return db.transaction().execute(async (trx) => {
    const row = await repository.lockSend(trx, id);
    if (!row) throw sendNotFound(id);
    const slug = await slugOf(trx, row);
    if (row.status !== 'draft' && row.status !== 'scheduled') {
      throw new DomainError(
        'conflict',
        'send_not_startable',
        `send ${id} is ${row.status}; only a draft or scheduled send can start`,
      );
    }
    if (options.scheduledAt && options.scheduledAt.getTime() > Date.now()) {
      const scheduled = await repository.updateSend(trx, id, {
        status: 'scheduled',
        scheduled_at: options.scheduledAt,
        status_reason: null,
      });
      return toSend(scheduled, slug);
    }
    const started = await beginSending(trx, row, options.startedBy);
    if (!started) {
      throw new DomainError(
        'unprocessable',
        'no_recipients',
        `newsletter "${slug}" has no confirmed readers to send to; nothing was started`,
      );
    }
    return toSend(started, slug);
  });
}

/**
 * Starts scheduled sends that are due. Each is locked with SKIP LOCKED, so of several instances
 * racing for it exactly one starts it. A send whose newsletter has no readers by then is cancelled
 * with that reason rather than left hanging.
 */
export async function startDueSends(db: Kysely<Database>, startedBy: string): Promise<number[]> {
  const started: number[] = [];
  for (;;) {
    const id = await db.transaction().execute(async (trx) => {
      const row = await repository.lockDueScheduledSend(trx);
      if (!row) return undefined;
      const begun = await beginSending(trx, row, startedBy);
      if (!begun) {
        await repository.updateSend(trx, row.id, {
          status: 'cancelled',
          status_reason: 'no confirmed readers when it was due',
          finished_at: new Date(),
        });
      }
      return row.id;
    });
    if (id === undefined) return started;
    started.push(id);
  }
}

async function beginSending(
  trx: Db,
  row: SendRow,
  startedBy: string,
): Promise<SendRow | undefined> {
  const recipients = await materialiseRecipients(trx, {
    id: row.id,
    newsletterId: row.newsletter_id,
  });
  if (recipients === 0) return undefined;
  return repository.updateSend(trx, row.id, {
    status: 'sending',
    status_reason: null,
    started_at: new Date(),
    started_by: startedBy,
    recipients,
  });
}

/** Stops claims at once; messages already handed to a worker finish. */
export async function pauseSend(db: Kysely<Database>, id: number): Promise<Send> {
  return transition(db, id, ['sending'], (trx) =>
    repository.updateSend(trx, id, { status: 'paused', status_reason: 'paused by an editor' }),
  );
}

/** Carries on where the send stopped; the failure window starts afresh. */
export async function resumeSend(db: Kysely<Database>, id: number): Promise<Send> {
  return transition(db, id, ['paused'], (trx) =>
    repository.updateSend(trx, id, {
      status: 'sending',
      status_reason: null,
      window_sent: 0,
      window_failed: 0,
    }),
  );
}

/** Nothing still queued goes out; rows a worker holds finish. */
export async function cancelSend(db: Kysely<Database>, id: number): Promise<Send> {
  return transition(db, id, ['draft', 'scheduled', 'sending', 'paused'], async (trx) => {
    await repository.skipQueuedDeliveries(trx, id, 'send cancelled');
    return repository.updateSend(trx, id, {
      status: 'cancelled',
      status_reason: 'cancelled by an editor',
      finished_at: new Date(),
    });
  });
}

/**
 * Puts failed deliveries back in the queue. Each gets one more attempt now; one that still has
 * attempts left keeps its retries. A reader suppressed meanwhile is skipped when the row comes up.
 */
export async function retryFailed(
  db: Kysely<Database>,
  id: number,
): Promise<Send & { requeued: number }> {
  let requeued = 0;
  const send = await transition(db, id, ['sending', 'paused', 'sent'], async (trx, row) => {
    requeued = await repository.requeueFailedDeliveries(trx, id);
    if (row.status === 'sent' && requeued > 0) {
      return repository.updateSend(trx, id, { status: 'sending', finished_at: null });
    }
    return row;
  });
  return { ...send, requeued };
}

async function transition(
  db: Kysely<Database>,
  id: number,
  from: SendStatus[],
  change: (trx: Db, row: SendRow) => Promise<SendRow>,
): Promise<Send> {
  const run = async (trx: Db) => {
    const row = await repository.lockSend(trx, id);
    if (!row) throw sendNotFound(id);
    if (!from.includes(row.status)) {
      throw new DomainError(
        'conflict',
        'send_status_conflict',
        `send ${id} is ${row.status}; this needs it to be ${from.join(' or ')}`,
        { status: row.status },
      );
    }
    return toSend(await change(trx, row), await slugOf(trx, row));
  };
  return db.transaction().execute(run);
}

export async function listSendDeliveries(
  db: Db,
  id: number,
  page: { status?: DeliveryStatus; after?: number; limit: number },
) {
  if (!(await repository.findSendById(db, id))) throw sendNotFound(id);
  const deliveries = await repository.listDeliveries(db, id, page);
  const last = deliveries.at(-1);
  return {
    deliveries,
    nextAfter: deliveries.length === page.limit && last ? last.subscriberId : null,
  };
}

export function sendNotFound(id: number): DomainError {
  return new DomainError('not_found', 'send_not_found', `no send with id ${id}`);
}

async function slugOf(db: Db, row: SendRow): Promise<string> {
  return (await repository.findNewsletterById(db, row.newsletter_id))?.slug ?? '';
}

function toSend(row: SendRow, slug: string): Send {
  return {
    id: row.id,
    newsletter: slug,
    status: row.status,
    statusReason: row.status_reason,
    subject: row.subject,
    preheader: row.preheader,
    articleIds: row.article_ids.map(Number),
    recipients: row.recipients,
    createdBy: row.created_by,
    scheduledAt: row.scheduled_at,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    createdAt: row.created_at,
  };
}
