/**
 * Delivery throughput: a 10-article digest to N confirmed readers on PostgreSQL, through a local
 * discarding SMTP listener. In the same run: (a) our worker as a separate process (`npm run
 * worker` compiled by `npm run build`), (b) the naive way (nodemailer sendMail with full HTML per reader, pooled), (c) the
 * listener's own ceiling with a raw pipelined client.
 *
 *   npm run bench:send                        # 100,000 readers
 *   BENCH_READERS=1000000 npm run bench:send  # a million: materialisation and worker memory
 *
 * Also, on BENCH_DKIM_READERS (20,000) of them: DKIM-signed sends, signing on the worker's main
 * thread against one signing thread.
 *
 * BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres) names a server where
 * a scratch database is created and dropped.
 */
import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { sql } from 'kysely';
import nodemailer from 'nodemailer';
import { connectPostgres } from '../src/db/connect.ts';
import { migrateToLatest } from '../src/db/migrate.ts';
import { newsletterMailCommon } from '../src/delivery/newsletter-mail.ts';
import { messageFor, prepareMessage } from '../src/delivery/prepared-message.ts';
import { createSend, startSend } from '../src/delivery/sends.service.ts';
import { renderDigest } from '../src/digests/digest-content.ts';
import { MailTemplates, personalise } from '../src/digests/mail-templates.ts';
import { blastRawSmtp } from './raw-smtp-client.ts';
import { sampleArticles } from './sample-articles.ts';
import { startSmtpSink } from './smtp-sink-process.ts';

const READERS = Number(process.env.BENCH_READERS ?? 100_000);
const NAIVE_READERS = Number(process.env.BENCH_NAIVE_READERS ?? Math.min(READERS, 10_000));
const RAW_MESSAGES = Number(process.env.BENCH_RAW_MESSAGES ?? 30_000);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 8);
const DKIM_READERS = Number(process.env.BENCH_DKIM_READERS ?? Math.min(READERS, 20_000));
const SERVER_URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const SECRET = 'bench-secret-bench-secret-bench-secret-00';

const digestNewsletter = {
  slug: 'morning-briefing',
  name: 'Morning Briefing',
  locale: 'en-GB',
  digestSubject: null,
};

const databaseName = `broadsheet_bench_${Date.now()}`;
const databaseUrl = Object.assign(new URL(SERVER_URL), { pathname: `/${databaseName}` }).toString();
const admin = connectPostgres(SERVER_URL, 1);
await sql`create database ${sql.id(databaseName)}`.execute(admin.db);
const { db, close } = connectPostgres(databaseUrl, 4);
const sink = await startSmtpSink();

