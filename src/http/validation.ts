import type { z } from 'zod';
import { DomainError } from '../errors.ts';

/** Parses a request part with the route's schema; unknown fields and wrong shapes are 400s. */
export function parseInput<T extends z.ZodType>(
  schema: T,
  input: unknown,
  part = 'body',
): z.infer<T> {
  const result = schema.safeParse(input ?? {});
  if (result.success) return result.data;
  const issues = result.error.issues.map((issue) => ({
    path: issue.path.join('.'),
    message: issue.message,
    ...(issue.code === 'unrecognized_keys' ? { keys: issue.keys } : {}),
  }));
  const unknown = result.error.issues.find((issue) => issue.code === 'unrecognized_keys');
  if (unknown && unknown.code === 'unrecognized_keys') {
    throw new DomainError(
      'invalid',
      'unknown_field',
      `unknown field in ${part}: ${unknown.keys.join(', ')}`,
      {
        issues,
      },
    );
  }
  const first = issues[0]!;
  throw new DomainError(
    'invalid',
    'invalid_request',
    `invalid ${part}: ${first.path ? `${first.path}: ` : ''}${first.message}`.toLowerCase(),
    { issues },
  );
}
