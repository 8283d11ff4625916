import { sql, type Kysely } from 'kysely';
import { loadConfig, type Config } from '../../src/config.ts';
import type { Database } from '../../src/db/database.ts';
import { TEST_SECRET } from '../helpers/test-app.ts';

export const FROZEN_HTML =
  '<!doctype html><html><body><h1>The morning briefing</h1><p>Caf\u00e9 news for everyone.</p>' +
  '<a href="%%{unsubscribe_url}%%">Unsubscribe</a> <a href="%%{preferences_url}%%">Preferences</a></body></html>';
export const FROZEN_TEXT =
  'The morning briefing\n\nUnsubscribe: %%{unsubscribe_url}%%\nPreferences: %%{preferences_url}%%\n';

/** Configuration as a deployment of workers would have it, with short leases for tests. */
export function workerConfig(env: Record<string, string> = {}): Config {
  return loadConfig({
    NODE_ENV: 'test',
    SECRET: TEST_SECRET,
    PUBLIC_URL: 'https://news.test',
    MESSAGE_ID_DOMAIN: 'mail.news.test',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    DELIVERY_RETRY_SECONDS: '0.05',
    WORKER_POLL_MS: '50',
    ...env,
  });
}

export async function seedNewsletter(db: Kysely<Database>, slug: string): Promise<number> {
  const row = await db
    .insertInto('newsletters')
    .values({ slug, name: `The ${slug}`, from_name: 'The Newsroom', from_email: 'desk@news.test' })
    .returning('id')
    .executeTakeFirstOrThrow();
  return row.id;
}

export interface SeededReader {
  id: number;
  email: string;
}

/** Readers with a subscription of the given status, made in two statements whatever the count. */
export async function seedReaders(
  db: Kysely<Database>,
  newsletterId: number,
  count: number,
  options: { prefix: string; status?: 'pending' | 'confirmed' | 'unsubscribed' },
): Promise<SeededReader[]> {
  const { prefix, status = 'confirmed' } = options;
  const readers = await sql<SeededReader>`
    insert into subscribers (email, email_normalized)
    select ${prefix} || '-' || g || '@readers.test', ${prefix} || '-' || g || '@readers.test'
    from generate_series(1, ${count}::integer) g
    returning id, email`.execute(db);
  await sql`
    insert into subscriptions (subscriber_id, newsletter_id, status, confirmed_at)
    select id, ${newsletterId}, ${status}, case when ${status} = 'confirmed' then now() end
    from subscribers where email like ${prefix + '-%'}`.execute(db);
  return readers.rows.map((row) => ({ id: Number(row.id), email: row.email }));
}

/** A draft send with frozen content, as creating one through the API leaves it. */
export async function seedSend(
  db: Kysely<Database>,
  newsletterId: number,
  subject = 'Your morning briefing',
): Promise<number> {
  const row = await db
    .insertInto('sends')
    .values({
      newsletter_id: newsletterId,
      subject,
      html: FROZEN_HTML,
      text: FROZEN_TEXT,
      article_ids: [],
      created_by: 'test',
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return row.id;
}

export async function sendStatus(db: Kysely<Database>, id: number) {
  return db.selectFrom('sends').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
}

export async function deliveriesOf(db: Kysely<Database>, sendId: number) {
  return db
    .selectFrom('deliveries')
    .innerJoin('subscribers', 'subscribers.id', 'deliveries.subscriber_id')
    .select([
      'deliveries.subscriber_id',
      'subscribers.email',
      'deliveries.status',
      'deliveries.attempts',
      'deliveries.reclaims',
      'deliveries.last_error',
      'deliveries.message_id',
    ])
    .where('send_id', '=', sendId)
    .orderBy('deliveries.subscriber_id')
    .execute();
}

/** Polls the ledger until `done` holds; the worker under test runs on its own meanwhile. */
export async function eventually<T>(
  read: () => Promise<T>,
  done: (value: T) => boolean,
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let value: T | undefined;
    try {
      value = await read();
      if (done(value)) return value;
    } catch (error) {
      if (Date.now() > deadline) throw error;
    }
    if (Date.now() > deadline) {
      throw new Error(`condition not met in ${timeoutMs} ms; last value: ${JSON.stringify(value)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Counts messages per recipient as the listener received them. */
export function receivedBy(messages: { envelope: { to: string[] } }[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const message of messages) {
    for (const to of message.envelope.to) counts.set(to, (counts.get(to) ?? 0) + 1);
  }
  return counts;
}
