import { describe, expect, it } from 'vitest';
import { isDisposableDomain } from '../../src/subscriptions/disposable-domains.ts';
import { mailboxOf, parseEmailAddress, suggestFor } from '../../src/subscriptions/email-address.ts';

const ascii = { smtpUtf8: false };

function refusal(input: string, rules = ascii): { code: string; message: string } {
  try {
    parseEmailAddress(input, rules);
  } catch (error) {
    const { code, message } = error as { code: string; message: string };
    return { code, message };
  }
  throw new Error(`${JSON.stringify(input)} was accepted`);
}

describe('email address rules', () => {
  it('trims surrounding spaces', () => {
    expect(parseEmailAddress('  ann@example.com \u00a0', ascii).address).toBe('ann@example.com');
  });

  it('lower-cases the domain and folds the local part for identity only', () => {
    const parsed = parseEmailAddress('Ann.Reader@Example.COM', ascii);
    expect(parsed).toEqual({
      address: 'Ann.Reader@example.com',
      normalized: 'ann.reader@example.com',
      domain: 'example.com',
    });
    expect(parseEmailAddress('ann.reader@example.com', ascii).normalized).toBe(parsed.normalized);
  });

  it('keeps dots and +tags: they are one provider’s rules, not the standard’s', () => {
    expect(parseEmailAddress('a.n.n+news@gmail.com', ascii).normalized).toBe(
      'a.n.n+news@gmail.com',
    );
  });

  it('accepts at most 254 characters in all', () => {
    const domain = `${'d'.repeat(60)}.${'e'.repeat(60)}.${'f'.repeat(60)}.${'g'.repeat(50)}.com`;
    const fits = `${'a'.repeat(254 - domain.length - 1)}@${domain}`;
    expect(fits.length).toBe(254);
    expect(parseEmailAddress(fits, ascii).address).toBe(fits);
    expect(refusal(`a${fits}`).message).toMatch(/64|254/);
  });

  it('accepts at most 64 characters before the @', () => {
    expect(parseEmailAddress(`${'a'.repeat(64)}@example.com`, ascii)).toBeTruthy();
    expect(refusal(`${'a'.repeat(65)}@example.com`)).toEqual({
      code: 'invalid_email',
      message: 'please enter a correct email address: the part before the @ is over 64 characters',
    });
  });

  it('accepts at most 63 characters per domain label', () => {
    expect(parseEmailAddress(`ann@${'l'.repeat(63)}.com`, ascii)).toBeTruthy();
    expect(refusal(`ann@${'l'.repeat(64)}.com`).message).toContain('over 63 characters');
  });

  it('accepts only a dot-atom local part', () => {
    for (const bad of [
      'a..b@example.com',
      '.ann@example.com',
      'ann.@example.com',
      'a,b@example.com',
    ]) {
      expect(refusal(bad).code, bad).toBe('invalid_email');
    }
    expect(parseEmailAddress("o'brien+x_y@example.com", ascii)).toBeTruthy();
  });

  it('refuses quoted strings, comments and a second @', () => {
    expect(refusal('"ann reader"@example.com').message).toContain('quoted');
    expect(refusal('"ann"@example.com').message).toContain('quoted');
    expect(refusal('ann(comment)@example.com').message).toContain('comments');
    expect(refusal('ann@example.com(comment)').message).toContain('comments');
    expect(refusal('ann@b@example.com').message).toContain('second @');
  });

  it('refuses IP literals', () => {
    expect(refusal('ann@[192.0.2.1]').message).toContain('IP address');
    expect(refusal('ann@[IPv6:2001:db8::1]').message).toContain('IP address');
    expect(refusal('ann@192.0.2.1').message).toContain('not a valid name');
  });

  it('needs a domain with at least one dot', () => {
    expect(refusal('ann@localhost').message).toContain('needs a dot');
    expect(refusal('ann@').message).toContain('nothing after the @');
    expect(refusal('@example.com').message).toContain('nothing before the @');
    expect(refusal('ann.example.com').message).toContain('no @');
  });

  it('accepts internationalised domains and stores them in punycode', () => {
    expect(parseEmailAddress('ann@Bücher.example', ascii)).toEqual({
      address: 'ann@xn--bcher-kva.example',
      normalized: 'ann@xn--bcher-kva.example',
      domain: 'xn--bcher-kva.example',
    });
    expect(parseEmailAddress('ann@xn--bcher-kva.example', ascii).normalized).toBe(
      'ann@xn--bcher-kva.example',
    );
  });

  it('refuses a non-ASCII local part with its own code unless SMTPUTF8 is on', () => {
    expect(refusal('jörg@example.de').code).toBe('non_ascii_local_part');
    expect(parseEmailAddress('Jörg@example.de', { smtpUtf8: true })).toEqual({
      address: 'Jörg@example.de',
      normalized: 'jörg@example.de',
      domain: 'example.de',
    });
  });

  it('refuses CR, LF, NUL, tabs and invisible characters anywhere', () => {
    for (const bad of [
      'ann@example.com\r\nBcc: victim@example.org',
      'ann@example.com\n',
      'ann\u0000@example.com',
      'ann@exam\tple.com',
      'ann\u200b@example.com',
      'ann@example.com\u2028',
    ]) {
      expect(refusal(bad).message, JSON.stringify(bad)).toContain('control characters');
    }
  });

  it('refuses spaces inside and an empty address', () => {
    expect(refusal('ann reader@example.com').message).toContain('spaces');
    expect(refusal('   ').message).toContain('empty');
  });

  it('refuses malformed domains', () => {
    for (const bad of [
      'ann@-example.com',
      'ann@example-.com',
      'ann@exa_mple.com',
      'ann@example..com',
      'ann@ex%41mple.com',
    ]) {
      expect(refusal(bad).code, bad).toBe('invalid_email');
    }
  });

  it('finds the inbox behind an address for counting: no +tag, no dots at Gmail', () => {
    expect(mailboxOf('ann+news@example.com')).toBe('ann@example.com');
    expect(mailboxOf('a.n.n+x@gmail.com')).toBe('ann@gmail.com');
    expect(mailboxOf('ann@googlemail.com')).toBe('ann@gmail.com');
    expect(mailboxOf('a.nn@example.com')).toBe('a.nn@example.com');
    expect(mailboxOf('+only@example.com')).toBe('+only@example.com');
  });

  it('suggests the common domain for a likely typo', () => {
    expect(suggestFor('ann@gmial.com')).toBe('ann@gmail.com');
    expect(suggestFor('ann@yaho.com')).toBe('ann@yahoo.com');
    expect(suggestFor('ann@example.com')).toBeUndefined();
    expect(refusal('ann@gmail')).toMatchObject({ code: 'invalid_email' });
  });

  it('knows the best-known throwaway inbox domains and their subdomains', () => {
    expect(isDisposableDomain('mailinator.com')).toBe(true);
    expect(isDisposableDomain('eu.mailinator.com')).toBe(true);
    expect(isDisposableDomain('example.com')).toBe(false);
  });
});
