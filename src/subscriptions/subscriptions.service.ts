import dns from 'node:dns';
import type { Kysely } from 'kysely';
import type { Config } from '../config.ts';
import type { Database, Db, SubscriptionStatus } from '../db/database.ts';
import { enqueueMail, MAIL_TOKEN_SLOT, saveMailBody } from '../delivery/outbox.repository.ts';
import { personalise } from '../digests/mail-templates.ts';
import type { GroupCommit } from '../db/group-commit.ts';
import { DomainError } from '../errors.ts';
import type { Logger } from '../log.ts';
import * as newsletterRepository from '../newsletters/newsletters.repository.ts';
import { slugSchema } from '../newsletters/newsletters.schemas.ts';
import { newsletterNotFound } from '../newsletters/newsletters.service.ts';
import { isDisposableDomain } from './disposable-domains.ts';
import { InvalidEmailError, mailboxOf, parseEmailAddress, suggestFor } from './email-address.ts';
import { checkLinkToken, confirmLink, linkSigningPads, readerLinks } from './links.ts';
import type { MailNewsletter, ReaderMail } from './reader-mail.ts';
import { networkOf } from './reader-network.ts';
import * as repository from './subscriptions.repository.ts';
import { MOST_NEWSLETTERS } from './subscriptions.schemas.ts';
import { confirmPayloadParts, type TokenPurpose } from './tokens.ts';

export interface SubscriptionDeps {
  db: Kysely<Database>;
  config: Config;
  logger: Logger;
  mail: ReaderMail;
  /** Newsletters by slug as last read; only a guess for drafting mail, checked by every request. */
  seenNewsletters: Map<string, repository.RequestedNewsletter>;
  /** When this instance last cleared expired rate-limit counters (ms since the epoch). */
  countersSweptAt: number;
  /** Subscription requests of the same moment, sent to the database together. */
  requests: GroupCommit<repository.SubscriptionRequest, repository.SubscriptionOutcome>;
}

/** Who made a change, as the consent record keeps it. */
export interface Requester {
  ip: string | null;
  userAgent: string | null;
}

export interface SubscribeRequest {
  email: string;
  newsletters: string[];
  source?: string;
  /** The hidden form field only robots fill in. */
  honeypot?: string;
}

const HOUR = 3600;
const DAY = 24 * HOUR;

/**
 * Asks for a subscription. The outcome is the same whatever the address's history (new, pending,
 * confirmed, unsubscribed, suppressed), so the answer never tells who is on a list.
 * Returns only what depends on the typed address itself: a likely typo.
 */
