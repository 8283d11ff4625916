import { isIP } from 'node:net';
import { availableParallelism } from 'node:os';
import { z } from 'zod';

const list = z
  .string()
  .optional()
  .transform((value) =>
    (value ?? '')
      .split(',')
      .map((item) => item.trim())
      .filter(Boolean),
  );

const yesOrNo = z.enum(['true', 'false', '1', '0', 'yes', 'no']).optional();
const isYes = (value: string) => ['true', '1', 'yes'].includes(value);
const flag = (fallback: boolean) =>
  yesOrNo.transform((value) => (value === undefined ? fallback : isYes(value)));

const url = (protocols: string[]) =>
  z
    .string()
    .url()
    .refine((value) => URL.canParse(value) && protocols.includes(new URL(value).protocol), {
      message: `must start with ${protocols.map((p) => `${p}//`).join(' or ')}`,
    });

function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

const environmentSchema = z
  .object({
    NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
    PORT: z.coerce.number().int().min(0).max(65535).default(3000),
    HOST: z.string().default('0.0.0.0'),
    DATA_DIR: z.string().min(1).default('./data'),
    DATABASE_URL: url(['postgres:', 'postgresql:']).optional(),
    DATABASE_POOL_SIZE: z.coerce.number().int().min(1).max(500).default(10),
    PUBLIC_URL: url(['http:', 'https:']).optional(),
    SECRET: z.string().min(32, 'must be at least 32 characters').optional(),
    PREVIOUS_SECRETS: list,
    ADMIN_TOKEN: z.string().min(24, 'must be at least 24 characters').optional(),
    SMTP_URL: url(['smtp:', 'smtps:']).optional(),
    SMTP_RELAYS: z
      .string()
      .optional()
      .transform((value, ctx) => parseRelays(value ?? '', ctx)),
    MAIL_FROM: z.string().min(3).default('Broadsheet <newsletters@localhost>'),
    MESSAGE_ID_DOMAIN: z.string().optional(),
    LOG_LEVEL: z
      .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
      .default('info'),
    SITE_ORIGINS: list,
    TRUST_PROXY: z
      .string()
      .default('loopback, linklocal, uniquelocal')
      .transform((value, ctx) => parseTrustProxy(value, ctx)),
    // On by default in embedded mode only: a newsroom's own site carries the real form.
    DEMO_PAGE: yesOrNo.transform((value) => (value === undefined ? undefined : isYes(value))),
    RUN_WORKER: flag(true),
    BODY_LIMIT: z.string().default('100kb'),
    TEMPLATES_DIR: z.string().min(1).optional(),
    ARCHIVE_URL: url(['http:', 'https:']).optional(),
    DIGEST_TIME_ZONE: z
      .string()
      .default('UTC')
      .refine(isTimeZone, 'must be an IANA time zone such as Europe/London'),
    FEED_POLLING: flag(true),
    WORKER_BATCH_SIZE: z.coerce.number().int().min(1).max(5000).default(500),
    WORKER_LEASE_SECONDS: z.coerce.number().min(1).max(3600).default(60),
    WORKER_POLL_MS: z.coerce.number().int().min(10).max(60_000).default(500),
    DELIVERY_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(50).default(8),
    DELIVERY_RETRY_SECONDS: z.coerce.number().min(0).max(3600).default(30),
    SEND_RATE_PER_SECOND: z.coerce.number().min(0).default(0),
    SMTP_MAX_CONNECTIONS: z.coerce.number().int().min(1).max(500).default(5),
    SEND_PAUSE_FAILURE_RATE: z.coerce.number().gt(0).max(1).default(0.2),
    SEND_PAUSE_MIN_OUTCOMES: z.coerce.number().int().min(1).default(100),
    FEEDBACK_ID: z
      .string()
      .regex(/^[\w.-]{1,60}$/, 'must be letters, digits, dots or dashes')
      .optional(),
    UNSUBSCRIBE_MAILTO: z.email().optional(),
    DKIM_DOMAIN: z.string().min(1).optional(),
    DKIM_SELECTOR: z.string().min(1).optional(),
    DKIM_PRIVATE_KEY: z.string().min(1).optional(),
    DKIM_THREADS: z.coerce
      .number()
      .int()
      .min(0)
      .max(64)
      .default(Math.max(0, availableParallelism() - 1)),
    CONFIRM_LINK_DAYS: z.coerce.number().positive().max(90).default(7),
    CONFIRMATION_MAILS_PER_DAY: z.coerce.number().int().min(1).max(100).default(3),
    SUBSCRIBE_LIMIT_PER_IP: z.coerce.number().int().min(1).default(30),
    SUBSCRIBE_LIMIT_PER_ADDRESS: z.coerce.number().int().min(1).default(10),
    SMTPUTF8: flag(false),
    CHECK_EMAIL_DOMAIN: flag(false),
    REFUSE_DISPOSABLE_EMAIL: flag(false),
    WELCOME_MAIL: flag(true),
    CONSENT_TEXT_VERSION: z.string().trim().min(1).max(100).default('1'),
  })
  .superRefine((env, ctx) => {
    const dkim = [env.DKIM_DOMAIN, env.DKIM_SELECTOR, env.DKIM_PRIVATE_KEY];
    if (dkim.some(Boolean) && !dkim.every(Boolean)) {
      ctx.addIssue({
        code: 'custom',
        path: ['DKIM_PRIVATE_KEY'],
        message: 'DKIM_DOMAIN, DKIM_SELECTOR and DKIM_PRIVATE_KEY go together',
      });
    }
    if (env.DATABASE_URL && !env.SECRET) {
      ctx.addIssue({
        code: 'custom',
        path: ['SECRET'],
        message: 'is required when DATABASE_URL is set (every instance must sign links alike)',
      });
    }
  });

