import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dkimVerify } from 'mailauth';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config.ts';
import { connectPostgres } from '../../src/db/connect.ts';
import { createMailLane, createMailTransport } from '../../src/delivery/transport.ts';
import { DeliveryWorker } from '../../src/delivery/worker.ts';
import {
  cancelSend,
  pauseSend,
  resumeSend,
  retryFailed,
  startSend,
} from '../../src/delivery/sends.service.ts';
import { createLogger } from '../../src/log.ts';
import { startSmtpCapture, type SmtpCapture } from '../helpers/smtp-capture.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/test-database.ts';
import { startFlakyRelay, type FlakyRelay } from './flaky-relay.ts';
import {
  deliveriesOf,
  receivedBy,
  seedNewsletter,
  seedReaders,
  seedSend,
  sendStatus,
  workerConfig,
} from './send-fixtures.ts';

let database: TestDatabase;
let capture: SmtpCapture;
let relay: FlakyRelay;

beforeAll(async () => {
  database = await createTestDatabase();
  capture = await startSmtpCapture();
  relay = await startFlakyRelay(capture.port);
});
afterAll(async () => {
  await relay.close();
  await capture.close();
  await database.close();
});

function workerFor(config: Config, db = database.db): DeliveryWorker {
  const logger = createLogger(config.logLevel);
  return new DeliveryWorker({
    db,
    transport: createMailTransport({ smtpUrl: relay.url, dataDir: '/tmp', logger }),
    logger,
    messageIdDomain: config.messageIdDomain,
    config,
    lanes: [
      createMailLane({
        smtpUrl: relay.url,
        dataDir: '/tmp',
        messagesPerSecond: config.delivery.messagesPerSecond,
        maxConnections: config.delivery.maxConnections,
      }),
    ],
  });
}

/** Runs passes until the send leaves "sending" (or nothing is left that a pass can do). */
async function drain(worker: DeliveryWorker, sendId: number, passes = 400): Promise<void> {
  for (let pass = 0; pass < passes; pass++) {
    const handled = await worker.runOnce();
    const send = await sendStatus(database.db, sendId);
    if (send.status !== 'sending') return worker.stop();
    if (handled === 0) await new Promise((resolve) => setTimeout(resolve, 30));
  }
  throw new Error(`send ${sendId} still sending after ${passes} passes`);
}

function messagesTo(prefix: string) {
  return capture.messages.filter((m) => m.envelope.to.some((to) => to.startsWith(prefix)));
}

