import { sql } from 'kysely';
import type { Db } from '../db/database.ts';

export interface DueFeed {
  newsletterId: number;
  slug: string;
  feedUrl: string;
}

/**
 * Claims feeds that are due and moves their next poll one interval ahead in the same
 * statement, so pollers on several machines never fetch the same feed twice in a round.
 */
export async function claimDueFeeds(db: Db, limit: number): Promise<DueFeed[]> {
  const result = await sql<{ id: number; slug: string; feed_url: string }>`
    update newsletters
    set feed_next_poll_at = now() + make_interval(mins => feed_poll_minutes)
    where id in (
      select id from newsletters
      where feed_url is not null
        and status = 'active'
        and (feed_next_poll_at is null or feed_next_poll_at <= now())
      order by feed_next_poll_at nulls first
      limit ${limit}
      for update skip locked
    )
    returning id, slug, feed_url`.execute(db);
  return result.rows.map((row) => ({
    newsletterId: Number(row.id),
    slug: row.slug,
    feedUrl: row.feed_url,
  }));
}

export async function recordFeedPoll(
  db: Db,
  newsletterId: number,
  error: string | null,
): Promise<void> {
  await db
    .updateTable('newsletters')
    .set({ feed_polled_at: sql<Date>`now()`, feed_last_error: error })
    .where('id', '=', newsletterId)
    .execute();
}