export async function subscribe(
  deps: SubscriptionDeps,
  request: SubscribeRequest,
  requester: Requester,
): Promise<{ suggestion?: string }> {
  const { config, logger } = deps;
  if (request.honeypot) return {};
  if (request.newsletters.length === 0) {
    throw new DomainError('invalid', 'no_newsletter', 'please choose at least one newsletter');
  }
  if (request.newsletters.length > MOST_NEWSLETTERS) {
    throw new DomainError(
      'invalid',
      'too_many_newsletters',
      `please choose at most ${MOST_NEWSLETTERS} newsletters`,
    );
  }
  // A form post's slugs arrive unchecked; one that cannot be a slug never reaches the database.
  const malformed = request.newsletters.filter((slug) => !slugSchema.safeParse(slug).success);
  if (malformed.length > 0) throw unknownNewsletters(malformed.map(shownSlug));
  const address = parseEmailAddress(request.email, { smtpUtf8: config.smtpUtf8 });
  const suggestion = suggestFor(address.normalized);
  if (config.refuseDisposableEmail && isDisposableDomain(address.domain)) {
    throw new InvalidEmailError(
      'disposable_email',
      'please use a permanent address: this domain hands out throwaway inboxes',
    );
  }

  const slugs = [...new Set(request.newsletters)];
  const mailbox = mailboxOf(address.normalized);
  const ipKey = `subscribe-ip:${networkOf(requester.ip ?? '')}`;
  const addressKey = addressLimitKey(mailbox);
  let hits: repository.CountedHit[] = [
    ...(requester.ip ? [{ key: ipKey, most: config.subscribeLimitPerIp }] : []),
    { key: addressKey, most: config.subscribeLimitPerAddress },
  ];
  const refuseOverLimit = (counted: Map<string, number>) => {
    if ((counted.get(ipKey) ?? 0) > config.subscribeLimitPerIp) {
      throw rateLimited('too many subscriptions from your network; please try again in an hour');
    }
    if ((counted.get(addressKey) ?? 0) > config.subscribeLimitPerAddress) {
      throw tooManyForAddress();
    }
  };
  if (config.checkEmailDomain) {
    // Counted before asking DNS, so made-up domains cost lookups only within the limits.
    const windows = hits.map(({ key }) => ({ key, windowSeconds: HOUR }));
    refuseOverLimit(await repository.hitRateLimits(deps.db, windows));
    hits = [];
    if (!(await receivesMail(address.domain))) {
      throw new InvalidEmailError(
        'unknown_domain',
        `please check the address: the domain ${address.domain} does not receive email`,
      );
    }
  }
  // The mail is drafted from the newsletters as last seen; the statement checks that they still
  // hold and otherwise writes nothing but the counters, and the draft is redone. The mail covers
  // every newsletter asked for, so nothing about the reader's history decides the number of rounds.
  let seen = slugs.map((slug) => deps.seenNewsletters.get(slug));
  for (let attempt = 0; ; attempt++) {
    const known = seen.every((row) => row !== undefined) ? seen : [];
    const outcome = await deps.requests.submit({
      email: address.address,
      normalized: address.normalized,
      mailbox,
      slugs,
      source: request.source ?? null,
      ip: requester.ip,
      userAgent: requester.userAgent,
      hits,
      expected: known.map((row) => ({ id: row.id, updatedAt: row.updated_at })),
      draft: known.length > 0 ? await confirmationDraft(deps, known) : undefined,
    });
    if (outcome.newsletters) {
      const newsletters = requestedNewsletters(slugs, outcome.newsletters);
      for (const newsletter of newsletters) deps.seenNewsletters.set(newsletter.slug, newsletter);
      seen = newsletters;
    }
    refuseOverLimit(outcome.hits);
    if (outcome.recorded) {
      if (outcome.pendingNewsletterIds.length > 0 && !outcome.confirmToken) {
        logger.info(
          { subscriberId: outcome.subscriberId },
          'daily cap of confirmation mails reached; none sent',
        );
      }
      if (outcome.confirmToken && !config.smtpUrl) {
        logger.info(
          {
            subscriberId: outcome.subscriberId,
            confirmUrl: `${config.publicUrl}/confirm/${outcome.confirmToken}`,
          },
          'confirmation link (no SMTP_URL set)',
        );
      }
      break;
    }
    // Only a process that had not seen these newsletters, or an editor's change, gets here.
    if (attempt >= 5) throw new Error('subscription request kept changing under its draft');
    hits = [];
  }
  sweepExpiredCounters(deps);
  return suggestion ? { suggestion } : {};
}

const COUNTER_SWEEP_MS = 60_000;

/** Every instance clears expired counters now and then; a reader's answer never waits for it. */
function sweepExpiredCounters(deps: SubscriptionDeps): void {
  const now = Date.now();
  if (now - deps.countersSweptAt < COUNTER_SWEEP_MS) return;
  deps.countersSweptAt = now;
  repository.pruneRateLimits(deps.db).catch((error: unknown) => {
    deps.logger.warn({ err: error }, 'expired rate-limit counters were not cleared');
  });
}

/** The confirmation mail of a request, but for its link, which the statement signs. */
async function confirmationDraft(
  deps: SubscriptionDeps,
  newsletters: repository.RequestedNewsletter[],
): Promise<repository.ConfirmationDraft> {
  const { config, db } = deps;
  const bodyId = await deps.mail.sharedConfirmation(newsletters, (mail) => {
    const withSlot = personalise(mail, {
      confirm_url: `${config.publicUrl}/confirm/${MAIL_TOKEN_SLOT}`,
    });
    return saveMailBody(db, {
      from: config.mailFrom,
      subject: confirmationSubject(newsletters),
      html: withSlot.html,
      text: withSlot.text,
      headers: confirmationHeaders(config),
    });
  });
  const newsletterIds = newsletters.map((newsletter) => newsletter.id);
  const expiresAt = Math.floor((Date.now() + config.confirmLinkDays * DAY * 1000) / 1000);
  return {
    newsletterIds,
    bodyId,
    payloadAfter: confirmPayloadParts(newsletterIds, expiresAt).after,
  };
}

