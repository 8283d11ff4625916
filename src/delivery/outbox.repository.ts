import { createHash } from 'node:crypto';
import { sql } from 'kysely';
import type { Db } from '../db/database.ts';

export interface OutgoingMail {
  kind: string;
  subscriberId: number | null;
  to: string;
  from: string;
  subject: string;
  html: string;
  text: string;
  headers?: Record<string, string>;
}

/** Where a shared body takes the token of the outbox row that sends it. */
export const MAIL_TOKEN_SLOT = '%%{token}%%';

/** A mail sent to many people alike but for a token: stored once, sent by reference. */
export interface SharedMailBody {
  from: string;
  subject: string;
  html: string;
  text: string;
  headers: Record<string, string>;
}

/** The id of a shared body, stored on first use; the same content always gets the same row. */
export async function saveMailBody(db: Db, body: SharedMailBody): Promise<number> {
  const digest = createHash('sha256').update(JSON.stringify(body)).digest('hex');
  const row = await db
    .insertInto('mail_bodies')
    .values({
      digest,
      from_address: body.from,
      subject: body.subject,
      html: body.html,
      text: body.text,
      headers: JSON.stringify(body.headers),
    })
    .onConflict((conflict) => conflict.column('digest').doUpdateSet({ digest }))
    .returning('id')
    .executeTakeFirstOrThrow();
  return row.id;
}

/** A claimed mail: complete, or a shared body's id and the token that goes into it. */
export type DueMail = { id: number; kind: string; to_address: string } & (
  | {
      body_id: null;
      from_address: string;
      subject: string;
      html: string;
      text: string;
      headers: Record<string, string>;
    }
  | { body_id: number; token: string }
);

export async function findMailBody(db: Db, id: number): Promise<SharedMailBody | undefined> {
  const row = await db
    .selectFrom('mail_bodies')
    .select(['from_address', 'subject', 'html', 'text', 'headers'])
    .where('id', '=', id)
    .executeTakeFirst();
  return (
    row && {
      from: row.from_address,
      subject: row.subject,
      html: row.html,
      text: row.text,
      headers: row.headers as Record<string, string>,
    }
  );
}

/** Queues a transactional mail; call it with the transaction that makes the change it reports. */
export async function enqueueMail(db: Db, mail: OutgoingMail): Promise<number> {
  const row = await db
    .insertInto('outbox')
    .values({
      kind: mail.kind,
      subscriber_id: mail.subscriberId,
      to_address: mail.to,
      from_address: mail.from,
      subject: mail.subject,
      html: mail.html,
      text: mail.text,
      headers: JSON.stringify(mail.headers ?? {}),
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return row.id;
}

// Claims due mail for one lease; rows whose lease ran out (a worker died) are due again.
export async function claimDueMail(
  db: Db,
  limit: number,
  leaseSeconds: number,
): Promise<DueMail[]> {
  const result = await sql<DueMail>`
    with claimed as (
      update outbox set status = 'sending', attempts = attempts + 1,
        lease_until = now() + make_interval(secs => ${leaseSeconds})
      where id in (
        select id from outbox
        where (status = 'queued' and next_attempt_at <= now())
           or (status = 'sending' and lease_until < now())
        order by next_attempt_at
        limit ${limit}
        for update skip locked)
      returning *
    )
    select id, kind, to_address, body_id, token, from_address, subject, html, text, headers
    from claimed`.execute(db);
  return result.rows;
}

export async function markMailSent(db: Db, id: number, messageId: string): Promise<void> {
  await db
    .updateTable('outbox')
    .set({
      status: 'sent',
      sent_at: sql<Date>`now()`,
      message_id: messageId,
      lease_until: null,
      last_error: null,
    })
    .where('id', '=', id)
    .execute();
}

// Backoff grows with attempts, capped near an hour; the graphile-worker shape.
export async function markMailFailed(
  db: Db,
  id: number,
  error: string,
  options: { permanent: boolean; maxAttempts: number },
): Promise<void> {
  await sql`
    update outbox set
      status = case when ${options.permanent} or attempts >= ${options.maxAttempts} then 'failed' else 'queued' end,
      next_attempt_at = now() + exp(least(attempts, 8)) * interval '1 second',
      lease_until = null,
      last_error = ${error.slice(0, 1000)}
    where id = ${id}`.execute(db);
}
