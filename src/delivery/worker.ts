import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Kysely } from 'kysely';
import type { Transporter } from 'nodemailer';
import addressparser from 'nodemailer/lib/addressparser';
import type { Config } from '../config.ts';
import type { Database } from '../db/database.ts';
import type { Logger } from '../log.ts';
import { readerLinks } from '../subscriptions/links.ts';
import { LedgerRecorder } from './ledger-recorder.ts';
import {
  claimDeliveries,
  finishSendIfDone,
  reclaimExpiredLeases,
  releaseDeliveries,
  type ClaimCursor,
  type ClaimedDelivery,
  type Outcome,
} from './ledger.repository.ts';
import { DkimSigner } from './dkim-signer.ts';
import { LanePicker } from './lane-picker.ts';
import { LaneShare, type MailLane, type Relay } from './mail-lane.ts';
import { newsletterMailCommon, newsletterMessageId } from './newsletter-mail.ts';
import {
  claimDueMail,
  findMailBody,
  markMailFailed,
  markMailSent,
  type DueMail,
} from './outbox.repository.ts';
import { messageFor, prepareMessage, type PreparedMessage } from './prepared-message.ts';
import { findSendForMail, listSendingSends, type SendForMail } from './sends.repository.ts';
import { startDueSends } from './sends.service.ts';
import { describeFailure, isPermanentFailure, isUnknownMailbox } from './smtp-errors.ts';
import { RelayError } from './relay-pool.ts';
import { retireWorker } from './throttle.repository.ts';
import { transporterRelay } from './transport.ts';

export interface WorkerOptions {
  db: Kysely<Database>;
  /** Transactional mail (the outbox) goes out here; newsletter mail too unless `lanes` is given. */
  transport: Transporter;
  logger: Logger;
  messageIdDomain: string;
  pollIntervalMs?: number;
  batchSize?: number;
  leaseSeconds?: number;
  maxAttempts?: number;
  /** Turns on newsletter sends: reader links, headers, DKIM, retries and throttles come from it. */
  config?: Config;
  /** Ways out for newsletter mail, each with limits shared by every worker. */
  lanes?: MailLane[];
  workerId?: string;
}

interface OpenLane {
  share: LaneShare;
  connections: number;
  relay: Relay;
}

interface SharedBody {
  from: string;
  prepared: PreparedMessage;
}

const MAX_SHARED_BODIES = 200;

interface PreparedSend {
  send: SendForMail;
  prepared: PreparedMessage;
}

/**
 * Drains the outbox and the deliveries ledger. Any number of workers may run against one
 * database: rows are claimed with FOR UPDATE SKIP LOCKED under a lease, so each is sent by one
 * worker at a time, and a worker that dies gives its rows back when the lease runs out.
 */
export class DeliveryWorker {
  private running = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private readonly workerId: string;
  private readonly shares: LaneShare[] = [];
  private readonly picker: LanePicker<MailLane> | undefined;
  private readonly signer: DkimSigner | undefined;
  private readonly recorder: LedgerRecorder | undefined;
  // Frozen content never changes, so caching the prepared message decides nothing about who gets mail.
  private readonly preparedSends = new Map<number, PreparedSend>();
  // Stored bodies never change (saveMailBody keys them by their content), so neither does this.
  private readonly sharedBodies = new Map<number, Promise<SharedBody>>();
  // Where each send's last claim ended; only a starting point, the ledger decides what is due.
  private readonly cursors = new Map<number, ClaimCursor>();

  constructor(private readonly options: WorkerOptions) {
    this.workerId = options.workerId ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
    const { config } = options;
    if (config) {
      const lanes: MailLane[] = options.lanes?.length
        ? options.lanes
        : [
            {
              name: 'default',
              messagesPerSecond: config.delivery.messagesPerSecond,
              maxConnections: config.delivery.maxConnections,
              open: () => transporterRelay(options.transport),
              owned: false,
            },
          ];
      this.shares = lanes.map(
        (lane) => new LaneShare(options.db, lane, this.workerId, this.slotLeaseSeconds),
      );
      this.picker = new LanePicker(lanes);
      this.signer = config.delivery.dkim
        ? new DkimSigner(config.delivery.dkim, config.delivery.dkimThreads)
        : undefined;
      this.recorder = new LedgerRecorder(options.db, {
        maxAttempts: options.maxAttempts ?? config.delivery.maxAttempts,
        retrySeconds: config.delivery.retrySeconds,
        failureRate: config.delivery.pauseFailureRate,
        minOutcomes: config.delivery.pauseMinOutcomes,
        logger: options.logger,
      });
    }
  }