/** The limits and keys every subscription request of a batch is held to. */
export function requestRules(config: Config): repository.RequestRules {
  return {
    hitWindowSeconds: HOUR,
    consentTextVersion: config.consentTextVersion,
    confirmationMailsPerDay: config.confirmationMailsPerDay,
    capWindowSeconds: DAY,
    pads: linkSigningPads(config),
    payloadBefore: confirmPayloadParts([], 0).before,
  };
}

function confirmationSubject(newsletters: { name: string }[]): string {
  return newsletters.length === 1
    ? `Please confirm your subscription to ${newsletters[0]!.name}`
    : `Please confirm your subscription to ${newsletters.length} newsletters`;
}

function confirmationHeaders(config: Config): Record<string, string> {
  return {
    'Auto-Submitted': 'auto-generated',
    'List-Id': `<confirmations.${config.messageIdDomain}>`,
  };
}

async function queueConfirmation(
  trx: Db,
  deps: SubscriptionDeps,
  subscriber: repository.SubscriberRow,
  newsletters: MailNewsletter[],
): Promise<void> {
  const { config, logger } = deps;
  const capKey = `confirmation-mail:${mailboxOf(subscriber.email_normalized)}`;
  const counted =
    (await repository.hitRateLimits(trx, [{ key: capKey, windowSeconds: DAY }])).get(capKey) ?? 0;
  if (counted > config.confirmationMailsPerDay) {
    logger.info(
      { subscriberId: subscriber.id },
      'daily cap of confirmation mails reached; none sent',
    );
    return;
  }
  const confirmUrl = confirmLink(config, {
    subscriberId: subscriber.id,
    newsletterIds: newsletters.map((newsletter) => newsletter.id),
    expiresAt: new Date(Date.now() + config.confirmLinkDays * DAY * 1000),
  });
  const mail = personalise(await deps.mail.confirmation(newsletters), { confirm_url: confirmUrl });
  await enqueueMail(trx, {
    kind: 'confirmation',
    subscriberId: subscriber.id,
    to: subscriber.email,
    from: config.mailFrom,
    subject: confirmationSubject(newsletters),
    html: mail.html,
    text: mail.text,
    headers: confirmationHeaders(config),
  });
  if (!config.smtpUrl) {
    logger.info({ subscriberId: subscriber.id, confirmUrl }, 'confirmation link (no SMTP_URL set)');
  }
}

function unknownNewsletters(slugs: string[]): DomainError {
  return new DomainError(
    'invalid',
    'unknown_newsletter',
    `there is no newsletter to subscribe to called ${slugs.map((slug) => `"${slug}"`).join(', ')}`,
    { newsletters: slugs },
  );
}

// Whatever was typed is named back shortened, with anything unprintable as "?".
function shownSlug(slug: string): string {
  return Array.from(slug.replace(/[^\p{L}\p{N}\p{P}\p{S}\p{Zs}]/gu, '?'))
    .slice(0, 64)
    .join('');
}

function requestedNewsletters(
  slugs: string[],
  found: repository.RequestedNewsletter[],
): repository.RequestedNewsletter[] {
  const wanted = [...new Set(slugs)];
  const active = new Map(
    found.filter((row) => row.status === 'active').map((row) => [row.slug, row]),
  );
  const unknown = wanted.filter((slug) => !active.has(slug));
  if (unknown.length > 0) {
    throw unknownNewsletters(unknown);
  }
  return wanted.map((slug) => active.get(slug)!);
}

