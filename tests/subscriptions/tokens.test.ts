import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { checkLinkToken, confirmLink, readerLinks } from '../../src/subscriptions/links.ts';
import { signToken, verifyToken, type TokenClaims } from '../../src/subscriptions/tokens.ts';

const SECRET = 'a'.repeat(40);
const OLD_SECRET = 'b'.repeat(40);
const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

const unsubscribe: TokenClaims = { purpose: 'unsubscribe', subscriberId: 42, newsletterIds: [7] };

describe('link tokens', () => {
  it('verifies what it signed and returns the claims', () => {
    const token = signToken(SECRET, unsubscribe);
    expect(token).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{22}$/);
    expect(verifyToken([SECRET], token, 'unsubscribe')).toEqual({
      status: 'valid',
      claims: unsubscribe,
    });
  });

  it('refuses every single-character change of a token, including spare bits of the tag', () => {
    const token = signToken(SECRET, { ...unsubscribe, newsletterIds: [7, 8, 9] });
    for (let index = 0; index < token.length; index++) {
      for (const replacement of BASE64URL + '.') {
        if (replacement === token[index]) continue;
        const altered = token.slice(0, index) + replacement + token.slice(index + 1);
        expect(verifyToken([SECRET], altered, 'unsubscribe').status, altered).toBe('invalid');
      }
    }
  });

  it('refuses a token for another purpose', () => {
    const token = signToken(SECRET, unsubscribe);
    expect(verifyToken([SECRET], token, 'confirm').status).toBe('invalid');
    expect(verifyToken([SECRET], token, 'preferences').status).toBe('invalid');
  });

  it('refuses a token signed with an unknown secret and accepts a previous one', () => {
    const token = signToken(OLD_SECRET, unsubscribe);
    expect(verifyToken([SECRET], token, 'unsubscribe').status).toBe('invalid');
    expect(verifyToken([SECRET, OLD_SECRET], token, 'unsubscribe').status).toBe('valid');
  });

  it('reports an expired token with its claims so a new link can be offered', () => {
    const claims: TokenClaims = {
      purpose: 'confirm',
      subscriberId: 1,
      newsletterIds: [2, 3],
      expiresAt: 1_800_000_000,
    };
    const token = signToken(SECRET, claims);
    expect(verifyToken([SECRET], token, 'confirm', new Date(1_799_999_999_000)).status).toBe(
      'valid',
    );
    expect(verifyToken([SECRET], token, 'confirm', new Date(1_800_000_000_000))).toEqual({
      status: 'expired',
      claims,
    });
  });

  it('refuses junk of every shape', () => {
    for (const junk of ['', '.', 'abc', 'a.b.c', 'a'.repeat(600) + '.b', 'é.x', 'a b.c']) {
      expect(verifyToken([SECRET], junk, 'confirm').status).toBe('invalid');
    }
  });
});

describe('reader links', () => {
  const config = loadConfig({
    SECRET,
    PREVIOUS_SECRETS: OLD_SECRET,
    PUBLIC_URL: 'https://news.example/',
  });

  it('builds unsubscribe and preferences URLs under PUBLIC_URL that check back', () => {
    const links = readerLinks(config, { subscriberId: 5, newsletterId: 9 });
    const unsubscribeToken = links.unsubscribeUrl.replace('https://news.example/unsubscribe/', '');
    const preferencesToken = links.preferencesUrl.replace('https://news.example/preferences/', '');
    expect(checkLinkToken(config, unsubscribeToken, 'unsubscribe')).toEqual({
      status: 'valid',
      claims: { purpose: 'unsubscribe', subscriberId: 5, newsletterIds: [9] },
    });
    expect(checkLinkToken(config, preferencesToken, 'preferences').status).toBe('valid');
    expect(checkLinkToken(config, unsubscribeToken, 'preferences').status).toBe('invalid');
  });

  it('signs confirmation links that expire', () => {
    const url = confirmLink(config, {
      subscriberId: 5,
      newsletterIds: [1, 2],
      expiresAt: new Date(Date.now() - 1000),
    });
    const token = url.replace('https://news.example/confirm/', '');
    expect(checkLinkToken(config, token, 'confirm').status).toBe('expired');
  });
});