export class ConfigError extends Error {}

/** One relay newsletter mail may leave through, with limits of its own. */
export interface RelaySetting {
  url: string;
  weight: number;
  messagesPerSecond: number;
  maxConnections: number | undefined;
  fallbackOnly: boolean;
}

// SMTP_RELAYS: comma-separated smtp(s) URLs, each with optional ?weight=&rate=&connections=&fallback=true.
function parseRelays(value: string, ctx: z.RefinementCtx): RelaySetting[] {
  const relays: RelaySetting[] = [];
  for (const entry of value
    .split(',')
    .map((item) => item.trim())
    .filter(Boolean)) {
    const url = URL.canParse(entry) ? new URL(entry) : undefined;
    const number = (name: string, fallback: number | undefined) => {
      const given = url?.searchParams.get(name);
      return given === null || given === undefined ? fallback : Number(given);
    };
    const setting = url && {
      weight: number('weight', 1)!,
      messagesPerSecond: number('rate', 0)!,
      maxConnections: number('connections', undefined),
      fallbackOnly: url.searchParams.get('fallback') === 'true',
    };
    const valid =
      url &&
      setting &&
      ['smtp:', 'smtps:'].includes(url.protocol) &&
      [...url.searchParams.keys()].every((key) =>
        ['weight', 'rate', 'connections', 'fallback'].includes(key),
      ) &&
      Number.isFinite(setting.weight) &&
      setting.weight >= 0 &&
      Number.isFinite(setting.messagesPerSecond) &&
      setting.messagesPerSecond >= 0 &&
      (setting.maxConnections === undefined ||
        (Number.isInteger(setting.maxConnections) && setting.maxConnections >= 1));
    if (!valid) {
      ctx.addIssue({
        code: 'custom',
        message: `has an entry that is not smtp(s)://host:port?weight=&rate=&connections=&fallback=true: ${entry.replace(/\/\/[^@/]*@/, '//***@')}`,
      });
      continue;
    }
    for (const key of ['weight', 'rate', 'connections', 'fallback']) url.searchParams.delete(key);
    relays.push({ url: url.toString(), ...setting });
  }
  return relays;
}

const PROXY_RANGES = new Set(['loopback', 'linklocal', 'uniquelocal']);

/**
 * Which peers may say who the reader is (X-Forwarded-For), in Express's terms: `false`, a number
 * of proxy hops, or addresses, subnets and the names loopback, linklocal, uniquelocal.
 */
function parseTrustProxy(value: string, ctx: z.RefinementCtx): boolean | number | string[] {
  if (value === 'true' || value === 'false') return value === 'true';
  if (/^\d+$/.test(value)) return Number(value);
  const entries = value
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean);
  for (const entry of entries) {
    const [address = '', bits, ...rest] = entry.split('/');
    const version = isIP(address);
    const most = version === 4 ? 32 : 128;
    const valid =
      PROXY_RANGES.has(entry) ||
      (version !== 0 &&
        rest.length === 0 &&
        (bits === undefined || (/^\d+$/.test(bits) && Number(bits) <= most)));
    if (!valid) {
      ctx.addIssue({
        code: 'custom',
        message: `has an entry that is not an address, a subnet or loopback/linklocal/uniquelocal: ${entry}`,
      });
    }
  }
  return entries;
}

export type Config = Readonly<ReturnType<typeof toConfig>>;

