import { sql, type KyselyPlugin } from 'kysely';
import { Registry } from 'prom-client';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { saveMailBody } from '../../src/delivery/outbox.repository.ts';
import { createApp } from '../../src/http/app.ts';
import { createLogger } from '../../src/log.ts';
import {
  requestSubscriptions,
  type SubscriptionRequest,
} from '../../src/subscriptions/subscriptions.repository.ts';
import { requestRules } from '../../src/subscriptions/subscriptions.service.ts';
import { confirmPayloadParts, signToken, verifyToken } from '../../src/subscriptions/tokens.ts';
import { createReaderFixture, linkIn, type ReaderFixture } from './reader-fixture.ts';

// The subscribe statement signs the confirmation link in SQL and drafts its mail from what it saw
// last; these tests hold it to what the TypeScript side would have done.
let t: ReaderFixture;

beforeAll(async () => {
  t = await createReaderFixture({ SUBSCRIBE_LIMIT_PER_IP: '1000' });
  await t.newsletter('morning-briefing', 'Morning Briefing');
  await t.newsletter('weekly-explainer', 'The Weekly Explainer');
});
afterAll(() => t.close());

function confirmations(to: string) {
  return t.smtp.messages.filter(
    (mail) => mail.envelope.to[0] === to && mail.parsed.subject?.startsWith('Please confirm'),
  );
}

/** What a draft is made of: the newsletter as stored and a stored confirmation body. */
async function draftParts(slug: string) {
  const newsletter = await t.database.db
    .selectFrom('newsletters')
    .select(['id', sql<string>`updated_at::text`.as('updatedAt')])
    .where('slug', '=', slug)
    .executeTakeFirstOrThrow();
  const bodyId = await saveMailBody(t.database.db, {
    from: 'The Newsroom <newsletters@news.test>',
    subject: 'Please confirm',
    html: '<a href="http://news.test/confirm/%%{token}%%">Yes</a>',
    text: 'http://news.test/confirm/%%{token}%%',
    headers: {},
  });
  return { newsletter, bodyId };
}

