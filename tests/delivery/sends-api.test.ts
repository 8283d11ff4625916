import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMailLane, createMailTransport } from '../../src/delivery/transport.ts';
import { DeliveryWorker } from '../../src/delivery/worker.ts';
import { createLogger } from '../../src/log.ts';
import { startSmtpCapture, type SmtpCapture } from '../helpers/smtp-capture.ts';
import { createTestApp, type TestApp } from '../helpers/test-app.ts';
import { seedReaders, sendStatus } from './send-fixtures.ts';

let t: TestApp;
let capture: SmtpCapture;
const editor = () => ({ Authorization: `Bearer ${t.editorToken}` });
const admin = () => ({ Authorization: `Bearer ${t.adminToken}` });

async function newsletter(slug: string): Promise<number> {
  await request(t.app)
    .post('/api/v1/newsletters')
    .set(admin())
    .send({ slug, name: `The ${slug}` })
    .expect(201);
  const row = await t.database.db
    .selectFrom('newsletters')
    .select('id')
    .where('slug', '=', slug)
    .executeTakeFirstOrThrow();
  return row.id;
}

async function drain(sendId: number): Promise<void> {
  const logger = createLogger('silent');
  const transport = createMailTransport({
    smtpUrl: capture.url,
    dataDir: t.config.dataDir,
    logger,
  });
  const worker = new DeliveryWorker({
    db: t.database.db,
    transport,
    logger,
    messageIdDomain: t.config.messageIdDomain,
    config: t.config,
    lanes: [
      createMailLane({
        smtpUrl: capture.url,
        dataDir: t.config.dataDir,
        messagesPerSecond: 0,
        maxConnections: 3,
      }),
    ],
  });
  for (let pass = 0; pass < 300; pass++) {
    const handled = await worker.runOnce();
    if ((await sendStatus(t.database.db, sendId)).status !== 'sending' && handled === 0) break;
    if (handled === 0) await new Promise((resolve) => setTimeout(resolve, 20));
  }
  await worker.stop();
  transport.close();
}

async function countSends() {
  return (await t.database.db.selectFrom('sends').select('id').execute()).length;
}

let dailyId: number;

beforeAll(async () => {
  t = await createTestApp({ DELIVERY_RETRY_SECONDS: '0.05' });
  capture = await startSmtpCapture();
  dailyId = await newsletter('daily');
  await newsletter('empty');
  const sport = await newsletter('sport');
  await t.database.db
    .updateTable('newsletters')
    .set({ digest_sections: ['sport'] })
    .where('id', '=', sport)
    .execute();
  await request(t.app)
    .post('/api/v1/articles')
    .set(editor())
    .send({
      articles: [
        {
          url: 'https://news.test/2026/harbour-reopens',
          title: 'The harbour reopens',
          summary: 'Boats are back after a long winter.',
          publishedAt: new Date(Date.now() - 3_600_000).toISOString(),
        },
        {
          url: 'https://news.test/2026/council-budget',
          title: 'Council passes its budget',
          summary: 'Libraries keep their hours.',
          publishedAt: new Date(Date.now() - 7_200_000).toISOString(),
        },
      ],
    })
    .expect(200);
  await seedReaders(t.database.db, dailyId, 6, { prefix: 'daily' });
});
afterAll(async () => {
  await capture.close();
  await t.close();
});

