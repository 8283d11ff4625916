import dns from 'node:dns';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDnsServer, type DnsServer } from '../helpers/dns-server.ts';
import { createReaderFixture, type ReaderFixture } from './reader-fixture.ts';

// CHECK_EMAIL_DOMAIN asks DNS; a real DNS server on 127.0.0.1 answers for these names.
let dnsServer: DnsServer;
let systemServers: string[];
let t: ReaderFixture;

beforeAll(async () => {
  dnsServer = await startDnsServer({
    'mail.example': [
      { type: 'MX', name: 'mail.example', data: { preference: 10, exchange: 'mx.mail.example' } },
    ],
    'web.example': [{ type: 'A', name: 'web.example', data: '192.0.2.10' }],
    'v6.example': [{ type: 'AAAA', name: 'v6.example', data: '2001:db8::10' }],
    'nomail.example': [
      { type: 'MX', name: 'nomail.example', data: { preference: 0, exchange: '.' } },
      { type: 'A', name: 'nomail.example', data: '192.0.2.11' },
    ],
    'gone.example': 'nxdomain',
    'slow.example': 'silent',
  });
  systemServers = dns.promises.getServers();
  dns.promises.setServers([dnsServer.address]);
  t = await createReaderFixture({ CHECK_EMAIL_DOMAIN: 'true', SUBSCRIBE_LIMIT_PER_IP: '8' });
  await t.newsletter('morning-briefing', 'Morning Briefing');
});
afterAll(async () => {
  await t.close();
  await dnsServer.close();
  dns.promises.setServers(systemServers);
});

const subscribe = (email: string) => t.subscribe({ email, newsletters: ['morning-briefing'] });

describe('CHECK_EMAIL_DOMAIN', () => {
  it('accepts a domain with an MX record, or with only an A or AAAA record', async () => {
    for (const email of ['ann@mail.example', 'ann@web.example', 'ann@v6.example']) {
      expect((await subscribe(email)).status, email).toBe(202);
    }
  });

  it('refuses a domain that does not exist, or says it takes no mail (null MX)', async () => {
    for (const email of ['ann@gone.example', 'ann@nomail.example']) {
      const answer = await subscribe(email);
      expect(answer.status, email).toBe(400);
      expect(answer.body.error.code).toBe('unknown_domain');
      expect(answer.body.error.message).toContain('does not receive email');
    }
    const stored = await t.database.db.selectFrom('subscribers').select('email').execute();
    expect(stored.map((row) => row.email).sort()).toEqual([
      'ann@mail.example',
      'ann@v6.example',
      'ann@web.example',
    ]);
  });

  it('gives the reader the benefit of the doubt when DNS does not answer in 3 s', async () => {
    expect((await subscribe('ann@slow.example')).status).toBe(202);
  });

  it('asks DNS only within the rate limits, so made-up domains cannot flood it', async () => {
    const before = dnsServer.asked.length;
    const answers: number[] = [];
    for (let n = 0; n < 10; n++) {
      const answer = await t.subscribe(
        { email: `flood@made-up-${n}.example`, newsletters: ['morning-briefing'] },
        '198.51.100.50',
      );
      answers.push(answer.status);
    }
    expect(answers).toEqual([400, 400, 400, 400, 400, 400, 400, 400, 429, 429]);
    const asked = new Set(dnsServer.asked.slice(before));
    expect(asked.has('made-up-7.example')).toBe(true);
    expect(asked.has('made-up-8.example')).toBe(false);
    expect(asked.has('made-up-9.example')).toBe(false);
  });
});
