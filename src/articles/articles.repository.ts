import { sql, type Insertable } from 'kysely';
import type { ArticleRow, ArticlesTable, Db } from '../db/database.ts';

export type ArticleValues = Omit<Insertable<ArticlesTable>, 'id' | 'created_at' | 'ingested_at'>;

export async function findArticleByExternalId(
  db: Db,
  externalId: string,
): Promise<ArticleRow | undefined> {
  return db
    .selectFrom('articles')
    .selectAll()
    .where('external_id', '=', externalId)
    .executeTakeFirst();
}

export async function findArticleByUrl(db: Db, url: string): Promise<ArticleRow | undefined> {
  return db.selectFrom('articles').selectAll().where('url', '=', url).executeTakeFirst();
}

export async function findArticlesByIds(db: Db, ids: number[]): Promise<ArticleRow[]> {
  if (ids.length === 0) return [];
  return db.selectFrom('articles').selectAll().where('id', 'in', ids).execute();
}

/**
 * An article without a publication date is stamped now when first seen. Undefined when another
 * request stored the same url or externalId first: the caller looks it up again.
 */
export async function insertArticle(
  db: Db,
  values: Omit<ArticleValues, 'published_at'> & { published_at: Date | null },
): Promise<ArticleRow | undefined> {
  return db
    .insertInto('articles')
    .values({
      ...values,
      authors: sql<string[]>`${values.authors ?? []}::text[]`,
      tags: sql<string[]>`${values.tags ?? []}::text[]`,
      published_at: values.published_at ?? sql<Date>`now()`,
    })
    .onConflict((conflict) => conflict.doNothing())
    .returningAll()
    .executeTakeFirst();
}

/** Replaces what was pushed before; an undated re-import keeps the first publication date. */
export async function replaceArticle(
  db: Db,
  id: number,
  values: Omit<ArticleValues, 'published_at'> & { published_at: Date | null },
): Promise<ArticleRow> {
  return db
    .updateTable('articles')
    .set({
      ...values,
      authors: sql<string[]>`${values.authors ?? []}::text[]`,
      tags: sql<string[]>`${values.tags ?? []}::text[]`,
      published_at: values.published_at ?? sql<Date>`published_at`,
      ingested_at: sql<Date>`now()`,
    })
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirstOrThrow();
}

export interface ArticleFilter {
  section?: string;
  tag?: string;
  since?: Date;
  /** Keyset position: rows strictly older than this (published_at, id). */
  before?: { publishedAt: Date; id: number };
  limit: number;
}

export async function listArticles(db: Db, filter: ArticleFilter): Promise<ArticleRow[]> {
  let query = db
    .selectFrom('articles')
    .selectAll()
    .orderBy('published_at', 'desc')
    .orderBy('id', 'desc')
    .limit(filter.limit);
  if (filter.section) query = query.where(sql<boolean>`lower(section) = lower(${filter.section})`);
  if (filter.tag)
    query = query.where(sql<boolean>`tags @> array[${filter.tag.toLowerCase()}]::text[]`);
  if (filter.since) query = query.where('published_at', '>=', filter.since);
  if (filter.before) {
    const { publishedAt, id } = filter.before;
    query = query.where(sql<boolean>`(published_at, id) < (${publishedAt}, ${id})`);
  }
  return query.execute();
}

export interface DigestSelection {
  sections: string[];
  tags: string[];
  publishedAfter: Date;
  publishedBy: Date;
  limit: number;
}

/**
 * The newest articles a digest may carry: published inside the window (never in the future)
 * and, when the newsletter names any, in one of its sections or carrying one of its tags.
 */
export async function selectDigestArticles(
  db: Db,
  selection: DigestSelection,
): Promise<ArticleRow[]> {
  const sections = selection.sections.map((section) => section.toLowerCase());
  let query = db
    .selectFrom('articles')
    .selectAll()
    .where('published_at', '>', selection.publishedAfter)
    .where('published_at', '<=', selection.publishedBy)
    .orderBy('published_at', 'desc')
    .orderBy('id', 'desc')
    .limit(selection.limit);
  if (sections.length > 0 || selection.tags.length > 0) {
    query = query.where((eb) =>
      eb.or([
        sql<boolean>`lower(section) = any(${sections}::text[])`,
        sql<boolean>`tags && ${selection.tags}::text[]`,
      ]),
    );
  }
  return query.execute();
}
