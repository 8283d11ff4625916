import type { Kysely } from 'kysely';
import type { Database } from '../db/database.ts';
import type { Envelope } from './relay-pool.ts';
import { announceWorker, holdConnectionSlots, takeSendingTokens } from './throttle.repository.ts';

/** Somewhere finished message bytes can be handed: a relay's connection pool, or .eml files. */
export interface Relay {
  send(envelope: Envelope, message: Buffer): Promise<unknown>;
  close(): void;
}

/** One way out for newsletter mail (a relay, or .eml files) with limits shared by all workers. */
export interface MailLane {
  name: string;
  /** Messages per second across every worker; 0 means no limit. */
  messagesPerSecond: number;
  /** Connections to the relay across every worker. */
  maxConnections: number;
  /** How often this lane is picked against the others (weighted round robin). */
  weight?: number;
  /** A fall-back lane is only used when no other lane can take the message. */
  fallbackOnly?: boolean;
  /** A relay with at most `connections` connections. */
  open(connections: number): Relay;
  /** Whether `open` made a new relay this worker must close. */
  owned: boolean;
}

const RENEW_EVERY_MS = 1_000;
// A closed pool's sockets are gone well within this; only then are its slots given back.
const CLOSE_GRACE_MS = 500;

/**
 * This worker's share of a lane: the connection slots it holds (renewed about once a second, so
 * a dead worker's slots come free when its lease runs out) and the sending tokens it takes.
 * Connections are closed before their slots are given back, so all workers together never have
 * more open than the lane allows.
 */
export class LaneShare {
  private held = 0;
  private usable = 0;
  private renewedAt = 0;
  private closedAt = 0;
  private relay: Relay | undefined;
  private openedFor = 0;
  private allowance = 0;
  private tokenQueue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly db: Kysely<Database>,
    readonly lane: MailLane,
    private readonly workerId: string,
    private readonly leaseSeconds: number,
  ) {}

  /** How many messages this worker may have in flight on the lane now; call between batches. */
  async hold(): Promise<number> {
    if (Date.now() - this.renewedAt >= RENEW_EVERY_MS || this.usable === 0) await this.renew();
    // A resized pool is opened again only once the old one's sockets are gone.
    return Date.now() - this.closedAt < CLOSE_GRACE_MS ? 0 : this.usable;
  }

  private async renew(): Promise<void> {
    const live = await announceWorker(this.db, this.workerId, this.leaseSeconds);
    const fairShare = Math.ceil(this.lane.maxConnections / live);
    const owned = this.lane.owned;
    // Shrinking: the connections close first and their slots are kept until they are gone.
    if (owned && this.relay && this.openedFor > fairShare) this.closeRelay();
    const closing = Date.now() - this.closedAt < CLOSE_GRACE_MS;
    this.held = await holdConnectionSlots(
      this.db,
      { workerId: this.workerId, transport: this.lane.name },
      this.lane.maxConnections,
      closing ? Math.max(fairShare, this.held) : fairShare,
      this.leaseSeconds,
    );
    this.usable = Math.min(this.held, fairShare);
    // Growing: the slots are held already; the old, smaller pool closes before a bigger one opens.
    if (owned && this.relay && this.openedFor !== this.usable) this.closeRelay();
    this.renewedAt = Date.now();
  }

  /** The relay sized to the slots held; call between batches, when nothing is in flight. */
  relayFor(connections: number): Relay {
    if (!this.relay) {
      this.relay = this.lane.open(connections);
      this.openedFor = connections;
    }
    return this.relay;
  }

  /**
   * Closes this lane's connections when there is no work, and gives the slots back on a later
   * idle pass, once the connections are surely gone.
   */
  async release(): Promise<void> {
    if (this.relay) this.closeRelay();
    if (this.renewedAt === 0 || Date.now() - this.closedAt < CLOSE_GRACE_MS) return;
    await holdConnectionSlots(
      this.db,
      { workerId: this.workerId, transport: this.lane.name },
      this.lane.maxConnections,
      0,
      this.leaseSeconds,
    );
    this.held = 0;
    this.usable = 0;
    this.renewedAt = 0;
  }

  /** Closes the connections and waits until their slots may be given back. */
  async close(): Promise<void> {
    if (!this.relay) return;
    this.closeRelay();
    if (this.lane.owned) await new Promise((resolve) => setTimeout(resolve, CLOSE_GRACE_MS));
  }

  private closeRelay(): void {
    if (this.lane.owned) this.relay?.close();
    this.relay = undefined;
    this.openedFor = 0;
    this.closedAt = Date.now();
  }

  /** Waits for the lane's rate to allow one more message; false when the worker stops first. */
  takeToken(wanted: number, isRunning: () => boolean): Promise<boolean> {
    // One taker at a time, so concurrent senders share one bucket request.
    const turn = this.tokenQueue.then(() => this.waitForToken(wanted, isRunning));
    this.tokenQueue = turn.catch(() => undefined);
    return turn;
  }

  private async waitForToken(wanted: number, isRunning: () => boolean): Promise<boolean> {
    const { messagesPerSecond } = this.lane;
    if (messagesPerSecond <= 0) return true;
    while (this.allowance <= 0) {
      if (!isRunning()) return false;
      const burst = Math.max(1, Math.ceil(messagesPerSecond));
      const { granted, available } = await takeSendingTokens(
        this.db,
        this.lane.name,
        Math.min(wanted, burst),
        { perSecond: messagesPerSecond, burst },
      );
      this.allowance += granted;
      if (granted === 0) {
        const waitMs = ((1 - available) / messagesPerSecond) * 1000;
        await new Promise((resolve) => setTimeout(resolve, Math.min(1_000, Math.max(5, waitMs))));
      }
    }
    this.allowance -= 1;
    return true;
  }
}
