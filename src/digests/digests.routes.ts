import { Router } from 'express';
import { z } from 'zod';
import { requireRole } from '../http/auth.ts';
import type { AppDeps } from '../http/deps.ts';
import { errorResponses, openApiRegistry } from '../http/openapi.ts';
import { parseInput } from '../http/validation.ts';
import { slugSchema } from '../newsletters/newsletters.schemas.ts';
import { buildDigest, MAX_CHOSEN_ARTICLES } from './digest.service.ts';
import { MailTemplates, personalise } from './mail-templates.ts';

const slugParams = z.object({ slug: slugSchema });

export const digestPreviewQuerySchema = z
  .object({
    format: z.enum(['html', 'text', 'mjml', 'json']).default('html'),
    articleIds: z
      .string()
      .regex(/^\d{1,15}(,\d{1,15})*$/, 'must be article ids separated by commas')
      .transform((ids) => ids.split(',').map(Number))
      .refine((ids) => ids.length <= MAX_CHOSEN_ARTICLES, {
        message: `must name at most ${MAX_CHOSEN_ARTICLES} articles`,
      })
      .optional(),
  })
  .strict();

// The preview may show the newsroom's own images but never runs script.
const PREVIEW_POLICY =
  "default-src 'none'; img-src http: https: data:; style-src 'unsafe-inline'; font-src http: https: data:; frame-ancestors 'self'";

export function digestsRouter({ db, config }: AppDeps): Router {
  const router = Router();
  const editor = requireRole(db, config.adminToken, 'editor');
  const templates = new MailTemplates(config.templatesDir);
  const sampleLinks = {
    unsubscribe_url: `${config.publicUrl}/unsubscribe/preview-sample-link`,
    preferences_url: `${config.publicUrl}/preferences/preview-sample-link`,
  };

  router.get('/newsletters/:slug/digest', editor, async (req, res) => {
    const { slug } = parseInput(slugParams, req.params, 'path');
    const query = parseInput(digestPreviewQuerySchema, req.query, 'query');
    const digest = await buildDigest(db, { templates, config }, slug, {
      articleIds: query.articleIds,
    });
    const mail = personalise(digest, sampleLinks);
    res.setHeader('Cache-Control', 'no-store');
    if (query.format === 'html') {
      res.setHeader('Content-Security-Policy', PREVIEW_POLICY);
      res.type('html').send(mail.html);
    } else if (query.format === 'text') {
      res.type('text/plain').send(mail.text);
    } else if (query.format === 'mjml') {
      res.type('text/plain').send(digest.mjml);
    } else {
      res.json({
        subject: digest.subject,
        preheader: digest.preheader,
        articleIds: digest.articleIds,
        htmlBytes: Buffer.byteLength(digest.html),
        html: mail.html,
        text: mail.text,
      });
    }
  });

  return router;
}

openApiRegistry.registerPath({
  method: 'get',
  path: '/api/v1/newsletters/{slug}/digest',
  summary:
    'Preview the digest a send created now would contain (sample personal links); 422 nothing_to_send when no article qualifies',
  security: [{ bearer: [] }],
  request: { params: slugParams, query: digestPreviewQuerySchema },
  responses: {
    200: {
      description: 'the digest as html, text, mjml or json',
      content: {
        'text/html': { schema: z.string() },
        'text/plain': { schema: z.string() },
        'application/json': {
          schema: z.object({
            subject: z.string(),
            preheader: z.string(),
            articleIds: z.array(z.number()),
            htmlBytes: z.number(),
            html: z.string(),
            text: z.string(),
          }),
        },
      },
    },
    ...errorResponses(400, 401, 403, 404, 422),
  },
});
