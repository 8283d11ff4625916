import { Router } from 'express';
import { z } from 'zod';
import { buildDigest } from '../digests/digest.service.ts';
import { MailTemplates } from '../digests/mail-templates.ts';
import { DomainError } from '../errors.ts';
import { callerOf, requireRole } from '../http/auth.ts';
import type { AppDeps } from '../http/deps.ts';
import { errorResponses, openApiRegistry } from '../http/openapi.ts';
import { parseInput } from '../http/validation.ts';
import { slugSchema } from '../newsletters/newsletters.schemas.ts';
import {
  createSendSchema,
  deliveriesPageSchema,
  deliveriesQuerySchema,
  emptyBodySchema,
  idempotencyKeySchema,
  sendIdParams,
  sendListQuerySchema,
  sendProgressSchema,
  sendSchema,
  startSendSchema,
  testSendSchema,
} from './sends.schemas.ts';
import * as sends from './sends.service.ts';

const slugParams = z.object({ slug: slugSchema });
// A clock a little behind the editor's must not turn "now" into an error.
const SCHEDULE_TOLERANCE_MS = 60_000;

const iso = (date: Date | null) => (date ? date.toISOString() : null);

function present<T extends sends.Send>(send: T) {
  return {
    ...send,
    scheduledAt: iso(send.scheduledAt),
    startedAt: iso(send.startedAt),
    finishedAt: iso(send.finishedAt),
    createdAt: send.createdAt.toISOString(),
  };
}

export function sendsRouter({ db, config }: AppDeps): Router {
  const router = Router();
  const editor = requireRole(db, config.adminToken, 'editor');
  const templates = new MailTemplates(config.templatesDir);
  const digestOf: sends.BuildDigest = (slug, options) =>
    buildDigest(db, { templates, config }, slug, options);

  router.post('/newsletters/:slug/sends', editor, async (req, res) => {
    const { slug } = parseInput(slugParams, req.params, 'path');
    const givenKey = req.get('idempotency-key');
    const idempotencyKey =
      givenKey === undefined
        ? undefined
        : parseInput(idempotencyKeySchema, givenKey, 'Idempotency-Key header');
    const input = parseInput(createSendSchema, req.body);
    const caller = callerOf(res.locals);
    const { send, replayed } = await sends.createSend(db, digestOf, slug, input, {
      createdBy: caller.name,
      idempotencyKey,
    });
    if (replayed) res.setHeader('Idempotent-Replayed', 'true');
    res
      .status(replayed ? 200 : 201)
      .location(`/api/v1/sends/${send.id}`)
      .json(present(send));
  });

  router.get('/newsletters/:slug/sends', editor, async (req, res) => {
    const { slug } = parseInput(slugParams, req.params, 'path');
    const page = parseInput(sendListQuerySchema, req.query, 'query');
    const { sends: list, nextBefore } = await sends.listSends(db, slug, page);
    res.json({ sends: list.map(present), nextBefore });
  });

  router.get('/sends/:id', editor, async (req, res) => {
    const { id } = parseInput(sendIdParams, req.params, 'path');
    const progress = await sends.getSendProgress(db, id);
    res.json({ ...present(progress), estimatedFinishAt: iso(progress.estimatedFinishAt) });
  });

  router.post('/sends/:id/test', editor, async (req, res) => {
    const { id } = parseInput(sendIdParams, req.params, 'path');
    const { emails } = parseInput(testSendSchema, req.body);
    res.status(202).json(await sends.sendTest(db, config, id, emails));
  });

  router.post('/sends/:id/start', editor, async (req, res) => {
    const { id } = parseInput(sendIdParams, req.params, 'path');
    const { scheduledAt } = parseInput(startSendSchema, req.body);
    if (scheduledAt && scheduledAt.getTime() < Date.now() - SCHEDULE_TOLERANCE_MS) {
      throw new DomainError(
        'invalid',
        'scheduled_in_past',
        `scheduledAt ${scheduledAt.toISOString()} is in the past; leave it out to send now`,
      );
    }
    const caller = callerOf(res.locals);
    res.json(present(await sends.startSend(db, id, { scheduledAt, startedBy: caller.name })));
  });

  const transitions = {
    pause: sends.pauseSend,
    resume: sends.resumeSend,
    cancel: sends.cancelSend,
  } as const;
  for (const [action, change] of Object.entries(transitions)) {
    router.post(`/sends/:id/${action}`, editor, async (req, res) => {
      const { id } = parseInput(sendIdParams, req.params, 'path');
      parseInput(emptyBodySchema, req.body);
      res.json(present(await change(db, id)));
    });
  }

  router.post('/sends/:id/retry-failed', editor, async (req, res) => {
    const { id } = parseInput(sendIdParams, req.params, 'path');
    parseInput(emptyBodySchema, req.body);
    res.json(present(await sends.retryFailed(db, id)));
  });

  router.get('/sends/:id/deliveries', editor, async (req, res) => {
    const { id } = parseInput(sendIdParams, req.params, 'path');
    const page = parseInput(deliveriesQuerySchema, req.query, 'query');
    const { deliveries, nextAfter } = await sends.listSendDeliveries(db, id, page);
    res.json({
      deliveries: deliveries.map((d) => ({ ...d, sentAt: iso(d.sentAt) })),
      nextAfter,
    });
  });

  return router;
}

