import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RelayError, RelayPool } from '../../src/delivery/relay-pool.ts';
import { startSmtpCapture, type SmtpCapture } from '../helpers/smtp-capture.ts';

let capture: SmtpCapture;
beforeAll(async () => {
  capture = await startSmtpCapture();
});
afterAll(() => capture.close());

const message = (n: number) =>
  Buffer.from(
    `From: desk@news.test\r\nTo: r${n}@example.com\r\nSubject: n${n}\r\nMessage-ID: <${n}@news.test>\r\n\r\n.line starting with a dot\r\nbody ${n}\r\n`,
  );

describe('relay pool', () => {
  it('delivers prepared bytes over a few reused connections', async () => {
    const pool = new RelayPool({ url: capture.url, maxConnections: 3 });
    const before = capture.messages.length;
    await Promise.all(
      Array.from({ length: 30 }, (_, n) =>
        pool.send({ from: 'bounces@news.test', to: [`r${n}@example.com`] }, message(n)),
      ),
    );
    const received = capture.messages.slice(before);
    expect(received).toHaveLength(30);
    expect(new Set(received.map((m) => m.parsed.subject))).toEqual(
      new Set(Array.from({ length: 30 }, (_, n) => `n${n}`)),
    );
    expect(received[0]!.parsed.text).toContain('.line starting with a dot');
    expect(received.every((m) => m.envelope.from === 'bounces@news.test')).toBe(true);
    pool.close();
  });

  it('reports a refused message with its code and keeps the connection', async () => {
    const pool = new RelayPool({ url: capture.url, maxConnections: 1 });
    capture.refuse = (envelope) =>
      envelope.to[0] === 'full@example.com'
        ? { code: 452, message: 'mailbox full, try later' }
        : envelope.to[0] === 'gone@example.com'
          ? { code: 550, message: '5.1.1 no such user' }
          : undefined;
    try {
      const temporary = await pool
        .send({ from: 'b@news.test', to: ['full@example.com'] }, message(1))
        .catch((e: unknown) => e);
      expect(temporary).toBeInstanceOf(RelayError);
      expect(temporary).toMatchObject({ responseCode: 452, connectionFailed: false });
      const permanent = await pool
        .send({ from: 'b@news.test', to: ['gone@example.com'] }, message(2))
        .catch((e: unknown) => e);
      expect(permanent).toMatchObject({ responseCode: 550, connectionFailed: false });
      expect((permanent as Error).message).toContain('5.1.1 no such user');
      const ok = await pool.send({ from: 'b@news.test', to: ['fine@example.com'] }, message(3));
      expect(ok.response).toMatch(/^250/);
    } finally {
      capture.refuse = undefined;
      pool.close();
    }
  });

  it('says the connection failed when nothing listens', async () => {
    const pool = new RelayPool({ url: 'smtp://127.0.0.1:1', maxConnections: 2, timeoutMs: 2000 });
    const failure = await pool
      .send({ from: 'b@news.test', to: ['x@example.com'] }, message(1))
      .catch((e: unknown) => e);
    expect(failure).toMatchObject({ connectionFailed: true });
    pool.close();
  });
});
