import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createReaderFixture, linkIn, type ReaderFixture } from './reader-fixture.ts';

let t: ReaderFixture;
const editor = () => ({ Authorization: `Bearer ${t.editorToken}` });

beforeAll(async () => {
  t = await createReaderFixture();
  await t.newsletter('morning-briefing', 'Morning Briefing', { description: 'The day ahead' });
  await t.newsletter('weekly-explainer', 'The Weekly Explainer');
});
afterAll(() => t.close());

async function subscriptionsOf(email: string) {
  return t.database.db
    .selectFrom('subscriptions')
    .innerJoin('subscribers', 'subscribers.id', 'subscriptions.subscriber_id')
    .innerJoin('newsletters', 'newsletters.id', 'subscriptions.newsletter_id')
    .select(['newsletters.slug', 'subscriptions.status'])
    .where('subscribers.email_normalized', '=', email)
    .orderBy('newsletters.slug')
    .execute();
}

async function consentOf(email: string) {
  return t.database.db
    .selectFrom('consent_events')
    .innerJoin('subscribers', 'subscribers.id', 'consent_events.subscriber_id')
    .leftJoin('newsletters', 'newsletters.id', 'consent_events.newsletter_id')
    .select([
      'newsletters.slug',
      'consent_events.action',
      'consent_events.ip',
      'consent_events.user_agent',
      'consent_events.source',
      'consent_events.consent_text_version',
    ])
    .where('subscribers.email_normalized', '=', email)
    .orderBy('consent_events.id')
    .execute();
}