describe('sends API', () => {
  let sendId: number;
  let articleIds: number[];

  it('creates a send with the digest frozen on it; the same Idempotency-Key gives the same send', async () => {
    const created = await request(t.app)
      .post('/api/v1/newsletters/daily/sends')
      .set(editor())
      .set('Idempotency-Key', 'daily-2026-11-26')
      .send({ subject: 'Thursday: the harbour reopens' });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      newsletter: 'daily',
      status: 'draft',
      subject: 'Thursday: the harbour reopens',
      recipients: 0,
      createdBy: 'test editor',
    });
    expect(created.body.articleIds).toHaveLength(2);
    sendId = created.body.id;
    articleIds = created.body.articleIds;
    expect(created.headers.location).toBe(`/api/v1/sends/${sendId}`);
    const row = await sendStatus(t.database.db, sendId);
    expect(row.html).toContain('The harbour reopens');
    expect(row.html).toContain('%%{unsubscribe_url}%%');
    expect(row.text).toContain('Council passes its budget');

    const again = await request(t.app)
      .post('/api/v1/newsletters/daily/sends')
      .set(editor())
      .set('Idempotency-Key', 'daily-2026-11-26')
      .send({ subject: 'Thursday: the harbour reopens' });
    expect(again.status).toBe(200);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.body.id).toBe(sendId);

    const different = await request(t.app)
      .post('/api/v1/newsletters/daily/sends')
      .set(editor())
      .set('Idempotency-Key', 'daily-2026-11-26')
      .send({ subject: 'Something else' });
    expect(different.status).toBe(422);
    expect(different.body.error.code).toBe('idempotency_key_reused');
    expect(await countSends()).toBe(1);
  });

  it('mails a test through the outbox, outside the ledger', async () => {
    const res = await request(t.app)
      .post(`/api/v1/sends/${sendId}/test`)
      .set(editor())
      .send({ emails: ['editor@news.test'] });
    expect(res.status).toBe(202);
    expect(res.body).toEqual({ queued: 1 });
    const outbox = await t.database.db
      .selectFrom('outbox')
      .selectAll()
      .where('kind', '=', 'send_test')
      .execute();
    expect(outbox).toHaveLength(1);
    expect(outbox[0]!.subject).toBe('[Test] Thursday: the harbour reopens');
    expect(outbox[0]!.html).toContain('The harbour reopens');
    expect(outbox[0]!.html).not.toContain('%%{');
    const progress = await request(t.app).get(`/api/v1/sends/${sendId}`).set(editor());
    expect(progress.body.deliveries.total).toBe(0);
    expect(progress.body.status).toBe('draft');
  });

  it('starts, reports progress, and pages the ledger', async () => {
    const started = await request(t.app)
      .post(`/api/v1/sends/${sendId}/start`)
      .set(editor())
      .send({});
    expect(started.status).toBe(200);
    expect(started.body).toMatchObject({ status: 'sending', recipients: 6 });
    expect(started.body.startedAt).toEqual(expect.any(String));

    const twice = await request(t.app).post(`/api/v1/sends/${sendId}/start`).set(editor());
    expect(twice.status).toBe(409);
    expect(twice.body.error.code).toBe('send_not_startable');

    const before = await request(t.app).get(`/api/v1/sends/${sendId}`).set(editor());
    expect(before.body.deliveries).toEqual({
      queued: 6,
      sending: 0,
      sent: 0,
      failed: 0,
      skipped: 0,
      total: 6,
    });

    const [unknown] = (await t.database.db
      .selectFrom('subscribers')
      .select('email')
      .where('email', 'like', 'daily-%')
      .orderBy('id')
      .execute())!;
    capture.refuse = (envelope) =>
      envelope.to[0] === unknown!.email
        ? { code: 550, message: '5.1.1 mailbox does not exist' }
        : undefined;
    try {
      await drain(sendId);
    } finally {
      capture.refuse = undefined;
    }
    const after = await request(t.app).get(`/api/v1/sends/${sendId}`).set(editor());
    expect(after.body).toMatchObject({
      status: 'sent',
      deliveries: { queued: 0, sending: 0, sent: 5, failed: 1, skipped: 0, total: 6 },
      possibleDuplicates: 0,
      estimatedFinishAt: null,
    });
    expect(after.body.finishedAt).toEqual(expect.any(String));

    const failed = await request(t.app)
      .get(`/api/v1/sends/${sendId}/deliveries?status=failed`)
      .set(editor());
    expect(failed.status).toBe(200);
    expect(failed.body.deliveries).toEqual([
      expect.objectContaining({
        email: unknown!.email,
        status: 'failed',
        attempts: 1,
        lastError: '550 5.1.1 mailbox does not exist',
      }),
    ]);

    const first = await request(t.app)
      .get(`/api/v1/sends/${sendId}/deliveries?status=sent&limit=3`)
      .set(editor());
    expect(first.body.deliveries).toHaveLength(3);
    expect(first.body.deliveries[0].messageId).toMatch(/@news\.test>$/);
    const second = await request(t.app)
      .get(`/api/v1/sends/${sendId}/deliveries?status=sent&limit=3&after=${first.body.nextAfter}`)
      .set(editor());
    expect(second.body.deliveries).toHaveLength(2);
    expect(second.body.nextAfter).toBeNull();

    const retried = await request(t.app).post(`/api/v1/sends/${sendId}/retry-failed`).set(editor());
    expect(retried.status).toBe(200);
    expect(retried.body).toMatchObject({ status: 'sending', requeued: 1 });
    await drain(sendId);
    const skipped = await request(t.app)
      .get(`/api/v1/sends/${sendId}/deliveries?status=skipped`)
      .set(editor());
    expect(skipped.body.deliveries[0].lastError).toBe('reader suppressed after the send started');
  });

  it("a received message's List-Unsubscribe URL works with a one-click POST", async () => {
    const message = capture.messages.find((m) => m.envelope.to[0]!.startsWith('daily-'))!;
    const line = message.parsed.headerLines.find((h) => h.key === 'list-unsubscribe')!.line;
    const url = new URL(/<(http[^>]+)>/.exec(line)![1]!);
    expect(url.origin).toBe(t.config.publicUrl);
    const res = await request(t.app)
      .post(url.pathname)
      .type('form')
      .send('List-Unsubscribe=One-Click');
    expect(res.status).toBe(200);
    const subscription = await t.database.db
      .selectFrom('subscriptions')
      .innerJoin('subscribers', 'subscribers.id', 'subscriptions.subscriber_id')
      .select('subscriptions.status')
      .where('subscribers.email', '=', message.envelope.to[0]!)
      .where('subscriptions.newsletter_id', '=', dailyId)
      .executeTakeFirstOrThrow();
    expect(subscription.status).toBe('unsubscribed');
  });

  it('pauses, resumes and cancels through the API, refusing what does not fit the status', async () => {
    const created = await request(t.app)
      .post('/api/v1/newsletters/daily/sends')
      .set(editor())
      .send({ subject: 'Second edition', articleIds });
    const id = created.body.id;
    expect((await request(t.app).post(`/api/v1/sends/${id}/pause`).set(editor())).status).toBe(409);
    await request(t.app).post(`/api/v1/sends/${id}/start`).set(editor()).expect(200);
    const paused = await request(t.app).post(`/api/v1/sends/${id}/pause`).set(editor());
    expect(paused.body).toMatchObject({ status: 'paused', statusReason: 'paused by an editor' });
    const resumed = await request(t.app).post(`/api/v1/sends/${id}/resume`).set(editor());
    expect(resumed.body.status).toBe('sending');
    const cancelled = await request(t.app).post(`/api/v1/sends/${id}/cancel`).set(editor());
    expect(cancelled.body.status).toBe('cancelled');
    const progress = await request(t.app).get(`/api/v1/sends/${id}`).set(editor());
    expect(progress.body.deliveries.skipped).toBe(progress.body.deliveries.total);
    const again = await request(t.app).post(`/api/v1/sends/${id}/cancel`).set(editor());
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe('send_status_conflict');
  });

  it('schedules a send for later and refuses a time in the past', async () => {
    const created = await request(t.app)
      .post('/api/v1/newsletters/daily/sends')
      .set(editor())
      .send({ articleIds });
    const id = created.body.id;
    const past = await request(t.app)
      .post(`/api/v1/sends/${id}/start`)
      .set(editor())
      .send({ scheduledAt: '2020-01-01T06:00:00Z' });
    expect(past.status).toBe(400);
    expect(past.body.error.code).toBe('scheduled_in_past');
    const at = new Date(Date.now() + 3_600_000).toISOString();
    const scheduled = await request(t.app)
      .post(`/api/v1/sends/${id}/start`)
      .set(editor())
      .send({ scheduledAt: at });
    expect(scheduled.status).toBe(200);
    expect(scheduled.body).toMatchObject({ status: 'scheduled', scheduledAt: at, recipients: 0 });
    expect(
      await t.database.db
        .selectFrom('deliveries')
        .select('send_id')
        .where('send_id', '=', id)
        .execute(),
    ).toHaveLength(0);
  });

  it('answers clearly for a newsletter with no confirmed readers, and leaves the send a draft', async () => {
    const created = await request(t.app)
      .post('/api/v1/newsletters/empty/sends')
      .set(editor())
      .send({ articleIds: [1] });
    expect(created.status).toBe(201);
    const started = await request(t.app)
      .post(`/api/v1/sends/${created.body.id}/start`)
      .set(editor());
    expect(started.status).toBe(422);
    expect(started.body.error.code).toBe('no_recipients');
    expect(started.body.error.message).toContain('no confirmed readers');
    expect((await sendStatus(t.database.db, created.body.id)).status).toBe('draft');
  });

  it("lists a newsletter's sends, newest first, a page at a time", async () => {
    const first = await request(t.app).get('/api/v1/newsletters/daily/sends?limit=2').set(editor());
    expect(first.status).toBe(200);
    expect(first.body.sends).toHaveLength(2);
    expect(first.body.sends[0].id).toBeGreaterThan(first.body.sends[1].id);
    expect(first.body.sends.every((s: { newsletter: string }) => s.newsletter === 'daily')).toBe(
      true,
    );
    const rest = await request(t.app)
      .get(`/api/v1/newsletters/daily/sends?before=${first.body.nextBefore}`)
      .set(editor());
    expect(rest.body.sends.map((s: { id: number }) => s.id)).toContain(sendId);
    expect(rest.body.nextBefore).toBeNull();
    const bad = await request(t.app).get('/api/v1/newsletters/daily/sends?limit=500').set(editor());
    expect(bad.status).toBe(400);
  });

  it.each([
    [
      'an unknown field',
      '/api/v1/newsletters/daily/sends',
      { colour: 'red' },
      400,
      'unknown_field',
    ],
    [
      'a subject with a line break',
      '/api/v1/newsletters/daily/sends',
      { subject: 'a\r\nBcc: x@y.z' },
      400,
      'invalid_request',
    ],
    [
      'article ids that are not numbers',
      '/api/v1/newsletters/daily/sends',
      { articleIds: ['x'] },
      400,
      'invalid_request',
    ],
    [
      'an unknown article',
      '/api/v1/newsletters/daily/sends',
      { articleIds: [99999] },
      422,
      'article_not_found',
    ],
    ['an unknown newsletter', '/api/v1/newsletters/nope/sends', {}, 404, 'newsletter_not_found'],
    [
      'a newsletter with nothing to send',
      '/api/v1/newsletters/sport/sends',
      {},
      422,
      'nothing_to_send',
    ],
  ])('refuses %s and stores no send', async (_label, path, body, status, code) => {
    const before = await countSends();
    const res = await request(t.app).post(path).set(editor()).send(body);
    expect(res.status).toBe(status);
    expect(res.body.error.code).toBe(code);
    expect(res.body.error.message).toEqual(expect.any(String));
    expect(await countSends()).toBe(before);
  });

  it('refuses a bad Idempotency-Key, bad ids, bad test addresses and bad paging', async () => {
    const key = await request(t.app)
      .post('/api/v1/newsletters/daily/sends')
      .set(editor())
      .set('Idempotency-Key', 'has spaces in it')
      .send({});
    expect(key.status).toBe(400);
    expect(key.body.error.message).toContain('idempotency-key');
    expect((await request(t.app).get('/api/v1/sends/abc').set(editor())).status).toBe(400);
    const missing = await request(t.app).get('/api/v1/sends/424242').set(editor());
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe('send_not_found');
    const test = await request(t.app)
      .post(`/api/v1/sends/${sendId}/test`)
      .set(editor())
      .send({ emails: ['not an address'] });
    expect(test.status).toBe(400);
    const many = await request(t.app)
      .post(`/api/v1/sends/${sendId}/test`)
      .set(editor())
      .send({ emails: Array.from({ length: 11 }, (_, i) => `e${i}@news.test`) });
    expect(many.status).toBe(400);
    const page = await request(t.app)
      .get(`/api/v1/sends/${sendId}/deliveries?status=lost&limit=0`)
      .set(editor());
    expect(page.status).toBe(400);
    const extra = await request(t.app)
      .post(`/api/v1/sends/${sendId}/pause`)
      .set(editor())
      .send({ now: true });
    expect(extra.status).toBe(400);
    expect((await request(t.app).get(`/api/v1/sends/${sendId}`)).status).toBe(401);
  });
});
