import addressparser from 'nodemailer/lib/addressparser';
import type { Db, NewsletterRow } from '../db/database.ts';
import { isUniqueViolation } from '../db/constraint.ts';
import {
  digestSettingsOf,
  digestSettingsRow,
  type DigestSettings,
} from '../digests/digest-settings.ts';
import { DomainError } from '../errors.ts';
import * as repository from './newsletters.repository.ts';
import type { CreateNewsletterInput, UpdateNewsletterInput } from './newsletters.schemas.ts';

export interface Newsletter extends DigestSettings {
  id: number;
  slug: string;
  name: string;
  description: string;
  fromName: string;
  fromEmail: string;
  replyTo: string | null;
  locale: string;
  status: 'active' | 'archived';
  subscribers: repository.SubscriberCounts;
  createdAt: Date;
  updatedAt: Date;
}

export interface Sender {
  name: string;
  address: string;
}

/** Splits MAIL_FROM ("Name <address>") into the defaults a new newsletter takes. */
export function parseSender(mailFrom: string): Sender {
  const [first] = addressparser(mailFrom, { flatten: true });
  return { name: first?.name || 'Broadsheet', address: first?.address || 'newsletters@localhost' };
}

export async function createNewsletter(
  db: Db,
  input: CreateNewsletterInput,
  defaultSender: Sender,
): Promise<Newsletter> {
  try {
    const row = await repository.insertNewsletter(db, {
      slug: input.slug,
      name: input.name,
      description: input.description ?? '',
      from_name: input.fromName ?? defaultSender.name,
      from_email: input.fromEmail ?? defaultSender.address,
      reply_to: input.replyTo ?? null,
      locale: input.locale ?? 'en',
      ...digestSettingsRow(input),
    });
    return toNewsletter(row, { pending: 0, confirmed: 0, unsubscribed: 0 });
  } catch (error) {
    if (isUniqueViolation(error, 'newsletters_slug_key')) {
      throw new DomainError(
        'conflict',
        'slug_taken',
        `a newsletter with slug "${input.slug}" already exists`,
      );
    }
    throw error;
  }
}

export async function getNewsletter(db: Db, slug: string): Promise<Newsletter> {
  const row = await repository.findNewsletterBySlug(db, slug);
  if (!row) throw newsletterNotFound(slug);
  const counts = await repository.countSubscriptionsByStatus(db, [row.id]);
  return toNewsletter(row, counts.get(row.id)!);
}

export async function listNewsletters(
  db: Db,
  filter: { status?: 'active' | 'archived' },
): Promise<Newsletter[]> {
  const rows = await repository.listNewsletters(db, filter);
  const counts = await repository.countSubscriptionsByStatus(
    db,
    rows.map((row) => row.id),
  );
  return rows.map((row) => toNewsletter(row, counts.get(row.id)!));
}

export async function updateNewsletter(
  db: Db,
  slug: string,
  input: UpdateNewsletterInput,
): Promise<Newsletter> {
  const row = await repository.updateNewsletter(db, slug, {
    name: input.name,
    description: input.description,
    from_name: input.fromName,
    from_email: input.fromEmail,
    reply_to: input.replyTo,
    locale: input.locale,
    status: input.status,
    ...digestSettingsRow(input),
  });
  if (!row) throw newsletterNotFound(slug);
  return getNewsletter(db, row.slug);
}

export function newsletterNotFound(slug: string): DomainError {
  return new DomainError('not_found', 'newsletter_not_found', `no newsletter with slug "${slug}"`);
}

function toNewsletter(row: NewsletterRow, subscribers: repository.SubscriberCounts): Newsletter {
  return {
    id: row.id,
    slug: row.slug,
    name: row.name,
    description: row.description,
    fromName: row.from_name,
    fromEmail: row.from_email,
    replyTo: row.reply_to,
    locale: row.locale,
    status: row.status,
    subscribers,
    ...digestSettingsOf(row),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}
