import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import type { Database } from './database.ts';

const INT8 = 20;
const INT8_ARRAY = 1016;
const TEXT_ARRAY = 1009;

// PGlite hands int8 back as numbers and pg as strings; this is the one place they are made alike.
const pgTypes = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === INT8) return (value: string) => Number(value);
    if (oid === INT8_ARRAY) {
      const parseTextArray = pg.types.getTypeParser(TEXT_ARRAY as never) as (
        value: string,
      ) => string[];
      return (value: string) => parseTextArray(value).map(Number);
    }
    return pg.types.getTypeParser(oid as never, format);
  },
} as pg.CustomTypesConfig;

export class DatabaseUnreachableError extends Error {}

export interface DatabaseHandle {
  db: Kysely<Database>;
  kind: 'pglite' | 'postgres';
  close(): Promise<void>;
}

export function connectPostgres(url: string, poolSize = 10): DatabaseHandle {
  const pool = new pg.Pool({
    connectionString: url,
    max: poolSize,
    types: pgTypes,
    connectionTimeoutMillis: 5_000,
  });
  // A dropped idle connection must not crash the process; the pool replaces it.
  pool.on('error', () => undefined);
  // Nor may one dropped while checked out between queries (a transaction's): the next query fails instead.
  pool.on('connect', (client) => client.on('error', () => undefined));
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  return { db, kind: 'postgres', close: () => db.destroy() };
}

export async function openPglite(directory: string): Promise<DatabaseHandle> {
  await mkdir(directory, { recursive: true });
  // PGlite's WebAssembly costs about 70 MB of memory; processes on PostgreSQL never load it.
  const [{ PGlite }, { PGliteDialect }] = await Promise.all([
    import('@electric-sql/pglite'),
    import('kysely-pglite-dialect'),
  ]);
  const client = await PGlite.create(directory);
  const db = new Kysely<Database>({ dialect: new PGliteDialect(client) });
  return { db, kind: 'pglite', close: () => db.destroy() };
}

/** PostgreSQL when DATABASE_URL is set, otherwise PGlite under DATA_DIR. */
export async function connectDatabase(options: {
  databaseUrl?: string;
  dataDir: string;
  poolSize?: number;
}): Promise<DatabaseHandle> {
  const handle = options.databaseUrl
    ? connectPostgres(options.databaseUrl, options.poolSize)
    : await openPglite(join(options.dataDir, 'pgdata'));
  try {
    await sql`select 1`.execute(handle.db);
  } catch (error) {
    await handle.close().catch(() => undefined);
    const where = options.databaseUrl ? redactUrl(options.databaseUrl) : options.dataDir;
    throw new DatabaseUnreachableError(
      `cannot reach the database at ${where}: ${(error as Error).message}`,
    );
  }
  return handle;
}

export function redactUrl(url: string): string {
  const parsed = new URL(url);
  if (parsed.password) parsed.password = '***';
  return parsed.toString();
}
