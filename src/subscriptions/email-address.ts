import { domainToASCII } from 'node:url';
import spellChecker from '@zootools/email-spell-checker';
import validator from 'validator';
import { DomainError } from '../errors.ts';

/** A reader's address as we keep it: as typed (domain in punycode) and its normalized identity. */
export interface EmailAddress {
  address: string;
  normalized: string;
  domain: string;
}

export interface AddressRules {
  smtpUtf8: boolean;
}

const ATEXT = "A-Za-z0-9!#$%&'*+/=?^_`{|}~-";
const ASCII_DOT_ATOM = new RegExp(`^[${ATEXT}]+(?:\\.[${ATEXT}]+)*$`);
// RFC 6531 widens atext with any non-ASCII character (controls are refused before this).
const UTF8_ATEXT = `\\u0080-\\u{10FFFF}${ATEXT}`;
const UTF8_DOT_ATOM = new RegExp(`^[${UTF8_ATEXT}]+(?:\\.[${UTF8_ATEXT}]+)*$`, 'u');
const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
// Lone surrogates (\p{Cs}) are no character at all, and PostgreSQL refuses them.
const CONTROL_OR_INVISIBLE = /[\p{Cc}\p{Cf}\p{Cs}\u2028\u2029]/u;
const EDGE_SPACES = /^\p{Zs}+|\p{Zs}+$/gu;

export class InvalidEmailError extends DomainError {
  constructor(code: string, message: string, suggestion?: string) {
    super('invalid', code, message, suggestion ? { suggestion } : undefined);
  }
}

function refuse(reason: string, suggestion?: string): never {
  throw new InvalidEmailError(
    'invalid_email',
    `please enter a correct email address: ${reason}`,
    suggestion,
  );
}

/**
 * Checks an address typed into a form and returns its stored and normalized forms.
 * The whole address is lower-cased for identity: RFC 5321 lets a mailbox be case-sensitive,
 * but no public provider is, and folding keeps "Ann@" and "ann@" from being two readers.
 * Mail still goes to the address as first typed. Dots and +tags are kept: they are provider rules.
 */
export function parseEmailAddress(input: string, rules: AddressRules): EmailAddress {
  if (CONTROL_OR_INVISIBLE.test(input)) {
    refuse('it contains line breaks or other control characters');
  }
  const typed = input.replace(EDGE_SPACES, '');
  if (typed === '') refuse('it is empty');
  if (typed.startsWith('"')) refuse('quoted names are not accepted');
  if (/\s/u.test(typed)) refuse('it contains spaces');
  const at = typed.lastIndexOf('@');
  if (at < 0) refuse('it has no @', suggestFor(typed));
  const local = typed.slice(0, at);
  const domainTyped = typed.slice(at + 1);
  if (local === '') refuse('there is nothing before the @');
  if (domainTyped === '') refuse('there is nothing after the @');
  if (local.includes('@') || local.startsWith('"')) {
    refuse('quoted names and a second @ are not accepted');
  }
  if (local.includes('(') || domainTyped.includes('(')) refuse('comments are not accepted');
  if (domainTyped.startsWith('[')) refuse('an IP address is not accepted as the domain');
  // domainToASCII would decode "ex%41mple.com" to "example.com": not what was typed.
  if (domainTyped.includes('%')) refuse('the domain is not a valid name');
  if (Buffer.byteLength(local, 'utf8') > 64) refuse('the part before the @ is over 64 characters');

  const asciiLocal = ASCII_DOT_ATOM.test(local);
  if (!asciiLocal) {
    if (!/[^\p{ASCII}]/u.test(local) || !UTF8_DOT_ATOM.test(local)) {
      refuse('the part before the @ has characters or dots in places that are not allowed');
    }
    if (!rules.smtpUtf8) {
      throw new InvalidEmailError(
        'non_ascii_local_part',
        'please use an address with only latin letters, digits and . _ + - before the @',
      );
    }
  }

  const domain = domainToASCII(domainTyped.replace(/\.$/, '')).toLowerCase();
  if (domain === '') refuse('the domain is not a valid name');
  const labels = domain.split('.');
  if (labels.length < 2) refuse('the domain needs a dot, as in example.com', suggestFor(typed));
  if (labels.some((label) => label.length > 63))
    refuse('a part of the domain is over 63 characters');
  if (!labels.every((label) => LABEL.test(label))) refuse('the domain is not a valid name');
  if (/^\d+$/.test(labels.at(-1)!)) refuse('the domain is not a valid name');

  const address = `${local}@${domain}`;
  if (Buffer.byteLength(address, 'utf8') > 254) refuse('it is over 254 characters');
  const library = validator.isEmail(address, {
    allow_ip_domain: false,
    allow_utf8_local_part: rules.smtpUtf8,
    require_tld: true,
    allow_display_name: false,
    allow_underscores: false,
  });
  if (!library) refuse('it is not a valid address');
  return { address, normalized: `${local.toLowerCase()}@${domain}`, domain };
}

/** "ann@gmial.com" → "ann@gmail.com": a likely typo of a common domain, else undefined. */
export function suggestFor(typed: string): string | undefined {
  const at = typed.lastIndexOf('@');
  if (at < 0) return undefined;
  const email = typed.toLowerCase();
  const local = email.slice(0, at);
  if (!/^[\w.+-]+$/.test(local)) return suggestTyped(email);
  // The suggestion depends on the domain only, and readers share a few hundred domains.
  const domain = email.slice(at + 1);
  let suggested = suggestedDomains.get(domain);
  if (suggested === undefined) {
    const result = spellChecker.run({ email: `mailbox@${domain}` });
    suggested = result && result.domain !== domain ? result.domain : '';
    if (suggestedDomains.size >= MAX_REMEMBERED_DOMAINS) suggestedDomains.clear();
    suggestedDomains.set(domain, suggested);
  }
  return suggested ? `${local}@${suggested}` : undefined;
}

const suggestedDomains = new Map<string, string>();
const MAX_REMEMBERED_DOMAINS = 10_000;

// Local parts the library would encode (quotes, non-ASCII) are left to it, as before.
function suggestTyped(email: string): string | undefined {
  const result = spellChecker.run({ email });
  return result && result.full !== email ? result.full : undefined;
}

// Providers that ignore dots in the local part; googlemail.com is the same inbox as gmail.com.
const DOTLESS_PROVIDERS = new Map([
  ['gmail.com', 'gmail.com'],
  ['googlemail.com', 'gmail.com'],
]);

/**
 * The inbox behind a normalized address, for counting only: "ann+news@" and "ann@" reach the same
 * person, so the daily cap of confirmation mails and the per-address limit count them together.
 * Mail still goes to the address as typed.
 */
export function mailboxOf(normalized: string): string {
  const at = normalized.lastIndexOf('@');
  const domain = normalized.slice(at + 1);
  let local = normalized.slice(0, at).replace(/\+.*$/, '');
  const provider = DOTLESS_PROVIDERS.get(domain);
  if (provider) local = local.replaceAll('.', '');
  return `${local || normalized.slice(0, at)}@${provider ?? domain}`;
}
