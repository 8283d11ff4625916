import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/test-app.ts';

let t: TestApp;

beforeAll(async () => {
  t = await createTestApp({ TRUST_PROXY: 'false', SUBSCRIBE_LIMIT_PER_IP: '2' });
  await request(t.app)
    .post('/api/v1/newsletters')
    .set('Authorization', `Bearer ${t.adminToken}`)
    .send({ slug: 'morning-briefing', name: 'Morning Briefing' })
    .expect(201);
});
afterAll(() => t.close());

describe('TRUST_PROXY', () => {
  it('ignores X-Forwarded-For from a peer it does not trust, so the header cannot dodge a limit', async () => {
    const post = (n: number) =>
      request(t.app)
        .post('/api/v1/subscriptions')
        .set('X-Forwarded-For', `198.51.100.${n}`)
        .send({ email: `reader${n}@example.com`, newsletters: ['morning-briefing'] });
    await post(1).expect(202);
    await post(2).expect(202);
    const third = await post(3);
    expect(third.status).toBe(429);
    expect(third.body.error.message).toContain('from your network');
    const recorded = await t.database.db
      .selectFrom('consent_events')
      .select('ip')
      .distinct()
      .execute();
    expect(recorded.map((row) => row.ip)).toEqual([expect.stringMatching(/127\.0\.0\.1$/)]);
  });
});