const DNS_TIMEOUT_MS = 3000;
const RECEIVING_KEPT_MS = 10 * 60_000;
const MAX_RECEIVING_DOMAINS = 10_000;
const receivingDomains = new Map<string, number>();
const NO_RECORDS = new Set(['ENOTFOUND', 'ENODATA']);

/**
 * Whether a domain takes mail: an MX record that is not RFC 7505's "no mail here" (exchange "."),
 * or else an A or AAAA record (RFC 5321's implicit MX). A resolver that fails or takes over 3 s
 * counts as yes: a slow resolver must not turn readers away. Only a yes is kept (ten minutes), to
 * save lookups; a no is asked again each time, so memory never turns a reader away.
 */
async function receivesMail(domain: string): Promise<boolean> {
  if ((receivingDomains.get(domain) ?? 0) > Date.now()) return true;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), DNS_TIMEOUT_MS);
  });
  const receives = await Promise.race([lookUpMailRecords(domain), timeout]);
  clearTimeout(timer);
  if (receives === false) return false;
  if (receives === true) {
    if (receivingDomains.size >= MAX_RECEIVING_DOMAINS) receivingDomains.clear();
    receivingDomains.set(domain, Date.now() + RECEIVING_KEPT_MS);
  }
  return true;
}

/** True or false from DNS's answers, undefined when a lookup failed without an answer. */
async function lookUpMailRecords(domain: string): Promise<boolean | undefined> {
  const answered = <T>(lookup: Promise<T[]>) =>
    lookup.then(
      (records) => records,
      (error: NodeJS.ErrnoException) => (NO_RECORDS.has(error.code ?? '') ? [] : undefined),
    );
  // Through dns.promises at call time: dns.promises.setServers replaces its resolver.
  const mx = await answered(dns.promises.resolveMx(domain));
  if (mx === undefined) return undefined;
  if (mx.length > 0) return mx.some((record) => !['', '.'].includes(record.exchange));
  const [a, aaaa] = await Promise.all([
    answered(dns.promises.resolve4(domain)),
    answered(dns.promises.resolve6(domain)),
  ]);
  if (a === undefined || aaaa === undefined) return undefined;
  return a.length + aaaa.length > 0;
}

// Subscribing and asking for a new link count against the same hourly limit of one inbox.
function addressLimitKey(mailbox: string): string {
  return `subscribe-address:${mailbox}`;
}

function tooManyForAddress(): DomainError {
  return rateLimited('too many attempts for this address; please try again in an hour');
}

function rateLimited(message: string): DomainError {
  return new DomainError('rate_limited', 'rate_limited', message);
}

export function invalidLink(): DomainError {
  return new DomainError(
    'invalid',
    'invalid_link',
    'this link is not valid: it may have been cut short or changed. Please copy the whole link from the email',
  );
}

interface LinkHolder {
  subscriber: repository.SubscriberRow;
  newsletterIds: number[];
}

async function holderOf(
  deps: SubscriptionDeps,
  token: string,
  purpose: TokenPurpose,
): Promise<LinkHolder & { expired: boolean }> {
  const check = checkLinkToken(deps.config, token, purpose);
  if (check.status === 'invalid') throw invalidLink();
  const subscriber = await repository.findSubscriberById(deps.db, check.claims.subscriberId);
  if (!subscriber) throw invalidLink();
  return {
    subscriber,
    newsletterIds: check.claims.newsletterIds,
    expired: check.status === 'expired',
  };
}

export interface ReaderNewsletter {
  id: number;
  slug: string;
  name: string;
  description: string;
  /** Archived newsletters can be left but not joined. */
  active: boolean;
  status: SubscriptionStatus | 'none';
}

async function readerNewsletters(
  db: Db,
  subscriberId: number,
  only?: number[],
): Promise<ReaderNewsletter[]> {
  const [rows, states] = await Promise.all([
    newsletterRepository.listNewsletters(db, {}),
    repository.subscriptionStates(db, subscriberId),
  ]);
  return rows
    .filter((row) => (only ? only.includes(row.id) : row.status === 'active' || states.has(row.id)))
    .map((row) => ({
      id: row.id,
      slug: row.slug,
      name: row.name,
      description: row.description,
      active: row.status === 'active',
      status: states.get(row.id) ?? 'none',
    }));
}

