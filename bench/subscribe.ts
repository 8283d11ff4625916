/**
 * Subscribe benchmark (npm run bench:subscribe), on PostgreSQL.
 *
 * 1. Throughput: autocannon POSTs distinct addresses to /api/v1/subscriptions (50 connections,
 *    10 s) and, in the same run and the same way, to a bare Express 5 handler that answers 202.
 * 2. Latency to the inbox: 200 subscriptions/s for a few seconds with the delivery worker on,
 *    timing each address from its 202 to the moment a local SMTP listener accepts its mail.
 *
 * BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres) names the server;
 * a database of its own is created and dropped.
 */
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import autocannon from 'autocannon';
import express from 'express';
import { sql } from 'kysely';
import { Registry } from 'prom-client';
import { SMTPServer } from 'smtp-server';
import { loadConfig } from '../src/config.ts';
import { connectPostgres } from '../src/db/connect.ts';
import { migrateToLatest } from '../src/db/migrate.ts';
import { createMailTransport } from '../src/delivery/transport.ts';
import { DeliveryWorker } from '../src/delivery/worker.ts';
import { createApp } from '../src/http/app.ts';
import { createLogger } from '../src/log.ts';

const serverUrl = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const duration = Number(process.env.BENCH_DURATION ?? 10);
const connections = Number(process.env.BENCH_CONNECTIONS ?? 50);
const latencyRate = Number(process.env.BENCH_LATENCY_RATE ?? 200);
const latencySeconds = Number(process.env.BENCH_LATENCY_SECONDS ?? 5);
const roundCount = Number(process.env.BENCH_ROUNDS ?? 5);
// A connection per concurrent request, so the one-INSERT reference can share WAL flushes too
// (subscribe batches its own requests, src/db/group-commit.ts).
const poolSize = Number(process.env.BENCH_POOL_SIZE ?? connections);

function withDatabase(url: string, name: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${name}`;
  return parsed.toString();
}

async function listen(app: express.Express): Promise<Server> {
  return new Promise((resolve) => {
    const server = app.listen(0, '127.0.0.1', () => resolve(server));
  });
}

const portOf = (server: Server) => (server.address() as AddressInfo).port;

// Readers come from many networks: each request carries its own client address (the app trusts
// X-Forwarded-For from loopback), so per-IP counters are as spread out as in production.
const clientAddress = (n: number) => `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;

async function hammer(
  title: string,
  port: number,
  body: (n: number) => string,
  seconds = duration,
) {
  let sequence = 0;
  const cpu = process.cpuUsage();
  const postgresCpu = postgresCpuMs();
  const result = await autocannon({
    title,
    url: `http://127.0.0.1:${port}/api/v1/subscriptions`,
    connections,
    duration: seconds,
    requests: [
      {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        setupRequest: (request) => {
          const n = sequence++;
          return {
            ...request,
            headers: { ...request.headers, 'x-forwarded-for': clientAddress(n) },
            body: body(n),
          };
        },
      },
    ],
  });
  const used = process.cpuUsage(cpu);
  const postgresPerRequest = postgresCpuSince(postgresCpu) / Math.max(1, result.requests.total);
  const non2xx = result.non2xx + result.errors + result.timeouts;
  const cpuPerRequest = (used.user + used.system) / 1000 / Math.max(1, result.requests.total);
  return {
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    non2xx,
    cpuPerRequest,
    postgresPerRequest,
  };
}

// CPU used so far by each postgres process on this machine, in ms (user + system, from /proc).
function postgresCpuMs(): Map<string, number> {
  const tick = 10;
  const used = new Map<string, number>();
  for (const pid of readdirSync('/proc').filter((entry) => /^\d+$/.test(entry))) {
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() !== 'postgres') continue;
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      used.set(pid, (Number(fields[11]) + Number(fields[12])) * tick);
    } catch {
      // the process ended between the listing and the read
    }
  }
  return used;
}

