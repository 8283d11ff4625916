import { Liquid } from 'liquidjs';
import { z } from 'zod';
import { isWebUrl } from '../articles/articles.schemas.ts';

const label = (max: number) =>
  z
    .string()
    .trim()
    .min(1)
    .max(max)
    .regex(/^[^<>\p{Cc}]*$/u, 'must be plain text');

const liquid = new Liquid();

function isLiquid(source: string): boolean {
  try {
    liquid.parse(source);
    return true;
  } catch {
    return false;
  }
}

/** A newsletter's digest and feed settings, as newsletters accept them (camelCase JSON). */
export const digestSettingFields = {
  digestSections: z.array(label(80)).max(30),
  digestTags: z.array(label(60).transform((tag) => tag.toLowerCase())).max(30),
  digestMaxArticles: z.number().int().min(1).max(50),
  digestWindow: z.enum(['since_last_send', 'hours']),
  digestWindowHours: z.number().int().min(1).max(2160),
  // Liquid, e.g. "{{ newsletter.name }}: {{ headline }}"; null means "<name>: <first headline>".
  digestSubject: label(200).refine(isLiquid, 'must be a valid Liquid template').nullable(),
  feedUrl: z
    .string()
    .trim()
    .max(2048)
    .refine(isWebUrl, 'must be an absolute http:// or https:// URL')
    .nullable(),
  feedPollMinutes: z.number().int().min(5).max(1440),
};

/** Every setting optional: what create and update accept. */
export const digestSettingInputs = {
  digestSections: digestSettingFields.digestSections.optional(),
  digestTags: digestSettingFields.digestTags.optional(),
  digestMaxArticles: digestSettingFields.digestMaxArticles.optional(),
  digestWindow: digestSettingFields.digestWindow.optional(),
  digestWindowHours: digestSettingFields.digestWindowHours.optional(),
  digestSubject: digestSettingFields.digestSubject.optional(),
  feedUrl: digestSettingFields.feedUrl.optional(),
  feedPollMinutes: digestSettingFields.feedPollMinutes.optional(),
};

export const digestSettingsOutput = {
  digestSections: z.array(z.string()),
  digestTags: z.array(z.string()),
  digestMaxArticles: z.number(),
  digestWindow: z.enum(['since_last_send', 'hours']),
  digestWindowHours: z.number(),
  digestSubject: z.string().nullable(),
  feedUrl: z.string().nullable(),
  feedPollMinutes: z.number(),
  feedPolledAt: z.string().nullable(),
  feedLastError: z.string().nullable(),
};
