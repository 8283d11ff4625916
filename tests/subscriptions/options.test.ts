import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createReaderFixture, linkIn, type ReaderFixture } from './reader-fixture.ts';

let t: ReaderFixture;

beforeAll(async () => {
  t = await createReaderFixture({
    WELCOME_MAIL: 'false',
    REFUSE_DISPOSABLE_EMAIL: 'true',
    SMTPUTF8: 'true',
    CONFIRMATION_MAILS_PER_DAY: '1',
    SUBSCRIBE_LIMIT_PER_IP: '4',
    CONSENT_TEXT_VERSION: '2026-11 privacy notice',
  });
  await t.newsletter('morning-briefing', 'Morning Briefing');
});
afterAll(() => t.close());

describe('configured behaviour', () => {
  it('accepts a non-ASCII local part with SMTPUTF8 and sends no welcome mail when switched off', async () => {
    await t.subscribe({ email: 'Jörg@example.de', newsletters: ['morning-briefing'] }).expect(202);
    const [confirmation] = await t.deliver();
    expect(confirmation!.envelope.to).toEqual(['Jörg@example.de']);
    await request(t.app).post(linkIn(confirmation!, 'confirm')).expect(200);
    expect(await t.deliver()).toHaveLength(1);
    const consent = await t.database.db
      .selectFrom('consent_events')
      .select(['action', 'consent_text_version'])
      .execute();
    expect(consent).toEqual([
      { action: 'requested', consent_text_version: '2026-11 privacy notice' },
      { action: 'confirmed', consent_text_version: '2026-11 privacy notice' },
    ]);
  });

  it('refuses throwaway inbox domains when asked to', async () => {
    const answer = await t.subscribe({
      email: 'x@mailinator.com',
      newsletters: ['morning-briefing'],
    });
    expect(answer.status).toBe(400);
    expect(answer.body.error.code).toBe('disposable_email');
  });

  it('holds the confirmation mails to the configured daily cap', async () => {
    await t
      .subscribe({ email: 'capped@example.com', newsletters: ['morning-briefing'] })
      .expect(202);
    await t
      .subscribe({ email: 'capped@example.com', newsletters: ['morning-briefing'] })
      .expect(202);
    const mails = (await t.deliver()).filter(
      (mail) => mail.envelope.to[0] === 'capped@example.com',
    );
    expect(mails).toHaveLength(1);
  });

  it('counts the daily cap per inbox: +tags and Gmail dots do not buy more mails', async () => {
    const variants = [
      'flood+1@example.com',
      'flood+2@example.com',
      'flood@example.com',
      'fl.ood@gmail.com',
      'flood+x@googlemail.com',
    ];
    for (const [index, email] of variants.entries()) {
      await t
        .subscribe({ email, newsletters: ['morning-briefing'] }, `198.51.100.${20 + index}`)
        .expect(202);
    }
    const mails = (await t.deliver()).filter((mail) => variants.includes(mail.envelope.to[0]!));
    expect(mails.map((mail) => mail.envelope.to[0]).sort()).toEqual([
      'fl.ood@gmail.com',
      'flood+1@example.com',
    ]);
  });

  it('counts an IPv6 reader by their /64, which they can pick addresses from at will', async () => {
    const addresses = [
      '2001:db8:1:2::1',
      '2001:db8:1:2::2',
      '2001:db8:1:2:abcd::1',
      '2001:db8:1:2:ffff:ffff:ffff:ffff',
    ];
    for (const [index, ip] of addresses.entries()) {
      await t
        .subscribe({ email: `v6-${index}@example.com`, newsletters: ['morning-briefing'] }, ip)
        .expect(202);
    }
    await t
      .subscribe(
        { email: 'v6-more@example.com', newsletters: ['morning-briefing'] },
        '2001:db8:1:2::9',
      )
      .expect(429);
    await t
      .subscribe(
        { email: 'v6-more@example.com', newsletters: ['morning-briefing'] },
        '2001:db8:1:3::9',
      )
      .expect(202);
  });

  it('limits requests per IP address with a 429 a form can show, storing nothing', async () => {
    const ip = '192.0.2.99';
    for (let index = 0; index < 4; index++) {
      await t
        .subscribe({ email: `ip${index}@example.com`, newsletters: ['morning-briefing'] }, ip)
        .expect(202);
    }
    const limited = await t.subscribe(
      { email: 'ip9@example.com', newsletters: ['morning-briefing'] },
      ip,
    );
    expect(limited.status).toBe(429);
    expect(limited.body.error).toEqual({
      code: 'rate_limited',
      message: 'too many subscriptions from your network; please try again in an hour',
    });
    const stored = await t.database.db
      .selectFrom('subscribers')
      .select('id')
      .where('email_normalized', '=', 'ip9@example.com')
      .executeTakeFirst();
    expect(stored).toBeUndefined();
    await t
      .subscribe({ email: 'ip9@example.com', newsletters: ['morning-briefing'] }, '192.0.2.100')
      .expect(202);
  });
});
