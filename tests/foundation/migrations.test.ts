import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrations } from '../../migrations/index.ts';
import { migrateDown, migrateToLatest } from '../../src/db/migrate.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/test-database.ts';

let database: TestDatabase;

beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(() => database.close());

async function tables(): Promise<string[]> {
  const result = await sql<{ table_name: string }>`
    select table_name from information_schema.tables
    where table_schema = 'public' and table_name not like 'kysely_%' order by table_name`.execute(
    database.db,
  );
  return result.rows.map((row) => row.table_name);
}

describe('migrations', () => {
  it('revert one by one down to an empty schema and apply again', async () => {
    const before = await tables();
    expect(before).toContain('newsletters');
    for (let step = 0; step < Object.keys(migrations).length; step++) {
      expect(await migrateDown(database.db)).toHaveLength(1);
    }
    expect(await tables()).toEqual([]);
    expect(await migrateToLatest(database.db)).toHaveLength(Object.keys(migrations).length);
    expect(await tables()).toEqual(before);
  });
});
