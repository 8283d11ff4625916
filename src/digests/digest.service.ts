import * as articleRepository from '../articles/articles.repository.ts';
import { toArticle, type Article } from '../articles/articles.service.ts';
import type { Config } from '../config.ts';
import type { Db } from '../db/database.ts';
import { DomainError } from '../errors.ts';
import { getNewsletter, type Newsletter } from '../newsletters/newsletters.service.ts';
import { renderDigest, type Digest } from './digest-content.ts';
import { lastSendCreatedAt } from './digests.repository.ts';
import type { MailTemplates } from './mail-templates.ts';

export type { Digest } from './digest-content.ts';

/** The most articles an editor may pick by hand for one digest. */
export const MAX_CHOSEN_ARTICLES = 50;

export interface DigestDeps {
  templates: MailTemplates;
  config: Pick<Config, 'archiveUrl' | 'digestTimeZone'>;
}

export interface DigestRequest {
  /** The editor's own choice, in this order; otherwise the newsletter's selection rules pick. */
  articleIds?: number[];
  /** Start of the "since the last send" window; read from sends when not given. */
  since?: Date;
  now?: Date;
}

/**
 * The digest a send created now would contain: subject, preheader, html and text with the
 * readers' `%%{unsubscribe_url}%%` and `%%{preferences_url}%%` still to be spliced in.
 * Throws 422 `nothing_to_send` rather than ever producing an empty mail.
 */
export async function buildDigest(
  db: Db,
  deps: DigestDeps,
  newsletterSlug: string,
  request: DigestRequest = {},
): Promise<Digest> {
  const newsletter = await getNewsletter(db, newsletterSlug);
  if (newsletter.status === 'archived') {
    throw new DomainError(
      'unprocessable',
      'newsletter_archived',
      `the newsletter "${newsletterSlug}" is archived; it sends no more digests`,
    );
  }
  const now = request.now ?? new Date();
  const articles = request.articleIds
    ? await chosenArticles(db, request.articleIds)
    : await latestArticles(db, newsletter, now, request.since);
  return renderDigest(deps.templates, newsletter, articles, {
    issuedAt: now,
    timeZone: deps.config.digestTimeZone,
    archiveUrl: deps.config.archiveUrl,
  });
}

async function chosenArticles(db: Db, ids: number[]): Promise<Article[]> {
  const wanted = [...new Set(ids)];
  if (wanted.length === 0) {
    throw new DomainError('unprocessable', 'nothing_to_send', 'no articles were chosen');
  }
  if (wanted.length > MAX_CHOSEN_ARTICLES) {
    throw new DomainError(
      'invalid',
      'too_many_articles',
      `a digest carries at most ${MAX_CHOSEN_ARTICLES} articles; ${wanted.length} were chosen`,
    );
  }
  const rows = await articleRepository.findArticlesByIds(db, wanted);
  const byId = new Map(rows.map((row) => [row.id, row]));
  const missing = wanted.filter((id) => !byId.has(id));
  if (missing.length > 0) {
    throw new DomainError(
      'unprocessable',
      'article_not_found',
      `no article with id ${missing.join(', ')}`,
      { missing },
    );
  }
  return wanted.map((id) => toArticle(byId.get(id)!));
}

async function latestArticles(
  db: Db,
  newsletter: Newsletter,
  now: Date,
  since: Date | undefined,
): Promise<Article[]> {
  const hoursAgo = new Date(now.getTime() - newsletter.digestWindowHours * 3600_000);
  const lastSend =
    newsletter.digestWindow === 'since_last_send'
      ? (since ?? (await lastSendCreatedAt(db, newsletter.id)))
      : undefined;
  const publishedAfter = lastSend ?? hoursAgo;
  const rows = await articleRepository.selectDigestArticles(db, {
    sections: newsletter.digestSections,
    tags: newsletter.digestTags,
    publishedAfter,
    publishedBy: now,
    limit: newsletter.digestMaxArticles,
  });
  if (rows.length === 0) {
    const window = lastSend
      ? `since the last send (${lastSend.toISOString()})`
      : `in the last ${newsletter.digestWindowHours} hours`;
    const rules = [
      newsletter.digestSections.length > 0
        ? `sections ${newsletter.digestSections.join(', ')}`
        : '',
      newsletter.digestTags.length > 0 ? `tags ${newsletter.digestTags.join(', ')}` : '',
    ].filter(Boolean);
    throw new DomainError(
      'unprocessable',
      'nothing_to_send',
      `no article was published ${window}${rules.length > 0 ? ` in ${rules.join(' or ')}` : ''}: there is nothing to send`,
      { publishedAfter: publishedAfter.toISOString() },
    );
  }
  return rows.map(toArticle);
}
