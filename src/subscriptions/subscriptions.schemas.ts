import { z } from 'zod';
import { slugSchema } from '../newsletters/newsletters.schemas.ts';
import '../http/openapi.ts';

/** The most newsletters one subscribe request may name, as JSON or as a form. */
export const MOST_NEWSLETTERS = 50;

// Lone surrogates too: PostgreSQL refuses them in text and jsonb.
const noControlCharacters = /^[^\p{Cc}\p{Cs}]*$/u;

// The address is checked by our own rules (email-address.ts), so only its size is limited here.
export const subscribeSchema = z
  .object({
    email: z.string().max(1000),
    newsletters: z.array(slugSchema).min(1, 'choose at least one newsletter').max(MOST_NEWSLETTERS),
    source: z
      .string()
      .trim()
      .max(500)
      .regex(noControlCharacters, 'must not contain control characters')
      .optional(),
    website: z.string().max(1000).optional(),
  })
  .strict()
  .openapi('SubscriptionRequest');

export const subscribeAcceptedSchema = z
  .object({
    message: z.string(),
    suggestion: z.string().optional(),
  })
  .openapi('SubscriptionAccepted');

export const readerListQuerySchema = z
  .object({
    status: z.enum(['pending', 'confirmed', 'unsubscribed']).optional(),
    cursor: z.string().max(100).optional(),
    limit: z.coerce.number().int().min(1).max(1000).default(100),
  })
  .strict();

export const readerSchema = z
  .object({
    email: z.string(),
    status: z.enum(['pending', 'confirmed', 'unsubscribed']),
    requestedAt: z.string(),
    confirmedAt: z.string().nullable(),
    unsubscribedAt: z.string().nullable(),
    source: z.string().nullable(),
  })
  .openapi('Reader');

export const readerPageSchema = z
  .object({ subscribers: z.array(readerSchema), nextCursor: z.string().nullable() })
  .openapi('ReaderPage');

export type SubscribeInput = z.infer<typeof subscribeSchema>;
