import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Transporter } from 'nodemailer';
import type { Database, OutboxRow } from '../db/database.ts';
import type { Logger } from '../log.ts';
import { claimDueMail, markMailFailed, markMailSent } from './outbox.repository.ts';
import { describeFailure, isPermanentFailure } from './smtp-errors.ts';

export interface WorkerOptions {
  db: Kysely<Database>;
  transport: Transporter;
  logger: Logger;
  messageIdDomain: string;
  pollIntervalMs?: number;
  batchSize?: number;
  leaseSeconds?: number;
  maxAttempts?: number;
}

/**
 * Drains the outbox. Any number of workers may run against one database: rows are claimed with
 * FOR UPDATE SKIP LOCKED under a lease, so each is sent by one worker at a time.
 */
export class DeliveryWorker {
  private running = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;

  constructor(private readonly options: WorkerOptions) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  /** Stops claiming, then waits for what is in flight. */
  async stop(): Promise<void> {
    this.running = false;
    this.wake?.();
    await this.loop;
  }

  /** Runs one pass; returns how many messages it handled. Tests call this directly. */
  async runOnce(): Promise<number> {
    const { db, batchSize = 20, leaseSeconds = 60 } = this.options;
    const batch = await claimDueMail(db, batchSize, leaseSeconds);
    await Promise.all(batch.map((mail) => this.sendOne(mail)));
    return batch.length;
  }

  private async run(): Promise<void> {
    const { logger, pollIntervalMs = 200 } = this.options;
    while (this.running) {
      let handled = 0;
      try {
        handled = await this.runOnce();
      } catch (error) {
        logger.error({ err: error }, 'delivery worker pass failed; retrying');
      }
      if (handled === 0 && this.running) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, pollIntervalMs);
          this.wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
    }
  }

  private async sendOne(mail: OutboxRow): Promise<void> {
    const { db, transport, logger, messageIdDomain, maxAttempts = 8 } = this.options;
    const messageId = `<${randomUUID()}@${messageIdDomain}>`;
    try {
      await transport.sendMail({
        from: mail.from_address,
        to: mail.to_address,
        subject: mail.subject,
        html: mail.html,
        text: mail.text,
        headers: mail.headers,
        messageId,
      });
      await markMailSent(db, mail.id, messageId);
    } catch (error) {
      const permanent = isPermanentFailure(error);
      logger.warn(
        { outboxId: mail.id, kind: mail.kind, permanent, err: describeFailure(error) },
        'mail not accepted',
      );
      await markMailFailed(db, mail.id, describeFailure(error), { permanent, maxAttempts });
    }
  }
}
