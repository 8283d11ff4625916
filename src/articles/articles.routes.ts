import { Router } from 'express';
import { z } from 'zod';
import { requireRole } from '../http/auth.ts';
import type { AppDeps } from '../http/deps.ts';
import { errorResponses, openApiRegistry } from '../http/openapi.ts';
import { parseInput } from '../http/validation.ts';
import {
  ARTICLE_BATCH_LIMIT,
  articleBatchSchema,
  articleInputSchema,
  articleListQuerySchema,
  articleSchema,
} from './articles.schemas.ts';
import * as articles from './articles.service.ts';

export function present(article: articles.Article) {
  return {
    ...article,
    publishedAt: article.publishedAt.toISOString(),
    updatedAt: article.updatedAt?.toISOString() ?? null,
    createdAt: article.createdAt.toISOString(),
  };
}

export function articlesRouter({ db, config }: AppDeps): Router {
  const router = Router();
  const editor = requireRole(db, config.adminToken, 'editor');

  router.post('/articles', editor, async (req, res) => {
    const body: unknown = req.body;
    const isBatch = typeof body === 'object' && body !== null && 'articles' in body;
    const inputs = isBatch
      ? parseInput(articleBatchSchema, body).articles
      : [parseInput(articleInputSchema, body)];
    const result = await db
      .transaction()
      .execute((trx) => articles.upsertArticles(trx, inputs.map(articles.draftFromInput), 'api'));
    if (!isBatch) {
      const [article] = result.articles;
      res.status(result.created ? 201 : 200).json(present(article!));
      return;
    }
    res.json({
      created: result.created,
      updated: result.updated,
      articles: result.articles.map(present),
    });
  });

  router.get('/articles', editor, async (req, res) => {
    const query = parseInput(articleListQuerySchema, req.query, 'query');
    const page = await articles.listArticles(db, query);
    res.json({ articles: page.articles.map(present), nextCursor: page.nextCursor });
  });

  return router;
}

const json = (schema: z.ZodType) => ({ content: { 'application/json': { schema } } });
const security = [{ bearer: [] }];

openApiRegistry.registerPath({
  method: 'post',
  path: '/api/v1/articles',
  summary: `Create or replace articles keyed by externalId, else url; one, or a batch of up to ${ARTICLE_BATCH_LIMIT} stored all or none`,
  security,
  request: { body: json(z.union([articleInputSchema, articleBatchSchema])) },
  responses: {
    200: {
      description: 'replaced (one) or stored (batch)',
      ...json(
        z.union([
          articleSchema,
          z.object({
            created: z.number(),
            updated: z.number(),
            articles: z.array(articleSchema),
          }),
        ]),
      ),
    },
    201: { description: 'created', ...json(articleSchema) },
    ...errorResponses(400, 401, 403, 409, 413, 415),
  },
});
openApiRegistry.registerPath({
  method: 'get',
  path: '/api/v1/articles',
  summary: 'List articles, newest first, with filters and a cursor',
  security,
  request: { query: articleListQuerySchema },
  responses: {
    200: {
      description: 'a page of articles',
      ...json(z.object({ articles: z.array(articleSchema), nextCursor: z.string().nullable() })),
    },
    ...errorResponses(400, 401, 403),
  },
});
