import { z } from 'zod';
import '../http/openapi.ts';
import { readText } from './article-text.ts';

/** Most articles one POST may carry; the body must also fit BODY_LIMIT. */
export const ARTICLE_BATCH_LIMIT = 100;
export const ARTICLE_LIST_LIMIT = 100;

// Headlines, names, sections and tags are plain text: a tag in them is refused, never guessed at.
const plainText = (max: number) =>
  z
    .string()
    .max(max * 4)
    .transform((value, ctx) => {
      const { text, markup } = readText(value);
      if (markup) {
        ctx.addIssue({ code: 'custom', message: 'must be plain text, not HTML' });
        return z.NEVER;
      }
      if (text.length === 0) {
        ctx.addIssue({ code: 'custom', message: 'must not be empty' });
        return z.NEVER;
      }
      if (text.length > max) {
        ctx.addIssue({ code: 'custom', message: `must be at most ${max} characters` });
        return z.NEVER;
      }
      return text;
    });

// Summaries often arrive as HTML from a CMS; they are reduced to their text.
const summaryText = z
  .string()
  .max(20_000)
  .transform((value, ctx) => {
    const { text } = readText(value);
    if (text.length > 2000) {
      ctx.addIssue({ code: 'custom', message: 'must be at most 2000 characters of text' });
      return z.NEVER;
    }
    return text;
  });

export function isWebUrl(value: string): boolean {
  if (!URL.canParse(value)) return false;
  const url = new URL(value);
  return (url.protocol === 'http:' || url.protocol === 'https:') && !url.username && !url.password;
}

/** One spelling per address: the fragment never names a different article. */
export function canonicalUrl(value: string): string {
  const url = new URL(value);
  url.hash = '';
  return url.href;
}

const webUrl = z
  .string()
  .trim()
  .max(2048)
  .refine(isWebUrl, 'must be an absolute http:// or https:// URL without credentials')
  .transform(canonicalUrl);

const MAX_FUTURE_MS = 366 * 24 * 3600 * 1000;
const timestamp = z.iso
  .datetime({ offset: true, message: 'must be an ISO 8601 date-time with a time zone' })
  .transform((value, ctx) => {
    const date = new Date(value);
    if (Number.isNaN(date.getTime()) || date.getUTCFullYear() < 1990) {
      ctx.addIssue({ code: 'custom', message: 'must be a real date after 1990' });
      return z.NEVER;
    }
    if (date.getTime() > Date.now() + MAX_FUTURE_MS) {
      ctx.addIssue({ code: 'custom', message: 'must not be more than a year ahead' });
      return z.NEVER;
    }
    return date;
  });

const dimension = z.number().int().min(1).max(10_000);

export const articleInputSchema = z
  .object({
    externalId: z
      .string()
      .min(1)
      .max(200)
      .regex(/^[^\p{Cc}\s]+$/u, 'must be printable, without spaces')
      .optional(),
    url: webUrl,
    title: plainText(300),
    summary: summaryText.optional(),
    authors: z.array(plainText(120)).max(10).optional(),
    imageUrl: webUrl.nullable().optional(),
    imageAlt: plainText(300).nullable().optional(),
    imageWidth: dimension.nullable().optional(),
    imageHeight: dimension.nullable().optional(),
    section: plainText(80).nullable().optional(),
    tags: z.array(plainText(60)).max(30).optional(),
    publishedAt: timestamp,
    updatedAt: timestamp.nullable().optional(),
  })
  .strict()
  .superRefine((article, ctx) => {
    if ((article.imageWidth == null) !== (article.imageHeight == null)) {
      ctx.addIssue({
        code: 'custom',
        path: ['imageWidth'],
        message: 'imageWidth and imageHeight come together',
      });
    }
    if (article.imageUrl == null && article.imageAlt != null) {
      ctx.addIssue({ code: 'custom', path: ['imageAlt'], message: 'needs an imageUrl' });
    }
  })
  .openapi('ArticleInput');

export const articleBatchSchema = z
  .object({ articles: z.array(articleInputSchema).min(1).max(ARTICLE_BATCH_LIMIT) })
  .strict()
  .openapi('ArticleBatch');

export const articleSchema = z
  .object({
    id: z.number(),
    externalId: z.string().nullable(),
    url: z.string(),
    title: z.string(),
    summary: z.string(),
    authors: z.array(z.string()),
    imageUrl: z.string().nullable(),
    imageAlt: z.string().nullable(),
    imageWidth: z.number().nullable(),
    imageHeight: z.number().nullable(),
    section: z.string().nullable(),
    tags: z.array(z.string()),
    publishedAt: z.string(),
    updatedAt: z.string().nullable(),
    source: z.string(),
    createdAt: z.string(),
  })
  .openapi('Article');

export const articleListQuerySchema = z
  .object({
    section: z.string().min(1).max(80).optional(),
    tag: z.string().min(1).max(60).optional(),
    since: timestamp.optional(),
    limit: z.coerce.number().int().min(1).max(ARTICLE_LIST_LIMIT).default(20),
    cursor: z.string().max(200).optional(),
  })
  .strict();

export type ArticleInput = z.infer<typeof articleInputSchema>;
export type ArticleListQuery = z.infer<typeof articleListQuerySchema>;
