import { mkdtemp, readFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { createMailTransport } from '../../src/delivery/transport.ts';
import { DeliveryWorker } from '../../src/delivery/worker.ts';
import { createApp } from '../../src/http/app.ts';
import { TEST_ADMIN_TOKEN, TEST_SECRET } from '../helpers/test-app.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/test-database.ts';

let database: TestDatabase;
let dataDir: string;
const logLines: string[] = [];

beforeAll(async () => {
  database = await createTestDatabase();
  dataDir = await mkdtemp(join(tmpdir(), 'broadsheet-embedded-'));
});
afterAll(() => database.close());

describe('without SMTP_URL', () => {
  it('logs the confirmation link and the worker writes the mail as an .eml file', async () => {
    const config = loadConfig({
      NODE_ENV: 'test',
      DATA_DIR: dataDir,
      SECRET: TEST_SECRET,
      ADMIN_TOKEN: TEST_ADMIN_TOKEN,
      PUBLIC_URL: 'http://localhost:3000',
      LOG_LEVEL: 'info',
    });
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        logLines.push(chunk.toString());
        done();
      },
    });
    const logger = pino({ level: 'info' }, sink);
    const app = createApp({ db: database.db, config, logger, metrics: new Registry() });
    await request(app)
      .post('/api/v1/newsletters')
      .set('Authorization', `Bearer ${TEST_ADMIN_TOKEN}`)
      .send({ slug: 'morning-briefing', name: 'Morning Briefing' })
      .expect(201);
    await request(app)
      .post('/api/v1/subscriptions')
      .send({ email: 'newcomer@example.com', newsletters: ['morning-briefing'] })
      .expect(202);

    const logged = logLines
      .map((line) => JSON.parse(line) as { msg: string; confirmUrl?: string })
      .find((entry) => entry.msg === 'confirmation link (no SMTP_URL set)');
    expect(logged?.confirmUrl).toMatch(/^http:\/\/localhost:3000\/confirm\/[\w-]+\.[\w-]+$/);

    const transport = createMailTransport({ dataDir, logger });
    const worker = new DeliveryWorker({
      db: database.db,
      transport,
      logger,
      messageIdDomain: 'localhost',
    });
    expect(await worker.runOnce()).toBe(1);
    const files = await readdir(join(dataDir, 'mail'));
    expect(files).toHaveLength(1);
    const eml = await readFile(join(dataDir, 'mail', files[0]!), 'utf8');
    expect(eml).toContain('To: newcomer@example.com');
    expect(eml.replace(/=\r?\n/g, '')).toContain(logged!.confirmUrl!);
  });
});
