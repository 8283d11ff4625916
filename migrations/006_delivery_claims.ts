import { sql, type Kysely } from 'kysely';

// Claims read due rows in (next_attempt_at, subscriber_id) order; with subscriber_id in the index a
// claim reads its batch straight off it instead of sorting every unfinished row of a large send.
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`drop index deliveries_pending`.execute(db);
  await sql`
    create index deliveries_pending on deliveries (send_id, next_attempt_at, subscriber_id)
    where status in ('queued', 'sending')`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop index deliveries_pending`.execute(db);
  await sql`
    create index deliveries_pending on deliveries (send_id, next_attempt_at)
    where status in ('queued', 'sending')`.execute(db);
}