try {
  await migrateToLatest(db);
  const articles = sampleArticles();
  const templates = new MailTemplates();
  const digest = await renderDigest(templates, digestNewsletter, articles, {
    issuedAt: new Date(),
    timeZone: 'Europe/London',
  });
  const newsletter = await db
    .insertInto('newsletters')
    .values({
      slug: 'morning-briefing',
      name: 'Morning Briefing',
      from_name: 'The Newsroom',
      from_email: 'briefing@news.example.com',
    })
    .returning('id')
    .executeTakeFirstOrThrow();

  let started = performance.now();
  await sql`
    insert into subscribers (email, email_normalized)
    select 'reader' || n || '@example.com', 'reader' || n || '@example.com' from generate_series(1, ${READERS}) n`.execute(
    db,
  );
  await sql`
    insert into subscriptions (subscriber_id, newsletter_id, status, confirmed_at, source)
    select id, ${newsletter.id}, 'confirmed', now(), 'bench' from subscribers`.execute(db);
  await sql`analyze`.execute(db);
  console.log(`seeded ${READERS.toLocaleString('en')} confirmed readers in ${seconds(started)} s`);

  const { send } = await createSend(
    db,
    async () => ({ ...digest, articleIds: articles.map((a) => a.id) }),
    'morning-briefing',
    {},
    { createdBy: 'bench' },
  );
  started = performance.now();
  await startSend(db, send.id, { startedBy: 'bench' });
  const materialiseSeconds = (performance.now() - started) / 1000;
  console.log(
    `materialised ${READERS.toLocaleString('en')} deliveries in ${materialiseSeconds.toFixed(2)} s`,
  );
  console.log(`digest HTML ${(Buffer.byteLength(digest.html) / 1024).toFixed(1)} KB`);

  // (a) our worker, as its own process
  const worker = await runWorker(send.id);
  const sentA = await countSent(send.id);
  if (sentA !== READERS) throw new Error(`worker sent ${sentA} of ${READERS}`);
  const a = READERS / worker.seconds;

  // DKIM-signed sends to a subset, signing on the main thread against a signing thread
  const dkimLines: string[] = [];
  if (DKIM_READERS > 0) {
    const signed = await db
      .insertInto('newsletters')
      .values({
        slug: 'signed',
        name: 'Signed',
        from_name: 'The Newsroom',
        from_email: 'briefing@news.example.com',
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    await sql`
      insert into subscriptions (subscriber_id, newsletter_id, status, confirmed_at, source)
      select id, ${signed.id}, 'confirmed', now(), 'bench' from subscribers where id <= ${DKIM_READERS}`.execute(
      db,
    );
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const key = privateKey
      .export({ type: 'pkcs1', format: 'pem' })
      .toString()
      .replaceAll('\n', '\\n');
    for (const threads of [0, 1]) {
      const { send: signedSend } = await createSend(
        db,
        async () => ({ ...digest, articleIds: articles.map((a) => a.id) }),
        'signed',
        {},
        { createdBy: 'bench' },
      );
      await startSend(db, signedSend.id, { startedBy: 'bench' });
      const run = await runWorker(signedSend.id, {
        DKIM_DOMAIN: 'news.example.com',
        DKIM_SELECTOR: 'bench',
        DKIM_PRIVATE_KEY: key,
        DKIM_THREADS: String(threads),
      });
      dkimLines.push(
        `DKIM, ${threads} signing thread(s)   ${(DKIM_READERS / run.seconds).toFixed(0)} messages/s (${DKIM_READERS} readers)`,
      );
    }
  }

  // (b) the naive way, on a subset (it is slow)
  const b = await naiveSend(digest, NAIVE_READERS);

  // (c) the listener's ceiling
  const prepared = prepareMessage(
    newsletterMailCommon(
      { id: send.id, subject: digest.subject, html: digest.html, text: digest.text },
      {
        slug: 'morning-briefing',
        name: 'Morning Briefing',
        fromName: 'The Newsroom',
        fromEmail: 'briefing@news.example.com',
        replyTo: null,
      },
      { domain: 'news.example.com' },
    ),
  );
  const sample = messageFor(prepared, {
    to: 'reader1@example.com',
    messageId: '<sample@news.example.com>',
    date: new Date(),
    values: readerValues(1),
  });
  const raw = await blastRawSmtp({
    port: sink.port,
    message: sample,
    messages: RAW_MESSAGES,
    connections: CONNECTIONS,
  });
  const c = raw.sent / raw.seconds;

  const { accepted } = await sink.count();
  console.log('');
  console.log(`readers                     ${READERS.toLocaleString('en')}`);
  console.log(`message size                ${(sample.length / 1024).toFixed(1)} KB`);
  console.log(`materialise                 ${materialiseSeconds.toFixed(2)} s`);
  console.log(
    `(a) broadsheet worker       ${a.toFixed(0)} messages/s (${READERS} in ${worker.seconds.toFixed(1)} s, ${CONNECTIONS} connections)`,
  );
  console.log(`(b) naive nodemailer        ${b.toFixed(0)} messages/s (${NAIVE_READERS} readers)`);
  console.log(`(c) listener ceiling (raw)  ${c.toFixed(0)} messages/s`);
  console.log(`a/b                         ${(a / b).toFixed(2)}`);
  console.log(`a/c                         ${(a / c).toFixed(2)}`);
  console.log(`worker peak RSS             ${(worker.peakRssKb / 1024).toFixed(0)} MB`);
  for (const line of dkimLines) console.log(line);
  console.log(`listener accepted           ${accepted.toLocaleString('en')} messages in all`);
} finally {
  await sink.stop();
  await close();
  await sql`drop database if exists ${sql.id(databaseName)} with (force)`.execute(admin.db);
  await admin.close();
}

async function runWorker(
  sendId: number,
  extraEnv: Record<string, string> = {},
): Promise<{ seconds: number; peakRssKb: number }> {
  // The compiled worker with the flags of `npm run worker:production`; tsx alone adds ~50 MB.
  const child = spawn(
    process.execPath,
    [
      ...(process.env.BENCH_NODE_FLAGS ?? '--max-semi-space-size=4 --max-old-space-size=96')
        .split(' ')
        .filter(Boolean),
      'dist/src/cli.js',
      'worker',
    ],
    {
      env: {
        ...process.env,
        DATABASE_URL: databaseUrl,
        SECRET,
        SMTP_URL: sink.url,
        SMTP_MAX_CONNECTIONS: String(CONNECTIONS),
        PUBLIC_URL: 'https://news.example.com',
        LOG_LEVEL: 'warn',
        FEED_POLLING: 'false',
        WORKER_POLL_MS: '50',
        ...extraEnv,
      },
      stdio: ['ignore', 'inherit', 'inherit'],
    },
  );
  const started = performance.now();
  let peakRssKb = 0;
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    peakRssKb = Math.max(peakRssKb, await highWaterMarkKb(child.pid!));
    const status = await db
      .selectFrom('sends')
      .select('status')
      .where('id', '=', sendId)
      .executeTakeFirstOrThrow();
    if (status.status === 'sent') break;
    if (child.exitCode !== null) throw new Error(`worker exited with ${child.exitCode}`);
  }
  const elapsed = (performance.now() - started) / 1000;
  peakRssKb = Math.max(peakRssKb, await highWaterMarkKb(child.pid!));
  const exited = new Promise((resolve) => child.on('exit', resolve));
  child.kill('SIGTERM');
  await exited;
  return { seconds: elapsed, peakRssKb };
}

// VmHWM is the process's peak resident set; a launcher may run the worker as its child, so take the largest.
async function highWaterMarkKb(pid: number): Promise<number> {
  let peak = 0;
  for (const candidate of [pid, ...(await childrenOf(pid))]) {
    const status = await readFile(`/proc/${candidate}/status`, 'utf8').catch(() => '');
    peak = Math.max(peak, Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0));
  }
  return peak;
}

