import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Db } from '../db/database.ts';
import { DomainError } from '../errors.ts';
import * as repository from './api-tokens.repository.ts';

export type Role = 'admin' | 'editor';

export interface ApiToken {
  id: number;
  name: string;
  role: Role;
  createdAt: Date;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
}

export interface Caller {
  tokenId: number | null;
  name: string;
  role: Role;
}

const TOKEN_PREFIX = 'bs_';

function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

function sameSecret(a: string, b: string): boolean {
  return timingSafeEqual(Buffer.from(hashToken(a), 'hex'), Buffer.from(hashToken(b), 'hex'));
}

/** Makes a token; the plain value is returned once and only its hash is kept. */
export async function createApiToken(
  db: Db,
  input: { name: string; role: Role },
): Promise<{ token: string; apiToken: ApiToken }> {
  const token = TOKEN_PREFIX + randomBytes(32).toString('base64url');
  const row = await repository.insertApiToken(db, { ...input, tokenHash: hashToken(token) });
  return { token, apiToken: toApiToken(row) };
}

export async function listApiTokens(db: Db): Promise<ApiToken[]> {
  return (await repository.listApiTokens(db)).map(toApiToken);
}

export async function revokeApiToken(db: Db, id: number): Promise<void> {
  if (!(await repository.revokeApiToken(db, id))) {
    throw new DomainError('not_found', 'token_not_found', `no active token with id ${id}`);
  }
}

/** Who is calling, or why not: a missing, unknown or revoked token is refused alike. */
export async function authenticate(
  db: Db,
  token: string | undefined,
  adminToken: string | undefined,
): Promise<Caller> {
  if (!token) {
    throw new DomainError(
      'unauthorized',
      'unauthorized',
      'an editor token is required (Authorization: Bearer <token>)',
    );
  }
  if (adminToken && sameSecret(token, adminToken)) {
    return { tokenId: null, name: 'ADMIN_TOKEN', role: 'admin' };
  }
  const row = await repository.findActiveTokenByHash(db, hashToken(token));
  if (!row)
    throw new DomainError('unauthorized', 'invalid_token', 'the token is unknown or revoked');
  await repository.touchApiToken(db, row.id);
  return { tokenId: row.id, name: row.name, role: row.role };
}

export function canAct(caller: Caller, needed: Role): boolean {
  return caller.role === 'admin' || caller.role === needed;
}

function toApiToken(row: {
  id: number;
  name: string;
  role: Role;
  created_at: Date;
  last_used_at: Date | null;
  revoked_at: Date | null;
}): ApiToken {
  return {
    id: row.id,
    name: row.name,
    role: row.role,
    createdAt: row.created_at,
    lastUsedAt: row.last_used_at,
    revokedAt: row.revoked_at,
  };
}
