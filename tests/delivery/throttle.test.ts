import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectPostgres, type DatabaseHandle } from '../../src/db/connect.ts';
import { LaneShare, type MailLane } from '../../src/delivery/mail-lane.ts';
import { retireWorker, takeSendingTokens } from '../../src/delivery/throttle.repository.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/test-database.ts';

let database: TestDatabase;
// On PostgreSQL each "worker" gets its own pool, as separate processes would.
const pools: DatabaseHandle[] = [];

beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(async () => {
  for (const pool of pools) await pool.close();
  await database.close();
});

function dbOfWorker() {
  if (!database.url) return database.db;
  const pool = connectPostgres(database.url, 2);
  pools.push(pool);
  return pool.db;
}

function lane(name: string, maxConnections: number, messagesPerSecond = 0): MailLane {
  return {
    name,
    maxConnections,
    messagesPerSecond,
    owned: false,
    open: () => {
      throw new Error('not used here');
    },
  };
}

describe('throttles shared by every worker through PostgreSQL', () => {
  it('never lets the workers together hold more connections than the limit, and shares them fairly', async () => {
    const relay = lane('relay-a', 5);
    const shares = ['w1', 'w2', 'w3'].map((id) => new LaneShare(dbOfWorker(), relay, id, 10));
    // One worker alone takes all five.
    expect(await shares[0]!.hold()).toBe(5);
    // The others announce themselves but find nothing free until the first renews its share.
    const late = await Promise.all(shares.slice(1).map((s) => s.hold()));
    expect(late.every((n) => n === 0)).toBe(true);
    await shares[0]!.release();
    const held = await Promise.all(shares.map((s) => s.hold()));
    expect(held.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(5);
    expect(Math.max(...held)).toBeLessThanOrEqual(2);
    const rows = await database.db
      .selectFrom('delivery_connection_slots')
      .select(['holder'])
      .where('transport', '=', 'relay-a')
      .where('holder', 'is not', null)
      .execute();
    expect(rows.length).toBe(held.reduce((a, b) => a + b, 0));
    for (const id of ['w1', 'w2', 'w3']) await retireWorker(database.db, id);
  });

  it("gives a dead worker's slots to the others once its lease runs out", async () => {
    const relay = lane('relay-b', 2);
    const dead = new LaneShare(dbOfWorker(), relay, 'dead', 1);
    expect(await dead.hold()).toBe(2);
    await database.db
      .updateTable('delivery_connection_slots')
      .set({ lease_until: new Date(Date.now() - 1000) })
      .where('holder', '=', 'dead')
      .execute();
    await database.db
      .updateTable('delivery_workers')
      .set({ seen_at: new Date(Date.now() - 60_000) })
      .where('id', '=', 'dead')
      .execute();
    const alive = new LaneShare(dbOfWorker(), relay, 'alive', 1);
    expect(await alive.hold()).toBe(2);
  });

  it('hands out no more messages than the rate allows across concurrent workers', async () => {
    const rate = { perSecond: 20, burst: 20 };
    // The bucket refills by the database's clock, so the bound is taken on that clock too.
    const databaseNow = async () =>
      (
        await sql<{ now: Date }>`select clock_timestamp() as now`.execute(database.db)
      ).rows[0]!.now.getTime();
    const startedAt = await databaseNow();
    const began = Date.now();
    let granted = 0;
    // Three workers ask greedily for a while; the bucket is one row they all take from.
    await Promise.all(
      [1, 2, 3].map(async () => {
        const db = dbOfWorker();
        while (Date.now() - began < 600) {
          granted += (await takeSendingTokens(db, 'relay-c', 50, rate)).granted;
        }
      }),
    );
    const elapsedSeconds = ((await databaseNow()) - startedAt) / 1000;
    expect(granted).toBeGreaterThan(0);
    // An upper bound only: what one bucket can give in the time that passed, whatever the speed.
    expect(granted).toBeLessThanOrEqual(rate.burst + Math.ceil(rate.perSecond * elapsedSeconds));
  });
});
