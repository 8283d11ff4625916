import type { Kysely } from 'kysely';
import type { Registry } from 'prom-client';
import type { Config } from '../config.ts';
import type { Database } from '../db/database.ts';
import type { Logger } from '../log.ts';

/** What the HTTP app is built from; main.ts and the tests make one each. */
export interface AppDeps {
  db: Kysely<Database>;
  config: Config;
  logger: Logger;
  metrics: Registry;
}
