import cors from 'cors';
import express, { Router, type Request, type Response } from 'express';
import { z } from 'zod';
import { DomainError } from '../errors.ts';
import { requireRole } from '../http/auth.ts';
import type { AppDeps } from '../http/deps.ts';
import { unsupportedMediaType } from '../http/errors.ts';
import { errorResponses, openApiRegistry } from '../http/openapi.ts';
import { parseInput } from '../http/validation.ts';
import { slugSchema } from '../newsletters/newsletters.schemas.ts';
import * as newsletterService from '../newsletters/newsletters.service.ts';
import { readingBody } from '../pages/form-body.ts';
import { pageTemplatesOf } from '../pages/pages.ts';
import { subscriptionDepsOf } from './deps.ts';
import {
  readerListQuerySchema,
  readerPageSchema,
  subscribeAcceptedSchema,
  subscribeSchema,
} from './subscriptions.schemas.ts';
import * as subscriptions from './subscriptions.service.ts';

export const SUBSCRIBE_PATH = '/api/v1/subscriptions';
const ACCEPTED = "thank you: we've sent you a confirmation email; please click the link in it";

export function requesterOf(req: Request): subscriptions.Requester {
  return { ip: req.ip ?? null, userAgent: req.get('user-agent')?.slice(0, 500) ?? null };
}

/**
 * The public subscribe endpoint: JSON from the site's scripts (CORS for SITE_ORIGINS) and plain
 * HTML form posts, so it is mounted before the JSON-only guard of the API.
 */
export function subscribeRouter(appDeps: AppDeps): Router {
  const { config } = appDeps;
  const deps = subscriptionDepsOf(appDeps);
  const pages = pageTemplatesOf(appDeps);
  const allowedRedirectOrigins = new Set([...config.siteOrigins, new URL(config.publicUrl).origin]);
  const router = Router();

  router.use(
    SUBSCRIBE_PATH,
    cors({
      origin: config.siteOrigins,
      methods: ['POST'],
      allowedHeaders: ['Content-Type'],
      maxAge: 600,
    }),
  );

  router.post(
    SUBSCRIBE_PATH,
    readingBody(express.json({ limit: config.bodyLimit, strict: true })),
    readingBody(
      express.urlencoded({ extended: false, limit: config.bodyLimit, parameterLimit: 200 }),
    ),
    async (req, res) => {
      if (req.is('application/json')) {
        const input = parseInput(subscribeSchema, req.body);
        const result = await subscriptions.subscribe(
          deps,
          {
            email: input.email,
            newsletters: input.newsletters,
            source: input.source ?? 'api',
            honeypot: input.website,
          },
          requesterOf(req),
        );
        res.status(202).json({ message: ACCEPTED, ...result });
        return;
      }
      if (req.is('application/x-www-form-urlencoded')) {
        await answerForm(req, res);
        return;
      }
      throw unsupportedMediaType('application/json or application/x-www-form-urlencoded');
    },
  );

  async function answerForm(req: Request, res: Response): Promise<void> {
    const form = (req.body ?? {}) as Record<string, string | string[] | undefined>;
    const email = firstOf(form.email);
    const chosen = [...listOf(form.newsletters), ...listOf(form['newsletters[]'])];
    const redirect = firstOf(form.redirect);
    const page = async (
      status: number,
      message: { success?: string; error?: string },
      suggestion?: string,
    ) => {
      const active = await newsletterService.listNewsletters(appDeps.db, { status: 'active' });
      await pages.send(res, status, 'subscribe', {
        title: message.error ? 'Please check the form' : 'Subscribe',
        ...message,
        suggestion,
        email: message.error ? email : '',
        chosen,
        newsletters: active.map((newsletter) => ({
          slug: newsletter.slug,
          name: newsletter.name,
          description: newsletter.description,
          checked: chosen.includes(newsletter.slug) || active.length === 1,
        })),
        back: redirect && isAllowedRedirect(redirect) ? redirect : undefined,
      });
    };
    if (redirect && !isAllowedRedirect(redirect)) {
      await pages.send(res, 400, 'problem', {
        title: 'This form cannot be used here',
        message: 'the page to return to is not on a website we know; nothing was stored',
      });
      return;
    }
    let result: { suggestion?: string };
    try {
      result = await subscriptions.subscribe(
        deps,
        {
          email,
          newsletters: chosen,
          source: formSource(firstOf(form.source) || req.get('referer') || 'form'),
          honeypot: firstOf(form.website),
        },
        requesterOf(req),
      );
    } catch (error) {
      if (!(error instanceof DomainError)) throw error;
      const status = error.kind === 'rate_limited' ? 429 : 400;
      const suggestion = error.details?.suggestion as string | undefined;
      await page(status, { error: capitalise(error.message) }, suggestion);
      return;
    }
    if (redirect) {
      res.redirect(303, redirect);
      return;
    }
    await page(200, { success: capitalise(ACCEPTED) }, result.suggestion);
  }

  function isAllowedRedirect(redirect: string): boolean {
    try {
      const url = new URL(redirect);
      return ['http:', 'https:'].includes(url.protocol) && allowedRedirectOrigins.has(url.origin);
    } catch {
      return false;
    }
  }

  return router;
}

