import { Router } from 'express';
import { z } from 'zod';
import { requireRole } from '../http/auth.ts';
import type { AppDeps } from '../http/deps.ts';
import { errorResponses, openApiRegistry } from '../http/openapi.ts';
import { parseInput } from '../http/validation.ts';
import {
  createNewsletterSchema,
  newsletterListQuerySchema,
  newsletterSchema,
  slugSchema,
  updateNewsletterSchema,
} from './newsletters.schemas.ts';
import * as newsletters from './newsletters.service.ts';

const slugParams = z.object({ slug: slugSchema });

function present(newsletter: newsletters.Newsletter) {
  const { id: _id, ...rest } = newsletter;
  return {
    ...rest,
    createdAt: rest.createdAt.toISOString(),
    updatedAt: rest.updatedAt.toISOString(),
  };
}

export function newslettersRouter({ db, config }: AppDeps): Router {
  const router = Router();
  const admin = requireRole(db, config.adminToken, 'admin');
  const editor = requireRole(db, config.adminToken, 'editor');
  const defaultSender = newsletters.parseSender(config.mailFrom);

  router.get('/newsletters', editor, async (req, res) => {
    const query = parseInput(newsletterListQuerySchema, req.query, 'query');
    res.json({ newsletters: (await newsletters.listNewsletters(db, query)).map(present) });
  });

  router.post('/newsletters', admin, async (req, res) => {
    const input = parseInput(createNewsletterSchema, req.body);
    const newsletter = await newsletters.createNewsletter(db, input, defaultSender);
    res.status(201).location(`/api/v1/newsletters/${newsletter.slug}`).json(present(newsletter));
  });

  router.get('/newsletters/:slug', editor, async (req, res) => {
    const { slug } = parseInput(slugParams, req.params, 'path');
    res.json(present(await newsletters.getNewsletter(db, slug)));
  });

  router.patch('/newsletters/:slug', admin, async (req, res) => {
    const { slug } = parseInput(slugParams, req.params, 'path');
    const input = parseInput(updateNewsletterSchema, req.body);
    res.json(present(await newsletters.updateNewsletter(db, slug, input)));
  });

  router.delete('/newsletters/:slug', admin, async (req, res) => {
    const { slug } = parseInput(slugParams, req.params, 'path');
    res.json(present(await newsletters.updateNewsletter(db, slug, { status: 'archived' })));
  });

  return router;
}

const json = (schema: z.ZodType) => ({ content: { 'application/json': { schema } } });
const security = [{ bearer: [] }];

openApiRegistry.registerPath({
  method: 'get',
  path: '/api/v1/newsletters',
  summary: 'List newsletters with subscriber counts',
  security,
  request: { query: newsletterListQuerySchema },
  responses: {
    200: {
      description: 'newsletters',
      ...json(z.object({ newsletters: z.array(newsletterSchema) })),
    },
    ...errorResponses(400, 401, 403),
  },
});
openApiRegistry.registerPath({
  method: 'post',
  path: '/api/v1/newsletters',
  summary: 'Create a newsletter (admin)',
  security,
  request: { body: json(createNewsletterSchema) },
  responses: {
    201: { description: 'created', ...json(newsletterSchema) },
    ...errorResponses(400, 401, 403, 409, 413, 415),
  },
});
openApiRegistry.registerPath({
  method: 'get',
  path: '/api/v1/newsletters/{slug}',
  summary: 'Read a newsletter',
  security,
  request: { params: slugParams },
  responses: {
    200: { description: 'the newsletter', ...json(newsletterSchema) },
    ...errorResponses(401, 403, 404),
  },
});
openApiRegistry.registerPath({
  method: 'patch',
  path: '/api/v1/newsletters/{slug}',
  summary: 'Update a newsletter (admin); status "archived" archives it',
  security,
  request: { params: slugParams, body: json(updateNewsletterSchema) },
  responses: {
    200: { description: 'updated', ...json(newsletterSchema) },
    ...errorResponses(400, 401, 403, 404),
  },
});
openApiRegistry.registerPath({
  method: 'delete',
  path: '/api/v1/newsletters/{slug}',
  summary: 'Archive a newsletter (admin); nothing is deleted',
  security,
  request: { params: slugParams },
  responses: {
    200: { description: 'archived', ...json(newsletterSchema) },
    ...errorResponses(401, 403, 404),
  },
});