async function childrenOf(pid: number): Promise<number[]> {
  const text = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => '');
  const direct = text.split(/\s+/).filter(Boolean).map(Number);
  const nested = await Promise.all(direct.map(childrenOf));
  return [...direct, ...nested.flat()];
}

async function countSent(sendId: number): Promise<number> {
  const row = await db
    .selectFrom('deliveries')
    .select((eb) => eb.fn.countAll<number>().as('sent'))
    .where('send_id', '=', sendId)
    .where('status', '=', 'sent')
    .executeTakeFirstOrThrow();
  return Number(row.sent);
}

async function naiveSend(
  digest: { subject: string; html: string; text: string },
  readers: number,
): Promise<number> {
  const transport = nodemailer.createTransport({
    host: '127.0.0.1',
    port: sink.port,
    pool: true,
    maxConnections: CONNECTIONS,
    maxMessages: Infinity,
    ignoreTLS: true,
  });
  const started = performance.now();
  let next = 1;
  await Promise.all(
    Array.from({ length: CONNECTIONS * 2 }, async () => {
      for (let n = next++; n <= readers; n = next++) {
        const mail = personalise(digest, readerValues(n));
        await transport.sendMail({
          from: '"The Newsroom" <briefing@news.example.com>',
          to: `reader${n}@example.com`,
          subject: digest.subject,
          html: mail.html,
          text: mail.text,
          headers: {
            'List-Id': 'Morning Briefing <morning-briefing.news.example.com>',
            'List-Unsubscribe': `<${readerValues(n).unsubscribe_url}>`,
            'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
            Precedence: 'bulk',
          },
        });
      }
    }),
  );
  transport.close();
  return readers / ((performance.now() - started) / 1000);
}

function readerValues(n: number) {
  return {
    unsubscribe_url: `https://news.example.com/unsubscribe/${n.toString(36)}.Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Zm9vYmFy`,
    preferences_url: `https://news.example.com/preferences/${n.toString(36)}.cXV1eGNvcmdlZ3JhdWx0Zm9vYmFyYmF6cXV4`,
  };
}

function seconds(since: number): string {
  return ((performance.now() - since) / 1000).toFixed(2);
}