describe('the reader journey, through a real SMTP listener', () => {
  let confirmPath = '';
  let unsubscribePath = '';
  let preferencesPath = '';

  it('accepts a subscription to two newsletters and queues one confirmation mail', async () => {
    const answer = await t
      .subscribe({
        email: 'Ann.Reader@Example.COM',
        newsletters: ['morning-briefing', 'weekly-explainer'],
        source: 'https://news.test/politics/article-1',
      })
      .set('User-Agent', 'journey-test');
    expect(answer.status).toBe(202);
    expect(answer.body).toEqual({
      message: "thank you: we've sent you a confirmation email; please click the link in it",
    });
    expect(await subscriptionsOf('ann.reader@example.com')).toEqual([
      { slug: 'morning-briefing', status: 'pending' },
      { slug: 'weekly-explainer', status: 'pending' },
    ]);
    const consent = await consentOf('ann.reader@example.com');
    expect(consent).toHaveLength(2);
    expect(consent[0]).toMatchObject({
      action: 'requested',
      ip: '203.0.113.7',
      user_agent: 'journey-test',
      source: 'https://news.test/politics/article-1',
      consent_text_version: '1',
    });
    const outbox = await t.database.db.selectFrom('outbox').selectAll().execute();
    expect(outbox).toHaveLength(1);
    expect(outbox[0]).toMatchObject({ kind: 'confirmation', status: 'queued' });
  });

  it('delivers the confirmation mail with HTML, text and the link', async () => {
    const [mail] = await t.deliver();
    expect(mail!.envelope.to).toEqual(['Ann.Reader@example.com']);
    expect(mail!.parsed.subject).toBe('Please confirm your subscription to 2 newsletters');
    expect(mail!.parsed.from?.value[0]).toMatchObject({
      name: 'The Newsroom',
      address: 'newsletters@news.test',
    });
    expect(mail!.parsed.messageId).toMatch(/@news\.test>?$/);
    const to = mail!.parsed.to;
    expect(to && !Array.isArray(to) && to.text).toBe('Ann.Reader@example.com');
    expect(mail!.parsed.date?.getTime()).toBeGreaterThan(Date.now() - 60_000);
    // A confirmation is not newsletter mail: no unsubscribe headers, not bulk.
    expect(mail!.parsed.headers.get('auto-submitted')).toBe('auto-generated');
    const headerNames = mail!.parsed.headerLines.map((line) => line.key);
    expect(mail!.parsed.headerLines.find((line) => line.key === 'list-id')?.line).toBe(
      'List-Id: <confirmations.news.test>',
    );
    for (const name of ['list-unsubscribe', 'list-unsubscribe-post', 'precedence']) {
      expect(headerNames).not.toContain(name);
    }
    expect(mail!.parsed.text).toContain('- Morning Briefing: The day ahead');
    expect(mail!.parsed.text).toContain('- The Weekly Explainer');
    expect(mail!.parsed.html).toContain('Yes, subscribe me');
    confirmPath = linkIn(mail!, 'confirm');
    expect(mail!.parsed.html).toContain(`http://news.test${confirmPath}`);
  });

  it('shows a page with a button on GET and changes nothing', async () => {
    const page = await request(t.app).get(confirmPath);
    expect(page.status).toBe(200);
    expect(page.type).toBe('text/html');
    expect(page.text).toContain('Confirm my subscription');
    expect(page.text).toContain(`action="${confirmPath}"`);
    expect(page.headers['cache-control']).toBe('no-store');
    expect((await subscriptionsOf('ann.reader@example.com')).map((s) => s.status)).toEqual([
      'pending',
      'pending',
    ]);
  });

  it('confirms both newsletters on POST and records who confirmed', async () => {
    const page = await request(t.app)
      .post(confirmPath)
      .set('X-Forwarded-For', '198.51.100.4')
      .set('User-Agent', 'reader-browser');
    expect(page.status).toBe(200);
    expect(page.text).toContain('You are subscribed');
    expect((await subscriptionsOf('ann.reader@example.com')).map((s) => s.status)).toEqual([
      'confirmed',
      'confirmed',
    ]);
    const confirmed = (await consentOf('ann.reader@example.com')).filter(
      (event) => event.action === 'confirmed',
    );
    expect(confirmed).toHaveLength(2);
    expect(confirmed[0]).toMatchObject({ ip: '198.51.100.4', user_agent: 'reader-browser' });
    const row = await t.database.db
      .selectFrom('subscriptions')
      .select('confirmed_at')
      .where('status', '=', 'confirmed')
      .executeTakeFirstOrThrow();
    expect(row.confirmed_at).toBeInstanceOf(Date);
  });

  it('sends a welcome mail per newsletter with RFC 8058 headers and reader links', async () => {
    const messages = await t.deliver();
    const welcomes = messages.slice(1);
    expect(welcomes.map((mail) => mail.parsed.subject).sort()).toEqual([
      'Welcome to Morning Briefing',
      'Welcome to The Weekly Explainer',
    ]);
    const morning = welcomes.find((mail) => mail.parsed.subject?.includes('Morning'))!;
    expect(morning.raw.toString()).toMatch(
      /^List-Unsubscribe-Post: List-Unsubscribe=One-Click\r?$/m,
    );
    unsubscribePath = linkIn(morning, 'unsubscribe');
    preferencesPath = linkIn(morning, 'preferences');
    const headers = morning.raw
      .toString()
      .split(/\r?\n\r?\n/)[0]!
      .replace(/\r?\n\s+/g, ' ');
    expect(headers).toContain(`List-Unsubscribe: <http://news.test${unsubscribePath}>`);
    expect(headers).toMatch(/^List-ID: Morning Briefing <morning-briefing\.news\.test>$/im);
    expect(morning.parsed.html).toContain(`http://news.test${unsubscribePath}`);
  });

  it('says "already confirmed" on a second use of the confirmation link', async () => {
    const page = await request(t.app).post(confirmPath);
    expect(page.status).toBe(200);
    expect(page.text).toContain('Already confirmed');
    expect(await t.deliver()).toHaveLength(3);
  });

  it('shows the unsubscribe page on GET without unsubscribing', async () => {
    const page = await request(t.app).get(unsubscribePath);
    expect(page.status).toBe(200);
    expect(page.text).toContain('Unsubscribe from Morning Briefing');
    expect(page.text).toContain('Unsubscribe from all our newsletters');
    expect(page.text).toContain(preferencesPath);
    expect((await subscriptionsOf('ann.reader@example.com'))[0]!.status).toBe('confirmed');
  });

  it('unsubscribes with the RFC 8058 one-click POST: 200, no redirect, no cookie, idempotent', async () => {
    for (let attempt = 0; attempt < 2; attempt++) {
      const answer = await request(t.app)
        .post(unsubscribePath)
        .type('form')
        .send('List-Unsubscribe=One-Click');
      expect(answer.status).toBe(200);
      expect(answer.headers.location).toBeUndefined();
      expect(answer.headers['set-cookie']).toBeUndefined();
    }
    expect(await subscriptionsOf('ann.reader@example.com')).toEqual([
      { slug: 'morning-briefing', status: 'unsubscribed' },
      { slug: 'weekly-explainer', status: 'confirmed' },
    ]);
    const unsubscribed = (await consentOf('ann.reader@example.com')).filter(
      (event) => event.action === 'unsubscribed',
    );
    expect(unsubscribed).toEqual([
      expect.objectContaining({ slug: 'morning-briefing', source: 'one-click (RFC 8058)' }),
    ]);
  });

  it('lets the reader choose newsletters on the preferences page without a second confirmation', async () => {
    const page = await request(t.app).get(preferencesPath);
    expect(page.status).toBe(200);
    expect(page.text).toMatch(/value="weekly-explainer" checked/);
    expect(page.text).not.toMatch(/value="morning-briefing" checked/);

    const empty = await request(t.app).post(preferencesPath).type('form').send('');
    expect(empty.status).toBe(400);
    expect(empty.text).toContain('The form arrived incomplete, so nothing was changed');
    expect(empty.text).toMatch(/value="weekly-explainer" checked/);
    expect(await subscriptionsOf('ann.reader@example.com')).toEqual([
      { slug: 'morning-briefing', status: 'unsubscribed' },
      { slug: 'weekly-explainer', status: 'confirmed' },
    ]);

    const saved = await request(t.app)
      .post(preferencesPath)
      .type('form')
      .send('newsletters=morning-briefing&submitted=1');
    expect(saved.status).toBe(200);
    expect(saved.text).toContain('Your choices are saved');
    expect(await subscriptionsOf('ann.reader@example.com')).toEqual([
      { slug: 'morning-briefing', status: 'confirmed' },
      { slug: 'weekly-explainer', status: 'unsubscribed' },
    ]);
    const events = (await consentOf('ann.reader@example.com')).slice(-3);
    expect(events.map((event) => `${event.slug}:${event.action}:${event.source}`)).toEqual([
      'morning-briefing:requested:preferences',
      'morning-briefing:confirmed:preferences',
      'weekly-explainer:unsubscribed:preferences',
    ]);
  });

  it('unsubscribes from everything with a multipart form post', async () => {
    const answer = await request(t.app).post(unsubscribePath).field('scope', 'all');
    expect(answer.status).toBe(200);
    expect(answer.text).toContain('You are unsubscribed');
    expect((await subscriptionsOf('ann.reader@example.com')).map((s) => s.status)).toEqual([
      'unsubscribed',
      'unsubscribed',
    ]);
  });

  it('accepts the one-click POST as multipart/form-data', async () => {
    await request(t.app)
      .post(preferencesPath)
      .type('form')
      .send('newsletters=morning-briefing&submitted=1');
    const answer = await request(t.app)
      .post(unsubscribePath)
      .field('List-Unsubscribe', 'One-Click');
    expect(answer.status).toBe(200);
    expect((await subscriptionsOf('ann.reader@example.com'))[0]!.status).toBe('unsubscribed');
  });
});