export interface ConfirmLinkState {
  state: 'ready' | 'confirmed' | 'already_confirmed' | 'nothing_to_confirm' | 'expired';
  newsletters: ReaderNewsletter[];
}

/** What the confirmation page shows before the button is pressed; changes nothing. */
export async function inspectConfirmLink(
  deps: SubscriptionDeps,
  token: string,
): Promise<ConfirmLinkState> {
  const holder = await holderOf(deps, token, 'confirm');
  const newsletters = await readerNewsletters(deps.db, holder.subscriber.id, holder.newsletterIds);
  return { state: confirmState(holder, newsletters), newsletters };
}

function confirmState(holder: { expired: boolean }, newsletters: ReaderNewsletter[]) {
  if (newsletters.some((newsletter) => newsletter.status === 'pending')) {
    return holder.expired ? 'expired' : 'ready';
  }
  if (newsletters.some((newsletter) => newsletter.status === 'confirmed'))
    return 'already_confirmed';
  return 'nothing_to_confirm';
}

/** The button on the confirmation page: confirms every pending newsletter of the link. */
export async function confirm(
  deps: SubscriptionDeps,
  token: string,
  requester: Requester,
): Promise<ConfirmLinkState> {
  const { db, config } = deps;
  const holder = await holderOf(deps, token, 'confirm');
  if (holder.expired || holder.subscriber.status === 'blocklisted')
    return inspectConfirmLink(deps, token);
  const newsletters = await readerNewsletters(db, holder.subscriber.id, holder.newsletterIds);
  const confirmable = newsletters.filter((newsletter) => newsletter.status === 'pending');
  if (confirmable.length === 0) return { state: confirmState(holder, newsletters), newsletters };

  const welcome = config.welcomeMail
    ? await Promise.all(
        (
          await newsletterRepository.findNewslettersBySlugs(
            db,
            confirmable.map((n) => n.slug),
          )
        ).map(async (row) => ({ row, compiled: await deps.mail.welcome(row) })),
      )
    : [];
  const changed = await db.transaction().execute(async (trx) => {
    if (await repository.isSuppressed(trx, holder.subscriber.email_normalized)) return false;
    const confirmed = await repository.confirmPending(
      trx,
      holder.subscriber.id,
      confirmable.map((newsletter) => newsletter.id),
    );
    await repository.appendConsentEvents(
      trx,
      confirmed.map((newsletterId) => ({
        subscriberId: holder.subscriber.id,
        newsletterId,
        action: 'confirmed' as const,
        ip: requester.ip,
        userAgent: requester.userAgent,
        source: 'confirmation link',
        consentTextVersion: config.consentTextVersion,
      })),
    );
    for (const { row, compiled } of welcome.filter(({ row }) => confirmed.includes(row.id))) {
      const links = readerLinks(config, {
        subscriberId: holder.subscriber.id,
        newsletterId: row.id,
      });
      const mail = personalise(compiled, {
        unsubscribe_url: links.unsubscribeUrl,
        preferences_url: links.preferencesUrl,
      });
      await enqueueMail(trx, {
        kind: 'welcome',
        subscriberId: holder.subscriber.id,
        to: holder.subscriber.email,
        from: formatSender(row.from_name, row.from_email),
        subject: `Welcome to ${row.name}`,
        html: mail.html,
        text: mail.text,
        headers: {
          'List-Id': listId(row.name, `${row.slug}.${config.messageIdDomain}`),
          'List-Unsubscribe': `<${links.unsubscribeUrl}>`,
          'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
          ...(row.reply_to ? { 'Reply-To': row.reply_to } : {}),
        },
      });
    }
    return confirmed.length > 0;
  });
  const after = await readerNewsletters(db, holder.subscriber.id, holder.newsletterIds);
  return { state: changed ? 'confirmed' : confirmState(holder, after), newsletters: after };
}

