import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readerLinks } from '../../src/subscriptions/links.ts';
import { createTestApp, type TestApp } from '../helpers/test-app.ts';

let t: TestApp;
const admin = () => ({ Authorization: `Bearer ${t.adminToken}` });

beforeAll(async () => {
  t = await createTestApp();
  await request(t.app)
    .post('/api/v1/newsletters')
    .set(admin())
    .send({
      slug: 'tricky',
      name: 'Tom & Jerry <script>alert(1)</script>',
      description: '"quoted" <b>bold</b>',
    })
    .expect(201);
  await request(t.app)
    .post('/api/v1/newsletters')
    .set(admin())
    .send({ slug: 'gone', name: 'Gone Weekly' })
    .expect(201);
  await request(t.app).delete('/api/v1/newsletters/gone').set(admin()).expect(200);
});
afterAll(() => t.close());

describe('reader pages', () => {
  it('serves the demo page with the form for active newsletters, escaped, without script', async () => {
    const page = await request(t.app).get('/');
    expect(page.status).toBe(200);
    expect(page.type).toBe('text/html');
    expect(page.text).toContain(
      '<meta name="viewport" content="width=device-width, initial-scale=1">',
    );
    expect(page.text).toContain('<form method="post" action="/api/v1/subscriptions"');
    expect(page.text).toContain('Tom &amp; Jerry &lt;script&gt;alert(1)&lt;/script&gt;');
    expect(page.text).toContain('&#34;quoted&#34; &lt;b&gt;bold&lt;/b&gt;');
    expect(page.text).not.toContain('<script');
    expect(page.text).not.toContain('Gone Weekly');
    expect(page.text).toContain('name="website"');
  });

  it('echoes a typed address back escaped on an invalid form post', async () => {
    const page = await request(t.app)
      .post('/api/v1/subscriptions')
      .type('form')
      .send({ email: '"><script>alert(1)</script>@x', newsletters: 'tricky' });
    expect(page.status).toBe(400);
    expect(page.text).not.toContain('<script>alert(1)');
    expect(page.text).toContain('value="&#34;&gt;&lt;script&gt;');
  });

  it('answers a form post without a newsletter with the form and a message', async () => {
    const page = await request(t.app)
      .post('/api/v1/subscriptions')
      .type('form')
      .send({ email: 'a@example.com' });
    expect(page.status).toBe(400);
    expect(page.text).toContain('Please choose at least one newsletter.');
  });

  it('shows an HTML page for a broken link', async () => {
    const page = await request(t.app).get('/preferences/broken.link');
    expect(page.status).toBe(400);
    expect(page.type).toBe('text/html');
    expect(page.text).toContain('This link does not work');
    expect(page.text).toContain('Please copy the whole link from the email');
  });

  it('lists active newsletters on the preferences page and refuses an archived one', async () => {
    const subscriber = await t.database.db
      .insertInto('subscribers')
      .values({ email: 'pref@example.com', email_normalized: 'pref@example.com' })
      .returning('id')
      .executeTakeFirstOrThrow();
    const tricky = await t.database.db
      .selectFrom('newsletters')
      .select('id')
      .where('slug', '=', 'tricky')
      .executeTakeFirstOrThrow();
    const path = readerLinks(t.config, {
      subscriberId: subscriber.id,
      newsletterId: tricky.id,
    }).preferencesUrl.replace('http://news.test', '');
    const page = await request(t.app).get(path);
    expect(page.status).toBe(200);
    expect(page.text).toContain('value="tricky"');
    expect(page.text).not.toContain('value="gone"');
    const refused = await request(t.app)
      .post(path)
      .type('form')
      .send('newsletters=gone&submitted=1');
    expect(refused.status).toBe(400);
    expect(refused.text).toContain('there is no newsletter to subscribe to called &#34;gone&#34;');
    const rows = await t.database.db.selectFrom('subscriptions').selectAll().execute();
    expect(rows).toEqual([]);
  });
});

describe('demo page switch', () => {
  it('serves no page at / when DEMO_PAGE=false', async () => {
    const off = await createTestApp({ DEMO_PAGE: 'false' });
    try {
      const answer = await request(off.app).get('/');
      expect(answer.status).toBe(404);
    } finally {
      await off.close();
    }
  });
});
