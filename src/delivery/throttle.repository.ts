import { sql } from 'kysely';
import type { Db } from '../db/database.ts';

/**
 * Takes up to `wanted` messages from a transport's token bucket, shared by every worker. The bucket
 * refills at `perSecond` and holds at most `burst`; the row lock makes concurrent takers queue.
 */
export async function takeSendingTokens(
  db: Db,
  transport: string,
  wanted: number,
  rate: { perSecond: number; burst: number },
): Promise<{ granted: number; available: number }> {
  await sql`
    insert into delivery_rate_buckets (transport, tokens) values (${transport}, ${rate.burst})
    on conflict (transport) do nothing`.execute(db);
  const result = await sql<{ granted: number; available: number }>`
    with bucket as (
      select transport, least(${rate.burst}::float8,
        tokens + extract(epoch from clock_timestamp() - refreshed_at)::float8 * ${rate.perSecond}::float8) as available
      from delivery_rate_buckets where transport = ${transport}
      for update)
    update delivery_rate_buckets target
    set tokens = bucket.available - greatest(0, least(${wanted}::float8, floor(bucket.available))),
      refreshed_at = clock_timestamp()
    from bucket where target.transport = bucket.transport
    returning greatest(0, least(${wanted}::float8, floor(bucket.available)))::integer as granted,
      bucket.available`.execute(db);
  const row = result.rows[0]!;
  return { granted: Number(row.granted), available: Number(row.available) };
}

/** A worker that has work says so; the fair share of connections divides among the live ones. */
export async function announceWorker(
  db: Db,
  workerId: string,
  staleSeconds: number,
): Promise<number> {
  await sql`
    insert into delivery_workers (id, seen_at) values (${workerId}, clock_timestamp())
    on conflict (id) do update set seen_at = excluded.seen_at`.execute(db);
  const row = await sql<{ live: number }>`
    select count(*)::integer as live from delivery_workers
    where seen_at > clock_timestamp() - make_interval(secs => ${staleSeconds})`.execute(db);
  return Math.max(1, Number(row.rows[0]!.live));
}

export async function retireWorker(db: Db, workerId: string): Promise<void> {
  await sql`delete from delivery_workers where id = ${workerId}`.execute(db);
  await sql`
    update delivery_connection_slots set holder = null, lease_until = null
    where holder = ${workerId}`.execute(db);
}

/**
 * Holds up to `wanted` of a transport's `limit` connection slots under a lease: keeps the ones
 * this worker has, takes free or abandoned ones, gives back the rest. Slots are rows, so all
 * workers together never hold more than `limit`.
 */
export async function holdConnectionSlots(
  db: Db,
  holder: { workerId: string; transport: string },
  limit: number,
  wanted: number,
  leaseSeconds: number,
): Promise<number> {
  await sql`
    insert into delivery_connection_slots (transport, slot)
    select ${holder.transport}, generate_series(1, ${limit}::integer)
    on conflict (transport, slot) do nothing`.execute(db);
  const held = await sql<{ slot: number }>`
    update delivery_connection_slots target
    set holder = ${holder.workerId}, lease_until = clock_timestamp() + make_interval(secs => ${leaseSeconds})
    where target.transport = ${holder.transport} and target.slot in (
      select slot from delivery_connection_slots
      where transport = ${holder.transport} and slot <= ${limit}::integer
        and (holder = ${holder.workerId} or holder is null or lease_until < clock_timestamp())
      order by (holder is not distinct from ${holder.workerId}) desc, slot
      limit ${wanted}::integer
      for update skip locked)
    returning target.slot`.execute(db);
  const slots = held.rows.map((row) => row.slot);
  await sql`
    update delivery_connection_slots set holder = null, lease_until = null
    where transport = ${holder.transport} and holder = ${holder.workerId}
      and not (slot = any(${slots}::integer[]))`.execute(db);
  return slots.length;
}
