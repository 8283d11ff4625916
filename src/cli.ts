import { Command, Option } from 'commander';
import { createApiToken, listApiTokens, revokeApiToken } from './api-tokens/api-tokens.service.ts';
import { importFeed, loadFeed } from './articles/feed-import.service.ts';
import { ConfigError, loadConfig, withEmbeddedSecret } from './config.ts';
import { DatabaseUnreachableError, connectDatabase, type DatabaseHandle } from './db/connect.ts';
import { migrateDown, migrateToLatest } from './db/migrate.ts';
import { createSend, startSend } from './delivery/sends.service.ts';
import { buildDigest } from './digests/digest.service.ts';
import { MailTemplates } from './digests/mail-templates.ts';
import { DomainError } from './errors.ts';
import { runUntilSignalled } from './main.ts';

/** Opens the configured database for one command and closes it after. */
export async function withDatabase<T>(work: (database: DatabaseHandle) => Promise<T>): Promise<T> {
  const config = await withEmbeddedSecret(loadConfig());
  const database = await connectDatabase(config);
  try {
    return await work(database);
  } finally {
    await database.close();
  }
}

export const program = new Command('broadsheet')
  .description('Broadsheet newsletters')
  .showHelpAfterError();

program
  .command('migrate')
  .description('apply every pending migration (or revert the last one with --down)')
  .option('--down', 'revert the most recent migration')
  .action(async (options: { down?: boolean }) => {
    const lines = await withDatabase(({ db }) =>
      options.down ? migrateDown(db) : migrateToLatest(db),
    );
    console.log(lines.length ? lines.join('\n') : 'nothing to do');
  });

program
  .command('serve')
  .description('run the HTTP service (and the delivery worker unless RUN_WORKER=false)')
  .action(async () => runUntilSignalled({ http: true, worker: loadConfig().runWorker }));

program
  .command('worker')
  .description('run a delivery worker only; run as many as you like against one PostgreSQL')
  .action(async () => runUntilSignalled({ http: false, worker: true }));

program
  .command('import-feed <source>')
  .description('import an RSS 2.0 or Atom feed (http(s) URL or file) into articles, all or nothing')
  .action(async (source: string) => {
    const result = await withDatabase(async ({ db }) => {
      await migrateToLatest(db);
      return importFeed(db, await loadFeed(source));
    });
    console.log(
      `${result.format} feed "${result.feed}": ${result.created} created, ${result.updated} updated, ${result.skipped.length} skipped`,
    );
    for (const skip of result.skipped)
      console.log(`  entry ${skip.index + 1} skipped: ${skip.reason}`);
  });

program
  .command('send <newsletter>')
  .description("freeze the newsletter's digest into a send and start it now (or --at a time)")
  .option('--subject <subject>', "the subject (default: the newsletter's template)")
  .option('--at <time>', 'start at this ISO 8601 time instead of now')
  .option('--idempotency-key <key>', 'the same key twice gives the same send (for cron)')
  .option('--draft', 'only create the send; start it later through the API')
  .action(
    async (
      slug: string,
      options: { subject?: string; at?: string; idempotencyKey?: string; draft?: boolean },
    ) => {
      const scheduledAt = options.at ? new Date(options.at) : undefined;
      if (scheduledAt && Number.isNaN(scheduledAt.getTime())) {
        throw new DomainError(
          'invalid',
          'invalid_time',
          `--at ${options.at} is not an ISO 8601 time`,
        );
      }
      const config = await withEmbeddedSecret(loadConfig());
      const send = await withDatabase(async ({ db }) => {
        const templates = new MailTemplates(config.templatesDir);
        const { send: created } = await createSend(
          db,
          (newsletter, request) => buildDigest(db, { templates, config }, newsletter, request),
          slug,
          { subject: options.subject },
          { createdBy: 'cli', idempotencyKey: options.idempotencyKey },
        );
        if (options.draft || created.status !== 'draft') return created;
        return startSend(db, created.id, { scheduledAt, startedBy: 'cli' });
      });
      const when = send.scheduledAt ? ` at ${send.scheduledAt.toISOString()}` : '';
      console.log(
        `send ${send.id} of ${send.newsletter}: ${send.status}${when}, ${send.recipients} readers`,
      );
    },
  );

const token = program.command('token').description('editor and system tokens');
token
  .command('create')
  .description('create a token; it is printed once')
  .requiredOption('--name <name>', 'who or what uses it')
  .addOption(
    new Option('--role <role>', 'admin or editor').choices(['admin', 'editor']).default('editor'),
  )
  .action(async (options: { name: string; role: 'admin' | 'editor' }) => {
    const { token: value, apiToken } = await withDatabase(async ({ db }) => {
      await migrateToLatest(db);
      return createApiToken(db, options);
    });
    console.log(`created token ${apiToken.id} (${apiToken.role}) for ${apiToken.name}:\n${value}`);
  });
token
  .command('list')
  .description('list tokens (never their values)')
  .action(async () => {
    const tokens = await withDatabase(({ db }) => listApiTokens(db));
    for (const t of tokens) {
      const state = t.revokedAt ? `revoked ${t.revokedAt.toISOString()}` : 'active';
      const used = t.lastUsedAt ? t.lastUsedAt.toISOString() : 'never';
      console.log(`${t.id}\t${t.role}\t${state}\tlast used ${used}\t${t.name}`);
    }
  });
token
  .command('revoke <id>')
  .description('revoke a token at once')
  .action(async (id: string) => {
    await withDatabase(({ db }) => revokeApiToken(db, Number(id)));
    console.log(`revoked token ${id}`);
  });

export async function runCli(argv: string[]): Promise<void> {
  try {
    await program.parseAsync(argv);
  } catch (error) {
    if (
      error instanceof ConfigError ||
      error instanceof DatabaseUnreachableError ||
      error instanceof DomainError
    ) {
      console.error(`broadsheet: ${error.message}`);
      process.exit(1);
    }
    throw error;
  }
}

await runCli(process.argv);
