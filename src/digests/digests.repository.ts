import { sql } from 'kysely';
import type { Db } from '../db/database.ts';

/**
 * When this newsletter's latest send that went (or will go) out was created. Sends belong to
 * delivery; the table may not exist yet, and drafts and cancelled sends never reached a reader.
 */
export async function lastSendCreatedAt(db: Db, newsletterId: number): Promise<Date | undefined> {
  const table = await sql<{
    present: boolean;
  }>`select to_regclass('sends') is not null as present`.execute(db);
  if (!table.rows[0]?.present) return undefined;
  const last = await sql<{ at: Date | string | null }>`
    select max(created_at) as at from sends
    where newsletter_id = ${newsletterId} and status not in ('draft', 'cancelled')`.execute(db);
  const at = last.rows[0]?.at;
  return at ? new Date(at) : undefined;
}