const json = (schema: z.ZodType) => ({ content: { 'application/json': { schema } } });
const security = [{ bearer: [] }];
const sendPath = '/api/v1/sends/{id}';

openApiRegistry.registerPath({
  method: 'post',
  path: '/api/v1/newsletters/{slug}/sends',
  summary: 'Create a draft send, freezing the digest (Idempotency-Key honoured)',
  security,
  request: {
    params: slugParams,
    headers: z.object({ 'Idempotency-Key': idempotencyKeySchema.optional() }),
    body: json(createSendSchema),
  },
  responses: {
    201: { description: 'created', ...json(sendSchema) },
    200: { description: 'the send this Idempotency-Key made before', ...json(sendSchema) },
    ...errorResponses(400, 401, 403, 404, 409, 422),
  },
});
openApiRegistry.registerPath({
  method: 'get',
  path: '/api/v1/newsletters/{slug}/sends',
  summary: "A newsletter's sends, newest first",
  security,
  request: { params: slugParams, query: sendListQuerySchema },
  responses: {
    200: {
      description: 'one page',
      ...json(z.object({ sends: z.array(sendSchema), nextBefore: z.number().nullable() })),
    },
    ...errorResponses(400, 401, 403, 404),
  },
});
openApiRegistry.registerPath({
  method: 'get',
  path: sendPath,
  summary: 'Progress: status, counts by delivery status, rate, estimated end',
  security,
  request: { params: sendIdParams },
  responses: {
    200: { description: 'progress', ...json(sendProgressSchema) },
    ...errorResponses(400, 401, 403, 404),
  },
});
openApiRegistry.registerPath({
  method: 'post',
  path: `${sendPath}/test`,
  summary: 'Mail the frozen content to a few addresses, marked as a test, outside the ledger',
  security,
  request: { params: sendIdParams, body: json(testSendSchema) },
  responses: {
    202: { description: 'queued', ...json(z.object({ queued: z.number() })) },
    ...errorResponses(400, 401, 403, 404),
  },
});
openApiRegistry.registerPath({
  method: 'post',
  path: `${sendPath}/start`,
  summary: 'Start now (recipients materialised at once) or at scheduledAt',
  security,
  request: { params: sendIdParams, body: json(startSendSchema) },
  responses: {
    200: { description: 'sending or scheduled', ...json(sendSchema) },
    ...errorResponses(400, 401, 403, 404, 409, 422),
  },
});
for (const [action, summary] of [
  ['pause', 'Stop claiming at once; what is in flight finishes'],
  ['resume', 'Carry on a paused send'],
  ['cancel', 'Skip everything not yet claimed'],
  ['retry-failed', 'Queue failed deliveries again'],
] as const) {
  openApiRegistry.registerPath({
    method: 'post',
    path: `${sendPath}/${action}`,
    summary,
    security,
    request: { params: sendIdParams },
    responses: {
      200: { description: 'the send', ...json(sendSchema) },
      ...errorResponses(400, 401, 403, 404, 409),
    },
  });
}
openApiRegistry.registerPath({
  method: 'get',
  path: `${sendPath}/deliveries`,
  summary: 'The ledger of one send, paged by subscriber id, optionally by status',
  security,
  request: { params: sendIdParams, query: deliveriesQuerySchema },
  responses: {
    200: { description: 'one page', ...json(deliveriesPageSchema) },
    ...errorResponses(400, 401, 403, 404),
  },
});
