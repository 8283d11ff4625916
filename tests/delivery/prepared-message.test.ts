import { simpleParser } from 'mailparser';
import { describe, expect, it } from 'vitest';
import { personalise } from '../../src/digests/mail-templates.ts';
import {
  messageFor,
  prepareMessage,
  type MessageCommon,
} from '../../src/delivery/prepared-message.ts';

const longLine = 'Grüße aus der Redaktion — café, naïve, 🗞️ '.repeat(30);
const common: MessageCommon = {
  from: { name: 'Morning Briefing — Newsroom', address: 'briefing@news.test' },
  replyTo: 'desk@news.test',
  subject:
    'Today: élections, budget & 🗞️ more — a subject long enough to need folding across lines',
  html: `<html><body><p>${longLine}</p>\n<a href="%%{unsubscribe_url}%%">Unsubscribe</a>%%{preferences_url}%%<p>= equals . dot\n.leading dot</p></body></html>`,
  text: `${longLine}\nUnsubscribe: %%{unsubscribe_url}%%\nPreferences: %%{preferences_url}%%\n`,
  listId: 'Morning Briefing <morning-briefing.news.test>',
  listUnsubscribeMailto: 'unsubscribe@news.test',
  feedbackId: '42:morning-briefing:broadsheet',
};

const reader = (n: number) => ({
  to: `reader${n}@example.com`,
  messageId: `<${n}.send-1@news.test>`,
  date: new Date('2026-11-26T07:00:00Z'),
  values: {
    unsubscribe_url: `https://news.test/unsubscribe/${'t'.repeat(120)}${n}?a=1&b=2`,
    preferences_url: `https://news.test/preferences/p${n}`,
  },
});

describe('prepared message', () => {
  it('decodes to exactly the personalised content, with every header right', async () => {
    const prepared = prepareMessage(common);
    const raw = messageFor(prepared, reader(7));
    const parsed = await simpleParser(raw);
    const expected = personalise({ html: common.html, text: common.text }, reader(7).values);
    expect(String(parsed.html).replace(/\r\n/g, '\n')).toBe(expected.html);
    expect(parsed.text?.replace(/\r\n/g, '\n')).toBe(expected.text);
    expect(parsed.subject).toBe(common.subject);
    expect(parsed.from?.value).toEqual([{ name: common.from.name, address: 'briefing@news.test' }]);
    expect(parsed.to && !Array.isArray(parsed.to) && parsed.to.text).toBe('reader7@example.com');
    expect(parsed.messageId).toBe('<7.send-1@news.test>');
    expect(parsed.date?.toISOString()).toBe('2026-11-26T07:00:00.000Z');
    const list = parsed.headers.get('list') as Record<string, Record<string, string>>;
    expect(list['unsubscribe-post']).toEqual({ name: 'List-Unsubscribe=One-Click' });
    expect(list.id).toEqual({ name: 'Morning Briefing', id: 'morning-briefing.news.test' });
    expect(list.unsubscribe).toEqual({
      url: reader(7).values.unsubscribe_url,
      mail: 'unsubscribe@news.test',
    });
    expect(parsed.headers.get('precedence')).toBe('bulk');
    expect(parsed.headers.get('feedback-id')).toBe('42:morning-briefing:broadsheet');
  });

  it('keeps every line within SMTP limits and 7-bit clean', () => {
    const raw = messageFor(prepareMessage(common), reader(1)).toString('latin1');
    const [headers, ...body] = raw.split('\r\n\r\n');
    for (const line of headers!.split('\r\n')) expect(line.length).toBeLessThanOrEqual(998);
    for (const line of body.join('\r\n\r\n').split('\r\n'))
      expect(line.length).toBeLessThanOrEqual(76);
    // eslint-disable-next-line no-control-regex -- the point is to find control characters
    expect(raw).not.toMatch(/[^\x09\x0a\x0d\x20-\x7e]/);
    expect(raw.replace(/\r\n/g, '')).not.toMatch(/[\r\n]/);
  });

  it('never lets a value start a header line', async () => {
    const evil = {
      ...reader(2),
      to: 'x@example.com\r\nBcc: all@evil.test',
      messageId: '<a@b>\nX-Evil: 1',
    };
    const parsed = await simpleParser(messageFor(prepareMessage(common), evil));
    expect(parsed.headers.has('bcc')).toBe(false);
    expect(parsed.headers.has('x-evil')).toBe(false);
  });

  it('differs between readers only where their values differ', () => {
    const prepared = prepareMessage(common);
    const a = messageFor(prepared, reader(1)).toString();
    const b = messageFor(prepared, reader(2)).toString();
    expect(a).not.toBe(b);
    expect(a.replace(/reader1|\b1\.send|t1\?|p1\b/g, '#')).toBe(
      b.replace(/reader2|\b2\.send|t2\?|p2\b/g, '#'),
    );
  });

  it('writes any sender as one mailbox, as nodemailer would', async () => {
    // mailparser reads each back as it was given, the international domain decoded.
    const senders: [{ name: string; address: string }, string][] = [
      [
        { name: 'Daily Planet, Newsroom', address: 'news@planet.test' },
        'From: "Daily Planet, Newsroom" <news@planet.test>',
      ],
      [
        { name: 'Zürcher Blatt, Abend', address: 'abend@blatt.test' },
        'From: =?UTF-8?Q?Z=C3=BCrcher_Blatt=2C_Abend?= <abend@blatt.test>',
      ],
      [{ name: '', address: 'bare@news.test' }, 'From: bare@news.test'],
      [
        { name: 'Bücher', address: 'post@bücher.test' },
        'From: =?UTF-8?Q?B=C3=BCcher?= <post@xn--bcher-kva.test>',
      ],
    ];
    for (const [from, line] of senders) {
      const raw = messageFor(prepareMessage({ ...common, from, transactional: true }), reader(1));
      expect(raw.toString().split('\r\n')).toContain(line);
      const parsed = await simpleParser(raw);
      expect(parsed.from?.value, line).toEqual([from]);
      expect(parsed.headerLines.map((header) => header.key)).not.toContain('list-unsubscribe');
    }
  });
});
