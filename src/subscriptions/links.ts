import type { Config } from '../config.ts';
import {
  signingPads,
  signToken,
  verifyToken,
  type TokenCheck,
  type TokenPurpose,
} from './tokens.ts';

/** The links every newsletter mail carries for one reader; they never expire. */
export interface ReaderLinks {
  unsubscribeUrl: string;
  preferencesUrl: string;
}

type LinkConfig = Pick<Config, 'publicUrl' | 'secret' | 'previousSecrets'>;

function currentSecret(config: LinkConfig): string {
  if (!config.secret) throw new Error('SECRET is not set; links in mail cannot be signed');
  return config.secret;
}

/** Pure: the unsubscribe and preferences URLs of one reader of one newsletter. */
export function readerLinks(
  config: LinkConfig,
  reader: { subscriberId: number; newsletterId: number },
): ReaderLinks {
  const secret = currentSecret(config);
  const claims = { subscriberId: reader.subscriberId, newsletterIds: [reader.newsletterId] };
  return {
    unsubscribeUrl: `${config.publicUrl}/unsubscribe/${signToken(secret, { purpose: 'unsubscribe', ...claims })}`,
    preferencesUrl: `${config.publicUrl}/preferences/${signToken(secret, { purpose: 'preferences', ...claims })}`,
  };
}

/** The link in a confirmation mail: every newsletter of one submission, valid until `expiresAt`. */
export function confirmLink(
  config: LinkConfig,
  request: { subscriberId: number; newsletterIds: number[]; expiresAt: Date },
): string {
  const token = signToken(currentSecret(config), {
    purpose: 'confirm',
    subscriberId: request.subscriberId,
    newsletterIds: request.newsletterIds,
    expiresAt: Math.floor(request.expiresAt.getTime() / 1000),
  });
  return `${config.publicUrl}/confirm/${token}`;
}

/** The current secret's link key, for PostgreSQL to sign confirmation links with. */
export function linkSigningPads(config: LinkConfig): { inner: Buffer; outer: Buffer } {
  return signingPads(currentSecret(config));
}

/** Checks a token from a link against SECRET and every PREVIOUS_SECRETS entry. */
export function checkLinkToken(
  config: LinkConfig,
  token: string,
  purpose: TokenPurpose,
  now?: Date,
): TokenCheck {
  const secrets = [currentSecret(config), ...config.previousSecrets];
  return verifyToken(secrets, token, purpose, now);
}