  private get leaseSeconds(): number {
    return this.options.leaseSeconds ?? this.options.config?.delivery.leaseSeconds ?? 60;
  }

  // Slots are renewed between batches, so a short lease frees a dead worker's connections soon.
  private get slotLeaseSeconds(): number {
    return Math.min(this.leaseSeconds, 10);
  }

  private get batchSize(): number {
    return this.options.batchSize ?? this.options.config?.delivery.batchSize ?? 20;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  /** Stops claiming, then waits for what is in flight and writes its outcomes. */
  async stop(): Promise<void> {
    this.running = false;
    this.wake?.();
    await this.loop;
    await this.recorder?.flushBefore(Date.now() + this.leaseSeconds * 1000);
    await this.signer?.close();
    if (this.shares.length > 0) {
      await Promise.all(this.shares.map((share) => share.close()));
      await retireWorker(this.options.db, this.workerId).catch((error: unknown) =>
        this.options.logger.warn({ err: error }, 'could not give connection slots back'),
      );
    }
  }

  /** Runs one pass; returns how many messages it handled. Tests call this directly. */
  async runOnce(): Promise<number> {
    const handled = await this.drainOutbox();
    return handled + (this.shares.length > 0 ? await this.deliverSends() : 0);
  }

  private async drainOutbox(): Promise<number> {
    const { db, leaseSeconds = 60 } = this.options;
    const batch = await claimDueMail(db, this.options.batchSize ?? 20, leaseSeconds);
    await Promise.all(batch.map((mail) => this.sendOne(mail)));
    return batch.length;
  }

  private async run(): Promise<void> {
    const { logger } = this.options;
    const pollIntervalMs =
      this.options.pollIntervalMs ?? this.options.config?.delivery.pollIntervalMs ?? 200;
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

  private async sendOne(mail: DueMail): Promise<void> {
    const { db, transport, logger, messageIdDomain, maxAttempts = 8 } = this.options;
    const messageId = `<${randomUUID()}@${messageIdDomain}>`;
    try {
      if (mail.body_id === null) {
        await transport.sendMail({
          from: mail.from_address,
          to: mail.to_address,
          subject: mail.subject,
          html: mail.html,
          text: mail.text,
          headers: mail.headers,
          messageId,
        });
      } else {
        const body = await this.sharedBody(mail.body_id);
        await transport.sendMail({
          envelope: { from: body.from, to: mail.to_address },
          raw: messageFor(body.prepared, {
            to: mail.to_address,
            messageId,
            date: new Date(),
            values: { token: mail.token },
          }),
        });
      }
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

  /**
   * A body many outbox rows share (everyone's confirmation mail for the same newsletters), built
   * into MIME once: nodemailer took about 2 ms a message to build the same 12 KB again.
   */
  private sharedBody(id: number): Promise<SharedBody> {
    let body = this.sharedBodies.get(id);
    if (!body) {
      if (this.sharedBodies.size >= MAX_SHARED_BODIES) this.sharedBodies.clear();
      body = this.prepareSharedBody(id);
      this.sharedBodies.set(id, body);
      body.catch(() => this.sharedBodies.delete(id));
    }
    return body;
  }

  private async prepareSharedBody(id: number): Promise<SharedBody> {
    const body = await findMailBody(this.options.db, id);
    if (!body) throw new Error(`mail body ${id} is missing`);
    const [sender] = addressparser(body.from, { flatten: true });
    const from = { name: sender?.name ?? '', address: sender?.address ?? body.from };
    const { 'List-Id': listId, ...extraHeaders } = body.headers;
    return {
      from: from.address,
      prepared: prepareMessage({
        from,
        subject: body.subject,
        html: body.html,
        text: body.text,
        listId: listId ?? `<transactional.${this.options.messageIdDomain}>`,
        transactional: true,
        extraHeaders,
      }),
    };
  }

  /** One batch per sending send: start what is due, take back dead workers' rows, claim, send. */
  private async deliverSends(): Promise<number> {
    const { db, logger } = this.options;
    const started = await startDueSends(db, this.workerId);
    for (const id of started) logger.info({ sendId: id }, 'scheduled send started');
    const reclaimed = await reclaimExpiredLeases(db);
    if (reclaimed > 0) {
      logger.warn({ reclaimed }, 'took back deliveries whose worker stopped answering');
    }
    const sends = await listSendingSends(db);
    for (const id of this.preparedSends.keys()) {
      if (!sends.some((send) => send.id === id)) this.preparedSends.delete(id);
    }
    for (const id of this.cursors.keys()) {
      if (!sends.some((send) => send.id === id)) this.cursors.delete(id);
    }
    if (sends.length === 0) {
      await Promise.all(this.shares.map((share) => share.release()));
      return 0;
    }
    let handled = 0;
    for (const send of sends) {
      if (!this.running && this.loop) break;
      const lanes = await this.openLanes();
      if (lanes.length === 0) break;
      const claims = await this.claim(send, this.claimLimit(lanes));
      if (claims.length === 0) {
        if (await finishSendIfDone(db, send.id)) logger.info({ sendId: send.id }, 'send finished');
        continue;
      }
      handled += claims.length;
      await this.deliverBatch(lanes, claims);
    }
    return handled;
  }

  /**
   * Claims from where this worker's last claim of the send ended; when nothing is left after that
   * point it starts over once, for rows given back, taken back from a dead worker, or retried.
   */
  private async claim(
    send: { id: number; newsletterId: number },
    limit: number,
  ): Promise<ClaimedDelivery[]> {
    const { db } = this.options;
    const after = this.cursors.get(send.id);
    let claims = await claimDeliveries(db, send, limit, this.leaseSeconds, after);
    if (claims.length === 0 && after) {
      claims = await claimDeliveries(db, send, limit, this.leaseSeconds);
    }
    const last = claims.reduce<ClaimedDelivery | undefined>(
      (latest, claim) =>
        !latest ||
        claim.nextAttemptAt > latest.nextAttemptAt ||
        (claim.nextAttemptAt.getTime() === latest.nextAttemptAt.getTime() &&
          claim.subscriberId > latest.subscriberId)
          ? claim
          : latest,
      undefined,
    );
    if (last) this.cursors.set(send.id, last);
    else this.cursors.delete(send.id);
    return claims;
  }

  // Rate-limited lanes get no more rows than they can send before the batch's deadline.
  private claimLimit(lanes: OpenLane[]): number {
    const rates = lanes.map((lane) => lane.share.lane.messagesPerSecond);
    if (rates.some((rate) => rate <= 0)) return this.batchSize;
    const perBatch = rates.reduce((sum, rate) => sum + rate, 0) * this.slotLeaseSeconds * 0.8;
    return Math.max(1, Math.min(this.batchSize, Math.floor(perBatch)));
  }

  /** The lanes this worker holds connection slots on now, each with its relay. */
  private async openLanes(): Promise<OpenLane[]> {
    const open: OpenLane[] = [];
    for (const share of this.shares) {
      const connections = await share.hold();
      if (connections > 0) open.push({ share, connections, relay: share.relayFor(connections) });
    }
    return open;
  }

  private async deliverBatch(lanes: OpenLane[], claims: ClaimedDelivery[]): Promise<void> {
    const { db, logger } = this.options;
    const recorder = this.recorder!;
    // Stop handing rows to the relay well before either lease ends (the rows' or the connection
    // slots'), so no other worker can take what this one is still using.
    const deadline = Date.now() + Math.min(this.leaseSeconds, this.slotLeaseSeconds) * 800;
    let preparedSend: PreparedSend;
    try {
      preparedSend = await this.prepared(claims[0]!.sendId);
    } catch (error) {
      await releaseDeliveries(db, claims).catch(() => undefined);
      throw error;
    }
    const { send } = preparedSend;
    const queue = [...claims];
    const unsent: ClaimedDelivery[] = [];
    const keepGoing = () => (this.running || !this.loop) && Date.now() < deadline;
    const connections = lanes.reduce((sum, lane) => sum + lane.connections, 0);

    const sender = async () => {
      for (let claim = queue.shift(); claim; claim = queue.shift()) {
        if (claim.ineligible) {
          recorder.add(claim, send.newsletterId, {
            kind: 'skipped',
            reason: `reader ${claim.ineligible} after the send started`,
          });
          continue;
        }
        const outcome = keepGoing()
          ? await this.mailReader(lanes, preparedSend, claim, queue.length + 1, keepGoing)
          : undefined;
        if (!outcome) {
          unsent.push(claim, ...queue.splice(0));
          return;
        }
        recorder.add(claim, send.newsletterId, outcome);
      }
    };
    await Promise.all(Array.from({ length: Math.min(connections, claims.length) }, sender));
    await recorder.flushBefore(Date.now() + this.leaseSeconds * 1000);
    if (unsent.length > 0) {
      await releaseDeliveries(db, unsent).catch((error: unknown) =>
        logger.warn({ err: error }, 'could not give rows back; their lease will'),
      );
    }
  }

  /**
   * Sends one reader's copy through the lane the picker chooses; when that relay cannot be
   * reached, the next lane is tried at once. Undefined means "not now": give the row back.
   */
  private async mailReader(
    lanes: OpenLane[],
    { send, prepared }: PreparedSend,
    claim: ClaimedDelivery,
    wanted: number,
    keepGoing: () => boolean,
  ): Promise<Outcome | undefined> {
    const config = this.options.config!;
    const messageId = newsletterMessageId(this.options.messageIdDomain, claim);
    let message: Buffer;
    try {
      const links = readerLinks(config, {
        subscriberId: claim.subscriberId,
        newsletterId: send.newsletterId,
      });
      message = messageFor(prepared, {
        to: claim.email,
        messageId,
        date: new Date(),
        values: { unsubscribe_url: links.unsubscribeUrl, preferences_url: links.preferencesUrl },
      });
      if (this.signer) message = await this.signer.sign(message);
    } catch (error) {
      return { kind: 'retry', error: describeFailure(error) };
    }
    const envelope = { from: send.newsletter.fromEmail, to: [claim.emailNormalized] };
    const tried = new Set<string>();
    let lastError = 'no relay could be reached';
    for (let lane = this.pickLane(lanes, tried); lane; lane = this.pickLane(lanes, tried)) {
      const name = lane.share.lane.name;
      tried.add(name);
      try {
        if (!(await lane.share.takeToken(wanted, keepGoing))) return undefined;
      } catch (error) {
        this.options.logger.warn({ err: error, lane: name }, 'sending rate unavailable');
        return undefined;
      }
      try {
        await lane.relay.send(envelope, message);
        this.picker!.markUp(name);
        return { kind: 'sent', messageId, at: new Date() };
      } catch (error) {
        lastError = describeFailure(error);
        this.options.logger.debug(
          { sendId: send.id, subscriberId: claim.subscriberId, lane: name, err: lastError },
          'not accepted',
        );
        if (error instanceof RelayError && error.connectionFailed) {
          this.picker!.markDown(name);
          continue;
        }
        if (isPermanentFailure(error)) {
          return { kind: 'failed', error: lastError, unknownMailbox: isUnknownMailbox(error) };
        }
        return { kind: 'retry', error: lastError };
      }
    }
    return { kind: 'retry', error: lastError };
  }

  private pickLane(lanes: OpenLane[], tried: Set<string>): OpenLane | undefined {
    for (;;) {
      const lane = this.picker!.next(tried);
      if (!lane) return undefined;
      const open = lanes.find((candidate) => candidate.share.lane === lane);
      if (open) return open;
      tried.add(lane.name);
    }
  }

  private async prepared(sendId: number): Promise<PreparedSend> {
    const cached = this.preparedSends.get(sendId);
    if (cached) return cached;
    const send = await findSendForMail(this.options.db, sendId);
    if (!send) throw new Error(`send ${sendId} vanished while its deliveries were claimed`);
    const config = this.options.config!;
    const prepared = prepareMessage(
      newsletterMailCommon(send, send.newsletter, {
        domain: this.options.messageIdDomain,
        feedbackId: config.delivery.feedbackId,
        unsubscribeMailto: config.delivery.unsubscribeMailto,
      }),
    );
    const entry = { send, prepared };
    this.preparedSends.set(sendId, entry);
    return entry;
  }
}