/** An expired confirmation link offers a fresh one; the daily cap still applies. */
export async function resendConfirmation(deps: SubscriptionDeps, token: string): Promise<void> {
  const holder = await holderOf(deps, token, 'confirm');
  const addressKey = addressLimitKey(mailboxOf(holder.subscriber.email_normalized));
  const limits = await repository.hitRateLimits(deps.db, [
    { key: addressKey, windowSeconds: HOUR },
  ]);
  const hits = limits.get(addressKey) ?? 0;
  if (hits > deps.config.subscribeLimitPerAddress) {
    throw tooManyForAddress();
  }
  const newsletters = await readerNewsletters(deps.db, holder.subscriber.id, holder.newsletterIds);
  const pendingSlugs = newsletters.filter((n) => n.status === 'pending').map((n) => n.slug);
  if (pendingSlugs.length === 0 || holder.subscriber.status === 'blocklisted') return;
  const rows = await newsletterRepository.findNewslettersBySlugs(deps.db, pendingSlugs);
  await deps.db.transaction().execute(async (trx) => {
    if (await repository.isSuppressed(trx, holder.subscriber.email_normalized)) return;
    await queueConfirmation(
      trx,
      deps,
      holder.subscriber,
      rows.filter((row) => row.status === 'active'),
    );
  });
}

/** The reader and newsletter of a valid unsubscribe link, to link on to preferences. */
export function claimsOfUnsubscribeLink(
  deps: SubscriptionDeps,
  token: string,
): { subscriberId: number; newsletterId: number } | undefined {
  const check = checkLinkToken(deps.config, token, 'unsubscribe');
  if (check.status !== 'valid') return undefined;
  return { subscriberId: check.claims.subscriberId, newsletterId: check.claims.newsletterIds[0]! };
}

/** What the unsubscribe page shows; changes nothing. */
export async function inspectUnsubscribeLink(
  deps: SubscriptionDeps,
  token: string,
): Promise<{ newsletters: ReaderNewsletter[]; others: ReaderNewsletter[] }> {
  const holder = await holderOf(deps, token, 'unsubscribe');
  const all = await readerNewsletters(deps.db, holder.subscriber.id);
  return {
    newsletters: all.filter((newsletter) => holder.newsletterIds.includes(newsletter.id)),
    others: all.filter(
      (newsletter) =>
        !holder.newsletterIds.includes(newsletter.id) &&
        (newsletter.status === 'confirmed' || newsletter.status === 'pending'),
    ),
  };
}

/**
 * Unsubscribes the link's newsletter, or every newsletter. Idempotent: a repeat changes nothing
 * and records nothing. Takes effect for every send that has not yet mailed this reader.
 */
export async function unsubscribe(
  deps: SubscriptionDeps,
  token: string,
  scope: 'newsletter' | 'all',
  requester: Requester & { source: string },
): Promise<{ newsletters: ReaderNewsletter[] }> {
  const { db, config } = deps;
  const holder = await holderOf(deps, token, 'unsubscribe');
  await db.transaction().execute(async (trx) => {
    const changed = await repository.unsubscribe(
      trx,
      holder.subscriber.id,
      scope === 'all' ? 'all' : holder.newsletterIds,
    );
    await repository.appendConsentEvents(
      trx,
      changed.map((newsletterId) => ({
        subscriberId: holder.subscriber.id,
        newsletterId,
        action: 'unsubscribed' as const,
        ip: requester.ip,
        userAgent: requester.userAgent,
        source: requester.source,
        consentTextVersion: config.consentTextVersion,
      })),
    );
  });
  const all = await readerNewsletters(db, holder.subscriber.id);
  return {
    newsletters:
      scope === 'all'
        ? all.filter((n) => n.status === 'unsubscribed')
        : all.filter((n) => holder.newsletterIds.includes(n.id)),
  };
}

/** Every active newsletter with the reader's state in it; changes nothing. */
export async function preferences(
  deps: SubscriptionDeps,
  token: string,
): Promise<{ newsletters: ReaderNewsletter[] }> {
  const holder = await holderOf(deps, token, 'preferences');
  const all = await readerNewsletters(deps.db, holder.subscriber.id);
  return { newsletters: all };
}

/**
 * Saves the ticked newsletters: joins the ticked ones at once (the link proves the mailbox) and
 * leaves the unticked ones. Slugs of archived or unknown newsletters are refused.
 */