describe('the delivery ledger and worker', () => {
  it('mails every confirmed reader exactly once, with the headers bulk mail needs', async () => {
    const newsletterId = await seedNewsletter(database.db, 'morning');
    const confirmed = await seedReaders(database.db, newsletterId, 45, { prefix: 'ok' });
    await seedReaders(database.db, newsletterId, 3, { prefix: 'pending', status: 'pending' });
    await seedReaders(database.db, newsletterId, 3, { prefix: 'gone', status: 'unsubscribed' });
    const [blocked] = await seedReaders(database.db, newsletterId, 1, { prefix: 'blocked' });
    await database.db
      .updateTable('subscribers')
      .set({ status: 'blocklisted' })
      .where('id', '=', blocked!.id)
      .execute();
    const [suppressed] = await seedReaders(database.db, newsletterId, 1, { prefix: 'bounced' });
    await database.db
      .insertInto('suppressions')
      .values({ email_normalized: suppressed!.email, reason: 'hard_bounce' })
      .execute();

    const config = workerConfig({
      FEEDBACK_ID: 'broadsheet',
      UNSUBSCRIBE_MAILTO: 'unsubscribe@news.test',
      WORKER_BATCH_SIZE: '10',
    });
    const sendId = await seedSend(database.db, newsletterId);
    const started = await startSend(database.db, sendId, { startedBy: 'test' });
    expect(started).toMatchObject({ status: 'sending', recipients: 45 });

    await drain(workerFor(config), sendId);
    expect((await sendStatus(database.db, sendId)).status).toBe('sent');

    const received = receivedBy(capture.messages);
    expect([...received.keys()].sort()).toEqual(confirmed.map((r) => r.email).sort());
    expect([...received.values()].every((n) => n === 1)).toBe(true);
    const ledger = await deliveriesOf(database.db, sendId);
    expect(ledger).toHaveLength(45);
    expect(ledger.every((row) => row.status === 'sent')).toBe(true);

    const message = capture.messages.find((m) => m.envelope.to[0] === confirmed[0]!.email)!;
    const header = (name: string) =>
      message.parsed.headerLines
        .find((h) => h.key === name)
        ?.line.replace(/^[^:]+:\s*/, '')
        .replace(/\r?\n\s+/g, ' ');
    const row = ledger.find((r) => r.email === confirmed[0]!.email)!;
    expect(message.parsed.messageId).toBe(row.message_id);
    expect(row.message_id).toMatch(/^<send-\d+\.\d+\.1\.[0-9a-f]+@mail\.news\.test>$/);
    expect(header('precedence')).toBe('bulk');
    expect(header('list-unsubscribe-post')).toBe('List-Unsubscribe=One-Click');
    expect(header('feedback-id')).toBe(`${sendId}:morning:newsletter:broadsheet`);
    expect(header('list-id')).toBe('The morning <morning.mail.news.test>');
    const listUnsubscribe = header('list-unsubscribe')!;
    expect(listUnsubscribe).toMatch(/^<https:\/\/news\.test\/unsubscribe\/[^>]+>/);
    expect(listUnsubscribe).toContain('<mailto:unsubscribe@news.test>');
    const unsubscribeUrl = /<(https:[^>]+)>/.exec(listUnsubscribe)![1]!;
    expect(message.parsed.text).toContain(unsubscribeUrl);
    expect(message.parsed.html).toContain(`href="${unsubscribeUrl}"`);
    expect(message.parsed.text).toContain('https://news.test/preferences/');
    expect(message.parsed.html).toContain('Café news');
  });

  it('skips a reader who unsubscribes after the start and never adds one who confirms later', async () => {
    const newsletterId = await seedNewsletter(database.db, 'midday');
    const readers = await seedReaders(database.db, newsletterId, 12, { prefix: 'midday' });
    const sendId = await seedSend(database.db, newsletterId);
    await startSend(database.db, sendId, { startedBy: 'test' });
    await database.db
      .updateTable('subscriptions')
      .set({ status: 'unsubscribed', unsubscribed_at: new Date() })
      .where('subscriber_id', 'in', [readers[0]!.id, readers[1]!.id])
      .where('newsletter_id', '=', newsletterId)
      .execute();
    await seedReaders(database.db, newsletterId, 2, { prefix: 'latecomer' });

    await drain(workerFor(workerConfig()), sendId);
    const ledger = await deliveriesOf(database.db, sendId);
    expect(ledger).toHaveLength(12);
    const skipped = ledger.filter((row) => row.status === 'skipped');
    expect(skipped.map((row) => row.email).sort()).toEqual(
      [readers[0]!.email, readers[1]!.email].sort(),
    );
    expect(skipped[0]!.last_error).toBe('reader unsubscribed after the send started');
    expect(messagesTo('midday-')).toHaveLength(10);
    expect(messagesTo('latecomer-')).toHaveLength(0);
  });

  it('retries 451 answers and dropped connections until delivered; 550 ends failed and suppressed', async () => {
    const newsletterId = await seedNewsletter(database.db, 'flaky');
    const readers = await seedReaders(database.db, newsletterId, 60, { prefix: 'flaky' });
    const unknown = new Set(readers.slice(0, 3).map((r) => r.email));
    const seen = new Map<string, number>();
    capture.refuse = (envelope) => {
      const to = envelope.to[0]!;
      if (unknown.has(to)) return { code: 550, message: '5.1.1 <' + to + '>: user unknown' };
      const tries = (seen.get(to) ?? 0) + 1;
      seen.set(to, tries);
      // A tenth of the readers get 451 on their first two tries.
      if (Number(to.split('-')[1]!.split('@')[0]) % 10 === 0 && tries <= 2) {
        return { code: 451, message: '4.3.0 try again later' };
      }
      return undefined;
    };
    let dataCommands = 0;
    relay.dropOnData = () => ++dataCommands % 9 === 0;
    try {
      const sendId = await seedSend(database.db, newsletterId);
      await startSend(database.db, sendId, { startedBy: 'test' });
      await drain(workerFor(workerConfig({ SEND_PAUSE_FAILURE_RATE: '0.5' })), sendId);

      const ledger = await deliveriesOf(database.db, sendId);
      const failed = ledger.filter((row) => row.status === 'failed');
      expect(failed.map((row) => row.email).sort()).toEqual([...unknown].sort());
      expect(failed[0]!.last_error).toMatch(/^550 .*5\.1\.1/);
      expect(ledger.filter((row) => row.status === 'sent')).toHaveLength(57);
      expect(ledger.some((row) => row.attempts > 1)).toBe(true);
      expect(relay.dropped).toBeGreaterThan(0);
      const received = receivedBy(messagesTo('flaky-'));
      expect(received.size).toBe(57);
      expect([...received.values()].every((n) => n === 1)).toBe(true);

      const suppressions = await database.db
        .selectFrom('suppressions')
        .select(['email_normalized', 'reason'])
        .where('email_normalized', 'in', [...unknown])
        .execute();
      expect(suppressions).toHaveLength(3);
      expect(suppressions.every((s) => s.reason === 'hard_bounce')).toBe(true);
      expect((await sendStatus(database.db, sendId)).status).toBe('sent');

      // Retrying the failed ones skips them now: they are suppressed.
      const retried = await retryFailed(database.db, sendId);
      expect(retried.requeued).toBe(3);
      await drain(workerFor(workerConfig()), sendId);
      const after = await deliveriesOf(database.db, sendId);
      expect(after.filter((row) => row.status === 'skipped')).toHaveLength(3);
    } finally {
      capture.refuse = undefined;
      relay.dropOnData = () => false;
    }
  });

  it('pauses itself, with a reason, when the failure rate crosses the threshold', async () => {
    const newsletterId = await seedNewsletter(database.db, 'doomed');
    await seedReaders(database.db, newsletterId, 40, { prefix: 'doomed' });
    capture.refuse = () => ({ code: 554, message: '5.7.1 rejected as spam' });
    try {
      const sendId = await seedSend(database.db, newsletterId);
      await startSend(database.db, sendId, { startedBy: 'test' });
      const config = workerConfig({
        SEND_PAUSE_FAILURE_RATE: '0.2',
        SEND_PAUSE_MIN_OUTCOMES: '10',
        WORKER_BATCH_SIZE: '10',
      });
      await drain(workerFor(config), sendId);
      const send = await sendStatus(database.db, sendId);
      expect(send.status).toBe('paused');
      expect(send.status_reason).toMatch(/^paused automatically: \d+ of \d+ messages failed/);
      const ledger = await deliveriesOf(database.db, sendId);
      expect(ledger.filter((row) => row.status === 'queued').length).toBeGreaterThan(0);
      // Nobody was suppressed: a spam refusal says nothing about the address.
      const suppressed = await database.db
        .selectFrom('suppressions')
        .select('email_normalized')
        .where('email_normalized', 'like', 'doomed-%')
        .execute();
      expect(suppressed).toHaveLength(0);

      capture.refuse = undefined;
      await resumeSend(database.db, sendId);
      await drain(workerFor(config), sendId);
      expect((await sendStatus(database.db, sendId)).status).toBe('sent');
      expect(messagesTo('doomed-').length).toBe(
        (await deliveriesOf(database.db, sendId)).filter((r) => r.status === 'sent').length,
      );
    } finally {
      capture.refuse = undefined;
    }
  });

  it('pause stops claims at once, resume carries on, cancel skips what is left', async () => {
    const newsletterId = await seedNewsletter(database.db, 'evening');
    await seedReaders(database.db, newsletterId, 30, { prefix: 'evening' });
    const config = workerConfig({ WORKER_BATCH_SIZE: '10' });
    const worker = workerFor(config);

    const sendId = await seedSend(database.db, newsletterId);
    await startSend(database.db, sendId, { startedBy: 'test' });
    await worker.runOnce();
    await pauseSend(database.db, sendId);
    expect(await worker.runOnce()).toBe(0);
    const paused = await deliveriesOf(database.db, sendId);
    expect(paused.filter((row) => row.status === 'sent')).toHaveLength(10);
    expect(paused.filter((row) => row.status === 'queued')).toHaveLength(20);
    await expect(pauseSend(database.db, sendId)).rejects.toMatchObject({
      code: 'send_status_conflict',
    });
    await resumeSend(database.db, sendId);
    await drain(worker, sendId);
    expect(receivedBy(messagesTo('evening-')).size).toBe(30);
    expect(messagesTo('evening-')).toHaveLength(30);

    const second = await seedSend(database.db, newsletterId, 'Evening, again');
    await startSend(database.db, second, { startedBy: 'test' });
    await worker.runOnce();
    const cancelled = await cancelSend(database.db, second);
    expect(cancelled.status).toBe('cancelled');
    expect(await worker.runOnce()).toBe(0);
    const ledger = await deliveriesOf(database.db, second);
    expect(ledger.filter((row) => row.status === 'sent')).toHaveLength(10);
    expect(ledger.filter((row) => row.status === 'skipped')).toHaveLength(20);
    expect(capture.messages.filter((m) => m.parsed.subject === 'Evening, again')).toHaveLength(10);
    await expect(resumeSend(database.db, second)).rejects.toMatchObject({
      code: 'send_status_conflict',
    });
  });

  it('starts a scheduled send once when two workers race for it', async () => {
    const newsletterId = await seedNewsletter(database.db, 'scheduled');
    await seedReaders(database.db, newsletterId, 25, { prefix: 'sched' });
    const sendId = await seedSend(database.db, newsletterId);
    const soon = new Date(Date.now() + 300);
    const scheduled = await startSend(database.db, sendId, {
      scheduledAt: soon,
      startedBy: 'test',
    });
    expect(scheduled.status).toBe('scheduled');
    const otherDb = database.url ? connectPostgres(database.url, 4) : undefined;
    try {
      const config = workerConfig({ WORKER_BATCH_SIZE: '5' });
      const workers = [workerFor(config), workerFor(config, otherDb?.db ?? database.db)];
      while (Date.now() < soon.getTime()) {
        await Promise.all(workers.map((w) => w.runOnce()));
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      for (let pass = 0; pass < 200; pass++) {
        await Promise.all(workers.map((w) => w.runOnce()));
        if ((await sendStatus(database.db, sendId)).status === 'sent') break;
      }
      await Promise.all(workers.map((w) => w.stop()));
      const send = await sendStatus(database.db, sendId);
      expect(send.status).toBe('sent');
      expect(send.recipients).toBe(25);
      expect(await deliveriesOf(database.db, sendId)).toHaveLength(25);
      const received = receivedBy(messagesTo('sched-'));
      expect(received.size).toBe(25);
      expect([...received.values()].every((n) => n === 1)).toBe(true);
    } finally {
      await otherDb?.close();
    }
  });

  it('takes back rows whose worker died and counts them as possible duplicates', async () => {
    const newsletterId = await seedNewsletter(database.db, 'orphans');
    await seedReaders(database.db, newsletterId, 8, { prefix: 'orphan' });
    const sendId = await seedSend(database.db, newsletterId);
    await startSend(database.db, sendId, { startedBy: 'test' });
    // A worker claims three rows and dies: its lease is left to run out.
    await database.db
      .updateTable('deliveries')
      .set({ status: 'sending', attempts: 1, lease_until: new Date(Date.now() - 1000) })
      .where('send_id', '=', sendId)
      .where('subscriber_id', 'in', (eb) =>
        eb.selectFrom('deliveries').select('subscriber_id').where('send_id', '=', sendId).limit(3),
      )
      .execute();
    await drain(workerFor(workerConfig()), sendId);
    const ledger = await deliveriesOf(database.db, sendId);
    expect(ledger.every((row) => row.status === 'sent')).toBe(true);
    expect(ledger.filter((row) => row.reclaims === 1)).toHaveLength(3);
    expect(ledger.filter((row) => row.reclaims === 1).every((row) => row.attempts === 2)).toBe(
      true,
    );
  });

  it('on stop, finishes or gives back what it holds and leaves nothing leased', async () => {
    const newsletterId = await seedNewsletter(database.db, 'shutdown');
    await seedReaders(database.db, newsletterId, 40, { prefix: 'shutdown' });
    const sendId = await seedSend(database.db, newsletterId);
    await startSend(database.db, sendId, { startedBy: 'test' });
    const worker = workerFor(workerConfig({ WORKER_BATCH_SIZE: '20', SEND_RATE_PER_SECOND: '40' }));
    worker.start();
    await capture.waitFor(capture.messages.length + 5);
    await worker.stop();
    const ledger = await deliveriesOf(database.db, sendId);
    expect(ledger.filter((row) => row.status === 'sending')).toHaveLength(0);
    const sent = ledger.filter((row) => row.status === 'sent').length;
    expect(sent).toBeGreaterThan(0);
    expect(messagesTo('shutdown-')).toHaveLength(sent);
    const slots = await database.db
      .selectFrom('delivery_connection_slots')
      .select('holder')
      .where('holder', 'is not', null)
      .execute();
    expect(slots).toHaveLength(0);
    await cancelSend(database.db, sendId);
  });

  it("on embedded defaults (no SMTP_URL) writes each reader's message as an .eml file", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'broadsheet-eml-'));
    const newsletterId = await seedNewsletter(database.db, 'embedded');
    await seedReaders(database.db, newsletterId, 3, { prefix: 'embedded' });
    const sendId = await seedSend(database.db, newsletterId);
    await startSend(database.db, sendId, { startedBy: 'test' });
    const config = workerConfig({ DATA_DIR: dataDir });
    const logger = createLogger(config.logLevel);
    const worker = new DeliveryWorker({
      db: database.db,
      transport: createMailTransport({ dataDir, logger }),
      logger,
      messageIdDomain: config.messageIdDomain,
      config,
      lanes: [createMailLane({ dataDir, messagesPerSecond: 0, maxConnections: 5 })],
    });
    await drain(worker, sendId);
    const files = await readdir(join(dataDir, 'mail'));
    const emls = await Promise.all(files.map((f) => readFile(join(dataDir, 'mail', f), 'utf8')));
    expect(emls.filter((eml) => /^To: embedded-/m.test(eml))).toHaveLength(3);
    const eml = emls.find((text) => /^To: embedded-/m.test(text))!;
    expect(eml).toMatch(/^List-Unsubscribe: <https:\/\/news\.test\/unsubscribe\//m);
    expect(eml).toMatch(/^To: embedded-\d@readers\.test/m);
    await rm(dataDir, { recursive: true, force: true });
  });

  it('signs with DKIM when a key is configured, and the signature verifies', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pem = privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
    const publicDer = publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
    const newsletterId = await seedNewsletter(database.db, 'signed');
    const [reader] = await seedReaders(database.db, newsletterId, 1, { prefix: 'signed' });
    const sendId = await seedSend(database.db, newsletterId);
    await startSend(database.db, sendId, { startedBy: 'test' });
    const config = workerConfig({
      DKIM_DOMAIN: 'news.test',
      DKIM_SELECTOR: 'bs2026',
      DKIM_PRIVATE_KEY: pem.replaceAll('\n', '\\n'),
    });
    await drain(workerFor(config), sendId);
    const message = capture.messages.find((m) => m.envelope.to[0] === reader!.email)!;
    const result = await dkimVerify(message.raw, {
      resolver: async (name: string, type: string) => {
        if (name === 'bs2026._domainkey.news.test' && type === 'TXT') {
          return [[`v=DKIM1; k=rsa; p=${publicDer}`]];
        }
        throw Object.assign(new Error('not found'), { code: 'ENOTFOUND' });
      },
    });
    expect(result.results[0]?.status.result).toBe('pass');
    expect(result.results[0]?.signingDomain).toBe('news.test');
  });
});
