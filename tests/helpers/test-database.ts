import { randomBytes } from 'node:crypto';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { inject } from 'vitest';
import { connectPostgres, openPglite, type DatabaseHandle } from '../../src/db/connect.ts';
import { adminUrl, databaseUrl } from './postgres-urls.ts';

export interface TestDatabase extends DatabaseHandle {
  /** Set on PostgreSQL only: other processes (workers under test) can connect to it. */
  url?: string;
}

/** A fresh, migrated database of its own for one test file, copied from the run's template. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const template = inject('templateDatabase');
  if (template.kind === 'pglite') {
    const directory = await mkdtemp(join(tmpdir(), 'broadsheet-test-'));
    await cp(template.directory, directory, { recursive: true });
    const handle = await openPglite(directory);
    return {
      ...handle,
      close: async () => {
        await handle.close();
        await rm(directory, { recursive: true, force: true });
      },
    };
  }
  const serverUrl = process.env.TEST_DATABASE_URL!;
  const name = `broadsheet_test_${randomBytes(6).toString('hex')}`;
  const admin = connectPostgres(adminUrl(serverUrl), 1);
  // Two files cloning the same template at once can collide; a short retry settles it.
  for (let attempt = 1; ; attempt++) {
    try {
      await sql`create database ${sql.id(name)} template ${sql.id(template.name)}`.execute(
        admin.db,
      );
      break;
    } catch (error) {
      if (attempt >= 20) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100 * attempt));
    }
  }
  const url = databaseUrl(serverUrl, name);
  const handle = connectPostgres(url, 10);
  return {
    ...handle,
    url,
    close: async () => {
      await handle.close();
      await sql`drop database if exists ${sql.id(name)} with (force)`.execute(admin.db);
      await admin.close();
    },
  };
}