describe('the subscribe statement', () => {
  it('signs the confirmation link exactly as signToken does', async () => {
    await t
      .subscribe({
        email: 'signed@example.com',
        newsletters: ['weekly-explainer', 'morning-briefing'],
      })
      .expect(202);
    await t.deliver();
    const [mail] = confirmations('signed@example.com');
    const token = linkIn(mail!, 'confirm').split('/').at(-1)!;
    const check = verifyToken([t.config.secret!], token, 'confirm');
    expect(check.status).toBe('valid');
    if (check.status !== 'valid') return;
    const subscriber = await t.database.db
      .selectFrom('subscribers')
      .select('id')
      .where('email_normalized', '=', 'signed@example.com')
      .executeTakeFirstOrThrow();
    const ids = await t.database.db
      .selectFrom('newsletters')
      .select(['id', 'slug'])
      .where('slug', 'in', ['weekly-explainer', 'morning-briefing'])
      .execute();
    const idOf = (slug: string) => ids.find((row) => row.slug === slug)!.id;
    expect(check.claims).toMatchObject({
      subscriberId: subscriber.id,
      newsletterIds: [idOf('weekly-explainer'), idOf('morning-briefing')],
    });
    expect(token).toBe(signToken(t.config.secret!, check.claims));
    // The same link in the HTML part, escaped as any personalised value.
    expect(mail!.parsed.html).toContain(`/confirm/${token}`);
  });

  it('answers a reader confirmed on one of two newsletters after one statement, like anyone', async () => {
    // The number of statements would show in the answer's timing (no enumeration, invariant 4).
    let statements = 0;
    const counting: KyselyPlugin = {
      transformQuery: ({ node }) => {
        if (JSON.stringify(node).includes('request_subscriptions(')) statements++;
        return node;
      },
      transformResult: async ({ result }) => result,
    };
    const app = createApp({
      db: t.database.db.withPlugin(counting),
      config: t.config,
      logger: createLogger('silent'),
      metrics: new Registry(),
    });
    const both = ['morning-briefing', 'weekly-explainer'];
    const post = (email: string) =>
      request(app).post('/api/v1/subscriptions').send({ email, newsletters: both }).expect(202);
    // A new process drafts once more for newsletters it has not seen yet, whoever asks.
    await post('first@example.com');

    await t.subscribe({ email: 'half@example.com', newsletters: ['morning-briefing'] }).expect(202);
    await t.deliver();
    await request(t.app)
      .post(linkIn(confirmations('half@example.com')[0]!, 'confirm'))
      .expect(200);
    for (const email of ['new@example.com', 'half@example.com']) {
      statements = 0;
      await post(email);
      expect(statements, email).toBe(1);
    }

    await t.deliver();
    const second = confirmations('half@example.com')[1]!;
    expect(second.parsed.subject).toBe('Please confirm your subscription to 2 newsletters');
    expect(second.parsed.text).toContain('Morning Briefing');
    expect(second.parsed.text).toContain('The Weekly Explainer');
    const states = () =>
      t.database.db
        .selectFrom('subscriptions')
        .innerJoin('subscribers', 'subscribers.id', 'subscriptions.subscriber_id')
        .innerJoin('newsletters', 'newsletters.id', 'subscriptions.newsletter_id')
        .select(['newsletters.slug', 'subscriptions.status'])
        .where('subscribers.email_normalized', '=', 'half@example.com')
        .orderBy('newsletters.slug')
        .execute();
    expect(await states()).toEqual([
      { slug: 'morning-briefing', status: 'confirmed' },
      { slug: 'weekly-explainer', status: 'pending' },
    ]);
    const requested = await t.database.db
      .selectFrom('consent_events')
      .innerJoin('subscribers', 'subscribers.id', 'consent_events.subscriber_id')
      .innerJoin('newsletters', 'newsletters.id', 'consent_events.newsletter_id')
      .select('newsletters.slug')
      .where('subscribers.email_normalized', '=', 'half@example.com')
      .where('consent_events.action', '=', 'requested')
      .orderBy('consent_events.id')
      .execute();
    expect(requested.map((event) => event.slug)).toEqual(['morning-briefing', 'weekly-explainer']);

    await request(t.app).post(linkIn(second, 'confirm')).expect(200);
    expect(await states()).toEqual([
      { slug: 'morning-briefing', status: 'confirmed' },
      { slug: 'weekly-explainer', status: 'confirmed' },
    ]);
  });

  it('still serves an instance of the previous release during a rolling deploy', async () => {
    // That release sent no mailbox and no newsletters_known, and read `states` and the
    // newsletters of every request; migrations 009 and 010 kept all of it working.
    const { newsletter, bodyId } = await draftParts('weekly-explainer');
    const previousRelease = [
      {
        ord: 0,
        email: 'old.release@example.com',
        normalized: 'old.release@example.com',
        source: null,
        ip: null,
        user_agent: null,
        hit_keys: [],
        hit_most: [],
        slugs: ['weekly-explainer'],
        seen_ids: [newsletter.id],
        seen_updated_at: [newsletter.updatedAt],
        in_mail: [newsletter.id],
        body_id: bodyId,
        payload_after: confirmPayloadParts([newsletter.id], 2_000_000_000).after,
      },
    ];
    const rules = requestRules(t.config);
    const { rows } = await sql<{
      newsletters: { slug: string }[] | null;
      states: unknown[];
      recorded: boolean;
      cap_hits: number;
      token: string | null;
    }>`select * from request_subscriptions(
      ${JSON.stringify(previousRelease)}::jsonb, ${rules.hitWindowSeconds}::int,
      ${rules.consentTextVersion}::text, ${rules.capWindowSeconds}::int,
      ${rules.confirmationMailsPerDay}::int, ${rules.pads.outer}::bytea,
      ${rules.pads.inner}::bytea, ${rules.payloadBefore}::text)`.execute(t.database.db);
    expect(rows[0]).toMatchObject({
      newsletters: [{ slug: 'weekly-explainer' }],
      states: [],
      recorded: true,
      cap_hits: 1,
    });
    expect(rows[0]!.token).toMatch(/\./);
    const cap = await t.database.db
      .selectFrom('rate_limit_counters')
      .select('hits')
      .where('key', '=', 'confirmation-mail:old.release@example.com')
      .executeTakeFirst();
    expect(cap).toEqual({ hits: 1 });
  });

  it('sends the newsletters back only to a request whose draft no longer holds', async () => {
    const { newsletter, bodyId } = await draftParts('morning-briefing');
    const asking = (email: string, updatedAt: string): SubscriptionRequest => ({
      email,
      normalized: email,
      mailbox: email,
      slugs: ['morning-briefing'],
      source: null,
      ip: null,
      userAgent: null,
      hits: [],
      expected: [{ id: newsletter.id, updatedAt }],
      draft: {
        newsletterIds: [newsletter.id],
        bodyId,
        payloadAfter: confirmPayloadParts([newsletter.id], 2_000_000_000).after,
      },
    });
    const [current, stale] = await requestSubscriptions(
      t.database.db,
      [
        asking('current@example.com', newsletter.updatedAt),
        asking('stale@example.com', '2000-01-01 00:00:00+00'),
      ],
      requestRules(t.config),
    );
    expect(current).toMatchObject({ recorded: true, newsletters: undefined });
    expect(stale).toMatchObject({
      recorded: false,
      newsletters: [{ id: newsletter.id, slug: 'morning-briefing', name: 'Morning Briefing' }],
    });
  });

  it('mails nothing to a reader who has confirmed every newsletter asked for', async () => {
    await t.subscribe({ email: 'all@example.com', newsletters: ['morning-briefing'] }).expect(202);
    await t.deliver();
    await request(t.app)
      .post(linkIn(confirmations('all@example.com')[0]!, 'confirm'))
      .expect(200);
    await t.subscribe({ email: 'all@example.com', newsletters: ['morning-briefing'] }).expect(202);
    await t.deliver();
    expect(confirmations('all@example.com')).toHaveLength(1);
  });

  it('drafts from the newsletter as it is now after an editor changes it', async () => {
    await t
      .subscribe({ email: 'before@example.com', newsletters: ['weekly-explainer'] })
      .expect(202);
    await t.database.db
      .updateTable('newsletters')
      .set({ name: 'The Friday Explainer', updated_at: new Date(Date.now() + 1000) })
      .where('slug', '=', 'weekly-explainer')
      .execute();
    await t
      .subscribe({ email: 'after@example.com', newsletters: ['weekly-explainer'] })
      .expect(202);
    await t.deliver();
    expect(confirmations('after@example.com')[0]!.parsed.subject).toBe(
      'Please confirm your subscription to The Friday Explainer',
    );
    const events = await t.database.db
      .selectFrom('consent_events')
      .innerJoin('subscribers', 'subscribers.id', 'consent_events.subscriber_id')
      .select('consent_events.action')
      .where('subscribers.email_normalized', '=', 'after@example.com')
      .execute();
    expect(events).toEqual([{ action: 'requested' }]);
  });

  it('refuses a newsletter archived after it was last seen, and stores nothing', async () => {
    await t
      .subscribe({ email: 'early@example.com', newsletters: ['morning-briefing'] })
      .expect(202);
    await t.database.db
      .updateTable('newsletters')
      .set({ status: 'archived' })
      .where('slug', '=', 'morning-briefing')
      .execute();
    const answer = await t
      .subscribe({ email: 'late@example.com', newsletters: ['morning-briefing'] })
      .expect(400);
    expect(answer.body.error.code).toBe('unknown_newsletter');
    const late = await t.database.db
      .selectFrom('subscribers')
      .select('id')
      .where('email_normalized', '=', 'late@example.com')
      .executeTakeFirst();
    expect(late).toBeUndefined();
  });
});
