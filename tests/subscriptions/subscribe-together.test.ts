import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createReaderFixture, linkIn, type ReaderFixture } from './reader-fixture.ts';

// Readers who press subscribe at the same moment share one statement (src/db/group-commit.ts);
// each must still be counted, answered and mailed as if they had come alone.
let t: ReaderFixture;

beforeAll(async () => {
  t = await createReaderFixture({ SUBSCRIBE_LIMIT_PER_IP: '5' });
  await t.newsletter('morning-briefing', 'Morning Briefing');
  await t.newsletter('weekly-explainer', 'The Weekly Explainer');
});
afterAll(() => t.close());

describe('subscribe requests of the same moment', () => {
  it('count one network exactly: its first five readers are accepted, the rest refused', async () => {
    const answers = await Promise.all(
      Array.from({ length: 12 }, (_, n) =>
        t.subscribe(
          { email: `neighbour${n}@example.com`, newsletters: ['morning-briefing'] },
          '198.51.100.9',
        ),
      ),
    );
    const statuses = answers.map((answer) => answer.status).sort();
    expect(statuses).toEqual([...Array(5).fill(202), ...Array(7).fill(429)]);
    for (const answer of answers.filter((answer) => answer.status === 429)) {
      expect(answer.body.error.code).toBe('rate_limited');
    }

    const accepted = answers
      .map((answer, n) => ({ answer, email: `neighbour${n}@example.com` }))
      .filter(({ answer }) => answer.status === 202)
      .map(({ email }) => email)
      .sort();
    const stored = await t.database.db
      .selectFrom('subscribers')
      .select('email_normalized')
      .where('email_normalized', 'like', 'neighbour%')
      .orderBy('email_normalized')
      .execute();
    expect(stored.map((row) => row.email_normalized)).toEqual(accepted);

    const mails = await t.deliver();
    expect(mails.map((mail) => mail.envelope.to[0]).sort()).toEqual(accepted);
  });

  it('gives each reader a link of their own that confirms only them', async () => {
    const readers = ['ann', 'bob', 'cat', 'dan'].map((name) => `${name}@together.example`);
    const before = (await t.deliver()).length;
    const answers = await Promise.all(
      readers.map((email, n) =>
        t.subscribe(
          { email, newsletters: ['morning-briefing', 'weekly-explainer'] },
          `203.0.113.${20 + n}`,
        ),
      ),
    );
    expect(answers.map((answer) => answer.status)).toEqual([202, 202, 202, 202]);
    const mails = (await t.deliver()).slice(before);
    expect(mails).toHaveLength(4);

    const bob = mails.find((mail) => mail.envelope.to[0] === 'bob@together.example')!;
    await request(t.app).post(linkIn(bob, 'confirm')).type('form').send({}).expect(200);
    const states = await t.database.db
      .selectFrom('subscriptions')
      .innerJoin('subscribers', 'subscribers.id', 'subscriptions.subscriber_id')
      .select(['subscribers.email_normalized as email', 'subscriptions.status'])
      .where('subscribers.email_normalized', 'like', '%@together.example')
      .orderBy('subscribers.email_normalized')
      .orderBy('subscriptions.newsletter_id')
      .execute();
    expect(states).toEqual(
      readers.flatMap((email) => {
        const status = email.startsWith('bob') ? 'confirmed' : 'pending';
        return [
          { email, status },
          { email, status },
        ];
      }),
    );
  });
});
