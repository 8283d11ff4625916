import type { Kysely } from 'kysely';
import type { Database } from '../db/database.ts';
import type { Logger } from '../log.ts';
import {
  recordOutcomes,
  suppressUnknownMailboxes,
  type ClaimedDelivery,
  type Outcome,
} from './ledger.repository.ts';
import { tallyOutcomes } from './sends.repository.ts';

export interface RecorderOptions {
  maxAttempts: number;
  retrySeconds: number;
  failureRate: number;
  minOutcomes: number;
  logger: Logger;
  /** Outcomes wait at most this long before they are written. */
  flushMs?: number;
  flushSize?: number;
}

interface Pending {
  claim: ClaimedDelivery;
  newsletterId: number;
  outcome: Outcome;
}

/**
 * Writes outcomes to the ledger in batches, a few hundred milliseconds after the relay answered
 * at most. What is accepted but not yet written is "in flight": after a kill, those rows come
 * back when their lease expires and are counted as possible duplicates.
 */
export class LedgerRecorder {
  private pending: Pending[] = [];
  private writing: Promise<boolean> = Promise.resolve(true);
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly db: Kysely<Database>,
    private readonly options: RecorderOptions,
  ) {}

  get size(): number {
    return this.pending.length;
  }

  add(claim: ClaimedDelivery, newsletterId: number, outcome: Outcome): void {
    this.pending.push({ claim, newsletterId, outcome });
    if (this.pending.length >= (this.options.flushSize ?? 100)) {
      void this.flush();
    } else if (!this.timer) {
      this.timer = setTimeout(() => void this.flush(), this.options.flushMs ?? 100);
    }
  }

  /** Writes what is pending; false when the database could not be reached (it stays pending). */
  flush(): Promise<boolean> {
    this.writing = this.writing.then(() => this.write());
    return this.writing;
  }

  /** Keeps trying until everything is written or the deadline passes (the lease is then gone). */
  async flushBefore(deadline: number): Promise<void> {
    while (this.pending.length > 0) {
      if (await this.flush()) continue;
      if (Date.now() > deadline) {
        this.options.logger.error(
          { outcomes: this.pending.length },
          'ledger unreachable until the lease ran out; these rows will be retried and counted as possible duplicates',
        );
        this.pending = [];
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }

  private async write(): Promise<boolean> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.pending.splice(0);
    if (batch.length === 0) return true;
    const { maxAttempts, retrySeconds, failureRate, minOutcomes, logger } = this.options;
    try {
      const paused = await this.db.transaction().execute(async (trx) => {
        const totals = await recordOutcomes(
          trx,
          batch.map(({ claim, outcome }) => ({ claim, outcome })),
          { maxAttempts, baseSeconds: retrySeconds },
        );
        await suppressUnknownMailboxes(
          trx,
          batch.flatMap(({ claim, newsletterId, outcome }) =>
            outcome.kind === 'failed' && outcome.unknownMailbox
              ? [
                  {
                    subscriberId: claim.subscriberId,
                    newsletterId,
                    emailNormalized: claim.emailNormalized,
                    error: outcome.error,
                  },
                ]
              : [],
          ),
        );
        return tallyOutcomes(trx, totals, { failureRate, minOutcomes });
      });
      for (const send of paused)
        logger.warn({ sendId: send.id, reason: send.reason }, 'send paused');
      return true;
    } catch (error) {
      logger.warn({ err: error, outcomes: batch.length }, 'ledger write failed; will retry');
      this.pending.unshift(...batch);
      return false;
    }
  }
}