function toConfig(env: z.infer<typeof environmentSchema>) {
  const publicUrl = (env.PUBLIC_URL ?? `http://localhost:${env.PORT}`).replace(/\/+$/, '');
  return {
    environment: env.NODE_ENV,
    port: env.PORT,
    host: env.HOST,
    dataDir: env.DATA_DIR,
    databaseUrl: env.DATABASE_URL,
    databasePoolSize: env.DATABASE_POOL_SIZE,
    publicUrl,
    secret: env.SECRET,
    previousSecrets: env.PREVIOUS_SECRETS,
    adminToken: env.ADMIN_TOKEN,
    smtpUrl: env.SMTP_URL,
    relays: env.SMTP_RELAYS,
    mailFrom: env.MAIL_FROM,
    messageIdDomain: env.MESSAGE_ID_DOMAIN ?? new URL(publicUrl).hostname,
    logLevel: env.LOG_LEVEL,
    siteOrigins: env.SITE_ORIGINS,
    trustProxy: env.TRUST_PROXY,
    demoPage: env.DEMO_PAGE ?? env.DATABASE_URL === undefined,
    runWorker: env.RUN_WORKER,
    bodyLimit: env.BODY_LIMIT,
    templatesDir: env.TEMPLATES_DIR,
    archiveUrl: env.ARCHIVE_URL,
    digestTimeZone: env.DIGEST_TIME_ZONE,
    feedPolling: env.FEED_POLLING,
    delivery: {
      batchSize: env.WORKER_BATCH_SIZE,
      leaseSeconds: env.WORKER_LEASE_SECONDS,
      pollIntervalMs: env.WORKER_POLL_MS,
      maxAttempts: env.DELIVERY_MAX_ATTEMPTS,
      retrySeconds: env.DELIVERY_RETRY_SECONDS,
      messagesPerSecond: env.SEND_RATE_PER_SECOND,
      maxConnections: env.SMTP_MAX_CONNECTIONS,
      pauseFailureRate: env.SEND_PAUSE_FAILURE_RATE,
      pauseMinOutcomes: env.SEND_PAUSE_MIN_OUTCOMES,
      feedbackId: env.FEEDBACK_ID,
      unsubscribeMailto: env.UNSUBSCRIBE_MAILTO,
      dkim:
        env.DKIM_DOMAIN && env.DKIM_SELECTOR && env.DKIM_PRIVATE_KEY
          ? {
              domainName: env.DKIM_DOMAIN,
              keySelector: env.DKIM_SELECTOR,
              // A PEM key in one environment line carries its line breaks as "\n".
              privateKey: env.DKIM_PRIVATE_KEY.replaceAll('\\n', '\n'),
            }
          : undefined,
      dkimThreads: env.DKIM_THREADS,
    },
    confirmLinkDays: env.CONFIRM_LINK_DAYS,
    confirmationMailsPerDay: env.CONFIRMATION_MAILS_PER_DAY,
    subscribeLimitPerIp: env.SUBSCRIBE_LIMIT_PER_IP,
    subscribeLimitPerAddress: env.SUBSCRIBE_LIMIT_PER_ADDRESS,
    smtpUtf8: env.SMTPUTF8,
    checkEmailDomain: env.CHECK_EMAIL_DOMAIN,
    refuseDisposableEmail: env.REFUSE_DISPOSABLE_EMAIL,
    welcomeMail: env.WELCOME_MAIL,
    consentTextVersion: env.CONSENT_TEXT_VERSION,
  };
}

/** Reads the environment once; a wrong variable is named in the error. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  // An empty variable (FOO= in a .env file) means "not set", as shells and compose files use it.
  const given = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== ''));
  const parsed = environmentSchema.safeParse(given);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join('.')} ${issue.message}`);
    throw new ConfigError(`invalid configuration: ${problems.join('; ')}`);
  }
  return Object.freeze(toConfig(parsed.data));
}

/** In embedded mode a secret is made once and kept under DATA_DIR, so links survive restarts. */
export async function withEmbeddedSecret(config: Config): Promise<Config> {
  if (config.secret) return config;
  const { mkdir, readFile, writeFile } = await import('node:fs/promises');
  const { randomBytes } = await import('node:crypto');
  const { join } = await import('node:path');
  const file = join(config.dataDir, 'secret');
  await mkdir(config.dataDir, { recursive: true });
  let secret: string;
  try {
    secret = (await readFile(file, 'utf8')).trim();
  } catch {
    secret = randomBytes(32).toString('base64url');
    await writeFile(file, secret + '\n', { mode: 0o600 });
  }
  return Object.freeze({ ...config, secret });
}
