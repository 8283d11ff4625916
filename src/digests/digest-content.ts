import type { Article } from '../articles/articles.service.ts';
import { shorten } from '../articles/article-text.ts';
import { DomainError } from '../errors.ts';
import type { MailTemplates } from './mail-templates.ts';

/** Gmail clips messages at about 102 KB; a digest stays well under it. */
export const DIGEST_HTML_LIMIT = 90 * 1024;
/** Column width of the 600 px layout less its padding: images are drawn this wide. */
export const IMAGE_WIDTH = 568;
const SUMMARY_LENGTH = 320;
const PREHEADER_LENGTH = 140;

export interface DigestNewsletter {
  slug: string;
  name: string;
  locale: string;
  digestSubject: string | null;
}

export interface DigestOptions {
  /** When the issue is made; dates in the digest are written in `timeZone`. */
  issuedAt: Date;
  timeZone: string;
  /** e.g. https://news.example.com/newsletters/{newsletter}/{date}; absent: no "view in browser". */
  archiveUrl?: string;
}

export interface Digest {
  subject: string;
  preheader: string;
  html: string;
  text: string;
  mjml: string;
  articleIds: number[];
}

/**
 * Renders a digest: data in, mail out. Pure but for the templates it reads; the html and text
 * keep `%%{unsubscribe_url}%%` and `%%{preferences_url}%%` for each reader's links.
 */
export async function renderDigest(
  templates: MailTemplates,
  newsletter: DigestNewsletter,
  articles: Article[],
  options: DigestOptions,
): Promise<Digest> {
  const dates = dateWriters(newsletter.locale, options.timeZone);
  const issueDate = dates.day(options.issuedAt);
  const headline = articles[0]?.title ?? '';
  const subject = headerSafe(
    newsletter.digestSubject
      ? await templates.renderLine(
          newsletter.digestSubject,
          {
            newsletter: { name: newsletter.name, slug: newsletter.slug },
            headline,
            date: issueDate,
            count: articles.length,
          },
          'digest subject',
        )
      : `${newsletter.name}: ${headline}`,
  );
  const masthead = `${newsletter.name} · ${issueDate}`;
  const preheader = preheaderOf(articles) || masthead;
  const data = {
    title: subject,
    masthead,
    locale: newsletter.locale,
    preheader,
    newsletter: { name: newsletter.name, slug: newsletter.slug },
    view_in_browser_url: options.archiveUrl
      ? archiveLink(options.archiveUrl, newsletter.slug, dates.isoDay(options.issuedAt))
      : undefined,
    articles: articles.map((article) => ({
      title: article.title,
      url: article.url,
      section: article.section,
      summary: shorten(article.summary, SUMMARY_LENGTH),
      byline: bylineOf(article, dates.time(article.publishedAt)),
      image: article.imageUrl
        ? {
            url: article.imageUrl,
            alt: article.imageAlt ?? article.title,
            width: IMAGE_WIDTH,
            height: imageHeight(article),
          }
        : undefined,
    })),
  };
  const source = await templates.render('digest', data);
  const html = await templates.compileMjml('digest', source.mjml);
  const size = Buffer.byteLength(html);
  if (size > DIGEST_HTML_LIMIT) {
    throw new DomainError(
      'unprocessable',
      'digest_too_large',
      `the digest html is ${kb(size)} KB, over the ${kb(DIGEST_HTML_LIMIT)} KB limit (gmail clips longer mail): choose fewer articles`,
      { bytes: size, limit: DIGEST_HTML_LIMIT },
    );
  }
  return {
    subject,
    preheader,
    html,
    text: source.text,
    mjml: source.mjml,
    articleIds: articles.map((article) => article.id),
  };
}

function kb(bytes: number): string {
  return (bytes / 1024).toFixed(1).replace(/\.0$/, '');
}

// Without known dimensions a photo is drawn 3:2 and cropped to fit (object-fit), never stretched.
function imageHeight(article: Article): number {
  if (article.imageWidth && article.imageHeight) {
    return Math.max(1, Math.round((IMAGE_WIDTH * article.imageHeight) / article.imageWidth));
  }
  return Math.round((IMAGE_WIDTH * 2) / 3);
}

function bylineOf(article: Article, time: string): string {
  const authors = article.authors;
  if (authors.length === 0) return time;
  const names =
    authors.length === 1
      ? authors[0]!
      : `${authors.slice(0, -1).join(', ')} and ${authors.at(-1)!}`;
  return `By ${names} · ${time}`;
}

// The inbox shows this line beside the subject: the other headlines, or the lead's summary.
function preheaderOf(articles: Article[]): string {
  const [lead, ...rest] = articles;
  const line =
    rest.length > 0 ? rest.map((article) => article.title).join(' · ') : (lead?.summary ?? '');
  return shorten(line, PREHEADER_LENGTH);
}

function headerSafe(subject: string): string {
  const clean = subject
    .replace(/[\p{Cc}\u2028\u2029]+/gu, ' ')
    .replace(/\s+/g, ' ')
    .trim();
  return shorten(clean, 200);
}

/** ARCHIVE_URL with `{newsletter}` and `{date}` (YYYY-MM-DD) filled in. */
export function archiveLink(template: string, slug: string, isoDay: string): string {
  return template
    .replace(/\{newsletter\}|%7Bnewsletter%7D/gi, encodeURIComponent(slug))
    .replace(/\{date\}|%7Bdate%7D/gi, isoDay);
}

function dateWriters(locale: string, timeZone: string) {
  const make = (options: Intl.DateTimeFormatOptions) => {
    try {
      return new Intl.DateTimeFormat(locale, { ...options, timeZone });
    } catch {
      return new Intl.DateTimeFormat('en', { ...options, timeZone });
    }
  };
  const day = make({ dateStyle: 'long' });
  const time = make({ dateStyle: 'medium', timeStyle: 'short' });
  const iso = new Intl.DateTimeFormat('en-CA', { dateStyle: 'short', timeZone });
  return {
    day: (date: Date) => day.format(date),
    time: (date: Date) => time.format(date),
    isoDay: (date: Date) => iso.format(date),
  };
}
