import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Express } from 'express';
import { Registry } from 'prom-client';
import { createApiToken } from '../../src/api-tokens/api-tokens.service.ts';
import { loadConfig, type Config } from '../../src/config.ts';
import { createApp } from '../../src/http/app.ts';
import { createLogger } from '../../src/log.ts';
import { createTestDatabase, type TestDatabase } from './test-database.ts';

export const TEST_SECRET = 'test-secret-test-secret-test-secret-0123';
export const TEST_ADMIN_TOKEN = 'test-admin-token-0123456789abcdef';

export interface TestApp {
  app: Express;
  database: TestDatabase;
  config: Config;
  /** An editor token made through the real token service. */
  editorToken: string;
  adminToken: string;
  close(): Promise<void>;
}

/** The real app on a fresh database of its own; `env` overrides configuration as a deployment would. */
export async function createTestApp(env: Record<string, string> = {}): Promise<TestApp> {
  const database = await createTestDatabase();
  const dataDir = await mkdtemp(join(tmpdir(), 'broadsheet-data-'));
  const config = loadConfig({
    NODE_ENV: 'test',
    DATA_DIR: dataDir,
    SECRET: TEST_SECRET,
    ADMIN_TOKEN: TEST_ADMIN_TOKEN,
    PUBLIC_URL: 'http://news.test',
    MAIL_FROM: 'The Newsroom <newsletters@news.test>',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    ...env,
  });
  const logger = createLogger(config.logLevel);
  const app = createApp({ db: database.db, config, logger, metrics: new Registry() });
  const { token: editorToken } = await createApiToken(database.db, {
    name: 'test editor',
    role: 'editor',
  });
  return {
    app,
    database,
    config,
    editorToken,
    adminToken: TEST_ADMIN_TOKEN,
    close: () => database.close(),
  };
}
