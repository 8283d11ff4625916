import DataStream from 'nodemailer/lib/smtp-connection/data-stream';
import { describe, expect, it } from 'vitest';
import {
  fastDataTransform,
  nodemailerDataTransform,
  stuffDots,
} from '../../src/delivery/smtp-data.ts';

async function escape(transform: unknown, chunks: Buffer[]): Promise<Buffer> {
  const stream = new DataStream();
  (stream as unknown as { _transform: unknown })._transform = transform;
  const out: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => out.push(chunk));
  const ended = new Promise((resolve) => stream.on('end', resolve));
  for (const chunk of chunks) stream.write(chunk);
  stream.end();
  await ended;
  return Buffer.concat(out);
}

// A small deterministic generator, so a failure can be replayed.
function random(seed: number) {
  return () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
}

describe('fast dot-stuffing', () => {
  it('puts exactly the bytes nodemailer would on the wire, for any input split any way', async () => {
    const next = random(42);
    const pieces = ['a', 'b', '.', '..', '\r\n', '\r', '\n', '\r\n.', ' ', 'é'];
    for (let round = 0; round < 2000; round++) {
      const text = Array.from(
        { length: 1 + Math.floor(next() * 60) },
        () => pieces[Math.floor(next() * pieces.length)],
      ).join('');
      const bytes = Buffer.from(text);
      const chunks: Buffer[] = [];
      for (let at = 0; at < bytes.length;) {
        const size = 1 + Math.floor(next() * 12);
        chunks.push(bytes.subarray(at, at + size));
        at += size;
      }
      const expected = await escape(nodemailerDataTransform, chunks);
      expect(await escape(fastDataTransform, chunks), JSON.stringify(text)).toEqual(expected);
    }
  });

  it('doubles dots at line starts of a CRLF message without touching the rest', () => {
    const parts = stuffDots(Buffer.from('.first\r\nmiddle.\r\n..two\r\nend'), false)!;
    expect(Buffer.concat(parts).toString()).toBe('..first\r\nmiddle.\r\n...two\r\nend');
  });

  it('leaves a bare CR or LF to nodemailer', () => {
    expect(stuffDots(Buffer.from('a\nb'), false)).toBeUndefined();
    expect(stuffDots(Buffer.from('a\rb'), false)).toBeUndefined();
    expect(stuffDots(Buffer.from('a\r'), false)).toBeUndefined();
  });
});
