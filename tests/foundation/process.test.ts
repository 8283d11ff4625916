import { spawn } from 'node:child_process';
import { mkdtemp, readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '../..');
const tsx = join(root, 'node_modules/.bin/tsx');

function run(args: string[], env: Record<string, string>) {
  const child = spawn(tsx, args, {
    cwd: root,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, exited, output: () => ({ stdout, stderr }) };
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  return typeof address === 'object' && address ? address.port : 0;
}

describe('the service process', () => {
  it('starts on embedded defaults, answers /healthz, offers a first token and stops on SIGTERM', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'broadsheet-start-'));
    const port = await freePort();
    const service = run(['src/main.ts'], {
      DATA_DIR: dataDir,
      PORT: String(port),
      HOST: '127.0.0.1',
    });
    let health: Response | undefined;
    const deadline = Date.now() + 60_000;
    while (!health && Date.now() < deadline) {
      health = await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined);
      if (!health) await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(health?.status).toBe(200);

    const token = (await readFile(join(dataDir, 'admin-token'), 'utf8')).trim();
    expect(service.output().stdout).toContain(token);
    const list = await fetch(`http://127.0.0.1:${port}/api/v1/newsletters`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(list.status).toBe(200);
    expect((await readFile(join(dataDir, 'secret'), 'utf8')).trim().length).toBeGreaterThanOrEqual(
      32,
    );

    service.child.kill('SIGTERM');
    expect(await service.exited).toBe(0);
  }, 90_000);

  it('refuses to start without SECRET when DATABASE_URL is set', async () => {
    const service = run(['src/main.ts'], { DATABASE_URL: 'postgres://127.0.0.1:1/broadsheet' });
    expect(await service.exited).toBe(1);
    expect(service.output().stderr.trim()).toBe(
      'broadsheet: invalid configuration: SECRET is required when DATABASE_URL is set (every instance must sign links alike)',
    );
  }, 30_000);

  it('says so and exits non-zero when the database cannot be reached', async () => {
    const service = run(['src/main.ts'], {
      DATABASE_URL: 'postgres://broadsheet:hunter2@127.0.0.1:1/broadsheet',
      SECRET: 'x'.repeat(32),
    });
    expect(await service.exited).toBe(1);
    const { stderr } = service.output();
    expect(stderr).toMatch(
      /^broadsheet: cannot reach the database at postgres:\/\/broadsheet:\*\*\*@127\.0\.0\.1:1\/broadsheet/,
    );
    expect(stderr).not.toContain('hunter2');
    expect(stderr).not.toMatch(/\n\s+at /);
  }, 30_000);

  it('creates, lists and revokes tokens from the CLI', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'broadsheet-cli-'));
    const created = run(
      ['src/cli.ts', 'token', 'create', '--name', 'Desk editor', '--role', 'editor'],
      { DATA_DIR: dataDir },
    );
    expect(await created.exited).toBe(0);
    const token = created.output().stdout.trim().split('\n').at(-1)!;
    expect(token).toMatch(/^bs_[\w-]{40,}$/);
    const listed = run(['src/cli.ts', 'token', 'list'], { DATA_DIR: dataDir });
    expect(await listed.exited).toBe(0);
    expect(listed.output().stdout).toMatch(/^1\teditor\tactive\tlast used never\tDesk editor$/m);
    expect(listed.output().stdout).not.toContain(token);
    const revoked = run(['src/cli.ts', 'token', 'revoke', '1'], { DATA_DIR: dataDir });
    expect(await revoked.exited).toBe(0);
    const again = run(['src/cli.ts', 'token', 'revoke', '1'], { DATA_DIR: dataDir });
    expect(await again.exited).toBe(1);
    expect(again.output().stderr).toContain('no active token with id 1');
  }, 60_000);
});
