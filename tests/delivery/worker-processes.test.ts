import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectPostgres } from '../../src/db/connect.ts';
import { countDeliveriesByStatus } from '../../src/delivery/ledger.repository.ts';
import { startSend } from '../../src/delivery/sends.service.ts';
import { startSmtpCapture, type SmtpCapture } from '../helpers/smtp-capture.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/test-database.ts';
import { TEST_SECRET } from '../helpers/test-app.ts';
import { startFlakyRelay, type FlakyRelay } from './flaky-relay.ts';
import {
  deliveriesOf,
  eventually,
  receivedBy,
  seedNewsletter,
  seedReaders,
  seedSend,
  sendStatus,
} from './send-fixtures.ts';

// Worker processes need a server they can all reach; PGlite lives inside one process.
const onPostgres = Boolean(process.env.TEST_DATABASE_URL);
const root = fileURLToPath(new URL('../..', import.meta.url));
const BATCH = 20;

let database: TestDatabase;
let capture: SmtpCapture;
let relay: FlakyRelay;
const children = new Set<ChildProcess>();

beforeAll(async () => {
  if (!onPostgres) return;
  database = await createTestDatabase();
  capture = await startSmtpCapture();
  relay = await startFlakyRelay(capture.port);
});
afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  if (!onPostgres) return;
  await relay.close();
  await capture.close();
  await database.close();
});