/** Editors' view of one newsletter's readers (inside the JSON API router). */
export function readersRouter({ db, config }: AppDeps): Router {
  const router = Router();
  const editor = requireRole(db, config.adminToken, 'editor');
  router.get('/newsletters/:slug/subscribers', editor, async (req, res) => {
    const { slug } = parseInput(slugParams, req.params, 'path');
    const query = parseInput(readerListQuerySchema, req.query, 'query');
    const page = await subscriptions.listReaders(db, slug, query);
    res.json({
      subscribers: page.readers.map((reader) => ({
        ...reader,
        requestedAt: reader.requestedAt.toISOString(),
        confirmedAt: reader.confirmedAt?.toISOString() ?? null,
        unsubscribedAt: reader.unsubscribedAt?.toISOString() ?? null,
      })),
      nextCursor: page.nextCursor,
    });
  });
  return router;
}

const slugParams = z.object({ slug: slugSchema });

function firstOf(value: string | string[] | undefined): string {
  return (Array.isArray(value) ? value[0] : value) ?? '';
}

function listOf(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  return (Array.isArray(value) ? value : [value]).filter((item) => item !== '');
}

// A form's source is kept as proof of where consent was given, never put into a mail.
function formSource(value: string): string {
  // Cut by characters, not UTF-16 units, so no emoji is split into a lone surrogate.
  return Array.from(value.replace(/[\p{Cc}\p{Cs}]/gu, ''))
    .slice(0, 500)
    .join('');
}

function capitalise(message: string): string {
  return message.charAt(0).toUpperCase() + message.slice(1) + (/[.?!]$/.test(message) ? '' : '.');
}

const json = (schema: z.ZodType) => ({ content: { 'application/json': { schema } } });

openApiRegistry.registerPath({
  method: 'post',
  path: SUBSCRIBE_PATH,
  summary:
    'Ask for a subscription (public). Same 202 for any valid address; a confirmation mail follows. Also accepts an HTML form post.',
  request: { body: json(subscribeSchema) },
  responses: {
    202: { description: 'accepted', ...json(subscribeAcceptedSchema) },
    ...errorResponses(400, 413, 415, 429),
  },
});
openApiRegistry.registerPath({
  method: 'get',
  path: '/api/v1/newsletters/{slug}/subscribers',
  summary: 'Page through the readers of a newsletter, by status (editor)',
  security: [{ bearer: [] }],
  request: { params: slugParams, query: readerListQuerySchema },
  responses: {
    200: { description: 'one page of readers', ...json(readerPageSchema) },
    ...errorResponses(400, 401, 403, 404),
  },
});
