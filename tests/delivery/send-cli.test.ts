import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openPglite } from '../../src/db/connect.ts';
import { migrateToLatest } from '../../src/db/migrate.ts';
import { TEST_SECRET } from '../helpers/test-app.ts';
import { seedNewsletter, seedReaders } from './send-fixtures.ts';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../..', import.meta.url));
let dataDir: string;

// The CLI opens its own embedded database, as `npm run cli send` does on a fresh clone.
beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'broadsheet-cli-'));
  const database = await openPglite(join(dataDir, 'pgdata'));
  await migrateToLatest(database.db);
  const newsletterId = await seedNewsletter(database.db, 'briefing');
  await seedReaders(database.db, newsletterId, 4, { prefix: 'cli' });
  await database.db
    .insertInto('articles')
    .values({
      url: 'https://news.test/2026/ferry',
      title: 'The ferry runs again',
      published_at: new Date(Date.now() - 3_600_000),
    })
    .execute();
  await database.close();
});
afterAll(() => rm(dataDir, { recursive: true, force: true }));

function cli(...args: string[]) {
  return run(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], {
    cwd: root,
    env: {
      PATH: process.env.PATH,
      DATA_DIR: dataDir,
      SECRET: TEST_SECRET,
      LOG_LEVEL: 'silent',
    },
  });
}

describe('broadsheet send', () => {
  it('freezes the digest into a send and starts it', async () => {
    const { stdout } = await cli('send', 'briefing', '--idempotency-key', 'briefing-1');
    expect(stdout).toMatch(/^send 1 of briefing: sending, 4 readers$/m);
  }, 60_000);

  it('refuses an unknown newsletter with one clear line', async () => {
    const failed = await cli('send', 'nope').then(
      () => undefined,
      (error: { code: number; stderr: string }) => error,
    );
    expect(failed?.code).toBe(1);
    expect(failed?.stderr).toContain('no newsletter with slug "nope"');
  }, 60_000);
});
