import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { startSend } from '../../src/delivery/sends.service.ts';
import { createMailLane, createMailTransport } from '../../src/delivery/transport.ts';
import { DeliveryWorker } from '../../src/delivery/worker.ts';
import { createLogger } from '../../src/log.ts';
import { startSmtpCapture, type SmtpCapture } from '../helpers/smtp-capture.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/test-database.ts';
import {
  deliveriesOf,
  seedNewsletter,
  seedReaders,
  seedSend,
  sendStatus,
  workerConfig,
} from './send-fixtures.ts';

let database: TestDatabase;
let relayA: SmtpCapture;
let relayB: SmtpCapture;

beforeAll(async () => {
  database = await createTestDatabase();
  [relayA, relayB] = await Promise.all([startSmtpCapture(), startSmtpCapture()]);
});
afterAll(async () => {
  await Promise.all([relayA.close(), relayB.close()]);
  await database.close();
});

async function sendThrough(
  slug: string,
  readers: number,
  lanes: Parameters<typeof createMailLane>[0][],
) {
  const newsletterId = await seedNewsletter(database.db, slug);
  await seedReaders(database.db, newsletterId, readers, { prefix: slug });
  const sendId = await seedSend(database.db, newsletterId);
  await startSend(database.db, sendId, { startedBy: 'test' });
  const config = workerConfig({ WORKER_BATCH_SIZE: '500' });
  const logger = createLogger(config.logLevel);
  const worker = new DeliveryWorker({
    db: database.db,
    transport: createMailTransport({ dataDir: '/tmp', logger }),
    logger,
    messageIdDomain: config.messageIdDomain,
    config,
    lanes: lanes.map((lane) => createMailLane(lane)),
  });
  for (
    let pass = 0;
    pass < 200 && (await sendStatus(database.db, sendId)).status === 'sending';
    pass++
  ) {
    if ((await worker.runOnce()) === 0) await new Promise((resolve) => setTimeout(resolve, 30));
  }
  await worker.stop();
  return sendId;
}

const to = (capture: SmtpCapture, prefix: string) =>
  capture.messages.filter((m) => m.envelope.to[0]!.startsWith(prefix)).map((m) => m.envelope.to[0]);

describe('several relays', () => {
  it('share a send by weight, each reader mailed once', async () => {
    const sendId = await sendThrough('weighted', 40, [
      { smtpUrl: relayA.url, dataDir: '/tmp', messagesPerSecond: 0, maxConnections: 3, weight: 3 },
      { smtpUrl: relayB.url, dataDir: '/tmp', messagesPerSecond: 0, maxConnections: 3, weight: 1 },
    ]);
    const viaA = to(relayA, 'weighted-');
    const viaB = to(relayB, 'weighted-');
    expect(viaA).toHaveLength(30);
    expect(viaB).toHaveLength(10);
    expect(new Set([...viaA, ...viaB]).size).toBe(40);
    expect((await deliveriesOf(database.db, sendId)).every((d) => d.status === 'sent')).toBe(true);
  });

  it('fall back to another relay when one cannot be reached, losing no one', async () => {
    const sendId = await sendThrough('fallback', 25, [
      { smtpUrl: 'smtp://127.0.0.1:1', dataDir: '/tmp', messagesPerSecond: 0, maxConnections: 2 },
      {
        smtpUrl: relayB.url,
        dataDir: '/tmp',
        messagesPerSecond: 0,
        maxConnections: 2,
        fallbackOnly: true,
      },
    ]);
    expect(new Set(to(relayB, 'fallback-')).size).toBe(25);
    expect(to(relayB, 'fallback-')).toHaveLength(25);
    const deliveries = await deliveriesOf(database.db, sendId);
    expect(deliveries.filter((d) => d.status === 'sent')).toHaveLength(25);
  });
});

describe('SMTP_RELAYS', () => {
  it('reads each relay with its weight, rate, connections and fall-back flag', () => {
    const config = loadConfig({
      SMTP_RELAYS:
        'smtp://user:pw@relay-a.example:587?weight=3&rate=200&connections=10, smtps://relay-b.example:465?fallback=true',
    });
    expect(config.relays).toEqual([
      {
        url: 'smtp://user:pw@relay-a.example:587',
        weight: 3,
        messagesPerSecond: 200,
        maxConnections: 10,
        fallbackOnly: false,
      },
      {
        url: 'smtps://relay-b.example:465',
        weight: 1,
        messagesPerSecond: 0,
        maxConnections: undefined,
        fallbackOnly: true,
      },
    ]);
  });

  it.each([
    'http://relay.example',
    'smtp://relay.example?weight=-1',
    'smtp://relay.example?connections=0',
    'smtp://relay.example?speed=9',
    'not a url',
  ])('refuses %s and names the variable, without its password', (entry) => {
    expect(() => loadConfig({ SMTP_RELAYS: `smtp://u:secret@ok.example, ${entry}` })).toThrow(
      /SMTP_RELAYS has an entry/,
    );
    expect(() => loadConfig({ SMTP_RELAYS: `smtp://u:secret@bad.example?weight=x` })).toThrow(
      /smtp:\/\/\*\*\*@bad/,
    );
  });
});
