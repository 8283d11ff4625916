import { sql, type Kysely, type Migration } from 'kysely';

/**
 * request_subscriptions (migration 007) found the batch's readers with `in (select …)`, which
 * PostgreSQL planned as a scan of every subscriber once the table had a few thousand rows: 2.8 ms
 * of a 7 ms statement at 20,000 subscribers, and more as the list grew. Looking them up from an
 * array uses the unique index on the address whatever the size. Only that line of the function
 * changes, so it is replaced in the stored definition rather than the whole function restated.
 */
const SCANNED = 'where subscribers.email_normalized in (select request.normalized from request)';
const INDEXED =
  'where subscribers.email_normalized = any (array(select request.normalized from request))';

/** Replaces text in the stored definition of request_subscriptions; each piece must be there. */
async function rewriteRequestSubscriptions(
  db: Kysely<unknown>,
  replacements: [from: string, to: string][],
): Promise<void> {
  const { rows } = await sql<{ definition: string }>`
    select pg_get_functiondef('request_subscriptions'::regproc) as definition`.execute(db);
  let definition = rows[0]!.definition;
  for (const [from, to] of replacements) {
    if (!definition.includes(from)) {
      throw new Error(`request_subscriptions does not hold the expected text: ${from}`);
    }
    definition = definition.replace(from, to);
  }
  await sql.raw(definition).execute(db);
}

/** A migration that rewrites request_subscriptions forward, and back on the way down. */
export function rewritingRequestSubscriptions(
  replacements: [from: string, to: string][],
): Migration {
  return {
    up: (db) => rewriteRequestSubscriptions(db, replacements),
    down: (db) =>
      rewriteRequestSubscriptions(
        db,
        replacements.map(([before, after]) => [after, before]),
      ),
  };
}

export const { up, down } = rewritingRequestSubscriptions([[SCANNED, INDEXED]]);
