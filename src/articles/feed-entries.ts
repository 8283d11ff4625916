import { XMLValidator } from 'fast-xml-parser';
import { DetectError, parseFeed } from 'feedsmith';
import { DomainError } from '../errors.ts';
import { collapseWhitespace, readText, shorten } from './article-text.ts';
import { canonicalUrl, isWebUrl } from './articles.schemas.ts';
import type { ArticleDraft } from './articles.service.ts';

/** More entries than this is not a news feed but an archive dump. */
export const FEED_ENTRY_LIMIT = 500;

export interface FeedEntries {
  format: 'rss' | 'atom';
  title: string;
  articles: ArticleDraft[];
  /** Entries that cannot be articles, by position in the feed (0-based), with the reason. */
  skipped: { index: number; reason: string }[];
}

/** What feedsmith gives for an RSS item or an Atom entry, reduced to what an article needs. */
interface RawEntry {
  link?: string;
  title?: string;
  titleIsHtml: boolean;
  summary?: string;
  summaryIsHtml: boolean;
  authors: string[];
  categories: string[];
  published?: string;
  updated?: string;
  image?: { url: string; alt?: string; width?: number; height?: number };
}

type Parsed = ReturnType<typeof parseFeed>;
type RssItem = NonNullable<Extract<Parsed, { format: 'rss' }>['feed']['items']>[number];
type AtomEntry = NonNullable<Extract<Parsed, { format: 'atom' }>['feed']['entries']>[number];
type MediaOf<T> = T extends { media?: infer M } ? NonNullable<M> : never;

/**
 * Reads an RSS 2.0 or Atom document into article drafts. Relative links are resolved against
 * the feed's site link, else the address it came from. Malformed XML or another format throws;
 * nothing is read half-way.
 */
export function readFeed(xml: string, fetchedFrom: string | undefined): FeedEntries {
  const valid = XMLValidator.validate(xml);
  if (valid !== true) {
    throw new DomainError(
      'unprocessable',
      'feed_malformed',
      `the feed is not well-formed XML at line ${valid.err.line}: ${valid.err.msg}`,
      { line: valid.err.line, column: valid.err.col },
    );
  }
  let parsed: Parsed;
  try {
    parsed = parseFeed(xml);
  } catch (error) {
    const what = error instanceof DetectError ? 'neither RSS nor Atom' : 'not a readable feed';
    throw new DomainError('unprocessable', 'feed_unsupported', `the document is ${what}`);
  }
  let title: string;
  let site: string | undefined;
  let raw: RawEntry[];
  if (parsed.format === 'rss') {
    title = parsed.feed.title ?? '';
    site = parsed.feed.link;
    raw = (parsed.feed.items ?? []).map(fromRssItem);
  } else if (parsed.format === 'atom') {
    title = parsed.feed.title?.value ?? '';
    site = alternateLink(parsed.feed.links);
    raw = (parsed.feed.entries ?? []).map(fromAtomEntry);
  } else {
    throw new DomainError(
      'unprocessable',
      'feed_unsupported',
      `the document is a ${parsed.format} feed; RSS 2.0 and Atom are read`,
    );
  }
  if (raw.length > FEED_ENTRY_LIMIT) {
    throw new DomainError(
      'unprocessable',
      'feed_too_large',
      `the feed has ${raw.length} entries; at most ${FEED_ENTRY_LIMIT} are read`,
    );
  }
  const base = [site, fetchedFrom].find((url) => url && isWebUrl(url));
  const result: FeedEntries = {
    format: parsed.format,
    title: collapseWhitespace(title),
    articles: [],
    skipped: [],
  };
  const seen = new Set<string>();
  raw.forEach((entry, index) => {
    const article = toDraft(entry, base);
    if (typeof article === 'string') result.skipped.push({ index, reason: article });
    else if (seen.has(article.url))
      result.skipped.push({ index, reason: 'repeats an earlier link' });
    else {
      seen.add(article.url);
      result.articles.push(article);
    }
  });
  return result;
}

