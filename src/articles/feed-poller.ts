import type { Db } from '../db/database.ts';
import { DomainError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { fetchFeed, importFeed, type FeedImport } from './feed-import.service.ts';
import { claimDueFeeds, recordFeedPoll } from './feed-polls.repository.ts';

export interface FeedPollOutcome {
  slug: string;
  feedUrl: string;
  imported?: FeedImport;
  error?: string;
}

/**
 * Imports each newsletter's feed on its interval. What is due lives in PostgreSQL, so any
 * number of pollers may run; each round claims a few feeds and records how their poll went.
 */
export class FeedPoller {
  private timer: NodeJS.Timeout | undefined;
  private round: Promise<unknown> | undefined;
  private stopped = true;

  constructor(
    private readonly deps: {
      db: Db;
      logger: Logger;
      checkEveryMs?: number;
      feedsPerRound?: number;
    },
  ) {}

  async runOnce(): Promise<FeedPollOutcome[]> {
    const due = await claimDueFeeds(this.deps.db, this.deps.feedsPerRound ?? 5);
    const outcomes: FeedPollOutcome[] = [];
    for (const feed of due) {
      const outcome: FeedPollOutcome = { slug: feed.slug, feedUrl: feed.feedUrl };
      try {
        const xml = await fetchFeed(feed.feedUrl);
        outcome.imported = await importFeed(this.deps.db, { xml, url: feed.feedUrl });
        this.deps.logger.info({ newsletter: feed.slug, ...outcome.imported }, 'feed imported');
      } catch (error) {
        if (!(error instanceof DomainError))
          this.deps.logger.error({ err: error }, 'feed poll failed');
        outcome.error = (error as Error).message.slice(0, 1000);
        this.deps.logger.warn({ newsletter: feed.slug, error: outcome.error }, 'feed not imported');
      }
      await recordFeedPoll(this.deps.db, feed.newsletterId, outcome.error ?? null);
      outcomes.push(outcome);
    }
    return outcomes;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    const tick = () => {
      this.round = this.runOnce()
        .catch((error: unknown) => this.deps.logger.error({ err: error }, 'feed poll round failed'))
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(tick, this.deps.checkEveryMs ?? 60_000);
        });
    };
    tick();
  }

  /** Stops claiming and waits for the round in flight. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.round;
  }
}
