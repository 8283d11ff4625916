import type { DigestWindow, NewNewsletterRow, NewsletterRow } from '../db/database.ts';

/** How a newsletter picks its digest's articles, and where its feed is polled from. */
export interface DigestSettings {
  digestSections: string[];
  digestTags: string[];
  digestMaxArticles: number;
  digestWindow: DigestWindow;
  digestWindowHours: number;
  digestSubject: string | null;
  feedUrl: string | null;
  feedPollMinutes: number;
  feedPolledAt: Date | null;
  feedLastError: string | null;
}

export type DigestSettingsInput = Partial<Omit<DigestSettings, 'feedPolledAt' | 'feedLastError'>>;

export function digestSettingsOf(row: NewsletterRow): DigestSettings {
  return {
    digestSections: row.digest_sections,
    digestTags: row.digest_tags,
    digestMaxArticles: row.digest_max_articles,
    digestWindow: row.digest_window,
    digestWindowHours: row.digest_window_hours,
    digestSubject: row.digest_subject,
    feedUrl: row.feed_url,
    feedPollMinutes: row.feed_poll_minutes,
    feedPolledAt: row.feed_polled_at,
    feedLastError: row.feed_last_error,
  };
}

/** Columns for the settings given; a new or changed feed URL is due for polling at once. */
export function digestSettingsRow(
  input: DigestSettingsInput,
): Partial<Omit<NewNewsletterRow, 'slug' | 'created_at'>> {
  const row: Partial<Omit<NewNewsletterRow, 'slug' | 'created_at'>> = {
    digest_sections: input.digestSections,
    digest_tags: input.digestTags,
    digest_max_articles: input.digestMaxArticles,
    digest_window: input.digestWindow,
    digest_window_hours: input.digestWindowHours,
    digest_subject: input.digestSubject,
    feed_url: input.feedUrl,
    feed_poll_minutes: input.feedPollMinutes,
  };
  if (input.feedUrl !== undefined) {
    row.feed_next_poll_at = null;
    row.feed_last_error = null;
  }
  return Object.fromEntries(Object.entries(row).filter(([, value]) => value !== undefined));
}
