import { simpleParser, type ParsedMail } from 'mailparser';
import { SMTPServer, type SMTPServerEnvelope } from 'smtp-server';

export interface CapturedMail {
  envelope: { from: string; to: string[] };
  raw: Buffer;
  parsed: ParsedMail;
}

export interface Refusal {
  code: number;
  message: string;
}

export interface SmtpCapture {
  url: string;
  port: number;
  messages: CapturedMail[];
  /** Decides per message whether to refuse it (e.g. 451 or 550); undefined accepts. */
  refuse:
    ((envelope: { from: string; to: string[] }, raw: Buffer) => Refusal | undefined) | undefined;
  waitFor(count: number, timeoutMs?: number): Promise<CapturedMail[]>;
  close(): Promise<void>;
}

function addresses(envelope: SMTPServerEnvelope) {
  return {
    from: envelope.mailFrom ? envelope.mailFrom.address : '',
    to: envelope.rcptTo.map((rcpt) => rcpt.address),
  };
}

/** A real SMTP listener on 127.0.0.1 that keeps and parses every message it accepts. */
export async function startSmtpCapture(): Promise<SmtpCapture> {
  const capture: SmtpCapture = {
    url: '',
    port: 0,
    messages: [],
    refuse: undefined,
    waitFor: async (count, timeoutMs = 15_000) => {
      const deadline = Date.now() + timeoutMs;
      while (capture.messages.length < count) {
        if (Date.now() > deadline) {
          throw new Error(
            `expected ${count} messages, got ${capture.messages.length} in ${timeoutMs} ms`,
          );
        }
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      return capture.messages;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    size: 10 * 1024 * 1024,
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        const raw = Buffer.concat(chunks);
        const envelope = addresses(session.envelope);
        const refusal = capture.refuse?.(envelope, raw);
        if (refusal) {
          callback(Object.assign(new Error(refusal.message), { responseCode: refusal.code }));
          return;
        }
        simpleParser(raw).then(
          (parsed) => {
            capture.messages.push({ envelope, raw, parsed });
            callback();
          },
          (error: Error) => callback(error),
        );
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const address = server.server.address();
  capture.port = typeof address === 'object' && address ? address.port : 0;
  capture.url = `smtp://127.0.0.1:${capture.port}`;
  return capture;
}
