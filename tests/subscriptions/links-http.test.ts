import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { loadConfig } from '../../src/config.ts';
import { createApp } from '../../src/http/app.ts';
import { createLogger } from '../../src/log.ts';
import { confirmLink, readerLinks } from '../../src/subscriptions/links.ts';
import { signToken } from '../../src/subscriptions/tokens.ts';
import { TEST_SECRET } from '../helpers/test-app.ts';
import { createReaderFixture, linkIn, type ReaderFixture } from './reader-fixture.ts';

let t: ReaderFixture;
let subscriberId: number;
let newsletterId: number;
let confirmPath: string;

beforeAll(async () => {
  t = await createReaderFixture();
  await t.newsletter('morning-briefing', 'Morning Briefing');
  await t.subscribe({ email: 'links@example.com', newsletters: ['morning-briefing'] }).expect(202);
  const [mail] = await t.deliver();
  confirmPath = linkIn(mail!, 'confirm');
  const row = await t.database.db
    .selectFrom('subscriptions')
    .select(['subscriber_id', 'newsletter_id'])
    .executeTakeFirstOrThrow();
  subscriberId = row.subscriber_id;
  newsletterId = row.newsletter_id;
});
afterAll(() => t.close());

/** Everything a link could change. */
async function state() {
  const db = t.database.db;
  return {
    subscriptions: await db
      .selectFrom('subscriptions')
      .selectAll()
      .orderBy('newsletter_id')
      .execute(),
    consent: await db.selectFrom('consent_events').select('id').execute(),
    outbox: await db.selectFrom('outbox').select('id').execute(),
  };
}

const pathOf = (url: string) => url.replace('http://news.test', '');
const configEnvironment = () => ({
  NODE_ENV: 'test',
  DATA_DIR: t.config.dataDir,
  PUBLIC_URL: 'http://news.test',
  MAIL_FROM: 'The Newsroom <newsletters@news.test>',
  LOG_LEVEL: 'silent',
});

describe('links in mail', () => {
  it('refuses a confirmation token with any character changed, and changes nothing', async () => {
    const before = await state();
    const token = confirmPath.replace('/confirm/', '');
    for (let index = 0; index < token.length; index++) {
      const replacement = token[index] === 'A' ? 'B' : 'A';
      const altered = token.slice(0, index) + replacement + token.slice(index + 1);
      const answer = await request(t.app).post(`/confirm/${altered}`);
      expect(answer.status, altered).toBe(400);
      expect(answer.type).toBe('text/html');
      expect(answer.text).toContain('This link does not work');
    }
    expect(await state()).toEqual(before);
  });

  it('refuses a token made for another purpose', async () => {
    const { unsubscribeUrl, preferencesUrl } = readerLinks(t.config, {
      subscriberId,
      newsletterId,
    });
    const unsubscribeToken = pathOf(unsubscribeUrl).replace('/unsubscribe/', '');
    const confirmToken = confirmPath.replace('/confirm/', '');
    const before = await state();
    await request(t.app).post(`/confirm/${unsubscribeToken}`).expect(400);
    await request(t.app).post(`/unsubscribe/${confirmToken}`).expect(400);
    await request(t.app)
      .post(`/unsubscribe/${pathOf(preferencesUrl).replace('/preferences/', '')}`)
      .type('form')
      .send('List-Unsubscribe=One-Click')
      .expect(400);
    await request(t.app).post(`/preferences/${confirmToken}`).expect(400);
    expect(await state()).toEqual(before);
  });

  it('refuses a token signed with another secret, and accepts one signed with a previous secret', async () => {
    const forged = signToken('x'.repeat(40), {
      purpose: 'unsubscribe',
      subscriberId,
      newsletterIds: [newsletterId],
    });
    await request(t.app).get(`/unsubscribe/${forged}`).expect(400);
    // After rotation (new SECRET, old one in PREVIOUS_SECRETS) links already in inboxes still work.
    const rotated = createApp({
      db: t.database.db,
      config: loadConfig({
        ...configEnvironment(),
        SECRET: 'n'.repeat(40),
        PREVIOUS_SECRETS: TEST_SECRET,
      }),
      logger: createLogger('silent'),
      metrics: new Registry(),
    });
    const { unsubscribeUrl } = readerLinks(t.config, { subscriberId, newsletterId });
    const page = await request(rotated).get(pathOf(unsubscribeUrl));
    expect(page.status).toBe(200);
    expect(page.text).toContain('Unsubscribe from Morning Briefing');
    await request(rotated).get(`/unsubscribe/${forged}`).expect(400);
  });

  it('never changes anything on GET', async () => {
    const links = readerLinks(t.config, { subscriberId, newsletterId });
    const before = await state();
    for (const path of [confirmPath, pathOf(links.unsubscribeUrl), pathOf(links.preferencesUrl)]) {
      const answer = await request(t.app).get(path);
      expect(answer.status, path).toBe(200);
      expect(answer.text).toContain('<form method="post"');
    }
    await request(t.app).get(`${confirmPath}?resend=1`).expect(200);
    expect(await state()).toEqual(before);
  });

  it('offers a new link for an expired confirmation link, within the daily cap', async () => {
    const expired = pathOf(
      confirmLink(t.config, {
        subscriberId,
        newsletterIds: [newsletterId],
        expiresAt: new Date(Date.now() - 60_000),
      }),
    );
    const before = await state();
    const page = await request(t.app).get(expired);
    expect(page.status).toBe(410);
    expect(page.text).toContain('This link has expired');
    expect(page.text).toContain('Send me a new link');
    const pressed = await request(t.app).post(expired);
    expect(pressed.status).toBe(410);
    expect(await state()).toEqual(before);

    const resent = await request(t.app).post(expired).type('form').send('resend=1');
    expect(resent.status).toBe(200);
    expect(resent.text).toContain('Check your inbox');
    const mails = await t.deliver();
    expect(mails).toHaveLength(2);
    // The daily cap (3 by default) counts the first mail and the new links alike.
    for (let press = 0; press < 2; press++) {
      await request(t.app).post(expired).type('form').send('resend=1').expect(200);
    }
    expect(await t.deliver()).toHaveLength(3);
    const fresh = linkIn(mails[1]!, 'confirm');
    expect(fresh).not.toBe(expired);
    await request(t.app).post(fresh).expect(200);
    expect((await state()).subscriptions[0]!.status).toBe('confirmed');
  });

  it('answers a junk token with a 400 page, never a 500', async () => {
    for (const junk of [
      'x',
      'a.b',
      '%00',
      '..',
      'a'.repeat(2000),
      encodeURIComponent('<script>'),
    ]) {
      for (const kind of ['confirm', 'unsubscribe', 'preferences']) {
        const answer = await request(t.app).get(`/${kind}/${junk}`);
        expect(answer.status, `${kind}/${junk}`).toBe(400);
        expect(answer.text).not.toContain('<script>');
      }
    }
  });

  it('answers an unreadable form post with a 400 page', async () => {
    const { unsubscribeUrl } = readerLinks(t.config, { subscriberId, newsletterId });
    const answer = await request(t.app)
      .post(pathOf(unsubscribeUrl))
      .attach('file', Buffer.from('x'), 'x.txt');
    expect(answer.status).toBe(400);
    expect(answer.type).toBe('text/html');
  });
});
