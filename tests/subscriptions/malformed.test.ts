import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/test-app.ts';

let t: TestApp;

beforeAll(async () => {
  t = await createTestApp();
});
afterAll(() => t.close());

const FORM = 'application/x-www-form-urlencoded';

describe('malformed requests get a clear 4xx, never a 500', () => {
  const cases: [string, () => request.Test, number, string?][] = [
    [
      'broken gzip JSON',
      () =>
        request(t.app)
          .post('/api/v1/subscriptions')
          .set('Content-Type', 'application/json')
          .set('Content-Encoding', 'gzip')
          .send('not gzip'),
      400,
      'unreadable_body',
    ],
    [
      'broken gzip form',
      () =>
        request(t.app)
          .post('/api/v1/subscriptions')
          .set('Content-Type', FORM)
          .set('Content-Encoding', 'gzip')
          .send('not gzip'),
      400,
      'unreadable_body',
    ],
    [
      'unknown encoding',
      () =>
        request(t.app)
          .post('/api/v1/subscriptions')
          .set('Content-Type', FORM)
          .set('Content-Encoding', 'zstd')
          .send('a=1'),
      415,
      'unsupported_encoding',
    ],
    [
      'unknown charset',
      () =>
        request(t.app)
          .post('/api/v1/subscriptions')
          .set('Content-Type', `${FORM}; charset=koi8-r`)
          .send('a=1'),
      415,
      'unsupported_encoding',
    ],
    [
      'multipart to the subscribe API',
      () => request(t.app).post('/api/v1/subscriptions').field('email', 'a@example.com'),
      415,
      'unsupported_media_type',
    ],
    [
      'a JSON array',
      () => request(t.app).post('/api/v1/subscriptions').send([1, 2]),
      400,
      'invalid_request',
    ],
    [
      '__proto__ in JSON',
      () =>
        request(t.app)
          .post('/api/v1/subscriptions')
          .type('json')
          .send('{"__proto__":{"x":1},"email":"a@example.com","newsletters":["a"]}'),
      400,
      'unknown_field',
    ],
    [
      'bad percent-encoding in a form',
      () =>
        request(t.app)
          .post('/api/v1/subscriptions')
          .type('form')
          .send('email=%E0%A4%A&newsletters=x'),
      400,
    ],
    [
      'a javascript: redirect',
      () =>
        request(t.app)
          .post('/api/v1/subscriptions')
          .type('form')
          .send('email=a@example.com&newsletters=a&redirect=javascript:alert(1)'),
      400,
    ],
    [
      'broken gzip on a page',
      () =>
        request(t.app)
          .post('/unsubscribe/x.y')
          .set('Content-Type', FORM)
          .set('Content-Encoding', 'gzip')
          .send('not gzip'),
      400,
    ],
    [
      'a cut multipart body',
      () =>
        request(t.app)
          .post('/unsubscribe/x.y')
          .set('Content-Type', 'multipart/form-data; boundary=zz')
          .send('--zz\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--z'),
      400,
    ],
    [
      'multipart without a boundary',
      () =>
        request(t.app)
          .post('/preferences/x.y')
          .set('Content-Type', 'multipart/form-data')
          .send('x'),
      400,
    ],
    [
      'a file where none is expected',
      () => request(t.app).post('/confirm/x.y').attach('file', Buffer.from('x'), 'x.txt'),
      400,
    ],
    ['a 9000-character token', () => request(t.app).get(`/confirm/${'a'.repeat(9000)}`), 400],
    ['a broken percent sign in a token', () => request(t.app).get('/unsubscribe/%ZZ'), 400],
    [
      'a repeated cursor',
      () =>
        request(t.app)
          .get('/api/v1/newsletters/x/subscribers?cursor=a&cursor=b')
          .set('Authorization', `Bearer ${t.adminToken}`),
      400,
      'invalid_request',
    ],
  ];
  for (const [name, send, status, code] of cases) {
    it(name, async () => {
      const answer = await send();
      expect(answer.status).toBe(status);
      if (code) expect(answer.body.error.code).toBe(code);
      else expect(answer.type).toBe('text/html');
    });
  }
});
