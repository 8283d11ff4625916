import { Writable } from 'node:stream';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../src/http/app.ts';
import { createTestApp, type TestApp } from '../helpers/test-app.ts';

let t: TestApp;
const lines: string[] = [];

beforeAll(async () => {
  t = await createTestApp();
});
afterAll(() => t.close());

describe('request log', () => {
  it('records each request with its id but never a link token', async () => {
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(...chunk.toString().split('\n').filter(Boolean));
        done();
      },
    });
    const logger = pino({ level: 'info' }, sink);
    const app = createApp({ db: t.database.db, config: t.config, logger, metrics: new Registry() });
    const token = 'eyJzZWNyZXQiOiJ0b2tlbiJ9.c2lnbmF0dXJlLXZhbHVl';
    await request(app).get(`/unsubscribe/${token}`).set('x-request-id', 'req-77');
    await request(app).get(`/preferences/${token}?from=mail`);
    await request(app).get(`/Confirm/${token}`);
    const logged = lines.map((line) => JSON.parse(line) as { req?: { id?: string; url?: string } });
    const urls = logged.map((entry) => entry.req?.url);
    expect(urls).toContain('/unsubscribe/[token]');
    expect(urls).toContain('/preferences/[token]?from=mail');
    expect(urls).toContain('/Confirm/[token]');
    expect(logged.find((entry) => entry.req?.url === '/unsubscribe/[token]')?.req?.id).toBe(
      'req-77',
    );
    expect(lines.join('\n')).not.toContain(token);
  });
});
