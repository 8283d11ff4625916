import express, { type Express, type RequestHandler } from 'express';
import { sql } from 'kysely';
import { Histogram } from 'prom-client';
import { articlesRouter } from '../articles/articles.routes.ts';
import { sendsRouter } from '../delivery/sends.routes.ts';
import { digestsRouter } from '../digests/digests.routes.ts';
import { newslettersRouter } from '../newsletters/newsletters.routes.ts';
import { readerPagesRouter } from '../pages/reader-pages.routes.ts';
import { readersRouter, subscribeRouter } from '../subscriptions/subscriptions.routes.ts';
import type { AppDeps } from './deps.ts';
import { errorHandler, notFound, unsupportedMediaType } from './errors.ts';
import { openApiDocument } from './openapi.ts';
import { requestLog } from './request-log.ts';
import { securityHeaders } from './security-headers.ts';

// JSON APIs accept JSON only; routes that take HTML forms are mounted before this guard.
const jsonOnly: RequestHandler = (req, _res, next) => {
  const hasBody =
    req.headers['transfer-encoding'] !== undefined ||
    Number(req.headers['content-length'] ?? 0) > 0;
  if (hasBody && !req.is('application/json')) throw unsupportedMediaType('application/json');
  next();
};

export function createApp(deps: AppDeps): Express {
  const { db, config, logger, metrics } = deps;
  const app = express();
  app.set('trust proxy', config.trustProxy);
  app.disable('x-powered-by');
  // Answers are written for one request each (tokens, fresh state); hashing them buys no 304s.
  app.disable('etag');

  const requestDuration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP request duration by route and status',
    labelNames: ['method', 'route', 'status'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [metrics],
  });

  app.use(requestLog(logger));
  app.use((req, res, next) => {
    const end = requestDuration.startTimer({ method: req.method });
    res.on('finish', () => {
      end({
        route: (req.route?.path as string | undefined) ?? 'unmatched',
        status: String(res.statusCode),
      });
    });
    next();
  });
  app.use(securityHeaders);

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', async (_req, res) => {
    try {
      await sql`select 1`.execute(db);
      res.json({ status: 'ready', database: 'reachable' });
    } catch (error) {
      logger.warn({ err: error }, 'readiness check failed');
      res.status(503).json({
        error: { code: 'database_unreachable', message: 'the database cannot be reached' },
      });
    }
  });
  app.get('/metrics', async (_req, res) => {
    res.type(metrics.contentType).send(await metrics.metrics());
  });
  app.get('/api/v1/openapi.json', (_req, res) => {
    res.json(openApiDocument());
  });

  app.use(subscribeRouter(deps));
  app.use(readerPagesRouter(deps));

  const api = express.Router();
  api.use(jsonOnly, express.json({ limit: config.bodyLimit, strict: true }));
  api.use(newslettersRouter(deps));
  api.use(articlesRouter(deps));
  api.use(digestsRouter(deps));
  api.use(readersRouter(deps));
  api.use(sendsRouter(deps));
  app.use('/api/v1', api);

  app.use(notFound);
  app.use(errorHandler(logger));
  return app;
}
