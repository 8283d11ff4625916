import { fork, type ChildProcess } from 'node:child_process';

export interface SmtpSink {
  url: string;
  port: number;
  pid: number;
  count(): Promise<{ accepted: number; bytes: number }>;
  stop(): Promise<void>;
}

function next<T>(child: ChildProcess, predicate: (message: unknown) => boolean): Promise<T> {
  return new Promise((resolve) => {
    const listen = (message: unknown) => {
      if (!predicate(message)) return;
      child.off('message', listen);
      resolve(message as T);
    };
    child.on('message', listen);
  });
}

/** Starts bench/smtp-sink.ts in a child process and waits for its port. */
export async function startSmtpSink(): Promise<SmtpSink> {
  const child = fork(new URL('./smtp-sink.ts', import.meta.url), [], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const { port } = await next<{ port: number }>(
    child,
    (m) => typeof m === 'object' && m !== null && 'port' in m,
  );
  return {
    url: `smtp://127.0.0.1:${port}`,
    port,
    pid: child.pid!,
    count: () => {
      const answer = next<{ accepted: number; bytes: number }>(
        child,
        (m) => typeof m === 'object' && m !== null && 'accepted' in m,
      );
      child.send('count');
      return answer;
    },
    stop: async () => {
      const exited = new Promise((resolve) => child.on('exit', resolve));
      child.send('stop');
      await exited;
    },
  };
}