// What the processes alive at the end used since `before`; an autovacuum worker that ended
// meanwhile is not counted.
function postgresCpuSince(before: Map<string, number>): number {
  let total = 0;
  for (const [pid, ms] of postgresCpuMs()) total += ms - (before.get(pid) ?? 0);
  return total;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

const name = `broadsheet_bench_${randomBytes(4).toString('hex')}`;
const admin = connectPostgres(withDatabase(serverUrl, 'postgres'), 1);
await sql`create database ${sql.id(name)}`.execute(admin.db);
const databaseUrl = withDatabase(serverUrl, name);
const database = connectPostgres(databaseUrl, poolSize);
const accepted = new Map<string, number>();
const smtp = new SMTPServer({
  authOptional: true,
  disabledCommands: ['STARTTLS', 'AUTH'],
  logger: false,
  onData(stream, session, callback) {
    stream.resume();
    stream.on('end', () => {
      const now = performance.now();
      for (const rcpt of session.envelope.rcptTo) accepted.set(rcpt.address.toLowerCase(), now);
      callback();
    });
  },
});

try {
  await migrateToLatest(database.db);
  await new Promise<void>((resolve) => smtp.listen(0, '127.0.0.1', () => resolve()));
  const smtpPort = (smtp.server.address() as AddressInfo).port;
  const config = loadConfig({
    NODE_ENV: 'production',
    DATABASE_URL: databaseUrl,
    DATABASE_POOL_SIZE: String(poolSize),
    SECRET: randomBytes(32).toString('hex'),
    SMTP_URL: `smtp://127.0.0.1:${smtpPort}`,
    PUBLIC_URL: 'https://news.example',
    MAIL_FROM: 'The Newsroom <newsletters@news.example>',
    LOG_LEVEL: 'warn',
  });
  const logger = createLogger(config.logLevel);
  await database.db
    .insertInto('newsletters')
    .values([
      {
        slug: 'morning-briefing',
        name: 'Morning Briefing',
        description: 'The five stories you need before work, every weekday at 6am.',
        from_name: 'The Newsroom',
        from_email: 'newsletters@news.example',
      },
      {
        slug: 'weekly-explainer',
        name: 'The Weekly Explainer',
        description: 'One big story of the week, taken apart by our reporters, every Saturday.',
        from_name: 'The Newsroom',
        from_email: 'newsletters@news.example',
      },
    ])
    .execute();

  const app = createApp({ db: database.db, config, logger, metrics: new Registry() });
  const service = await listen(app);
  const baselineApp = express();
  baselineApp.post('/api/v1/subscriptions', express.json(), (_req, res) => {
    res.status(202).json({ message: 'accepted' });
  });
  const baseline = await listen(baselineApp);
  // A reference, not a target: the cheapest handler that writes anything to PostgreSQL.
  const oneInsertApp = express();
  oneInsertApp.post('/api/v1/subscriptions', express.json(), async (req, res) => {
    await sql`insert into rate_limit_counters (key, hits, expires_at)
      values (${String((req.body as { email: string }).email)}, 1, now())`.execute(database.db);
    res.status(202).json({ message: 'accepted' });
  });
  const oneInsert = await listen(oneInsertApp);

  const run = randomBytes(3).toString('hex');
  const subscription = (prefix: string) => (n: number) =>
    JSON.stringify({
      email: `${prefix}-${run}-${n}@bench.example`,
      newsletters: ['morning-briefing', 'weekly-explainer'],
    });

  // Warm up (JIT, pool, compiled confirmation mail), then measure in rounds: this machine's
  // speed drifts by a third from one ten-second run to the next, so each round's subscribe run is
  // compared with the baseline run just before it, and the median round is the figure.
  await hammer('warm-up', portOf(service), subscription('warm'), 2);
  const rows: { label: string; r: Awaited<ReturnType<typeof hammer>> }[] = [];
  const rounds: { ratio: number; p99: number }[] = [];
  for (let round = 1; round <= roundCount; round++) {
    // Vacuum and fresh statistics before each round, not during one (autovacuum would), so no
    // round runs on plans made for the empty tables of the warm-up.
    await sql`vacuum analyze`.execute(database.db);
    const base = await hammer('baseline', portOf(baseline), subscription(`base${round}`));
    const insertOnly = await hammer('one insert', portOf(oneInsert), subscription(`ins${round}`));
    const ours = await hammer('subscribe', portOf(service), subscription(`sub${round}`));
    rows.push(
      { label: `${round} baseline 202`, r: base },
      { label: `${round} one INSERT`, r: insertOnly },
      { label: `${round} subscribe`, r: ours },
    );
    rounds.push({ ratio: ours.rps / base.rps, p99: ours.p99 });
  }

  console.log(
    `\nPOST /api/v1/subscriptions, ${connections} connections, ${duration} s a run, ${roundCount} rounds, PostgreSQL pool of ${poolSize} (autocannon in the same process)`,
  );
  console.log(
    '                   req/s     p50 ms   p99 ms   non-2xx   CPU ms/request: Node  PostgreSQL',
  );
  for (const { label, r } of rows) {
    console.log(
      `${label.padEnd(17)} ${r.rps.toFixed(0).padStart(7)} ${String(r.p50).padStart(9)} ${String(r.p99).padStart(8)} ${String(r.non2xx).padStart(9)} ${r.cpuPerRequest.toFixed(2).padStart(20)} ${r.postgresPerRequest.toFixed(2).padStart(11)}`,
    );
  }
  const median = (values: number[]) => values.sort((a, b) => a - b)[(values.length - 1) >> 1]!;
  console.log(
    `ratio subscribe / baseline by round: ${rounds.map((round) => round.ratio.toFixed(2)).join(', ')}`,
  );
  console.log(
    `median ratio ${median(rounds.map((round) => round.ratio)).toFixed(2)}, median subscribe p99 ${median(rounds.map((round) => round.p99))} ms (target ≥ 0.6, p99 < 50 ms)`,
  );

  // Latency from the 202 to the mail accepted by SMTP, with the worker polling as in production.
  await database.db.deleteFrom('outbox').execute();
  const transport = createMailTransport({
    smtpUrl: config.smtpUrl,
    dataDir: config.dataDir,
    logger,
  });
  const worker = new DeliveryWorker({
    db: database.db,
    transport,
    logger,
    messageIdDomain: config.messageIdDomain,
  });
  worker.start();
  const answered = new Map<string, number>();
  const answerTimes: number[] = [];
  const total = latencyRate * latencySeconds;
  let next = 0;
  // autocannon paces the requests (overallRate) and reports each answer as it comes.
  await autocannon({
    url: `http://127.0.0.1:${portOf(service)}/api/v1/subscriptions`,
    connections: 20,
    overallRate: latencyRate,
    amount: total,
    requests: [
      {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        setupRequest: (request, context: { email?: string; sentAt?: number }) => {
          const n = next++;
          context.email = `lat-${run}-${n}@bench.example`;
          context.sentAt = performance.now();
          return {
            ...request,
            headers: { ...request.headers, 'x-forwarded-for': clientAddress(100_000 + n) },
            body: JSON.stringify({ email: context.email, newsletters: ['morning-briefing'] }),
          };
        },
        onResponse: (status, _body, context: { email?: string; sentAt?: number }) => {
          const now = performance.now();
          answerTimes.push(now - context.sentAt!);
          if (status === 202) answered.set(context.email!, now);
        },
      },
    ],
  });
  const deadline = performance.now() + 30_000;
  while (
    [...answered.keys()].some((email) => !accepted.has(email)) &&
    performance.now() < deadline
  ) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await worker.stop();
  transport.close();
  const latencies = [...answered]
    .filter(([email]) => accepted.has(email))
    .map(([email, at]) => accepted.get(email)! - at)
    .sort((a, b) => a - b);
  const acceptedAt = [...answered.keys()].map((email) => accepted.get(email) ?? NaN);
  const drainSeconds = (Math.max(...acceptedAt) - Math.min(...acceptedAt)) / 1000;
  answerTimes.sort((a, b) => a - b);
  console.log(
    `\n202 → confirmation mail accepted by SMTP, ${latencyRate} subscriptions/s for ${latencySeconds} s (worker polls every 200 ms when idle)`,
  );
  console.log(
    `mails ${latencies.length}/${answered.size}   p50 ${percentile(latencies, 50).toFixed(0)} ms   p95 ${percentile(latencies, 95).toFixed(0)} ms   max ${(latencies.at(-1) ?? NaN).toFixed(0)} ms   (target p95 < 1000 ms)`,
  );
  console.log(
    `202 answered in p50 ${percentile(answerTimes, 50).toFixed(0)} ms, p95 ${percentile(answerTimes, 95).toFixed(0)} ms; mail accepted by SMTP at ${(latencies.length / drainSeconds).toFixed(0)}/s`,
  );

  await new Promise((resolve) => service.close(resolve));
  await new Promise((resolve) => baseline.close(resolve));
  await new Promise((resolve) => oneInsert.close(resolve));
} finally {
  await new Promise<void>((resolve) => smtp.close(() => resolve()));
  await database.close();
  await sql`drop database if exists ${sql.id(name)} with (force)`.execute(admin.db);
  await admin.close();
}
