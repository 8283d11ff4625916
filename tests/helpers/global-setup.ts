import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import type { TestProject } from 'vitest/node';
import { connectPostgres, openPglite } from '../../src/db/connect.ts';
import { migrateToLatest } from '../../src/db/migrate.ts';
import { adminUrl, databaseUrl } from './postgres-urls.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    templateDatabase: { kind: 'pglite'; directory: string } | { kind: 'postgres'; name: string };
  }
}

/** Builds one migrated template per run; each test file copies it (initdb is the slow part). */
export default async function setup(project: TestProject) {
  const serverUrl = process.env.TEST_DATABASE_URL;
  if (serverUrl) {
    const name = `broadsheet_template_${process.pid}_${Date.now()}`;
    const admin = connectPostgres(adminUrl(serverUrl), 1);
    await sql`create database ${sql.id(name)}`.execute(admin.db);
    const template = connectPostgres(databaseUrl(serverUrl, name), 1);
    await migrateToLatest(template.db);
    await template.close();
    project.provide('templateDatabase', { kind: 'postgres', name });
    return async () => {
      await sql`drop database if exists ${sql.id(name)} with (force)`.execute(admin.db);
      await admin.close();
    };
  }
  const directory = await mkdtemp(join(tmpdir(), 'broadsheet-template-'));
  const template = await openPglite(directory);
  await migrateToLatest(template.db);
  await template.close();
  project.provide('templateDatabase', { kind: 'pglite', directory });
  return async () => {
    await rm(directory, { recursive: true, force: true });
  };
}
