import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createReaderFixture, linkIn, type ReaderFixture } from './reader-fixture.ts';

let t: ReaderFixture;
const ACCEPTED = {
  message: "thank you: we've sent you a confirmation email; please click the link in it",
};

beforeAll(async () => {
  t = await createReaderFixture({
    SUBSCRIBE_LIMIT_PER_IP: '1000',
    SITE_ORIGINS: 'https://www.news.test,https://blog.news.test',
  });
  await t.newsletter('morning-briefing', 'Morning Briefing');
  await t.newsletter('weekly-explainer', 'The Weekly Explainer');
  await t.newsletter('old-digest', 'Old Digest');
  await request(t.app)
    .delete('/api/v1/newsletters/old-digest')
    .set('Authorization', `Bearer ${t.adminToken}`)
    .expect(200);
});
afterAll(() => t.close());

async function count(table: 'subscribers' | 'subscriptions' | 'consent_events' | 'outbox') {
  const row = await t.database.db
    .selectFrom(table)
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

async function snapshot() {
  return {
    subscribers: await count('subscribers'),
    subscriptions: await count('subscriptions'),
    consent: await count('consent_events'),
    outbox: await count('outbox'),
  };
}

describe('no enumeration', () => {
  it('answers new, pending, confirmed and unsubscribed addresses alike', async () => {
    const body = { email: 'same@example.com', newsletters: ['morning-briefing'] };
    const answers = [];
    answers.push(await t.subscribe(body)); // new
    answers.push(await t.subscribe(body)); // pending
    const mails = await t.deliver();
    await request(t.app)
      .post(linkIn(mails.at(-1)!, 'confirm'))
      .expect(200);
    answers.push(await t.subscribe(body)); // confirmed
    const welcome = (await t.deliver()).at(-1)!;
    await request(t.app)
      .post(linkIn(welcome, 'unsubscribe'))
      .type('form')
      .send('List-Unsubscribe=One-Click');
    answers.push(await t.subscribe(body)); // unsubscribed
    for (const answer of answers) {
      expect(answer.status).toBe(202);
      expect(answer.body).toEqual(ACCEPTED);
      expect(answer.headers['content-length']).toBe(answers[0]!.headers['content-length']);
    }
    // Confirmed readers get no new confirmation mail; the others do.
    const confirmations = (await t.deliver()).filter(
      (mail) =>
        mail.envelope.to[0] === 'same@example.com' &&
        mail.parsed.subject?.startsWith('Please confirm'),
    );
    expect(confirmations).toHaveLength(3);
  });

  it('treats Ann@Example.COM and ann@example.com as one person', async () => {
    await t
      .subscribe({ email: 'Folded@Example.COM', newsletters: ['morning-briefing'] })
      .expect(202);
    await t
      .subscribe({ email: 'folded@example.com', newsletters: ['weekly-explainer'] })
      .expect(202);
    const rows = await t.database.db
      .selectFrom('subscribers')
      .select(['email', 'email_normalized'])
      .where('email_normalized', '=', 'folded@example.com')
      .execute();
    expect(rows).toEqual([{ email: 'Folded@example.com', email_normalized: 'folded@example.com' }]);
  });

  it('stores an internationalised domain in punycode', async () => {
    await t
      .subscribe({ email: 'leser@Bücher.example', newsletters: ['morning-briefing'] })
      .expect(202);
    const row = await t.database.db
      .selectFrom('subscribers')
      .select('email')
      .where('email_normalized', '=', 'leser@xn--bcher-kva.example')
      .executeTakeFirst();
    expect(row?.email).toBe('leser@xn--bcher-kva.example');
  });

  it('answers alike and mails nothing to a suppressed or blocklisted address', async () => {
    await t.database.db
      .insertInto('suppressions')
      .values({ email_normalized: 'gone@example.com', reason: 'complaint' })
      .execute();
    await t.database.db
      .insertInto('subscribers')
      .values({
        email: 'blocked@example.com',
        email_normalized: 'blocked@example.com',
        status: 'blocklisted',
      })
      .execute();
    const before = await snapshot();
    for (const email of ['gone@example.com', 'blocked@example.com']) {
      const answer = await t.subscribe({ email, newsletters: ['morning-briefing'] });
      expect(answer.status).toBe(202);
      expect(answer.body).toEqual(ACCEPTED);
    }
    expect(await snapshot()).toEqual(before);
  });
});

describe('bad requests: a clear 4xx, nothing stored', () => {
  it('refuses an invalid address with a message a form can show', async () => {
    const before = await snapshot();
    const answer = await t.subscribe({ email: 'ann@localhost', newsletters: ['morning-briefing'] });
    expect(answer.status).toBe(400);
    expect(answer.body.error).toEqual({
      code: 'invalid_email',
      message: 'please enter a correct email address: the domain needs a dot, as in example.com',
    });
    expect(await snapshot()).toEqual(before);
  });

  it('suggests a fix for a likely typo, whether the address is refused or accepted', async () => {
    const refused = await t.subscribe({ email: 'ann@gmail', newsletters: ['morning-briefing'] });
    expect(refused.status).toBe(400);
    expect(refused.body.error.details).toEqual({ suggestion: 'ann@gmail.com' });
    const accepted = await t.subscribe({
      email: 'ann@gmial.com',
      newsletters: ['morning-briefing'],
    });
    expect(accepted.status).toBe(202);
    expect(accepted.body).toEqual({ ...ACCEPTED, suggestion: 'ann@gmail.com' });
  });

  it('names unknown and archived newsletters', async () => {
    const before = await snapshot();
    const answer = await t.subscribe({
      email: 'ann@example.net',
      newsletters: ['morning-briefing', 'old-digest', 'nope'],
    });
    expect(answer.status).toBe(400);
    expect(answer.body.error).toMatchObject({
      code: 'unknown_newsletter',
      details: { newsletters: ['old-digest', 'nope'] },
    });
    expect(answer.body.error.message).toContain('"old-digest", "nope"');
    expect(await snapshot()).toEqual(before);
  });

  it('refuses an empty list, unknown fields, wrong types, bad JSON and other media', async () => {
    const before = await snapshot();
    const cases: [request.Test, number, string][] = [
      [t.subscribe({ email: 'a@example.com', newsletters: [] }), 400, 'invalid_request'],
      [
        t.subscribe({ email: 'a@example.com', newsletters: ['morning-briefing'], admin: true }),
        400,
        'unknown_field',
      ],
      [t.subscribe({ email: 42, newsletters: ['morning-briefing'] }), 400, 'invalid_request'],
      [
        t.subscribe({ email: 'a@example.com', newsletters: 'morning-briefing' }),
        400,
        'invalid_request',
      ],
      [
        request(t.app).post('/api/v1/subscriptions').type('json').send('{"email":'),
        400,
        'invalid_json',
      ],
      [
        request(t.app).post('/api/v1/subscriptions').type('text/plain').send('a@example.com'),
        415,
        'unsupported_media_type',
      ],
      [
        t.subscribe({
          email: 'a@example.com',
          newsletters: ['morning-briefing'],
          source: 'x\r\nBcc: y@example.com',
        }),
        400,
        'invalid_request',
      ],
    ];
    cases.push([
      request(t.app)
        .post('/api/v1/subscriptions')
        .type('form')
        .send(Array.from({ length: 300 }, (_, index) => `newsletters=n${index}`).join('&')),
      413,
      'too_many_fields',
    ]);
    for (const [pending, status, code] of cases) {
      const answer = await pending;
      expect(answer.status).toBe(status);
      expect(answer.body.error.code).toBe(code);
      expect(answer.body.error.message).toMatch(/^[a-z]/);
    }
    expect(await snapshot()).toEqual(before);
  });

  it('refuses what PostgreSQL could not store: a NUL in a form slug, lone surrogates', async () => {
    const before = await snapshot();
    const post = (type: 'form' | 'json', body: string | object) =>
      request(t.app).post('/api/v1/subscriptions').type(type).send(body);
    const nulSlug = await post(
      'form',
      'email=nul%40example.com&newsletters=morning-briefing&newsletters=%00evil',
    );
    expect(nulSlug.status).toBe(400);
    expect(nulSlug.type).toBe('text/html');
    expect(nulSlug.text).toContain('There is no newsletter to subscribe to called &#34;?evil&#34;');

    const manySlugs = await post(
      'form',
      [
        'email=many%40example.com',
        ...Array.from({ length: 51 }, (_, n) => `newsletters=n${n}`),
      ].join('&'),
    );
    expect(manySlugs.status).toBe(400);
    expect(manySlugs.text).toContain('Please choose at most 50 newsletters');

    const loneSource = await post(
      'json',
      '{"email":"lone@example.com","newsletters":["morning-briefing"],"source":"page \\ud800"}',
    );
    expect(loneSource.status).toBe(400);
    expect(loneSource.body.error.code).toBe('invalid_request');
    const loneAddress = await post(
      'json',
      '{"email":"lo\\udc00ne@example.com","newsletters":["morning-briefing"]}',
    );
    expect(loneAddress.status).toBe(400);
    expect(loneAddress.body.error.code).toBe('invalid_email');
    expect(await snapshot()).toEqual(before);

    // A form's source is cut to 500 characters without splitting the emoji at the cut.
    const emoji = await post('form', {
      email: 'emoji@example.com',
      newsletters: 'morning-briefing',
      source: `${'a'.repeat(499)}😀`,
    });
    expect(emoji.status).toBe(200);
    const stored = await t.database.db
      .selectFrom('subscriptions')
      .innerJoin('subscribers', 'subscribers.id', 'subscriptions.subscriber_id')
      .select('subscriptions.source')
      .where('subscribers.email_normalized', '=', 'emoji@example.com')
      .executeTakeFirstOrThrow();
    expect(stored.source).toBe(`${'a'.repeat(499)}😀`);
  });
});

describe('abuse defences', () => {
  it('answers a filled honeypot with the same 202 and stores and sends nothing', async () => {
    const before = await snapshot();
    const answer = await t.subscribe({
      email: 'bot-target@example.com',
      newsletters: ['morning-briefing'],
      website: 'http://spam.example',
    });
    expect(answer.status).toBe(202);
    expect(answer.body).toEqual(ACCEPTED);
    expect(await snapshot()).toEqual(before);
  });

  it('sends at most CONFIRMATION_MAILS_PER_DAY confirmation mails to one address', async () => {
    const before = t.smtp.messages.length;
    for (let attempt = 0; attempt < 6; attempt++) {
      await t
        .subscribe({ email: 'bombed@example.com', newsletters: ['weekly-explainer'] })
        .expect(202);
    }
    const mails = (await t.deliver()).slice(before);
    expect(mails.filter((mail) => mail.envelope.to[0] === 'bombed@example.com')).toHaveLength(3);
  });

  it('holds under concurrent posts of one new address in any order: one subscriber, at most the cap in mail', async () => {
    const before = (await t.deliver()).length;
    const answers = await Promise.all(
      Array.from({ length: 8 }, (_, index) =>
        t.subscribe(
          {
            email: 'Racer@example.com',
            newsletters:
              index % 2
                ? ['morning-briefing', 'weekly-explainer']
                : ['weekly-explainer', 'morning-briefing'],
          },
          `198.51.100.${100 + index}`,
        ),
      ),
    );
    expect(answers.map((answer) => answer.status)).toEqual(Array(8).fill(202));
    const subscribers = await t.database.db
      .selectFrom('subscribers')
      .select('id')
      .where('email_normalized', '=', 'racer@example.com')
      .execute();
    expect(subscribers).toHaveLength(1);
    const mails = (await t.deliver()).slice(before);
    expect(mails.length).toBeGreaterThanOrEqual(1);
    expect(mails.length).toBeLessThanOrEqual(3);
  });

  it('limits attempts per address however many networks they come from', async () => {
    const limited = [];
    for (let attempt = 0; attempt < 12; attempt++) {
      const answer = await t.subscribe(
        { email: 'hammered@example.com', newsletters: ['weekly-explainer'] },
        `198.51.100.${attempt + 1}`,
      );
      limited.push(answer.status);
    }
    expect(limited.slice(0, 10).every((status) => status === 202)).toBe(true);
    expect(limited.slice(10)).toEqual([429, 429]);
  });
});

describe('header injection', () => {
  it('never lets input reach a mail header', async () => {
    const attempts = [
      'victim@example.com\r\nBcc: everyone@example.org',
      'victim@example.com\nSubject: hacked',
      'victim@example.com%0d%0aBcc:x@example.org',
      '"victim\r\nBcc: x@example.org"@example.com',
      'victim@example.com>\r\nBcc: <x@example.org',
    ];
    const before = (await t.deliver()).length;
    for (const email of attempts) {
      const answer = await t.subscribe({ email, newsletters: ['morning-briefing'] });
      expect(answer.status, email).toBe(400);
    }
    await request(t.app)
      .post('/api/v1/subscriptions')
      .type('form')
      .send({
        email: 'formed@example.com',
        newsletters: 'morning-briefing',
        source: 'a\r\nBcc: x@example.org',
      })
      .expect(200);
    const mails = (await t.deliver()).slice(before);
    expect(mails).toHaveLength(1);
    expect(mails[0]!.envelope.to).toEqual(['formed@example.com']);
    expect(mails[0]!.raw.toString()).not.toMatch(/^Bcc:/im);
    expect(mails[0]!.raw.toString()).not.toContain('x@example.org');
  });
});

describe('the same endpoint for HTML forms and other sites', () => {
  it('answers a form post with a page', async () => {
    const answer = await request(t.app)
      .post('/api/v1/subscriptions')
      .type('form')
      .send('email=page%40example.com&newsletters=morning-briefing&newsletters=weekly-explainer');
    expect(answer.status).toBe(200);
    expect(answer.type).toBe('text/html');
    expect(answer.text).toContain('Thank you: we&#39;ve sent you a confirmation email');
  });

  it('answers an invalid form post with the form, the message and the suggestion', async () => {
    const answer = await request(t.app)
      .post('/api/v1/subscriptions')
      .type('form')
      .send('email=ann%40gmail&newsletters=morning-briefing');
    expect(answer.status).toBe(400);
    expect(answer.text).toContain('Please enter a correct email address: the domain needs a dot');
    expect(answer.text).toContain('Did you mean <strong>ann@gmail.com</strong>?');
  });

  it('redirects with 303 to an allowed origin only', async () => {
    const allowed = await request(t.app).post('/api/v1/subscriptions').type('form').send({
      email: 'redirected@example.com',
      newsletters: 'morning-briefing',
      redirect: 'https://www.news.test/thanks',
    });
    expect(allowed.status).toBe(303);
    expect(allowed.headers.location).toBe('https://www.news.test/thanks');

    const before = await snapshot();
    const refused = await request(t.app).post('/api/v1/subscriptions').type('form').send({
      email: 'elsewhere@example.com',
      newsletters: 'morning-briefing',
      redirect: 'https://evil.example/',
    });
    expect(refused.status).toBe(400);
    expect(refused.headers.location).toBeUndefined();
    expect(await snapshot()).toEqual(before);
  });

  it('allows scripts on SITE_ORIGINS only (CORS)', async () => {
    const preflight = await request(t.app)
      .options('/api/v1/subscriptions')
      .set('Origin', 'https://www.news.test')
      .set('Access-Control-Request-Method', 'POST')
      .set('Access-Control-Request-Headers', 'content-type');
    expect(preflight.status).toBe(204);
    expect(preflight.headers['access-control-allow-origin']).toBe('https://www.news.test');
    expect(preflight.headers['access-control-allow-methods']).toBe('POST');

    const allowed = await t
      .subscribe({ email: 'cors@example.com', newsletters: ['morning-briefing'] })
      .set('Origin', 'https://blog.news.test');
    expect(allowed.headers['access-control-allow-origin']).toBe('https://blog.news.test');
    const other = await t
      .subscribe({ email: 'cors@example.com', newsletters: ['morning-briefing'] })
      .set('Origin', 'https://evil.example');
    expect(other.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('describes the endpoint in the OpenAPI document', async () => {
    const document = await request(t.app).get('/api/v1/openapi.json');
    expect(document.body.paths['/api/v1/subscriptions'].post.responses).toHaveProperty('202');
    expect(document.body.paths['/api/v1/newsletters/{slug}/subscribers'].get).toBeTruthy();
  });
});
