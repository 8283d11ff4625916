import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import nodemailer, {
  type Transport,
  type TransportOptions as SmtpOptions,
  type Transporter,
} from 'nodemailer';
import type MailMessage from 'nodemailer/lib/mailer/mail-message';

import type { Logger } from '../log.ts';
import type { MailLane, Relay } from './mail-lane.ts';
import { RelayPool } from './relay-pool.ts';
import { useFastDotStuffing } from './smtp-data.ts';

interface FileSentInfo {
  envelope: ReturnType<MailMessage['message']['getEnvelope']>;
  messageId: string;
  response: string;
}

export interface TransportOptions {
  smtpUrl?: string;
  dataDir: string;
  logger: Logger;
  maxConnections?: number;
  /** Messages the pool may resend by itself when a connection drops; the ledger retries instead. */
  maxRequeues?: number;
}

/**
 * A nodemailer transporter: pooled SMTP when SMTP_URL is set, otherwise every message is
 * written as an .eml file under DATA_DIR/mail so a newcomer can open it.
 */
export function createMailTransport(options: TransportOptions): Transporter {
  if (options.smtpUrl) {
    useFastDotStuffing();
    return nodemailer.createTransport({
      url: options.smtpUrl,
      pool: true,
      maxConnections: options.maxConnections ?? 5,
      maxMessages: Infinity,
      maxRequeues: options.maxRequeues ?? 5,
      connectionTimeout: 10_000,
      greetingTimeout: 10_000,
      socketTimeout: 30_000,
    } as SmtpOptions);
  }
  const files = emlFileRelay(options.dataDir);
  return nodemailer.createTransport({
    name: 'eml-files',
    version: '1',
    send(mail: MailMessage, callback: (error: Error | null, info?: FileSentInfo) => void) {
      void (async () => {
        const envelope = mail.message.getEnvelope();
        const file = await files.write(await mail.message.build());
        options.logger.info({ file, to: envelope.to }, 'mail written to file (no SMTP_URL set)');
        return { envelope, messageId: mail.message.messageId(), response: `written ${file}` };
      })().then(
        (info) => callback(null, info),
        (error: Error) => callback(error, undefined),
      );
    },
  } as Transport<FileSentInfo>);
}

/**
 * The way out for newsletter mail: a relay pool sized to the connection slots this worker holds,
 * or .eml files on embedded defaults. A dropped connection is reported, never resent by the pool,
 * so the ledger decides about retries.
 */
export function createMailLane(options: {
  name?: string;
  smtpUrl?: string;
  dataDir: string;
  messagesPerSecond: number;
  maxConnections: number;
  weight?: number;
  fallbackOnly?: boolean;
  clientName?: string;
}): MailLane {
  const { smtpUrl } = options;
  return {
    name: options.name ?? (smtpUrl ? new URL(smtpUrl).host : 'default'),
    messagesPerSecond: options.messagesPerSecond,
    maxConnections: options.maxConnections,
    weight: options.weight,
    fallbackOnly: options.fallbackOnly,
    owned: true,
    open: (connections) =>
      smtpUrl
        ? new RelayPool({
            url: smtpUrl,
            maxConnections: connections,
            clientName: options.clientName,
          })
        : emlFileRelay(options.dataDir),
  };
}

/** Embedded defaults: each finished message is written as it would have been sent. */
export function emlFileRelay(dataDir: string): Relay & { write(message: Buffer): Promise<string> } {
  const folder = join(dataDir, 'mail');
  let sequence = 0;
  const write = async (message: Buffer) => {
    await mkdir(folder, { recursive: true });
    const file = join(folder, `${Date.now()}-${process.pid}-${++sequence}.eml`);
    await writeFile(file, message);
    return file;
  };
  return { write, send: (_envelope, message) => write(message), close: () => undefined };
}

/** Hands finished bytes to a nodemailer transporter (the outbox's), for a worker given no lanes. */
export function transporterRelay(transporter: Transporter): Relay {
  return {
    send: (envelope, message) =>
      transporter.sendMail({ envelope: { from: envelope.from, to: envelope.to }, raw: message }),
    close: () => undefined,
  };
}