/** `npm run worker` as an operator runs it, against this file's database and listener. */
function spawnWorker(env: Record<string, string> = {}): ChildProcess & { output: string[] } {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'worker'], {
    cwd: root,
    env: {
      PATH: process.env.PATH,
      NODE_ENV: 'test',
      DATABASE_URL: database.url!,
      DATABASE_POOL_SIZE: '4',
      SECRET: TEST_SECRET,
      PUBLIC_URL: 'https://news.test',
      SMTP_URL: relay.url,
      DATA_DIR: '/tmp/broadsheet-worker-test',
      LOG_LEVEL: 'warn',
      FEED_POLLING: 'false',
      WORKER_BATCH_SIZE: String(BATCH),
      WORKER_LEASE_SECONDS: '2',
      WORKER_POLL_MS: '50',
      DELIVERY_RETRY_SECONDS: '0.05',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  }) as ChildProcess & { output: string[] };
  child.output = [];
  child.stdout!.on('data', (chunk: Buffer) => child.output.push(chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => child.output.push(chunk.toString()));
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

async function newSend(slug: string, readers: number) {
  const newsletterId = await seedNewsletter(database.db, slug);
  const seeded = await seedReaders(database.db, newsletterId, readers, { prefix: slug });
  const sendId = await seedSend(database.db, newsletterId, `${slug} issue`);
  return { sendId, readers: seeded };
}

function messagesOf(slug: string) {
  return capture.messages.filter((m) => m.parsed.subject === `${slug} issue`);
}

async function untilSent(sendId: number, timeoutMs = 90_000) {
  return eventually(
    () => sendStatus(database.db, sendId),
    (send) => send.status === 'sent',
    timeoutMs,
  );
}

/**
 * Checks invariant 2 after faults: nobody lost, and every duplicate is a row a worker held when
 * it died (its lease was taken back), so duplicates never exceed the counted possible ones.
 */
async function checkNobodyLost(slug: string, sendId: number, readers: { email: string }[]) {
  const received = receivedBy(messagesOf(slug));
  const missing = readers.filter((r) => !received.has(r.email));
  expect(missing).toEqual([]);
  const ledger = await deliveriesOf(database.db, sendId);
  expect(ledger.every((row) => row.status === 'sent')).toBe(true);
  const reclaimsOf = new Map(ledger.map((row) => [row.email, row.reclaims]));
  let duplicates = 0;
  for (const [email, count] of received) {
    duplicates += count - 1;
    expect(count - 1).toBeLessThanOrEqual(reclaimsOf.get(email) ?? 0);
  }
  const counts = await countDeliveriesByStatus(database.db, sendId);
  expect(duplicates).toBeLessThanOrEqual(counts.possibleDuplicates);
  return { duplicates, possibleDuplicates: counts.possibleDuplicates };
}

describe.skipIf(!onPostgres)('worker processes against one PostgreSQL', () => {
  it('three workers racing for a scheduled send: each reader gets exactly one message, within the connection limit', async () => {
    const { sendId, readers } = await newSend('trio', 1500);
    await startSend(database.db, sendId, {
      scheduledAt: new Date(Date.now() + 1500),
      startedBy: 'test',
    });
    relay.peakConnections = 0;
    // Nobody dies here, so a long lease keeps a worker slowed by a busy machine from losing rows.
    const workers = [1, 2, 3].map(() =>
      spawnWorker({ SMTP_MAX_CONNECTIONS: '4', WORKER_LEASE_SECONDS: '20' }),
    );
    const began = Date.now();
    try {
      await untilSent(sendId, 150_000);
      console.info(`three workers: 1500 messages in ${Date.now() - began} ms, start-up included`);
    } catch (error) {
      console.error(workers.map((w) => w.output.join('')).join('\n---\n'));
      throw error;
    }
    for (const worker of workers) worker.kill('SIGTERM');
    expect(await Promise.all(workers.map(exited))).toEqual([0, 0, 0]);

    const span = await sql<{ seconds: number }>`
      select extract(epoch from max(sent_at) - min(sent_at))::float8 as seconds
      from deliveries where send_id = ${sendId}`.execute(database.db);
    console.info(`three workers: first to last message ${span.rows[0]!.seconds.toFixed(1)} s`);
    const send = await sendStatus(database.db, sendId);
    expect(send.recipients).toBe(1500);
    expect(send.started_by).toEqual(expect.any(String));
    const received = receivedBy(messagesOf('trio'));
    expect(received.size).toBe(1500);
    expect([...received.values()].every((n) => n === 1)).toBe(true);
    const ledger = await deliveriesOf(database.db, sendId);
    expect(ledger.every((row) => row.status === 'sent' && row.reclaims === 0)).toBe(true);
    expect(new Set(ledger.map((row) => row.message_id))).toEqual(
      new Set(messagesOf('trio').map((m) => m.parsed.messageId)),
    );
    expect(readers.every((r) => received.get(r.email) === 1)).toBe(true);
    expect(relay.peakConnections).toBeLessThanOrEqual(4);
  }, 200_000);

  it('a worker killed with SIGKILL at random moments loses nobody; duplicates are counted', async () => {
    const { sendId, readers } = await newSend('killed', 1200);
    await startSend(database.db, sendId, { startedBy: 'test' });
    const env = { SEND_RATE_PER_SECOND: '250' };
    const kills = 3;
    for (let kill = 0; kill < kills; kill++) {
      const worker = spawnWorker(env);
      const target = messagesOf('killed').length + 40 + Math.floor(Math.random() * 200);
      await eventually(
        async () => messagesOf('killed').length,
        (n) => n >= target || worker.exitCode !== null,
      );
      worker.kill('SIGKILL');
      await exited(worker);
    }
    const last = spawnWorker(env);
    await untilSent(sendId);
    last.kill('SIGTERM');
    expect(await exited(last)).toBe(0);

    const { duplicates, possibleDuplicates } = await checkNobodyLost('killed', sendId, readers);
    // In flight at a kill: at most one claimed batch per kill.
    expect(duplicates).toBeLessThanOrEqual(kills * BATCH);
    console.info(
      `SIGKILL ×${kills}: ${duplicates} duplicate messages, ${possibleDuplicates} counted as possible duplicates`,
    );
  }, 150_000);

  it('SIGTERM stops claiming and drains: no row left leased, ledger and listener agree', async () => {
    const { sendId } = await newSend('drained', 600);
    await startSend(database.db, sendId, { startedBy: 'test' });
    const worker = spawnWorker({ SEND_RATE_PER_SECOND: '200', WORKER_LEASE_SECONDS: '20' });
    await eventually(
      async () => messagesOf('drained').length,
      (n) => n >= 60,
    );
    worker.kill('SIGTERM');
    expect(await exited(worker)).toBe(0);
    const ledger = await deliveriesOf(database.db, sendId);
    expect(ledger.filter((row) => row.status === 'sending')).toHaveLength(0);
    const sent = ledger.filter((row) => row.status === 'sent');
    expect(sent.length).toBeLessThan(600);
    expect(messagesOf('drained')).toHaveLength(sent.length);
    expect((await sendStatus(database.db, sendId)).status).toBe('sending');
  }, 60_000);

  it('the database dropping every connection mid-send: the worker reconnects and finishes', async () => {
    const { sendId, readers } = await newSend('outage', 1000);
    await startSend(database.db, sendId, { startedBy: 'test' });
    const worker = spawnWorker({ SEND_RATE_PER_SECOND: '250' });
    // Terminating this database's backends is what a server restart does to its clients,
    // without touching the other test files' databases on the same server.
    const admin = connectPostgres(database.url!, 1);
    try {
      for (const at of [150, 500]) {
        await eventually(
          async () => messagesOf('outage').length,
          (n) => n >= at,
        );
        await sqlTerminate(admin);
      }
      await untilSent(sendId);
    } catch (error) {
      console.error(worker.output.join(''));
      throw error;
    } finally {
      await admin.close();
    }
    worker.kill('SIGTERM');
    await exited(worker);
    const { duplicates } = await checkNobodyLost('outage', sendId, readers);
    console.info(`connections dropped twice: ${duplicates} duplicate messages`);
  }, 150_000);

  it.skipIf(process.env.ALLOW_PG_RESTART !== '1')(
    'PostgreSQL restarted mid-send: the worker reconnects and finishes',
    async () => {
      const { sendId, readers } = await newSend('restart', 800);
      await startSend(database.db, sendId, { startedBy: 'test' });
      const worker = spawnWorker({ SEND_RATE_PER_SECOND: '200' });
      await eventually(
        async () => messagesOf('restart').length,
        (n) => n >= 150,
      );
      const [version] = readdirSync('/etc/postgresql');
      execFileSync('pg_ctlcluster', ['--skip-systemctl-redirect', version!, 'main', 'restart']);
      await untilSent(sendId, 120_000);
      worker.kill('SIGTERM');
      await exited(worker);
      await checkNobodyLost('restart', sendId, readers);
    },
    180_000,
  );
});

async function sqlTerminate(admin: ReturnType<typeof connectPostgres>): Promise<void> {
  await sql`
    select pg_terminate_backend(pid) from pg_stat_activity
    where datname = current_database() and pid <> pg_backend_pid()`.execute(admin.db);
}