describe('readers for editors', () => {
  it('pages through a newsletter’s readers by status with a cursor', async () => {
    for (let index = 0; index < 5; index++) {
      await t.subscribe({ email: `reader${index}@example.org`, newsletters: ['weekly-explainer'] });
    }
    const first = await request(t.app)
      .get('/api/v1/newsletters/weekly-explainer/subscribers?status=pending&limit=3')
      .set(editor());
    expect(first.status).toBe(200);
    expect(first.body.subscribers.map((s: { email: string }) => s.email)).toEqual([
      'reader0@example.org',
      'reader1@example.org',
      'reader2@example.org',
    ]);
    expect(first.body.subscribers[0]).toMatchObject({ status: 'pending', confirmedAt: null });
    const second = await request(t.app)
      .get(
        `/api/v1/newsletters/weekly-explainer/subscribers?status=pending&limit=3&cursor=${first.body.nextCursor}`,
      )
      .set(editor());
    expect(second.body.subscribers.map((s: { email: string }) => s.email)).toEqual([
      'reader3@example.org',
      'reader4@example.org',
    ]);
    expect(second.body.nextCursor).toBeNull();

    const counts = await request(t.app).get('/api/v1/newsletters/weekly-explainer').set(editor());
    expect(counts.body.subscribers).toEqual({ pending: 5, confirmed: 0, unsubscribed: 1 });
  });

  it('refuses readers without a token, a bad cursor and an unknown newsletter', async () => {
    await request(t.app).get('/api/v1/newsletters/weekly-explainer/subscribers').expect(401);
    const cursor = await request(t.app)
      .get('/api/v1/newsletters/weekly-explainer/subscribers?cursor=nonsense')
      .set(editor());
    expect(cursor.status).toBe(400);
    expect(cursor.body.error.code).toBe('invalid_cursor');
    const status = await request(t.app)
      .get('/api/v1/newsletters/weekly-explainer/subscribers?status=maybe')
      .set(editor());
    expect(status.status).toBe(400);
    const unknown = await request(t.app).get('/api/v1/newsletters/nope/subscribers').set(editor());
    expect(unknown.status).toBe(404);
  });
});
