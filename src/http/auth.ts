import type { RequestHandler } from 'express';
import { authenticate, canAct, type Caller, type Role } from '../api-tokens/api-tokens.service.ts';
import type { Db } from '../db/database.ts';
import { DomainError } from '../errors.ts';

declare module 'express-serve-static-core' {
  interface Locals {
    caller?: Caller;
  }
}

/** Lets through callers whose token carries `role` (admins carry every role). */
export function requireRole(db: Db, adminToken: string | undefined, role: Role): RequestHandler {
  return async (req, res, next) => {
    const header = req.get('authorization') ?? '';
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    const caller = await authenticate(db, match?.[1], adminToken);
    if (!canAct(caller, role)) {
      throw new DomainError(
        'forbidden',
        'forbidden',
        `this needs the ${role} role; the token has ${caller.role}`,
      );
    }
    res.locals.caller = caller;
    next();
  };
}

export function callerOf(locals: { caller?: Caller }): Caller {
  if (!locals.caller) throw new Error('route is missing requireRole');
  return locals.caller;
}
