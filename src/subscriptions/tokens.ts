import { createHmac, timingSafeEqual } from 'node:crypto';

/** What a link may do; a token signed for one purpose is refused for every other. */
export type TokenPurpose = 'confirm' | 'unsubscribe' | 'preferences';

export interface TokenClaims {
  purpose: TokenPurpose;
  subscriberId: number;
  newsletterIds: number[];
  /** Seconds since the epoch; absent on links in newsletter mail, which must work for years. */
  expiresAt?: number;
}

export type TokenCheck =
  | { status: 'valid'; claims: TokenClaims }
  | { status: 'expired'; claims: TokenClaims }
  | { status: 'invalid' };

const PURPOSE_CODES: Record<TokenPurpose, string> = {
  confirm: 'c',
  unsubscribe: 'u',
  preferences: 'p',
};
const VERSION = '1';
// 128 bits of HMAC-SHA256 keep links short and are far beyond guessing.
const TAG_BYTES = 16;
const MAX_TOKEN_LENGTH = 512;

const linkKeys = new Map<string, Buffer>();

// A key of its own for links, so SECRET can sign other things without a token crossing over.
function linkKey(secret: string): Buffer {
  let key = linkKeys.get(secret);
  if (!key) {
    key = createHmac('sha256', secret).update('broadsheet/reader-links/v1').digest();
    linkKeys.set(secret, key);
  }
  return key;
}

function tag(secret: string, payload: string): string {
  return createHmac('sha256', linkKey(secret))
    .update(payload)
    .digest()
    .subarray(0, TAG_BYTES)
    .toString('base64url');
}

/**
 * The HMAC key of `tag()` as its two padded halves (RFC 2104), so PostgreSQL can sign a link with
 * its built-in sha256() where the subscriber id is made: HMAC = H(outer || H(inner || message)).
 */
export function signingPads(secret: string): { inner: Buffer; outer: Buffer } {
  const key = Buffer.alloc(64);
  linkKey(secret).copy(key);
  return {
    inner: Buffer.from(key.map((byte) => byte ^ 0x36)),
    outer: Buffer.from(key.map((byte) => byte ^ 0x5c)),
  };
}

/** The payload fields of a confirmation token, for a subscriber id filled in elsewhere. */
export function confirmPayloadParts(
  newsletterIds: number[],
  expiresAt: number,
): { before: string; after: string } {
  return {
    before: `${VERSION}.${PURPOSE_CODES.confirm}.`,
    after: `.${newsletterIds.join('-')}.${expiresAt}`,
  };
}

/** Signs claims with the current secret: `base64url(payload).base64url(tag)`. */
export function signToken(secret: string, claims: TokenClaims): string {
  const fields = [
    VERSION,
    PURPOSE_CODES[claims.purpose],
    String(claims.subscriberId),
    claims.newsletterIds.join('-'),
    claims.expiresAt === undefined ? '' : String(claims.expiresAt),
  ];
  const payload = Buffer.from(fields.join('.'), 'utf8').toString('base64url');
  return `${payload}.${tag(secret, payload)}`;
}

/**
 * Checks a token against the current and previous secrets, in constant time per secret.
 * The tag is compared as text, so a flipped spare bit in the last base64url character is refused too.
 */
export function verifyToken(
  secrets: readonly string[],
  token: string,
  purpose: TokenPurpose,
  now: Date = new Date(),
): TokenCheck {
  if (token.length > MAX_TOKEN_LENGTH || !/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(token)) {
    return { status: 'invalid' };
  }
  const [payload = '', given = ''] = token.split('.');
  const givenBytes = Buffer.from(given, 'utf8');
  const signedByUs = secrets.some((secret) => {
    const expected = Buffer.from(tag(secret, payload), 'utf8');
    return expected.length === givenBytes.length && timingSafeEqual(expected, givenBytes);
  });
  if (!signedByUs) return { status: 'invalid' };

  const claims = parseClaims(Buffer.from(payload, 'base64url').toString('utf8'));
  if (!claims || claims.purpose !== purpose) return { status: 'invalid' };
  if (claims.expiresAt !== undefined && claims.expiresAt * 1000 <= now.getTime()) {
    return { status: 'expired', claims };
  }
  return { status: 'valid', claims };
}

function parseClaims(text: string): TokenClaims | undefined {
  const match = /^1\.([cup])\.(\d{1,15})\.(\d{1,15}(?:-\d{1,15})*)\.(\d{1,12})?$/.exec(text);
  if (!match) return undefined;
  const purpose = (Object.keys(PURPOSE_CODES) as TokenPurpose[]).find(
    (key) => PURPOSE_CODES[key] === match[1],
  )!;
  return {
    purpose,
    subscriberId: Number(match[2]),
    newsletterIds: match[3]!.split('-').map(Number),
    ...(match[4] ? { expiresAt: Number(match[4]) } : {}),
  };
}