function toDraft(entry: RawEntry, base: string | undefined): ArticleDraft | string {
  const url = absolute(entry.link, base);
  if (!url) return entry.link ? `link ${entry.link} is not an http(s) address` : 'has no link';
  const title = shorten(textOf(entry.title, entry.titleIsHtml), 300);
  if (!title) return 'has no title';
  const imageUrl = absolute(entry.image?.url, base);
  const categories = entry.categories
    .map((name) => shorten(collapseWhitespace(name), 60))
    .filter(Boolean);
  const hasSize = Boolean(entry.image?.width && entry.image.height);
  return {
    url,
    title,
    summary: shorten(textOf(entry.summary, entry.summaryIsHtml), 2000),
    authors: entry.authors
      .map((name) => shorten(readText(name).text, 120))
      .filter(Boolean)
      .slice(0, 10),
    imageUrl: imageUrl ?? null,
    imageAlt:
      imageUrl && entry.image?.alt ? shorten(readText(entry.image.alt).text, 300) || null : null,
    imageWidth: imageUrl && hasSize ? clampDimension(entry.image!.width!) : null,
    imageHeight: imageUrl && hasSize ? clampDimension(entry.image!.height!) : null,
    section: categories[0] ?? null,
    tags: categories.slice(0, 30),
    publishedAt: dateOf(entry.published) ?? dateOf(entry.updated) ?? null,
    updatedAt: dateOf(entry.updated) ?? null,
  };
}

function fromRssItem(item: RssItem): RawEntry {
  const permalink = item.guid?.isPermaLink !== false ? item.guid?.value : undefined;
  return {
    link: item.link ?? permalink,
    title: item.title,
    titleIsHtml: true,
    summary: item.description ?? item.content?.encoded,
    summaryIsHtml: true,
    authors: [
      ...(item.dc?.creators ?? []),
      ...(item.authors ?? []).map((author) =>
        typeof author === 'string' ? author : (author.name ?? ''),
      ),
    ].filter((name) => name && !name.includes('@')),
    categories: (item.categories ?? []).map((category) => category.name ?? ''),
    published: dateText(item.pubDate) ?? dateText(item.dc?.dates?.[0]),
    updated: undefined,
    image: imageOf(item.media, item.enclosures),
  };
}

function fromAtomEntry(entry: AtomEntry): RawEntry {
  const body = entry.summary ?? entry.content;
  return {
    link: alternateLink(entry.links),
    title: entry.title?.value,
    titleIsHtml: entry.title?.type === 'html' || entry.title?.type === 'xhtml',
    summary: body?.value,
    summaryIsHtml: body?.type === 'html' || body?.type === 'xhtml',
    authors: (entry.authors ?? []).map((author) => author.name ?? ''),
    categories: (entry.categories ?? []).map((category) => category.label ?? category.term ?? ''),
    published: dateText(entry.published),
    updated: dateText(entry.updated),
    image: imageOf(entry.media, undefined),
  };
}

function alternateLink(links: { href?: string; rel?: string }[] | undefined): string | undefined {
  return (links?.find((link) => !link.rel || link.rel === 'alternate') ?? links?.[0])?.href;
}

function imageOf(
  media: MediaOf<RssItem> | MediaOf<AtomEntry> | undefined,
  enclosures: { url?: string; type?: string }[] | undefined,
): RawEntry['image'] {
  const content = media?.contents?.find(
    (c) => c.medium === 'image' || c.type?.startsWith('image/'),
  );
  if (content?.url) {
    return {
      url: content.url,
      alt: content.description?.value ?? content.title?.value,
      width: content.width,
      height: content.height,
    };
  }
  const thumbnail = media?.thumbnails?.[0];
  if (thumbnail?.url)
    return { url: thumbnail.url, width: thumbnail.width, height: thumbnail.height };
  const enclosure = enclosures?.find((e) => e.type?.startsWith('image/'));
  return enclosure?.url ? { url: enclosure.url } : undefined;
}

function absolute(link: string | undefined, base: string | undefined): string | undefined {
  const trimmed = link?.trim();
  if (!trimmed || !URL.canParse(trimmed, base)) return undefined;
  const url = new URL(trimmed, base).href;
  return isWebUrl(url) && url.length <= 2048 ? canonicalUrl(url) : undefined;
}

function textOf(value: string | undefined, isHtml: boolean): string {
  if (!value) return '';
  return isHtml ? readText(value).text : collapseWhitespace(value);
}

function dateText(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

// Feed dates are RFC 822 (RSS) or RFC 3339 (Atom); anything unreadable counts as undated.
function dateOf(value: string | undefined): Date | undefined {
  if (!value) return undefined;
  const date = new Date(value.trim());
  const year = date.getUTCFullYear();
  if (Number.isNaN(date.getTime()) || year < 1990) return undefined;
  return date.getTime() > Date.now() + 366 * 24 * 3600_000 ? undefined : date;
}

function clampDimension(value: number): number | null {
  return Number.isInteger(value) && value >= 1 && value <= 10_000 ? value : null;
}
