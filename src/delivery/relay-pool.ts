import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { useFastDotStuffing } from './smtp-data.ts';
import { describeFailure } from './smtp-errors.ts';

export interface RelayOptions {
  /** smtp:// or smtps:// with optional user:password@ */
  url: string;
  maxConnections: number;
  /** Hostname we greet with (EHLO). */
  clientName?: string;
  timeoutMs?: number;
}

export interface Envelope {
  from: string;
  to: string[];
}

export class RelayError extends Error {
  constructor(
    message: string,
    readonly responseCode: number | undefined,
    /** True when the connection itself failed (refused, dropped, timed out), not the message. */
    readonly connectionFailed: boolean,
  ) {
    super(message);
  }
}

/**
 * Pooled SMTP connections to one relay that take finished message bytes. nodemailer's transport
 * would rebuild the MIME tree per message; this hands the prepared bytes straight to the socket.
 */
export class RelayPool {
  private readonly idle: SMTPConnection[] = [];
  private readonly waiting: ((connection: SMTPConnection | Error) => void)[] = [];
  private open = 0;
  private closed = false;

  constructor(private readonly options: RelayOptions) {
    useFastDotStuffing();
  }

  get name(): string {
    const url = new URL(this.options.url);
    return `${url.hostname}:${url.port || (url.protocol === 'smtps:' ? 465 : 25)}`;
  }

  async send(envelope: Envelope, message: Buffer): Promise<{ response: string }> {
    const connection = await this.acquire();
    try {
      const info = await new Promise<SMTPConnection.SentMessageInfo>((resolve, reject) => {
        connection.send(envelope, message, (error, sent) =>
          error ? reject(error) : resolve(sent),
        );
      });
      this.release(connection);
      return { response: info.response };
    } catch (error) {
      const failure = toRelayError(error);
      if (failure.connectionFailed || !(await this.reset(connection))) this.discard(connection);
      else this.release(connection);
      throw failure;
    }
  }

  close(): void {
    this.closed = true;
    for (const connection of this.idle.splice(0)) connection.quit();
    for (const wake of this.waiting.splice(0))
      wake(new RelayError('relay pool closed', undefined, true));
  }

  private async acquire(): Promise<SMTPConnection> {
    if (this.closed) throw new RelayError('relay pool closed', undefined, true);
    const ready = this.idle.pop();
    if (ready) return ready;
    if (this.open < this.options.maxConnections) {
      this.open++;
      try {
        return await this.connect();
      } catch (error) {
        this.open--;
        this.wakeNext();
        throw toRelayError(error, true);
      }
    }
    const next = await new Promise<SMTPConnection | Error>((resolve) => this.waiting.push(resolve));
    if (next instanceof Error) throw next;
    return next;
  }

  private release(connection: SMTPConnection): void {
    const wake = this.waiting.shift();
    if (wake) wake(connection);
    else if (this.closed) connection.quit();
    else this.idle.push(connection);
  }

  private discard(connection: SMTPConnection): void {
    connection.close();
    this.open--;
    this.wakeNext();
  }

  // A freed slot lets one waiter open a connection of its own.
  private wakeNext(): void {
    const wake = this.waiting.shift();
    if (!wake) return;
    this.acquire().then(wake, (error: Error) => wake(error));
  }

  private reset(connection: SMTPConnection): Promise<boolean> {
    return new Promise((resolve) => connection.reset((error) => resolve(!error)));
  }

  private connect(): Promise<SMTPConnection> {
    const url = new URL(this.options.url);
    const secure = url.protocol === 'smtps:';
    const timeout = this.options.timeoutMs ?? 30_000;
    const connection = new SMTPConnection({
      host: url.hostname,
      port: Number(url.port) || (secure ? 465 : 25),
      secure,
      name: this.options.clientName,
      connectionTimeout: timeout,
      greetingTimeout: timeout,
      socketTimeout: timeout,
    });
    // Errors also reach the callback of whatever is running; this keeps them from crashing the process.
    connection.on('error', () => undefined);
    connection.on('end', () => {
      const index = this.idle.indexOf(connection);
      if (index >= 0) {
        this.idle.splice(index, 1);
        this.open--;
      }
    });
    return new Promise((resolve, reject) => {
      // A refused or timed-out connect is reported as an 'error' event, not to the callback.
      const failed = (error: Error) => reject(error);
      connection.once('error', failed);
      connection.connect((error) => {
        connection.off('error', failed);
        if (error) return reject(error);
        if (!url.username) return resolve(connection);
        connection.login(
          { user: decodeURIComponent(url.username), pass: decodeURIComponent(url.password) },
          (loginError) => (loginError ? reject(loginError) : resolve(connection)),
        );
      });
    });
  }
}

function toRelayError(error: unknown, connecting = false): RelayError {
  if (error instanceof RelayError) return error;
  const { responseCode } = error as { responseCode?: number };
  // No SMTP answer at all (refused, dropped, timed out) or a 421 means the connection, not the message.
  const connectionFailed = connecting || responseCode === 421 || !responseCode;
  return new RelayError(describeFailure(error), responseCode, connectionFailed);
}
