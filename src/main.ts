import { writeFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { createApiToken, listApiTokens } from './api-tokens/api-tokens.service.ts';
import { FeedPoller } from './articles/feed-poller.ts';
import { ConfigError, loadConfig, withEmbeddedSecret, type Config } from './config.ts';
import { DatabaseUnreachableError, connectDatabase, type DatabaseHandle } from './db/connect.ts';
import { migrateToLatest } from './db/migrate.ts';
import { createMailLane, createMailTransport } from './delivery/transport.ts';
import { DeliveryWorker } from './delivery/worker.ts';
import { createLogger, type Logger } from './log.ts';

export interface Running {
  stop(): Promise<void>;
}

/** The composition root: config → database → HTTP app and/or delivery worker. */
export async function startService(parts: { http: boolean; worker: boolean }): Promise<Running> {
  const config = await withEmbeddedSecret(loadConfig());
  const logger = createLogger(config.logLevel);
  const database = await connectDatabase(config);
  const applied = await migrateToLatest(database.db);
  if (applied.length > 0) logger.info({ migrations: applied }, 'database migrated');
  if (database.kind === 'pglite') await offerFirstToken(database, config, logger);

  const transport = createMailTransport({
    smtpUrl: config.smtpUrl,
    dataDir: config.dataDir,
    logger,
  });
  const worker = parts.worker
    ? new DeliveryWorker({
        db: database.db,
        transport,
        logger,
        messageIdDomain: config.messageIdDomain,
        config,
        lanes: newsletterLanes(config),
      })
    : undefined;
  worker?.start();
  // Feeds are polled where delivery runs; FEED_POLLING=false turns it off.
  const feeds =
    parts.worker && config.feedPolling ? new FeedPoller({ db: database.db, logger }) : undefined;
  feeds?.start();

  let server: Server | undefined;
  if (parts.http) {
    const metrics = new Registry();
    collectDefaultMetrics({ register: metrics });
    // Worker-only processes never load the HTTP side (pages, templates, MJML): they stay small.
    const { createApp } = await import('./http/app.ts');
    const app = createApp({ db: database.db, config, logger, metrics });
    server = await new Promise<Server>((resolve) => {
      const listening = app.listen(config.port, config.host, () => resolve(listening));
    });
    logger.info(
      { url: config.publicUrl, database: database.kind, worker: Boolean(worker) },
      'broadsheet is listening',
    );
  } else {
    logger.info({ database: database.kind }, 'delivery worker started');
  }

  return {
    async stop() {
      logger.info('stopping: no new requests or claims; finishing what is in flight');
      await Promise.all([
        server && new Promise<void>((resolve) => server.close(() => resolve())),
        worker?.stop(),
        feeds?.stop(),
      ]);
      server?.closeAllConnections();
      transport.close();
      await database.close();
      logger.info('stopped');
    },
  };
}

/** SMTP_RELAYS when set, otherwise SMTP_URL (or .eml files) as the one way out. */
function newsletterLanes(config: Config) {
  const { delivery } = config;
  const relays = config.relays.length
    ? config.relays
    : [
        {
          url: config.smtpUrl,
          weight: 1,
          messagesPerSecond: delivery.messagesPerSecond,
          maxConnections: undefined,
          fallbackOnly: false,
        },
      ];
  return relays.map((relay) =>
    createMailLane({
      smtpUrl: relay.url,
      dataDir: config.dataDir,
      messagesPerSecond: relay.messagesPerSecond,
      maxConnections: relay.maxConnections ?? delivery.maxConnections,
      weight: relay.weight,
      fallbackOnly: relay.fallbackOnly,
      clientName: config.messageIdDomain,
    }),
  );
}

// A newcomer on embedded defaults gets an admin token without reading further than the log.
async function offerFirstToken(
  database: DatabaseHandle,
  config: Config,
  logger: Logger,
): Promise<void> {
  if (config.adminToken || (await listApiTokens(database.db)).length > 0) return;
  const { token } = await createApiToken(database.db, { name: 'first-admin', role: 'admin' });
  const file = join(config.dataDir, 'admin-token');
  await writeFile(file, token + '\n', { mode: 0o600 });
  logger.info({ file }, `first admin token created (shown once; also saved in ${file}): ${token}`);
}

/** Runs until SIGTERM or SIGINT; a wrong setting or unreachable database ends it with one clear line. */
export async function runUntilSignalled(parts: { http: boolean; worker: boolean }): Promise<void> {
  let running: Running;
  try {
    running = await startService(parts);
  } catch (error) {
    if (error instanceof ConfigError || error instanceof DatabaseUnreachableError) {
      console.error(`broadsheet: ${error.message}`);
      process.exit(1);
    }
    throw error;
  }
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    running.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        console.error(`broadsheet: error while stopping after ${signal}:`, error);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await runUntilSignalled({ http: true, worker: loadConfigOrExit().runWorker });
}

function loadConfigOrExit(): Config {
  try {
    return loadConfig();
  } catch (error) {
    console.error(`broadsheet: ${(error as Error).message}`);
    process.exit(1);
  }
}