export async function savePreferences(
  deps: SubscriptionDeps,
  token: string,
  slugs: string[],
  requester: Requester,
): Promise<{ newsletters: ReaderNewsletter[] }> {
  const { db, config } = deps;
  const holder = await holderOf(deps, token, 'preferences');
  const all = await readerNewsletters(db, holder.subscriber.id);
  const wanted = new Set(slugs);
  const unknown = [...wanted].filter(
    (slug) =>
      !all.some(
        (newsletter) =>
          newsletter.slug === slug && (newsletter.active || newsletter.status === 'confirmed'),
      ),
  );
  if (unknown.length > 0) {
    throw unknownNewsletters(unknown);
  }
  const join = all.filter((n) => wanted.has(n.slug) && n.status !== 'confirmed').map((n) => n.id);
  const leave = all.filter((n) => !wanted.has(n.slug) && n.status === 'confirmed').map((n) => n.id);
  if (holder.subscriber.status !== 'blocklisted') {
    await db.transaction().execute(async (trx) => {
      const suppressed = await repository.isSuppressed(trx, holder.subscriber.email_normalized);
      const joined = suppressed
        ? []
        : await repository.confirmDirectly(trx, holder.subscriber.id, join, 'preferences');
      const left = await repository.unsubscribe(trx, holder.subscriber.id, leave);
      const event = (newsletterId: number, action: 'requested' | 'confirmed' | 'unsubscribed') => ({
        subscriberId: holder.subscriber.id,
        newsletterId,
        action,
        ip: requester.ip,
        userAgent: requester.userAgent,
        source: 'preferences',
        consentTextVersion: config.consentTextVersion,
      });
      await repository.appendConsentEvents(trx, [
        ...joined.flatMap((id) => [event(id, 'requested'), event(id, 'confirmed')]),
        ...left.map((id) => event(id, 'unsubscribed')),
      ]);
    });
  }
  return preferences(deps, token);
}

function formatSender(name: string, address: string): string {
  return `${quoted(name)} <${address}>`;
}

// nodemailer would MIME-encode a quoted or non-ASCII name together with the id, so such names are left out.
function listId(name: string, id: string): string {
  return /^[\w .'-]+$/.test(name) ? `${name} <${id}>` : `<${id}>`;
}

// Newsletter names are free of control characters (newsletters.schemas.ts); quotes are escaped here.
function quoted(name: string): string {
  return `"${name.replace(/["\\]/g, '\\$&')}"`;
}

export interface Reader {
  email: string;
  status: SubscriptionStatus;
  requestedAt: Date;
  confirmedAt: Date | null;
  unsubscribedAt: Date | null;
  source: string | null;
}

/** One page of a newsletter's readers for editors; the cursor is opaque to them. */
export async function listReaders(
  db: Db,
  slug: string,
  query: { status?: SubscriptionStatus; cursor?: string; limit: number },
): Promise<{ readers: Reader[]; nextCursor: string | null }> {
  const newsletter = await newsletterRepository.findNewsletterBySlug(db, slug);
  if (!newsletter) throw newsletterNotFound(slug);
  const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor);
  const rows = await repository.listReaders(db, newsletter.id, {
    status: query.status,
    afterSubscriberId: after,
    limit: query.limit + 1,
  });
  const page = rows.slice(0, query.limit);
  const last = page.at(-1);
  return {
    readers: page.map((row) => ({
      email: row.email,
      status: row.status,
      requestedAt: row.requested_at,
      confirmedAt: row.confirmed_at,
      unsubscribedAt: row.unsubscribed_at,
      source: row.source,
    })),
    nextCursor: rows.length > query.limit && last ? encodeCursor(last.subscriber_id) : null,
  };
}

function encodeCursor(subscriberId: number): string {
  return Buffer.from(`s${subscriberId}`).toString('base64url');
}

function decodeCursor(cursor: string): number {
  const match = /^s(\d{1,15})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!match) {
    throw new DomainError('invalid', 'invalid_cursor', 'the cursor is not one this API handed out');
  }
  return Number(match[1]);
}
