import { z } from 'zod';
import '../http/openapi.ts';
import { digestSettingInputs, digestSettingsOutput } from '../digests/digest-settings.schemas.ts';

// Names go into mail headers, so control characters never get in.
const headerSafeText = (max: number) =>
  z
    .string()
    .trim()
    .min(1)
    .max(max)
    .regex(/^[^\p{Cc}]*$/u, 'must not contain control characters');

export const slugSchema = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[a-z0-9]+(?:-[a-z0-9]+)*$/, 'must be lower-case letters, digits and single dashes');

const newsletterFields = {
  name: headerSafeText(200),
  description: z.string().max(2000),
  fromName: headerSafeText(200),
  fromEmail: z.email().max(254),
  replyTo: z.email().max(254).nullable(),
  locale: z
    .string()
    .regex(/^[a-z]{2,3}(?:-[A-Za-z0-9]{2,8})*$/, 'must be a language tag such as en or en-GB'),
};

export const createNewsletterSchema = z
  .object({
    slug: slugSchema,
    name: newsletterFields.name,
    description: newsletterFields.description.optional(),
    fromName: newsletterFields.fromName.optional(),
    fromEmail: newsletterFields.fromEmail.optional(),
    replyTo: newsletterFields.replyTo.optional(),
    locale: newsletterFields.locale.optional(),
    ...digestSettingInputs,
  })
  .strict()
  .openapi('NewNewsletter');

export const updateNewsletterSchema = z
  .object({
    name: newsletterFields.name.optional(),
    description: newsletterFields.description.optional(),
    fromName: newsletterFields.fromName.optional(),
    fromEmail: newsletterFields.fromEmail.optional(),
    replyTo: newsletterFields.replyTo.optional(),
    locale: newsletterFields.locale.optional(),
    status: z.enum(['active', 'archived']).optional(),
    ...digestSettingInputs,
  })
  .strict()
  .openapi('NewsletterUpdate');

export const newsletterSchema = z
  .object({
    slug: z.string(),
    name: z.string(),
    description: z.string(),
    fromName: z.string(),
    fromEmail: z.string(),
    replyTo: z.string().nullable(),
    locale: z.string(),
    status: z.enum(['active', 'archived']),
    subscribers: z.object({ pending: z.number(), confirmed: z.number(), unsubscribed: z.number() }),
    ...digestSettingsOutput,
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi('Newsletter');

export const newsletterListQuerySchema = z
  .object({ status: z.enum(['active', 'archived']).optional() })
  .strict();

export type CreateNewsletterInput = z.infer<typeof createNewsletterSchema>;
export type UpdateNewsletterInput = z.infer<typeof updateNewsletterSchema>;
