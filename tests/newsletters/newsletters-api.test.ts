import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiToken, revokeApiToken } from '../../src/api-tokens/api-tokens.service.ts';
import { createTestApp, type TestApp } from '../helpers/test-app.ts';

let t: TestApp;
const admin = () => ({ Authorization: `Bearer ${t.adminToken}` });
const editor = () => ({ Authorization: `Bearer ${t.editorToken}` });

beforeAll(async () => {
  t = await createTestApp();
});
afterAll(() => t.close());

describe('newsletters API', () => {
  it('creates a newsletter with defaults from MAIL_FROM and reads it back with counts', async () => {
    const created = await request(t.app)
      .post('/api/v1/newsletters')
      .set(admin())
      .send({ slug: 'morning-briefing', name: 'Morning Briefing', description: 'The day ahead' });
    expect(created.status).toBe(201);
    expect(created.headers.location).toBe('/api/v1/newsletters/morning-briefing');
    expect(created.body).toMatchObject({
      slug: 'morning-briefing',
      name: 'Morning Briefing',
      description: 'The day ahead',
      fromName: 'The Newsroom',
      fromEmail: 'newsletters@news.test',
      replyTo: null,
      locale: 'en',
      status: 'active',
      subscribers: { pending: 0, confirmed: 0, unsubscribed: 0 },
    });
    expect(created.body).not.toHaveProperty('id');

    const read = await request(t.app).get('/api/v1/newsletters/morning-briefing').set(editor());
    expect(read.status).toBe(200);
    expect(read.body.name).toBe('Morning Briefing');
    const row = await t.database.db
      .selectFrom('newsletters')
      .selectAll()
      .where('slug', '=', 'morning-briefing')
      .executeTakeFirstOrThrow();
    expect(row.from_email).toBe('newsletters@news.test');
  });

  it('lists, updates and archives', async () => {
    await request(t.app)
      .post('/api/v1/newsletters')
      .set(admin())
      .send({ slug: 'weekly-explainer', name: 'Weekly' })
      .expect(201);
    const updated = await request(t.app)
      .patch('/api/v1/newsletters/weekly-explainer')
      .set(admin())
      .send({ name: 'The Weekly Explainer', replyTo: 'desk@news.test', locale: 'en-GB' });
    expect(updated.status).toBe(200);
    expect(updated.body).toMatchObject({
      name: 'The Weekly Explainer',
      replyTo: 'desk@news.test',
      locale: 'en-GB',
    });

    const archived = await request(t.app)
      .delete('/api/v1/newsletters/weekly-explainer')
      .set(admin());
    expect(archived.status).toBe(200);
    expect(archived.body.status).toBe('archived');

    const active = await request(t.app).get('/api/v1/newsletters?status=active').set(editor());
    expect(active.body.newsletters.map((n: { slug: string }) => n.slug)).not.toContain(
      'weekly-explainer',
    );
    const all = await request(t.app).get('/api/v1/newsletters').set(editor());
    expect(all.body.newsletters.map((n: { slug: string }) => n.slug)).toContain('weekly-explainer');
  });

  it('answers 409 on a duplicate slug and stores nothing twice', async () => {
    await request(t.app)
      .post('/api/v1/newsletters')
      .set(admin())
      .send({ slug: 'breaking', name: 'Breaking' })
      .expect(201);
    const again = await request(t.app)
      .post('/api/v1/newsletters')
      .set(admin())
      .send({ slug: 'breaking', name: 'Other' });
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe('slug_taken');
    const rows = await t.database.db
      .selectFrom('newsletters')
      .select('name')
      .where('slug', '=', 'breaking')
      .execute();
    expect(rows).toEqual([{ name: 'Breaking' }]);
  });

  it.each([
    ['a slug with spaces', { slug: 'morning news', name: 'x' }, 'invalid_request'],
    ['a slug with capitals', { slug: 'Morning', name: 'x' }, 'invalid_request'],
    ['a missing name', { slug: 'no-name' }, 'invalid_request'],
    ['an unknown field', { slug: 'extra', name: 'x', colour: 'red' }, 'unknown_field'],
    [
      'a bad from address',
      { slug: 'bad-from', name: 'x', fromEmail: 'not an address' },
      'invalid_request',
    ],
    [
      'a header injection in the from name',
      { slug: 'inject', name: 'x', fromName: 'Desk\r\nBcc: all@evil.test' },
      'invalid_request',
    ],
    ['the wrong shape', [1, 2, 3], 'invalid_request'],
  ])('refuses %s with 400 and stores nothing', async (_label, body, code) => {
    const before = await t.database.db.selectFrom('newsletters').select('slug').execute();
    const res = await request(t.app)
      .post('/api/v1/newsletters')
      .set(admin())
      .send(body as object);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe(code);
    expect(res.body.error.message).toEqual(expect.any(String));
    expect(await t.database.db.selectFrom('newsletters').select('slug').execute()).toEqual(before);
  });

  it('answers 404 for an unknown newsletter', async () => {
    const res = await request(t.app).get('/api/v1/newsletters/nope').set(editor());
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe('newsletter_not_found');
  });
});

describe('editor authentication', () => {
  it('refuses a missing, wrong or revoked token with 401', async () => {
    expect((await request(t.app).get('/api/v1/newsletters')).status).toBe(401);
    const wrong = await request(t.app)
      .get('/api/v1/newsletters')
      .set({ Authorization: 'Bearer bs_nope' });
    expect(wrong.status).toBe(401);
    expect(wrong.body.error.code).toBe('invalid_token');

    const { token, apiToken } = await createApiToken(t.database.db, {
      name: 'temp',
      role: 'editor',
    });
    expect(
      (
        await request(t.app)
          .get('/api/v1/newsletters')
          .set({ Authorization: `Bearer ${token}` })
      ).status,
    ).toBe(200);
    await revokeApiToken(t.database.db, apiToken.id);
    const revoked = await request(t.app)
      .get('/api/v1/newsletters')
      .set({ Authorization: `Bearer ${token}` });
    expect(revoked.status).toBe(401);
  });

  it('refuses an editor creating a newsletter with 403', async () => {
    const res = await request(t.app)
      .post('/api/v1/newsletters')
      .set(editor())
      .send({ slug: 'editors-pick', name: 'x' });
    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe('forbidden');
  });

  it('stores tokens hashed and records their last use', async () => {
    const { token, apiToken } = await createApiToken(t.database.db, {
      name: 'cms',
      role: 'editor',
    });
    await request(t.app)
      .get('/api/v1/newsletters')
      .set({ Authorization: `Bearer ${token}` })
      .expect(200);
    const row = await t.database.db
      .selectFrom('api_tokens')
      .selectAll()
      .where('id', '=', apiToken.id)
      .executeTakeFirstOrThrow();
    expect(row.token_hash).not.toContain(token);
    expect(row.token_hash).toMatch(/^[0-9a-f]{64}$/);
    expect(row.last_used_at).toBeInstanceOf(Date);
  });
});
