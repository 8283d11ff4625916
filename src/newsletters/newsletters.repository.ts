import { sql } from 'kysely';
import type { Db, NewNewsletterRow, NewsletterRow, SubscriptionStatus } from '../db/database.ts';

export async function insertNewsletter(db: Db, row: NewNewsletterRow): Promise<NewsletterRow> {
  return db.insertInto('newsletters').values(row).returningAll().executeTakeFirstOrThrow();
}

export async function findNewsletterBySlug(
  db: Db,
  slug: string,
): Promise<NewsletterRow | undefined> {
  return db.selectFrom('newsletters').selectAll().where('slug', '=', slug).executeTakeFirst();
}

export async function findNewslettersBySlugs(db: Db, slugs: string[]): Promise<NewsletterRow[]> {
  if (slugs.length === 0) return [];
  return db.selectFrom('newsletters').selectAll().where('slug', 'in', slugs).execute();
}

export async function listNewsletters(
  db: Db,
  filter: { status?: 'active' | 'archived' },
): Promise<NewsletterRow[]> {
  let query = db.selectFrom('newsletters').selectAll().orderBy('id');
  if (filter.status) query = query.where('status', '=', filter.status);
  return query.execute();
}

export async function updateNewsletter(
  db: Db,
  slug: string,
  changes: Partial<Omit<NewNewsletterRow, 'slug' | 'created_at'>>,
): Promise<NewsletterRow | undefined> {
  return db
    .updateTable('newsletters')
    .set({ ...changes, updated_at: sql<Date>`now()` })
    .where('slug', '=', slug)
    .returningAll()
    .executeTakeFirst();
}

export type SubscriberCounts = Record<SubscriptionStatus, number>;

export async function countSubscriptionsByStatus(
  db: Db,
  newsletterIds: number[],
): Promise<Map<number, SubscriberCounts>> {
  const counts = new Map<number, SubscriberCounts>(
    newsletterIds.map((id) => [id, { pending: 0, confirmed: 0, unsubscribed: 0 }]),
  );
  if (newsletterIds.length === 0) return counts;
  const rows = await db
    .selectFrom('subscriptions')
    .select(['newsletter_id', 'status', (eb) => eb.fn.countAll<number>().as('count')])
    .where('newsletter_id', 'in', newsletterIds)
    .groupBy(['newsletter_id', 'status'])
    .execute();
  for (const row of rows) counts.get(row.newsletter_id)![row.status] = Number(row.count);
  return counts;
}
