import { sql } from 'kysely';
import type { ApiTokenRow, Db } from '../db/database.ts';

export async function insertApiToken(
  db: Db,
  token: { name: string; role: 'admin' | 'editor'; tokenHash: string },
): Promise<ApiTokenRow> {
  return db
    .insertInto('api_tokens')
    .values({ name: token.name, role: token.role, token_hash: token.tokenHash })
    .returningAll()
    .executeTakeFirstOrThrow();
}

export async function findActiveTokenByHash(
  db: Db,
  tokenHash: string,
): Promise<ApiTokenRow | undefined> {
  return db
    .selectFrom('api_tokens')
    .selectAll()
    .where('token_hash', '=', tokenHash)
    .where('revoked_at', 'is', null)
    .executeTakeFirst();
}

// Written at most once a minute per token, so reads stay cheap under load.
export async function touchApiToken(db: Db, id: number): Promise<void> {
  await db
    .updateTable('api_tokens')
    .set({ last_used_at: sql<Date>`now()` })
    .where('id', '=', id)
    .where((eb) =>
      eb.or([
        eb('last_used_at', 'is', null),
        eb('last_used_at', '<', sql<Date>`now() - interval '1 minute'`),
      ]),
    )
    .execute();
}

export async function listApiTokens(db: Db): Promise<ApiTokenRow[]> {
  return db.selectFrom('api_tokens').selectAll().orderBy('id').execute();
}

export async function revokeApiToken(db: Db, id: number): Promise<boolean> {
  const result = await db
    .updateTable('api_tokens')
    .set({ revoked_at: sql<Date>`now()` })
    .where('id', '=', id)
    .where('revoked_at', 'is', null)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}
