import { z } from 'zod';
import '../http/openapi.ts';

export const sendIdParams = z.object({
  id: z
    .string()
    .regex(/^\d{1,15}$/, 'must be a send id')
    .transform(Number),
});

// Subjects go into a mail header, so control characters never get in.
export const createSendSchema = z
  .object({
    subject: z
      .string()
      .trim()
      .min(1)
      .max(200)
      .regex(/^[^\p{Cc}]*$/u, 'must not contain control characters')
      .optional(),
    articleIds: z.array(z.number().int().positive()).min(1).max(50).optional(),
  })
  .strict()
  .openapi('NewSend');

export const idempotencyKeySchema = z
  .string()
  .regex(/^[\x21-\x7e]{1,200}$/, 'must be 1 to 200 visible ascii characters');

export const startSendSchema = z
  .object({
    scheduledAt: z.iso
      .datetime({ offset: true })
      .transform((value) => new Date(value))
      .optional(),
  })
  .strict()
  .openapi('StartSend');

export const emptyBodySchema = z.object({}).strict();

export const testSendSchema = z
  .object({
    emails: z.array(z.email().max(254)).min(1).max(10),
  })
  .strict()
  .openapi('TestSend');

export const sendListQuerySchema = z
  .object({
    before: z
      .string()
      .regex(/^\d{1,15}$/, 'must be a send id from nextBefore')
      .transform(Number)
      .optional(),
    limit: z
      .string()
      .regex(/^\d{1,3}$/, 'must be a number from 1 to 100')
      .transform(Number)
      .refine((n) => n >= 1 && n <= 100, 'must be a number from 1 to 100')
      .default(20),
  })
  .strict();

export const deliveryStatusSchema = z.enum(['queued', 'sending', 'sent', 'failed', 'skipped']);

export const deliveriesQuerySchema = z
  .object({
    status: deliveryStatusSchema.optional(),
    after: z
      .string()
      .regex(/^\d{1,15}$/, 'must be a subscriber id from nextAfter')
      .transform(Number)
      .optional(),
    limit: z
      .string()
      .regex(/^\d{1,4}$/, 'must be a number from 1 to 1000')
      .transform(Number)
      .refine((n) => n >= 1 && n <= 1000, 'must be a number from 1 to 1000')
      .default(100),
  })
  .strict();

const sendFields = {
  id: z.number(),
  newsletter: z.string(),
  status: z.enum(['draft', 'scheduled', 'sending', 'paused', 'sent', 'cancelled']),
  statusReason: z.string().nullable(),
  subject: z.string(),
  preheader: z.string(),
  articleIds: z.array(z.number()),
  recipients: z.number(),
  createdBy: z.string().nullable(),
  scheduledAt: z.string().nullable(),
  startedAt: z.string().nullable(),
  finishedAt: z.string().nullable(),
  createdAt: z.string(),
};

export const sendSchema = z.object(sendFields).openapi('Send');

export const sendProgressSchema = z
  .object({
    ...sendFields,
    deliveries: z.object({
      queued: z.number(),
      sending: z.number(),
      sent: z.number(),
      failed: z.number(),
      skipped: z.number(),
      total: z.number(),
    }),
    possibleDuplicates: z.number(),
    ratePerSecond: z.number(),
    estimatedFinishAt: z.string().nullable(),
  })
  .openapi('SendProgress');

export const deliveriesPageSchema = z
  .object({
    deliveries: z.array(
      z.object({
        subscriberId: z.number(),
        email: z.string(),
        status: deliveryStatusSchema,
        attempts: z.number(),
        lastError: z.string().nullable(),
        messageId: z.string().nullable(),
        sentAt: z.string().nullable(),
      }),
    ),
    nextAfter: z.number().nullable(),
  })
  .openapi('DeliveriesPage');
