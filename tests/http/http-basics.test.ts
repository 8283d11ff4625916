import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/test-app.ts';

let t: TestApp;
const admin = () => ({ Authorization: `Bearer ${t.adminToken}` });

beforeAll(async () => {
  t = await createTestApp();
});
afterAll(() => t.close());

describe('HTTP basics', () => {
  it('answers malformed JSON with 400 invalid_json', async () => {
    const res = await request(t.app)
      .post('/api/v1/newsletters')
      .set(admin())
      .set('Content-Type', 'application/json')
      .send('{"slug": "x",');
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ code: 'invalid_json', message: expect.any(String) });
  });

  it('answers a wrong content type with 415', async () => {
    const res = await request(t.app)
      .post('/api/v1/newsletters')
      .set(admin())
      .set('Content-Type', 'text/plain')
      .send('slug=x');
    expect(res.status).toBe(415);
    expect(res.body.error.code).toBe('unsupported_media_type');
  });

  it('answers a 10 MB body with 413 and stores nothing', async () => {
    const res = await request(t.app)
      .post('/api/v1/newsletters')
      .set(admin())
      .send({ slug: 'big', name: 'x', description: 'a'.repeat(10 * 1024 * 1024) });
    expect(res.status).toBe(413);
    expect(res.body.error.code).toBe('body_too_large');
    expect(await t.database.db.selectFrom('newsletters').selectAll().execute()).toEqual([]);
  });

  it('answers an unknown route with a JSON 404', async () => {
    const res = await request(t.app).get('/api/v1/nothing-here');
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe('not_found');
  });

  it('serves health, readiness and metrics', async () => {
    expect((await request(t.app).get('/healthz')).body).toEqual({ status: 'ok' });
    const ready = await request(t.app).get('/readyz');
    expect(ready.status).toBe(200);
    expect(ready.body.database).toBe('reachable');
    await request(t.app).get('/healthz');
    const metrics = await request(t.app).get('/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.text).toContain('http_request_duration_seconds');
  });

  it('sets security headers and a request id', async () => {
    const res = await request(t.app).get('/healthz').set('x-request-id', 'abc-123');
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['x-request-id']).toBe('abc-123');
    expect(res.headers['x-powered-by']).toBeUndefined();
  });

  it('gives JSON answers the API headers and anything a browser renders the page headers', async () => {
    const json = await request(t.app)
      .post('/api/v1/subscriptions')
      .send({ email: 'ann@example.com', newsletters: ['nope'] });
    expect(json.status).toBe(400);
    expect(json.headers['content-type']).toMatch(/^application\/json/);
    expect(json.headers['x-content-type-options']).toBe('nosniff');
    expect(json.headers['content-security-policy']).toBe(
      "default-src 'none';frame-ancestors 'none'",
    );
    expect(json.headers['strict-transport-security']).toMatch(/^max-age=\d+/);
    expect(json.headers['x-frame-options']).toBeUndefined();

    const form = await request(t.app)
      .post('/api/v1/subscriptions')
      .type('form')
      .send('email=ann%40example.com&newsletters=nope');
    const page = await request(t.app).get('/');
    for (const res of [form, page]) {
      expect(res.headers['content-type']).toMatch(/^text\/html/);
      expect(res.headers['content-security-policy']).toContain(
        "style-src 'self' https: 'unsafe-inline'",
      );
      expect(res.headers['x-frame-options']).toBe('SAMEORIGIN');
      expect(res.headers['x-content-type-options']).toBe('nosniff');
    }
  });

  it('publishes an OpenAPI document generated from the request schemas', async () => {
    const res = await request(t.app).get('/api/v1/openapi.json');
    expect(res.status).toBe(200);
    expect(res.body.openapi).toMatch(/^3\./);
    const create = res.body.paths['/api/v1/newsletters'].post;
    expect(create.requestBody.content['application/json'].schema.$ref).toBe(
      '#/components/schemas/NewNewsletter',
    );
    expect(res.body.components.schemas.NewNewsletter.required).toEqual(['slug', 'name']);
  });
});

describe('bodies that cannot be read', () => {
  it('answers a broken gzip body with 400 and stores nothing', async () => {
    const res = await request(t.app)
      .post('/api/v1/newsletters')
      .set(admin())
      .set('Content-Type', 'application/json')
      .set('Content-Encoding', 'gzip')
      .send(Buffer.from('this is not gzip at all'));
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('invalid_body');
    expect(await t.database.db.selectFrom('newsletters').selectAll().execute()).toEqual([]);
  });
});
