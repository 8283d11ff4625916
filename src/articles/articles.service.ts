import type { ArticleRow, Db } from '../db/database.ts';
import { isUniqueViolation } from '../db/constraint.ts';
import { DomainError } from '../errors.ts';
import * as repository from './articles.repository.ts';
import type { ArticleInput, ArticleListQuery } from './articles.schemas.ts';

export interface Article {
  id: number;
  externalId: string | null;
  url: string;
  title: string;
  summary: string;
  authors: string[];
  imageUrl: string | null;
  imageAlt: string | null;
  imageWidth: number | null;
  imageHeight: number | null;
  section: string | null;
  tags: string[];
  publishedAt: Date;
  updatedAt: Date | null;
  source: string;
  createdAt: Date;
}

/** An article as it arrives from the API or a feed, already validated and reduced to text. */
export interface ArticleDraft {
  externalId?: string | null;
  url: string;
  title: string;
  summary?: string;
  authors?: string[];
  imageUrl?: string | null;
  imageAlt?: string | null;
  imageWidth?: number | null;
  imageHeight?: number | null;
  section?: string | null;
  tags?: string[];
  /** null: undated (feeds); stamped now when first seen, kept when seen again. */
  publishedAt: Date | null;
  updatedAt?: Date | null;
}

export interface UpsertResult {
  articles: Article[];
  created: number;
  updated: number;
}

export function draftFromInput(input: ArticleInput): ArticleDraft {
  return { ...input, publishedAt: input.publishedAt };
}

/**
 * Creates or replaces articles keyed by externalId, else by canonical URL, all or none.
 * Run it inside a transaction so a batch is never half-stored.
 */
export async function upsertArticles(
  trx: Db,
  drafts: ArticleDraft[],
  source: string,
): Promise<UpsertResult> {
  refuseDuplicates(drafts);
  const result: UpsertResult = { articles: [], created: 0, updated: 0 };
  for (const draft of drafts) {
    const { row, created } = await upsertOne(trx, draft, source);
    result.articles.push(toArticle(row));
    if (created) result.created += 1;
    else result.updated += 1;
  }
  return result;
}

async function upsertOne(
  trx: Db,
  draft: ArticleDraft,
  source: string,
  retried = false,
): Promise<{ row: ArticleRow; created: boolean }> {
  const byExternalId = draft.externalId
    ? await repository.findArticleByExternalId(trx, draft.externalId)
    : undefined;
  const existing = byExternalId ?? (await repository.findArticleByUrl(trx, draft.url));
  if (
    existing &&
    !byExternalId &&
    draft.externalId &&
    existing.external_id &&
    existing.external_id !== draft.externalId
  ) {
    throw new DomainError(
      'conflict',
      'url_taken',
      `the url ${draft.url} belongs to the article with externalId "${existing.external_id}"`,
      { url: draft.url, externalId: existing.external_id },
    );
  }
  const values = {
    external_id: draft.externalId ?? existing?.external_id ?? null,
    url: draft.url,
    title: draft.title,
    summary: draft.summary ?? '',
    authors: draft.authors ?? [],
    image_url: draft.imageUrl ?? null,
    image_alt: draft.imageUrl ? (draft.imageAlt ?? null) : null,
    image_width: draft.imageUrl ? (draft.imageWidth ?? null) : null,
    image_height: draft.imageUrl ? (draft.imageHeight ?? null) : null,
    section: draft.section ?? null,
    tags: [...new Set((draft.tags ?? []).map((tag) => tag.toLowerCase()))],
    published_at: draft.publishedAt,
    updated_at: draft.updatedAt ?? null,
    source,
  };
  try {
    if (existing) {
      return { row: await repository.replaceArticle(trx, existing.id, values), created: false };
    }
    const inserted = await repository.insertArticle(trx, values);
    if (inserted) return { row: inserted, created: true };
  } catch (error) {
    if (isUniqueViolation(error, 'articles_url_key')) {
      throw new DomainError(
        'conflict',
        'url_taken',
        `another article already has the url ${draft.url}`,
        { url: draft.url },
      );
    }
    throw error;
  }
  // A concurrent push stored it between the lookup and the insert: it is now an update.
  if (retried) {
    throw new DomainError(
      'conflict',
      'article_conflict',
      `the article ${draft.url} was stored by another request at the same moment; push it again`,
    );
  }
  return upsertOne(trx, draft, source, true);
}

function refuseDuplicates(drafts: ArticleDraft[]): void {
  const seen = new Map<string, number>();
  drafts.forEach((draft, index) => {
    for (const key of [
      draft.externalId ? `externalId ${draft.externalId}` : undefined,
      `url ${draft.url}`,
    ]) {
      if (!key) continue;
      const first = seen.get(key);
      if (first !== undefined) {
        throw new DomainError(
          'invalid',
          'duplicate_article',
          `articles ${first} and ${index} of the batch have the same ${key}`,
          { indexes: [first, index] },
        );
      }
      seen.set(key, index);
    }
  });
}

export interface ArticlePage {
  articles: Article[];
  nextCursor: string | null;
}

export async function listArticles(db: Db, query: ArticleListQuery): Promise<ArticlePage> {
  const rows = await repository.listArticles(db, {
    section: query.section,
    tag: query.tag,
    since: query.since,
    before: query.cursor ? readCursor(query.cursor) : undefined,
    limit: query.limit + 1,
  });
  const page = rows.slice(0, query.limit);
  const last = page.at(-1);
  return {
    articles: page.map(toArticle),
    nextCursor: rows.length > query.limit && last ? writeCursor(last) : null,
  };
}

function writeCursor(row: ArticleRow): string {
  return Buffer.from(`${row.published_at.toISOString()}|${row.id}`).toString('base64url');
}

function readCursor(cursor: string): { publishedAt: Date; id: number } {
  const [iso, id] = Buffer.from(cursor, 'base64url').toString('utf8').split('|');
  const publishedAt = new Date(iso ?? '');
  if (!iso || Number.isNaN(publishedAt.getTime()) || !/^\d{1,15}$/.test(id ?? '')) {
    throw new DomainError('invalid', 'invalid_cursor', 'the cursor is not one this API gave out');
  }
  return { publishedAt, id: Number(id) };
}

export function toArticle(row: ArticleRow): Article {
  return {
    id: row.id,
    externalId: row.external_id,
    url: row.url,
    title: row.title,
    summary: row.summary,
    authors: row.authors,
    imageUrl: row.image_url,
    imageAlt: row.image_alt,
    imageWidth: row.image_width,
    imageHeight: row.image_height,
    section: row.section,
    tags: row.tags,
    publishedAt: row.published_at,
    updatedAt: row.updated_at,
    source: row.source,
    createdAt: row.created_at,
  };
}
