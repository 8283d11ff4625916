import { readFile } from 'node:fs/promises';
import type { Db } from '../db/database.ts';
import { DomainError } from '../errors.ts';
import { isWebUrl } from './articles.schemas.ts';
import { upsertArticles } from './articles.service.ts';
import { readFeed } from './feed-entries.ts';

/** A feed bigger than this is refused before it is parsed. */
export const FEED_BYTE_LIMIT = 5 * 1024 * 1024;
const FETCH_TIMEOUT_MS = 15_000;

export interface FeedDocument {
  xml: string;
  /** Where it was fetched from; undefined for a local file. */
  url?: string;
}

export interface FeedImport {
  feed: string;
  format: 'rss' | 'atom';
  created: number;
  updated: number;
  skipped: { index: number; reason: string }[];
}

/** Fetches an http(s) feed, or reads a local file when `source` is not a URL. */
export async function loadFeed(source: string): Promise<FeedDocument> {
  if (isWebUrl(source)) return { xml: await fetchFeed(source), url: source };
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(source)) {
    throw new DomainError(
      'invalid',
      'feed_unreachable',
      `${source} is neither an http(s) URL nor a file`,
    );
  }
  try {
    const bytes = await readFile(source);
    if (bytes.length > FEED_BYTE_LIMIT) throw feedTooLarge(source);
    return { xml: decode(bytes) };
  } catch (error) {
    if (error instanceof DomainError) throw error;
    throw new DomainError(
      'unprocessable',
      'feed_unreachable',
      `cannot read the feed file ${source}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
    );
  }
}

export async function fetchFeed(url: string): Promise<string> {
  let response: Response;
  try {
    response = await fetch(url, {
      headers: {
        accept:
          'application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.1',
        'user-agent': 'Broadsheet feed importer',
      },
      redirect: 'follow',
      signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
    });
  } catch (error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    throw new DomainError(
      'unprocessable',
      'feed_unreachable',
      `cannot fetch the feed ${url}: ${cause?.code ?? cause?.message ?? (error as Error).message}`,
    );
  }
  if (!response.ok) {
    await response.body?.cancel();
    throw new DomainError(
      'unprocessable',
      'feed_unreachable',
      `the feed ${url} answered HTTP ${response.status}`,
      { status: response.status },
    );
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of response.body ?? []) {
    size += chunk.length;
    if (size > FEED_BYTE_LIMIT) {
      await response.body?.cancel().catch(() => undefined);
      throw feedTooLarge(url);
    }
    chunks.push(chunk);
  }
  return decode(Buffer.concat(chunks));
}

/**
 * Reads a feed document into articles in one transaction: all of its entries or, when the
 * feed is malformed or a write fails, none.
 */
export async function importFeed(db: Db, document: FeedDocument): Promise<FeedImport> {
  const entries = readFeed(document.xml, document.url);
  const source = document.url ? `feed:${document.url}`.slice(0, 2100) : 'feed:file';
  const stored =
    entries.articles.length === 0
      ? { created: 0, updated: 0 }
      : await db.transaction().execute((trx) => upsertArticles(trx, entries.articles, source));
  return {
    feed: entries.title,
    format: entries.format,
    created: stored.created,
    updated: stored.updated,
    skipped: entries.skipped,
  };
}

function feedTooLarge(source: string): DomainError {
  return new DomainError(
    'unprocessable',
    'feed_too_large',
    `the feed ${source} is larger than ${FEED_BYTE_LIMIT / 1024 / 1024} MB`,
  );
}

// XML names its own encoding; UTF-8 unless the declaration says otherwise.
function decode(bytes: Buffer): string {
  const head = bytes.subarray(0, 200).toString('latin1');
  const declared = /<\?xml[^>]*encoding=["']([\w.-]+)["']/i.exec(head)?.[1];
  try {
    return new TextDecoder(declared ?? 'utf-8').decode(bytes);
  } catch {
    return new TextDecoder('utf-8').decode(bytes);
  }
}
