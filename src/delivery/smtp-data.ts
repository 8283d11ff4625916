import type { TransformCallback } from 'node:stream';
import DataStream from 'nodemailer/lib/smtp-connection/data-stream';

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;
const STUFFED_DOT = Buffer.from('.');

interface DataStreamState {
  inByteCount: number;
  outByteCount: number;
  lastByte: number | false;
  push(chunk: Buffer): boolean;
}

type Transform = (
  this: DataStreamState,
  chunk: Buffer | string,
  encoding: BufferEncoding,
  done: TransformCallback,
) => void;

/**
 * nodemailer escapes the DATA of every message byte by byte in JavaScript, which for a 64 KB
 * digest costs most of a worker's CPU. Messages whose every line ends in CRLF (all Broadsheet
 * builds) only need dots at line starts doubled; this finds those with Buffer.indexOf and hands
 * anything else (a bare CR or LF) to nodemailer's own code, so the bytes on the wire are the same.
 */
export function stuffDots(chunk: Buffer, lastByte: number | false): Buffer[] | undefined {
  if (lastByte === CR && chunk[0] !== LF) return undefined;
  for (let at = chunk.indexOf(LF); at !== -1; at = chunk.indexOf(LF, at + 1)) {
    if ((at === 0 ? lastByte : chunk[at - 1]) !== CR) return undefined;
  }
  for (let at = chunk.indexOf(CR); at !== -1; at = chunk.indexOf(CR, at + 1)) {
    if (at === chunk.length - 1 || chunk[at + 1] !== LF) return undefined;
  }
  const parts: Buffer[] = [];
  let from = 0;
  if (chunk[0] === DOT && (lastByte === LF || lastByte === false)) parts.push(STUFFED_DOT);
  for (let at = chunk.indexOf('\n.'); at !== -1; at = chunk.indexOf('\n.', at + 1)) {
    parts.push(chunk.subarray(from, at + 1), STUFFED_DOT);
    from = at + 1;
  }
  parts.push(from === 0 ? chunk : chunk.subarray(from));
  return parts;
}

const byteByByte = DataStream.prototype._transform as unknown as Transform;

const fast: Transform = function (chunk, encoding, done) {
  const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
  const parts = bytes.length > 0 ? stuffDots(bytes, this.lastByte) : undefined;
  if (!parts) return byteByByte.call(this, bytes, encoding, done);
  const out = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  this.inByteCount += bytes.length;
  this.outByteCount += out.length;
  this.push(out);
  this.lastByte = bytes[bytes.length - 1]!;
  done();
};

/** Makes every SMTP connection of this process escape DATA the fast way; idempotent. */
export function useFastDotStuffing(): void {
  (DataStream.prototype as unknown as { _transform: Transform })._transform = fast;
}

export { byteByByte as nodemailerDataTransform, fast as fastDataTransform };
